//! Profiles: display names, status lines and avatars of accounts.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::*;

const PROFILE_COLUMNS: &str = "username, display_name, status, avatar_sha256";

fn profile_row(r: &Row<'_>) -> rusqlite::Result<Profile> {
    Ok(Profile {
        username: r.get(0)?,
        display_name: r.get(1)?,
        status: r.get(2)?,
        avatar: r.get(3)?,
    })
}

/// The profile of `user_id`.
pub fn profile_of(conn: &Connection, user_id: i64) -> rusqlite::Result<Option<Profile>> {
    conn.prepare_cached(&format!(
        "SELECT {PROFILE_COLUMNS} FROM users WHERE id = ?1"
    ))?
    .query_row([user_id], profile_row)
    .optional()
}

/// The profile of the enabled account with case-folded name `key`, and its avatar's type.
pub fn profile_by_key(
    conn: &Connection,
    key: &str,
) -> rusqlite::Result<Option<(Profile, Option<String>)>> {
    conn.prepare_cached(&format!(
        "SELECT {PROFILE_COLUMNS}, avatar_type FROM users WHERE username_key = ?1 AND disabled = 0"
    ))?
    .query_row([key], |r| Ok((profile_row(r)?, r.get(4)?)))
    .optional()
}

/// Every enabled account's profile that has something set, by username.
pub fn set_profiles(conn: &Connection) -> rusqlite::Result<Vec<Profile>> {
    all_rows(
        conn,
        &format!(
            "SELECT {PROFILE_COLUMNS} FROM users WHERE disabled = 0 AND \
             (display_name != '' OR status != '' OR avatar_sha256 IS NOT NULL) ORDER BY username_key"
        ),
        [],
        profile_row,
    )
}

/// Change the display name and/or status of `user_id` (`None`: unchanged).
pub fn update_profile(
    conn: &Connection,
    user_id: i64,
    display_name: Option<&str>,
    status: Option<&str>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE users SET display_name = COALESCE(?2, display_name), \
         status = COALESCE(?3, status) WHERE id = ?1",
    )?
    .execute(params![user_id, display_name, status])?;
    Ok(())
}

/// Set (or clear, `None`) the avatar of `user_id`: its file's hash and type.
pub fn set_avatar(
    conn: &Connection,
    user_id: i64,
    avatar: Option<(&str, &str)>,
) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE users SET avatar_sha256 = ?2, avatar_type = ?3 WHERE id = ?1")?
        .execute(params![user_id, avatar.map(|a| a.0), avatar.map(|a| a.1)])?;
    Ok(())
}
