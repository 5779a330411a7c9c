//! The writer thread: it owns the only write connection, takes everything queued, commits it
//! in one transaction (group commit), then hands the committed messages on for fan-out, and
//! then indexes them for search in a second, short transaction (see [`super::search_index`]).
//!
//! On PostgreSQL (cluster mode) the same writer runs on every node, and the nodes' writers
//! take turns: a batch with messages or ordered changes first locks the log head, so its
//! positions commit in order with every other node's, and its reads (nonces, membership)
//! see everything committed at earlier positions. Searching needs no second transaction
//! there (the index is written with the row), and the commit wakes every node's follower.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::checkpoint::{Checkpointer, Scrub};
use super::pg::log::{Appended, Handoff};
use super::search_index::{IndexProgress, Indexer};
use super::sql::{Conn, Sql, SqlError};
use super::{now_ms, queries, Attachment, Changes, DbError, ReplyTo, StoredMessage};
use crate::events::{Committed, Refusal, SendOutcome};
use crate::metrics::{Metrics, WriteFailure};

/// With the `faults` feature (the test suites' build only): the text of a message whose
/// batch the writer holds for [`FAULT_HOLD`] after its commit, before handing it to the
/// fan-out, as a writer thread that lost its core right after `COMMIT` would.
#[cfg(feature = "faults")]
pub const FAULT_HOLD_BODY: &str = "hearth-fault: hold this batch after its commit";

/// With the `faults` feature: how long [`FAULT_HOLD_BODY`] holds its batch.
#[cfg(feature = "faults")]
pub const FAULT_HOLD: Duration = Duration::from_millis(250);

/// With the `faults` feature: hold a committed batch that stored [`FAULT_HOLD_BODY`].
#[cfg(feature = "faults")]
fn hold_if_asked(out: &[Committed]) {
    let asked = out.iter().any(|c| {
        matches!(c, Committed::Stored { msg, duplicate: false, .. } if msg.body == FAULT_HOLD_BODY)
    });
    if asked {
        std::thread::sleep(FAULT_HOLD);
    }
}

/// Most commands committed in one transaction.
const MAX_BATCH: usize = 4096;
/// Commands waiting for the writer before senders have to wait.
const QUEUE: usize = 16 * 1024;

/// Called with the commit's outcome once the transaction is over.
pub type Reply = Box<dyn FnOnce(Result<(), DbError>) + Send>;
/// Runs inside the transaction (in a savepoint of its own) and says what became of it.
pub type Job = Box<dyn FnOnce(&Conn) -> JobDone + Send>;
/// Runs on the write connection once the transaction committed, outside any transaction and
/// before the writer starts the next one: work that must not happen unless the commit did
/// (removing files), and sees only what is committed.
pub type AfterCommit = Box<dyn FnOnce(&Conn) + Send>;

/// What a [`Job`] did.
pub struct JobDone {
    /// Keep what it wrote; `false` rolls its savepoint back (a refusal or an error).
    pub keep: bool,
    /// How to answer its caller once the transaction is over.
    pub reply: Reply,
    /// The changes the fan-out must apply, in order with the messages around it, once
    /// committed (only when kept).
    pub changes: Option<Changes>,
    /// What to do once committed (only when kept): see [`AfterCommit`].
    pub after: Option<AfterCommit>,
}

impl JobDone {
    /// A job's outcome: whether to keep its writes, its answer, and its changes.
    pub fn new(
        keep: bool,
        reply: impl FnOnce(Result<(), DbError>) + Send + 'static,
        changes: Option<Changes>,
    ) -> Self {
        JobDone {
            keep,
            reply: Box::new(reply),
            changes,
            after: None,
        }
    }

    /// The same, with `after` run once the transaction committed.
    pub fn then(mut self, after: impl FnOnce(&Conn) + Send + 'static) -> Self {
        self.after = Some(Box::new(after));
        self
    }
}

/// A message a connection wants stored.
#[derive(Debug)]
pub struct NewMessage {
    /// Room row id.
    pub room_id: i64,
    /// Room name, for the frame.
    pub room: Arc<str>,
    /// Author row id.
    pub user_id: i64,
    /// Author name, for the frame.
    pub username: Arc<str>,
    /// Trimmed, validated body.
    pub body: String,
    /// Client nonce for de-duplication.
    pub nonce: Option<String>,
    /// The message it answers, checked inside the transaction (same room, not deleted).
    pub reply_to: Option<i64>,
    /// Ids of the author's uploads sent with it, checked inside the transaction (the
    /// author's, not sent before).
    pub attachments: Vec<String>,
    /// For a body that says `@here`: the case-folded names of the room's members who were
    /// online when it was sent, mentioned like `@name` (the author and anyone who is no longer
    /// a member are skipped). Empty otherwise.
    pub here: Vec<String>,
    /// The connection that sent it (for acknowledgements and errors); 0 for none.
    pub origin: u64,
    /// Told the outcome once the transaction is over (a send over HTTP, which has no
    /// connection to acknowledge on).
    pub answer: Option<tokio::sync::oneshot::Sender<SendOutcome>>,
    /// When it was queued, for the send-to-commit latency metric.
    pub queued_at: Instant,
}

pub(super) enum WriteCmd {
    Message(NewMessage),
    /// A job, and whether its changes are ordered with messages (see [`super::Db::transact`]).
    Exec(Job, bool),
    /// Answered by the hub once it has delivered everything committed before it (runs no
    /// SQL): see [`super::Db::barrier`].
    Barrier(tokio::sync::oneshot::Sender<()>),
    Shutdown,
}

/// Owned by the server; stops the writer after it committed everything queued.
pub struct WriterHandle {
    tx: mpsc::Sender<WriteCmd>,
    thread: Option<JoinHandle<()>>,
}

