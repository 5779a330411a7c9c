//! Accounts and sessions: registration, login with throttling, logout, bot tokens and the
//! lookup that turns a presented token into a user.
//!
//! - [`password`]: PBKDF2 PHC hashes.
//! - [`token`]: random session tokens and their stored digests.

pub mod password;
pub mod token;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::config::AuthConfig;
use crate::db::{self, queries, Db, DbError, SessionKind, SessionRow, User};
use crate::domain::{check_password, PasswordProblem, Username};

/// Failed logins counted per account and per address within this window.
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures allowed per username (existing or not) within the window.
const FAILURES_PER_ACCOUNT: usize = 10;
/// Failures allowed per client address within the window.
const FAILURES_PER_ADDRESS: usize = 50;
/// Hash computations allowed to wait for a core before new ones are refused.
const MAX_HASH_WAITERS: usize = 64;
/// A session's `last_seen_at` is rewritten at most this often.
const TOUCH_EVERY_MS: i64 = 60 * 60 * 1000;

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The username breaks the naming rules.
    #[error("{0}")]
    InvalidUsername(&'static str),
    /// Password shorter than 8 bytes.
    #[error("Passwords need at least 8 characters.")]
    WeakPassword,
    /// Password longer than 1024 bytes.
    #[error("Passwords may be at most 1024 bytes long.")]
    PasswordTooLong,
    /// Someone already has this name (ignoring case).
    #[error("That username is taken.")]
    UsernameTaken,
    /// Unknown user or wrong password: deliberately the same answer.
    #[error("Wrong username or password.")]
    InvalidCredentials,
    /// Too many failures or registrations; retry after this many seconds.
    #[error("Too many attempts. Try again in {0} seconds.")]
    TooManyAttempts(u64),
    /// Every core is busy hashing; retry shortly.
    #[error("The server is busy. Try again in a moment.")]
    Busy,
    /// The registration mode is `closed`.
    #[error("Registration is closed on this server. Ask an administrator for an account.")]
    RegistrationClosed,
    /// The registration mode is `invite` and no invite code was given.
    #[error("New accounts on this server need an invite link. Ask an administrator for one.")]
    InviteRequired,
    /// The invite code is unknown, expired, used up or revoked.
    #[error("This invite link is not valid: it may have expired, been used up or been revoked.")]
    InvalidInvite,
    /// The store failed.
    #[error("storage: {0}")]
    Storage(#[from] DbError),
}

/// A successful sign-in: the user and the token to hand out.
#[derive(Debug)]
pub struct NewSession {
    /// Who signed in.
    pub user: User,
    /// The raw token (cookie value or bearer token), shown once.
    pub token: String,
}

/// The identity behind a presented token.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user.
    pub user: User,
    /// How the token was issued.
    pub kind: SessionKind,
    /// Digest of the token, to revoke it.
    pub token_hash: [u8; 32],
    /// Whether the user is an administrator.
    pub is_admin: bool,
}

#[derive(Default)]
struct Windows {
    by_key: HashMap<String, VecDeque<Instant>>,
}

impl Windows {
    /// Events for `key` still inside `window`, pruning old ones.
    fn count(&mut self, key: &str, window: Duration, now: Instant) -> (usize, Option<Instant>) {
        let Some(q) = self.by_key.get_mut(key) else {
            return (0, None);
        };
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        (q.len(), q.front().copied())
    }

    fn add(&mut self, key: String, now: Instant, window: Duration) {
        if self.by_key.len() > 100_000 {
            self.by_key
                .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        self.by_key.entry(key).or_default().push_back(now);
    }

    fn clear(&mut self, key: &str) {
        self.by_key.remove(key);
    }
}

/// Accounts and sessions. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    config: AuthConfig,
    registrations_per_hour: u32,
    /// Computed on first need (600,000 iterations would delay start-up by a quarter second).
    dummy_hash: Arc<std::sync::OnceLock<String>>,
    hashing: Semaphore,
    hash_waiters: AtomicUsize,
    failures: Mutex<Windows>,
    registrations: Mutex<Windows>,
}

