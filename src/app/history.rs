//! Reading what was said: a page of a room's history (before, after or around a message) and
//! full-text search. The transport parses its parameters into the types here; these functions
//! apply the rules that do not depend on it (page sizes, who may read what, the search slots
//! and time budget), ask the store once, and answer with typed results or an [`AppError`].
//!
//! These are hot read paths: each is one hop to the store (search: a room lookup when one is
//! named, a search slot, then one hop to the search connections), no more.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use crate::app::access;
use crate::app::error::{AppError, Code};
use crate::app::rooms::{self, RoomError};
use crate::app::App;
use crate::db::queries::SearchQuery;
use crate::db::{DbError, Page, SearchHit};
use crate::domain::{self, Username, MAX_QUERY_CHARS};
use crate::hub::{Loaded, Lookup, Readers, TAIL_LEN};
use crate::limits::Crowded;
use crate::protocol;

/// Largest page of history.
pub const MAX_PAGE: u32 = 200;
/// Page of history when no size is asked for.
pub const DEFAULT_PAGE: u32 = 50;

/// Search results per page when no size is asked for.
pub const SEARCH_PAGE: u32 = 20;
/// Most search results per page.
pub const SEARCH_MAX: u32 = 50;
/// Deepest a relevance-ordered search pages (`offset`).
const MAX_SEARCH_OFFSET: i64 = 100_000;
/// The most time one search may take before it is stopped.
const SEARCH_BUDGET: Duration = Duration::from_secs(2);
/// How long a search waits for one of the server's search slots.
const SEARCH_QUEUE_WAIT: Duration = Duration::from_secs(3);

/// Which page of history: `before`, `after` or `around` a message id, at most one of them;
/// none is the newest page.
pub fn page(
    before: Option<i64>,
    after: Option<i64>,
    around: Option<i64>,
) -> Result<Page, AppError> {
    let anchors = [before, after, around].iter().flatten().count();
    if anchors > 1 {
        return Err(AppError::bad_request(
            "Give at most one of `before`, `after` and `around`.",
        ));
    }
    Ok(match (after, around) {
        (Some(a), _) => Page::After(a),
        (_, Some(id)) => Page::Around(id),
        _ => Page::Before(before),
    })
}

/// Messages per page of history: [`DEFAULT_PAGE`] when none is asked for, at most
/// [`MAX_PAGE`]; fewer than one is refused.
pub fn page_size(limit: Option<i64>) -> Result<u32, AppError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if n >= 1 => Ok(n.min(i64::from(MAX_PAGE)) as u32),
        Some(_) => Err(AppError::bad_request(
            "`limit` must be a whole number from 1 to 200.",
        )),
    }
}

/// One page of the history of `room`, oldest first, as the body a page is sent with
/// (`{"messages":[...]}`). A public room can be read before joining it (a preview); a private
/// room or DM of others is answered as one that does not exist.
///
/// Pages within a room's newest [`TAIL_LEN`] messages come from memory (see
/// [`crate::hub::Tails`]); the newest page of a room not in memory loads its tail; any other
/// page is one read of the store (the room and its page in one hop).
pub async fn messages(
    state: &App,
    user_id: i64,
    room: &str,
    page: Page,
    limit: u32,
) -> Result<Vec<u8>, AppError> {
    let metrics = state.hub.metrics();
    // A node that knows of commits it has not delivered yet reads the store: its rooms'
    // newest messages in memory may lack them, and a client whose `ready` counted them would
    // never see them (they are no longer sent to it live). On one node, the fan-out is then
    // a batch or two behind the writer; on several, another node committed a moment ago, or
    // this one catches up after a pause.
    let behind = metrics.log_behind();
    let lookup = if behind {
        Lookup::Miss
    } else {
        state.hub.tails().page(room, user_id, page, limit)
    };
    match lookup {
        Lookup::Page(items) => {
            metrics.pages_from_memory.fetch_add(1, Ordering::Relaxed);
            return Ok(protocol::history_body(&items));
        }
        Lookup::Hidden => return Err(RoomError::UnknownRoom.into()),
        Lookup::Miss => {}
    }
    metrics.pages_from_store.fetch_add(1, Ordering::Relaxed);
    // Behind, the page alone (the tail is loaded by a later page).
    if page == Page::Before(None) && !behind {
        let items = load_tail(state, user_id, room, limit).await?;
        return Ok(protocol::history_body(&items));
    }
    let rows = state
        .db
        .room_page(room, user_id, page, limit, access::key_readable)
        .await?
        .ok_or(RoomError::UnknownRoom)?;
    Ok(protocol::history_body_of(&rows))
}

