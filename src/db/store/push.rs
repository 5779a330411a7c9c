//! Web Push in the store: the server's VAPID key and the browsers' subscriptions.

use crate::db::queries::{self, PushSubscription};
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

    /// Keep subscription `s`.
    pub async fn subscribe_push(&self, s: PushSubscription) -> Result<(), DbError> {
        self.write(move |c| queries::upsert_subscription(c, &s, now_ms()))
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

    /// For each new message (its room, author and the users it mentions): the subscriptions
    /// of those users and, when the room is a direct conversation, of its members other than
    /// the author. One read for the whole batch.
    pub async fn push_targets(
        &self,
        batch: Vec<(i64, String, Vec<i64>)>,
    ) -> Result<Vec<Vec<PushSubscription>>, DbError> {
        self.read(move |c| {
            batch
                .into_iter()
                .map(|(room_id, author, users)| {
                    let mut all = users;
                    all.extend(queries::dm_members_except(c, room_id, &author)?);
                    all.sort_unstable();
                    all.dedup();
                    queries::subscriptions_of(c, &all)
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
