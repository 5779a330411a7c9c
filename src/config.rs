//! Configuration: built-in defaults, then `chat.toml`, then `CHAT_*` environment variables.
//!
//! Loading happens in two steps: figment extracts the raw [`Config`] (unknown keys and wrong
//! types are errors), then [`Config::validate`] checks values and derives typed settings.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The whole configuration, as written in `chat.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Network settings.
    pub server: ServerConfig,
    /// Storage settings.
    pub database: DatabaseConfig,
    /// Abuse and resource limits.
    pub limits: LimitsConfig,
    /// Password hashing and session lifetimes.
    pub auth: AuthConfig,
    /// Who may create rooms.
    pub rooms: RoomsConfig,
    /// Who may create invite links.
    pub registration: RegistrationConfig,
    /// What authors may do with what they sent.
    pub messages: MessagesConfig,
    /// Files and images.
    pub uploads: UploadsConfig,
    /// Requests Hearth makes to addresses it was given (link previews).
    pub outbound: OutboundConfig,
    /// Link previews.
    pub previews: PreviewsConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// Log output.
    pub log: LogConfig,
    /// Several nodes on one database.
    pub cluster: ClusterConfig,
}

/// `[cluster]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The Redis every node shares for what is not stored (who is online, typing, the
    /// connection caps and the message rate over every node); empty: this node alone.
    pub redis_url: String,
    /// This node's name in Redis and in the logs; empty: the machine's host name.
    pub node: String,
}

impl ClusterConfig {
    /// The node's name: `node`, or the host name, or `hearth`.
    pub fn node_name(&self) -> String {
        if !self.node.is_empty() {
            return self.node.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "hearth".into())
    }
}

/// `[rooms]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsConfig {
    /// Who may create rooms (`everyone` or `admins`). Direct conversations are not rooms.
    pub creation: RoomCreation,
}

/// `[registration]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    /// Every signed-in member may create invite links (`POST /api/invites`), not only
    /// administrators. Off by default.
    pub member_invites: bool,
}

/// `[messages]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MessagesConfig {
    /// Minutes after sending during which authors may edit or delete their own messages;
    /// 0 (the default) = always, as in the chats people compare Hearth with. Administrators
    /// may delete any message at any time.
    pub edit_window_minutes: u32,
}

impl MessagesConfig {
    /// The window in milliseconds, `None` when unlimited.
    pub fn edit_window_ms(&self) -> Option<i64> {
        (self.edit_window_minutes > 0).then(|| i64::from(self.edit_window_minutes) * 60_000)
    }
}

/// `[uploads]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadsConfig {
    /// Largest file one upload may carry, in bytes (25 MiB).
    pub max_bytes: u64,
    /// Bytes of files one user may keep in all (1 GiB); 0 = unlimited.
    pub user_quota_bytes: u64,
    /// Largest image (width × height) Hearth decodes to measure it and make its thumbnail;
    /// a larger one is refused, so a small file cannot unpack into gigabytes.
    pub max_image_pixels: u64,
    /// Folder of the stored files; empty: beside the database, named after it with `-files`
    /// (`chat.db-files`).
    pub dir: PathBuf,
}

/// `[outbound]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Let outbound requests reach loopback, private, link-local and other non-public
    /// addresses. Off by default: only for tests and closed networks.
    pub allow_private_networks: bool,
    /// Seconds one outbound request may take in all (connect, redirects, headers, body).
    pub timeout_seconds: u64,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            allow_private_networks: false,
            timeout_seconds: 10,
        }
    }
}

/// `[previews]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreviewsConfig {
    /// Fetch a preview of the first link of each new message.
    pub enabled: bool,
    /// Domains never fetched (each with its subdomains), such as `internal.example`.
    pub never_fetch: Vec<String>,
    /// Previews fetched at once; more wait their turn.
    pub workers: usize,
}

impl Default for PreviewsConfig {
    fn default() -> Self {
        PreviewsConfig {
            enabled: true,
            never_fetch: Vec::new(),
            workers: 4,
        }
    }
}

