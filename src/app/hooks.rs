//! Webhooks, both ways.
//!
//! **Incoming**: a member makes a hook for a room; it has a name (an account of its own that
//! can post only through the hook, a member of that room only) and a URL with a secret token.
//! A `POST {"text"}` to the URL, with no session and no Origin, posts to the room under the
//! hook's name, through the same checks and rate limit as any message.
//!
//! **Outgoing**: a member adds a URL to a room; every later message of the room is POSTed there
//! as JSON, signed with HMAC-SHA256 of the body under the webhook's secret. The delivery is
//! queued by the writer in the message's own insert, so a committed message is a delivery
//! owed, across restarts and crashes. One sender task works through the queues: for each
//! webhook only the oldest queued message is tried, so each receives its messages in id
//! order; a failure (no answer, or not 2xx) is retried with exponential back-off (1 s
//! doubling to 10 min) until a day has passed, then dropped and noted on the webhook. At least
//! once: a delivery whose 2xx answer was not yet recorded when the server died is sent again.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{Notify, Semaphore};
use url::Url;

use crate::app::error::{AppError, Code};
use crate::app::messages::{self, Draft};
use crate::app::rooms;
use crate::app::App;
use crate::auth::token;
use crate::db::queries::{DueDelivery, HookRow, WebhookRow};
use crate::db::{HookMade, NewHook, Room, RoomKind, StoredMessage, User};
use crate::domain::Username;
use crate::outbound::{check_url, Outbound, OutboundError};
use crate::protocol::MessageView;

/// Incoming hooks one room may have.
pub const MAX_HOOKS_PER_ROOM: i64 = 10;
/// Outgoing webhooks one room may have.
pub const MAX_WEBHOOKS_PER_ROOM: i64 = 10;
/// How long a delivery is retried before it is dropped.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The longest pause between two attempts of one delivery.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// Deliveries in flight at once (each to a different webhook).
const SENDERS: usize = 8;
/// How often the sender looks at the queue when nothing woke it.
const IDLE_POLL: Duration = Duration::from_secs(2);
/// The least the sender waits after a pass that sent nothing.
const MIN_WAIT: Duration = Duration::from_millis(50);
/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-hearth-signature";

/// What the sender shares with the rest of the server: a bell to ring when a message may have
/// queued deliveries.
#[derive(Default)]
pub struct Deliveries {
    bell: Notify,
}

impl Deliveries {
    /// A message that may owe deliveries was stored: wake the sender.
    pub fn ring(&self) {
        self.bell.notify_one();
    }
}

/// An incoming hook as its creator first sees it: with its secret URL.
pub struct CreatedHook {
    /// The hook.
    pub hook: HookRow,
    /// `…/api/hooks/{id}/{token}`, shown once.
    pub url: String,
}

/// Make an incoming hook called `name` for room `room_name`, which `user` belongs to. `base` is
/// the server's address as the client reaches it. Refusals: `unknown_room`,
/// `not_a_member`, `invalid_username` (the name), `username_taken`, `too_many_hooks`,
/// `forbidden` (a DM), `rate_limited` (`limits.rooms_per_hour` hooks made in the last hour).
pub async fn create_hook(
    state: &App,
    user: &User,
    room_name: &str,
    name: &str,
    base: &str,
) -> Result<CreatedHook, AppError> {
    let room = member_room(state, user, room_name).await?;
    let name = Username::parse(name).map_err(|why| AppError::new(Code::InvalidUsername, why))?;
    // A hook is an account of its own (its name is taken for good): made at most as often
    // as rooms are, per hour, and only a hook actually made counts.
    let quota = crate::app::rooms::take_quota(
        state,
        "hooks",
        user.id,
        state.config.limits.rooms_per_hour,
        "You have made many hooks in the last hour; try again later.",
    )
    .await?;
    let made = make_hook(state, user, room.id, &name).await;
    if made.is_err() {
        state.quotas.release(&quota).await;
    }
    let (id, secret) = made?;
    let hook = state.db.hook(&id).await?.ok_or_else(unknown_hook)?.hook;
    Ok(CreatedHook {
        url: format!("{}/api/hooks/{id}/{secret}", base.trim_end_matches('/')),
        hook,
    })
}

/// Store a new hook called `name` in room `room_id`; its id and secret.
async fn make_hook(
    state: &App,
    user: &User,
    room_id: i64,
    name: &Username,
) -> Result<(String, String), AppError> {
    let (secret, token_hash) = token::generate();
    let (id, _) = token::generate();
    let id: String = id.chars().take(16).collect();
    let made = NewHook {
        id: id.clone(),
        token_hash: token_hash.to_vec(),
        name: name.as_str().to_string(),
        key: name.key(),
    };
    match state
        .db
        .create_hook(made, room_id, (user.id, MAX_HOOKS_PER_ROOM))
        .await?
    {
        HookMade::Made(_) => Ok((id, secret)),
        HookMade::NameTaken => Err(AppError::new(
            Code::UsernameTaken,
            "That name is taken. Hooks post under a name of their own.",
        )),
        HookMade::TooMany => Err(too_many("incoming hooks", MAX_HOOKS_PER_ROOM)),
    }
}

