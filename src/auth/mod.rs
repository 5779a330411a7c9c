//! Accounts and sessions: registration, login with throttling, logout, bot tokens and the
//! lookup that turns a presented token into a user.
//!
//! - [`password`]: PBKDF2 PHC hashes.
//! - [`token`]: random session tokens and their stored digests.

mod cache;
pub mod password;
pub mod token;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::config::AuthConfig;
use crate::db::{
    self, queries, Created, Db, DbError, Gate, NewAccount, NewAdmin, SessionInfo, SessionKind,
    SessionRow, User,
};
use crate::domain::{check_password, PasswordProblem, Username};
use crate::limits::{address_key, Limit, Limiter, Reservation};

/// Failed logins counted per account and per address within this window.
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures allowed per username (existing or not) within the window; the same number of
/// wrong current passwords is allowed per account on `POST /api/password`.
const FAILURES_PER_ACCOUNT: usize = 10;
/// Failures allowed per client address within the window.
const FAILURES_PER_ADDRESS: usize = 50;
/// Window of `limits.registrations_per_hour`.
const HOUR: Duration = Duration::from_secs(3600);
/// Hash computations allowed to wait for a core before new ones are refused.
const MAX_HASH_WAITERS: usize = 64;
/// A session's `last_seen_at` is rewritten at most this often.
const TOUCH_EVERY_MS: i64 = 60 * 60 * 1000;
/// The name of the setup code in the store's server keys (see [`Auth::prepare_setup`]).
const SETUP_KEY: &str = crate::db::queries::SETUP_CODE_KEY;

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
    /// The user already holds `limits.tokens_per_user` bot tokens.
    #[error("You already have {0} bot tokens; revoke one you no longer use first.")]
    TooManyTokens(u32),
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

/// Accounts and sessions. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    config: AuthConfig,
    registrations_per_hour: u32,
    /// Whether members' invite links admit (`registration.member_invites`); administrators'
    /// always do, while their maker is one and is not disabled.
    members_invite: bool,
    tokens_per_user: u32,
    /// Computed on first need (600,000 iterations would delay start-up by a quarter second).
    dummy_hash: Arc<std::sync::OnceLock<String>>,
    /// One permit per core; a permit travels into the blocking hash and is released when the
    /// hash ends, whether or not its client is still there.
    hashing: Arc<Semaphore>,
    /// Requests waiting for a permit, given back by [`WaitingForHash`] however they end.
    hash_waiters: AtomicUsize,
    /// Failed logins and password checks, per account and per address (over every node in
    /// cluster mode).
    failures: Limiter,
    /// Registration attempts per address (over every node in cluster mode).
    registrations: Limiter,
    /// Digest of the one-time setup code whose registration becomes the first
    /// administrator, while the server has none.
    setup: Mutex<Option<[u8; 32]>>,
    /// Counts the hashes computed.
    metrics: Arc<crate::metrics::Metrics>,
    /// Sessions already looked up (current while the store's sessions generation is).
    sessions: cache::SessionCache,
}

/// The key failed logins are counted under for an account: its validated, case-folded name,
/// so the key is at most 35 bytes whatever a client sends, and `Alice` and `alice` share it.
/// A name that cannot exist has no key (only the per-address limit applies to it).
fn login_key(name: &Username) -> String {
    format!("u:{}", name.key())
}

/// A place in the queue for a hashing permit; dropping it (also when the request is
/// cancelled because its client hung up) gives the place back.
struct WaitingForHash<'a>(&'a AtomicUsize);

impl Drop for WaitingForHash<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The refusal a registration gate stands for, if any.
fn refusal(gate: Gate) -> Option<AuthError> {
    match gate {
        Gate::Open | Gate::Invite(_) => None,
        Gate::Closed => Some(AuthError::RegistrationClosed),
        Gate::InviteRequired => Some(AuthError::InviteRequired),
        Gate::InvalidInvite => Some(AuthError::InvalidInvite),
    }
}

