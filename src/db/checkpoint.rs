//! WAL checkpoints off the writer thread.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold: the writer
//! would copy a few megabytes of WAL into the database file and sync it while every sender
//! waits for an acknowledgement. The server's writer turns that off; this thread, on a
//! connection of its own, runs a passive checkpoint a few times a second instead. A passive
//! checkpoint waits for nobody: it copies what no reader still needs while the writer goes on
//! appending, and SQLite starts the WAL over once all of it was copied. Durability does not
//! change: a commit is durable in the WAL before it is acknowledged, as before.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// Time between two checkpoints.
const EVERY: Duration = Duration::from_millis(200);

/// How long after the last deletion or edit the write-ahead log is emptied: time for the
/// search index's pass over the same messages to be written too.
const SCRUB_AFTER: Duration = Duration::from_secs(2);

/// The checkpoint thread; stopped (and waited for) when dropped.
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    scrub: Scrub,
}

/// Asks the checkpoint thread to empty the write-ahead log soon. A deleted message's words,
/// or an edited one's earlier words, are overwritten in the database file (`secure_delete`),
/// but the log still holds the pages written when they were stored until it is written over;
/// an emptied log holds nothing.
#[derive(Clone)]
pub(super) struct Scrub {
    /// When the oldest request not yet carried out came, in milliseconds since `start` (0:
    /// none). The oldest one, so that a steady stream of edits cannot put the emptying off.
    asked: Arc<AtomicU64>,
    start: Instant,
}

impl Scrub {
    fn new() -> Scrub {
        Scrub {
            asked: Arc::default(),
            start: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        (self.start.elapsed().as_millis() as u64).max(1)
    }

    /// Text was deleted or replaced: empty the log [`SCRUB_AFTER`] from now (or sooner, for a
    /// request already waiting).
    pub(super) fn ask(&self) {
        let now = self.now();
        let _ = self
            .asked
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The request to act on now, if one is due; taken (a request that comes meanwhile waits
    /// for the next round).
    fn take_due(&self) -> Option<u64> {
        let asked = self.asked.load(Ordering::Acquire);
        let due = asked != 0 && self.now() >= asked + SCRUB_AFTER.as_millis() as u64;
        (due && self
            .asked
            .compare_exchange(asked, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok())
        .then_some(asked)
    }

    /// The request `asked` could not be carried out: it waits again (as the oldest, unless
    /// another came meanwhile, which is then carried out with it).
    fn again(&self, asked: u64) {
        let _ = self
            .asked
            .compare_exchange(0, asked, Ordering::AcqRel, Ordering::Acquire);
    }
}

impl Checkpointer {
    /// Start checkpointing the database at `path` on a connection of its own.
    pub(super) fn start(path: &Path) -> std::io::Result<Checkpointer> {
        let conn = Connection::open(path).map_err(std::io::Error::other)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let scrub = Scrub::new();
        let asked = scrub.clone();
        let thread = std::thread::Builder::new()
            .name("hearth-checkpoint".into())
            .spawn(move || run(&conn, &stopped, &asked))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
            scrub,
        })
    }

    /// Where to ask for the log to be emptied.
    pub(super) fn scrub(&self) -> Scrub {
        self.scrub.clone()
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>, scrub: &Scrub) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
        if let Some(asked) = scrub.take_due() {
            // Copies what is left and truncates the log, once no reader is in the middle of
            // it (else it says busy at once, and the next round tries again).
            match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            }) {
                Ok(0) => {
                    tracing::debug!("write-ahead log emptied after deletions or edits");
                    continue;
                }
                Ok(_) => scrub.again(asked),
                Err(e) => {
                    scrub.again(asked);
                    tracing::warn!("emptying the write-ahead log failed: {e}");
                }
            }
        }
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match done {
            Ok((wal, copied)) => tracing::trace!(wal, copied, "checkpoint"),
            Err(e) => tracing::warn!("checkpoint failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer's WAL is copied into the database by this thread alone, and stopping it
    /// is prompt.
    #[test]
    fn copies_the_wal_into_the_database_and_stops_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; \
                 CREATE TABLE t (x BLOB);",
            )
            .unwrap();
        for _ in 0..200 {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(4000))", [])
                .unwrap();
        }
        let copied = || std::fs::metadata(&path).unwrap().len();
        assert!(copied() < 100_000, "nothing copied before");
        let c = Checkpointer::start(&path).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while copied() < 800_000 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(copied() >= 800_000, "the WAL reached the database file");
        let t = std::time::Instant::now();
        drop(c);
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
