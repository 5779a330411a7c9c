//! Web Push: the server's own keys and the browsers' push subscriptions.

use super::{args, Sql, SqlRow};

use crate::model::{PushLevel, QuietHours};

/// One browser's push subscription and what it wants pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscription {
    /// Where pushes go.
    pub endpoint: String,
    /// Whose it is.
    pub user_id: i64,
    /// The browser's public key (65 bytes).
    pub p256dh: Vec<u8>,
    /// Its authentication secret (16 bytes).
    pub auth: Vec<u8>,
    /// What this device wants pushed.
    pub level: PushLevel,
    /// When it wants nothing.
    pub quiet: Option<QuietHours>,
    /// The device's offset from UTC, in minutes east.
    pub utc_offset: i16,
    /// When it subscribed, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When its push service last accepted a push.
    pub last_ok_at: Option<i64>,
}

/// A change to a subscription's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushSettings {
    /// What to push.
    pub level: Option<PushLevel>,
    /// Quiet hours (`Some(None)` removes them).
    pub quiet: Option<Option<QuietHours>>,
    /// The device's offset from UTC, in minutes east.
    pub utc_offset: Option<i16>,
}

/// Why a subscription receives a push for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushReason {
    /// The message mentions its user.
    Mention,
    /// A direct conversation of its user.
    Direct,
    /// A room its user follows message by message on this device.
    Message,
}

impl PushReason {
    /// The name a push carries.
    pub fn as_str(self) -> &'static str {
        match self {
            PushReason::Mention => "mention",
            PushReason::Direct => "dm",
            PushReason::Message => "message",
        }
    }
}

/// The columns [`subscription_row`] reads, of `push_subscriptions s`.
const SUBSCRIPTION: &str = "s.endpoint, s.user_id, s.p256dh, s.auth, s.level, s.quiet_start, \
     s.quiet_end, s.utc_offset, s.created_at, s.last_ok_at";

fn subscription_row<R: SqlRow + ?Sized>(r: &R) -> Result<PushSubscription, R::Error> {
    // Minutes of the day and offsets are stored from `u16`s and `i16`s (and checked by the
    // table); anything else reads as none.
    let minute = |v: Option<i64>| v.and_then(|v| u16::try_from(v).ok());
    let start = minute(r.get(5)?);
    let end = minute(r.get(6)?);
    Ok(PushSubscription {
        endpoint: r.get(0)?,
        user_id: r.get(1)?,
        p256dh: r.get(2)?,
        auth: r.get(3)?,
        level: PushLevel::parse(&r.get::<String>(4)?),
        quiet: start.zip(end).map(|(start, end)| QuietHours { start, end }),
        utc_offset: i16::try_from(r.get::<i64>(7)?).unwrap_or(0),
        created_at: r.get(8)?,
        last_ok_at: r.get(9)?,
    })
}

/// The key named `name`, made with `make` and stored the first time it is asked for.
pub fn server_key<C: Sql>(
    conn: &C,
    name: &str,
    make: impl FnOnce() -> Vec<u8>,
) -> Result<Vec<u8>, C::Error> {
    let read = |conn: &C| {
        conn.row(
            "SELECT value FROM server_keys WHERE name = ?1",
            args![name],
            |r| r.get::<Vec<u8>>(0),
        )
    };
    if let Some(v) = read(conn)? {
        return Ok(v);
    }
    let value = make();
    conn.exec(
        "INSERT INTO server_keys (name, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        args![name, value],
    )?;
    // Whoever stored first wins (another node, on PostgreSQL).
    Ok(read(conn)?.unwrap_or(value))
}

/// Forget the key named `name` (the next [`server_key`] makes a new one).
pub fn forget_server_key<C: Sql>(conn: &C, name: &str) -> Result<usize, C::Error> {
    conn.exec("DELETE FROM server_keys WHERE name = ?1", args![name])
}