impl WriterHandle {
    /// Commit everything already queued, then stop the thread and wait for it.
    pub async fn shutdown(mut self) {
        let _ = self.tx.send(WriteCmd::Shutdown).await;
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for WriterHandle {
    /// A handle dropped without [`WriterHandle::shutdown`] (a server dropped as a whole)
    /// still stops the writer once it has committed what is queued; without it, the writer
    /// and the fan-out (which holds the store) would keep each other, and the database's
    /// connections, alive.
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.tx.try_send(WriteCmd::Shutdown);
        }
    }
}

/// Index what a crash left unindexed (SQLite), then start the writer thread on `conn`; its
/// queue, the handle that stops it, and the search index's progress.
pub(super) fn spawn(
    conn: Conn,
    commits: std::sync::mpsc::Sender<Vec<Committed>>,
    metrics: Arc<Metrics>,
    (webhooks, handoff): (Arc<AtomicUsize>, Option<Arc<Handoff>>),
) -> std::io::Result<(mpsc::Sender<WriteCmd>, WriterHandle, Arc<IndexProgress>)> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let indexer = conn.lite().map(Indexer::start);
    let progress = indexer
        .as_ref()
        .map_or_else(IndexProgress::complete, Indexer::progress);
    // Checkpoints run on their own thread, never inside a commit (see `checkpoint`). An
    // in-memory database has no WAL and nothing to checkpoint.
    let checkpoints = match conn.lite().and_then(|c| c.path()).filter(|p| !p.is_empty()) {
        Some(path) => {
            if let Some(lite) = conn.lite() {
                lite.pragma_update(None, "wal_autocheckpoint", 0)
                    .map_err(std::io::Error::other)?;
            }
            Some(Checkpointer::start(std::path::Path::new(path))?)
        }
        None => None,
    };
    let scrub = checkpoints.as_ref().map(Checkpointer::scrub);
    let thread = std::thread::Builder::new()
        .name("hearth-writer".into())
        .spawn(move || {
            run(
                &conn,
                rx,
                (commits, metrics),
                (indexer, &webhooks, handoff.as_deref()),
                scrub.as_ref(),
            );
            if let Some(h) = &handoff {
                h.writer_stopped();
            }
            drop(checkpoints);
            if let Some(lite) = conn.lite() {
                if let Err(e) = lite.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
                    tracing::warn!("checkpoint at shutdown failed: {e}");
                }
            }
            tracing::debug!("writer stopped");
        })?;
    Ok((
        tx.clone(),
        WriterHandle {
            tx,
            thread: Some(thread),
        },
        progress,
    ))
}

/// What the writer's wait for work ended with.
enum Next {
    /// A command.
    Command(WriteCmd),
    /// Nothing came before an indexing pass was due.
    Idle,
    /// Every sender is gone.
    Closed,
}

/// Wait for the next command: for as long as it takes when the search index is complete,
/// else only until the indexer's next pass is due (at once if it is due already, though a
/// command that is queued comes first). Without a `timer`, always as long as it takes.
fn next_command(
    rx: &mut mpsc::Receiver<WriteCmd>,
    timer: Option<&tokio::runtime::Runtime>,
    patience: Option<Duration>,
) -> Next {
    let (Some(timer), Some(wait)) = (timer, patience) else {
        return rx.blocking_recv().map_or(Next::Closed, Next::Command);
    };
    match timer.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
        Ok(Some(cmd)) => Next::Command(cmd),
        Ok(None) => Next::Closed,
        Err(_) => Next::Idle,
    }
}

/// The writer thread's loop: wait for work, take everything else already queued (up to
/// [`MAX_BATCH`]) and commit it as one transaction. Under load, batches grow by themselves
/// while a commit's fsync is in flight, so the cost of durability is shared by every message
/// queued meanwhile; idle, a lone message is committed at once. Once a batch's outcomes are
/// handed on, its messages are indexed for search (put off for a few batches while more
/// commands are queued).
/// Whether a committed batch deleted a message or replaced its text (whose earlier words
/// the write-ahead log may still hold).
fn removes_text(out: &[Committed]) -> bool {
    out.iter().any(|c| match c {
        Committed::Changed(c) => c.changes.iter().any(|ch| {
            matches!(
                ch,
                crate::events::Change::Message { change, .. }
                    if matches!(
                        change.kind,
                        crate::model::ChangeKind::Edited { .. } | crate::model::ChangeKind::Deleted { .. }
                    )
            )
        }),
        _ => false,
    })
}

fn run(
    conn: &Conn,
    mut rx: mpsc::Receiver<WriteCmd>,
    (commits, metrics): (std::sync::mpsc::Sender<Vec<Committed>>, Arc<Metrics>),
    (mut indexer, webhooks, handoff): (Option<Indexer>, &AtomicUsize, Option<&Handoff>),
    scrub: Option<&Scrub>,
) {
    let timer = writer_timer();
    let mut batch = Vec::with_capacity(64);
    let mut stopping = false;
    let patience = |i: &Option<Indexer>| i.as_ref().and_then(Indexer::patience);
    while !stopping {
        match next_command(&mut rx, timer.as_ref(), patience(&indexer)) {
            Next::Command(cmd) => batch.push(cmd),
            Next::Idle => {
                index(conn, &mut indexer);
                continue;
            }
            Next::Closed => break,
        }
        stopping = take_queued(&mut rx, &mut batch);
        metrics.batch_size.observe(batch.len() as f64);
        let queued: Vec<Instant> = batch
            .iter()
            .filter_map(|c| match c {
                WriteCmd::Message(m) => Some(m.queued_at),
                _ => None,
            })
            .collect();
        let (out, result) = commit_batch(conn, &mut batch, (&mut indexer, handoff), webhooks);
        record(&metrics, &out, result, &queued);
        if let Some(scrub) = scrub.filter(|_| removes_text(&out)) {
            scrub.ask();
        }
        #[cfg(feature = "faults")]
        hold_if_asked(&out);
        if !out.is_empty() && commits.send(out).is_err() {
            tracing::warn!("fan-out has stopped; committed messages are not delivered live");
        }
        let queue_empty = stopping || rx.is_empty();
        if indexer.as_ref().is_some_and(|i| i.due(queue_empty)) {
            index(conn, &mut indexer);
        }
    }
    if patience(&indexer).is_some() {
        index(conn, &mut indexer); // one last try, so a clean stop leaves the index complete
    }
}

