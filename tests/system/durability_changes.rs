//! Jepsen-style durability checks of the message lifecycle against the real `hearth` binary:
//! edits, deletions and reactions under SIGKILL.
//!
//! Several clients first send a few messages, then run a random mix of operations, each with
//! a unique nonce: new sends, edits of their own messages to a new unique body, deletions of
//! their own messages, and reactions (`on` true or false, a repeat now and then) to any message
//! of the room. Meanwhile the harness kills the server with SIGKILL and restarts it on the same
//! database; clients reconnect with `?since=<highest position seen>` (message ids and change
//! seqs) and resend every operation still unanswered. Resending a change is safe because a
//! repeat stores nothing: a client keeps at most one operation per message unanswered, so a
//! resend can only repeat itself. Every client keeps a model of the room built only from the
//! frames it receives, applied as state (a `message` frame is the message as it is now, an
//! `edited` frame sets the body, `deleted` tombstones, `reaction` sets or clears one user).
//!
//! At the end, after every operation was answered, the database is opened directly and checked:
//!
//! - **lost**: an acknowledged send, edit, deletion or reaction change without its row at the
//!   acknowledged position; a message whose body is not its last acknowledged edit; a reaction
//!   whose stored state is not the one of the client's last acknowledged change;
//! - **duplicated**: two `edit` rows of one message with one body, more edit rows than edits
//!   asked for, two `delete` rows of one message, two consecutive reaction changes of one
//!   (message, user, emoji) of the same kind (a repeat stored something), two rows for one
//!   (author, nonce);
//! - **unexpected**: a row no client asked for, a seq equal to a message id or below its
//!   message's id, a `reactions` table that differs from replaying the reaction log;
//! - **other**: every client's model after a final resume, and a fresh client's `?since=0`
//!   view (paged through `GET /api/events` past 1,000 positions), equal the database;
//!   answers arrive once and match what was asked; positions only grow within one connection
//!   (answers to repeats excepted); `unknown_message` refusals are for deleted messages only;
//!   `PRAGMA integrity_check` and the search index's own integrity check pass; and the search
//!   index finds each live message by its current text only and deleted ones not at all.
//!
//! The seed is printed; `HEARTH_CRASH_SEED=<seed>` replays the same choices (thread timing
//! still varies) and `HEARTH_CRASH_CYCLES=<n>` runs more kill cycles than the default.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{http_client, seed, send_in, Rng};
use crate::durability::{
    assert_clean, crash_cycles, create_account, db_path, join_round, make_body, open_socket,
    start_server, End, Incoming, Running, Verdict, WsSink, WsStream, ROOM, SEED_VAR,
};
use crate::process::HANG;

/// Kill cycles unless `HEARTH_CRASH_CYCLES`.
const DEFAULT_CYCLES: usize = 6;
const CLIENTS: usize = 4;
/// Messages each client sends (and has acknowledged) before the changes start.
const FIRST_MESSAGES: usize = 10;
/// Most operations waiting for their answer on one connection.
const WINDOW: usize = 16;
/// The reactions clients choose from.
const EMOJI: &[&str] = &["👍", "🔥", "🎉", "✓"];

// ---------------------------------------------------------------------------------------------
// Frames and the room as a client sees it

/// Emoji to the users reacting with it (never an empty set).
type Reactions = BTreeMap<String, BTreeSet<String>>;

/// One message as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MsgState {
    user: String,
    body: String,
    deleted: bool,
    edited: bool,
    reactions: Reactions,
}

impl MsgState {
    /// What can be compared: a tombstone shows only its author.
    fn normalized(&self) -> MsgState {
        if self.deleted {
            MsgState {
                user: self.user.clone(),
                body: String::new(),
                deleted: true,
                edited: false,
                reactions: Reactions::new(),
            }
        } else {
            self.clone()
        }
    }
}

/// A frame about a message: the message itself or one change to it.
#[derive(Clone, Debug)]
enum Frame {
    Message {
        id: i64,
        state: MsgState,
        nonce: Option<String>,
    },
    Edited {
        seq: i64,
        id: i64,
        body: String,
        nonce: Option<String>,
    },
    Deleted {
        seq: i64,
        id: i64,
        by: String,
        nonce: Option<String>,
    },
    Reaction {
        seq: i64,
        id: i64,
        user: String,
        emoji: String,
        on: bool,
        nonce: Option<String>,
    },
}

impl Frame {
    /// `None` for frames of other types; an error for a malformed lifecycle frame.
    fn parse(v: &Value) -> Option<Result<Frame, String>> {
        let kind = v["type"].as_str()?;
        if !matches!(kind, "message" | "edited" | "deleted" | "reaction") {
            return None;
        }
        Some(Frame::parse_kind(kind, v).ok_or_else(|| format!("malformed {kind} frame {v}")))
    }

    fn parse_kind(kind: &str, v: &Value) -> Option<Frame> {
        if v["room"].as_str()? != ROOM {
            return None;
        }
        let id = v["id"].as_i64()?;
        let nonce = v["nonce"].as_str().map(str::to_string);
        let text = |k: &str| v[k].as_str().map(str::to_string);
        Some(match kind {
            "message" => {
                let deleted = v["deleted"].as_bool().unwrap_or(false);
                let mut reactions = Reactions::new();
                for r in v["reactions"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                    let users: Vec<&str> = r["users"]
                        .as_array()?
                        .iter()
                        .map(Value::as_str)
                        .collect::<Option<_>>()?;
                    let set: BTreeSet<String> = users.iter().map(|u| u.to_string()).collect();
                    let count = r["count"].as_u64()? as usize;
                    if set.is_empty() || set.len() != users.len() || count != users.len() {
                        return None;
                    }
                    if reactions.insert(text_of(&r["emoji"])?, set).is_some() {
                        return None;
                    }
                }
                Frame::Message {
                    id,
                    state: MsgState {
                        user: text("user")?,
                        body: text("body")?,
                        deleted,
                        edited: v["edited_ts"].is_string(),
                        reactions,
                    },
                    nonce,
                }
            }
            "edited" => Frame::Edited {
                seq: v["seq"].as_i64()?,
                id,
                body: text("body")?,
                nonce,
            },
            "deleted" => Frame::Deleted {
                seq: v["seq"].as_i64()?,
                id,
                by: text("by")?,
                nonce,
            },
            _ => Frame::Reaction {
                seq: v["seq"].as_i64()?,
                id,
                user: text("user")?,
                emoji: text("emoji")?,
                on: v["on"].as_bool()?,
                nonce,
            },
        })
    }

    /// Its position: the message id, or the change's seq.
    fn position(&self) -> i64 {
        match self {
            Frame::Message { id, .. } => *id,
            Frame::Edited { seq, .. }
            | Frame::Deleted { seq, .. }
            | Frame::Reaction { seq, .. } => *seq,
        }
    }

    fn nonce(&self) -> Option<&str> {
        match self {
            Frame::Message { nonce, .. }
            | Frame::Edited { nonce, .. }
            | Frame::Deleted { nonce, .. }
            | Frame::Reaction { nonce, .. } => nonce.as_deref(),
        }
    }
}