impl Default for UploadsConfig {
    fn default() -> Self {
        UploadsConfig {
            max_bytes: 25 * 1024 * 1024,
            user_quota_bytes: 1024 * 1024 * 1024,
            max_image_pixels: 50_000_000,
            dir: PathBuf::new(),
        }
    }
}

impl UploadsConfig {
    /// Where the files live: `dir`, or the database's path with `-files` appended.
    pub fn folder(&self, database: &std::path::Path) -> PathBuf {
        if !self.dir.as_os_str().is_empty() {
            return self.dir.clone();
        }
        let mut name = database.as_os_str().to_owned();
        name.push("-files");
        PathBuf::from(name)
    }
}

/// `rooms.creation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RoomCreation {
    /// Every signed-in user.
    #[default]
    Everyone,
    /// Administrators only.
    Admins,
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `GET /metrics`.
    pub enabled: bool,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub token: String,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (for people) or `json` (for log collectors).
    pub format: LogFormat,
    /// A tracing filter such as `info` or `hearth=debug,info`; `RUST_LOG` wins when set.
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: String,
    /// Port to bind; 0 picks any free port.
    pub port: u16,
    /// The URL browsers use to reach Hearth, possibly with a path prefix
    /// (`https://example.org/chat/`). Empty: derived per request from the Host header.
    pub public_url: String,
    /// Extra origins (`scheme://host[:port]`) allowed to open WebSockets and use cookies.
    pub allowed_origins: Vec<String>,
    /// Reverse proxies (IP or CIDR, e.g. "127.0.0.1/32") whose `X-Forwarded-For` and
    /// `X-Forwarded-Proto` are believed.
    pub trusted_proxies: Vec<String>,
    /// Serve HTTPS/WSS directly.
    pub tls: TlsConfig,
}

/// `[server.tls]`: both paths set = HTTPS; both empty = plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

impl TlsConfig {
    /// Whether TLS is configured.
    pub fn enabled(&self) -> bool {
        !self.cert.is_empty() || !self.key.is_empty()
    }
}

/// An IP network such as `10.0.0.0/8` or `::1/128`; a bare address is a network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(IpNet);

impl Cidr {
    /// Parse `IP` or `IP/PREFIX`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        if s.contains('/') {
            s.parse::<IpNet>().map(Cidr).map_err(|_| {
                format!("{s:?} is not an IP address or CIDR range with a valid prefix length")
            })
        } else {
            s.parse::<IpAddr>()
                .map(|ip| Cidr(IpNet::from(ip)))
                .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))
        }
    }

    /// Whether `ip` is inside this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

/// `[database]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Path of the SQLite file; created with its schema on first run.
    pub path: PathBuf,
    /// A PostgreSQL database (`postgres://USER@HOST:PORT/DB`) to store everything in
    /// instead of the SQLite file; empty: the file. Stored files stay in `uploads.dir`.
    pub url: String,
    /// `full` (every acknowledged message survives power loss) or `normal` (survives a crash of
    /// Hearth, may lose the last commits on power loss).
    pub synchronous: Synchronous,
}