/// An indexing pass, on SQLite (which has an index to keep).
fn index(conn: &Conn, indexer: &mut Option<Indexer>) {
    if let (Some(lite), Some(indexer)) = (conn.lite(), indexer.as_mut()) {
        indexer.index(lite);
    }
}

/// A runtime of the writer's own, only for its timed waits while an indexing pass waits for
/// a retry. Should it fail to start, a failed pass is retried after the next write instead.
fn writer_timer() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| {
            tracing::error!("the writer has no timer; indexing retries wait for writes: {e}")
        })
        .ok()
}

/// Add what is queued already to `batch`. On a shutdown request, take everything still queued
/// and close the queue, so later senders are refused rather than lost; returns whether the
/// writer is stopping.
fn take_queued(rx: &mut mpsc::Receiver<WriteCmd>, batch: &mut Vec<WriteCmd>) -> bool {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(cmd) => batch.push(cmd),
            Err(_) => break,
        }
    }
    if !batch.iter().any(|c| matches!(c, WriteCmd::Shutdown)) {
        return false;
    }
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        batch.push(cmd);
    }
    true
}

/// Metrics of one committed (or failed) batch.
fn record(metrics: &Metrics, out: &[Committed], result: Result<(), String>, queued: &[Instant]) {
    // Remember a failure until a batch with messages commits again: a passing health probe
    // alone does not prove messages can be stored (e.g. the database may not grow), so
    // `/healthz` trusts one only a while after the failure.
    if result.is_err() || !queued.is_empty() {
        if let Ok(mut e) = metrics.write_error.lock() {
            *e = result.err().map(|why| WriteFailure {
                why,
                at: Instant::now(),
            });
        }
    }
    let stored = out
        .iter()
        .filter(|c| {
            matches!(
                c,
                Committed::Stored {
                    duplicate: false,
                    ..
                }
            )
        })
        .count();
    metrics
        .messages_stored
        .fetch_add(stored as u64, Ordering::Relaxed);
    if stored > 0 {
        for t in queued {
            metrics.commit_latency.observe(t.elapsed().as_secs_f64());
        }
    }
}

/// What one transaction has produced so far.
#[derive(Default)]
struct Pass {
    /// Message outcomes and changes, in the order they were written.
    outcomes: Vec<Committed>,
    /// Answers to the jobs, sent once the transaction is over.
    replies: Vec<Reply>,
    /// What kept jobs want done once the transaction committed.
    after: Vec<AfterCommit>,
    /// Messages whose sender waits for their outcome, and its index in `outcomes`.
    answers: Vec<(tokio::sync::oneshot::Sender<SendOutcome>, usize)>,
    /// The first statement error, if any; some (disk full, I/O) make SQLite roll the whole
    /// transaction back, after which nothing more may run in it.
    first_error: Option<String>,
    /// On PostgreSQL, the hub events this pass stored: (position, changes as JSON).
    logged: Vec<(i64, String)>,
}

/// Start the batch's transaction. On PostgreSQL, a batch that stores messages or ordered
/// changes locks the log head first: the other nodes' writers wait for its commit, so
/// positions commit in order, and everything it reads (nonces, memberships, the state of
/// the messages it changes) is as of every earlier position.
/// On PostgreSQL, returns the log head as locked (`None`: not locked).
fn begin(conn: &Conn, batch: &[WriteCmd]) -> Result<Option<i64>, SqlError> {
    if !conn.is_postgres() {
        return conn.batch("BEGIN IMMEDIATE").map(|()| None);
    }
    let ordered = batch
        .iter()
        .any(|c| matches!(c, WriteCmd::Message(_) | WriteCmd::Exec(_, true)));
    match conn {
        // One round trip for both.
        Conn::Pg(pg) if ordered => {
            let head = pg.begin_with(queries::LOCK_LOG_HEAD)?;
            match head.and_then(|h| h.parse::<i64>().ok()) {
                Some(head) => Ok(Some(head)),
                None => {
                    let _ = conn.batch("ROLLBACK");
                    Err(SqlError::Pg(<super::sql::PgConn as Sql>::missing(
                        "the log head",
                    )))
                }
            }
        }
        _ => conn.batch("BEGIN").map(|()| None),
    }
}

/// Commit the batch's transaction. On PostgreSQL, a batch that locked the log head at
/// `locked` and took positions wakes every node's follower with the commit (a notification
/// is sent if and only if its transaction commits, in commit order; it carries the positions
/// and, while another node listens ([`Handoff::others_listen`]), what was committed there,
/// which the followers would otherwise read from the log: in one notification of up to
/// [`queries::NOTIFY_ITEMS_MAX`] bytes or, while the queue has room too
/// ([`Handoff::parts_wanted`]), in several), and tells this
/// node's follower, before the commit, that positions above `locked` are its own and arrive
/// with its outcomes. Returns the positions taken.
fn commit(
    conn: &Conn,
    locked: Option<i64>,
    handoff: Option<&Handoff>,
    pass: &Pass,
) -> Result<Option<(i64, i64)>, SqlError> {
    let (Some(after), Conn::Pg(pg)) = (locked, conn) else {
        conn.batch("COMMIT")?;
        return Ok(None);
    };
    // Items only when another node listens, and in several notifications only when the
    // queue has room too.
    let max_parts = match handoff {
        Some(h) if !h.others_listen() => 0,
        Some(h) if h.parts_wanted() => queries::NOTIFY_PARTS_MAX,
        _ => 1,
    };
    let items = if max_parts == 0 {
        None
    } else {
        notice_items(after, pass, max_parts)
    };
    // The notification and the commit in one round trip; the follower learns first that
    // whatever this batch took above `after` is on its way with its outcomes.
    if let Some(h) = handoff {
        h.committing(after);
    }
    let upto = pg
        .commit_with(&queries::notify_log_sql(after, items.as_deref()))?
        .and_then(|p| p.parse::<i64>().ok())
        .unwrap_or(after);
    if let Some(h) = handoff.filter(|_| upto <= after) {
        h.settled(after); // took nothing
    }
    Ok(Some((after, upto)))
}