fn text_of(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// The room as one client's frames describe it.
#[derive(Default)]
struct Model {
    msgs: BTreeMap<i64, MsgState>,
    /// Messages shown as tombstones by a `message` frame whose `deleted` frame has not
    /// arrived yet. A page of `GET /api/events` shows messages as they are when it is read,
    /// possibly deleted after the live frames still queued behind it: changes to these are
    /// ignored until their deletion arrives.
    tombstones_ahead: BTreeSet<i64>,
}

impl Model {
    /// Apply one frame as state; an error when the frame cannot follow what came before.
    fn apply(&mut self, f: &Frame) -> Result<(), String> {
        if let Frame::Message { id, state, .. } = f {
            if state.deleted {
                self.tombstones_ahead.insert(*id);
            }
            self.msgs.insert(*id, state.clone());
            return Ok(());
        }
        let pos = f.position();
        let id = match f {
            Frame::Edited { id, .. } | Frame::Deleted { id, .. } | Frame::Reaction { id, .. } => {
                *id
            }
            Frame::Message { .. } => unreachable!(),
        };
        let Some(m) = self.msgs.get_mut(&id) else {
            return Err(format!(
                "a change at {pos} to message {id}, never seen: {f:?}"
            ));
        };
        if self.tombstones_ahead.contains(&id) {
            if matches!(f, Frame::Deleted { .. }) {
                self.tombstones_ahead.remove(&id);
            }
            return Ok(());
        }
        match f {
            Frame::Edited { seq, body, .. } => {
                if m.deleted {
                    if !body.is_empty() {
                        return Err(format!(
                            "an edit at {seq} with a body to message {id}, already deleted"
                        ));
                    }
                } else {
                    m.body = body.clone();
                    // A repeat's answer for a message never edited carries the message's own
                    // position.
                    m.edited |= *seq != id;
                }
            }
            Frame::Deleted { .. } => {
                m.deleted = true;
                m.body.clear();
                m.edited = false;
                m.reactions.clear();
            }
            Frame::Reaction {
                seq,
                user,
                emoji,
                on,
                ..
            } => {
                if m.deleted {
                    return Err(format!(
                        "a reaction change at {seq} to message {id}, already deleted"
                    ));
                }
                if *on {
                    m.reactions
                        .entry(emoji.clone())
                        .or_default()
                        .insert(user.clone());
                } else if let Some(users) = m.reactions.get_mut(emoji) {
                    users.remove(user);
                    if users.is_empty() {
                        m.reactions.remove(emoji);
                    }
                }
            }
            Frame::Message { .. } => unreachable!(),
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Operations and the clients that make them

#[derive(Clone, Debug)]
enum OpKind {
    Send { body: String },
    Edit { id: i64, body: String },
    Delete { id: i64 },
    React { id: i64, emoji: String, on: bool },
}

impl OpKind {
    /// The message a change is about (a send has none until acknowledged).
    fn target(&self) -> Option<i64> {
        match self {
            OpKind::Send { .. } => None,
            OpKind::Edit { id, .. } | OpKind::Delete { id } | OpKind::React { id, .. } => Some(*id),
        }
    }

    fn frame(&self, nonce: &str) -> Value {
        match self {
            OpKind::Send { body } => send_in(ROOM, body, nonce),
            OpKind::Edit { id, body } => {
                json!({"type": "edit", "id": id, "body": body, "nonce": nonce})
            }
            OpKind::Delete { id } => json!({"type": "delete", "id": id, "nonce": nonce}),
            OpKind::React { id, emoji, on } => {
                json!({"type": "react", "id": id, "emoji": emoji, "on": on, "nonce": nonce})
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Not answered yet.
    Pending,
    /// Committed at this position (a repeat's answer: the position of the change that made
    /// the current state).
    Acked(i64),
    /// Refused with `unknown_message`: its message was deleted.
    Refused,
}

struct Op {
    kind: OpKind,
    outcome: Outcome,
    /// Copies written.
    sends: u32,
    /// A connection ended while it was sent but unanswered.
    in_doubt: bool,
}

#[derive(Default)]
struct Stats {
    sends: u64,
    edits: u64,
    deletes: u64,
    reacts: u64,
    /// Frames written, resends included.
    frames: u64,
    acked: u64,
    /// ... answered with the frame of an earlier change (a repeat stored nothing).
    repeats: u64,
    refused: u64,
    /// Refused with `unavailable` and sent again.
    unavailable: u64,
    in_doubt: u64,
    found_on_replay: u64,
    settled_on_resend: u64,
    connections: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.sends += o.sends;
        self.edits += o.edits;
        self.deletes += o.deletes;
        self.reacts += o.reacts;
        self.frames += o.frames;
        self.acked += o.acked;
        self.repeats += o.repeats;
        self.refused += o.refused;
        self.unavailable += o.unavailable;
        self.in_doubt += o.in_doubt;
        self.found_on_replay += o.found_on_replay;
        self.settled_on_resend += o.settled_on_resend;
        self.connections += o.connections;
    }

    fn ops(&self) -> u64 {
        self.sends + self.edits + self.deletes + self.reacts
    }
}

/// How a client behaves on one connection.
#[derive(Clone, Copy)]
struct Plan {
    /// Most new operations this connection starts; then it finishes once all are answered.
    new_ops: usize,
    /// Only sends (the messages everything else is about).
    sends_only: bool,
}

const FIRST: Plan = Plan {
    new_ops: FIRST_MESSAGES,
    sends_only: true,
};
const MIXED: Plan = Plan {
    new_ops: usize::MAX,
    sends_only: false,
};
/// Resend what is unanswered, start nothing new, finish.
const DRAIN: Plan = Plan {
    new_ops: 0,
    sends_only: false,
};

struct Client {
    idx: usize,
    name: String,
    token: String,
    rng: Rng,
    counter: u64,
    ops: HashMap<String, Op>,
    /// Nonces in creation order.
    order: Vec<String>,
    /// Messages with one of this client's operations unanswered.
    busy: HashSet<i64>,
    model: Model,
    /// Highest position seen: the next `?since=`.
    max_seen: i64,
    violations: Vec<String>,
    stats: Stats,
}

/// Per-connection bookkeeping.
struct Conn {
    no: u64,
    since: i64,
    /// Highest position received on this connection.
    last: i64,
    frames: u64,
    resumed: bool,
    outstanding: usize,
    close: Option<u16>,
    /// Nonces to send before new ones: resends and `unavailable` refusals.
    queue: VecDeque<String>,
    started: usize,
}

enum Event {
    Other,
    Resumed { complete: bool, head: i64 },
    Again(String),
}

impl Client {
    fn new(idx: usize, name: String, token: String, seed: u64) -> Client {
        Client {
            idx,
            name,
            token,
            rng: Rng::new(seed ^ (idx as u64 + 1).wrapping_mul(0x9FB2_1C65_1E98_DF25)),
            counter: 0,
            ops: HashMap::new(),
            order: Vec::new(),
            busy: HashSet::new(),
            model: Model::default(),
            max_seen: 0,
            violations: Vec::new(),
            stats: Stats::default(),
        }
    }

    fn violation(&mut self, what: String) {
        self.violations.push(format!("{}: {what}", self.name));
    }

    /// A fresh nonce, which is also the unique search token its body starts with (`c1e17`:
    /// client 1's 17th operation, an edit).
    fn next_token(&mut self, letter: char) -> String {
        self.counter += 1;
        format!("c{}{letter}{}", self.idx, self.counter)
    }

    /// Messages of the model this client may start an operation on: not deleted, none of its
    /// own operations unanswered, and (`own`) its own.
    fn candidates(&self, own: bool) -> Vec<i64> {
        self.model
            .msgs
            .iter()
            .filter(|(id, m)| {
                !m.deleted && !self.busy.contains(id) && (!own || m.user == self.name)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Choose, record and return the next operation: a quarter sends, a quarter edits, a
    /// few deletions, the rest reactions (a send when there is nothing to change).
    fn new_op(&mut self, plan: &Plan) -> String {
        let roll = if plan.sends_only {
            0
        } else {
            self.rng.below(100)
        };
        let pool = match roll {
            25..=57 => self.candidates(true),
            58.. => self.candidates(false),
            _ => Vec::new(),
        };
        let target = (!pool.is_empty()).then(|| *self.rng.pick(&pool));
        let letter = match (roll, target) {
            (_, None) => 's',
            (25..=49, _) => 'e',
            (50..=57, _) => 'd',
            _ => 'r',
        };
        let nonce = self.next_token(letter);
        let kind = match (letter, target) {
            ('e', Some(id)) => {
                self.stats.edits += 1;
                OpKind::Edit {
                    id,
                    body: make_body(&mut self.rng, &nonce),
                }
            }
            ('d', Some(id)) => {
                self.stats.deletes += 1;
                OpKind::Delete { id }
            }
            ('r', Some(id)) => {
                self.stats.reacts += 1;
                let emoji = self.rng.pick(EMOJI).to_string();
                let has = self.model.msgs[&id]
                    .reactions
                    .get(&emoji)
                    .is_some_and(|u| u.contains(&self.name));
                // Mostly a change, sometimes a repeat of the current state.
                let on = if self.rng.chance(80) { !has } else { has };
                OpKind::React { id, emoji, on }
            }
            _ => {
                self.stats.sends += 1;
                OpKind::Send {
                    body: make_body(&mut self.rng, &nonce),
                }
            }
        };
        if let Some(id) = kind.target() {
            self.busy.insert(id);
        }
        self.ops.insert(
            nonce.clone(),
            Op {
                kind,
                outcome: Outcome::Pending,
                sends: 0,
                in_doubt: false,
            },
        );
        self.order.push(nonce.clone());
        nonce
    }

    /// Settle `nonce` with `outcome`.
    fn settle(&mut self, nonce: &str, outcome: Outcome, live: bool) {
        let op = self.ops.get_mut(nonce).expect("known nonce");
        op.outcome = outcome;
        let in_doubt = op.in_doubt;
        if let Some(id) = op.kind.target() {
            self.busy.remove(&id);
        }
        match outcome {
            Outcome::Acked(_) => self.stats.acked += 1,
            Outcome::Refused => self.stats.refused += 1,
            Outcome::Pending => {}
        }
        if in_doubt {
            if live {
                self.stats.settled_on_resend += 1;
            } else {
                self.stats.found_on_replay += 1;
            }
        }
    }

    /// Whether `f` is a change this client made.
    fn is_own_change(&self, f: &Frame) -> bool {
        match f {
            Frame::Message { .. } => false,
            Frame::Edited { id, .. } => {
                self.model.msgs.get(id).is_some_and(|m| m.user == self.name)
            }
            Frame::Deleted { by, .. } => *by == self.name,
            Frame::Reaction { user, .. } => *user == self.name,
        }
    }

    /// A live frame carrying one of this client's nonces: the answer to that operation.
    /// `repeat`: it carries an earlier position (the state was already so).
    fn on_answer(&mut self, nonce: &str, f: &Frame, repeat: bool) {
        let op = &self.ops[nonce];
        if op.outcome != Outcome::Pending {
            let outcome = op.outcome;
            self.violation(format!(
                "{nonce} was answered again ({outcome:?} before): {f:?}"
            ));
            return;
        }
        let in_doubt = op.in_doubt;
        let mut problems = Vec::new();
        let matches = match (&op.kind, f) {
            (OpKind::Send { body }, Frame::Message { state, .. }) => {
                if state.user != self.name
                    || (!state.edited && !state.deleted && state.body != *body)
                {
                    problems.push(format!("{nonce} came back as {state:?}, sent {body:?}"));
                }
                true
            }
            (
                OpKind::Edit { id, body },
                Frame::Edited {
                    id: fid, body: fb, ..
                },
            ) => {
                if fid != id || fb != body {
                    problems.push(format!(
                        "{nonce} (edit {id} to {body:?}) was answered with an edit of {fid} \
                         to {fb:?}"
                    ));
                }
                true
            }
            (OpKind::Delete { id }, Frame::Deleted { id: fid, by, .. }) => {
                if fid != id || *by != self.name {
                    problems.push(format!(
                        "{nonce} (delete {id}) was answered with the deletion of {fid} by {by}"
                    ));
                }
                true
            }
            (
                OpKind::React { id, emoji, on },
                Frame::Reaction {
                    id: fid,
                    user,
                    emoji: fe,
                    on: fon,
                    ..
                },
            ) => {
                if fid != id || *user != self.name || fe != emoji || fon != on {
                    problems.push(format!(
                        "{nonce} (react {id} {emoji} {on}) was answered with {f:?}"
                    ));
                }
                true
            }
            _ => false,
        };
        if !matches {
            let kind = op.kind.clone();
            self.violation(format!("{nonce} ({kind:?}) was answered with {f:?}"));
            return;
        }
        // An edit, a deletion or a send that the replay did not show committed cannot already
        // be so: such an answer means the replay missed a committed change.
        if repeat && !matches!(op.kind, OpKind::React { .. }) {
            problems.push(format!(
                "{nonce} ({:?}, in doubt: {in_doubt}) was answered as already done ({f:?}), \
                 yet no frame had shown it",
                op.kind
            ));
        }
        for p in problems {
            self.violation(p);
        }
        if repeat {
            self.stats.repeats += 1;
        }
        self.settle(nonce, Outcome::Acked(f.position()), true);
    }

    /// A replayed frame (no nonce on changes) of this client's own: it may show that an
    /// operation in doubt was committed. A change nothing unanswered explains was made twice
    /// or by nobody.
    fn on_replayed_own(&mut self, f: &Frame) {
        let found = self.order.iter().find(|n| {
            let op = &self.ops[*n];
            op.outcome == Outcome::Pending
                && op.sends > 0
                && match (&op.kind, f) {
                    (
                        OpKind::Edit { id, body },
                        Frame::Edited {
                            id: fid, body: fb, ..
                        },
                    ) => id == fid && body == fb,
                    (OpKind::Delete { id }, Frame::Deleted { id: fid, .. }) => id == fid,
                    (
                        OpKind::React { id, emoji, on },
                        Frame::Reaction {
                            id: fid,
                            emoji: fe,
                            on: fon,
                            ..
                        },
                    ) => id == fid && emoji == fe && on == fon,
                    _ => false,
                }
        });
        match found.cloned() {
            Some(n) => self.settle(&n, Outcome::Acked(f.position()), false),
            None => self.violation(format!(
                "the replay shows an own change no unanswered operation explains: {f:?}"
            )),
        }
    }

    /// A replayed message frame carrying one of this client's nonces.
    fn on_replayed_send(&mut self, nonce: &str, f: &Frame) {
        let Frame::Message { id, state, .. } = f else {
            self.violation(format!(
                "a replayed change frame carries nonce {nonce}: {f:?}"
            ));
            return;
        };
        let op = &self.ops[nonce];
        match (&op.kind, op.outcome) {
            (OpKind::Send { body }, Outcome::Pending) if op.sends > 0 => {
                if state.user != self.name || (!state.edited && state.body != *body) {
                    let body = body.clone();
                    self.violation(format!("{nonce} was replayed as {state:?}, sent {body:?}"));
                }
                self.settle(nonce, Outcome::Acked(*id), false);
            }
            (kind, outcome) => {
                let what = format!("{kind:?} ({outcome:?})");
                self.violation(format!(
                    "replayed message {id} carries nonce {nonce} of {what}"
                ));
            }
        }
    }

    /// Record one lifecycle frame. Returns whether it answers one of this connection's
    /// operations.
    fn on_frame(&mut self, cn: &mut Conn, f: Frame, live: bool) -> bool {
        let pos = f.position();
        let own_nonce = f
            .nonce()
            .filter(|n| self.ops.contains_key(*n))
            .map(str::to_string);
        let mut answer = false;
        let mut repeat = false;
        match own_nonce {
            Some(n) if live => {
                answer = true;
                repeat = pos <= cn.last;
                self.on_answer(&n, &f, repeat);
            }
            Some(n) => self.on_replayed_send(&n, &f),
            None => {
                if let Frame::Message { id, state, nonce } = &f {
                    if state.user == self.name && !state.deleted {
                        self.violation(format!(
                            "own message {id} arrived with nonce {nonce:?}, never sent"
                        ));
                    }
                } else if f.nonce().is_some() && !live {
                    self.violation(format!("a replayed change frame carries a nonce: {f:?}"));
                } else if self.is_own_change(&f) {
                    if live {
                        self.violation(format!(
                            "an own change arrived live without a nonce: {f:?}"
                        ));
                    } else {
                        self.on_replayed_own(&f);
                    }
                }
            }
        }
        if pos > cn.last {
            cn.last = pos;
        } else if !repeat {
            self.violation(format!(
                "connection {} (since={}): position {pos} arrived after {}: {f:?}",
                cn.no, cn.since, cn.last
            ));
        }
        self.max_seen = self.max_seen.max(pos);
        if let Err(e) = self.model.apply(&f) {
            self.violation(e);
        }
        answer
    }

    fn on_text(&mut self, cn: &mut Conn, text: &str) -> Event {
        cn.frames += 1;
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.violation(format!("frame is not JSON ({e}): {text}"));
                return Event::Other;
            }
        };
        let kind = v["type"].as_str().unwrap_or("");
        if (cn.frames == 1) != (kind == "ready") {
            self.violation(format!("frame {} is {text}", cn.frames));
        }
        if let Some(parsed) = Frame::parse(&v) {
            match parsed {
                Ok(f) => {
                    if self.on_frame(cn, f, cn.resumed) {
                        if cn.outstanding == 0 {
                            self.violation(format!("an answer nobody waited for: {text}"));
                        } else {
                            cn.outstanding -= 1;
                        }
                    }
                }
                Err(e) => self.violation(e),
            }
            return Event::Other;
        }
        match kind {
            "resumed" => {
                if cn.resumed {
                    self.violation("a second resumed".to_string());
                }
                cn.resumed = true;
                let complete = v["complete"].as_bool().unwrap_or(false);
                let head = v["head"].as_i64().unwrap_or(-1);
                if head < cn.last {
                    self.violation(format!(
                        "resumed head {head} is below replayed position {}",
                        cn.last
                    ));
                }
                Event::Resumed { complete, head }
            }
            "error" => {
                let code = v["code"].as_str().unwrap_or("").to_string();
                let Some(nonce) = v["nonce"].as_str().filter(|n| self.ops.contains_key(*n)) else {
                    self.violation(format!("an error frame for nothing sent: {text}"));
                    return Event::Other;
                };
                let nonce = nonce.to_string();
                if cn.outstanding == 0 {
                    self.violation(format!("an answer nobody waited for: {text}"));
                } else {
                    cn.outstanding -= 1;
                }
                let op = &self.ops[&nonce];
                match (code.as_str(), &op.kind, op.outcome) {
                    ("unavailable", _, Outcome::Pending) => {
                        self.stats.unavailable += 1;
                        return Event::Again(nonce);
                    }
                    ("unknown_message", OpKind::Edit { .. }, Outcome::Pending)
                    | ("unknown_message", OpKind::Delete { .. }, Outcome::Pending)
                    | ("unknown_message", OpKind::React { .. }, Outcome::Pending) => {
                        self.settle(&nonce, Outcome::Refused, true);
                    }
                    _ => self.violation(format!("unexpected error frame {text}")),
                }
                Event::Other
            }
            "ready" | "presence" | "typing" | "member_joined" => Event::Other,
            _ => {
                self.violation(format!("unknown frame type: {text}"));
                Event::Other
            }
        }
    }

    /// Page the replay's remainder (positions up to `head`) over HTTP. An error means the
    /// server went away: the next connection pages again.
    async fn page_rest(
        &mut self,
        cn: &mut Conn,
        http: &reqwest::Client,
        port: u16,
        head: i64,
    ) -> Result<(), String> {
        while cn.last < head {
            let page = events_after(http, port, &self.token, cn.last).await?;
            let mut progressed = false;
            for v in &page {
                match Frame::parse(v) {
                    Some(Ok(f)) if f.position() <= head => {
                        progressed = true;
                        self.on_frame(cn, f, false);
                    }
                    Some(Ok(_)) => {}
                    _ => self.violation(format!("not a lifecycle event: {v}")),
                }
            }
            // Positions at the top may be gone (reaction changes of a message deleted since).
            if !progressed {
                break;
            }
        }
        Ok(())
    }

    /// Read until the socket ends, recording every frame and the close code.
    async fn drain(&mut self, cn: &mut Conn, rx: &mut WsStream) {
        while let Ok(Some(Ok(msg))) = tokio::time::timeout(HANG, rx.next()).await {
            match msg {
                Message::Text(t) => {
                    self.on_text(cn, t.as_str());
                }
                Message::Close(f) => cn.close = Some(f.map_or(1005, |f| u16::from(f.code))),
                _ => {}
            }
        }
    }

    /// Everything sent and unanswered, in creation order.
    fn resend_queue(&self) -> VecDeque<String> {
        self.order
            .iter()
            .filter(|n| {
                let op = &self.ops[*n];
                op.outcome == Outcome::Pending && op.sends > 0
            })
            .cloned()
            .collect()
    }

    /// One connection: `?since=`, replay, resend what is unanswered, then follow `plan` until
    /// it is done or the server goes away.
    async fn run_connection(&mut self, port: u16, plan: Plan, http: &reqwest::Client) -> End {
        self.stats.connections += 1;
        let mut cn = Conn {
            no: self.stats.connections,
            since: self.max_seen,
            last: self.max_seen,
            frames: 0,
            resumed: false,
            outstanding: 0,
            close: None,
            queue: self.resend_queue(),
            started: 0,
        };
        let ws = match open_socket(port, &self.token, cn.since).await {
            Ok(ws) => ws,
            Err(e) => return End::ConnectFailed(e),
        };
        let (mut tx, mut rx): (WsSink, WsStream) = ws.split();
        loop {
            if cn.resumed {
                if !self.send_window(&mut cn, &plan, &mut tx).await {
                    self.drain(&mut cn, &mut rx).await;
                    return End::Gone { close: cn.close };
                }
                if cn.started >= plan.new_ops && cn.outstanding == 0 && cn.queue.is_empty() {
                    let _ = tx.send(Message::Close(None)).await;
                    self.drain(&mut cn, &mut rx).await;
                    return End::Finished;
                }
            }
            let next = tokio::time::timeout(HANG, rx.next()).await;
            if let Some(end) = self.on_incoming(&mut cn, next, http, port).await {
                return end;
            }
        }
    }

    /// Send until [`WINDOW`] operations wait for their answer: the queue first, then new
    /// ones. False when the socket failed.
    async fn send_window(&mut self, cn: &mut Conn, plan: &Plan, tx: &mut WsSink) -> bool {
        let mut fed = false;
        while cn.outstanding < WINDOW {
            let nonce = match cn.queue.pop_front() {
                // The replay may have settled it.
                Some(n) if self.ops[&n].outcome != Outcome::Pending => continue,
                Some(n) => n,
                None if cn.started < plan.new_ops => {
                    cn.started += 1;
                    self.new_op(plan)
                }
                None => break,
            };
            let op = self.ops.get_mut(&nonce).expect("known nonce");
            let frame = op.kind.frame(&nonce);
            op.sends += 1;
            self.stats.frames += 1;
            cn.outstanding += 1;
            fed = true;
            if tx.feed(Message::text(frame.to_string())).await.is_err() {
                return false;
            }
        }
        !fed || tx.flush().await.is_ok()
    }

    /// Handle one read from the socket; `Some` ends the connection.
    async fn on_incoming(
        &mut self,
        cn: &mut Conn,
        next: Incoming,
        http: &reqwest::Client,
        port: u16,
    ) -> Option<End> {
        match next {
            Err(_) => {
                self.violation(format!(
                    "connection {}: nothing arrived for {HANG:?} (resumed: {}, {} unanswered)",
                    cn.no, cn.resumed, cn.outstanding
                ));
                Some(End::Hung)
            }
            Ok(None) | Ok(Some(Err(_))) => Some(End::Gone { close: cn.close }),
            Ok(Some(Ok(Message::Text(t)))) => match self.on_text(cn, t.as_str()) {
                Event::Resumed {
                    complete: false,
                    head,
                } => {
                    let paged = self.page_rest(cn, http, port, head).await;
                    paged.is_err().then_some(End::Gone { close: cn.close })
                }
                Event::Again(n) => {
                    if self.stats.unavailable > 10_000 {
                        self.violation("endless unavailable".to_string());
                        return Some(End::Hung);
                    }
                    cn.queue.push_back(n);
                    None
                }
                _ => None,
            },
            Ok(Some(Ok(Message::Close(f)))) => {
                cn.close = Some(f.map_or(1005, |f| u16::from(f.code)));
                None
            }
            Ok(Some(Ok(_))) => None,
        }
    }

    /// After a connection that did not finish: what it left unanswered is in doubt.
    fn after_connection(&mut self) {
        for n in &self.order {
            let op = self.ops.get_mut(n).expect("known nonce");
            if op.outcome == Outcome::Pending && op.sends > 0 && !op.in_doubt {
                op.in_doubt = true;
                self.stats.in_doubt += 1;
            }
        }
    }
}

/// The oldest events (message and change frames) with a position above `after`, at most 200.
async fn events_after(
    http: &reqwest::Client,
    port: u16,
    token: &str,
    after: i64,
) -> Result<Vec<Value>, String> {
    let res = http
        .get(format!(
            "http://127.0.0.1:{port}/api/events?after={after}&limit=200"
        ))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("events page: HTTP {}", res.status()));
    }
    let v: Value = res.json().await.map_err(|e| e.to_string())?;
    v["events"]
        .as_array()
        .cloned()
        .ok_or_else(|| "events page without events".to_string())
}

// ---------------------------------------------------------------------------------------------
// Harness

/// Start one connection per client.
fn spawn_round(
    clients: Vec<Client>,
    port: u16,
    plan: Plan,
    http: &reqwest::Client,
) -> Running<Client> {
    clients
        .into_iter()
        .map(|mut c| {
            let http = http.clone();
            tokio::spawn(async move {
                let end = c.run_connection(port, plan, &http).await;
                if end != End::Finished {
                    c.after_connection();
                }
                (c, end)
            })
        })
        .collect()
}

/// Run one connection per client to completion while the server stays up.
async fn settle_round(
    clients: Vec<Client>,
    port: u16,
    plan: Plan,
    http: &reqwest::Client,
    what: &str,
) -> Vec<Client> {
    let running = spawn_round(clients, port, plan, http);
    join_round(running, what)
        .await
        .into_iter()
        .map(|(mut c, end)| {
            if end != End::Finished {
                c.violation(format!("{what}: connection ended with {end:?}"));
            }
            c
        })
        .collect()
}

fn totals<'a>(clients: impl IntoIterator<Item = &'a Client>) -> Stats {
    let mut s = Stats::default();
    for c in clients {
        s.add(&c.stats);
    }
    s
}

// ---------------------------------------------------------------------------------------------
// The database

struct DbMsg {
    user: String,
    nonce: Option<String>,
    body: String,
    deleted: bool,
    edited: bool,
}

#[derive(Debug)]
struct DbChange {
    seq: i64,
    message_id: i64,
    kind: String,
    body: String,
    /// The acting user's name, through `actor_id`.
    actor: Option<String>,
}

struct Db {
    msgs: BTreeMap<i64, DbMsg>,
    /// In seq order.
    changes: Vec<DbChange>,
    /// (message, user, emoji).
    reactions: BTreeSet<(i64, String, String)>,
}

impl Db {
    fn read(conn: &rusqlite::Connection, v: &mut Verdict) -> Db {
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check runs");
        if integrity != "ok" {
            v.other.push(format!("integrity_check: {integrity}"));
        }
        let mut msgs = BTreeMap::new();
        let mut stmt = conn
            .prepare(
                "SELECT m.id, u.username, r.name, m.nonce, m.body, m.deleted, m.edited_at \
                 FROM messages m JOIN users u ON u.id = m.user_id \
                 JOIN rooms r ON r.id = m.room_id ORDER BY m.id",
            )
            .expect("prepares");
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(2)?,
                    DbMsg {
                        user: r.get(1)?,
                        nonce: r.get(3)?,
                        body: r.get(4)?,
                        deleted: r.get::<_, i64>(5)? != 0,
                        edited: r.get::<_, Option<i64>>(6)?.is_some(),
                    },
                ))
            })
            .expect("queries");
        for row in rows {
            let (id, room, m) = row.expect("reads a message");
            if room != ROOM {
                v.unexpected.push(format!("message {id} is in room {room}"));
            }
            msgs.insert(id, m);
        }
        let total: i64 = conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .expect("counts");
        if total as usize != msgs.len() {
            v.other.push(format!(
                "{total} rows in messages but {} with their user and room",
                msgs.len()
            ));
        }
        let changes: Vec<DbChange> = conn
            .prepare(
                "SELECT c.seq, c.message_id, c.kind, c.body, u.username FROM message_changes c \
                 LEFT JOIN users u ON u.id = c.actor_id ORDER BY c.seq",
            )
            .expect("prepares")
            .query_map([], |r| {
                Ok(DbChange {
                    seq: r.get(0)?,
                    message_id: r.get(1)?,
                    kind: r.get(2)?,
                    body: r.get(3)?,
                    actor: r.get(4)?,
                })
            })
            .expect("queries")
            .collect::<rusqlite::Result<_>>()
            .expect("reads changes");
        let reactions = conn
            .prepare(
                "SELECT x.message_id, u.username, x.emoji FROM reactions x \
                 JOIN users u ON u.id = x.user_id",
            )
            .expect("prepares")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("queries")
            .collect::<rusqlite::Result<_>>()
            .expect("reads reactions");
        Db {
            msgs,
            changes,
            reactions,
        }
    }

    fn head(&self) -> i64 {
        let m = self.msgs.keys().next_back().copied().unwrap_or(0);
        let c = self.changes.last().map_or(0, |c| c.seq);
        m.max(c)
    }

    /// Every message as a client should see it now.
    fn view(&self) -> BTreeMap<i64, MsgState> {
        let mut view: BTreeMap<i64, MsgState> = self
            .msgs
            .iter()
            .map(|(id, m)| {
                let state = MsgState {
                    user: m.user.clone(),
                    body: m.body.clone(),
                    deleted: m.deleted,
                    edited: m.edited,
                    reactions: Reactions::new(),
                };
                (*id, state)
            })
            .collect();
        for (id, user, emoji) in &self.reactions {
            if let Some(m) = view.get_mut(id) {
                m.reactions
                    .entry(emoji.clone())
                    .or_default()
                    .insert(user.clone());
            }
        }
        view.into_iter()
            .map(|(id, m)| (id, m.normalized()))
            .collect()
    }

    fn change(&self, seq: i64) -> Option<&DbChange> {
        self.changes
            .binary_search_by_key(&seq, |c| c.seq)
            .ok()
            .map(|i| &self.changes[i])
    }
}

