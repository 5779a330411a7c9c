//! The log of cluster mode: appending messages at gapless positions, and following the log
//! from any node.
//!
//! [`append`] calls `hearth_append` (schema migration 2) as one statement in its own
//! transaction, so the log head's lock is never held across a round trip to a node: a paused
//! or cut-off node cannot stall the others. Positions commit in order, and the head moves in
//! the same transaction as the rows it covers.
//!
//! A [`Follower`] delivers every position after the one it has applied, in order, exactly
//! once. It never trusts notifications for content: a notification (or a timeout, the tail
//! check) only wakes it, and it then reads the head and every row up to it in one statement
//! (one snapshot).
//! Because every position at or below a visible head is committed, and nothing commits below
//! it later, that read is complete; a lost notification or a dropped listening connection
//! costs at most one tail-check interval. After reconnecting it listens first and reads
//! second, so nothing committed in between is missed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};

/// A message to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRow {
    /// Its room.
    pub room_id: i64,
    /// Its author.
    pub user_id: i64,
    /// Its text.
    pub body: String,
    /// The author's nonce, if any: a retry with the same nonce is stored once.
    pub nonce: Option<String>,
}

/// What became of one appended row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored at this position.
    Stored(i64),
    /// Its nonce was used before by the same author: the message stored then.
    Duplicate(i64),
    /// Its author is not a member of the room (nothing stored).
    NotAMember,
}

/// Append `rows` in order, in one transaction (its own, or the caller's); what became of
/// each, in the same order.
pub fn append(
    client: &mut Client,
    rows: &[NewRow],
    now_ms: i64,
) -> Result<Vec<Appended>, postgres::Error> {
    let rooms: Vec<i64> = rows.iter().map(|r| r.room_id).collect();
    let users: Vec<i64> = rows.iter().map(|r| r.user_id).collect();
    let bodies: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
    let nonces: Vec<Option<&str>> = rows.iter().map(|r| r.nonce.as_deref()).collect();
    append_columns(client, APPEND, (&rooms, &users), (&bodies, &nonces), now_ms)
}

/// The append statement: rooms, authors, bodies, nonces and search vectors as arrays, then
/// the time.
pub const APPEND: &str = "SELECT o_ord, o_id, o_outcome FROM hearth_append($1, $2, $3, $4, $5, $6)";

/// [`append`] for rows given as columns (each the same length), with [`APPEND`] as text or
/// as a statement prepared from it. Each body's search vector is made here, before the
/// statement takes the log head.
pub fn append_columns<S: postgres::ToStatement + ?Sized>(
    client: &mut Client,
    statement: &S,
    (rooms, users): (&[i64], &[i64]),
    (bodies, nonces): (&[&str], &[Option<&str>]),
    now_ms: i64,
) -> Result<Vec<Appended>, postgres::Error> {
    let vectors: Vec<String> = bodies.iter().map(|b| super::words::vector(b)).collect();
    let out = client.query(
        statement,
        &[&rooms, &users, &bodies, &nonces, &vectors, &now_ms],
    )?;
    let mut result = vec![Appended::NotAMember; rooms.len()];
    for row in out {
        let ord: i32 = row.get(0);
        let id: Option<i64> = row.get(1);
        let outcome: i16 = row.get(2);
        let slot = usize::try_from(ord - 1)
            .ok()
            .and_then(|i| result.get_mut(i));
        if let Some(slot) = slot {
            *slot = match (outcome, id) {
                (0, Some(id)) => Appended::Stored(id),
                (1, Some(id)) => Appended::Duplicate(id),
                _ => Appended::NotAMember,
            };
        }
    }
    Ok(result)
}

/// One message of the log, as a follower hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMessage {
    /// Its position (its id).
    pub id: i64,
    /// Its room.
    pub room_id: i64,
    /// Its author.
    pub user_id: i64,
    /// Its text.
    pub body: String,
    /// Its author's nonce.
    pub nonce: Option<String>,
}

/// Follows the log from a position on, over two connections: one that only listens, one that
/// reads.
pub struct Follower {
    config: postgres::Config,
    listener: Option<Client>,
    reader: Client,
    applied: i64,
    tail_check: Duration,
}

