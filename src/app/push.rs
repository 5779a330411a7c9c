//! Web Push: a mention or a direct message for someone with no open connection reaches their
//! subscribed browsers (and phones) as an encrypted push, through the outbound client.
//!
//! The server's VAPID key is made on first use and kept in the database. Each new message
//! is handed, off the fan-out thread, to one task that decides whom it concerns (the users it
//! mentions; every other member of a direct conversation), keeps those with no open
//! connection, and pushes `{"room","id","user","body","reason"}` (at most 200 characters of
//! body) to each of their subscriptions. An endpoint that answers 404 or 410 is forgotten.
//!
//! Each device chooses what it wants ([`PushLevel`]: mentions and direct messages, every
//! message of the rooms its user hears every message of as well, or nothing for now) and
//! quiet hours on its own clock; the room's own level (muted, mentions only) applies too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use tokio::sync::{mpsc, OnceCell, Semaphore};
use url::Url;

use crate::app::error::{AppError, Code};
use crate::app::App;
use crate::db::queries::{PushReason, PushSettings, PushSubscription};
use crate::db::StoredMessage;
use crate::hub::Watcher;
use crate::model::{PushLevel, QuietHours, MAX_UTC_OFFSET};
use crate::outbound::webpush::{encrypt, Vapid};
use crate::outbound::{check_url, Outbound, OutboundError};

/// Messages waiting to be looked at; more are dropped (nobody missed a live message: a push is
/// a nudge).
const QUEUE: usize = 1024;
/// Pushes sent at once.
const SENDERS: usize = 8;
/// Characters of the body a push carries.
const EXCERPT: usize = 200;
/// How often, at most, the subscriptions are counted again when a message had no target.
const RECOUNT_EVERY: Duration = Duration::from_secs(60);
/// On PostgreSQL, how often the subscriptions are counted again: another node may have
/// added the first one (someone subscribing is online then, and pushes go only to people
/// with no connection, so this second hardly matters).
const CLUSTER_RECOUNT_EVERY: Duration = Duration::from_secs(1);
/// How long a push service keeps an undelivered push (its `TTL`), in seconds.
const TTL_SECONDS: u64 = 24 * 3600;
/// How stale a device's "last accepted push" time may get before it is written again.
const LAST_OK_EVERY_MS: i64 = 60_000;
/// The name of the VAPID key in `server_keys`.
const VAPID_KEY: &str = "vapid";
/// How long an endpoint that does not answer is left out (after a timeout, or a few failures
/// in a row): a push service that is down, or one made to hold connections open, then costs
/// one of the few senders once per pause, not once per message.
const UNREACHABLE_PAUSE: Duration = Duration::from_secs(600);
/// Endpoints remembered as unreachable, at most (the oldest pause is forgotten first).
const UNREACHABLE_KEPT: usize = 10_000;

/// What the sender needs of a new message.
struct Note {
    room_id: i64,
    room: String,
    id: i64,
    user: String,
    body: String,
    mentioned: Vec<i64>,
    /// An edit that newly mentions `mentioned`: it concerns them alone (everyone else was
    /// pushed the message when it was sent).
    edit: bool,
}

/// The VAPID key, read (or made) once, and how many subscriptions may exist (the fan-out
/// hands nothing over while there are none).
#[derive(Default)]
pub struct PushKeys {
    key: OnceCell<Arc<Vapid>>,
    subscriptions: Arc<AtomicUsize>,
    /// Held while the subscriptions are counted again (see `recount`).
    recounting: tokio::sync::Mutex<()>,
    /// The sender's queue, for the mentions an edit adds (new messages reach it through the
    /// hub's watcher).
    queue: std::sync::OnceLock<mpsc::Sender<Note>>,
    /// Endpoints that failed lately: how many times in a row, and until when they are left
    /// out.
    unreachable: std::sync::Mutex<std::collections::HashMap<String, Failing>>,
}

