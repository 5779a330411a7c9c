//! The newest messages of recently read rooms, kept in memory as the JSON a history page is
//! made of, so that opening a room, reloading and most scrolling never reach the store.
//!
//! A room's tail is loaded from the store on a miss (the newest [`TAIL_LEN`] messages, with
//! what is needed to check who may read the room), and from then on kept current by the
//! fan-out: each committed message is appended, in commit order, from the bytes of the frame
//! it was delivered in. Anything that could make a cached page differ from the store's (an
//! edit, deletion or reaction, which may also change a reply's quote; a rename; a change of
//! members or visibility) drops the room's tail, and the next read loads it again.
//!
//! **A load never installs a stale tail.** Each room name hashes to a version counter that
//! every message and change of that room bumps. A load takes a [`Ticket`] (the counter)
//! *before* its read starts and installs only if the counter has not moved since: whatever
//! committed after the read's snapshot is fanned out after the ticket was taken, so either
//! the install is refused, or the tail is installed first and then updated or dropped by it.
//!
//! Pages are answered only where the tail is known to hold every message of the range:
//! a tail holds every message of its room from its oldest one on, and all of them when the
//! room had fewer than [`TAIL_LEN`] messages when it was loaded and none was trimmed since.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use bytes::Bytes;

use crate::db::Page;

/// Messages kept per room: a full page of the largest size, and some more for scrolling.
pub const TAIL_LEN: usize = 256;
/// Bytes of JSON kept over all rooms; the least recently read rooms go first.
const BUDGET: usize = 16 << 20;
/// Version counters; room names share them by hash (a shared counter only costs a refused
/// install now and then).
const STRIPES: usize = 256;

/// What a room's tail needs to know to check a reader without the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readers {
    /// A public room: anyone signed in may read it.
    Everyone,
    /// A private room or DM: only these users (sorted).
    Members(Vec<i64>),
}

impl Readers {
    fn admit(&self, user_id: i64) -> bool {
        match self {
            Readers::Everyone => true,
            Readers::Members(ids) => ids.binary_search(&user_id).is_ok(),
        }
    }
}

/// A tail as loaded from the store: the newest messages of a room, oldest first, each the JSON
/// object a history page lists.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Who may read the room.
    pub readers: Readers,
    /// `(id, JSON)` of its newest messages, ascending, at most [`TAIL_LEN`].
    pub messages: Vec<(i64, Bytes)>,
}

/// What the cache says about one page.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The page's messages (JSON objects, oldest first).
    Page(Vec<Bytes>),
    /// The room is cached and the user may not read it: answer as an unknown room.
    Hidden,
    /// Not answerable from memory: ask the store.
    Miss,
}

/// Taken before a load's read; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    stripe: usize,
    version: u64,
    generation: u64,
}

/// One room's cached tail.
struct Tail {
    readers: Readers,
    /// `(id, JSON)`, ascending ids.
    items: VecDeque<(i64, Bytes)>,
    /// Every message of the room is in `items` (none older exists).
    whole: bool,
    /// Sum of the items' lengths.
    bytes: usize,
    /// When it was last read, on the cache's clock (for eviction).
    used: AtomicU64,
}

#[derive(Default)]
struct Inner {
    rooms: HashMap<String, Tail>,
    bytes: usize,
}

/// The per-room tails. Shared by the fan-out (appends and drops) and the readers.
pub struct Tails {
    inner: RwLock<Inner>,
    versions: Vec<AtomicU64>,
    /// Bumped by [`Tails::clear`]: a ticket from before a clear is refused too.
    generation: AtomicU64,
    /// A counter for least-recently-read eviction.
    clock: AtomicU64,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for Tails {
    fn default() -> Self {
        Tails {
            inner: RwLock::new(Inner::default()),
            versions: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            generation: AtomicU64::new(0),
            clock: AtomicU64::new(0),
            hasher: Default::default(),
        }
    }
}

impl Tails {
    /// The page of `room` that `user_id` asked for, if memory can answer it.
    pub fn page(&self, room: &str, user_id: i64, page: Page, limit: u32) -> Lookup {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let Some(tail) = inner.rooms.get(room) else {
            return Lookup::Miss;
        };
        if !tail.readers.admit(user_id) {
            return Lookup::Hidden;
        }
        tail.used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        match select(&tail.items, tail.whole, page, limit as usize) {
            Some(range) => Lookup::Page(tail.items.range(range).map(|(_, b)| b.clone()).collect()),
            None => Lookup::Miss,
        }
    }

