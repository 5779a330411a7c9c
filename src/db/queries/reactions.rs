//! Reactions: one row per message, emoji and user. Emoji are listed in order of first use:
//! `first_use` is the position at which an emoji came onto a message, kept by every later row
//! of the same emoji while it stays there.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::*;
use crate::model::Reaction;

/// Whether `user_id` has reacted to message `message_id` with `emoji`.
pub fn has_reaction(
    conn: &Connection,
    message_id: i64,
    user_id: i64,
    emoji: &str,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM reactions WHERE message_id = ?1 AND emoji = ?2 AND user_id = ?3",
        )?
        .query_row(params![message_id, emoji, user_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// How many distinct emoji message `message_id` carries, and whether `emoji` is among them.
pub fn emoji_on_message(
    conn: &Connection,
    message_id: i64,
    emoji: &str,
) -> rusqlite::Result<(i64, bool)> {
    conn.prepare_cached(
        "SELECT COUNT(DISTINCT emoji), COALESCE(MAX(emoji = ?2), 0) \
         FROM reactions WHERE message_id = ?1",
    )?
    .query_row(params![message_id, emoji], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// Add or remove `user_id`'s reaction `emoji` to a message of room `room_id`, as the change
/// at position `seq`.
pub fn set_reaction(
    conn: &Connection,
    (message_id, room_id): (i64, i64),
    (user_id, emoji): (i64, &str),
    (on, seq): (bool, i64),
    now_ms: i64,
) -> rusqlite::Result<()> {
    if on {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO reactions \
             (message_id, room_id, user_id, emoji, first_use, created_at) \
             VALUES (?1, ?2, ?3, ?4, COALESCE((SELECT MIN(first_use) FROM reactions \
             WHERE message_id = ?1 AND emoji = ?4), ?5), ?6)",
        )?
        .execute(params![message_id, room_id, user_id, emoji, seq, now_ms])?;
    } else {
        conn.prepare_cached(
            "DELETE FROM reactions WHERE message_id = ?1 AND emoji = ?2 AND user_id = ?3",
        )?
        .execute(params![message_id, emoji, user_id])?;
    }
    Ok(())
}

/// Remove every reaction of a message, and the log of them (a deletion erases them).
pub fn erase_reactions(conn: &Connection, message_id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM reactions WHERE message_id = ?1")?
        .execute([message_id])?;
    conn.prepare_cached(
        "DELETE FROM message_changes WHERE message_id = ?1 AND kind IN ('react', 'unreact')",
    )?
    .execute([message_id])?;
    Ok(())
}

/// Fill in the reactions of `msgs`: one indexed range read per room among them.
pub fn fill_reactions(conn: &Connection, msgs: &mut [StoredMessage]) -> rusqlite::Result<()> {
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
    let mut stmt = conn.prepare_cached(
        "SELECT x.message_id, x.emoji, u.username FROM reactions x \
         JOIN users u ON u.id = x.user_id \
         WHERE x.room_id = ?1 AND x.message_id BETWEEN ?2 AND ?3 \
         ORDER BY x.message_id, x.first_use, x.rowid",
    )?;
    for (room_id, (lo, hi)) in ranges {
        let mut rows = stmt.query(params![room_id, lo, hi])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let Some(&i) = index.get(&id) else { continue };
            add_reaction(&mut msgs[i].reactions, row.get(1)?, row.get(2)?);
        }
    }
    Ok(())
}

fn add_reaction(reactions: &mut Vec<Reaction>, emoji: String, user: String) {
    match reactions.iter_mut().find(|r| r.emoji == emoji) {
        Some(r) => r.users.push(user),
        None => reactions.push(Reaction {
            emoji,
            users: vec![user],
        }),
    }
}