/// Whether the registration mode lets a new account in: `Ok(Some(id))` with the usable invite
/// it would use, `Ok(None)` when no invite is needed.
fn admission(
    c: &rusqlite::Connection,
    code_hash: Option<&[u8; 32]>,
    now_ms: i64,
) -> rusqlite::Result<Result<Option<i64>, AuthError>> {
    Ok(match queries::registration_mode(c)? {
        queries::RegistrationMode::Open => Ok(None),
        queries::RegistrationMode::Closed => Err(AuthError::RegistrationClosed),
        queries::RegistrationMode::Invite => match code_hash {
            None => Err(AuthError::InviteRequired),
            Some(h) => queries::usable_invite(c, h, now_ms)?
                .map(Some)
                .ok_or(AuthError::InvalidInvite),
        },
    })
}

fn retry_after(oldest: Option<Instant>, window: Duration, now: Instant) -> u64 {
    oldest
        .map(|t| {
            window
                .saturating_sub(now.duration_since(t))
                .as_secs()
                .max(1)
        })
        .unwrap_or(1)
}

impl Auth {
    /// Build the service over the store.
    pub fn new(db: Db, config: AuthConfig, registrations_per_hour: u32) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Auth {
            inner: Arc::new(Inner {
                db,
                dummy_hash: Arc::new(std::sync::OnceLock::new()),
                config,
                registrations_per_hour,
                hashing: Semaphore::new(cores),
                hash_waiters: AtomicUsize::new(0),
                failures: Mutex::new(Windows::default()),
                registrations: Mutex::new(Windows::default()),
            }),
        }
    }

    /// Compute the dummy hash in the background so the first unknown-user login is not slower.
    pub fn prewarm(&self) {
        let dummy = self.inner.dummy_hash.clone();
        let iterations = self.inner.config.pbkdf2_iterations;
        tokio::task::spawn_blocking(move || {
            dummy.get_or_init(|| password::dummy(iterations));
        });
    }

    /// Run a PBKDF2 computation on a blocking thread, at most one per core at a time.
    async fn hashing<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let inner = &self.inner;
        if inner.hash_waiters.fetch_add(1, Ordering::AcqRel) >= MAX_HASH_WAITERS {
            inner.hash_waiters.fetch_sub(1, Ordering::AcqRel);
            return Err(AuthError::Busy);
        }
        let permit = inner.hashing.acquire().await;
        inner.hash_waiters.fetch_sub(1, Ordering::AcqRel);
        let _permit = permit.map_err(|_| AuthError::Busy)?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| AuthError::Storage(DbError::Task(e.to_string())))
    }

    /// Create an account and sign it in (no invite code).
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<NewSession, AuthError> {
        self.register_with_invite(username, password, None, client)
            .await
    }

    /// Create an account and sign it in, as the registration mode allows: `open` lets anyone
    /// in (an invite code is then ignored), `invite` needs a usable invite code, whose use is
    /// counted in the same transaction that inserts the user, `closed` lets nobody in.
    pub async fn register_with_invite(
        &self,
        username: &str,
        password: &str,
        invite: Option<&str>,
        client: IpAddr,
    ) -> Result<NewSession, AuthError> {
        let code_hash = invite
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(token::digest);
        // A cheap early answer before spending a password hash; checked again when writing.
        let now = db::now_ms();
        self.inner
            .db
            .read(move |c| admission(c, code_hash.as_ref(), now))
            .await??;
        let name = Username::parse(username).map_err(AuthError::InvalidUsername)?;
        check_password(password).map_err(|p| match p {
            PasswordProblem::TooShort => AuthError::WeakPassword,
            PasswordProblem::TooLong => AuthError::PasswordTooLong,
        })?;
        let per_hour = self.inner.registrations_per_hour as usize;
        let ip_key = client.to_string();
        let hour = Duration::from_secs(3600);
        if per_hour > 0 {
            let now = Instant::now();
            let mut regs = self
                .inner
                .registrations
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let (n, oldest) = regs.count(&ip_key, hour, now);
            if n >= per_hour {
                return Err(AuthError::TooManyAttempts(retry_after(oldest, hour, now)));
            }
        }
        let iterations = self.inner.config.pbkdf2_iterations;
        let pw = password.to_string();
        let hash = self
            .hashing(move || password::hash(&pw, iterations))
            .await?;
        let (uname, key) = (name.as_str().to_string(), name.key());
        let now = db::now_ms();
        let (user, invite_id) = self
            .inner
            .db
            .write(move |c| {
                let invite_id = match admission(c, code_hash.as_ref(), now)? {
                    Ok(id) => id,
                    Err(e) => return Ok(Err(e)),
                };
                let Some(user) = queries::insert_user(c, &uname, &key, &hash, now)? else {
                    return Ok(Err(AuthError::UsernameTaken));
                };
                if let Some(id) = invite_id {
                    // Checked usable above in this same transaction; a refusal here rolls the
                    // new account back.
                    if !queries::use_invite(c, id, now)? {
                        return Err(rusqlite::Error::StatementChangedRows(0));
                    }
                }
                Ok(Ok((user, invite_id)))
            })
            .await??;
        if per_hour > 0 {
            let mut regs = self
                .inner
                .registrations
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            regs.add(ip_key, Instant::now(), hour);
        }
        tracing::info!(user = %user.username, invite = ?invite_id, "account created");
        self.start_session(user, SessionKind::Cookie, None).await
    }

    /// Hash a new password with the configured iterations, off the async runtime.
    pub async fn hash_new_password(&self, password: String) -> Result<String, AuthError> {
        let iterations = self.inner.config.pbkdf2_iterations;
        self.hashing(move || password::hash(&password, iterations))
            .await
    }

    /// Check credentials, with throttling per account and per address, and sign in.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<NewSession, AuthError> {
        if password.len() > 1024 {
            return Err(AuthError::PasswordTooLong);
        }
        let account_key = format!("u:{}", username.to_ascii_lowercase());
        let ip_key = format!("a:{client}");
        {
            let now = Instant::now();
            let mut f = self
                .inner
                .failures
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let (by_account, oldest_a) = f.count(&account_key, FAILURE_WINDOW, now);
            let (by_ip, oldest_i) = f.count(&ip_key, FAILURE_WINDOW, now);
            if by_account >= FAILURES_PER_ACCOUNT {
                return Err(AuthError::TooManyAttempts(retry_after(
                    oldest_a,
                    FAILURE_WINDOW,
                    now,
                )));
            }
            if by_ip >= FAILURES_PER_ADDRESS {
                return Err(AuthError::TooManyAttempts(retry_after(
                    oldest_i,
                    FAILURE_WINDOW,
                    now,
                )));
            }
        }
        let found = match Username::parse(username) {
            Ok(name) => {
                let key = name.key();
                self.inner
                    .db
                    .read(move |c| queries::user_for_login(c, &key))
                    .await?
            }
            Err(_) => None,
        };
        let stored = found.as_ref().map(|(_, h)| h.clone());
        let pw = password.to_string();
        let dummy = self.inner.dummy_hash.clone();
        let iterations = self.inner.config.pbkdf2_iterations;
        let ok = self
            .hashing(move || {
                let hash = stored
                    .unwrap_or_else(|| dummy.get_or_init(|| password::dummy(iterations)).clone());
                password::verify(&pw, &hash)
            })
            .await?;
        let Some((user, old_hash)) = found.filter(|_| ok) else {
            let now = Instant::now();
            let mut f = self
                .inner
                .failures
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            f.add(account_key, now, FAILURE_WINDOW);
            f.add(ip_key, now, FAILURE_WINDOW);
            return Err(AuthError::InvalidCredentials);
        };
        self.inner
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear(&account_key);
        let iterations = self.inner.config.pbkdf2_iterations;
        if password::needs_rehash(&old_hash, iterations) {
            let pw = password.to_string();
            let hash = self
                .hashing(move || password::hash(&pw, iterations))
                .await?;
            let id = user.id;
            self.inner
                .db
                .write(move |c| queries::set_password_hash(c, id, &hash))
                .await?;
        }
        self.start_session(user, SessionKind::Cookie, None).await
    }

    /// Change a password after checking the current one. With `sign_out_others`, every other
    /// browser session of the user is revoked (the caller closes their sockets).
    pub async fn change_password(
        &self,
        who: &Identity,
        current: &str,
        new: &str,
        sign_out_others: bool,
    ) -> Result<Vec<[u8; 32]>, AuthError> {
        check_password(new).map_err(|p| match p {
            PasswordProblem::TooShort => AuthError::WeakPassword,
            PasswordProblem::TooLong => AuthError::PasswordTooLong,
        })?;
        if current.len() > 1024 {
            return Err(AuthError::InvalidCredentials);
        }
        let uid = who.user.id;
        let Some(stored) = self
            .inner
            .db
            .read(move |c| queries::password_hash(c, uid))
            .await?
        else {
            return Err(AuthError::InvalidCredentials);
        };
        let pw = current.to_string();
        if !self.hashing(move || password::verify(&pw, &stored)).await? {
            return Err(AuthError::InvalidCredentials);
        }
        let iterations = self.inner.config.pbkdf2_iterations;
        let pw = new.to_string();
        let hash = self
            .hashing(move || password::hash(&pw, iterations))
            .await?;
        let keep = who.token_hash;
        let revoked = self
            .inner
            .db
            .write(move |c| {
                queries::set_password_hash(c, uid, &hash)?;
                if sign_out_others {
                    queries::delete_other_sessions(c, uid, &keep)
                } else {
                    Ok(Vec::new())
                }
            })
            .await?;
        tracing::info!(user = %who.user.username, sign_out_others, "password changed");
        Ok(revoked)
    }

    /// Issue a new token for `user`.
    pub async fn start_session(
        &self,
        user: User,
        kind: SessionKind,
        name: Option<String>,
    ) -> Result<NewSession, AuthError> {
        let (token, token_hash) = token::generate();
        let now = db::now_ms();
        let expires_at = match kind {
            SessionKind::Cookie => {
                Some(now + i64::from(self.inner.config.session_max_hours) * 3_600_000)
            }
            SessionKind::Bot => None,
        };
        let row = SessionRow {
            token_hash,
            user_id: user.id,
            kind,
            name,
            created_at: now,
            expires_at,
        };
        self.inner
            .db
            .write(move |c| queries::insert_session(c, &row))
            .await?;
        Ok(NewSession { user, token })
    }

    /// Revoke the session behind a token.
    pub async fn logout(&self, token_hash: [u8; 32]) -> Result<(), AuthError> {
        self.inner
            .db
            .write(move |c| queries::delete_session(c, &token_hash))
            .await?;
        Ok(())
    }

    /// The user behind a presented token, if it is live. Cookie sessions also expire when idle.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Identity>, AuthError> {
        if !token::well_formed(token) {
            return Ok(None);
        }
        self.lookup(token::digest(token)).await
    }

    /// Whether a session is still live (long-lived WebSockets re-check this periodically).
    pub async fn still_valid(&self, token_hash: [u8; 32]) -> Result<bool, AuthError> {
        Ok(self.lookup(token_hash).await?.is_some())
    }

    async fn lookup(&self, token_hash: [u8; 32]) -> Result<Option<Identity>, AuthError> {
        let now = db::now_ms();
        let found = self
            .inner
            .db
            .read(move |c| queries::session_user(c, &token_hash, now))
            .await?;
        let Some(info) = found else {
            return Ok(None);
        };
        let (kind, last_seen) = (info.kind, info.last_seen_at);
        if kind == SessionKind::Cookie {
            let idle_ms = i64::from(self.inner.config.session_idle_hours) * 3_600_000;
            if now - last_seen > idle_ms {
                return Ok(None);
            }
        }
        if now - last_seen > TOUCH_EVERY_MS {
            let db = self.inner.db.clone();
            tokio::spawn(async move {
                if let Err(e) = db
                    .write(move |c| queries::touch_session(c, &token_hash, now))
                    .await
                {
                    tracing::warn!("could not record session activity: {e}");
                }
            });
        }
        Ok(Some(Identity {
            user: info.user,
            kind,
            token_hash,
            is_admin: info.is_admin,
        }))
    }
}