/// The newest page of `room`, read with the rest of the room's tail, which is kept for the
/// next reader unless the room changed during the read.
async fn load_tail(
    state: &App,
    user_id: i64,
    room: &str,
    limit: u32,
) -> Result<Vec<Bytes>, AppError> {
    let tails = state.hub.tails();
    let ticket = tails.ticket(room);
    let read = state
        .db
        .room_tail(room, user_id, TAIL_LEN as u32, access::key_readable)
        .await?
        .ok_or(RoomError::UnknownRoom)?;
    let messages: Vec<(i64, Bytes)> = read
        .messages
        .iter()
        .map(|m| (m.id, protocol::message_json(m)))
        .collect();
    let start = messages.len().saturating_sub(limit as usize);
    let page = messages[start..].iter().map(|(_, b)| b.clone()).collect();
    // Kept under the name as stored only: the ticket was taken for the name as asked.
    if read.room.name == room {
        let readers = match read.members {
            None => Readers::Everyone,
            Some(ids) => Readers::Members(ids),
        };
        tails.install(room, ticket, Loaded { readers, messages });
    }
    Ok(page)
}

/// The words to search for, trimmed: something, and at most [`MAX_QUERY_CHARS`] characters.
pub fn search_text(raw: &str) -> Result<&str, AppError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(AppError::bad_request("Type something to search for (`q`)."));
    }
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(AppError::bad_request(
            "Searches are at most 200 characters.",
        ));
    }
    if text.contains('\0') {
        return Err(AppError::bad_request(crate::protocol::NUL_REFUSED));
    }
    Ok(text)
}

/// Search results per page: [`SEARCH_PAGE`] when none is asked for, at most [`SEARCH_MAX`];
/// fewer than one is refused.
pub fn search_size(limit: Option<i64>) -> Result<u32, AppError> {
    match limit {
        None => Ok(SEARCH_PAGE),
        Some(n) if n >= 1 => Ok(n.min(i64::from(SEARCH_MAX)) as u32),
        Some(_) => Err(AppError::bad_request("`limit` must be at least 1.")),
    }
}

/// A search, its text and size already checked ([`search_text`], [`search_size`]).
#[derive(Debug, Clone, Copy)]
pub struct Search<'a> {
    /// The words, all of which must occur.
    pub text: &'a str,
    /// Best matches first instead of newest first.
    pub by_relevance: bool,
    /// Results per page.
    pub limit: u32,
    /// Newest first: only messages older than this id (ignored by relevance).
    pub before: Option<i64>,
    /// By relevance: skip this many results (ignored newest first).
    pub offset: Option<i64>,
    /// Only this room, which the user must be able to read (empty: every room).
    pub room: Option<&'a str>,
    /// Only messages by this user (empty: anyone).
    pub author: Option<&'a str>,
}

/// One page of search results and where the next one starts.
#[derive(Debug, Default)]
pub struct SearchPage {
    /// The results, in the order asked for.
    pub hits: Vec<SearchHit>,
    /// Newest first, when there is more: the `before` of the next page.
    pub next_before: Option<i64>,
    /// By relevance, when there is more: the `offset` of the next page.
    pub next_offset: Option<u32>,
}