impl Auth {
    /// Build the service over the store; with `shared` (cluster mode) failed logins and
    /// registration attempts are counted over every node.
    pub fn new(
        db: Db,
        (config, members_invite): (AuthConfig, bool),
        limits: &crate::config::LimitsConfig,
        metrics: Arc<crate::metrics::Metrics>,
        shared: Option<&dyn crate::limits::SharedWindows>,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Auth {
            inner: Arc::new(Inner {
                db,
                dummy_hash: Arc::new(std::sync::OnceLock::new()),
                config,
                members_invite,
                registrations_per_hour: limits.registrations_per_hour,
                tokens_per_user: limits.tokens_per_user,
                hashing: Arc::new(Semaphore::new(cores)),
                hash_waiters: AtomicUsize::new(0),
                failures: Limiter::new(shared.map(|w| w.scoped("fail"))),
                registrations: Limiter::new(shared.map(|w| w.scoped("reg"))),
                setup: Mutex::new(None),
                metrics,
                sessions: cache::SessionCache::default(),
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
    ///
    /// Cancellation-safe: a request dropped while it waits gives its place back, and the
    /// permit is held by the blocking computation itself, so a hash that keeps running after
    /// its client left still occupies its core.
    async fn hashing<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let inner = &self.inner;
        if inner.hash_waiters.fetch_add(1, Ordering::AcqRel) >= MAX_HASH_WAITERS {
            inner.hash_waiters.fetch_sub(1, Ordering::AcqRel);
            return Err(AuthError::Busy);
        }
        let waiting = WaitingForHash(&inner.hash_waiters);
        let permit = inner.hashing.clone().acquire_owned().await;
        drop(waiting);
        let permit = permit.map_err(|_| AuthError::Busy)?;
        inner
            .metrics
            .password_hashes
            .fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let out = f();
            drop(permit);
            out
        })
        .await
        .map_err(|e| AuthError::Storage(DbError::Task(e.to_string())))
    }

    /// Make a one-time setup code when the server has no administrator yet: whoever
    /// registers with it becomes the administrator. Returns the code to show the operator.
    ///
    /// The code is kept in the store until an administrator exists, so that every node of a
    /// cluster (and a restart) shows the same link and takes it, wherever a load balancer
    /// sends the registration.
    pub async fn prepare_setup(&self) -> Result<Option<String>, AuthError> {
        if self.inner.db.has_admin().await? {
            *self.inner.setup.lock().unwrap_or_else(|p| p.into_inner()) = None;
            self.inner.db.forget_server_key(SETUP_KEY).await?;
            return Ok(None);
        }
        let new_code = || token::generate().0.into_bytes();
        let mut stored = self.inner.db.server_key(SETUP_KEY, new_code).await?;
        if !std::str::from_utf8(&stored).is_ok_and(token::well_formed) {
            // Not one this build made: make a new one.
            self.inner.db.forget_server_key(SETUP_KEY).await?;
            stored = self.inner.db.server_key(SETUP_KEY, new_code).await?;
        }
        let code = String::from_utf8(stored).unwrap_or_default();
        *self.inner.setup.lock().unwrap_or_else(|p| p.into_inner()) = Some(token::digest(&code));
        Ok(Some(code))
    }

    fn setup_matches(&self, code: Option<&str>) -> bool {
        use subtle::ConstantTimeEq;
        let Some(code) = code.map(str::trim).filter(|c| token::well_formed(c)) else {
            return false;
        };
        let slot = self.inner.setup.lock().unwrap_or_else(|p| p.into_inner());
        slot.is_some_and(|d| bool::from(d.ct_eq(&token::digest(code))))
    }

    /// Create an account and sign it in (no invite code).
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<NewSession, AuthError> {
        self.register_with_invite(username, password, None, None, client)
            .await
    }

    /// Create an account and sign it in, as the registration mode allows: `open` lets anyone
    /// in (an invite code is then ignored), `invite` needs a usable invite code, whose use is
    /// counted in the same transaction that inserts the user, `closed` lets nobody in.
    ///
    /// A valid `setup` code (see [`Auth::prepare_setup`]) makes the account the first
    /// administrator and is then used up; without it a new account is an ordinary member.
    /// Every attempt that gets as far as the password hash counts against
    /// `limits.registrations_per_hour` for the client's address, reserved before the hash.
    pub async fn register_with_invite(
        &self,
        username: &str,
        password: &str,
        invite: Option<&str>,
        setup: Option<&str>,
        client: IpAddr,
    ) -> Result<NewSession, AuthError> {
        let code_hash = invite
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(token::digest);
        let name = Username::parse(username).map_err(AuthError::InvalidUsername)?;
        check_password(password).map_err(|p| match p {
            PasswordProblem::TooShort => AuthError::WeakPassword,
            PasswordProblem::TooLong => AuthError::PasswordTooLong,
        })?;
        let admin = if self.setup_matches(setup) {
            NewAdmin::IfNoAdmin
        } else {
            NewAdmin::No
        };
        let with_setup = admin == NewAdmin::IfNoAdmin;
        self.admit_registration(&name, code_hash, with_setup, client)
            .await?;
        let hash = self.hash_new_password(password.to_string()).await?;
        let account = NewAccount {
            username: name.as_str().to_string(),
            key: name.key(),
            password_hash: hash,
            admin,
            invite: code_hash,
            members_invite: self.inner.members_invite,
            now_ms: db::now_ms(),
        };
        let (user, invite_id) = match self.inner.db.create_account(account).await? {
            Created::Account(user, invite) => (user, invite),
            Created::Refused(gate) => return Err(refusal(gate).unwrap_or(AuthError::InvalidInvite)),
            Created::NameTaken => return Err(AuthError::UsernameTaken),
        };
        if admin == NewAdmin::IfNoAdmin {
            *self.inner.setup.lock().unwrap_or_else(|p| p.into_inner()) = None;
            // The account's transaction spent the stored code if it made it the administrator.
            tracing::info!(user = %user.username, "the setup link was used: this account administers the server");
        }
        tracing::info!(user = %user.username, invite = ?invite_id, "account created");
        self.start_session(user, SessionKind::Cookie, None).await
    }

    /// The cheap answers before a password hash is spent (checked again when writing): the
    /// registration mode and invitation (the setup link, `with_setup`, admits in any mode
    /// while nobody administers the server), the per-address attempt budget (reserved here,
    /// so concurrent attempts cannot overrun it), and whether the name is taken.
    async fn admit_registration(
        &self,
        name: &Username,
        code_hash: Option<[u8; 32]>,
        with_setup: bool,
        client: IpAddr,
    ) -> Result<(), AuthError> {
        let now = db::now_ms();
        let (gate, taken) = self
            .inner
            .db
            .registration_check(
                code_hash,
                with_setup,
                name.key(),
                (now, self.inner.members_invite),
            )
            .await?;
        if let Some(refused) = refusal(gate) {
            return Err(refused);
        }
        let ip_key = format!("r:{}", address_key(client));
        let limit = Limit {
            max: self.inner.registrations_per_hour as usize,
            window: HOUR,
        };
        self.inner
            .registrations
            .reserve(&[(&ip_key, limit)])
            .await
            .map_err(AuthError::TooManyAttempts)?;
        if taken {
            return Err(AuthError::UsernameTaken);
        }
        Ok(())
    }

    /// Hash a new password with the configured iterations, off the async runtime.
    pub async fn hash_new_password(&self, password: String) -> Result<String, AuthError> {
        let iterations = self.inner.config.pbkdf2_iterations;
        self.hashing(move || password::hash(&password, iterations))
            .await
    }

    /// Count a failure ahead of a password check, per account (when there is one) and per
    /// address, refusing when either limit is reached. Reserving before the hash means
    /// concurrent guesses cannot all pass a limit they jointly exceed (on any node: in
    /// cluster mode the count is over every node).
    async fn reserve_failure(
        &self,
        account: Option<&str>,
        client: IpAddr,
    ) -> Result<Reservation, AuthError> {
        let window = FAILURE_WINDOW;
        let ip_key = format!("a:{}", address_key(client));
        let mut checks = vec![(
            ip_key.as_str(),
            Limit {
                max: FAILURES_PER_ADDRESS,
                window,
            },
        )];
        if let Some(key) = account {
            checks.push((
                key,
                Limit {
                    max: FAILURES_PER_ACCOUNT,
                    window,
                },
            ));
        }
        self.inner
            .failures
            .reserve(&checks)
            .await
            .map_err(AuthError::TooManyAttempts)
    }

    /// The password check succeeded: its reserved failure does not count, and the account's
    /// earlier failures are forgiven.
    async fn forgive(&self, reserved: &Reservation, account: Option<&str>) {
        let failures = &self.inner.failures;
        let clear = async {
            if let Some(key) = account {
                failures.clear(key).await;
            }
        };
        tokio::join!(failures.release(reserved), clear);
    }

    /// The user and stored hash when `password` is theirs; the dummy hash keeps unknown
    /// names as slow as known ones.
    async fn check_login(
        &self,
        name: Option<Username>,
        password: &str,
    ) -> Result<Option<(User, String)>, AuthError> {
        let found = match name {
            Some(name) => {
                let key = name.key();
                self.inner.db.user_for_login(key).await?
            }
            None => None,
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
        Ok(found.filter(|_| ok))
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
        // A name that cannot exist has no account to protect: the address limit still applies,
        // and the key stays bounded (at most 32 characters) whatever the client sends.
        let name = Username::parse(username).ok();
        let account_key = name.as_ref().map(login_key);
        let reserved = self.reserve_failure(account_key.as_deref(), client).await?;
        let checked = self.check_login(name, password).await;
        let found = match checked {
            Ok(found) => found,
            Err(e) => {
                // Not a wrong password: the server could not check it. Nothing counts.
                self.inner.failures.release(&reserved).await;
                return Err(e);
            }
        };
        let Some((user, old_hash)) = found else {
            return Err(AuthError::InvalidCredentials);
        };
        self.forgive(&reserved, account_key.as_deref()).await;
        let iterations = self.inner.config.pbkdf2_iterations;
        if password::needs_rehash(&old_hash, iterations) {
            let pw = password.to_string();
            let hash = self
                .hashing(move || password::hash(&pw, iterations))
                .await?;
            let id = user.id;
            self.inner.db.set_password_hash(id, hash).await?;
        }
        self.start_session(user, SessionKind::Cookie, None).await
    }

    /// Change a password after checking the current one, throttled like logins (wrong
    /// current passwords per account and per address). Every bot token of the user is
    /// revoked; with `sign_out_others`, so is every other browser session. Returns the
    /// revoked token digests (the caller closes their sockets).
    pub async fn change_password(
        &self,
        who: &Identity,
        current: &str,
        new: &str,
        sign_out_others: bool,
        client: IpAddr,
    ) -> Result<Vec<[u8; 32]>, AuthError> {
        check_password(new).map_err(|p| match p {
            PasswordProblem::TooShort => AuthError::WeakPassword,
            PasswordProblem::TooLong => AuthError::PasswordTooLong,
        })?;
        if current.len() > 1024 {
            return Err(AuthError::InvalidCredentials);
        }
        let uid = who.user.id;
        let account_key = format!("p:{uid}");
        let reserved = self.reserve_failure(Some(&account_key), client).await?;
        let verified = async {
            let stored = self.inner.db.password_hash(uid).await?.unwrap_or_default();
            let pw = current.to_string();
            self.hashing(move || password::verify(&pw, &stored)).await
        };
        match verified.await {
            Ok(true) => {}
            Ok(false) => return Err(AuthError::InvalidCredentials),
            Err(e) => {
                self.inner.failures.release(&reserved).await;
                return Err(e);
            }
        }
        self.forgive(&reserved, Some(&account_key)).await;
        let iterations = self.inner.config.pbkdf2_iterations;
        let pw = new.to_string();
        let hash = self
            .hashing(move || password::hash(&pw, iterations))
            .await?;
        let keep = sign_out_others.then_some(who.token_hash);
        let revoked = self.inner.db.change_password(uid, hash, keep).await?;
        tracing::info!(user = %who.user.username, sign_out_others, "password changed");
        Ok(revoked)
    }

    /// Issue a new token for `user`. Bot tokens are capped at `tokens_per_user` per user
    /// (0 = no cap), counted in the transaction that stores the new one.
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
        let cap = self.inner.tokens_per_user;
        if !self.inner.db.insert_session(row, cap).await? {
            return Err(AuthError::TooManyTokens(cap));
        }
        Ok(NewSession { user, token })
    }

    /// The user's live sessions and bot tokens, newest first.
    pub async fn sessions(&self, user_id: i64) -> Result<Vec<queries::SessionListing>, AuthError> {
        let now = db::now_ms();
        let idle_ms = i64::from(self.inner.config.session_idle_hours) * 3_600_000;
        Ok(self
            .inner
            .db
            .sessions_of_user(user_id, now, idle_ms)
            .await?)
    }

    /// Revoke one of the user's own sessions or tokens by its listing id; returns its digest
    /// (to close its sockets), or `None` when the user has no such session.
    pub async fn revoke(&self, user_id: i64, id: &str) -> Result<Option<[u8; 32]>, AuthError> {
        let id = id.to_ascii_lowercase();
        Ok(self.inner.db.revoke_listed_session(user_id, id).await?)
    }

    /// Delete expired sessions (past their lifetime, or cookies idle too long). Returns
    /// how many were removed.
    pub async fn sweep_expired(&self) -> Result<usize, AuthError> {
        let now = db::now_ms();
        let idle_ms = i64::from(self.inner.config.session_idle_hours) * 3_600_000;
        Ok(self.inner.db.delete_expired_sessions(now, idle_ms).await?)
    }

    /// Revoke the session behind a token.
    pub async fn logout(&self, token_hash: [u8; 32]) -> Result<(), AuthError> {
        self.inner.db.delete_session(token_hash).await?;
        Ok(())
    }

    /// The user behind a presented token, if it is live. Cookie sessions also expire when idle.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Identity>, AuthError> {
        if !token::well_formed(token) {
            return Ok(None);
        }
        self.lookup(token::digest(token), Cache::Leased).await
    }