/// SQLite durability level for the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// `PRAGMA synchronous=FULL`.
    Full,
    /// `PRAGMA synchronous=NORMAL`.
    Normal,
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Sustained messages per second per user; 0 disables the limit.
    pub messages_per_second: f64,
    /// Messages a user may send in a burst above the rate.
    pub message_burst: u32,
    /// Sustained changes others see, other than messages (edits, deletions, reactions,
    /// joins and leaves, room and profile changes), per second per user; 0 disables it.
    pub changes_per_second: f64,
    /// Such changes a user may make in a burst above that rate.
    pub change_burst: u32,
    /// Open WebSockets per user; 0 = unlimited.
    pub connections_per_user: u32,
    /// Open WebSockets per client address; 0 = unlimited.
    pub connections_per_address: u32,
    /// Accounts created per client address per hour; 0 = unlimited.
    pub registrations_per_hour: u32,
    /// Frames queued for one connection before it counts as too slow and is closed (4008).
    pub outgoing_queue: usize,
    /// Open HTTP connections (before any WebSocket upgrade) per client address (IPv6: per
    /// /64); 0 = unlimited.
    pub http_connections_per_address: u32,
    /// Open connections of every kind in total; 0 = derived from the open-file limit.
    pub max_connections: u32,
    /// Bot tokens a user may hold; 0 = unlimited.
    pub tokens_per_user: u32,
    /// Rooms a user may create per hour; 0 = unlimited.
    pub rooms_per_hour: u32,
    /// New direct conversations a user may start per hour; 0 = unlimited.
    pub dms_per_hour: u32,
    /// People a user may add to rooms per hour; 0 = unlimited.
    pub invites_per_hour: u32,
    /// Invite links a member (not an administrator) may create per hour; 0 = unlimited.
    pub invite_links_per_hour: u32,
    /// Searches one user may run at once; 0 = unlimited.
    pub searches_per_user: u32,
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// PBKDF2-HMAC-SHA256 iterations for new password hashes.
    pub pbkdf2_iterations: u32,
    /// A session unused for this many hours expires.
    pub session_idle_hours: u32,
    /// A session expires this many hours after sign-in, however active.
    pub session_max_hours: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 12345,
            public_url: String::new(),
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            tls: TlsConfig::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("chat.db"),
            url: String::new(),
            synchronous: Synchronous::Full,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            messages_per_second: 5.0,
            message_burst: 20,
            changes_per_second: 10.0,
            change_burst: 60,
            connections_per_user: 20,
            connections_per_address: 200,
            registrations_per_hour: 20,
            outgoing_queue: 1024,
            http_connections_per_address: 256,
            max_connections: 0,
            tokens_per_user: 20,
            rooms_per_hour: 20,
            dms_per_hour: 60,
            invites_per_hour: 100,
            invite_links_per_hour: 10,
            searches_per_user: 2,
        }
    }
}

/// Iterations used when the configuration does not say otherwise (OWASP 2023 guidance).
pub const DEFAULT_PBKDF2_ITERATIONS: u32 = 600_000;

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            pbkdf2_iterations: DEFAULT_PBKDF2_ITERATIONS,
            session_idle_hours: 24 * 30,
            session_max_hours: 24 * 365,
        }
    }
}

/// Why the configuration could not be loaded; the message names the file and key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// Where the configuration came from, for the start-up banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The file existed and was read.
    File(PathBuf),
    /// No file at this path: built-in defaults (plus environment).
    Defaults(PathBuf),
}

impl Config {
    /// Load from `path` (a missing file means defaults) with `CHAT_*` overrides, then validate.
    pub fn load(path: &Path) -> Result<(Config, Source), ConfigError> {
        let source = if path.exists() {
            Source::File(path.to_path_buf())
        } else {
            Source::Defaults(path.to_path_buf())
        };
        let config: Config = Self::figment(path)
            .extract()
            .map_err(|e| describe(e, path))?;
        config
            .validate()
            .map_err(|e| ConfigError(format!("{}: {e}", Self::origin_of(path, &e))))?;
        Ok((config, source))
    }

    /// Where the value that `problem` (a validation error, `key: what`) is about came from:
    /// the environment variable that set it, else the file.
    fn origin_of(path: &Path, problem: &str) -> String {
        let key = problem.split(':').next().unwrap_or("").trim();
        let from_env = !key.is_empty()
            && !key.contains(' ')
            && Self::figment(path)
                .find_metadata(key)
                .is_some_and(|m| m.name.contains("environment"));
        if from_env {
            let var = key
                .split('.')
                .map(str::to_ascii_uppercase)
                .collect::<Vec<_>>()
                .join("__");
            format!("environment variable CHAT_{var}")
        } else {
            path.display().to_string()
        }
    }

    /// The layered providers: defaults, then the file (if it exists), then `CHAT_*`.
    pub fn figment(path: &Path) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if path.exists() {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment.merge(Env::prefixed("CHAT_").split("__"))
    }

