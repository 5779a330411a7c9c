//! Invite links made by the people of the server, not only its administrators: who may make
//! one (`registration.member_invites`), how many per hour (`limits.invite_links_per_hour`),
//! listing and revoking one's own, and the QR code of a link, drawn by the browser from a
//! matrix of modules so that no third party ever sees the link.

use std::time::Duration;

use qrcode::{Color, EcLevel, QrCode};

use crate::app::admin::{mint_invite, InviteLimits};
use crate::app::error::{AppError, Code};
use crate::app::App;
use crate::db::queries::InviteRow;
use crate::db::User;
use crate::limits::Limit;

const HOUR: Duration = Duration::from_secs(3600);

/// A QR code as a square of modules: `modules` holds `size × size` characters, row by row,
/// `1` for a dark module and `0` for a light one. The quiet zone around it is left to whoever
/// draws it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrMatrix {
    /// Modules per side: 21 + 4 × (version − 1).
    pub size: usize,
    /// The modules, row-major.
    pub modules: String,
}

/// The QR code of `text` (error correction level M), `None` when it does not fit in one.
pub fn qr_matrix(text: &str) -> Option<QrMatrix> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    let modules = code
        .to_colors()
        .iter()
        .map(|c| if *c == Color::Dark { '1' } else { '0' })
        .collect();
    Some(QrMatrix {
        size: code.width(),
        modules,
    })
}

/// Whether `user` may create invite links: administrators always, members when the operator
/// turned `registration.member_invites` on.
pub fn may_invite(state: &App, is_admin: bool) -> bool {
    is_admin || state.config.registration.member_invites
}

/// `user` makes an invite link. Members need `registration.member_invites` (`forbidden`
/// otherwise) and count against `limits.invite_links_per_hour` (`rate_limited`); the quota is
/// given back when the link could not be stored.
pub async fn create(
    state: &App,
    user: &User,
    is_admin: bool,
    limits: InviteLimits,
) -> Result<(InviteRow, String), AppError> {
    if !may_invite(state, is_admin) {
        return Err(AppError::new(
            Code::Forbidden,
            "Only administrators can create invite links on this server.",
        ));
    }
    let reservation = if is_admin {
        None
    } else {
        let key = format!("invite_links:{}", user.id);
        let limit = Limit {
            max: state.config.limits.invite_links_per_hour as usize,
            window: HOUR,
        };
        let r = state
            .quotas
            .reserve(&[(&key, limit)])
            .await
            .map_err(|secs| {
                AppError::new(
                    Code::RateLimited,
                    "You have created many invite links in the last hour; try again later.",
                )
                .retry_after(Duration::from_secs(secs))
            })?;
        Some(r)
    };
    let (code, invite) = mint_invite(limits, Some(user.id));
    let row = match state.db.create_invite(invite).await {
        Ok(row) => row,
        Err(e) => {
            if let Some(r) = &reservation {
                state.quotas.release(r).await;
            }
            return Err(e.into());
        }
    };
    tracing::info!(
        user = %user.username,
        invite = row.id,
        max_uses = limits.max_uses,
        expires_in_hours = limits.hours,
        "invite link created"
    );
    Ok((row, code))
}

/// The invite links `user` made, newest first.
pub async fn mine(state: &App, user: &User) -> Result<Vec<InviteRow>, AppError> {
    Ok(state.db.list_invites_by(user.id).await?)
}

/// `user` revokes one of their own invite links (again: still fine); `unknown_invite` for an
/// id that is not one of theirs, so nobody learns which other links exist.
pub async fn revoke_mine(state: &App, user: &User, id: i64) -> Result<(), AppError> {
    if !state.db.revoke_own_invite(id, user.id).await? {
        return Err(AppError::new(
            Code::UnknownInvite,
            "You have no such invite link.",
        ));
    }
    tracing::info!(user = %user.username, invite = id, "invite link revoked");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_qr_matrix_is_square_and_holds_its_finder_patterns() {
        let url = "https://chat.example.org/?invite=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
        let qr = qr_matrix(url).unwrap();
        assert_eq!((qr.size - 21) % 4, 0, "21 + 4k modules a side");
        assert_eq!(qr.modules.len(), qr.size * qr.size);
        assert!(qr.modules.bytes().all(|b| b == b'0' || b == b'1'));
        // The top-left finder pattern: a dark 7-module border row, and a light separator.
        let row = |y: usize| &qr.modules[y * qr.size..(y + 1) * qr.size];
        assert_eq!(&row(0)[..8], "11111110");
        assert_eq!(&row(2)[..7], "1011101");
        assert_eq!(&row(7)[..8], "00000000");
    }

    #[test]
    fn text_too_long_for_any_qr_code_has_none() {
        assert!(qr_matrix(&"x".repeat(5000)).is_none());
    }
}