/// The notification channel appends signal on.
const CHANNEL: &str = "hearth_log";

impl Follower {
    /// Follow the log at `url` after position `applied`, reading at least every
    /// `tail_check` even when no notification comes.
    pub fn start(url: &str, applied: i64, tail_check: Duration) -> Result<Follower, FollowError> {
        let config: postgres::Config = url.parse().map_err(FollowError::Postgres)?;
        let reader = config.connect(NoTls).map_err(FollowError::Postgres)?;
        let mut f = Follower {
            config,
            listener: None,
            reader,
            applied,
            tail_check,
        };
        f.listen()?;
        Ok(f)
    }

    /// The last position handed out.
    pub fn applied(&self) -> i64 {
        self.applied
    }

    /// (Re)open the listening connection. Listening starts before the next read, so a
    /// commit between the two is read, never missed.
    fn listen(&mut self) -> Result<(), FollowError> {
        let mut c = self.config.connect(NoTls).map_err(FollowError::Postgres)?;
        c.batch_execute(&format!("LISTEN {CHANNEL}"))
            .map_err(FollowError::Postgres)?;
        self.listener = Some(c);
        Ok(())
    }

    /// Wait for news (a notification, or at most the tail-check interval), then hand out
    /// every message after the last one handed out, in position order (possibly none).
    /// A lost listening connection is reopened; what was committed meanwhile is in the read.
    pub fn next_batch(&mut self) -> Result<Vec<LogMessage>, FollowError> {
        let lost = match self.listener.as_mut() {
            None => true,
            Some(l) => {
                let mut notes = l.notifications();
                let woken = notes.timeout_iter(self.tail_check).next();
                match woken {
                    Ok(_) => {
                        // Take whatever else already arrived; one read serves them all.
                        while let Ok(Some(_)) = notes.iter().next() {}
                        false
                    }
                    Err(_) => true,
                }
            }
        };
        if lost || self.listener.as_ref().is_some_and(|l| l.is_closed()) {
            self.listener = None;
            // A listener lost again while it starts is tried again on the next call, after
            // a pause; the read below is complete either way.
            if self.listen().is_err() {
                std::thread::sleep(self.tail_check);
            }
        }
        self.read()
    }

    /// The head and every message after `applied` up to it, from one snapshot: one
    /// statement (one round trip), which PostgreSQL runs on a single snapshot.
    fn read(&mut self) -> Result<Vec<LogMessage>, FollowError> {
        if self.reader.is_closed() {
            self.reader = self.config.connect(NoTls).map_err(FollowError::Postgres)?;
        }
        let rows = self
            .reader
            .query(
                "WITH h AS (SELECT pos FROM hearth_log_head WHERE id = 1) \
                 SELECT h.pos, m.id, m.room_id, m.user_id, m.body, m.nonce FROM h \
                 LEFT JOIN messages m ON m.id > $1 AND m.id <= h.pos ORDER BY m.id",
                &[&self.applied],
            )
            .map_err(FollowError::Postgres)?;
        let Some(head) = rows.first().map(|r| r.get::<_, i64>(0)) else {
            return Ok(Vec::new());
        };
        let out: Vec<LogMessage> = rows
            .iter()
            .filter_map(|r| {
                Some(LogMessage {
                    id: r.get::<_, Option<i64>>(1)?,
                    room_id: r.get(2),
                    user_id: r.get(3),
                    body: r.get(4),
                    nonce: r.get(5),
                })
            })
            .collect();
        self.applied = self.applied.max(head);
        Ok(out)
    }
}

/// Why following stopped.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// PostgreSQL could not be reached or refused a read.
    #[error("postgresql: {0}")]
    Postgres(postgres::Error),
}

