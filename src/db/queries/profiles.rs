//! Profiles: display names, status lines and avatars of accounts.

use super::*;

const PROFILE_COLUMNS: &str = "username, display_name, status, avatar_sha256";

fn profile_row<R: SqlRow + ?Sized>(r: &R) -> Result<Profile, R::Error> {
    Ok(Profile {
        username: r.get(0)?,
        display_name: r.get(1)?,
        status: r.get(2)?,
        avatar: r.get(3)?,
    })
}

/// The profile of `user_id`.
pub fn profile_of<C: Sql>(conn: &C, user_id: i64) -> Result<Option<Profile>, C::Error> {
    conn.row(
        &format!("SELECT {PROFILE_COLUMNS} FROM users WHERE id = ?1"),
        args![user_id],
        |r| profile_row(r),
    )
}

/// The profile of the enabled account with case-folded name `key`, and its avatar's type.
pub fn profile_by_key<C: Sql>(
    conn: &C,
    key: &str,
) -> Result<Option<(Profile, Option<String>)>, C::Error> {
    conn.row(
        &format!(
            "SELECT {PROFILE_COLUMNS}, avatar_type FROM users \
             WHERE username_key = ?1 AND disabled = FALSE"
        ),
        args![key],
        |r| Ok((profile_row(r)?, r.get(4)?)),
    )
}

/// Every enabled account's profile that has something set, by username.
pub fn set_profiles<C: Sql>(conn: &C) -> Result<Vec<Profile>, C::Error> {
    conn.rows(
        &format!(
            "SELECT {PROFILE_COLUMNS} FROM users WHERE disabled = FALSE AND \
             (display_name != '' OR status != '' OR avatar_sha256 IS NOT NULL) ORDER BY username_key"
        ),
        args![],
        |r| profile_row(r),
    )
}

/// Change the display name and/or status of `user_id` (`None`: unchanged).
pub fn update_profile<C: Sql>(
    conn: &C,
    user_id: i64,
    display_name: Option<&str>,
    status: Option<&str>,
) -> Result<(), C::Error> {
    conn.exec(
        "UPDATE users SET display_name = COALESCE(?2, display_name), \
         status = COALESCE(?3, status) WHERE id = ?1",
        args![user_id, display_name, status],
    )?;
    Ok(())
}

/// Set (or clear, `None`) the avatar of `user_id`: its file's hash and type.
pub fn set_avatar<C: Sql>(
    conn: &C,
    user_id: i64,
    avatar: Option<(&str, &str)>,
) -> Result<(), C::Error> {
    conn.exec(
        "UPDATE users SET avatar_sha256 = ?2, avatar_type = ?3 WHERE id = ?1",
        args![user_id, avatar.map(|a| a.0), avatar.map(|a| a.1)],
    )?;
    Ok(())
}
