//! Reactions: one row per message, emoji and user. Emoji are listed in order of first use:
//! `first_use` is the position at which an emoji came onto a message, kept by every later row
//! of the same emoji while it stays there.

use std::collections::HashMap;

use super::*;
use crate::model::Reaction;

/// Whether `user_id` has reacted to message `message_id` with `emoji`.
pub fn has_reaction<C: Sql>(
    conn: &C,
    message_id: i64,
    user_id: i64,
    emoji: &str,
) -> Result<bool, C::Error> {
    Ok(conn
        .row(
            "SELECT 1 FROM reactions WHERE message_id = ?1 AND emoji = ?2 AND user_id = ?3",
            args![message_id, emoji, user_id],
            |_| Ok(()),
        )?
        .is_some())
}

/// How many distinct emoji message `message_id` carries, and whether `emoji` is among them.
pub fn emoji_on_message<C: Sql>(
    conn: &C,
    message_id: i64,
    emoji: &str,
) -> Result<(i64, bool), C::Error> {
    let sql = conn.dialect(
        "SELECT COUNT(DISTINCT emoji), COALESCE(MAX(emoji = ?2), 0) \
         FROM reactions WHERE message_id = ?1",
        "SELECT COUNT(DISTINCT emoji), COALESCE(bool_or(emoji = ?2), FALSE) \
         FROM reactions WHERE message_id = ?1",
    );
    Ok(conn
        .row(sql, args![message_id, emoji], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .unwrap_or((0, false)))
}

/// Add or remove `user_id`'s reaction `emoji` to a message of room `room_id`, as the change
/// at position `seq`.
pub fn set_reaction<C: Sql>(
    conn: &C,
    (message_id, room_id): (i64, i64),
    (user_id, emoji): (i64, &str),
    (on, seq): (bool, i64),
    now_ms: i64,
) -> Result<(), C::Error> {
    if on {
        conn.exec(
            "INSERT INTO reactions \
             (message_id, room_id, user_id, emoji, first_use, created_at) \
             VALUES (?1, ?2, ?3, ?4, COALESCE((SELECT MIN(first_use) FROM reactions \
             WHERE message_id = ?1 AND emoji = ?4), ?5), ?6) ON CONFLICT DO NOTHING",
            args![message_id, room_id, user_id, emoji, seq, now_ms],
        )?;
    } else {
        conn.exec(
            "DELETE FROM reactions WHERE message_id = ?1 AND emoji = ?2 AND user_id = ?3",
            args![message_id, emoji, user_id],
        )?;
    }
    Ok(())
}

/// Remove every reaction of a message, and the log of them (a deletion erases them).
pub fn erase_reactions<C: Sql>(conn: &C, message_id: i64) -> Result<(), C::Error> {
    conn.exec(
        "DELETE FROM reactions WHERE message_id = ?1",
        args![message_id],
    )?;
    conn.exec(
        "DELETE FROM message_changes WHERE message_id = ?1 AND kind IN ('react', 'unreact')",
        args![message_id],
    )?;
    Ok(())
}

/// Fill in the reactions of `msgs`: one indexed range read per room among them. Users of one
/// emoji are listed in the order they reacted (SQLite's insertion order; on PostgreSQL, which
/// keeps none, the reaction's time and then the user's id).
pub fn fill_reactions<C: Sql>(conn: &C, msgs: &mut [StoredMessage]) -> Result<(), C::Error> {
    let mut ranges: HashMap<i64, (i64, i64)> = HashMap::new();
    let mut index: HashMap<i64, usize> = HashMap::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        if m.deleted {
            continue;
        }
        index.insert(m.id, i);
        let range = ranges.entry(m.room_id).or_insert((m.id, m.id));
        range.0 = range.0.min(m.id);
        range.1 = range.1.max(m.id);
    }
    for (room_id, (lo, hi)) in ranges {
        reactions_between(
            conn,
            (room_id, lo, hi),
            |id| index.contains_key(&id),
            |id, emoji, user| add_reaction(&mut msgs[index[&id]].reactions, emoji, user),
        )?;
    }
    Ok(())
}

/// Every reaction on the messages `lo..=hi` of room `room_id` that `wanted`, as `f(message
/// id, emoji, user)`: by message, each message's emoji in order of first use and their users
/// in the order they reacted. Rows of messages not wanted are not read further than their id.
pub(super) fn reactions_between<C: Sql>(
    conn: &C,
    (room_id, lo, hi): (i64, i64, i64),
    wanted: impl Fn(i64) -> bool,
    mut f: impl FnMut(i64, String, String),
) -> Result<(), C::Error> {
    let sql = conn.dialect(
        "SELECT x.message_id, x.emoji, u.username FROM reactions x \
         JOIN users u ON u.id = x.user_id \
         WHERE x.room_id = ?1 AND x.message_id BETWEEN ?2 AND ?3 \
         ORDER BY x.message_id, x.first_use, x.rowid",
        "SELECT x.message_id, x.emoji, u.username FROM reactions x \
         JOIN users u ON u.id = x.user_id \
         WHERE x.room_id = ?1 AND x.message_id BETWEEN ?2 AND ?3 \
         ORDER BY x.message_id, x.first_use, x.created_at, x.user_id",
    );
    conn.rows(sql, args![room_id, lo, hi], |row| {
        let id = row.get(0)?;
        if wanted(id) {
            f(id, row.get(1)?, row.get(2)?);
        }
        Ok(())
    })?;
    Ok(())
}

/// Add `user`'s `emoji` to a message's `reactions`, after the emoji's earlier users or as a
/// new emoji.
pub(super) fn add_reaction(reactions: &mut Vec<Reaction>, emoji: String, user: String) {
    match reactions.iter_mut().find(|r| r.emoji == emoji) {
        Some(r) => r.users.push(user),
        None => reactions.push(Reaction {
            emoji,
            users: vec![user],
        }),
    }
}