/// Run one transaction over `batch` (emptying it); returns the message outcomes and whether
/// the transaction committed. Once it committed, `indexer` learns of its messages before
/// anyone is answered.
fn commit_batch(
    conn: &Conn,
    batch: &mut Vec<WriteCmd>,
    (indexer, handoff): (&mut Option<Indexer>, Option<&Handoff>),
    webhooks: &AtomicUsize,
) -> (Vec<Committed>, Result<(), String>) {
    let now = now_ms();
    let mut pass = Pass::default();
    let locked = match begin(conn, batch) {
        Ok(locked) => locked,
        Err(e) => {
            tracing::error!("cannot start a write transaction: {e}");
            if conn.in_transaction() {
                let _ = conn.batch("ROLLBACK");
            }
            fail_all(batch.drain(..), &mut pass.outcomes);
            return (pass.outcomes, Err(e.to_string()));
        }
    };
    let mut cmds = batch.drain(..).peekable();
    while let Some(cmd) = cmds.next() {
        match cmd {
            WriteCmd::Message(m) if conn.is_postgres() && plain(&m) => {
                // A run of plain messages: one statement on PostgreSQL (which queues them
                // for the room's webhooks too).
                let mut run = vec![m];
                while run.len() < MAX_RUN {
                    match cmds.next_if(|c| matches!(c, WriteCmd::Message(n) if plain(n))) {
                        Some(WriteCmd::Message(n)) => run.push(n),
                        _ => break,
                    }
                }
                append_run(conn, run, now, &mut pass);
            }
            WriteCmd::Message(mut m) => {
                if let Some(answer) = m.answer.take() {
                    pass.answers.push((answer, pass.outcomes.len()));
                }
                // Read per message: a webhook added by a job earlier in this batch counts.
                // On PostgreSQL the message's own insert queues it for its room's webhooks
                // (another node may have added one this node has not heard of).
                let hooked = !conn.is_postgres() && webhooks.load(Ordering::Acquire) > 0;
                let outcome = store_message(conn, m, (now, hooked), &mut pass.first_error);
                pass.outcomes.push(outcome);
            }
            WriteCmd::Exec(job, _) => run_job(conn, job, &mut pass),
            // No change: only its place among the outcomes, which the hub answers in turn.
            WriteCmd::Barrier(applied) => pass.outcomes.push(Committed::Changed(Changes {
                changes: Vec::new(),
                applied,
            })),
            WriteCmd::Shutdown => {}
        }
        if !conn.usable_transaction() {
            break; // the transaction is gone (or, on PostgreSQL, failed)
        }
    }
    fail_all(cmds, &mut pass.outcomes);
    let committed = if !conn.usable_transaction() {
        Err(pass
            .first_error
            .clone()
            .unwrap_or_else(|| "the transaction was rolled back".into()))
    } else {
        commit(conn, locked, handoff, &pass).map_err(|e| e.to_string())
    };
    match committed {
        Ok(span) => {
            if let (Some(indexer), Some(lite)) = (indexer.as_mut(), conn.lite()) {
                indexer.committed(lite, newest_stored(&pass.outcomes));
            }
            for after in std::mem::take(&mut pass.after) {
                after(conn);
            }
            let (mut outcomes, result) = committed_pass(pass);
            if let Some((after, upto)) = span.filter(|(after, upto)| upto > after) {
                outcomes.insert(0, Committed::Logged { after, upto });
            }
            (outcomes, result)
        }
        Err(e) => {
            // Nothing of this batch arrives: the follower must not wait for it.
            if let (Some(h), Some(after)) = (handoff, locked) {
                h.settled(after);
            }
            failed_pass(conn, pass, e)
        }
    }
}

