//! Profiles in the store: reading them, and changing a display name, a status or an avatar
//! (whose file moves into place in the same writer job, like an upload's).

use std::sync::Arc;

use crate::db::{queries, Db, DbError, Profile, Tx};
use crate::events::Change;
use crate::files::{Files, TempFile};

impl Db {
    /// Every profile with something set (what `ready` carries).
    pub async fn set_profiles(&self) -> Result<Vec<Profile>, DbError> {
        self.read(queries::set_profiles).await
    }

    /// The profile of the enabled account with case-folded name `key`, and its avatar's type.
    pub async fn profile_by_key(
        &self,
        key: &str,
    ) -> Result<Option<(Profile, Option<String>)>, DbError> {
        let key = key.to_string();
        self.read(move |c| queries::profile_by_key(c, &key)).await
    }

    /// Change the display name and/or status of `user_id`; the profile afterwards.
    pub async fn update_profile(
        &self,
        user_id: i64,
        display_name: Option<String>,
        status: Option<String>,
    ) -> Result<Option<Profile>, DbError> {
        self.transact(move |tx: &Tx<'_>| {
            let c = tx.0;
            queries::update_profile(c, user_id, display_name.as_deref(), status.as_deref())?;
            announced(queries::profile_of(c, user_id)?)
        })
        .await
    }

    /// Give `user_id` the avatar in `file` (its hash and type), or none; the old one's file
    /// goes when nothing else uses it. The profile afterwards.
    pub async fn set_avatar(
        &self,
        files: Arc<Files>,
        user_id: i64,
        avatar: Option<(TempFile, String, String)>,
    ) -> Result<Option<Profile>, DbError> {
        let later = files.clone();
        let profile = self
            .transact(move |tx: &Tx<'_>| {
                let c = tx.0;
                let io = crate::db::sql::SqlError::Io;
                match avatar {
                    Some((file, sha, mime)) => {
                        queries::set_avatar(c, user_id, Some((&sha, &mime)))?;
                        files.settle(file, &sha).map_err(io)?;
                    }
                    None => queries::set_avatar(c, user_id, None)?,
                }
                announced(queries::profile_of(c, user_id)?)
            })
            .await?;
        super::uploads::collect_after(self, later).await;
        Ok(profile)
    }
}

/// A changed profile, and the change every node's connections are told of once it commits.
fn announced(profile: Option<Profile>) -> Result<(Option<Profile>, Vec<Change>), DbError> {
    let changes = profile
        .iter()
        .map(|p| Change::Profile { profile: p.clone() })
        .collect();
    Ok((profile, changes))
}
