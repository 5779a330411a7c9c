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
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// Time between two checkpoints.
const EVERY: Duration = Duration::from_millis(200);

/// The checkpoint thread; stopped (and waited for) when dropped.
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Start checkpointing the database at `path` on a connection of its own.
    pub(super) fn start(path: &Path) -> std::io::Result<Checkpointer> {
        let conn = Connection::open(path).map_err(std::io::Error::other)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("hearth-checkpoint".into())
            .spawn(move || run(&conn, &stopped))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
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

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
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