/// The highest id of a message these outcomes stored (0: none).
fn newest_stored(outcomes: &[Committed]) -> i64 {
    outcomes
        .iter()
        .filter_map(|c| match c {
            Committed::Stored { msg, .. } => Some(msg.id),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// Run a job in a savepoint of its own, so a refusal undoes only what it wrote. On
/// PostgreSQL, the changes of a kept job that other nodes must apply take a position of
/// their own in the log (see [`log_changes`]).
fn run_job(conn: &Conn, job: Job, pass: &mut Pass) {
    if let Err(e) = conn.batch("SAVEPOINT job") {
        pass.first_error.get_or_insert(e.to_string());
    }
    let mut done = job(conn);
    if done.keep && conn.is_postgres() {
        if let Some(changes) = &done.changes {
            match log_changes(conn, &changes.changes) {
                Ok(Some(event)) => pass.logged.push(event),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!("cannot log the hub's changes: {e}");
                    pass.first_error.get_or_insert(e.to_string());
                    done.keep = false;
                }
            }
        }
    }
    if let Some(changes) = done.changes.filter(|_| done.keep) {
        pass.outcomes.push(Committed::Changed(changes));
    }
    let end = if done.keep {
        "RELEASE job"
    } else {
        pass.first_error.get_or_insert("a write failed".into());
        "ROLLBACK TO job; RELEASE job"
    };
    if let Err(e) = conn.batch(end) {
        pass.first_error.get_or_insert(e.to_string());
    }
    if let Some(after) = done.after.filter(|_| done.keep) {
        pass.after.push(after);
    }
    pass.replies.push(done.reply);
}

/// Store `changes` (those every connection's node must apply, not the answers to one
/// connection) as one hub event. Changes to messages already took positions of their own
/// (their rows in the change log): the event shares the last of them, so an edit or a
/// reaction takes one position on either store. Others (joins, leaves, rooms, read markers)
/// take the next position.
fn log_changes(
    conn: &Conn,
    changes: &[crate::events::Change],
) -> Result<Option<(i64, String)>, SqlError> {
    use crate::events::{Audience, Change};
    let shared: Vec<&Change> = changes
        .iter()
        .filter(|c| {
            !matches!(
                c,
                Change::Message {
                    audience: Audience::Only(_),
                    ..
                }
            )
        })
        .collect();
    if shared.is_empty() {
        return Ok(None);
    }
    let json = serde_json::to_string(&shared)
        .map_err(|e| SqlError::Io(std::io::Error::other(e.to_string())))?;
    let last_change = shared
        .iter()
        .filter_map(|c| match c {
            Change::Message { change, .. } => Some(change.seq),
            _ => None,
        })
        .max();
    let pos = match last_change {
        Some(seq) => seq,
        None => queries::next_position(conn)?,
    };
    queries::insert_hub_event(conn, pos, &json)?;
    Ok(Some((pos, json)))
}

/// What a batch that locked the log head at `after` committed, as its notification carries
/// it: JSON arrays in position order of `{"m": message, "n": members mentioned}` and
/// `{"p": position, "c": changes}`, cut into at most `max_parts` parts of at most
/// [`queries::NOTIFY_ITEMS_MAX`] bytes; `None` when an item alone is larger than a part, when
/// more parts would be needed, or when a message cannot be written: the batch is then
/// announced without its items. Items are written one by one and only while they fit.
fn notice_items(after: i64, pass: &Pass, max_parts: usize) -> Option<Vec<String>> {
    enum Item<'a> {
        Message(&'a StoredMessage, &'a [i64]),
        Event(i64, &'a str),
    }
    let mut items: Vec<(i64, Item<'_>)> = Vec::new();
    for c in &pass.outcomes {
        if let Committed::Stored {
            msg,
            duplicate: false,
            mentioned,
            ..
        } = c
        {
            if msg.id > after {
                items.push((msg.id, Item::Message(msg, mentioned)));
            }
        }
    }
    for (pos, json) in &pass.logged {
        items.push((*pos, Item::Event(*pos, json)));
    }
    items.sort_by_key(|(pos, _)| *pos);
    let written = items.into_iter().map(|(_, item)| match item {
        Item::Message(msg, mentioned) => {
            let m = serde_json::to_string(msg).ok()?;
            let n = serde_json::to_string(mentioned).ok()?;
            Some(format!(r#"{{"m":{m},"n":{n}}}"#))
        }
        Item::Event(pos, json) => Some(format!(r#"{{"p":{pos},"c":{json}}}"#)),
    });
    pack_parts(written, max_parts)
}

/// JSON arrays of `items`, in order, each at most [`queries::NOTIFY_ITEMS_MAX`] bytes; `None`
/// when an item is `None` or does not fit in one part, or more than `max_parts` parts would
/// be needed (the rest of `items` is then not taken).
fn pack_parts(
    items: impl Iterator<Item = Option<String>>,
    max_parts: usize,
) -> Option<Vec<String>> {
    let mut parts = vec![String::from("[")];
    for item in items {
        let item = item?;
        if item.len() + 2 > queries::NOTIFY_ITEMS_MAX {
            return None;
        }
        let part = parts.last_mut()?;
        // The item, a comma unless it is the part's first, and the closing bracket.
        let comma = usize::from(part.len() > 1);
        if part.len() + comma + item.len() + 1 > queries::NOTIFY_ITEMS_MAX {
            part.push(']');
            if parts.len() >= max_parts {
                return None;
            }
            parts.push(String::from("["));
        }
        let part = parts.last_mut()?;
        if part.len() > 1 {
            part.push(',');
        }
        part.push_str(&item);
    }
    parts.last_mut()?.push(']');
    Some(parts)
}

fn committed_pass(pass: Pass) -> (Vec<Committed>, Result<(), String>) {
    for r in pass.replies {
        r(Ok(()));
    }
    for (answer, i) in pass.answers {
        let outcome = match &pass.outcomes[i] {
            Committed::Stored { msg, .. } => SendOutcome::Stored(msg.clone()),
            Committed::Refused { reason, .. } => SendOutcome::Refused(*reason),
            _ => SendOutcome::Failed,
        };
        let _ = answer.send(outcome);
    }
    // SQLite may undo only the failing statement (e.g. disk full while inserting a message's
    // mentions) and commit the rest: still a failed write for the health check.
    let refused = pass
        .outcomes
        .iter()
        .any(|c| matches!(c, Committed::Failed { .. }));
    match pass.first_error {
        Some(e) if refused => (pass.outcomes, Err(e)),
        _ => (pass.outcomes, Ok(())),
    }
}

fn failed_pass(conn: &Conn, pass: Pass, e: String) -> (Vec<Committed>, Result<(), String>) {
    let mut outcomes = pass.outcomes;
    outcomes.retain(|c| !matches!(c, Committed::Changed(_)));
    tracing::error!("commit failed, {} messages refused: {e}", outcomes.len());
    if conn.in_transaction() {
        let _ = conn.batch("ROLLBACK");
    }
    for r in pass.replies {
        r(Err(DbError::Commit(e.clone())));
    }
    for (answer, _) in pass.answers {
        let _ = answer.send(SendOutcome::Failed);
    }
    // Nothing from this batch is acknowledged, not even a "duplicate": its original may have
    // been inserted earlier in this same, now rolled back, transaction. A retry with the same
    // nonce finds whatever really is stored.
    let failed = outcomes
        .into_iter()
        .map(|c| match c {
            Committed::Stored { msg, origin, .. } => Committed::Failed {
                origin,
                nonce: msg.nonce,
            },
            failed => failed,
        })
        .collect();
    (failed, Err(e))
}

/// Most messages one append statement stores.
const MAX_RUN: usize = 1024;

/// Whether a message is only a body in a room (no reply, attachment or possible mention):
/// what the log's append statement stores by itself, webhook deliveries included.
fn plain(m: &NewMessage) -> bool {
    m.reply_to.is_none() && m.attachments.is_empty() && m.here.is_empty() && !m.body.contains('@')
}

/// Store a run of plain messages on PostgreSQL in one statement (`hearth_append`: nonces,
/// membership and positions decided after the head's lock, as one message at a time would),
/// and record each one's outcome.
fn append_run(conn: &Conn, run: Vec<NewMessage>, now: i64, pass: &mut Pass) {
    let Conn::Pg(pg) = conn else {
        return;
    };
    let rooms: Vec<i64> = run.iter().map(|m| m.room_id).collect();
    let users: Vec<i64> = run.iter().map(|m| m.user_id).collect();
    let bodies: Vec<&str> = run.iter().map(|m| m.body.as_str()).collect();
    let nonces: Vec<Option<&str>> = run.iter().map(|m| m.nonce.as_deref()).collect();
    let appended = pg.run_prepared(super::pg::log::APPEND, |client, append| {
        super::pg::log::append_columns(client, append, (&rooms, &users), (&bodies, &nonces), now)
    });
    let appended = match appended {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("message append failed: {e}");
            pass.first_error.get_or_insert(e.to_string());
            for mut m in run {
                if let Some(answer) = m.answer.take() {
                    pass.answers.push((answer, pass.outcomes.len()));
                }
                pass.outcomes.push(Committed::Failed {
                    origin: m.origin,
                    nonce: m.nonce,
                });
            }
            return;
        }
    };
    for (mut m, outcome) in run.into_iter().zip(appended) {
        if let Some(answer) = m.answer.take() {
            pass.answers.push((answer, pass.outcomes.len()));
        }
        let committed = match outcome {
            Appended::Stored(id) => stored(
                m,
                StoredAs {
                    id,
                    reply: None,
                    mentioned: Vec::new(),
                    attachments: Vec::new(),
                },
                now,
            ),
            Appended::Duplicate(id) => match queries::message_by_id(conn, id) {
                Ok(Some((msg, _))) => Committed::Stored {
                    msg,
                    origin: m.origin,
                    duplicate: true,
                    mentioned: Vec::new(),
                },
                found => {
                    if let Err(e) = found {
                        pass.first_error.get_or_insert(e.to_string());
                    }
                    Committed::Failed {
                        origin: m.origin,
                        nonce: m.nonce,
                    }
                }
            },
            Appended::NotAMember => {
                let public = queries::room_is_public(conn, m.room_id).unwrap_or_else(|e| {
                    pass.first_error.get_or_insert(e.to_string());
                    false
                });
                Committed::Refused {
                    origin: m.origin,
                    nonce: m.nonce,
                    reason: Refusal::NotMember { public },
                }
            }
        };
        pass.outcomes.push(committed);
    }
}

/// Store one message, or find it already stored under its nonce.
fn store_message(
    conn: &Conn,
    m: NewMessage,
    (now, hooked): (i64, bool),
    first_error: &mut Option<String>,
) -> Committed {
    match stored_before(conn, &m) {
        Ok(Some(msg)) => {
            return Committed::Stored {
                msg,
                origin: m.origin,
                duplicate: true,
                mentioned: Vec::new(),
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!("nonce lookup failed: {e}");
            first_error.get_or_insert(e.to_string());
            return Committed::Failed {
                origin: m.origin,
                nonce: m.nonce,
            };
        }
    }
    match insert_message(conn, &m, (now, hooked)) {
        Ok(Inserted::NotMember) => {
            let public = queries::room_is_public(conn, m.room_id).unwrap_or_else(|e| {
                tracing::error!("room lookup failed: {e}");
                first_error.get_or_insert(e.to_string());
                false
            });
            Committed::Refused {
                origin: m.origin,
                nonce: m.nonce,
                reason: Refusal::NotMember { public },
            }
        }
        Ok(Inserted::UnknownReply) => Committed::Refused {
            origin: m.origin,
            nonce: m.nonce,
            reason: Refusal::UnknownReply,
        },
        Ok(Inserted::UnknownUpload) => Committed::Refused {
            origin: m.origin,
            nonce: m.nonce,
            reason: Refusal::UnknownUpload,
        },
        Ok(Inserted::Stored(stored_as)) => stored(m, stored_as, now),
        Err(e) => {
            tracing::error!("message insert failed: {e}");
            first_error.get_or_insert(e.to_string());
            Committed::Failed {
                origin: m.origin,
                nonce: m.nonce,
            }
        }
    }
}

/// The message this author already stored under the same nonce (a retry).
fn stored_before(conn: &Conn, m: &NewMessage) -> Result<Option<StoredMessage>, SqlError> {
    match &m.nonce {
        Some(nonce) => queries::message_by_nonce(conn, m.user_id, nonce),
        None => Ok(None),
    }
}

/// What became of an insert.
enum Inserted {
    /// Stored.
    Stored(StoredAs),
    /// The author is no longer a member of the room.
    NotMember,
    /// The message it answers is not in the room, or deleted.
    UnknownReply,
    /// An attachment is not one of the author's unsent uploads.
    UnknownUpload,
}

/// What storing a message gave it: its id, the message it answers, the members it mentions
/// and its attachments.
struct StoredAs {
    id: i64,
    reply: Option<ReplyTo>,
    mentioned: Vec<i64>,
    attachments: Vec<Attachment>,
}

/// Insert the message, its mentions and attachments, and (`hooked`: the server has outgoing
/// webhooks, on SQLite) the deliveries it owes its room's webhooks. On PostgreSQL the
/// message's insert queues those itself.
fn insert_message(
    conn: &Conn,
    m: &NewMessage,
    (now, hooked): (i64, bool),
) -> Result<Inserted, SqlError> {
    let reply = match m.reply_to {
        Some(id) => match queries::reply_target(conn, id, m.room_id)? {
            Some(reply) => Some(reply),
            None => return Ok(Inserted::UnknownReply),
        },
        None => None,
    };
    // A message with mentions, attachments or webhooks is several statements: all of them
    // or none. On PostgreSQL a reply's single insert also queues webhook deliveries, which a
    // webhook removed meanwhile by another node can fail: only this message, not the batch.
    let several = hooked
        || m.body.contains('@')
        || !m.attachments.is_empty()
        || (conn.is_postgres() && m.reply_to.is_some());
    if several {
        conn.batch("SAVEPOINT msg")?;
    }
    let stored = queries::insert_message(
        conn,
        (m.room_id, m.user_id),
        &m.body,
        (m.nonce.as_deref(), m.reply_to),
        now,
    )
    .and_then(|id| {
        let Some(id) = id else {
            return Ok(Inserted::NotMember);
        };
        let attachments = if m.attachments.is_empty() {
            Vec::new()
        } else {
            match queries::attach_uploads(conn, id, m.user_id, &m.attachments)? {
                Some(a) => a,
                None => return Ok(Inserted::UnknownUpload),
            }
        };
        if hooked {
            queries::queue_webhook_deliveries(conn, m.room_id, id, now)?;
        }
        Ok(Inserted::Stored(StoredAs {
            id,
            reply: None,
            mentioned: record_mentions(conn, m, id)?,
            attachments,
        }))
    });
    if several {
        let end = if matches!(stored, Ok(Inserted::Stored(_))) {
            "RELEASE msg"
        } else {
            "ROLLBACK TO msg; RELEASE msg"
        };
        conn.batch(end)?;
    }
    stored.map(|s| match s {
        Inserted::Stored(s) => Inserted::Stored(StoredAs { reply, ..s }),
        other => other,
    })
}

fn stored(m: NewMessage, s: StoredAs, now: i64) -> Committed {
    let StoredAs {
        id,
        reply: reply_to,
        mentioned,
        attachments,
    } = s;
    Committed::Stored {
        msg: StoredMessage {
            id,
            room_id: m.room_id,
            room: m.room.to_string(),
            user: m.username.to_string(),
            body: m.body,
            nonce: m.nonce,
            ts_ms: now,
            edited_ms: None,
            deleted: false,
            reply_to: reply_to.map(Box::new),
            reactions: Vec::new(),
            attachments,
            preview: None,
        },
        origin: m.origin,
        duplicate: false,
        mentioned,
    }
}

fn record_mentions(conn: &Conn, m: &NewMessage, id: i64) -> Result<Vec<i64>, SqlError> {
    if !m.body.contains('@') {
        return Ok(Vec::new());
    }
    let named = crate::domain::mention_candidates(&m.body);
    let keys: Vec<&str> = named.iter().chain(&m.here).map(String::as_str).collect();
    let mentioned = queries::members_named(conn, m.room_id, m.user_id, &keys)?;
    queries::insert_mentions(conn, &mentioned, m.room_id, id)?;
    Ok(mentioned)
}

/// Refuse a batch that could not even start a transaction. Dropping an `Exec` job drops its
/// reply channel, which its caller sees as [`DbError::Closed`].
fn fail_all(cmds: impl Iterator<Item = WriteCmd>, outcomes: &mut Vec<Committed>) {
    for cmd in cmds {
        if let WriteCmd::Message(m) = cmd {
            outcomes.push(Committed::Failed {
                origin: m.origin,
                nonce: m.nonce,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::oneshot;

    use rusqlite::Connection;

    use super::*;
    use crate::db::{schema, Change, NewAdmin};

    #[test]
    fn notification_items_are_cut_into_parts_that_each_fit_one_notification() {
        let item = |n: usize| format!("\"{}\"", "x".repeat(n));
        let most = queries::NOTIFY_PARTS_MAX;
        let pack = |items: Vec<String>, max: usize| pack_parts(items.into_iter().map(Some), max);
        assert_eq!(pack(Vec::new(), 1), Some(vec!["[]".to_string()]));
        assert_eq!(
            pack(vec![item(10), item(10)], 1),
            Some(vec![format!("[{},{}]", item(10), item(10))])
        );
        assert!(pack(vec![item(3000); 5], 1).is_none(), "one part only");
        let parts = pack(vec![item(3000); 5], most).expect("five fit in parts");
        assert_eq!(parts.len(), 3, "two items of 3,002 bytes per part");
        let mut joined = Vec::new();
        for p in &parts {
            assert!(p.len() <= queries::NOTIFY_ITEMS_MAX, "{}", p.len());
            joined.extend(serde_json::from_str::<Vec<String>>(p).expect("a JSON array"));
        }
        assert_eq!(
            joined,
            vec!["x".repeat(3000); 5],
            "every item once, in order"
        );
        assert!(pack(vec![item(7000)], most).is_none(), "one item too large");
        assert_eq!(
            pack(vec![item(3400); most * 2], most).map(|p| p.len()),
            Some(most)
        );
        assert!(
            pack(vec![item(3400); most * 2 + 1], most).is_none(),
            "more parts than a commit sends"
        );
        // Past the limit, the remaining items are not even written.
        let mut written = 0;
        let lazy = (0..100).map(|_| {
            written += 1;
            Some(item(3000))
        });
        assert!(pack_parts(lazy, 1).is_none());
        assert_eq!(
            written, 3,
            "two fit in the one part; the third overflows it"
        );
    }

    /// A writer over an in-memory database with one user (id 1, in `general`), and the
    /// receiving end of its commits.
    fn writer() -> (
        mpsc::Sender<WriteCmd>,
        WriterHandle,
        std::sync::mpsc::Receiver<Vec<Committed>>,
    ) {
        let (tx, handle, received, _) = writer_with_index();
        (tx, handle, received)
    }

    /// [`writer`], and the progress of its search index.
    fn writer_with_index() -> (
        mpsc::Sender<WriteCmd>,
        WriterHandle,
        std::sync::mpsc::Receiver<Vec<Committed>>,
        Arc<IndexProgress>,
    ) {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap().unwrap();
        queries::insert_user(&conn, "ada", "ada", "x", NewAdmin::No, 0)
            .unwrap()
            .unwrap();
        let (commits, received) = std::sync::mpsc::channel();
        let (tx, handle, progress) = spawn(
            Conn::Lite(conn),
            commits,
            Arc::new(Metrics::default()),
            (Arc::default(), None),
        )
        .unwrap();
        (tx, handle, received, progress)
    }

    /// Run `f` on the writer's connection in its next transaction and return what it read.
    async fn read_on_writer<T: Send + 'static>(
        tx: &mpsc::Sender<WriteCmd>,
        f: impl FnOnce(&Connection) -> T + Send + 'static,
    ) -> T {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn: &Conn| {
            let _ = answer.send(f(conn.lite().expect("the writer holds SQLite")));
            JobDone::new(true, |_| {}, None)
        });
        tx.send(WriteCmd::Exec(job, false)).await.unwrap();
        answered.await.unwrap()
    }

    #[tokio::test]
    async fn committed_messages_are_indexed_after_their_outcomes_went_out_and_the_mark_moves() {
        let (tx, handle, received, progress) = writer_with_index();
        for i in 0..50 {
            tx.send(message(&format!("n{i}"), 1)).await.unwrap();
        }
        let out = outcomes(&received, 50);
        assert_eq!(out.last().unwrap(), "stored 50 new");
        assert!(
            progress.committed() >= 50,
            "known before the outcomes went out"
        );
        progress.caught_up(Duration::from_secs(10)).await;
        assert_eq!(progress.indexed(), 50);
        let (mark, hits, check) = read_on_writer(&tx, |conn| {
            let hits: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH 'body'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            let check = conn.execute(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
                [],
            );
            (queries::search_indexed_through(conn).unwrap(), hits, check)
        })
        .await;
        assert_eq!((mark, hits), (50, 50));
        check.expect("the index matches the messages");
        handle.shutdown().await;
    }

    fn message(nonce: &str, origin: u64) -> WriteCmd {
        WriteCmd::Message(NewMessage {
            room_id: 1,
            room: Arc::from("general"),
            user_id: 1,
            username: Arc::from("ada"),
            body: format!("body of {nonce}"),
            nonce: Some(nonce.into()),
            reply_to: None,
            attachments: Vec::new(),
            here: Vec::new(),
            origin,
            answer: None,
            queued_at: Instant::now(),
        })
    }

    /// Every outcome committed until `n` have arrived, as short labels in commit order.
    fn outcomes(received: &std::sync::mpsc::Receiver<Vec<Committed>>, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < n {
            let batch = received.recv_timeout(Duration::from_secs(10)).unwrap();
            out.extend(batch.iter().map(|c| match c {
                Committed::Stored { msg, duplicate, .. } => {
                    format!(
                        "stored {} {}",
                        msg.id,
                        if *duplicate { "again" } else { "new" }
                    )
                }
                Committed::Failed { .. } => "failed".into(),
                Committed::Refused { .. } => "refused".into(),
                Committed::Changed(c) => format!("changed {}", c.changes.len()),
                Committed::Logged { after, upto } => format!("logged {after}..={upto}"),
                Committed::Notified { .. } => "notified".into(),
            }));
        }
        out
    }

    #[tokio::test]
    async fn messages_and_changes_come_out_in_commit_order_and_retries_are_stored_once() {
        let (tx, handle, received) = writer();
        tx.send(message("a", 1)).await.unwrap();
        let (applied, _applied) = oneshot::channel();
        let job: Job = Box::new(move |_conn: &Conn| {
            let reply: Reply = Box::new(|_| {});
            let change = Change::MemberJoined {
                room_id: 1,
                room: "general".into(),
                user_id: 1,
                username: "ada".into(),
            };
            let changes = Changes {
                changes: vec![change],
                applied,
            };
            JobDone::new(true, reply, Some(changes))
        });
        tx.send(WriteCmd::Exec(job, false)).await.unwrap();
        tx.send(message("b", 1)).await.unwrap();
        tx.send(message("a", 2)).await.unwrap();
        assert_eq!(
            outcomes(&received, 4),
            [
                "stored 1 new",
                "changed 1",
                "stored 2 new",
                "stored 1 again"
            ]
        );
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn a_barrier_reaches_the_hub_after_everything_queued_before_it() {
        let (tx, handle, received) = writer();
        tx.send(message("a", 1)).await.unwrap();
        tx.send(message("b", 1)).await.unwrap();
        let (applied, _applied) = oneshot::channel();
        tx.send(WriteCmd::Barrier(applied)).await.unwrap();
        tx.send(message("c", 1)).await.unwrap();
        assert_eq!(
            outcomes(&received, 4),
            ["stored 1 new", "stored 2 new", "changed 0", "stored 3 new"]
        );
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn a_refused_job_is_rolled_back_and_its_changes_never_reach_the_hub() {
        let (tx, handle, received) = writer();
        let (applied, not_applied) = oneshot::channel();
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn: &Conn| {
            conn.exec("UPDATE rooms SET topic = 'changed' WHERE id = 1", &[])
                .unwrap();
            let reply: Reply = Box::new(move |commit| {
                let _ = answer.send(commit.is_ok());
            });
            let changes = Changes {
                changes: Vec::new(),
                applied,
            };
            JobDone::new(false, reply, Some(changes))
        });
        tx.send(WriteCmd::Exec(job, false)).await.unwrap();
        tx.send(message("after", 1)).await.unwrap();
        assert_eq!(outcomes(&received, 1), ["stored 1 new"]);
        assert!(answered.await.unwrap(), "the rest of the batch committed");
        assert!(not_applied.await.is_err(), "no changes were handed on");
        let (check, topic) = oneshot::channel();
        let read: Job = Box::new(move |conn: &Conn| {
            let t: String = conn
                .lite()
                .expect("the writer holds SQLite")
                .query_row("SELECT topic FROM rooms WHERE id = 1", [], |r| r.get(0))
                .unwrap();
            let _ = check.send(t);
            JobDone::new(true, |_| {}, None)
        });
        tx.send(WriteCmd::Exec(read, false)).await.unwrap();
        assert_ne!(
            topic.await.unwrap(),
            "changed",
            "the refused job's write was undone"
        );
        handle.shutdown().await;
    }
}
