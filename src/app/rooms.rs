//! Rooms and direct messages: who may read, join, invite, rename; read markers and
//! notification levels. Shared by the HTTP routes and the WebSocket session, it keeps the
//! database and the hub in step: a change is committed first, then every affected connection
//! is told (and starts or stops listening).

use std::collections::HashSet;

use crate::app::access::{self, Access};
use crate::app::App;
use crate::config::RoomCreation;
use crate::db::{self, Change, DbError, Notify, Room, RoomKind, Tx, User};
use crate::domain::{self, Username, MAX_DM_USERS};
use crate::limits::{Limit, Limiter, Reservation};

/// Name of the room every user belongs to.
pub const GENERAL: &str = "general";

/// Why a room operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// No room has that name.
    #[error("There is no room with that name.")]
    UnknownRoom,
    /// The room is private (or a DM) and the user is not a member.
    #[error("You are not a member of that room.")]
    NotAMember,
    /// No (enabled) account has that name.
    #[error("There is no user called {0}.")]
    UnknownUser(String),
    /// The new name is not valid.
    #[error("{0}")]
    InvalidName(&'static str),
    /// The topic is too long.
    #[error("Topics may be at most 250 characters.")]
    TopicTooLong,
    /// The topic has a line break, a control character or an invisible one.
    #[error("Topics are one line of visible text: no line breaks, control characters or invisible characters.")]
    InvalidTopic,
    /// Another room already has that name.
    #[error("A room with that name already exists.")]
    RoomExists,
    /// `general` cannot be left.
    #[error("Everyone stays in #general.")]
    CannotLeave,
    /// Allowed only to the creator or an administrator.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Not possible for this kind of room.
    #[error("{0}")]
    BadRequest(&'static str),
    /// A DM with more than eight participants.
    #[error("A direct conversation has at most 8 people, you included.")]
    TooManyMembers,
    /// A per-user quota is used up; retry after this many seconds.
    #[error("{0}")]
    Quota(&'static str, u64),
    /// The database failed.
    #[error("storage: {0}")]
    Db(#[from] DbError),
}

impl From<domain::TopicProblem> for RoomError {
    fn from(p: domain::TopicProblem) -> Self {
        match p {
            domain::TopicProblem::TooLong => RoomError::TopicTooLong,
            domain::TopicProblem::Invalid => RoomError::InvalidTopic,
        }
    }
}

type Outcome<T> = Result<T, RoomError>;

/// Run `f` on the write connection inside the writer's next transaction; a refusal
/// (`Err`) rolls back everything it wrote. Once committed, the [`Change`]s it returns reach
/// the hub in order with the messages committed around them, so nobody receives a message of
/// a room they have left nor misses one of a room they joined.
async fn write<T, F>(state: &App, f: F) -> Outcome<T>
where
    T: Send + 'static,
    F: FnOnce(&Tx<'_>) -> Outcome<(T, Vec<Change>)> + Send + 'static,
{
    state.db.transact(f).await
}

async fn read<T, F>(state: &App, f: F) -> Outcome<T>
where
    T: Send + 'static,
    F: FnOnce(&Tx<'_>) -> Outcome<T> + Send + 'static,
{
    state.db.read_tx(f).await
}

fn lookup(c: &Tx<'_>, name: &str, user_id: i64) -> Outcome<Room> {
    c.room_by_name(name, user_id)?.ok_or(RoomError::UnknownRoom)
}

/// A room whose existence `user_id` may learn of (see [`access`]); anything else is answered
/// exactly as a room that does not exist.
fn visible_in(c: &Tx<'_>, name: &str, user_id: i64) -> Outcome<Room> {
    let room = lookup(c, name, user_id)?;
    match access::access(&room) {
        Access::Hidden => Err(RoomError::UnknownRoom),
        Access::Preview | Access::Member => Ok(room),
    }
}

/// The room if `user_id` may read it: a member, or any user for a public room.
fn readable_in(c: &Tx<'_>, name: &str, user_id: i64) -> Outcome<Room> {
    visible_in(c, name, user_id)
}

/// The room if `user_id` is a member of it: `not_a_member` for a public room they have not
/// joined, `unknown_room` for a private room or DM they do not belong to.
fn member_in(c: &Tx<'_>, name: &str, user_id: i64) -> Outcome<Room> {
    let room = lookup(c, name, user_id)?;
    match access::access(&room) {
        Access::Hidden => Err(RoomError::UnknownRoom),
        Access::Preview => Err(RoomError::NotAMember),
        Access::Member => Ok(room),
    }
}

/// Window of the per-user room, DM and invitation quotas.
const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// The key and limit of a per-user quota (`max == 0`: none).
fn quota_key(what: &'static str, uid: i64, max: u32) -> (String, Limit) {
    let limit = Limit {
        max: max as usize,
        window: HOUR,
    };
    (format!("{what}:{uid}"), limit)
}

/// Count one use of a per-user quota (`max == 0`: none; over every node in cluster mode), or
/// say when to retry.
pub(crate) async fn take_quota(
    state: &App,
    what: &'static str,
    uid: i64,
    max: u32,
    refusal: &'static str,
) -> Outcome<Reservation> {
    let (key, limit) = quota_key(what, uid, max);
    state
        .quotas
        .reserve(&[(&key, limit)])
        .await
        .map_err(|secs| RoomError::Quota(refusal, secs))
}

/// [`take_quota`] on this node, for a use decided inside a transaction (which cannot wait for
/// Redis): single-node mode only.
fn take_quota_here(
    quotas: &Limiter,
    what: &'static str,
    uid: i64,
    max: u32,
    refusal: &'static str,
) -> Outcome<Reservation> {
    let (key, limit) = quota_key(what, uid, max);
    quotas
        .reserve_here(&[(&key, limit)])
        .map_err(|secs| RoomError::Quota(refusal, secs))
}

/// The user's rooms and DMs with their unread state.
pub async fn list(state: &App, user_id: i64) -> Outcome<Vec<Room>> {
    read(state, move |c| Ok(c.rooms_for_user(user_id)?)).await
}

/// Every public room (membership filled in where the user has one).
pub async fn directory(state: &App, user_id: i64) -> Outcome<Vec<Room>> {
    read(state, move |c| Ok(c.public_rooms(user_id)?)).await
}

/// A room the user belongs to: `not_a_member` for a public room they have not joined,
/// `unknown_room` for a room they may not see.
pub async fn member_room(state: &App, user_id: i64, name: &str) -> Outcome<Room> {
    let name = name.to_string();
    read(state, move |c| member_in(c, &name, user_id)).await
}

/// A room the user may read.
pub async fn readable(state: &App, user_id: i64, name: &str) -> Outcome<Room> {
    let name = name.to_string();
    read(state, move |c| readable_in(c, &name, user_id)).await
}

/// A room the user may read, with its members (username, online).
pub async fn details(
    state: &App,
    user_id: i64,
    name: &str,
) -> Outcome<(Room, Vec<(String, bool)>)> {
    let name = name.to_string();
    let (room, members) = read(state, move |c| {
        let room = readable_in(c, &name, user_id)?;
        let members = c.room_members(room.id)?;
        Ok((room, members))
    })
    .await?;
    let online = state.hub.online();
    let online: HashSet<&str> = online.iter().map(|n| &**n).collect();
    let members = members
        .into_iter()
        .map(|(_, name)| {
            let on = online.contains(name.as_str());
            (name, on)
        })
        .collect();
    Ok((room, members))
}

/// Create a room; the creator is its first member. Counts against `limits.rooms_per_hour`;
/// with `rooms.creation = "admins"` only administrators may.
pub async fn create(
    state: &App,
    user: &User,
    is_admin: bool,
    name: &str,
    topic: &str,
    public: bool,
) -> Outcome<Room> {
    if state.config.rooms.creation == RoomCreation::Admins && !is_admin {
        return Err(RoomError::Forbidden(
            "Only administrators create rooms on this server.",
        ));
    }
    let name = domain::parse_room_name(name).map_err(RoomError::InvalidName)?;
    let topic = domain::parse_topic(topic)
        .map_err(RoomError::from)?
        .to_string();
    let uid = user.id;
    let quota = take_quota(
        state,
        "rooms",
        uid,
        state.config.limits.rooms_per_hour,
        "You have created many rooms in the last hour; try again later.",
    )
    .await?;
    let created = write(state, move |c| {
        let now = db::now_ms();
        let id = c
            .insert_room(&name, &topic, RoomKind::Room, public, Some(uid), now)?
            .ok_or(RoomError::RoomExists)?;
        c.add_member(id, uid, now)?;
        let room = c.room_by_id(id, uid)?.ok_or(RoomError::UnknownRoom)?;
        let mut changes = vec![Change::Joined {
            user_id: uid,
            room: room.clone(),
        }];
        if public {
            changes.push(Change::Created { room: room.clone() });
        }
        Ok((room, changes))
    })
    .await;
    let room = match created {
        Ok(room) => room,
        // A name that is taken keeps its use of the quota: a private room's name must not be
        // found out for free by trying names (it is one namespace).
        Err(RoomError::RoomExists) => return Err(RoomError::RoomExists),
        Err(e) => {
            state.quotas.release(&quota).await;
            return Err(e);
        }
    };
    tracing::info!(user = %user.username, room = %room.name, public, "room created");
    Ok(room)
}

/// One token of `uid`'s change rate, for a change a room's members are told of: refused with
/// `why` and when to retry.
async fn spend(state: &App, uid: i64, why: &'static str) -> Outcome<()> {
    let taken = state.change_rate.take(uid).await;
    taken.map_err(|ms| RoomError::Quota(why, ms.div_ceil(1000)))
}

/// Join a public room (a no-op for a member). Only a join that changes something spends a
/// token: a bot making sure it is in its rooms at every start is not refused for that.
pub async fn join(state: &App, user: &User, name: &str) -> Outcome<Room> {
    let (name, uid) = (name.to_string(), user.id);
    let shown = name.clone();
    let room = read(state, move |c| visible_in(c, &shown, uid)).await?;
    if room.membership.is_some() {
        return Ok(room);
    }
    spend(state, uid, "You are joining rooms too fast.").await?;
    let username = user.username.clone();
    write(state, move |c| {
        let room = visible_in(c, &name, uid)?;
        if room.membership.is_some() {
            return Ok((room, Vec::new()));
        }
        c.add_member(room.id, uid, db::now_ms())?;
        let room = c.room_by_id(room.id, uid)?.ok_or(RoomError::UnknownRoom)?;
        let changes = joined(uid, &username, &room);
        Ok((room, changes))
    })
    .await
}

/// `user_id` joined `room` (as they see it): they start receiving it and the others are told.
fn joined(user_id: i64, username: &str, room: &Room) -> Vec<Change> {
    vec![
        Change::Joined {
            user_id,
            room: room.clone(),
        },
        Change::MemberJoined {
            room_id: room.id,
            room: room.name.clone(),
            user_id,
            username: username.to_string(),
        },
    ]
}

/// Leave a room or DM (not `general`).
pub async fn leave(state: &App, user: &User, name: &str) -> Outcome<()> {
    if name == GENERAL {
        return Err(RoomError::CannotLeave);
    }
    let (shown, uid) = (name.to_string(), user.id);
    read(state, move |c| leavable(c, &shown, uid)).await?;
    spend(state, user.id, "You are leaving rooms too fast.").await?;
    leave_one(state, user, name).await
}

/// Whether `user_id` may leave the room called `name` (is a member), looked up without
/// counting anything: refused as [`member_in`] refuses.
fn leavable(c: &Tx<'_>, name: &str, user_id: i64) -> Outcome<()> {
    let room = c
        .room_key_by_name(name, user_id)?
        .ok_or(RoomError::UnknownRoom)?;
    match access::key_access(&room) {
        Access::Hidden => Err(RoomError::UnknownRoom),
        Access::Preview => Err(RoomError::NotAMember),
        Access::Member => Ok(()),
    }
}

/// [`leave`] without its token.
async fn leave_one(state: &App, user: &User, name: &str) -> Outcome<()> {
    let name = name.to_string();
    let uid = user.id;
    let username = user.username.clone();
    write(state, move |c| {
        let room = member_in(c, &name, uid)?;
        c.remove_member(room.id, uid)?;
        let left = Change::Left {
            user_id: uid,
            username,
            room_id: room.id,
            room: room.name,
        };
        Ok(((), vec![left]))
    })
    .await
}

/// Most rooms one request may leave.
pub const MAX_LEAVE_MANY: usize = 500;

/// Leave several rooms and DMs at once (a way out for someone added to many rooms against
/// their will). `general`, rooms the caller is not in and unknown names are skipped. Returns
/// the names left. One token of the change rate for the whole request, none if it leaves
/// nothing.
pub async fn leave_many(state: &App, user: &User, names: &[String]) -> Outcome<Vec<String>> {
    if names.len() > MAX_LEAVE_MANY {
        return Err(RoomError::BadRequest(
            "Leave at most 500 rooms in one request.",
        ));
    }
    let mut wanted: Vec<String> = Vec::new();
    for name in names {
        if name != GENERAL && !wanted.contains(name) {
            wanted.push(name.clone());
        }
    }
    let (check, uid) = (wanted.clone(), user.id);
    let any = read(state, move |c| {
        for name in &check {
            match leavable(c, name, uid) {
                Ok(()) => return Ok(true),
                Err(RoomError::UnknownRoom | RoomError::NotAMember) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    })
    .await?;
    if !any {
        return Ok(Vec::new());
    }
    spend(state, uid, "You are leaving rooms too fast.").await?;
    let mut left = Vec::new();
    for name in wanted {
        match leave_one(state, user, &name).await {
            Ok(()) => left.push(name),
            Err(RoomError::UnknownRoom | RoomError::NotAMember) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(left)
}

/// Add `username` to a room the caller belongs to.
pub async fn invite(state: &App, user: &User, name: &str, username: &str) -> Outcome<Room> {
    let key = Username::parse(username)
        .map_err(|_| RoomError::UnknownUser(username.to_string()))?
        .key();
    let name = name.to_string();
    let uid = user.id;
    let shown = username.to_string();
    let quota = take_quota(
        state,
        "invites",
        uid,
        state.config.limits.invites_per_hour,
        "You have added many people to rooms in the last hour; try again later.",
    )
    .await?;
    let outcome = write(state, move |c| {
        let room = member_in(c, &name, uid)?;
        if room.kind == RoomKind::Dm {
            return Err(RoomError::BadRequest(
                "A conversation's members are fixed; start a new one with everyone you want.",
            ));
        }
        let (target, target_name) = c.user_by_key(&key)?.ok_or(RoomError::UnknownUser(shown))?;
        let added = c.add_member(room.id, target, db::now_ms())?;
        let room = c
            .room_by_id(room.id, target)?
            .ok_or(RoomError::UnknownRoom)?;
        let changes = if added {
            joined(target, &target_name, &room)
        } else {
            Vec::new()
        };
        Ok(((room, (target, target_name), added), changes))
    })
    .await;
    let (room, target, added) = match outcome {
        Ok(done) => done,
        Err(e) => {
            state.quotas.release(&quota).await;
            return Err(e);
        }
    };
    if !added {
        state.quotas.release(&quota).await;
    }
    if added {
        tracing::info!(by = %user.username, user = %target.1, room = %room.name, "member added");
    }
    // The caller sees the room from their own side.
    let name = room.name.clone();
    read(state, move |c| lookup(c, &name, uid)).await
}

/// Refusal of a new DM over `limits.dms_per_hour`.
const DMS_REFUSAL: &str = "You have started many conversations in the last hour; try again later.";

/// Find or create the DM between the caller and `usernames`. Returns the room and whether it
/// was created.
///
/// Only a new conversation counts against `limits.dms_per_hour`, and whether it is new is
/// known inside the transaction. On one node the quota is taken there. Over several nodes it
/// is counted in Redis, which a transaction must not wait for: it is taken before, given back
/// when no conversation was started, and a refusal applies only to a new one (so opening an
/// existing conversation near the limit may, for that moment, refuse a new one opened at the
/// same time).
pub async fn open_dm(state: &App, user: &User, usernames: &[String]) -> Outcome<(Room, bool)> {
    let keys = dm_keys(user, usernames)?;
    let uid = user.id;
    let quotas = state.quotas.clone();
    let per_hour = state.config.limits.dms_per_hour;
    let ahead = if quotas.is_shared() {
        let (key, limit) = quota_key("dms", uid, per_hour);
        Some(quotas.reserve(&[(&key, limit)]).await)
    } else {
        None
    };
    // What the quota taken ahead said, for the transaction: `None` when it was not taken.
    let verdict: Option<Result<(), u64>> = ahead
        .as_ref()
        .map(|r| r.as_ref().map(|_| ()).map_err(|s| *s));
    let opened = write(state, move |c| {
        let mut people = Vec::with_capacity(keys.len());
        for key in &keys {
            let (id, name) = c
                .user_by_key(key)?
                .ok_or_else(|| RoomError::UnknownUser(key.clone()))?;
            people.push((id, name));
        }
        let name = domain::dm_name(&keys);
        let now = db::now_ms();
        // Finding a conversation again is free; only a new one counts.
        let (id, created) = match lookup(c, &name, uid) {
            Ok(room) => (room.id, false),
            Err(RoomError::UnknownRoom) => {
                match verdict {
                    None => {
                        take_quota_here(&quotas, "dms", uid, per_hour, DMS_REFUSAL)?;
                    }
                    Some(Err(secs)) => return Err(RoomError::Quota(DMS_REFUSAL, secs)),
                    Some(Ok(())) => {}
                }
                let id = c
                    .insert_room(&name, "", RoomKind::Dm, false, None, now)?
                    .ok_or(RoomError::UnknownRoom)?;
                (id, true)
            }
            Err(e) => return Err(e),
        };
        let added = add_dm_members(c, id, people, now)?;
        let room = c.room_by_id(id, uid)?.ok_or(RoomError::UnknownRoom)?;
        let changes = dm_changes(&room, added, created);
        Ok(((room, created), changes))
    })
    .await;
    if let Some(Ok(quota)) = &ahead {
        if !matches!(opened, Ok((_, true))) {
            state.quotas.release(quota).await;
        }
    }
    opened
}

/// The case-folded names of a DM's people, the opener first, each once.
fn dm_keys(user: &User, usernames: &[String]) -> Outcome<Vec<String>> {
    let mut keys = vec![user.username.to_ascii_lowercase()];
    for name in usernames {
        let key = Username::parse(name)
            .map_err(|_| RoomError::UnknownUser(name.clone()))?
            .key();
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    if keys.len() < 2 {
        return Err(RoomError::BadRequest(
            "Name at least one other person to talk to.",
        ));
    }
    if keys.len() > MAX_DM_USERS {
        return Err(RoomError::TooManyMembers);
    }
    Ok(keys)
}

/// Make everyone named a member of the DM; returns who was added, with the room as they see
/// it.
fn add_dm_members(
    c: &Tx<'_>,
    id: i64,
    people: Vec<(i64, String)>,
    now: i64,
) -> Outcome<Vec<(i64, String, Room)>> {
    let mut added = Vec::new();
    for (member, member_name) in people {
        if c.add_member(id, member, now)? {
            let view = c.room_by_id(id, member)?.ok_or(RoomError::UnknownRoom)?;
            added.push((member, member_name, view));
        }
    }
    Ok(added)
}

/// Everyone added starts receiving the conversation first; only then, when it existed
/// before, are the members told who joined.
fn dm_changes(room: &Room, added: Vec<(i64, String, Room)>, created: bool) -> Vec<Change> {
    let mut changes: Vec<Change> = added
        .iter()
        .map(|(member, _, view)| Change::Joined {
            user_id: *member,
            room: view.clone(),
        })
        .collect();
    if !created {
        changes.extend(
            added
                .into_iter()
                .map(|(member, username, _)| Change::MemberJoined {
                    room_id: room.id,
                    room: room.name.clone(),
                    user_id: member,
                    username,
                }),
        );
    }
    changes
}

/// Rename a room and/or change its topic.
pub async fn update(
    state: &App,
    user: &User,
    is_admin: bool,
    name: &str,
    new_name: Option<&str>,
    topic: Option<&str>,
) -> Outcome<Room> {
    let new_name = new_name
        .map(domain::parse_room_name)
        .transpose()
        .map_err(RoomError::InvalidName)?;
    let topic = topic
        .map(|t| domain::parse_topic(t).map_err(RoomError::from))
        .transpose()?
        .map(str::to_string);
    // Every member hears the change (and connections starting meanwhile read their rooms
    // again): a loop must not keep a room changing.
    spend(state, user.id, "You are changing rooms too fast.").await?;
    let name = name.to_string();
    let uid = user.id;
    let username = user.username.clone();
    // A rename may find its name taken, which must cost a try of the hourly quota whether
    // or not the quota is spent (else a refusal for the quota would itself say "taken"):
    // one is reserved first and given back unless the name was taken.
    let quota = match new_name.as_deref() {
        Some(n) if n != name => Some(
            take_quota(
                state,
                "rooms",
                uid,
                state.config.limits.rooms_per_hour,
                "You have tried many room names in the last hour; try again later.",
            )
            .await?,
        ),
        _ => None,
    };
    let (room, old_name) = match write(state, move |c| {
        let room = member_in(c, &name, uid)?;
        if room.kind == RoomKind::Dm {
            return Err(RoomError::BadRequest(
                "A direct conversation has no name or topic to change.",
            ));
        }
        if room.name == GENERAL && !is_admin {
            return Err(RoomError::Forbidden(
                "Only an administrator can change #general.",
            ));
        }
        let rename = new_name.filter(|n| *n != room.name);
        if rename.is_some() {
            if room.name == GENERAL {
                return Err(RoomError::BadRequest("#general keeps its name."));
            }
            if !is_admin && room.created_by.as_deref() != Some(username.as_str()) {
                return Err(RoomError::Forbidden(
                    "Only the room's creator or an administrator can rename it.",
                ));
            }
        }
        if !c.update_room(room.id, rename.as_deref(), topic.as_deref())? {
            return Err(RoomError::RoomExists);
        }
        let updated = c.room_by_id(room.id, uid)?.ok_or(RoomError::UnknownRoom)?;
        let old_name = rename.map(|_| room.name);
        let change = Change::Updated {
            room: updated.clone(),
            old_name: old_name.clone(),
        };
        Ok(((updated, old_name), vec![change]))
    })
    .await
    {
        // A rename to a taken name counts against the hourly room quota, as a room created
        // under it does: names of private rooms are not to be found out by renaming.
        Err(RoomError::RoomExists) => return Err(RoomError::RoomExists),
        done => {
            if let Some(quota) = &quota {
                state.quotas.release(quota).await;
            }
            done?
        }
    };
    tracing::info!(user = %user.username, room = %room.name, renamed_from = ?old_name, "room updated");
    Ok(room)
}

/// Move the user's read marker forward and tell all their connections.
/// `from_socket`: asked over a WebSocket, which returns on the commit (its other tabs hear of
/// it through the hub in any case); over HTTP the answer waits until the hub has it too.
pub async fn mark_read(
    state: &App,
    user_id: i64,
    (name, id): (&str, i64),
    from_socket: bool,
) -> Outcome<Room> {
    let name = name.to_string();
    let f = move |c: &Tx<'_>| {
        let room = update_membership(c, &name, user_id, |c, room| {
            c.set_last_read(room, user_id, id)
        })?;
        let change = Change::ReadMarker {
            user_id,
            room: room.clone(),
        };
        Ok((room, vec![change]))
    };
    state.db.transact_then(f, !from_socket).await
}

/// Set the user's notification level for a room.
pub async fn set_notify(state: &App, user_id: i64, name: &str, level: Notify) -> Outcome<Room> {
    let name = name.to_string();
    write(state, move |c| {
        let room = update_membership(c, &name, user_id, |c, room| {
            c.set_notify(room, user_id, level)
        })?;
        Ok((room, Vec::new()))
    })
    .await
}

/// Change the user's own membership of a room they belong to, and read the room back.
fn update_membership<R>(
    c: &Tx<'_>,
    name: &str,
    user_id: i64,
    set: impl FnOnce(&Tx<'_>, i64) -> Result<R, DbError>,
) -> Outcome<Room> {
    let room = member_in(c, name, user_id)?;
    set(c, room.id)?;
    c.room_by_id(room.id, user_id)?
        .ok_or(RoomError::UnknownRoom)
}
