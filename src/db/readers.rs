//! The general read pool: a few threads, each owning one read-only connection, taking jobs
//! from one queue.
//!
//! Reads used to run through `spawn_blocking` on a shared set of connections. Under a burst
//! (hundreds of clients connecting at once, each reading its rooms) that grew the blocking
//! pool to one thread per waiting read, and all of them but four slept on a connection's lock:
//! every read cost a thread wake-up and a few context switches more than its query. Here a
//! burst is a queue: a reader thread that finishes a job takes the next one without sleeping,
//! and the threads are as many as the connections.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;

use super::sql::{Conn, Sql, SqlError};
use super::DbError;

type Job = Box<dyn FnOnce(&Conn) + Send>;

#[derive(Default)]
struct Queue {
    jobs: Mutex<Jobs>,
    ready: Condvar,
}

#[derive(Default)]
struct Jobs {
    waiting: VecDeque<Job>,
    closed: bool,
}

/// Handle to the reader threads; they stop once the last handle is dropped and the queue is
/// empty.
pub(super) struct Readers {
    queue: Arc<Queue>,
}

impl Readers {
    /// One thread per connection.
    pub(super) fn start(conns: Vec<Conn>) -> std::io::Result<Readers> {
        let queue = Arc::new(Queue::default());
        for (i, conn) in conns.into_iter().enumerate() {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("hearth-reader-{i}"))
                .spawn(move || serve(&queue, &conn))?;
        }
        Ok(Readers { queue })
    }

    /// Run `f` on a reader connection; its result, or [`DbError::Task`] if it panicked.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T, SqlError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // A caller that went away (its request was dropped) needs no answer.
            if !tx.is_closed() {
                let _ = tx.send(f(conn).map_err(DbError::from));
            }
        });
        {
            let mut jobs = self
                .queue
                .jobs
                .lock()
                .map_err(|_| DbError::Task("the read queue is poisoned".into()))?;
            jobs.waiting.push_back(job);
        }
        self.queue.ready.notify_one();
        rx.await
            .map_err(|_| DbError::Task("a read failed (the reader panicked)".into()))?
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        if let Ok(mut jobs) = self.queue.jobs.lock() {
            jobs.closed = true;
        }
        self.queue.ready.notify_all();
    }
}

/// A reader thread: take jobs until the queue is closed and empty. A panicking job is
/// contained (its caller sees the dropped answer), and any transaction a job left open is
/// rolled back before the next one.
fn serve(queue: &Queue, conn: &Conn) {
    loop {
        let job = {
            let Ok(mut jobs) = queue.jobs.lock() else {
                return;
            };
            loop {
                if let Some(job) = jobs.waiting.pop_front() {
                    break job;
                }
                if jobs.closed {
                    return;
                }
                jobs = match queue.ready.wait(jobs) {
                    Ok(j) => j,
                    Err(_) => return,
                };
            }
        };
        if catch_unwind(AssertUnwindSafe(|| job(conn))).is_err() {
            tracing::error!("a database read panicked");
        }
        // A job that panicked, or whose COMMIT failed, may have left its transaction open:
        // the next job must not start inside it (nor read its old snapshot).
        if conn.in_transaction() {
            let _ = conn.batch("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::sql::{args, Row as _};

    fn readers(n: usize) -> Readers {
        let conns = (0..n)
            .map(|_| {
                Conn::Lite(rusqlite::Connection::open_in_memory().expect("an in-memory database"))
            })
            .collect();
        Readers::start(conns).expect("reader threads start")
    }

    #[tokio::test]
    async fn many_reads_at_once_are_all_answered() {
        let r = Arc::new(readers(2));
        let mut tasks = Vec::new();
        for i in 0..500i64 {
            let r = r.clone();
            tasks.push(tokio::spawn(async move {
                r.run(move |c| c.row("SELECT ?1 * 2", args![i], |row| row.get::<i64>(0)))
                    .await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap(), Some(i as i64 * 2));
        }
    }

    #[tokio::test]
    async fn a_panicking_read_is_an_error_and_the_reader_goes_on() {
        let r = readers(1);
        let failed = r
            .run(|c| -> Result<i64, SqlError> {
                c.batch("BEGIN")?;
                panic!("a bug in a read")
            })
            .await;
        assert!(matches!(failed, Err(DbError::Task(_))), "{failed:?}");
        // The same (only) connection answers the next read, outside any transaction.
        let ok = r
            .run(|c| {
                Ok((
                    c.in_transaction(),
                    c.row("SELECT 7", args![], |row| row.get::<i64>(0))?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(ok, (false, Some(7)));
    }

    #[tokio::test]
    async fn an_sql_error_comes_back_as_such() {
        let r = readers(1);
        let e = r.run(|c| c.batch("SELEC 1")).await;
        assert!(matches!(e, Err(DbError::Sqlite(_))), "{e:?}");
    }
}
