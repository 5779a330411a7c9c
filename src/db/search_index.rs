//! The full-text index, kept just behind the messages.
//!
//! Messages are committed without touching the index (its cost used to be two thirds of the
//! message transaction). Right after a batch committed and its outcomes went out, the writer
//! thread indexes every message above the high-water mark (`search_index.indexed_through`) in
//! a second, short transaction that also moves the mark. Under load, when more commands are
//! already queued, that transaction waits for a few more batches (at most [`MAX_DELAY`] or
//! [`MAX_LAG`] messages), so one indexing pass covers several commits. A crash between the two
//! transactions leaves the mark behind: [`Indexer::start`] indexes the rest before the server
//! serves. A failed pass is logged and retried, with a growing pause, until it succeeds.
//!
//! Searches wait (briefly, see [`IndexProgress::caught_up`]) for the index to reach the last
//! message committed when they started, so a search made after a message was acknowledged
//! finds it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::watch;

use super::queries;

/// Longest an indexing pass is put off while the writer's queue is busy.
const MAX_DELAY: Duration = Duration::from_millis(50);
/// Most committed messages an indexing pass is put off for while the writer's queue is busy.
const MAX_LAG: i64 = 16 * 1024;
/// Pause before retrying a failed pass; doubled after each failure, up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Longest pause between two retries of a failing pass.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// How far messages are committed and indexed, shared by the writer and the searches.
pub struct IndexProgress {
    /// The highest message id committed, as the writer last saw it.
    committed: AtomicI64,
    /// The high-water mark of the index, as last committed.
    indexed: watch::Sender<i64>,
}

impl IndexProgress {
    fn new(committed: i64, indexed: i64) -> Self {
        IndexProgress {
            committed: AtomicI64::new(committed),
            indexed: watch::Sender::new(indexed),
        }
    }

    /// Wait until every message committed before this call is in the index, or `limit` has
    /// passed (a failing index must not hold searches forever: they then answer from what
    /// is indexed).
    pub async fn caught_up(&self, limit: Duration) {
        let target = self.committed.load(Ordering::Acquire);
        let mut indexed = self.indexed.subscribe();
        if *indexed.borrow() >= target {
            return;
        }
        let _ = tokio::time::timeout(limit, indexed.wait_for(|at| *at >= target)).await;
    }

    /// The progress of a store whose messages are searchable in their own transaction
    /// (PostgreSQL): always caught up.
    pub(super) fn complete() -> std::sync::Arc<IndexProgress> {
        std::sync::Arc::new(IndexProgress::new(0, 0))
    }

    /// The highest message id the writer saw committed.
    pub fn committed(&self) -> i64 {
        self.committed.load(Ordering::Acquire)
    }

    /// The index's high-water mark as last committed.
    pub fn indexed(&self) -> i64 {
        *self.indexed.borrow()
    }
}

/// The writer thread's side: when to index, and the indexing pass itself.
pub(super) struct Indexer {
    progress: std::sync::Arc<IndexProgress>,
    /// The mark as last committed.
    mark: i64,
    /// The highest message id committed.
    head: i64,
    /// When the first commit not yet indexed was seen.
    behind_since: Option<Instant>,
    /// After a failed pass: when to try again, and the pause after the next failure.
    retry: Option<(Instant, Duration)>,
    /// The connection commits with `synchronous=FULL` (or EXTRA): indexing passes commit
    /// with `NORMAL` instead, see [`Indexer::pass`].
    relax_sync: Option<i64>,
}

impl Indexer {
    /// Read the mark and index whatever lies above it (the messages of a batch whose
    /// indexing pass a crash cut short), before the writer takes its first command. A
    /// failure here is logged and retried by the writer: the server still starts.
    pub(super) fn start(conn: &Connection) -> Indexer {
        let read = |conn: &Connection| -> rusqlite::Result<(i64, i64, i64)> {
            let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
            let mark = queries::search_indexed_through(conn)?;
            Ok((sync, mark, queries::last_message_id(conn)?))
        };
        // Unreadable: a pass (which reads them again) runs at once and, if need be, retries.
        let (sync, mark, head, known) = match read(conn) {
            Ok((sync, mark, head)) => (sync, mark, head, true),
            Err(e) => {
                tracing::error!("cannot read the search index's progress: {e}");
                (2, 0, 0, false)
            }
        };
        let mut indexer = Indexer {
            progress: std::sync::Arc::new(IndexProgress::new(head, mark)),
            mark,
            head,
            behind_since: (head > mark || !known).then(Instant::now),
            retry: None,
            relax_sync: (sync >= 2).then_some(sync),
        };
        if indexer.behind_since.is_some() {
            tracing::info!(
                "indexing the messages after id {mark} for search (the last run stopped first)"
            );
            indexer.index(conn);
        }
        indexer
    }