/// One user's reaction with one emoji to one message: (message, user, emoji).
type ReactionKey<'a> = (i64, &'a str, &'a str);

/// Positions, the change log's shape, and the reaction table against its log.
fn check_log(db: &Db, v: &mut Verdict) {
    let mut edits: HashMap<(i64, &str), Vec<i64>> = HashMap::new();
    let mut deletes: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut reaction_log: BTreeMap<ReactionKey, Vec<(i64, bool)>> = BTreeMap::new();
    for c in &db.changes {
        if db.msgs.contains_key(&c.seq) {
            v.unexpected
                .push(format!("change seq {} is also a message id", c.seq));
        }
        let Some(m) = db.msgs.get(&c.message_id) else {
            v.unexpected.push(format!(
                "change {} is about message {}, which does not exist",
                c.seq, c.message_id
            ));
            continue;
        };
        if c.seq <= c.message_id {
            v.unexpected.push(format!(
                "change {} is not after its message {}",
                c.seq, c.message_id
            ));
        }
        let actor = c.actor.as_deref().unwrap_or("");
        match c.kind.as_str() {
            "edit" => {
                if actor != m.user {
                    v.unexpected.push(format!(
                        "edit {} of message {} by {}, not its author {}",
                        c.seq, c.message_id, actor, m.user
                    ));
                }
                if m.deleted && !c.body.is_empty() {
                    v.unexpected.push(format!(
                        "edit {} of deleted message {} kept its text",
                        c.seq, c.message_id
                    ));
                }
                edits
                    .entry((c.message_id, c.body.as_str()))
                    .or_default()
                    .push(c.seq);
            }
            "delete" => deletes.entry(c.message_id).or_default().push(c.seq),
            "react" | "unreact" => {
                if m.deleted {
                    v.unexpected.push(format!(
                        "reaction change {} of deleted message {} was kept",
                        c.seq, c.message_id
                    ));
                }
                reaction_log
                    .entry((c.message_id, actor, c.body.as_str()))
                    .or_default()
                    .push((c.seq, c.kind == "react"));
            }
            other => v
                .unexpected
                .push(format!("change {} has kind {other}", c.seq)),
        }
    }
    for ((id, body), seqs) in &edits {
        if seqs.len() > 1 && !body.is_empty() {
            v.duplicated.push(format!(
                "message {id} has {} edit rows with body {body:?}: seqs {seqs:?}",
                seqs.len()
            ));
        }
    }
    for (id, m) in &db.msgs {
        let n = deletes.get(id).map_or(0, Vec::len);
        if n > 1 {
            v.duplicated.push(format!(
                "message {id} has {n} delete rows: seqs {:?}",
                deletes[id]
            ));
        }
        if m.deleted != (n > 0) {
            v.unexpected.push(format!(
                "message {id}: deleted = {}, but {n} delete rows",
                m.deleted
            ));
        }
        if m.deleted && !m.body.is_empty() {
            v.unexpected
                .push(format!("deleted message {id} kept its body {:?}", m.body));
        }
        let edited_rows = edits.keys().filter(|(mid, _)| mid == id).count();
        if !m.deleted && m.edited != (edited_rows > 0) {
            v.unexpected.push(format!(
                "message {id}: edited = {}, but {edited_rows} edit rows",
                m.edited
            ));
        }
    }
    // Replaying the log gives the table; a repeat stores nothing, so kinds alternate,
    // starting with `react`.
    let mut from_log = BTreeSet::new();
    for ((id, user, emoji), log) in &reaction_log {
        let mut state = false;
        for (seq, on) in log {
            if *on == state {
                v.duplicated.push(format!(
                    "{user}'s reaction {emoji} to message {id}: change {seq} repeats the state \
                     (log {log:?})"
                ));
            }
            state = *on;
        }
        if state {
            from_log.insert((*id, user.to_string(), emoji.to_string()));
        }
    }
    for r in from_log.symmetric_difference(&db.reactions) {
        let (id, user, emoji) = r;
        let (in_table, in_log) = (db.reactions.contains(r), from_log.contains(r));
        v.unexpected.push(format!(
            "{user}'s reaction {emoji} to message {id}: in the table {in_table}, \
             by the log {in_log}"
        ));
    }
    for (id, _, _) in &db.reactions {
        if db.msgs.get(id).is_none_or(|m| m.deleted) {
            v.unexpected
                .push(format!("a reaction to message {id}, deleted or missing"));
        }
    }
}