/// What a node's writer tells its own log follower, so that the follower never delivers the
/// writer's rows as another node's: a batch's outcomes (acknowledgements, the changes' waiters)
/// reach the hub only through the writer.
#[derive(Debug, Default)]
pub struct Handoff {
    /// Where each batch the writer is committing, or has committed but the follower has not
    /// yet delivered, starts (the head it locked), oldest first. Added before `COMMIT`, so a
    /// follower that reads a batch's rows and then finds it here knows they are on their way.
    /// The writer may commit its next batch before the follower delivered the last one.
    committing: Mutex<VecDeque<i64>>,
    /// The writer has stopped: nothing more comes from it.
    stopped: AtomicBool,
    /// When another node was last heard on the log's channel, and whether PostgreSQL's
    /// notification queue had room then: commits carry their items in several notifications
    /// only while someone else listens (a single node would only parse its own) and the
    /// queue is far from full (a listener that stopped reading holds the queue's tail, and
    /// a full queue fails every commit that notifies).
    others: Mutex<Option<Instant>>,
    queue_has_room: AtomicBool,
}

/// How long after another node was last heard this node still writes for it.
const OTHERS_FORGOTTEN: Duration = Duration::from_secs(15);

/// The share of PostgreSQL's notification queue in use above which commits announce large
/// batches without their items.
pub const QUEUE_ROOM: f64 = 0.05;

impl Handoff {
    fn marks(&self) -> std::sync::MutexGuard<'_, VecDeque<i64>> {
        self.committing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writer is about to commit positions above `after`.
    pub fn committing(&self, after: i64) {
        self.marks().push_back(after);
    }

    /// The batch that locked the head at `after` is delivered (or failed): positions above
    /// it are no longer the writer's to deliver.
    pub fn settled(&self, after: i64) {
        let mut marks = self.marks();
        if let Some(i) = marks.iter().position(|&a| a == after) {
            marks.remove(i);
        }
    }

    /// Whether the batch that locked the head at `after` is the writer's and not yet
    /// delivered.
    pub fn is_mine(&self, after: i64) -> bool {
        self.marks().contains(&after)
    }

    /// Where the writer's oldest batch in flight starts: positions above it arrive with its
    /// outcomes.
    pub fn in_flight(&self) -> Option<i64> {
        self.marks().front().copied()
    }

    /// The writer has stopped.
    pub fn writer_stopped(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Whether the writer has stopped.
    pub fn has_writer_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Another node was heard on the log's channel.
    pub fn heard_another_node(&self) {
        *self.others.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// The share of PostgreSQL's notification queue in use, as last read.
    pub fn queue_usage(&self, usage: f64) {
        self.queue_has_room
            .store(usage < QUEUE_ROOM, Ordering::Relaxed);
    }

    /// Whether another node was heard on the log's channel lately: a commit then says what
    /// it committed in its notification (otherwise nobody would read it: this node's own
    /// batches reach its hub with their outcomes, and a node that starts reads the log).
    pub fn others_listen(&self) -> bool {
        let heard = *self.others.lock().unwrap_or_else(|p| p.into_inner());
        heard.is_some_and(|t| t.elapsed() <= OTHERS_FORGOTTEN)
    }

    /// Whether a commit may send its items in several notifications: another node was
    /// heard lately and the notification queue had room.
    pub fn parts_wanted(&self) -> bool {
        self.queue_has_room.load(Ordering::Relaxed) && self.others_listen()
    }
}

#[cfg(test)]
mod tests {
    use super::Handoff;

    #[test]
    fn a_node_writes_for_others_only_once_it_heard_one_and_in_parts_while_the_queue_has_room() {
        let h = Handoff::default();
        h.queue_usage(0.0);
        assert!(!h.parts_wanted(), "alone until another node is heard");
        assert!(!h.others_listen());
        h.heard_another_node();
        assert!(h.others_listen());
        assert!(h.parts_wanted());
        h.queue_usage(super::QUEUE_ROOM);
        assert!(!h.parts_wanted(), "the notification queue fills up");
        h.queue_usage(0.01);
        assert!(h.parts_wanted());
    }

    #[test]
    fn the_oldest_batch_in_flight_holds_the_follower_back_until_it_is_delivered() {
        let h = Handoff::default();
        assert_eq!(h.in_flight(), None);
        h.committing(10);
        h.committing(14); // committed before the follower delivered the first
        assert_eq!(h.in_flight(), Some(10));
        h.settled(10);
        assert_eq!(h.in_flight(), Some(14));
        h.settled(99); // not in flight: nothing changes
        assert_eq!(h.in_flight(), Some(14));
        h.settled(14);
        assert_eq!(h.in_flight(), None);
    }
}