    /// The progress to share with searches.
    pub(super) fn progress(&self) -> std::sync::Arc<IndexProgress> {
        self.progress.clone()
    }

    /// A batch committed whose highest new message id is `stored` (0: none). Called before
    /// its outcomes are handed on, so a search that follows an acknowledgement waits for it.
    /// Reads the highest id too: a job may have written messages of its own.
    pub(super) fn committed(&mut self, conn: &Connection, stored: i64) {
        let head = match queries::last_message_id(conn) {
            Ok(head) => head.max(stored),
            Err(e) => {
                // A pass reads it again; run one to be sure.
                tracing::warn!("cannot read the last message id: {e}");
                self.behind_since.get_or_insert_with(Instant::now);
                stored
            }
        };
        if head > self.head {
            self.head = head;
            self.progress.committed.fetch_max(head, Ordering::AcqRel);
        }
        if self.head > self.mark && self.behind_since.is_none() {
            self.behind_since = Some(Instant::now());
        }
    }

    /// Whether to index now: something is behind, no retry is pending, and either the queue
    /// is empty (or closing), or the pass was put off long enough.
    pub(super) fn due(&self, queue_empty: bool) -> bool {
        let Some(since) = self.behind_since else {
            return false;
        };
        if self.retry.is_some_and(|(at, _)| Instant::now() < at) {
            return false;
        }
        queue_empty || since.elapsed() >= MAX_DELAY || self.head - self.mark >= MAX_LAG
    }

    /// How long the writer may wait for its next command: forever (`None`) when the index is
    /// complete, else until the next try.
    pub(super) fn patience(&self) -> Option<Duration> {
        self.behind_since?;
        Some(self.retry.map_or(Duration::ZERO, |(at, _)| {
            at.saturating_duration_since(Instant::now())
        }))
    }

    /// One indexing pass; a failure is logged and the pass retried later.
    pub(super) fn index(&mut self, conn: &Connection) {
        match self.pass(conn) {
            Ok((through, n)) => {
                if self.retry.take().is_some() {
                    tracing::info!("search indexing works again");
                }
                tracing::trace!("indexed {n} messages for search, through id {through}");
                self.mark = through;
                self.head = self.head.max(through);
                self.behind_since = None;
                self.progress.indexed.send_replace(through);
            }
            Err(e) => {
                let pause = self.retry.map_or(FIRST_RETRY, |(_, p)| p);
                tracing::error!(
                    "indexing messages for search failed (retrying in {} ms): {e}",
                    pause.as_millis()
                );
                self.retry = Some((Instant::now() + pause, (pause * 2).min(MAX_RETRY)));
            }
        }
    }