    /// Taken before reading a tail from the store, handed back to [`Tails::install`].
    pub fn ticket(&self, room: &str) -> Ticket {
        let stripe = self.stripe(room);
        Ticket {
            stripe,
            version: self.versions[stripe].load(Ordering::Acquire),
            generation: self.generation.load(Ordering::Acquire),
        }
    }

    /// Keep `loaded` as the tail of `room` (its name exactly as stored), unless anything
    /// happened to the room since `ticket` was taken. Returns whether it was kept.
    pub fn install(&self, room: &str, ticket: Ticket, loaded: Loaded) -> bool {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let moved = self.versions[ticket.stripe].load(Ordering::Acquire) != ticket.version
            || self.generation.load(Ordering::Acquire) != ticket.generation
            || ticket.stripe != self.stripe(room);
        if moved {
            return false;
        }
        let whole = loaded.messages.len() < TAIL_LEN;
        let bytes = loaded.messages.iter().map(|(_, b)| b.len()).sum();
        let tail = Tail {
            readers: loaded.readers,
            items: loaded.messages.into(),
            whole,
            bytes,
            used: AtomicU64::new(self.clock.fetch_add(1, Ordering::Relaxed)),
        };
        inner.bytes += bytes;
        if let Some(old) = inner.rooms.insert(room.to_string(), tail) {
            inner.bytes -= old.bytes;
        }
        evict(&mut inner, room);
        true
    }

    /// A message of `room` was committed (called in commit order): append its history object,
    /// made by `json` only when the room has a tail, or drop the tail when `json` cannot make
    /// it.
    pub fn append(&self, room: &str, id: i64, json: impl FnOnce() -> Option<Bytes>) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        self.bump(room);
        let Some(tail) = inner.rooms.get_mut(room) else {
            return;
        };
        if tail.items.back().is_some_and(|(last, _)| *last >= id) {
            return; // already loaded with the tail
        }
        let Some(json) = json() else {
            if let Some(old) = inner.rooms.remove(room) {
                inner.bytes -= old.bytes;
            }
            return;
        };
        let mut delta = json.len() as isize;
        tail.items.push_back((id, json));
        while tail.items.len() > TAIL_LEN {
            if let Some((_, old)) = tail.items.pop_front() {
                delta -= old.len() as isize;
            }
            tail.whole = false;
        }
        tail.bytes = tail.bytes.saturating_add_signed(delta);
        inner.bytes = inner.bytes.saturating_add_signed(delta);
        if inner.bytes > BUDGET {
            evict(&mut inner, room);
        }
    }

    /// Something about `room` changed that a cached page may show: forget its tail.
    pub fn forget(&self, room: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        self.bump(room);
        if let Some(old) = inner.rooms.remove(room) {
            inner.bytes -= old.bytes;
        }
    }

    /// Forget every tail (another process changed the store).
    pub fn clear(&self) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        inner.rooms.clear();
        inner.bytes = 0;
    }

    /// Rooms and bytes held.
    #[cfg(test)]
    fn size(&self) -> (usize, usize) {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        (inner.rooms.len(), inner.bytes)
    }

    fn bump(&self, room: &str) {
        self.versions[self.stripe(room)].fetch_add(1, Ordering::AcqRel);
    }

    fn stripe(&self, room: &str) -> usize {
        (self.hasher.hash_one(room) % STRIPES as u64) as usize
    }
}