    /// Whether a session is still live (long-lived WebSockets re-check this periodically).
    /// From the cache while it is current, lease or not: on PostgreSQL the revocation poll
    /// closes the sockets of ended sessions itself, and a socket's check must not wait on a
    /// database that stopped answering.
    pub async fn still_valid(&self, token_hash: [u8; 32]) -> Result<bool, AuthError> {
        Ok(self.lookup(token_hash, Cache::Current).await?.is_some())
    }

    /// The live session behind a digest: from the cache as `cache` allows, else from the
    /// store (then cached). Also says whether it came from the cache.
    async fn session(
        &self,
        token_hash: [u8; 32],
        now: i64,
        cache: Cache,
    ) -> Result<Option<(SessionInfo, bool)>, AuthError> {
        let generation = self.inner.db.sessions_generation();
        let usable = match cache {
            Cache::Leased => self.inner.db.cached_sessions_usable(),
            Cache::Current => true,
            Cache::Skip => false,
        };
        if usable {
            if let Some(info) = self.inner.sessions.get(&token_hash, generation, now) {
                return Ok(Some((info, true)));
            }
        }
        let found = self.inner.db.session_user(token_hash, now).await?;
        if let Some(info) = &found {
            self.inner
                .sessions
                .put(token_hash, info.clone(), generation);
        }
        Ok(found.map(|info| (info, false)))
    }