/// An endpoint's failures in a row, and until when it is left out (if it is).
#[derive(Clone, Copy)]
struct Failing {
    times: u32,
    until: Option<std::time::Instant>,
}

/// Failures in a row (other than a timeout) after which an endpoint is left out: one
/// hiccup of a push service does not silence a device.
const FAILURES_BEFORE_PAUSE: u32 = 3;

impl PushKeys {
    /// Whether `endpoint` is left out for now.
    fn paused(&self, endpoint: &str) -> bool {
        let paused = self.unreachable.lock().unwrap_or_else(|e| e.into_inner());
        paused
            .get(endpoint)
            .and_then(|f| f.until)
            .is_some_and(|until| until > std::time::Instant::now())
    }

    /// `endpoint` answered: its failures are forgotten.
    fn answered(&self, endpoint: &str) {
        let mut failing = self.unreachable.lock().unwrap_or_else(|e| e.into_inner());
        failing.remove(endpoint);
    }

    /// A push to `endpoint` failed; it is left out for [`UNREACHABLE_PAUSE`] at once when
    /// `at_once` (it held a sender until the timeout), else after
    /// [`FAILURES_BEFORE_PAUSE`] failures in a row.
    fn failed(&self, endpoint: &str, at_once: bool) {
        let now = std::time::Instant::now();
        let mut failing = self.unreachable.lock().unwrap_or_else(|e| e.into_inner());
        if failing.len() >= UNREACHABLE_KEPT && !failing.contains_key(endpoint) {
            failing.retain(|_, f| f.until.is_some_and(|u| u > now));
            if failing.len() >= UNREACHABLE_KEPT {
                return;
            }
        }
        let f = failing.entry(endpoint.to_string()).or_insert(Failing {
            times: 0,
            until: None,
        });
        f.times += 1;
        if at_once || f.times >= FAILURES_BEFORE_PAUSE {
            *f = Failing {
                times: 0,
                until: Some(now + UNREACHABLE_PAUSE),
            };
        }
    }
}

/// An edit of message `msg` (as it now is) mentions `users`, who were not mentioned before:
/// those of them with no open connection are pushed it, as for a new message that mentions
/// them (on the node that stored the edit, as a new message is pushed by the node that
/// stored it).
pub fn mentioned_by_edit(state: &App, msg: &StoredMessage, users: &[i64]) {
    let Some(queue) = state.push_keys.queue.get() else {
        return;
    };
    if users.is_empty() || state.push_keys.subscriptions.load(Ordering::Relaxed) == 0 {
        return;
    }
    let _ = queue.try_send(Note {
        edit: true,
        ..Note::of(msg, users)
    });
}

impl Note {
    /// The note of a new message `msg` that mentions `mentioned`.
    fn of(msg: &StoredMessage, mentioned: &[i64]) -> Note {
        Note {
            room_id: msg.room_id,
            room: msg.room.clone(),
            id: msg.id,
            user: msg.user.clone(),
            body: msg.body.chars().take(EXCERPT).collect(),
            mentioned: mentioned.to_vec(),
            edit: false,
        }
    }
}

async fn vapid(state: &App) -> Result<Arc<Vapid>, AppError> {
    state
        .push_keys
        .key
        .get_or_try_init(|| async {
            let pkcs8 = state.db.server_key(VAPID_KEY, Vapid::generate).await?;
            Vapid::from_pkcs8(&pkcs8).map(Arc::new).map_err(|e| {
                tracing::error!("the stored VAPID key: {e}");
                AppError::new(Code::Internal, "The server's push key is damaged.")
            })
        })
        .await
        .cloned()
}

/// `GET /api/push/key`: the public key browsers subscribe with (base64url).
pub async fn public_key(state: &App) -> Result<String, AppError> {
    Ok(vapid(state).await?.public_key())
}