    /// Index everything above the mark in one transaction; the new mark and how many
    /// messages were indexed. The transaction commits without waiting for the disk
    /// (`synchronous=NORMAL`) when messages are committed with FULL: in WAL mode a commit
    /// that reaches the disk carries every earlier one with it, so a crash loses this pass
    /// (and its mark, which is then indexed again on start) only if it loses nothing later.
    fn pass(&self, conn: &Connection) -> rusqlite::Result<(i64, usize)> {
        if self.relax_sync.is_some() {
            conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        }
        let result = (|| {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let indexed = queries::last_message_id(conn).and_then(|through| {
                let n = queries::index_messages_through(conn, through)?;
                Ok((through.max(queries::search_indexed_through(conn)?), n))
            });
            match indexed {
                Ok(done) => conn.execute_batch("COMMIT").map(|()| done),
                Err(e) => Err(e),
            }
        })();
        if result.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        if let Some(level) = self.relax_sync {
            if let Err(e) = conn.pragma_update(None, "synchronous", level) {
                tracing::error!("cannot restore synchronous={level} on the writer: {e}");
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{queries, schema, NewAdmin};

    /// A migrated in-memory database with one user, a member of `general`.
    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap().unwrap();
        queries::insert_user(&conn, "ada", "ada", "x", NewAdmin::No, 0)
            .unwrap()
            .unwrap();
        let _ = queries::add_member(&conn, 1, 1, 0);
        conn
    }

    /// Store a message as the writer's message transaction does: not indexed.
    fn post(conn: &Connection, body: &str) -> i64 {
        queries::insert_message(conn, (1, 1), body, (None, None), 0)
            .unwrap()
            .unwrap()
    }

    fn found(conn: &Connection, word: &str) -> Vec<i64> {
        let mut stmt = conn
            .prepare("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 ORDER BY rowid")
            .unwrap();
        let ids = stmt.query_map([word], |r| r.get(0)).unwrap();
        ids.collect::<rusqlite::Result<_>>().unwrap()
    }

    /// FTS5's own check of the index.
    fn assert_consistent(conn: &Connection) {
        conn.execute(
            "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')",
            [],
        )
        .expect("the index is internally consistent");
    }

    /// FTS5's own check of the index, and of the index against the messages table (which
    /// holds only once every message is indexed).
    fn assert_sound(conn: &Connection) {
        assert_consistent(conn);
        conn.execute(
            "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .expect("the index matches the messages");
    }

    fn mark(conn: &Connection) -> i64 {
        queries::search_indexed_through(conn).unwrap()
    }

    #[test]
    fn a_pass_indexes_what_lies_above_the_mark_and_moves_it() {
        let conn = db();
        let mut indexer = Indexer::start(&conn);
        assert_eq!(mark(&conn), 0);
        let a = post(&conn, "apple pie");
        let b = post(&conn, "apple tart");
        assert!(
            found(&conn, "apple").is_empty(),
            "not indexed by the insert"
        );
        indexer.committed(&conn, b);
        assert!(indexer.due(true), "due once the queue is empty");
        assert!(!indexer.due(false), "put off while the queue is busy");
        indexer.index(&conn);
        assert_eq!(found(&conn, "apple"), [a, b]);
        assert_eq!(mark(&conn), b);
        assert_eq!(indexer.progress().indexed(), b);
        assert_eq!(indexer.patience(), None, "nothing left to index");
        assert_sound(&conn);
    }

    #[test]
    fn edits_and_deletions_on_both_sides_of_the_mark_keep_the_index_sound() {
        let conn = db();
        let old_edited = post(&conn, "kiwi one");
        let old_deleted = post(&conn, "kiwi two");
        let old_kept = post(&conn, "kiwi three");
        let mut indexer = Indexer::start(&conn);
        assert_eq!(mark(&conn), old_kept, "indexed on start");
        let new_edited = post(&conn, "mango one");
        let new_deleted = post(&conn, "mango two");
        let new_kept = post(&conn, "mango three");
        // Edits and deletions of messages not indexed yet, and of indexed ones.
        queries::set_message_body(&conn, new_edited, "papaya one", 1).unwrap();
        queries::tombstone_message(&conn, new_deleted).unwrap();
        queries::set_message_body(&conn, old_edited, "plum one", 1).unwrap();
        queries::tombstone_message(&conn, old_deleted).unwrap();
        assert_consistent(&conn);
        assert_eq!(found(&conn, "kiwi"), [old_kept]);
        assert_eq!(found(&conn, "plum"), [old_edited]);
        assert!(found(&conn, "mango").is_empty() && found(&conn, "papaya").is_empty());

        indexer.committed(&conn, new_kept);
        indexer.index(&conn);
        assert_sound(&conn);
        assert_eq!(found(&conn, "mango"), [new_kept], "the current bodies only");
        assert_eq!(found(&conn, "papaya"), [new_edited]);
        assert!(
            found(&conn, "two").is_empty(),
            "deleted messages are not found"
        );
        // Now under the mark: changed through the index.
        queries::set_message_body(&conn, new_edited, "guava", 2).unwrap();
        queries::tombstone_message(&conn, new_kept).unwrap();
        assert_sound(&conn);
        assert_eq!(found(&conn, "guava"), [new_edited]);
        assert!(found(&conn, "papaya").is_empty() && found(&conn, "mango").is_empty());
    }

    #[test]
    fn a_migrated_database_is_indexed_through_its_last_message() {
        let mut conn = Connection::open_in_memory().unwrap();
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().take(5) {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", i + 1).unwrap();
        }
        queries::insert_user(&conn, "ada", "ada", "x", NewAdmin::No, 0)
            .unwrap()
            .unwrap();
        let _ = queries::add_member(&conn, 1, 1, 0);
        let before = post(&conn, "indexed by the old trigger");
        schema::migrate(&mut conn).unwrap().unwrap();
        assert_eq!(mark(&conn), before);
        assert_eq!(found(&conn, "trigger"), [before]);
        let after = post(&conn, "written after the upgrade");
        assert!(
            found(&conn, "upgrade").is_empty(),
            "no insert trigger any more"
        );
        let mut indexer = Indexer::start(&conn);
        assert_eq!(indexer.progress().indexed(), after, "caught up on start");
        indexer.index(&conn);
        assert_eq!(found(&conn, "upgrade"), [after]);
        assert_sound(&conn);
    }

    #[test]
    fn a_failed_pass_keeps_the_mark_and_is_retried() {
        let conn = db();
        let mut indexer = Indexer::start(&conn);
        let id = post(&conn, "quince");
        conn.execute_batch(
            "CREATE TEMP TRIGGER refuse BEFORE UPDATE ON main.search_index \
             BEGIN SELECT RAISE(ABORT, 'disk full, say'); END;",
        )
        .unwrap();
        indexer.committed(&conn, id);
        indexer.index(&conn);
        assert_eq!(mark(&conn), 0, "nothing half done");
        assert!(found(&conn, "quince").is_empty());
        assert!(!indexer.due(true), "waits before retrying");
        assert!(indexer.patience().unwrap() > Duration::ZERO);
        conn.execute_batch("DROP TRIGGER temp.refuse").unwrap();
        std::thread::sleep(indexer.patience().unwrap());
        assert!(indexer.due(true));
        indexer.index(&conn);
        assert_eq!(found(&conn, "quince"), [id]);
        assert_eq!(indexer.patience(), None);
        assert_sound(&conn);
    }

    #[tokio::test]
    async fn opening_the_database_indexes_what_a_crash_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let full = crate::config::Synchronous::Full;
        // The message transaction committed, the indexing pass never ran.
        let ids: Vec<i64> = {
            let conn = crate::db::open_writable(&path, full).unwrap();
            queries::insert_user(&conn, "ada", "ada", "x", NewAdmin::No, 0)
                .unwrap()
                .unwrap();
            let _ = queries::add_member(&conn, 1, 1, 0);
            let ids: Vec<i64> = (0..3)
                .map(|i| post(&conn, &format!("crashed {i}")))
                .collect();
            queries::set_message_body(&conn, ids[1], "crashed and edited", 1).unwrap();
            queries::tombstone_message(&conn, ids[2]).unwrap();
            assert!(found(&conn, "crashed").is_empty());
            ids
        };
        let (commits, _received) = std::sync::mpsc::channel();
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
        let (db, writer) = crate::db::Db::open(&path, full, commits, metrics).unwrap();
        let query = |word: &str| queries::SearchQuery {
            fts: format!("\"{word}\""),
            user_id: 1,
            room_id: None,
            author_key: None,
            before: None,
            offset: 0,
            limit: 10,
            by_relevance: false,
        };
        let hits = db.search(query("crashed"), Duration::from_secs(2)).await;
        let mut hit_ids: Vec<i64> = hits.unwrap().iter().map(|h| h.msg.id).collect();
        hit_ids.sort_unstable();
        assert_eq!(
            hit_ids,
            [ids[0], ids[1]],
            "the deleted message is not found"
        );
        let edited = db.search(query("edited"), Duration::from_secs(2)).await;
        assert_eq!(edited.unwrap().len(), 1);
        writer.shutdown().await;
        let conn = Connection::open(&path).unwrap();
        assert_eq!(mark(&conn), ids[2]);
        assert_sound(&conn);
    }

    #[tokio::test]
    async fn a_search_waits_for_the_index_to_reach_what_was_committed_before_it() {
        let progress = std::sync::Arc::new(IndexProgress::new(0, 0));
        progress.committed.store(5, Ordering::Release);
        let waiting = tokio::spawn({
            let progress = progress.clone();
            async move { progress.caught_up(Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "waits while the index is behind");
        progress.indexed.send_replace(5);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("released once indexed")
            .unwrap();
        progress.committed.store(9, Ordering::Release);
        let started = Instant::now();
        progress.caught_up(Duration::from_millis(50)).await;
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "bounded wait"
        );
    }
}