    /// Whether a browser session has been idle for longer than allowed at `now`.
    fn idle_too_long(&self, info: &SessionInfo, now: i64) -> bool {
        let idle_ms = i64::from(self.inner.config.session_idle_hours) * 3_600_000;
        info.kind == SessionKind::Cookie && now - info.last_seen_at > idle_ms
    }

    async fn lookup(
        &self,
        token_hash: [u8; 32],
        cache: Cache,
    ) -> Result<Option<Identity>, AuthError> {
        let now = db::now_ms();
        let Some((mut info, cached)) = self.session(token_hash, now, cache).await? else {
            return Ok(None);
        };
        if self.idle_too_long(&info, now) {
            // The cache's last activity may be older than the store's: with several nodes,
            // the one a user was active on recorded it, not this one. Only the store decides.
            match cached {
                true => match self.session(token_hash, now, Cache::Skip).await? {
                    Some((fresh, _)) if !self.idle_too_long(&fresh, now) => info = fresh,
                    _ => return Ok(None),
                },
                false => return Ok(None),
            }
        }
        let (kind, last_seen) = (info.kind, info.last_seen_at);
        if now - last_seen > TOUCH_EVERY_MS {
            self.inner.sessions.touched(&token_hash, now);
            let db = self.inner.db.clone();
            tokio::spawn(async move {
                if let Err(e) = db.touch_session(token_hash, now).await {
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

/// When a lookup may answer from the sessions cache.
#[derive(Clone, Copy)]
enum Cache {
    /// While the entry is current and, on PostgreSQL, this node's lease on the cache holds
    /// (`db::SESSIONS_LEASE`): requests.
    Leased,
    /// While the entry is current.
    Current,
    /// Never: from the store.
    Skip,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_logins_are_keyed_by_the_bounded_case_folded_name() {
        let key = |raw: &str| Username::parse(raw).ok().as_ref().map(login_key);
        assert_eq!(key("Alice"), key("alice"));
        assert_eq!(key("alice").as_deref(), Some("u:alice"));
        // Names no account can have are not tracked per account at all.
        assert_eq!(key(&"a".repeat(10_000)), None);
        assert_eq!(key("no spaces allowed"), None);
        assert!(key(&"Z".repeat(32)).is_some_and(|k| k.len() <= 35));
    }
}