/// What a device asks to change of its settings, as it was sent.
#[derive(Debug, Default)]
pub struct SettingsRequest {
    /// What to push.
    pub level: Option<PushLevel>,
    /// Quiet hours as `HH:MM` times; `Some(None)` removes them.
    pub quiet: Option<Option<(String, String)>>,
    /// The device's offset from UTC in minutes east.
    pub utc_offset: Option<i64>,
}

impl SettingsRequest {
    /// The change, checked. Refusal: `bad_request` (times that are not `HH:MM` or are the
    /// same, an offset beyond ±14 hours).
    fn check(self) -> Result<PushSettings, AppError> {
        let quiet = match self.quiet {
            None => None,
            Some(None) => Some(None),
            Some(Some((start, end))) => {
                Some(Some(QuietHours::parse(&start, &end).ok_or_else(|| {
                    AppError::new(
                        Code::BadRequest,
                        "Quiet hours are two different times of day, such as 22:00 and 07:00.",
                    )
                })?))
            }
        };
        let utc_offset = match self.utc_offset {
            None => None,
            Some(m) if m.unsigned_abs() <= u64::from(MAX_UTC_OFFSET.unsigned_abs()) => {
                Some(m as i16)
            }
            Some(_) => {
                return Err(AppError::new(
                    Code::BadRequest,
                    "utc_offset is minutes east of UTC, from -840 to 840.",
                ))
            }
        };
        Ok(PushSettings {
            level: self.level,
            quiet,
            utc_offset,
        })
    }
}

/// Keep `user_id`'s subscription, made through the session whose token hashes to `session`
/// (signing out ends it), with `settings`; the subscription as stored. Refusal:
/// `bad_endpoint` (not an https URL, unless private networks are allowed; an address Hearth
/// may not reach; keys that are not a P-256 point and a 16-byte secret), `bad_request`
/// (settings).
pub async fn subscribe(
    state: &App,
    (user_id, session): (i64, [u8; 32]),
    endpoint: &str,
    (p256dh, auth): (&str, &str),
    settings: SettingsRequest,
) -> Result<PushSubscription, AppError> {
    let allow_private = state.config.outbound.allow_private_networks;
    let url = Url::parse(endpoint)
        .ok()
        .filter(|_| endpoint.len() <= 2048)
        .ok_or_else(|| bad_endpoint("The endpoint is not a URL."))?;
    if url.scheme() != "https" && !allow_private {
        return Err(bad_endpoint("A push endpoint is an https:// URL."));
    }
    check_url(&url, allow_private)
        .map_err(|_| bad_endpoint("Hearth may not send to that endpoint."))?;
    let key = B64URL.decode(p256dh.trim_end_matches('='));
    let secret = B64URL.decode(auth.trim_end_matches('='));
    let (Ok(key), Ok(secret)) = (key, secret) else {
        return Err(bad_endpoint("The subscription's keys are not base64url."));
    };
    // Encrypting an empty push checks the key is a point of the curve, not just its shape:
    // else every push to it would fail later, with nobody told.
    if crate::outbound::webpush::encrypt(&key, &secret, b"").is_err() {
        return Err(bad_endpoint(
            "The subscription's keys are not a P-256 public key and a 16-byte secret.",
        ));
    }
    let settings = settings.check()?;
    let stored = state
        .db
        .subscribe_push(url.to_string(), (user_id, session), (key, secret), settings)
        .await?;
    state
        .push_keys
        .subscriptions
        .fetch_add(1, Ordering::Relaxed);
    Ok(stored)
}

/// Change what `user_id`'s device `endpoint` wants pushed. Refusal: `unknown_subscription`,
/// `bad_request`.
pub async fn update(
    state: &App,
    user_id: i64,
    endpoint: &str,
    settings: SettingsRequest,
) -> Result<PushSubscription, AppError> {
    let settings = settings.check()?;
    state
        .db
        .set_push_settings(endpoint_key(endpoint), user_id, settings)
        .await?
        .ok_or_else(|| {
            AppError::new(
                Code::UnknownSubscription,
                "This device has no push subscription here; turn push notifications on again.",
            )
        })
}