/// Search every message `user_id` may read (see [`access`]; the rule is applied inside the
/// query). A search runs in one of the server's few search slots and is stopped after its
/// time budget (`search_too_broad`); no slot in time is `busy`.
pub async fn search(state: &App, user_id: i64, s: Search<'_>) -> Result<SearchPage, AppError> {
    let offset = s.offset.unwrap_or(0).clamp(0, MAX_SEARCH_OFFSET) as u32;
    let room_id = match s.room.filter(|r| !r.is_empty()) {
        Some(name) => {
            let name = crate::domain::fold_room_name(name);
            Some(rooms::readable(state, user_id, &name).await?.id)
        }
        None => None,
    };
    let author_key = match s.author.filter(|u| !u.is_empty()) {
        Some(name) => match Username::parse(name) {
            Ok(u) => Some(u.key()),
            // No account can have that name: nothing to find.
            Err(_) => return Ok(SearchPage::default()),
        },
        None => None,
    };
    let Some(fts) = domain::fts_query(s.text) else {
        return Ok(SearchPage::default());
    };
    let query = SearchQuery {
        fts,
        user_id,
        room_id,
        author_key,
        before: if s.by_relevance { None } else { s.before },
        offset: if s.by_relevance { offset } else { 0 },
        // One more than a page tells whether there is a next one.
        limit: s.limit + 1,
        by_relevance: s.by_relevance,
    };
    let hits = run_search(state, user_id, query).await?;
    Ok(SearchPage::of(hits, &s, offset))
}

/// Run `query` in one of the server's search slots, within the time budget.
async fn run_search(
    state: &App,
    user_id: i64,
    query: SearchQuery,
) -> Result<Vec<SearchHit>, AppError> {
    let _running = state
        .searches
        .enter(user_id, SEARCH_QUEUE_WAIT)
        .await
        .map_err(busy)?;
    state
        .db
        .search(query, SEARCH_BUDGET)
        .await
        .map_err(|e| match e {
            DbError::Interrupted => AppError::new(
                Code::SearchTooBroad,
                "That search took too long. Add words, or search one room or one person.",
            ),
            e => AppError::from(e),
        })
}

/// No search slot came free: `busy`, retry in a second.
fn busy(crowded: Crowded) -> AppError {
    let why = match crowded {
        Crowded::User => "Your previous search is still running; try again in a moment.",
        Crowded::Server => "The server is busy with other searches; try again in a moment.",
    };
    AppError::new(Code::Busy, why).retry_after(Duration::from_secs(1))
}

impl SearchPage {
    /// A page of `s.limit` from up to `s.limit + 1` hits, the extra one saying there is more.
    fn of(mut hits: Vec<SearchHit>, s: &Search<'_>, offset: u32) -> Self {
        let more = hits.len() > s.limit as usize;
        hits.truncate(s.limit as usize);
        let next_before = (more && !s.by_relevance)
            .then(|| hits.last().map(|h| h.msg.id))
            .flatten();
        let next_offset = (more && s.by_relevance).then_some(offset + s.limit);
        SearchPage {
            hits,
            next_before,
            next_offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_anchor_at_most() {
        assert_eq!(page(None, None, None), Ok(Page::Before(None)));
        assert_eq!(page(Some(5), None, None), Ok(Page::Before(Some(5))));
        assert_eq!(page(None, Some(5), None), Ok(Page::After(5)));
        assert_eq!(page(None, None, Some(5)), Ok(Page::Around(5)));
        let e = page(Some(1), None, Some(2)).unwrap_err();
        assert_eq!(e.code, Code::BadRequest);
    }

    #[test]
    fn page_sizes_default_clamp_and_refuse() {
        assert_eq!(page_size(None), Ok(DEFAULT_PAGE));
        assert_eq!(page_size(Some(1)), Ok(1));
        assert_eq!(page_size(Some(10_000)), Ok(MAX_PAGE));
        assert!(page_size(Some(0)).is_err());
        assert_eq!(search_size(None), Ok(SEARCH_PAGE));
        assert_eq!(search_size(Some(999)), Ok(SEARCH_MAX));
        assert!(search_size(Some(0)).is_err());
    }

    #[test]
    fn search_text_is_trimmed_and_bounded() {
        assert_eq!(search_text("  hi "), Ok("hi"));
        assert!(search_text("   ").is_err());
        assert!(search_text(&"x".repeat(MAX_QUERY_CHARS)).is_ok());
        assert!(search_text(&"x".repeat(MAX_QUERY_CHARS + 1)).is_err());
    }
}
