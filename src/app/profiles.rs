//! Profiles: a display name, a status line and an avatar for each account. Frames and history
//! keep naming people by username; the conversation looks the profile up: `ready` carries
//! every profile with something set, and a `profile` frame goes to every connection when one
//! changes.

use bytes::Buf;
use futures_util::Stream;

use crate::app::error::{AppError, Code};
use crate::app::uploads::{self, Download};
use crate::app::App;
use crate::db::Profile;
use crate::domain::Username;
use crate::files::image::{self, Kind, Problem};

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 64;
/// Longest status line, in characters.
pub const MAX_STATUS: usize = 140;

/// Put the profiles into the hub at start, and again after it was reset (changes reach it
/// through the store, on every node). A change that reaches the hub during the read makes it
/// read again, since the read may not hold it.
pub async fn load(state: &App) {
    for _ in 0..5 {
        let seen = state.hub.profile_changes();
        match state.db.set_profiles().await {
            Ok(all) => {
                if state.hub.set_profiles(all, seen) {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!("cannot read the profiles: {e}");
                return;
            }
        }
    }
    tracing::warn!("the profiles kept changing while they were read; kept as the hub has them");
}

/// `text` trimmed, checked against `max` characters and control characters; `what` names it
/// in the refusal.
fn clean(text: &str, max: usize, what: &str) -> Result<String, AppError> {
    let t = text.trim();
    if t.chars().count() > max {
        return Err(AppError::new(
            Code::InvalidProfile,
            format!("The {what} may be at most {max} characters."),
        ));
    }
    if t.chars().any(crate::domain::spoofs_label) {
        return Err(AppError::new(
            Code::InvalidProfile,
            format!("The {what} may not contain line breaks, control characters or invisible characters."),
        ));
    }
    Ok(t.to_string())
}

/// Change `user_id`'s display name and/or status (`None`: unchanged; empty: cleared). Refusal:
/// `invalid_profile`.
pub async fn update(
    state: &App,
    user_id: i64,
    display_name: Option<&str>,
    status: Option<&str>,
) -> Result<Profile, AppError> {
    let display_name = display_name
        .map(|d| clean(d, MAX_DISPLAY_NAME, "display name"))
        .transpose()?;
    let status = status.map(|s| clean(s, MAX_STATUS, "status")).transpose()?;
    // Every connection everywhere hears a profile change: one token of the change rate.
    let why = "You are changing your profile too fast.";
    state.change_rate.spend(user_id, why).await?;
    let profile = state
        .db
        .update_profile(user_id, display_name, status)
        .await?
        .ok_or_else(gone)?;
    Ok(profile)
}

/// Make the image streaming in as `body` `user_id`'s avatar: turned upright, cropped to a
/// centred square, 256 px. Refusals as for an upload, plus `bad_image` (not a png, jpeg, gif or
/// webp image that decodes).
pub async fn set_avatar<S, B, E>(
    state: &App,
    user_id: i64,
    length: Option<u64>,
    body: S,
) -> Result<Profile, AppError>
where
    S: Stream<Item = Result<B, E>> + Send,
    B: Buf,
    E: std::fmt::Display,
{
    let cfg = &state.config.uploads;
    if length.is_some_and(|n| n > cfg.max_bytes) {
        return Err(uploads::too_large(cfg.max_bytes));
    }
    let why = "You are changing your picture too fast.";
    state.message_rate.spend(user_id, why).await?;
    let (temp, received) = uploads::receive(&state.files, body, cfg.max_bytes).await?;
    let kind = Kind::sniff(&received.head).ok_or_else(bad_image)?;
    let _permit = state
        .decoders
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| AppError::new(Code::Unavailable, "The server is stopping."))?;
    let files = state.files.clone();
    let max_pixels = cfg.max_image_pixels;
    let made = tokio::task::spawn_blocking(move || {
        let data = std::fs::read(temp.path()).map_err(|e| uploads::internal(&e.to_string()))?;
        drop(temp);
        let (bytes, mime) = match image::avatar(&data, kind, max_pixels) {
            Ok(a) => a,
            Err(Problem::TooLarge) => return Err(uploads::image_too_large(max_pixels)),
            Err(Problem::Unreadable) => return Err(bad_image()),
        };
        let (file, sha) =
            uploads::write_temp(&files, &bytes).map_err(|e| uploads::internal(&e.to_string()))?;
        Ok((file, sha, mime.to_string()))
    })
    .await
    .map_err(|e| uploads::internal(&e.to_string()))??;
    let profile = state
        .db
        .set_avatar(state.files.clone(), user_id, Some(made))
        .await?
        .ok_or_else(gone)?;
    Ok(profile)
}

/// Take `user_id`'s avatar away.
pub async fn clear_avatar(state: &App, user_id: i64) -> Result<Profile, AppError> {
    let why = "You are changing your picture too fast.";
    state.change_rate.spend(user_id, why).await?;
    let profile = state
        .db
        .set_avatar(state.files.clone(), user_id, None)
        .await?
        .ok_or_else(gone)?;
    Ok(profile)
}

/// The profile of the account called `name`. Refusal: `unknown_user`.
pub async fn get(state: &App, name: &str) -> Result<Profile, AppError> {
    Ok(state
        .db
        .profile_by_key(&key_of(name)?)
        .await?
        .ok_or_else(unknown_user)?
        .0)
}

/// The avatar of the account called `name`. Refusal: `unknown_user` (no such account, or no
/// avatar).
pub async fn avatar(state: &App, name: &str) -> Result<Download, AppError> {
    let (profile, mime) = state
        .db
        .profile_by_key(&key_of(name)?)
        .await?
        .ok_or_else(unknown_user)?;
    match (profile.avatar, mime) {
        (Some(sha256), Some(mime)) => Ok(Download {
            path: state.files.path_of(&sha256),
            name: format!(
                "{}.{}",
                profile.username,
                if mime == "image/png" { "png" } else { "jpg" }
            ),
            mime,
            sha256,
            inline: true,
        }),
        _ => Err(AppError::new(
            Code::UnknownUser,
            "That person has no picture.",
        )),
    }
}

/// Refresh the hub's profiles and tell every connection about `changed`.
fn bad_image() -> AppError {
    AppError::new(
        Code::BadImage,
        "A picture must be a PNG, JPEG, GIF or WebP image.",
    )
}

/// The case-folded key of `name`; a name no account could have is `unknown_user`.
fn key_of(name: &str) -> Result<String, AppError> {
    Ok(Username::parse(name).map_err(|_| unknown_user())?.key())
}

fn unknown_user() -> AppError {
    AppError::new(Code::UnknownUser, "There is no one with that name.")
}

fn gone() -> AppError {
    AppError::new(Code::Unauthorized, "This account no longer exists.")
}