/// Post `text` through hook `id` presenting `secret`. Refusals: `unknown_hook` (no such hook,
/// or the wrong secret: the same answer), those of a message (`empty_message`,
/// `message_too_long`), `rate_limited`.
pub async fn post_through(
    state: &App,
    id: &str,
    secret: &str,
    text: String,
) -> Result<StoredMessage, AppError> {
    let auth = state.db.hook(id).await?.ok_or_else(unknown_hook)?;
    let given = token::digest(secret);
    if !token::well_formed(secret)
        || !bool::from(subtle::ConstantTimeEq::ct_eq(
            &given[..],
            &auth.token_hash[..],
        ))
    {
        return Err(unknown_hook());
    }
    let (hook, account) = (auth.hook, auth.account);
    if !auth.active {
        return Err(AppError::new(
            Code::Forbidden,
            "Whoever made this hook has left its room or been disabled; it posts again once \
             they are back.",
        ));
    }
    let username = Arc::from(hook.name.as_str());
    let draft = Draft {
        user_id: account,
        username: &username,
        origin: 0,
        room: &hook.room,
        known: Some((hook.room_id, Arc::from(hook.room.as_str()))),
        body: text,
        nonce: None,
        reply_to: None,
        attachments: Vec::new(),
    };
    let msg = messages::post(state, draft, async || {
        let why = "This hook is posting too fast.";
        state.message_rate.spend(account, why).await
    })
    .await?;
    if let Err(e) = state.db.touch_hook(id).await {
        tracing::warn!("cannot note the use of hook {id}: {e}");
    }
    Ok(msg)
}

/// The incoming hooks of a room `user` belongs to.
pub async fn hooks(state: &App, user: &User, room_name: &str) -> Result<Vec<HookRow>, AppError> {
    let room = member_room(state, user, room_name).await?;
    Ok(state.db.hooks(Some(room.id)).await?)
}

/// Remove hook `id` of room `room_name` (`None`: any room, for an administrator). Allowed
/// to whoever made it, the room's creator and administrators. Refusals: `unknown_hook`,
/// `forbidden`.
pub async fn delete_hook(
    state: &App,
    (user, is_admin): (&User, bool),
    room_name: Option<&str>,
    id: &str,
) -> Result<(), AppError> {
    let auth = state.db.hook(id).await?.ok_or_else(unknown_hook)?;
    check_manage(
        state,
        (user, is_admin),
        room_name,
        (auth.hook.room_id, auth.maker),
        "hook",
    )
    .await?;
    state.db.delete_hook(id).await?;
    Ok(())
}

/// An outgoing webhook as its creator first sees it: with its signing secret.
pub struct CreatedWebhook {
    /// The webhook.
    pub webhook: WebhookRow,
    /// The secret its deliveries are signed with, shown once.
    pub secret: String,
}

/// Add an outgoing webhook posting every later message of `room_name` to `url`. Refusals:
/// `unknown_room`, `not_a_member`, `bad_url` (not an http(s) URL, credentials in it, or an
/// address Hearth may not reach), `too_many_hooks`.
pub async fn create_webhook(
    state: &App,
    user: &User,
    room_name: &str,
    url: &str,
) -> Result<CreatedWebhook, AppError> {
    let room = member_room(state, user, room_name).await?;
    let parsed = Url::parse(url.trim())
        .ok()
        .filter(|_| url.len() <= 2048)
        .ok_or_else(|| bad_url("That is not a web address (http:// or https://)."))?;
    if let Err(e) = check_url(&parsed, state.config.outbound.allow_private_networks) {
        return Err(bad_url(match e {
            OutboundError::Refused { .. } => {
                "Hearth may not send to that address (it is not a public one)."
            }
            OutboundError::BadPort(_) => {
                "Hearth may not send to that port (browsers refuse it too: it belongs to mail, \
                 shell access and the like)."
            }
            _ => "A webhook URL is http:// or https://, without a user name or password.",
        }));
    }
    let (secret, _) = token::generate();
    let made = state
        .db
        .create_webhook(
            room.id,
            (parsed.to_string(), secret.clone()),
            (user.id, MAX_WEBHOOKS_PER_ROOM),
        )
        .await?;
    let webhook = match made {
        HookMade::Made(webhook) => webhook.ok_or_else(unknown_hook)?,
        HookMade::NameTaken => return Err(unknown_hook()),
        HookMade::TooMany => return Err(too_many("outgoing webhooks", MAX_WEBHOOKS_PER_ROOM)),
    };
    Ok(CreatedWebhook { webhook, secret })
}