/// `user_id`'s devices that receive pushes.
pub async fn devices(state: &App, user_id: i64) -> Result<Vec<PushSubscription>, AppError> {
    Ok(state.db.push_subscriptions_of(user_id).await?)
}

/// Forget `user_id`'s subscription `endpoint` (nothing to forget is fine).
pub async fn unsubscribe(state: &App, user_id: i64, endpoint: &str) -> Result<(), AppError> {
    state
        .db
        .unsubscribe_push(&endpoint_key(endpoint), Some(user_id))
        .await?;
    recount(state).await;
    Ok(())
}

/// Count the subscriptions again and lower the watcher's count to it, unless a subscription
/// was added meanwhile: a subscriber raises the count only after its row committed, so
/// either this count saw the row, or the raise comes after the exchange. The count never
/// drops below what exists, so no push is missed.
async fn recount(state: &App) {
    // One recount at a time: two interleaved ones could each swap from a value the other
    // had already moved (an ABA), and lower the count below what exists.
    let _one = state.push_keys.recounting.lock().await;
    let counter = &state.push_keys.subscriptions;
    let before = counter.load(Ordering::Acquire);
    match state.db.push_subscription_count().await {
        Ok(n) => {
            let _ = counter.compare_exchange(
                before,
                n.max(0) as usize,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        Err(e) => tracing::warn!("cannot count push subscriptions: {e}"),
    }
}

/// An endpoint as it is stored (as the URL parser writes it).
fn endpoint_key(endpoint: &str) -> String {
    Url::parse(endpoint)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| endpoint.to_string())
}

/// Start the sender; what the hub should call with each new message.
pub fn start(state: &App) -> Option<Watcher> {
    let (tx, rx) = mpsc::channel::<Note>(QUEUE);
    let _ = state.push_keys.queue.set(tx.clone());
    let subscriptions = state.push_keys.subscriptions.clone();
    let counting = state.clone();
    tokio::spawn(async move {
        match counting.db.push_subscription_count().await {
            Ok(n) => {
                subscriptions.fetch_add(n.max(0) as usize, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!("cannot count push subscriptions: {e}"),
        }
        send_loop(counting, rx).await;
    });
    if state.db.is_postgres() {
        let state = state.clone();
        tokio::spawn(async move {
            let mut stop = state.shutdown.clone();
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(CLUSTER_RECOUNT_EVERY) => recount(&state).await,
                }
            }
        });
    }
    let subscriptions = state.push_keys.subscriptions.clone();
    Some(Box::new(move |msg: &StoredMessage, mentioned: &[i64]| {
        if subscriptions.load(Ordering::Relaxed) == 0 {
            return;
        }
        // Cheap on the fan-out thread: direct conversations are told apart by the sender.
        let _ = tx.try_send(Note::of(msg, mentioned));
    }))
}

/// Notes taken from the queue at once (one store read for all of them).
const BATCH: usize = 256;

async fn send_loop(state: App, mut rx: mpsc::Receiver<Note>) {
    let client = Outbound::new(&state.config.outbound);
    let senders = Arc::new(Semaphore::new(SENDERS));
    let mut stop = state.shutdown.clone();
    let mut notes = Vec::with_capacity(BATCH);
    let mut last_recount = tokio::time::Instant::now();
    loop {
        notes.clear();
        let got = tokio::select! {
            _ = stop.changed() => return,
            got = rx.recv_many(&mut notes, BATCH) => got,
        };
        if got == 0 {
            return;
        }
        let asks = notes
            .iter()
            .map(|n| (n.room_id, n.user.clone(), n.mentioned.clone(), n.edit))
            .collect();
        let targets = match state.db.push_targets(asks).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("cannot read push subscriptions: {e}");
                continue;
            }
        };
        if targets.iter().all(Vec::is_empty) && last_recount.elapsed() >= RECOUNT_EVERY {
            // Subscriptions also end with their sign-in (in the database, unseen here): when
            // nobody was a target, count them again, so the watcher can go quiet.
            last_recount = tokio::time::Instant::now();
            recount(&state).await;
        }
        let now = crate::db::now_ms();
        for (note, targets) in notes.drain(..).zip(targets) {
            let targets: Vec<(PushSubscription, PushReason)> = targets
                .into_iter()
                .filter(|(s, _)| !s.quiet.is_some_and(|q| q.contains(now, s.utc_offset)))
                .collect();
            if targets.is_empty() {
                continue;
            }
            let users: Vec<i64> = targets.iter().map(|(s, _)| s.user_id).collect();
            let mut offline = state.hub.offline(&users);
            if let Some(cluster) = &state.cluster {
                // Not connected here, but maybe to another node (without Redis: push).
                if let Some(elsewhere) = cluster.presence.online_among(&offline).await {
                    offline.retain(|u| !elsewhere.contains(u));
                }
            }
            for (sub, reason) in targets {
                if !offline.contains(&sub.user_id) || state.push_keys.paused(&sub.endpoint) {
                    continue;
                }
                let payload = serde_json::json!({
                    "room": note.room,
                    "id": note.id,
                    "user": note.user,
                    "body": note.body,
                    "reason": reason.as_str(),
                })
                .to_string();
                let Ok(permit) = senders.clone().acquire_owned().await else {
                    return;
                };
                let (state, client) = (state.clone(), client.clone());
                tokio::spawn(async move {
                    push(&state, &client, &sub, payload.as_bytes()).await;
                    drop(permit);
                });
            }
        }
    }
}