/// Drop the least recently read rooms other than `keep` until the cache is within budget.
fn evict(inner: &mut Inner, keep: &str) {
    while inner.bytes > BUDGET {
        let oldest = inner
            .rooms
            .iter()
            .filter(|(name, _)| name.as_str() != keep)
            .min_by_key(|(_, t)| t.used.load(Ordering::Relaxed))
            .map(|(name, _)| name.clone());
        let Some(name) = oldest else { return };
        if let Some(old) = inner.rooms.remove(&name) {
            inner.bytes -= old.bytes;
        }
    }
}

/// The index range of `items` that is exactly the store's answer to `page`, when the tail
/// holds all of it. Same rules as the store's queries: `Before` is the newest `limit` below
/// the id (below nothing: the newest), `After` the oldest `limit` above it, `Around` up to
/// `(limit - 1) / 2` below the id and the rest from the id on.
fn select(
    items: &VecDeque<(i64, Bytes)>,
    whole: bool,
    page: Page,
    limit: usize,
) -> Option<std::ops::Range<usize>> {
    let first = items.front().map(|(id, _)| *id);
    // Index of the first item with an id >= `id`.
    let at = |id: i64| items.partition_point(|(i, _)| *i < id);
    // The newest `n` items below index `end`, if the tail surely has them all.
    let below = |end: usize, n: usize| (end >= n || whole).then(|| end.saturating_sub(n)..end);
    // Every message of the room with an id >= `id` is in the tail.
    let covers_from = |id: i64| whole || first.is_some_and(|f| id >= f);
    match page {
        Page::Before(before) => below(before.map_or(items.len(), at), limit),
        Page::After(after) => {
            let start = at(after.saturating_add(1));
            covers_from(after.saturating_add(1)).then(|| start..(start + limit).min(items.len()))
        }
        Page::Around(id) => {
            let mid = at(id);
            let older = below(mid, limit.saturating_sub(1) / 2)?;
            let newer = limit - older.len();
            covers_from(id).then(|| older.start..(mid + newer).min(items.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(id: i64) -> Bytes {
        Bytes::from(format!("{{\"id\":{id}}}"))
    }

    fn loaded(ids: &[i64], readers: Readers) -> Loaded {
        Loaded {
            readers,
            messages: ids.iter().map(|&id| (id, json(id))).collect(),
        }
    }

    /// The store's answer over the room's full history, as the queries compute it.
    fn model(all: &[i64], page: Page, limit: usize) -> Vec<i64> {
        let before = |b: i64, n: usize| -> Vec<i64> {
            let v: Vec<i64> = all.iter().copied().filter(|&i| i < b).collect();
            v[v.len().saturating_sub(n)..].to_vec()
        };
        let after = |a: i64, n: usize| -> Vec<i64> {
            all.iter().copied().filter(|&i| i > a).take(n).collect()
        };
        match page {
            Page::Before(b) => before(b.unwrap_or(i64::MAX), limit),
            Page::After(a) => after(a, limit),
            Page::Around(id) => {
                let mut v = before(id, limit.saturating_sub(1) / 2);
                let rest = limit - v.len();
                v.extend(after(id - 1, rest));
                v
            }
        }
    }

    fn ids(l: Lookup) -> Option<Vec<i64>> {
        match l {
            Lookup::Page(items) => Some(
                items
                    .iter()
                    .map(|b| {
                        let v: serde_json::Value = serde_json::from_slice(b).unwrap();
                        v["id"].as_i64().unwrap()
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Every page the tail answers equals the store's answer, over a room of `n` messages
    /// with gaps in its ids (other rooms' messages), and it answers the newest page.
    fn check_against_model(n: usize) {
        let all: Vec<i64> = (1..=n as i64).map(|i| i * 3).collect();
        let tails = Tails::default();
        let newest = &all[all.len().saturating_sub(TAIL_LEN)..];
        let t = tails.ticket("r");
        assert!(tails.install("r", t, loaded(newest, Readers::Everyone)));
        let mut anchors: Vec<i64> = (0..=(n as i64 * 3 + 4)).collect();
        anchors.push(i64::MAX);
        for limit in [1usize, 2, 3, 50, 199, 200] {
            let latest = ids(tails.page("r", 1, Page::Before(None), limit as u32));
            assert_eq!(latest, Some(model(&all, Page::Before(None), limit)));
            for &a in &anchors {
                for page in [Page::Before(Some(a)), Page::After(a), Page::Around(a)] {
                    if let Some(got) = ids(tails.page("r", 1, page, limit as u32)) {
                        assert_eq!(got, model(&all, page, limit), "{page:?} limit {limit}");
                    }
                }
            }
        }
    }

    #[test]
    fn pages_from_memory_equal_the_stores_pages() {
        for n in [0, 1, 7, 255, 256, 400] {
            check_against_model(n);
        }
    }

    #[test]
    fn only_members_read_a_private_tail() {
        let tails = Tails::default();
        let t = tails.ticket("p");
        assert!(tails.install("p", t, loaded(&[1, 2], Readers::Members(vec![4, 9]))));
        assert_eq!(
            ids(tails.page("p", 9, Page::Before(None), 50)),
            Some(vec![1, 2])
        );
        assert_eq!(tails.page("p", 5, Page::Before(None), 50), Lookup::Hidden);
        assert_eq!(tails.page("q", 9, Page::Before(None), 50), Lookup::Miss);
    }

    #[test]
    fn a_load_that_raced_a_change_is_not_installed() {
        let tails = Tails::default();
        let t = tails.ticket("r");
        tails.append("r", 5, || Some(json(5)));
        assert!(!tails.install("r", t, loaded(&[1], Readers::Everyone)));
        let t = tails.ticket("r");
        tails.forget("r");
        assert!(!tails.install("r", t, loaded(&[1], Readers::Everyone)));
        let t = tails.ticket("r");
        tails.clear();
        assert!(!tails.install("r", t, loaded(&[1], Readers::Everyone)));
        let t = tails.ticket("r");
        assert!(tails.install("r", t, loaded(&[1, 5], Readers::Everyone)));
        assert_eq!(
            ids(tails.page("r", 1, Page::Before(None), 9)),
            Some(vec![1, 5])
        );
    }

    #[test]
    fn appends_follow_commits_and_trim_the_oldest() {
        let tails = Tails::default();
        let t = tails.ticket("r");
        assert!(tails.install("r", t, loaded(&[1, 2], Readers::Everyone)));
        tails.append("r", 2, || Some(json(2))); // already loaded
        for id in 3..=(TAIL_LEN as i64 + 10) {
            tails.append("r", id, || Some(json(id)));
        }
        let page = ids(tails.page("r", 1, Page::Before(None), 3)).unwrap();
        let last = TAIL_LEN as i64 + 10;
        assert_eq!(page, vec![last - 2, last - 1, last]);
        // Trimmed: the oldest are gone, and a page reaching below the tail is a miss.
        assert_eq!(tails.page("r", 1, Page::After(0), 5), Lookup::Miss);
        assert_eq!(tails.page("r", 1, Page::Before(Some(12)), 5), Lookup::Miss);
        tails.forget("r");
        assert_eq!(tails.page("r", 1, Page::Before(None), 3), Lookup::Miss);
        assert_eq!(tails.size(), (0, 0));
    }

    #[test]
    fn the_budget_evicts_the_least_recently_read_room() {
        let tails = Tails::default();
        let big = Bytes::from(vec![b' '; BUDGET / TAIL_LEN / 3 + 1]);
        let full = |name: &str| {
            let messages = (1..=TAIL_LEN as i64).map(|i| (i, big.clone())).collect();
            let t = tails.ticket(name);
            assert!(tails.install(
                name,
                t,
                Loaded {
                    readers: Readers::Everyone,
                    messages
                }
            ));
        };
        full("a");
        full("b");
        let _ = tails.page("a", 1, Page::Before(None), 1);
        full("c");
        assert_ne!(tails.page("a", 1, Page::Before(None), 1), Lookup::Miss);
        assert_eq!(tails.page("b", 1, Page::Before(None), 1), Lookup::Miss);
        assert!(tails.size().1 <= BUDGET);
    }
}