/// Every operation was answered, every acknowledgement is in the database at its position,
/// the current state is the last acknowledged one, and every row was asked for.
fn check_ops(db: &Db, clients: &[Client], v: &mut Verdict) {
    let mut by_key: HashMap<(&str, &str), Vec<i64>> = HashMap::new();
    for (id, m) in &db.msgs {
        if let Some(n) = &m.nonce {
            by_key
                .entry((m.user.as_str(), n.as_str()))
                .or_default()
                .push(*id);
        }
    }
    for ((user, nonce), ids) in &by_key {
        if ids.len() > 1 {
            v.duplicated
                .push(format!("{user} nonce {nonce}: messages {ids:?}"));
        }
    }
    let clients_by_name: HashMap<&str, &Client> =
        clients.iter().map(|c| (c.name.as_str(), c)).collect();
    for c in clients {
        check_client_ops(db, c, v);
    }
    // Every row was asked for.
    for (id, m) in &db.msgs {
        let op = m.nonce.as_ref().and_then(|n| {
            clients_by_name
                .get(m.user.as_str())
                .and_then(|c| c.ops.get(n))
        });
        match op.map(|o| &o.kind) {
            Some(OpKind::Send { body }) => {
                if !m.deleted && !m.edited && m.body != *body {
                    v.unexpected
                        .push(format!("message {id} has body {:?}, sent {body:?}", m.body));
                }
            }
            _ => v.unexpected.push(format!(
                "message {id} by {} with nonce {:?} was never sent",
                m.user, m.nonce
            )),
        }
    }
    for ch in &db.changes {
        let actor = ch.actor.as_deref().unwrap_or("");
        let Some(c) = clients_by_name.get(actor) else {
            v.unexpected
                .push(format!("change {ch:?} by someone who is not a client"));
            continue;
        };
        let deleted = db.msgs.get(&ch.message_id).is_some_and(|m| m.deleted);
        let asked = c.ops.values().any(|op| {
            op.sends > 0
                && match (&op.kind, ch.kind.as_str()) {
                    (OpKind::Edit { id, body }, "edit") => {
                        *id == ch.message_id && (deleted || *body == ch.body)
                    }
                    (OpKind::Delete { id }, "delete") => *id == ch.message_id,
                    (OpKind::React { id, emoji, on }, kind @ ("react" | "unreact")) => {
                        *id == ch.message_id && *emoji == ch.body && *on == (kind == "react")
                    }
                    _ => false,
                }
        });
        if !asked {
            v.unexpected
                .push(format!("change {ch:?}: {actor} never asked for it"));
        }
    }
}