    /// Every key with its effective value (as TOML) and where it came from: `default`, the
    /// file's path, or the environment variable's name.
    pub fn explain(path: &Path) -> Result<Vec<(String, String, String)>, ConfigError> {
        let (config, _) = Self::load(path)?;
        let figment = Self::figment(path);
        let table = toml::Value::try_from(&config).map_err(|e| ConfigError(e.to_string()))?;
        let mut out = Vec::new();
        if let toml::Value::Table(sections) = table {
            for (section, keys) in sections {
                let toml::Value::Table(keys) = keys else {
                    continue;
                };
                let mut flat = Vec::new();
                for (key, value) in keys {
                    match value {
                        toml::Value::Table(sub) => {
                            for (k, v) in sub {
                                flat.push((format!("{key}.{k}"), v));
                            }
                        }
                        v => flat.push((key, v)),
                    }
                }
                for (key, value) in flat {
                    let dotted = format!("{section}.{key}");
                    let source = match figment.find_metadata(&dotted) {
                        Some(m) if m.name.contains("environment") => format!(
                            "env CHAT_{}__{}",
                            section.to_ascii_uppercase(),
                            key.to_ascii_uppercase().replace('.', "__")
                        ),
                        Some(m) if m.name.contains("TOML") => path.display().to_string(),
                        _ => "default".to_string(),
                    };
                    let shown = match value.as_str() {
                        Some(t) if !t.is_empty() && (key == "token" || key == "tls.key") => {
                            "\"********\"".to_string()
                        }
                        // The database's and Redis' URLs may carry a password.
                        Some(u) if key == "url" || key == "redis_url" => {
                            toml::Value::String(redacted(u)).to_string()
                        }
                        _ => value.to_string(),
                    };
                    out.push((dotted, shown, source));
                }
            }
        }
        Ok(out)
    }

    /// Check values that serde cannot: addresses, URLs, ranges.
    pub fn validate(&self) -> Result<(), String> {
        self.bind_addr()?;
        if !self.server.public_url.is_empty() {
            parse_origin(&self.server.public_url).map_err(|e| format!("server.public_url: {e}"))?;
            check_url_path(&self.server.public_url)
                .map_err(|e| format!("server.public_url: {e}"))?;
        }
        for o in &self.server.allowed_origins {
            parse_origin(o).map_err(|e| format!("server.allowed_origins: {e}"))?;
        }
        let tls = &self.server.tls;
        if tls.enabled() && (tls.cert.is_empty() || tls.key.is_empty()) {
            return Err("server.tls: set both cert and key (or neither)".into());
        }
        for p in &self.server.trusted_proxies {
            Cidr::parse(p).map_err(|e| format!("server.trusted_proxies: {e}"))?;
        }
        if self.database.path.as_os_str().is_empty() {
            return Err("database.path: must not be empty".into());
        }
        let url = &self.database.url;
        if !(url.is_empty() || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(
                "database.url: must be a PostgreSQL URL (postgres://USER@HOST:PORT/DB), or empty \
                 for the SQLite file"
                    .into(),
            );
        }
        if !url.is_empty() {
            url.parse::<postgres::Config>()
                .map_err(|e| format!("database.url: not a usable PostgreSQL URL ({e})"))?;
        }
        let redis = &self.cluster.redis_url;
        if !redis.is_empty() {
            if redis.starts_with("rediss://") {
                return Err(
                    "cluster.redis_url: TLS to Redis (rediss://) is not built in; reach Redis \
                     over a private network or a unix socket (unix:///PATH)"
                        .into(),
                );
            }
            if !["redis://", "unix://", "redis+unix://"]
                .iter()
                .any(|p| redis.starts_with(p))
            {
                return Err(
                    "cluster.redis_url: must be a Redis URL (redis://HOST:PORT, or unix:///PATH \
                     for a socket), or empty for a single node"
                        .into(),
                );
            }
            redis::IntoConnectionInfo::into_connection_info(redis.as_str())
                .map_err(|e| format!("cluster.redis_url: not a usable Redis URL ({e})"))?;
            if url.is_empty() {
                return Err(
                    "cluster.redis_url: several nodes share one PostgreSQL database; set \
                     database.url too"
                        .into(),
                );
            }
        }
        if self.cluster.node.len() > 64
            || self
                .cluster
                .node
                .chars()
                .any(|c| c.is_control() || c == ':')
        {
            return Err(
                "cluster.node: at most 64 characters, without control characters or ':'".into(),
            );
        }
        let rate = self.limits.messages_per_second;
        if !rate.is_finite() || rate < 0.0 {
            return Err("limits.messages_per_second: must be a number ≥ 0".into());
        }
        if rate > 0.0 && self.limits.message_burst == 0 {
            return Err("limits.message_burst: must be at least 1 when a rate is set".into());
        }
        let rate = self.limits.changes_per_second;
        if !rate.is_finite() || rate < 0.0 {
            return Err("limits.changes_per_second: must be a number ≥ 0".into());
        }
        if rate > 0.0 && self.limits.change_burst == 0 {
            return Err("limits.change_burst: must be at least 1 when a rate is set".into());
        }
        if self.limits.outgoing_queue < 16 {
            return Err("limits.outgoing_queue: must be at least 16".into());
        }
        if self.uploads.max_bytes == 0 {
            return Err("uploads.max_bytes: must be at least 1".into());
        }
        if self.uploads.max_image_pixels == 0 {
            return Err("uploads.max_image_pixels: must be at least 1".into());
        }
        if self.outbound.timeout_seconds == 0 || self.outbound.timeout_seconds > 300 {
            return Err("outbound.timeout_seconds: must be 1 to 300".into());
        }
        if self.previews.workers == 0 || self.previews.workers > 64 {
            return Err("previews.workers: must be 1 to 64".into());
        }
        for d in &self.previews.never_fetch {
            let d = d.trim_start_matches('.');
            if d.is_empty() || d.contains(['/', ':', ' ']) {
                return Err(format!(
                    "previews.never_fetch: {d:?} is not a domain name (write `example.com`)"
                ));
            }
        }
        if self.auth.pbkdf2_iterations < 1_000 {
            return Err(format!(
                "auth.pbkdf2_iterations: must be at least 1000 (the default, {DEFAULT_PBKDF2_ITERATIONS}, is the safe choice)"
            ));
        }
        if !log_filter_ok(&self.log.level) {
            return Err(format!(
                "log.level: {:?} is not a log filter (a level: \"error\", \"warn\", \"info\", \
                 \"debug\", \"trace\" or \"off\", then any `target=level`, separated by commas)",
                self.log.level
            ));
        }
        if self.auth.session_idle_hours == 0 || self.auth.session_max_hours == 0 {
            return Err(
                "auth.session_idle_hours and auth.session_max_hours must be at least 1".into(),
            );
        }
        Ok(())
    }