/// The outgoing webhooks of a room `user` belongs to, with their delivery state.
pub async fn webhooks(
    state: &App,
    user: &User,
    room_name: &str,
) -> Result<Vec<WebhookRow>, AppError> {
    let room = member_room(state, user, room_name).await?;
    Ok(state.db.webhooks(Some(room.id)).await?)
}

/// Remove outgoing webhook `id` of room `room_name` (`None`: any room, for an
/// administrator), with whatever it still had to deliver. Allowed as for hooks.
pub async fn delete_webhook(
    state: &App,
    (user, is_admin): (&User, bool),
    room_name: Option<&str>,
    id: i64,
) -> Result<(), AppError> {
    let (webhook, maker) = state.db.webhook(id).await?.ok_or_else(unknown_hook)?;
    check_manage(
        state,
        (user, is_admin),
        room_name,
        (webhook.room_id, maker),
        "webhook",
    )
    .await?;
    state.db.delete_webhook(id).await?;
    Ok(())
}

/// Every hook and webhook of the server (administrators).
pub async fn all(state: &App, is_admin: bool) -> Result<(Vec<HookRow>, Vec<WebhookRow>), AppError> {
    admin_only(is_admin)?;
    Ok((state.db.hooks(None).await?, state.db.webhooks(None).await?))
}

/// Whether `user` may remove a `what` of room `room_id` made by `maker`: asked through
/// `room_name` (which must be that room, and theirs), or (`None`) as an administrator.
async fn check_manage(
    state: &App,
    (user, is_admin): (&User, bool),
    room_name: Option<&str>,
    (room_id, maker): (i64, Option<i64>),
    what: &str,
) -> Result<(), AppError> {
    let room = match room_name {
        Some(name) => {
            let room = member_room(state, user, name).await?;
            if room.id != room_id {
                return Err(unknown_hook());
            }
            Some(room)
        }
        None => None,
    };
    if may_manage((user, is_admin), room.as_ref(), maker) {
        return Ok(());
    }
    Err(AppError::new(
        Code::Forbidden,
        format!(
            "Only whoever made it, the room's creator or an administrator may remove a {what}."
        ),
    ))
}

/// `forbidden` unless the caller administers the server.
pub fn admin_only(is_admin: bool) -> Result<(), AppError> {
    if is_admin {
        Ok(())
    } else {
        Err(AppError::new(Code::Forbidden, "Administrators only."))
    }
}

fn may_manage((user, is_admin): (&User, bool), room: Option<&Room>, maker: Option<i64>) -> bool {
    is_admin
        || maker == Some(user.id)
        || room.is_some_and(|r| {
            r.kind == RoomKind::Room && r.created_by.as_deref() == Some(user.username.as_str())
        })
}

async fn member_room(state: &App, user: &User, name: &str) -> Result<Room, AppError> {
    let room = rooms::member_room(state, user.id, name).await?;
    if room.kind == RoomKind::Dm {
        return Err(AppError::new(
            Code::Forbidden,
            "Direct conversations have no hooks.",
        ));
    }
    Ok(room)
}

/// Drop what paused webhooks (their maker left the room, or was disabled) had waiting
/// (hourly, with the uploads' sweep).
pub async fn sweep(state: &App) {
    match state.db.drop_paused_deliveries().await {
        Ok(0) => {}
        Ok(n) => tracing::info!("dropped {n} deliveries of webhooks whose maker is away"),
        Err(e) => tracing::warn!("cannot drop the deliveries of paused webhooks: {e}"),
    }
}

/// Start the sender (once, at start).
pub fn start(state: &App) {
    tokio::spawn(send_loop(state.clone()));
}

