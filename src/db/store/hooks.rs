//! Webhooks in the store: incoming hooks and their accounts, outgoing webhooks, and the
//! delivery queue the sender works through.

pub use crate::db::queries::HookAuth;
use crate::db::queries::{self, DueDelivery, HookRow, WebhookRow};
use std::time::Duration;

use crate::db::{now_ms, Db, DbError, StoredMessage};

/// A new incoming hook: its public id, its token's hash, its name and the name's key.
pub struct NewHook {
    /// Public id.
    pub id: String,
    /// SHA-256 of its token.
    pub token_hash: Vec<u8>,
    /// The name it posts under.
    pub name: String,
    /// That name, case-folded.
    pub key: String,
}

/// What became of adding a hook to a room.
#[derive(Debug, PartialEq, Eq)]
pub enum HookMade<T> {
    /// Added.
    Made(T),
    /// Its name is another account's.
    NameTaken,
    /// The room has as many as it may have already (counted in the transaction that would
    /// add it, so two added at once never make one too many).
    TooMany,
}

impl Db {
    /// Make incoming hook `hook` for `room_id` by `created_by`, unless the room has `most`
    /// already; its account's id.
    pub async fn create_hook(
        &self,
        hook: NewHook,
        room_id: i64,
        (created_by, most): (i64, i64),
    ) -> Result<HookMade<i64>, DbError> {
        self.write(move |c| {
            if queries::hook_counts_for_update(c, room_id)?.0 >= most {
                return Ok(HookMade::TooMany);
            }
            let made = queries::insert_hook(
                c,
                (&hook.id, &hook.token_hash),
                (&hook.name, &hook.key),
                room_id,
                created_by,
                now_ms(),
            )?;
            Ok(made.map_or(HookMade::NameTaken, HookMade::Made))
        })
        .await
    }

    /// The incoming hooks of `room_id` (every room's when `None`).
    pub async fn hooks(&self, room_id: Option<i64>) -> Result<Vec<HookRow>, DbError> {
        self.read(move |c| queries::hooks_of(c, room_id)).await
    }

    /// Incoming hook `id`, with what posting through it needs.
    pub async fn hook(&self, id: &str) -> Result<Option<HookAuth>, DbError> {
        let id = id.to_string();
        self.read(move |c| queries::hook_by_id(c, &id)).await
    }

    /// Note that hook `id` posted.
    pub async fn touch_hook(&self, id: &str) -> Result<(), DbError> {
        let id = id.to_string();
        self.write(move |c| queries::touch_hook(c, &id, now_ms()))
            .await
    }

    /// Remove hook `id` (its account stays, disabled); whether it existed.
    pub async fn delete_hook(&self, id: &str) -> Result<bool, DbError> {
        let id = id.to_string();
        self.write(move |c| queries::delete_hook(c, &id)).await
    }

    /// Add an outgoing webhook to `room_id` by `created_by`, unless the room has `most`
    /// already; its row.
    pub async fn create_webhook(
        &self,
        room_id: i64,
        (url, secret): (String, String),
        (created_by, most): (i64, i64),
    ) -> Result<HookMade<Option<WebhookRow>>, DbError> {
        let count = self.webhooks.clone();
        self.write(move |c| {
            if queries::hook_counts_for_update(c, room_id)?.1 >= most {
                return Ok(HookMade::TooMany);
            }
            let id = queries::insert_webhook(c, room_id, &url, &secret, created_by, now_ms())?;
            // Raised before the commit: the messages after this job in the same batch are
            // queued for it too.
            count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            Ok(HookMade::Made(
                queries::webhook_by_id(c, id)?.map(|(w, _)| w),
            ))
        })
        .await
    }

    /// On PostgreSQL, count the outgoing webhooks again: another node may have added the
    /// first or removed the last. The count only decides whether this node's deliverer is
    /// woken by each new message (every message is queued for its room's webhooks in its
    /// own transaction whatever it says); on SQLite it is exact and left alone.
    pub async fn recount_webhooks(&self) -> Result<(), DbError> {
        if !self.is_postgres() {
            return Ok(());
        }
        let n = self.read(queries::webhook_count).await?;
        self.webhooks
            .store(n.max(0) as usize, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Drop what webhooks whose maker is out of their room had waiting; how many deliveries.
    pub async fn drop_paused_deliveries(&self) -> Result<usize, DbError> {
        self.write(queries::drop_paused_deliveries).await
    }

    /// The outgoing webhooks of `room_id` (every room's when `None`).
    pub async fn webhooks(&self, room_id: Option<i64>) -> Result<Vec<WebhookRow>, DbError> {
        self.read(move |c| queries::webhooks_of(c, room_id)).await
    }

    /// Outgoing webhook `id` and its maker's row id.
    pub async fn webhook(&self, id: i64) -> Result<Option<(WebhookRow, Option<i64>)>, DbError> {
        self.read(move |c| queries::webhook_by_id(c, id)).await
    }

    /// Remove outgoing webhook `id` and its queue; whether it existed.
    pub async fn delete_webhook(&self, id: i64) -> Result<bool, DbError> {
        let gone = self.write(move |c| queries::delete_webhook(c, id)).await?;
        if gone {
            // Lowered only once the removal committed.
            let _ = self.webhooks.fetch_update(
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
                |n| n.checked_sub(1),
            );
        }
        Ok(gone)
    }

    /// The deliveries due now (the head of each webhook's queue), at most `limit`, and when
    /// the next one falls due after them.
    pub async fn due_deliveries(
        &self,
        limit: u32,
        claim: Duration,
    ) -> Result<(Vec<DueDelivery>, Option<i64>), DbError> {
        let (due, next) = self
            .read(move |c| {
                let due = queries::due_deliveries(c, now_ms(), limit)?;
                Ok((due, queries::next_delivery_at(c)?))
            })
            .await?;
        if due.is_empty() || !self.is_postgres() {
            return Ok((due, next));
        }
        // Several nodes read the same queue: each delivers what it claimed.
        let claimed = self
            .write(move |c| {
                let until = now_ms() + claim.as_millis() as i64;
                let mut mine = Vec::new();
                for d in due {
                    if queries::claim_delivery(c, (d.webhook_id, d.message_id), d.next_at, until)? {
                        mine.push(d);
                    }
                }
                Ok(mine)
            })
            .await?;
        Ok((claimed, next))
    }

    /// Message `id` as it is now, and whether its author is an incoming hook.
    pub async fn message_for_delivery(
        &self,
        id: i64,
    ) -> Result<Option<(StoredMessage, bool)>, DbError> {
        self.read(move |c| {
            let Some((msg, author)) = queries::message_by_id(c, id)? else {
                return Ok(None);
            };
            Ok(Some((msg, queries::is_hook_account(c, author)?)))
        })
        .await
    }

    /// A delivery was answered 2xx.
    pub async fn delivery_done(
        &self,
        webhook_id: i64,
        message_id: i64,
        status: i64,
    ) -> Result<(), DbError> {
        self.write(move |c| queries::delivery_done(c, webhook_id, message_id, status, now_ms()))
            .await
    }

    /// A delivery failed; retried at `next_at`, or dropped when `None`.
    pub async fn delivery_failed(
        &self,
        (webhook_id, message_id): (i64, i64),
        status: Option<i64>,
        error: String,
        next_at: Option<i64>,
    ) -> Result<(), DbError> {
        self.write(move |c| {
            queries::delivery_failed(
                c,
                (webhook_id, message_id),
                (status, &error),
                next_at,
                now_ms(),
            )
        })
        .await
    }
}