fn check_client_ops(db: &Db, c: &Client, v: &mut Verdict) {
    let name = c.name.as_str();
    // Per message: acknowledged edits (seq, body); edit operations sent.
    let mut acked_edits: BTreeMap<i64, Vec<(i64, &str)>> = BTreeMap::new();
    let mut edits_sent: BTreeMap<i64, usize> = BTreeMap::new();
    // Per (message, emoji): acknowledged reaction states by seq.
    let mut acked_reactions: BTreeMap<(i64, &str), Vec<(i64, bool)>> = BTreeMap::new();
    let mut sent_bodies: BTreeMap<i64, &str> = BTreeMap::new();
    for n in &c.order {
        let op = &c.ops[n];
        let seq = match op.outcome {
            Outcome::Pending => {
                if op.sends > 0 {
                    v.other.push(format!(
                        "{name} {n} ({:?}): sent {} times, never answered",
                        op.kind, op.sends
                    ));
                }
                continue;
            }
            Outcome::Refused => {
                let id = op.kind.target().unwrap_or(0);
                if !db.msgs.get(&id).is_some_and(|m| m.deleted) {
                    v.other.push(format!(
                        "{name} {n} ({:?}) was refused as unknown_message, but message {id} \
                         is not deleted",
                        op.kind
                    ));
                }
                continue;
            }
            Outcome::Acked(seq) => seq,
        };
        let change = db.change(seq);
        let lost = |what: &str| format!("{name} {n} ({:?}) acknowledged at {seq}: {what}", op.kind);
        match &op.kind {
            OpKind::Send { body } => match db.msgs.get(&seq) {
                Some(m) if m.user == name && m.nonce.as_deref() == Some(n.as_str()) => {
                    sent_bodies.insert(seq, body);
                }
                Some(m) => v.lost.push(lost(&format!(
                    "the message there is by {} with nonce {:?}",
                    m.user, m.nonce
                ))),
                None => v.lost.push(lost("no such message")),
            },
            OpKind::Edit { id, body } => {
                *edits_sent.entry(*id).or_default() += 1;
                let deleted = db.msgs.get(id).is_some_and(|m| m.deleted);
                match change {
                    Some(ch)
                        if ch.kind == "edit"
                            && ch.message_id == *id
                            && ch.actor.as_deref() == Some(name)
                            && (ch.body == *body || (deleted && ch.body.is_empty())) =>
                    {
                        acked_edits.entry(*id).or_default().push((seq, body));
                    }
                    other => v.lost.push(lost(&format!("the change there is {other:?}"))),
                }
            }
            OpKind::Delete { id } => {
                match change {
                    Some(ch)
                        if ch.kind == "delete"
                            && ch.message_id == *id
                            && ch.actor.as_deref() == Some(name) => {}
                    other => v.lost.push(lost(&format!("the change there is {other:?}"))),
                }
                match db.msgs.get(id) {
                    Some(m) if m.deleted && m.body.is_empty() => {}
                    Some(m) => v.lost.push(lost(&format!(
                        "the message is not a tombstone (deleted {}, body {:?})",
                        m.deleted, m.body
                    ))),
                    None => v.lost.push(lost("no such message")),
                }
            }
            OpKind::React { id, emoji, on } => {
                if db.msgs.get(id).is_none_or(|m| m.deleted) {
                    // A deletion erases reactions and their log.
                    continue;
                }
                if seq == *id {
                    // A repeat answered for a reaction never made.
                    if *on {
                        v.lost.push(lost("a reaction never made cannot be on"));
                    }
                } else {
                    match change {
                        Some(ch)
                            if ch.message_id == *id
                                && ch.actor.as_deref() == Some(name)
                                && ch.body == *emoji
                                && ch.kind == if *on { "react" } else { "unreact" } => {}
                        other => v.lost.push(lost(&format!("the change there is {other:?}"))),
                    }
                }
                acked_reactions
                    .entry((*id, emoji.as_str()))
                    .or_default()
                    .push((seq, *on));
            }
        }
    }
    // The current body is the last acknowledged edit (or the body sent).
    for (id, sent) in &sent_bodies {
        let m = &db.msgs[id];
        if m.deleted {
            continue;
        }
        let last = acked_edits
            .get(id)
            .and_then(|e| e.iter().max_by_key(|(seq, _)| *seq));
        let expected = last.map_or(*sent, |(_, body)| *body);
        if m.body != expected || m.edited != last.is_some() {
            v.lost.push(format!(
                "{name}'s message {id}: body {:?} (edited {}), but the last acknowledged \
                 edit is {last:?} and the body sent {sent:?}",
                m.body, m.edited
            ));
        }
    }
    // More edit rows than edits asked for: one was stored twice.
    for (id, sent) in &edits_sent {
        let rows = db
            .changes
            .iter()
            .filter(|ch| ch.message_id == *id && ch.kind == "edit")
            .count();
        if rows > *sent {
            v.duplicated.push(format!(
                "{name}'s message {id}: {rows} edit rows for {sent} edits asked for"
            ));
        }
    }
    // The stored reaction is the state of the last acknowledged change.
    for ((id, emoji), acks) in &acked_reactions {
        let (seq, on) = acks
            .iter()
            .max_by_key(|(seq, _)| *seq)
            .expect("one at least");
        let stored = db
            .reactions
            .contains(&(*id, name.to_string(), emoji.to_string()));
        if stored != *on {
            v.lost.push(format!(
                "{name}'s reaction {emoji} to message {id}: stored {stored}, but the last \
                 acknowledged change ({seq}) says {on}"
            ));
        }
    }
}

