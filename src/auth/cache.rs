//! Sessions already looked up, by token digest, so a signed-in request costs no trip to the
//! database. An entry is only used while it is current: it carries the store's sessions
//! generation ([`crate::db::Db::sessions_generation`]) of the moment before its row was read,
//! and every revocation, password change or account change bumps that generation once it has
//! committed, so a revoked session is never answered from here after the revoking request
//! returns. Changes made by another process (the command line) reach the generation through
//! the sessions epoch that the server polls every second. Expiry is checked on every use.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::model::SessionInfo;

/// Entries kept at most; beyond it the cache starts again empty (cheap, and rare: one entry per
/// live session in use).
const MAX_ENTRIES: usize = 65_536;

struct Entry {
    info: SessionInfo,
    generation: u64,
}

/// The sessions cache (see the module documentation).
#[derive(Default)]
pub struct SessionCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl SessionCache {
    /// The session behind `digest` if it is cached, current at `generation` and not expired at
    /// `now_ms`. A stale or expired entry is removed.
    pub fn get(&self, digest: &[u8; 32], generation: u64, now_ms: i64) -> Option<SessionInfo> {
        let mut entries = self.lock();
        let entry = entries.get(digest)?;
        let expired = entry.info.expires_at.is_some_and(|at| at <= now_ms);
        if entry.generation != generation || expired {
            entries.remove(digest);
            return None;
        }
        Some(entry.info.clone())
    }

    /// Keep `info`, read from the store at `generation` (taken before the read).
    pub fn put(&self, digest: [u8; 32], info: SessionInfo, generation: u64) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&digest) {
            entries.clear();
        }
        entries.insert(digest, Entry { info, generation });
    }

    /// The session's activity was recorded at `now_ms`.
    pub fn touched(&self, digest: &[u8; 32], now_ms: i64) {
        if let Some(entry) = self.lock().get_mut(digest) {
            entry.info.last_seen_at = now_ms;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SessionKind, User};

    fn info(expires_at: Option<i64>) -> SessionInfo {
        SessionInfo {
            user: User {
                id: 7,
                username: "alice".into(),
            },
            kind: SessionKind::Cookie,
            last_seen_at: 1_000,
            is_admin: false,
            expires_at,
        }
    }

    #[test]
    fn an_entry_serves_only_its_generation_and_lifetime() {
        let cache = SessionCache::default();
        let d = [1u8; 32];
        cache.put(d, info(Some(10_000)), 3);
        assert!(cache.get(&d, 3, 5_000).is_some());
        assert!(cache.get(&d, 4, 5_000).is_none(), "a newer generation");
        assert!(
            cache.get(&d, 3, 5_000).is_none(),
            "stale entries are removed"
        );

        cache.put(d, info(Some(10_000)), 3);
        assert!(cache.get(&d, 3, 10_000).is_none(), "expired");
        cache.put(d, info(None), 3);
        assert!(cache.get(&d, 3, i64::MAX).is_some(), "no expiry");
        cache.touched(&d, 9_999);
        assert_eq!(cache.get(&d, 3, 1).map(|i| i.last_seen_at), Some(9_999));
    }
}
