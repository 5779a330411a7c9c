//! Link previews in the store: the cache of fetched pages (whose pictures move into place in
//! the same writer job, like an upload's), and a message's preview at its position.

use std::sync::Arc;

use crate::db::queries::{self, CachedPage};
use crate::db::{now_ms, ChangeKind, Db, DbError, LinkPreview, MessageChange, Tx};
use crate::files::{Files, TempFile};

/// How long a fetched page is believed before it is fetched again.
pub const PAGE_FRESH_MS: i64 = 24 * 3600 * 1000;
/// How long a page is kept in the cache at all.
pub const PAGE_KEPT_MS: i64 = 7 * 24 * 3600 * 1000;

impl Db {
    /// What `url` said when fetched within the last day.
    pub async fn cached_page(&self, url: &str) -> Result<Option<CachedPage>, DbError> {
        let url = url.to_string();
        let since = now_ms() - PAGE_FRESH_MS;
        self.read(move |c| queries::cached_page(c, &url, since))
            .await
    }

    /// Remember what `url` said, fetched for message `for_message`; `image` is its picture (a
    /// temporary file, its hash and type), moved into place in the same job. Returns the page
    /// as cached. Nothing is kept when the message was deleted (or is gone) meanwhile, or
    /// edited so that this is no longer its link: the deletion dropped what was cached for
    /// its link, and a fetch still under way must not bring it back for a week (nor keep the
    /// page of a link edited away, which no deletion would then drop). The message's row is
    /// locked first on PostgreSQL, as a deletion locks it, so that one of the two sees the
    /// other.
    pub async fn cache_page(
        &self,
        files: Arc<Files>,
        (url, for_message): (&str, i64),
        mut page: CachedPage,
        image: Option<(TempFile, String, String)>,
    ) -> Result<CachedPage, DbError> {
        let url = url.to_string();
        let later = files.clone();
        let page = self
            .write(move |c| {
                let body = queries::live_body_locked(c, for_message)?;
                if !body.is_some_and(|b| crate::outbound::page::links_first_to(&b, &url)) {
                    page.image = None;
                    return Ok(page);
                }
                let io = crate::db::sql::SqlError::Io;
                if let Some((file, sha, mime)) = image {
                    files.settle(file, &sha).map_err(io)?;
                    page.image = Some((sha, mime));
                }
                queries::cache_page(c, &url, &page, now_ms())?;
                Ok(page)
            })
            .await?;
        super::uploads::collect_after(self, later).await;
        Ok(page)
    }

    /// The picture of message `id`'s preview: its file and type.
    pub async fn preview_image(&self, id: i64) -> Result<Option<(String, String)>, DbError> {
        self.read(move |c| queries::preview_image(c, id)).await
    }

    /// Forget pages cached more than a week ago, and remove the pictures nothing uses any
    /// more; how many pages.
    pub async fn forget_old_pages(&self, files: Arc<Files>) -> Result<usize, DbError> {
        let n = self
            .write(move |c| queries::forget_old_pages(c, now_ms() - PAGE_KEPT_MS))
            .await?;
        super::uploads::collect_after(self, files).await;
        Ok(n)
    }
}

impl Tx<'_> {
    /// Give message `id` the preview `p` (with the picture `image`, a stored file and its
    /// type) at a new position, unless the message is gone or deleted, no longer has the
    /// preview's link first (edited meanwhile), or already has (or had) a preview; writer
    /// only.
    pub fn attach_preview(
        &self,
        id: i64,
        p: LinkPreview,
        image: Option<(&str, &str)>,
    ) -> Result<Option<MessageChange>, DbError> {
        let Some((msg, _)) = queries::message_by_id(self.0, id)? else {
            return Ok(None);
        };
        // An edit that took the link out (or changed it) while its page was fetched: the
        // preview would show a link the message no longer has.
        if msg.deleted || !crate::outbound::page::links_first_to(&msg.body, &p.url) {
            return Ok(None);
        }
        if queries::has_preview_row(self.0, id)? {
            return Ok(None);
        }
        queries::insert_message_preview(self.0, id, &p, image)?;
        let change = MessageChange {
            seq: queries::next_position(self.0)?,
            id,
            room_id: msg.room_id,
            room: msg.room,
            kind: ChangeKind::Preview {
                preview: Some(Box::new(p)),
            },
        };
        queries::insert_change(self.0, &change, None, now_ms())?;
        Ok(Some(change))
    }

    /// Take the preview of `msg` away for good, at a new position when one was showing
    /// (`None`: there was none, and none will come); writer only.
    pub fn remove_preview(
        &self,
        msg: &crate::db::StoredMessage,
        actor_id: i64,
    ) -> Result<Option<MessageChange>, DbError> {
        if !queries::remove_message_preview(self.0, msg.id)? {
            queries::refuse_message_preview(self.0, msg.id)?;
            return Ok(None);
        }
        let change = MessageChange {
            seq: queries::next_position(self.0)?,
            id: msg.id,
            room_id: msg.room_id,
            room: msg.room.clone(),
            kind: ChangeKind::Preview { preview: None },
        };
        queries::insert_change(self.0, &change, Some(actor_id), now_ms())?;
        Ok(Some(change))
    }

    /// The latest preview change of message `id`, if any.
    pub fn last_preview_change(&self, id: i64) -> Result<Option<MessageChange>, DbError> {
        Ok(queries::last_change(self.0, id, "preview")?)
    }
}