/// A model equals the database.
fn check_model(who: &str, model: &Model, view: &BTreeMap<i64, MsgState>, v: &mut Verdict) {
    let mut diffs = Vec::new();
    for (id, want) in view {
        match model.msgs.get(id).map(MsgState::normalized) {
            Some(got) if got == *want => {}
            Some(got) => diffs.push(format!("message {id}: sees {got:?}, stored {want:?}")),
            None => diffs.push(format!("message {id}: never seen (stored {want:?})")),
        }
    }
    for id in model.msgs.keys().filter(|id| !view.contains_key(id)) {
        diffs.push(format!("message {id}: seen, not stored"));
    }
    if !diffs.is_empty() {
        v.other.push(format!(
            "{who}'s view differs from the database in {} messages, e.g. {}",
            diffs.len(),
            diffs[..diffs.len().min(3)].join("; ")
        ));
    }
}

/// The search index: its own integrity check passes, each live message is found by the token
/// of its current body only, and no token of a deleted message's texts is found at all.
fn check_search(conn: &rusqlite::Connection, db: &Db, clients: &[Client], v: &mut Verdict) {
    if let Err(e) = conn.execute(
        "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')",
        [],
    ) {
        v.other.push(format!("search index integrity-check: {e}"));
    }
    let mut stmt = conn
        .prepare("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1")
        .expect("prepares");
    let mut find = |token: &str| -> Vec<i64> {
        stmt.query_map([format!("\"{token}\"")], |r| r.get(0))
            .expect("searches")
            .collect::<rusqlite::Result<_>>()
            .expect("reads hits")
    };
    for c in clients {
        // Every token each message of this client ever had or was asked to have.
        let mut tokens: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
        for n in &c.order {
            let op = &c.ops[n];
            match (&op.kind, op.outcome) {
                (OpKind::Send { .. }, Outcome::Acked(id)) => tokens.entry(id).or_default().push(n),
                (OpKind::Edit { id, .. }, _) if op.sends > 0 => {
                    tokens.entry(*id).or_default().push(n)
                }
                _ => {}
            }
        }
        for (id, toks) in tokens {
            let Some(m) = db.msgs.get(&id) else { continue };
            let current = m.body.split(':').next().unwrap_or("");
            for t in toks {
                let hits = find(t);
                let want: Vec<i64> = if !m.deleted && t == current {
                    vec![id]
                } else {
                    Vec::new()
                };
                if hits != want {
                    v.other.push(format!(
                        "search for {t} ({} message {id}, current token {current:?}) finds \
                         {hits:?}, expected {want:?}",
                        if m.deleted { "deleted" } else { "live" }
                    ));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_cycles_lose_no_acknowledged_change() {
    let test = "kill_9_cycles_lose_no_acknowledged_change";
    let seed = seed(test, SEED_VAR, None);
    let cycles = crash_cycles(DEFAULT_CYCLES);
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let http = http_client();
    let mut server = start_server(dir.path());
    let mut clients = Vec::new();
    for idx in 0..CLIENTS {
        let name = format!("client{idx}");
        let token = create_account(&http, server.port, &name).await;
        clients.push(Client::new(idx, name, token, seed));
    }
    let observer_token = create_account(&http, server.port, "observer").await;
    clients = settle_round(clients, server.port, FIRST, &http, "first messages").await;

    let mut kill_moments = Vec::new();
    for cycle in 0..cycles {
        let running = spawn_round(clients, server.port, MIXED, &http);
        let after = Duration::from_millis(rng.range(150, 700));
        kill_moments.push(after.as_millis());
        tokio::time::sleep(after).await;
        server.kill_9();
        clients = join_round(running, &format!("kill cycle {cycle}"))
            .await
            .into_iter()
            .map(|(mut c, end)| {
                if matches!(end, End::Finished | End::Hung) {
                    c.violation(format!("cycle {cycle}: connection ended with {end:?}"));
                }
                c
            })
            .collect();
        server = start_server(dir.path());
    }
    let during = totals(&clients);

    // Resend until everything is answered, then let every client resume once more, and
    // read the whole room as a fresh client.
    let clients = settle_round(clients, server.port, DRAIN, &http, "final resend").await;
    let clients = settle_round(clients, server.port, DRAIN, &http, "final resume").await;
    let mut fresh = Client::new(CLIENTS, "observer".to_string(), observer_token, seed);
    let end = fresh.run_connection(server.port, DRAIN, &http).await;
    if end != End::Finished {
        fresh.violation(format!("?since=0 connection ended with {end:?}"));
    }
    let status = server.sigterm(HANG);
    assert!(status.success(), "hearth exited with {status} on SIGTERM");

    let conn = rusqlite::Connection::open(db_path(dir.path())).expect("opens the database");
    let mut v = Verdict::default();
    let db = Db::read(&conn, &mut v);
    v.rows = db.msgs.len() + db.changes.len();
    check_log(&db, &mut v);
    check_ops(&db, &clients, &mut v);
    let view = db.view();
    check_model("a fresh ?since=0 client", &fresh.model, &view, &mut v);
    for c in &clients {
        check_model(&c.name, &c.model, &view, &mut v);
    }
    check_search(&conn, &db, &clients, &mut v);
    for c in clients.iter().chain([&fresh]) {
        v.other.extend(c.violations.iter().cloned());
    }

    let s = totals(&clients);
    let count = |kind: &str| db.changes.iter().filter(|c| c.kind == kind).count();
    println!("{test}: kill moments (ms) {kill_moments:?}");
    println!(
        "durability of changes: {cycles} kill -9 cycles, {CLIENTS} clients, {} operations sent \
         before the final resend ({} acknowledged by then); in all {} operations ({} sends, \
         {} edits, {} deletes, {} reactions) in {} frames over {} connections, {} acknowledged \
         ({} answered as repeats), {} refused as deleted, {} in doubt at a kill ({} found \
         committed on replay, {} settled on resend); head {}: {} messages ({} deleted), {} \
         changes ({} edits, {} deletes, {} reaction changes), {} reactions, the fresh \
         ?since=0 view up to {}; {}; {:.1} s",
        during.ops(),
        during.acked,
        s.ops(),
        s.sends,
        s.edits,
        s.deletes,
        s.reacts,
        s.frames,
        s.connections,
        s.acked,
        s.repeats,
        s.refused,
        s.in_doubt,
        s.found_on_replay,
        s.settled_on_resend,
        db.head(),
        db.msgs.len(),
        db.msgs.values().filter(|m| m.deleted).count(),
        db.changes.len(),
        count("edit"),
        count("delete"),
        count("react") + count("unreact"),
        db.reactions.len(),
        fresh.max_seen,
        v.counts(),
        started.elapsed().as_secs_f64()
    );
    assert_clean(&v, test, seed, dir.path());
    assert!(during.ops() > 0, "nothing was sent while killing");
    assert!(
        s.edits > 0 && s.deletes > 0 && s.reacts > 0,
        "every kind of change was made"
    );
    assert_eq!(s.acked + s.refused, s.ops(), "every operation was answered");
}