/// Store a subscription for `user_id`, made through the session `session` (an endpoint seen
/// before moves to them with its new keys; it keeps its settings when it stays with the same
/// user).
pub fn upsert_subscription<C: Sql>(
    conn: &C,
    endpoint: &str,
    (user_id, session): (i64, &[u8]),
    (p256dh, auth): (&[u8], &[u8]),
    now_ms: i64,
) -> Result<(), C::Error> {
    conn.exec(
        "INSERT INTO push_subscriptions (endpoint, user_id, p256dh, auth, created_at, session) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (endpoint) DO UPDATE SET \
         p256dh = excluded.p256dh, auth = excluded.auth, session = excluded.session, \
         level = CASE WHEN push_subscriptions.user_id = excluded.user_id \
                 THEN push_subscriptions.level ELSE 'mentions' END, \
         quiet_start = CASE WHEN push_subscriptions.user_id = excluded.user_id \
                       THEN push_subscriptions.quiet_start END, \
         quiet_end = CASE WHEN push_subscriptions.user_id = excluded.user_id \
                     THEN push_subscriptions.quiet_end END, \
         created_at = CASE WHEN push_subscriptions.user_id = excluded.user_id \
                      THEN push_subscriptions.created_at ELSE excluded.created_at END, \
         user_id = excluded.user_id",
        args![endpoint, user_id, p256dh, auth, now_ms, session],
    )?;
    Ok(())
}

/// The most devices one user may have subscribed.
pub const MAX_DEVICES: i64 = 20;

/// Forget `user_id`'s devices beyond [`MAX_DEVICES`], keeping `endpoint` (just subscribed)
/// and those that accepted a push (or were subscribed) most lately; how many.
pub fn trim_subscriptions<C: Sql>(
    conn: &C,
    user_id: i64,
    endpoint: &str,
) -> Result<usize, C::Error> {
    conn.exec(
        "DELETE FROM push_subscriptions WHERE user_id = ?1 AND endpoint NOT IN \
         (SELECT endpoint FROM push_subscriptions WHERE user_id = ?1 \
          ORDER BY CASE WHEN endpoint = ?2 THEN 0 ELSE 1 END, \
          COALESCE(last_ok_at, created_at) DESC, endpoint \
          LIMIT ?3)",
        args![user_id, endpoint, MAX_DEVICES],
    )
}

/// `user_id`'s subscription `endpoint`.
pub fn subscription<C: Sql>(
    conn: &C,
    endpoint: &str,
    user_id: i64,
) -> Result<Option<PushSubscription>, C::Error> {
    conn.row(
        &format!(
            "SELECT {SUBSCRIPTION} FROM push_subscriptions s \
             WHERE s.endpoint = ?1 AND s.user_id = ?2"
        ),
        args![endpoint, user_id],
        |r| subscription_row(r),
    )
}

/// Change the settings of `user_id`'s subscription `endpoint`; the subscription after it,
/// `None` when there is no such subscription.
pub fn update_subscription<C: Sql>(
    conn: &C,
    endpoint: &str,
    user_id: i64,
    change: PushSettings,
) -> Result<Option<PushSubscription>, C::Error> {
    let Some(mut s) = subscription(conn, endpoint, user_id)? else {
        return Ok(None);
    };
    s.level = change.level.unwrap_or(s.level);
    s.quiet = change.quiet.unwrap_or(s.quiet);
    s.utc_offset = change.utc_offset.unwrap_or(s.utc_offset);
    conn.exec(
        "UPDATE push_subscriptions SET level = ?3, quiet_start = ?4, quiet_end = ?5, \
         utc_offset = ?6 WHERE endpoint = ?1 AND user_id = ?2",
        args![
            endpoint,
            user_id,
            s.level.as_str(),
            s.quiet.map(|q| i64::from(q.start)),
            s.quiet.map(|q| i64::from(q.end)),
            i64::from(s.utc_offset)
        ],
    )?;
    Ok(Some(s))
}

/// Every subscription of `user_id`, oldest first.
pub fn subscriptions_of_user<C: Sql>(
    conn: &C,
    user_id: i64,
) -> Result<Vec<PushSubscription>, C::Error> {
    conn.rows(
        &format!(
            "SELECT {SUBSCRIPTION} FROM push_subscriptions s WHERE s.user_id = ?1 \
             ORDER BY s.created_at, s.endpoint"
        ),
        args![user_id],
        |r| subscription_row(r),
    )
}