    /// The socket address to bind.
    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        let host = match self.server.host.as_str() {
            "localhost" => "127.0.0.1",
            h => h,
        };
        let ip: IpAddr = host
            .parse()
            .map_err(|_| format!("server.host: {:?} is not an IP address", self.server.host))?;
        Ok(SocketAddr::new(ip, self.server.port))
    }

    /// The configured public URL without a trailing slash, if one is set.
    pub fn public_url(&self) -> Option<&str> {
        let url = self.server.public_url.trim_end_matches('/');
        (!url.is_empty()).then_some(url)
    }

    /// The path prefix Hearth is served under, taken from `public_url`'s path: `/chat` for
    /// `https://example.org/chat/`, `None` when Hearth is served at the root.
    pub fn path_prefix(&self) -> Option<&str> {
        let url = self.public_url()?;
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let path = &rest[rest.find('/')?..];
        (path.len() > 1).then_some(path)
    }

    /// The `Path` attribute of the session cookie: `/`, or the prefix with a trailing slash.
    pub fn cookie_path(&self) -> String {
        match self.path_prefix() {
            Some(prefix) => format!("{prefix}/"),
            None => "/".into(),
        }
    }

    /// Whether browsers reach Hearth over HTTPS (cookies get `Secure`, HSTS is sent).
    pub fn is_https(&self) -> bool {
        match self.public_url() {
            Some(u) => u
                .get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("https://")),
            None => self.server.tls.enabled(),
        }
    }
}

/// First path segments that Hearth's own routes use: a prefix starting with one would hide them.
const RESERVED_SEGMENTS: [&str; 6] = ["api", "ws", "js", "config.js", "healthz", "metrics"];