/// Work through the delivery queues until the server stops.
async fn send_loop(state: App) {
    let client = Outbound::new(&state.config.outbound);
    let senders = Arc::new(Semaphore::new(SENDERS));
    let mut stop = state.shutdown.clone();
    // On PostgreSQL, what a node takes is its own for this long (longer than any attempt):
    // after that, should it have died, another node delivers it.
    let claim = Duration::from_secs(state.config.outbound.timeout_seconds + 30);
    loop {
        if let Err(e) = state.db.recount_webhooks().await {
            tracing::warn!("cannot count the webhooks: {e}");
        }
        let wait = match state.db.due_deliveries(SENDERS as u32, claim).await {
            Ok((due, next)) => {
                let mut running = Vec::new();
                for d in due {
                    let permit = senders.clone().acquire_owned().await;
                    let (state, client) = (state.clone(), client.clone());
                    running.push(tokio::spawn(async move {
                        deliver(&state, &client, d).await;
                        drop(permit);
                    }));
                }
                let worked = !running.is_empty();
                for r in running {
                    let _ = r.await;
                }
                if worked {
                    continue;
                }
                // Nothing was sent: never poll again at once, whatever the queue says.
                let now = crate::db::now_ms();
                next.map(|at| Duration::from_millis((at - now).clamp(0, 600_000) as u64))
                    .unwrap_or(IDLE_POLL)
                    .clamp(MIN_WAIT, IDLE_POLL)
            }
            Err(e) => {
                tracing::warn!("cannot read the webhook queue: {e}");
                IDLE_POLL
            }
        };
        tokio::select! {
            _ = stop.changed() => return,
            _ = state.deliveries.bell.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Try one delivery and record what happened.
async fn deliver(state: &App, client: &Outbound, d: DueDelivery) {
    let outcome = attempt(state, client, &d).await;
    let now = crate::db::now_ms();
    let recorded = match outcome {
        Ok(status) => {
            state
                .db
                .delivery_done(d.webhook_id, d.message_id, i64::from(status))
                .await
        }
        Err((status, error)) => {
            let next_at = next_attempt(&d, now);
            let error = match next_at {
                Some(_) => error,
                None => format!("{error} (gave up after a day of failures)"),
            };
            tracing::debug!("webhook {} message {}: {error}", d.webhook_id, d.message_id);
            state
                .db
                .delivery_failed((d.webhook_id, d.message_id), status, error, next_at)
                .await
        }
    };
    if let Err(e) = recorded {
        tracing::warn!("cannot record a webhook delivery: {e}");
    }
}

/// When to try `d` again after a failure at `now`: back-off doubling from 1 s to 10 min,
/// `None` once the delivery is a day old.
fn next_attempt(d: &DueDelivery, now: i64) -> Option<i64> {
    if now - d.queued_at >= GIVE_UP_AFTER.as_millis() as i64 {
        return None;
    }
    let pause = Duration::from_secs(1 << d.attempts.clamp(0, 20)).min(MAX_BACKOFF);
    Some(now + pause.as_millis() as i64)
}

/// POST the message of `d`; the status of a 2xx answer, or the status (if any) and what went
/// wrong.
async fn attempt(
    state: &App,
    client: &Outbound,
    d: &DueDelivery,
) -> Result<u16, (Option<i64>, String)> {
    let found = state
        .db
        .message_for_delivery(d.message_id)
        .await
        .map_err(|e| (None, format!("storage: {e}")))?;
    let Some((msg, from_hook)) = found else {
        return Ok(200);
    };
    let body = payload(&msg, from_hook);
    let url = Url::parse(&d.url).map_err(|e| (None, format!("bad URL: {e}")))?;
    let headers = vec![
        (SIGNATURE_HEADER, signature(&d.secret, &body)),
        ("x-hearth-event", "message".to_string()),
        (
            "x-hearth-delivery",
            format!("{}-{}", d.webhook_id, d.message_id),
        ),
    ];
    match client
        .post(&url, "application/json", headers, body.into())
        .await
    {
        Ok(answer) if answer.status.is_success() => Ok(answer.status.as_u16()),
        Ok(answer) => Err((
            Some(i64::from(answer.status.as_u16())),
            format!("the receiver answered {}", answer.status),
        )),
        Err(e) => Err((None, e.to_string())),
    }
}

/// `{"event":"message","message":{…},"from_hook"?:true}`: what a webhook receives.
pub fn payload(msg: &StoredMessage, from_hook: bool) -> Vec<u8> {
    let mut v = serde_json::json!({
        "event": "message",
        "message": MessageView::from(msg),
    });
    if from_hook {
        v["from_hook"] = serde_json::Value::Bool(true);
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn unknown_hook() -> AppError {
    AppError::new(Code::UnknownHook, "There is no such hook.")
}

fn bad_url(why: &'static str) -> AppError {
    AppError::new(Code::BadUrl, why)
}

fn too_many(what: &str, max: i64) -> AppError {
    AppError::new(
        Code::TooManyHooks,
        format!("A room may have at most {max} {what}."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn back_off_doubles_to_ten_minutes_and_stops_after_a_day() {
        let d = |attempts, queued_at| DueDelivery {
            webhook_id: 1,
            url: String::new(),
            secret: String::new(),
            message_id: 1,
            attempts,
            queued_at,
            next_at: queued_at,
        };
        let now = 1_000_000_000;
        assert_eq!(next_attempt(&d(0, now), now), Some(now + 1_000));
        assert_eq!(next_attempt(&d(3, now), now), Some(now + 8_000));
        assert_eq!(next_attempt(&d(30, now), now), Some(now + 600_000));
        let day = GIVE_UP_AFTER.as_millis() as i64;
        assert_eq!(next_attempt(&d(5, now - day), now), None);
    }
}