/// Remove `user_id`'s subscription `endpoint` (any user's when `None`); whether it existed.
pub fn delete_subscription<C: Sql>(
    conn: &C,
    endpoint: &str,
    user_id: Option<i64>,
) -> Result<bool, C::Error> {
    let n = match user_id {
        Some(user_id) => conn.exec(
            "DELETE FROM push_subscriptions WHERE endpoint = ?1 AND user_id = ?2",
            args![endpoint, user_id],
        )?,
        None => conn.exec(
            "DELETE FROM push_subscriptions WHERE endpoint = ?1",
            args![endpoint],
        )?,
    };
    Ok(n > 0)
}

/// The subscriptions a new message in room `room_id` by the account called `author`
/// concerns, each once, with why: the users it mentions (unless they muted the room), the
/// other members of a direct conversation who hear every message of it, and in other rooms
/// the devices that want every message of the rooms their users hear every message of.
/// Devices that want nothing are left out; quiet hours are the caller's to apply. With
/// `only_mentioned` (an edit that added mentions), the mentioned users' devices alone.
pub fn push_targets<C: Sql>(
    conn: &C,
    room_id: i64,
    author: &str,
    (mentioned, only_mentioned): (&[i64], bool),
) -> Result<Vec<(PushSubscription, PushReason)>, C::Error> {
    let mut out: Vec<(PushSubscription, PushReason)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut add = |rows: Vec<PushSubscription>, why: PushReason| {
        for s in rows {
            if seen.insert(s.endpoint.clone()) {
                out.push((s, why));
            }
        }
    };
    let by_mention = format!(
        "SELECT {SUBSCRIPTION} FROM push_subscriptions s \
         JOIN memberships m ON m.room_id = ?1 AND m.user_id = s.user_id \
         JOIN users u ON u.id = s.user_id \
         WHERE s.user_id = ?2 AND u.username != ?3 AND s.level != 'nothing' \
         AND m.notify != 'nothing'"
    );
    for user in mentioned {
        let rows = conn.rows(&by_mention, args![room_id, user, author], |r| {
            subscription_row(r)
        })?;
        add(rows, PushReason::Mention);
    }
    if only_mentioned {
        return Ok(out);
    }
    let direct = conn.rows(
        &format!(
            "SELECT {SUBSCRIPTION} FROM memberships m JOIN rooms r ON r.id = m.room_id \
             JOIN users u ON u.id = m.user_id \
             JOIN push_subscriptions s ON s.user_id = m.user_id \
             WHERE m.room_id = ?1 AND r.kind = 'dm' AND u.username != ?2 \
             AND m.notify = 'all' AND s.level != 'nothing'"
        ),
        args![room_id, author],
        |r| subscription_row(r),
    )?;
    add(direct, PushReason::Direct);
    let every = conn.rows(
        &format!(
            "SELECT {SUBSCRIPTION} FROM push_subscriptions s \
             JOIN memberships m ON m.room_id = ?1 AND m.user_id = s.user_id \
             JOIN rooms r ON r.id = m.room_id JOIN users u ON u.id = s.user_id \
             WHERE s.level = 'all' AND m.notify = 'all' AND r.kind != 'dm' \
             AND u.username != ?2"
        ),
        args![room_id, author],
        |r| subscription_row(r),
    )?;
    add(every, PushReason::Message);
    Ok(out)
}

/// Note a push accepted by `endpoint`.
pub fn subscription_ok<C: Sql>(conn: &C, endpoint: &str, now_ms: i64) -> Result<(), C::Error> {
    conn.exec(
        "UPDATE push_subscriptions SET last_ok_at = ?2 WHERE endpoint = ?1",
        args![endpoint, now_ms],
    )?;
    Ok(())
}

/// How many push subscriptions there are.
pub fn subscription_count<C: Sql>(conn: &C) -> Result<i64, C::Error> {
    Ok(conn
        .row("SELECT COUNT(*) FROM push_subscriptions", args![], |r| {
            r.get(0)
        })?
        .unwrap_or(0))
}