/// Check the path of a public URL: empty or `/`, or `/seg/seg[/]` of plain characters, with no
/// query or fragment.
fn check_url_path(url: &str) -> Result<(), String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    if rest.contains(['?', '#']) {
        return Err(format!("{url:?} must not have a query (?) or fragment (#)"));
    }
    let Some(start) = rest.find('/') else {
        return Ok(());
    };
    let path = rest[start..].trim_end_matches('/');
    if path.is_empty() {
        return Ok(());
    }
    for (i, seg) in path[1..].split('/').enumerate() {
        let plain = seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if seg.is_empty() || seg == "." || seg == ".." || !plain {
            return Err(format!(
                "{url:?}: the path prefix may only hold letters, digits and - . _ ~ between \
                 single slashes (like https://example.org/chat/)"
            ));
        }
        if i == 0 && RESERVED_SEGMENTS.contains(&seg) {
            return Err(format!(
                "{url:?}: the path prefix must not start with /{seg}, which Hearth itself uses"
            ));
        }
    }
    Ok(())
}

/// Check that `url` is `http(s)://host[:port][/path]` and return its origin (`scheme://host[:port]`).
pub fn parse_origin(url: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not a URL (expected http://host:port)"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("{url:?} must start with http:// or https://"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return Err(format!("{url:?} has no valid host"));
    }
    if let Some((_, port)) = authority.rsplit_once(':') {
        if !authority.ends_with(']') && port.parse::<u16>().is_err() {
            return Err(format!("{url:?} has an invalid port"));
        }
    }
    Ok(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

fn describe(err: figment::Error, path: &Path) -> ConfigError {
    let mut lines = Vec::new();
    for e in err {
        let key = e.path.join(".");
        let origin = match &e.metadata {
            Some(m) if m.name.contains("environment") => format!(
                "environment variable CHAT_{}",
                e.path
                    .iter()
                    .map(|p| p.to_ascii_uppercase())
                    .collect::<Vec<_>>()
                    .join("__")
            ),
            _ => path.display().to_string(),
        };
        // One line: drop the source excerpt that TOML errors draw over several lines.
        let what = e
            .kind
            .to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.contains('|'))
            .collect::<Vec<_>>()
            .join("; ");
        if key.is_empty() {
            lines.push(format!("{origin}: {what}"));
        } else {
            lines.push(format!("{origin}: {key}: {what}"));
        }
    }
    ConfigError(lines.join("; "))
}

/// Whether `filter` is a log filter Hearth takes: one that parses, each of whose
/// comma-separated parts is a level or a `target=level` directive. A bare word parses too (as
/// "everything from that target"), so a misspelt level (`"inf"`) would otherwise turn every
/// other log line off, the setup link among them.
fn log_filter_ok(filter: &str) -> bool {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    tracing_subscriber::EnvFilter::try_new(filter).is_ok()
        && filter
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .all(|part| part.contains('=') || LEVELS.iter().any(|l| l.eq_ignore_ascii_case(part)))
}

/// A database or Redis URL (or a PostgreSQL `key=value` connection string) without its
/// password, for logs and `hearth check-config`.
pub fn redacted(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            return format!("{scheme}://{user}@{host}{tail}");
        }
        return url.to_string();
    }
    url.split_whitespace()
        .filter(|kv| !kv.to_ascii_lowercase().starts_with("password="))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_match_protocol() {
        let c = Config::default();
        assert_eq!(c.server.host, "0.0.0.0");
        assert_eq!(c.server.port, 12345);
        assert_eq!(c.database.path, PathBuf::from("chat.db"));
        assert_eq!(c.limits.messages_per_second, 5.0);
        assert_eq!(c.limits.message_burst, 20);
        assert_eq!(c.auth.pbkdf2_iterations, 600_000);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn shipped_chat_toml_equals_defaults() {
        let text = include_str!("../chat.toml");
        let parsed: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .expect("chat.toml parses");
        assert_eq!(parsed, Config::default());
        // Every key is written out, not left to the defaults.
        for key in [
            "host",
            "port",
            "public_url",
            "allowed_origins",
            "trusted_proxies",
            "cert",
            "key",
            "path",
            "synchronous",
            "messages_per_second",
            "message_burst",
            "changes_per_second",
            "change_burst",
            "connections_per_user",
            "connections_per_address",
            "registrations_per_hour",
            "outgoing_queue",
            "http_connections_per_address",
            "max_connections",
            "tokens_per_user",
            "rooms_per_hour",
            "dms_per_hour",
            "invites_per_hour",
            "invite_links_per_hour",
            "member_invites",
            "searches_per_user",
            "creation",
            "pbkdf2_iterations",
            "session_idle_hours",
            "session_max_hours",
            "redis_url",
            "node",
            "enabled",
            "token",
            "format",
            "level",
        ] {
            assert!(
                text.lines().any(|l| l.trim_start().starts_with(key)),
                "chat.toml lacks {key}"
            );
        }
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[server]\nport = 8080\nhost = \"127.0.0.1\"\n[limits]\nmessage_burst = 3\n",
            )?;
            jail.set_env("CHAT_SERVER__PORT", "9090");
            jail.set_env("CHAT_DATABASE__PATH", "/tmp/x.db");
            let (c, src) = Config::load(Path::new("c.toml")).expect("loads");
            assert_eq!(src, Source::File(PathBuf::from("c.toml")));
            assert_eq!(c.server.port, 9090);
            assert_eq!(c.server.host, "127.0.0.1");
            assert_eq!(c.limits.message_burst, 3);
            assert_eq!(c.limits.messages_per_second, 5.0);
            assert_eq!(c.database.path, PathBuf::from("/tmp/x.db"));
            Ok(())
        });
    }

    #[test]
    fn missing_file_means_defaults() {
        Jail::expect_with(|_| {
            let (c, src) = Config::load(Path::new("absent.toml")).expect("loads");
            assert_eq!(src, Source::Defaults(PathBuf::from("absent.toml")));
            assert_eq!(c, Config::default());
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_file_and_key() {
        Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[server]\nport = \"high\"\n")?;
            let e = Config::load(Path::new("bad.toml")).unwrap_err().to_string();
            assert!(e.contains("bad.toml") && e.contains("server.port"), "{e}");

            jail.create_file("typo.toml", "[server]\nprot = 1\n")?;
            let e = Config::load(Path::new("typo.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("prot"), "{e}");

            jail.create_file("broken.toml", "[server\n")?;
            let e = Config::load(Path::new("broken.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("broken.toml"), "{e}");

            jail.create_file("url.toml", "[server]\npublic_url = \"chat.example.org\"\n")?;
            let e = Config::load(Path::new("url.toml")).unwrap_err().to_string();
            assert!(e.contains("server.public_url"), "{e}");

            jail.create_file("ok.toml", "")?;
            jail.set_env("CHAT_LIMITS__MESSAGE_BURST", "lots");
            let e = Config::load(Path::new("ok.toml")).unwrap_err().to_string();
            assert!(e.contains("limits.message_burst"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn a_value_the_environment_set_is_blamed_on_its_variable() {
        Jail::expect_with(|jail| {
            jail.create_file("chat.toml", "[previews]\nworkers = 0\n")?;
            let e = Config::load(Path::new("chat.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("chat.toml: previews.workers"), "{e}");
            jail.set_env("CHAT_PREVIEWS__WORKERS", "0");
            jail.create_file("chat.toml", "")?;
            let e = Config::load(Path::new("chat.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("environment variable CHAT_PREVIEWS__WORKERS: previews.workers"),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_misspelt_log_level_is_refused() {
        for good in [
            "info",
            "WARN",
            "debug,hyper=warn",
            "off",
            "hearth=trace,warn",
        ] {
            assert!(log_filter_ok(good), "{good}");
        }
        for bad in ["inf", "loud", "debug,,==", "info,hyper"] {
            assert!(!log_filter_ok(bad), "{bad}");
        }
    }

    #[test]
    fn cluster_settings_are_checked_before_anything_connects() {
        let with = |url: &str, redis: &str, node: &str| {
            let mut c = Config::default();
            c.database.url = url.into();
            c.cluster.redis_url = redis.into();
            c.cluster.node = node.into();
            c.validate()
        };
        let pg = "postgres://hearth@127.0.0.1:5432/hearth";
        let long = "n".repeat(65);
        for (url, redis, node) in [
            (pg, "", ""),
            ("postgresql://hearth@%2Frun%2Fpostgresql/hearth", "", ""),
            (pg, "redis://127.0.0.1:6379", "web-1"),
            (pg, "redis://127.0.0.1:6379/2", ""),
            (pg, "unix:///run/redis/redis.sock", ""),
        ] {
            assert_eq!(with(url, redis, node), Ok(()), "{url} {redis} {node}");
        }
        for (url, redis, node, key) in [
            ("mysql://x/y", "", "", "database.url:"),
            ("postgres://h:notaport/db", "", "", "database.url:"),
            (pg, "http://127.0.0.1:6379", "", "cluster.redis_url:"),
            (pg, "redis://127.0.0.1:notaport", "", "cluster.redis_url:"),
            (
                pg,
                "redis://127.0.0.1:6379/notadb",
                "",
                "cluster.redis_url:",
            ),
            (pg, "rediss://cache.example.org", "", "cluster.redis_url:"),
            ("", "redis://127.0.0.1:6379", "", "cluster.redis_url:"),
            (pg, "", "a:b", "cluster.node:"),
            (pg, "", "line\nbreak", "cluster.node:"),
            (pg, "", long.as_str(), "cluster.node:"),
        ] {
            let e = with(url, redis, node).unwrap_err();
            assert!(e.starts_with(key), "{url} {redis} {node}: {e}");
        }
        let e = with("", "redis://127.0.0.1:6379", "").unwrap_err();
        assert!(e.contains("database.url"), "{e}");
    }

    #[test]
    fn cidr_matching() {
        let lo = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(lo.contains("127.1.2.3".parse().unwrap()));
        assert!(lo.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!lo.contains("10.0.0.1".parse().unwrap()));
        let one = Cidr::parse("10.0.0.7").unwrap();
        assert!(one.contains("10.0.0.7".parse().unwrap()));
        assert!(!one.contains("10.0.0.8".parse().unwrap()));
        assert!(Cidr::parse("::/0")
            .unwrap()
            .contains("2001:db8::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        for bad in ["", "x", "10.0.0.0/33", "::1/129", "1.2.3.4/-1"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_prefixes_come_from_the_public_url() {
        let with = |url: &str| {
            let mut c = Config::default();
            c.server.public_url = url.into();
            c
        };
        for (url, prefix, cookie) in [
            ("", None, "/"),
            ("https://chat.example.org", None, "/"),
            ("https://chat.example.org/", None, "/"),
            ("https://example.org/chat/", Some("/chat"), "/chat/"),
            ("https://example.org/chat", Some("/chat"), "/chat/"),
            (
                "http://10.0.0.5:8080/apps/hearth//",
                Some("/apps/hearth"),
                "/apps/hearth/",
            ),
        ] {
            let c = with(url);
            assert!(c.validate().is_ok(), "{url}");
            assert_eq!(c.path_prefix(), prefix, "{url}");
            assert_eq!(c.cookie_path(), cookie, "{url}");
        }
        for bad in [
            "https://example.org/chat?x=1",
            "https://example.org/chat/#top",
            "https://example.org/a//b",
            "https://example.org/../etc",
            "https://example.org/./chat",
            "https://example.org/ch%20at",
            "https://example.org/ch at",
            "https://example.org/api",
            "https://example.org/ws/",
            "https://example.org/config.js",
        ] {
            let e = with(bad).validate().unwrap_err();
            assert!(e.starts_with("server.public_url:"), "{bad}: {e}");
        }
        assert!(with("HTTPS://Example.org/chat").is_https());
        assert!(!with("http://example.org/chat").is_https());
    }

    #[test]
    fn origins_are_normalised() {
        assert_eq!(
            parse_origin("HTTPS://Chat.Example.org/chat/").unwrap(),
            "https://chat.example.org"
        );
        assert_eq!(
            parse_origin("http://127.0.0.1:12345").unwrap(),
            "http://127.0.0.1:12345"
        );
        assert!(parse_origin("ftp://x").is_err());
        assert!(parse_origin("http://").is_err());
        assert!(parse_origin("http://host:notaport").is_err());
    }
}