/// Send one push; forget the subscription when its endpoint says it is gone.
async fn push(state: &App, client: &Outbound, sub: &PushSubscription, payload: &[u8]) {
    let Ok(vapid) = vapid(state).await else {
        return;
    };
    let Ok(url) = Url::parse(&sub.endpoint) else {
        return;
    };
    let body = match encrypt(&sub.p256dh, &sub.auth, payload) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("cannot encrypt a push: {e}");
            return;
        }
    };
    let audience = url.origin().ascii_serialization();
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 12 * 3600;
    let subject = match state.config.public_url() {
        Some(u) if u.starts_with("https://") => u.to_string(),
        _ => "mailto:postmaster@localhost".to_string(),
    };
    let headers = vec![
        (
            "authorization",
            vapid.authorization(&audience, expires, &subject),
        ),
        ("content-encoding", "aes128gcm".to_string()),
        ("ttl", TTL_SECONDS.to_string()),
        ("urgency", "high".to_string()),
    ];
    match client
        .post(&url, "application/octet-stream", headers, body.into())
        .await
    {
        Ok(answer) if answer.status.is_success() => {
            state.push_keys.answered(&sub.endpoint);
            // "Last push" is shown to people, not used for decisions: at most one write a
            // minute per device keeps busy rooms' pushes off the single writer.
            let recent = sub
                .last_ok_at
                .is_some_and(|t| crate::db::now_ms() - t < LAST_OK_EVERY_MS);
            if !recent {
                let _ = state.db.push_accepted(&sub.endpoint).await;
            }
        }
        Ok(answer) if matches!(answer.status.as_u16(), 404 | 410) => {
            tracing::info!("push endpoint gone ({}); forgetting it", answer.status);
            if state.db.unsubscribe_push(&sub.endpoint, None).await.is_ok() {
                recount(state).await;
            }
        }
        Ok(answer) => tracing::debug!("push refused: {}", answer.status),
        Err(e) => {
            tracing::debug!("push failed: {e}");
            let at_once = matches!(
                e,
                OutboundError::Timeout | OutboundError::Refused { .. } | OutboundError::BadPort(_)
            );
            state.push_keys.failed(&sub.endpoint, at_once);
        }
    }
}

fn bad_endpoint(why: &'static str) -> AppError {
    AppError::new(Code::BadEndpoint, why)
}
