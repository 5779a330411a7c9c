//! Web Push in the store: the server's VAPID key and the browsers' subscriptions.

use crate::db::queries::{self, PushReason, PushSettings, PushSubscription};
use crate::db::{now_ms, Db, DbError};

impl Db {
    /// The stored key `name`, made by `make` and kept the first time it is asked for.
    pub async fn server_key(
        &self,
        name: &'static str,
        make: fn() -> Vec<u8>,
    ) -> Result<Vec<u8>, DbError> {
        self.write(move |c| queries::server_key(c, name, make))
            .await
    }

    /// Forget the stored key `name`.
    pub async fn forget_server_key(&self, name: &'static str) -> Result<(), DbError> {
        self.write(move |c| queries::forget_server_key(c, name).map(drop))
            .await
    }

    /// Keep `user_id`'s subscription `endpoint` with its keys, made through the session whose
    /// token hashes to `session` (it ends with it), and apply `settings`; the subscription as
    /// stored.
    pub async fn subscribe_push(
        &self,
        endpoint: String,
        (user_id, session): (i64, [u8; 32]),
        keys: (Vec<u8>, Vec<u8>),
        settings: PushSettings,
    ) -> Result<PushSubscription, DbError> {
        self.write(move |c| {
            let owner = (user_id, &session[..]);
            queries::upsert_subscription(c, &endpoint, owner, (&keys.0, &keys.1), now_ms())?;
            queries::trim_subscriptions(c, user_id, &endpoint)?;
            queries::update_subscription(c, &endpoint, user_id, settings)?
                .ok_or(crate::db::sql::SqlError::Missing("the new subscription"))
        })
        .await
    }

    /// Change the settings of `user_id`'s subscription `endpoint` (`None`: no such one).
    pub async fn set_push_settings(
        &self,
        endpoint: String,
        user_id: i64,
        settings: PushSettings,
    ) -> Result<Option<PushSubscription>, DbError> {
        self.write(move |c| queries::update_subscription(c, &endpoint, user_id, settings))
            .await
    }

    /// Every subscription of `user_id`.
    pub async fn push_subscriptions_of(
        &self,
        user_id: i64,
    ) -> Result<Vec<PushSubscription>, DbError> {
        self.read(move |c| queries::subscriptions_of_user(c, user_id))
            .await
    }

    /// Forget subscription `endpoint` of `user_id` (anyone's when `None`); whether it existed.
    pub async fn unsubscribe_push(
        &self,
        endpoint: &str,
        user_id: Option<i64>,
    ) -> Result<bool, DbError> {
        let endpoint = endpoint.to_string();
        self.write(move |c| queries::delete_subscription(c, &endpoint, user_id))
            .await
    }

    /// Note that `endpoint` accepted a push.
    pub async fn push_accepted(&self, endpoint: &str) -> Result<(), DbError> {
        let endpoint = endpoint.to_string();
        self.write(move |c| queries::subscription_ok(c, &endpoint, now_ms()))
            .await
    }

    /// For each new message (its room, author and the users it mentions): the
    /// subscriptions it concerns and why (see [`queries::push_targets`]). One read for the
    /// whole batch.
    pub async fn push_targets(
        &self,
        batch: Vec<(i64, String, Vec<i64>, bool)>,
    ) -> Result<Vec<Vec<(PushSubscription, PushReason)>>, DbError> {
        self.read(move |c| {
            batch
                .iter()
                .map(|(room_id, author, users, only_mentioned)| {
                    queries::push_targets(c, *room_id, author, (users, *only_mentioned))
                })
                .collect()
        })
        .await
    }

    /// How many push subscriptions there are.
    pub async fn push_subscription_count(&self) -> Result<i64, DbError> {
        self.read(queries::subscription_count).await
    }
}
