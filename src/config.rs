//! The configuration: defaults ← `config.toml` ← `AUTHD_*` environment, loaded
//! and validated once, then passed down in typed sections.
//!
//! Unknown keys are an error (every section is `deny_unknown_fields`), durations
//! are written the way people say them (`"15m"`, `"7d"`), and an error always
//! names the offending key so the operator knows what to fix.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Environment variables that are not config keys (they are read by the CLI).
pub const ENV_CONFIG_PATH: &str = "AUTHD_CONFIG";

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub admin: AdminConfig,
    pub tokens: TokensConfig,
    pub sessions: SessionsConfig,
    pub passwords: PasswordsConfig,
    pub limits: LimitsConfig,
    pub pat: PatConfig,
    pub audit: AuditConfig,
    pub mfa: MfaConfig,
    pub webauthn: WebauthnConfig,
    pub approvals: ApprovalsConfig,
    /// `[[webhooks]]`: where authd posts events (new approvals) as JSON.
    pub webhooks: Vec<WebhookConfig>,
    /// Answers for reverse proxies (`/forward-auth`): which hosts and paths
    /// need whom.
    pub forward_auth: ForwardAuthConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub backup: BackupConfig,
    /// Password-reset and email-verification links.
    pub recovery: RecoveryConfig,
    /// `[smtp]`: the relay that sends recovery and verification mail; no
    /// `host`, no mail, and self-service recovery is off.
    pub smtp: SmtpConfig,
}

/// `[recovery]`: how long the links authd hands out stay good.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryConfig {
    /// A mailed password-reset link.
    pub reset_ttl: HumanDuration,
    /// An operator's recovery link (`POST /v1/users/{id}/recovery-link`),
    /// handed over by other means than mail.
    pub operator_link_ttl: HumanDuration,
    /// A mailed email-verification link.
    pub verify_ttl: HumanDuration,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            reset_ttl: HumanDuration::from_secs(30 * 60),
            operator_link_ttl: HumanDuration::from_secs(24 * 3600),
            verify_ttl: HumanDuration::from_secs(24 * 3600),
        }
    }
}

/// How the connection to the SMTP relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS at all: only for a relay on loopback.
    None,
}

/// `[smtp]`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// The relay's host name; empty: no mail is sent.
    pub host: String,
    /// 0: the usual port for `security` (587, 465, or 25).
    pub port: u16,
    pub security: SmtpSecurity,
    /// Empty: no authentication.
    pub username: String,
    /// A secret; better set through `AUTHD_SMTP__PASSWORD`.
    pub password: String,
    /// The sender, `authd@example.com` or `authd <authd@example.com>`.
    pub from: String,
    /// How long one attempt (connect, TLS, send) may take.
    pub timeout: HumanDuration,
    /// Attempts per mail before it is given up (audited `email.failed`).
    pub max_attempts: u32,
    /// The pause after the first failed attempt; it doubles after each.
    pub backoff: HumanDuration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 0,
            security: SmtpSecurity::Starttls,
            username: String::new(),
            password: String::new(),
            from: String::new(),
            timeout: HumanDuration::from_secs(30),
            max_attempts: 5,
            backoff: HumanDuration::from_secs(10),
        }
    }
}

impl SmtpConfig {
    /// Whether mail can be sent at all.
    pub fn is_configured(&self) -> bool {
        !self.host.is_empty()
    }

    /// `port`, or the usual one for `security`.
    pub fn effective_port(&self) -> u16 {
        match (self.port, self.security) {
            (0, SmtpSecurity::Starttls) => 587,
            (0, SmtpSecurity::Tls) => 465,
            (0, SmtpSecurity::None) => 25,
            (port, _) => port,
        }
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// `[backup]`: scheduled copies of the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Where scheduled backups go; empty: none are made.
    pub dir: String,
    /// How often.
    pub every: HumanDuration,
    /// How many are kept; older ones are removed.
    pub keep: usize,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            dir: String::new(),
            every: HumanDuration::from_secs(24 * 60 * 60),
            keep: 7,
        }
    }
}

/// `[metrics]`: where Prometheus scrapes `/metrics`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A second address serving `/metrics` alone, without a token (bind it
    /// to loopback or a private network). Unset: only the main listener's
    /// `/metrics`, with the admin token.
    pub listen: Option<SocketAddr>,
}

/// `[forward_auth]` and its `[[forward_auth.rules]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthConfig {
    /// The parent domain of the protected apps (`home.example`): the UI's
    /// session cookie is then set for it, so one sign-in covers every
    /// subdomain. Empty: the cookie stays on authd's own host.
    pub cookie_domain: String,
    /// What a request no rule matches gets.
    pub default_policy: crate::domain::forward_auth::Policy,
    /// First match wins.
    pub rules: Vec<crate::domain::forward_auth::Rule>,
}

impl Default for ForwardAuthConfig {
    fn default() -> Self {
        Self {
            cookie_domain: String::new(),
            default_policy: crate::domain::forward_auth::Policy::Deny,
            rules: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// A pending approval no one resolved by then expires (and a pending
    /// sign-up is removed).
    pub ttl: HumanDuration,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            ttl: HumanDuration::from_secs(7 * 86400),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MfaConfig {
    /// The name authenticator apps show next to the account.
    pub issuer: String,
    /// How long the `mfa_token` of a login's second step lives.
    pub challenge_ttl: HumanDuration,
}

impl Default for MfaConfig {
    fn default() -> Self {
        Self {
            issuer: "authd".to_owned(),
            challenge_ttl: HumanDuration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebauthnConfig {
    /// The relying-party id credentials are bound to for ever (a bare domain).
    /// Empty: the host of `server.public_url`.
    pub rp_id: String,
    /// Origins allowed besides `server.public_url` (scheme://host[:port]).
    pub extra_origins: Vec<String>,
    /// Accept any port on the allowed hosts. For development only.
    pub allow_any_port: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Event types to send; `approval.created` is the only one so far.
    #[serde(default = "WebhookConfig::default_events")]
    pub events: Vec<String>,
    /// When set, each request carries `X-Authd-Signature: sha256=<hex HMAC of the body>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Per attempt.
    #[serde(default = "WebhookConfig::default_timeout")]
    pub timeout: HumanDuration,
    /// Attempts before `webhook.failed`; the pause doubles after each.
    #[serde(default = "WebhookConfig::default_max_attempts")]
    pub max_attempts: u32,
    /// The pause after the first failed attempt.
    #[serde(default = "WebhookConfig::default_backoff")]
    pub backoff: HumanDuration,
}

impl WebhookConfig {
    fn default_events() -> Vec<String> {
        vec!["approval.created".to_owned()]
    }
    fn default_timeout() -> HumanDuration {
        HumanDuration::from_secs(5)
    }
    fn default_max_attempts() -> u32 {
        5
    }
    fn default_backoff() -> HumanDuration {
        HumanDuration::from_secs(2)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub public_url: String,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub request_timeout: HumanDuration,
    /// The whole request head (request line and headers) must arrive within
    /// this, else the connection is closed; also how long an idle keep-alive
    /// connection may wait for its next request.
    pub header_timeout: HumanDuration,
    /// Connections served at once; `0` means derived from the open-files
    /// limit (see [`Config::max_connections`]).
    pub max_connections: usize,
    pub max_body_bytes: usize,
    pub shutdown_grace: HumanDuration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Still holds the server secret and the admin token with PostgreSQL.
    pub data_dir: PathBuf,
    pub cache_mib: CacheMib,
    /// `redb` (one file in `data_dir`) or `postgres` (shared by replicas).
    pub backend: StorageBackend,
    /// `postgres://user:password@host:port/database[?sslmode=require]`;
    /// better set through `AUTHD_STORAGE__POSTGRES_URL`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub postgres_url: String,
}

/// `storage.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    #[default]
    Redb,
    Postgres,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// `None` means `<data_dir>/admin.token`; see [`Config::admin_token_path`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

/// `tokens.signing_alg`: the algorithm new keys sign with (one type, from
/// the config file to the JWT header).
pub use crate::crypto::jwt::KeyAlgorithm as SigningAlgorithm;

/// The `aud` of an ID token whose login named no `client_id`, reserved so
/// that `tokens.audience` (the access tokens') can never equal it.
pub const ID_TOKEN_AUDIENCE: &str = "authd-id-token";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    pub access_ttl: HumanDuration,
    pub refresh_ttl: HumanDuration,
    pub id_ttl: HumanDuration,
    pub signing_alg: SigningAlgorithm,
    pub audience: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    pub ttl: HumanDuration,
    /// Live sessions one user may hold; a new login past it ends the oldest.
    /// Each org's `max_sessions_per_user` may lower it.
    pub max_per_user: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordsConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// `None` means one hash at a time per CPU core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_concurrency: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub login_per_ip_per_min: u32,
    pub login_per_account_per_min: u32,
    /// Sign-up attempts from one address (an IPv6 /64) per minute.
    pub register_per_ip_per_min: u32,
    /// `POST /password/forgot` from one address per hour; past it the
    /// answer is the same and nothing is sent.
    pub recovery_per_ip_per_hour: u32,
    /// Recovery and verification mails for one account per hour.
    pub recovery_per_account_per_hour: u32,
    pub lockout_threshold: u32,
    pub lockout_duration: HumanDuration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PatConfig {
    pub prefix: String,
    pub max_ttl_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    pub retention: HumanDuration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A level (`info`), or `target=level` directives (`warn,authd=debug`).
    pub level: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            public_url: "http://localhost:9090".to_owned(),
            trusted_proxies: Vec::new(),
            request_timeout: HumanDuration::from_secs(30),
            header_timeout: HumanDuration::from_secs(10),
            max_connections: 0,
            max_body_bytes: 64 * 1024,
            shutdown_grace: HumanDuration::from_secs(10),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            cache_mib: CacheMib::Auto,
            backend: StorageBackend::Redb,
            postgres_url: String::new(),
        }
    }
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            access_ttl: HumanDuration::from_secs(3600),
            refresh_ttl: HumanDuration::from_secs(7 * 86400),
            id_ttl: HumanDuration::from_secs(3600),
            signing_alg: SigningAlgorithm::RS256,
            audience: "authd".to_owned(),
        }
    }
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            ttl: HumanDuration::from_secs(30 * 86400),
            max_per_user: 50,
        }
    }
}

impl Default for PasswordsConfig {
    fn default() -> Self {
        Self {
            memory_kib: 65536,
            iterations: 3,
            parallelism: 4,
            hash_concurrency: None,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            login_per_ip_per_min: 10,
            login_per_account_per_min: 5,
            register_per_ip_per_min: 10,
            recovery_per_ip_per_hour: 5,
            recovery_per_account_per_hour: 3,
            lockout_threshold: 10,
            lockout_duration: HumanDuration::from_secs(15 * 60),
        }
    }
}

impl Default for PatConfig {
    fn default() -> Self {
        Self {
            prefix: "pat_authd_".to_owned(),
            max_ttl_days: 180,
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            retention: HumanDuration::from_secs(90 * 86400),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            level: "info".to_owned(),
        }
    }
}

/// A configuration problem, always naming the key (or file) to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} not found")]
    FileNotFound { path: PathBuf },
    #[error("{0}")]
    Parse(String),
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Where the config came from, for messages and `check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    Defaults,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(path) => write!(f, "{}", path.display()),
            ConfigSource::Defaults => f.write_str("built-in defaults"),
        }
    }
}

/// Picks the config file the way the README's "Configuration" says: `--config`, else
/// `AUTHD_CONFIG`, else `./config.toml` if it exists, else the defaults.
pub fn resolve_source(explicit: Option<&Path>) -> Result<ConfigSource, ConfigError> {
    let named = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(ENV_CONFIG_PATH).map(PathBuf::from));
    match named {
        Some(path) if path.is_file() => Ok(ConfigSource::File(path)),
        Some(path) => Err(ConfigError::FileNotFound { path }),
        None => {
            let local = PathBuf::from("config.toml");
            Ok(if local.is_file() {
                ConfigSource::File(local)
            } else {
                ConfigSource::Defaults
            })
        }
    }
}

impl Config {
    /// Loads defaults ← file ← `AUTHD_*` environment and validates the result.
    pub fn load(source: &ConfigSource) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let ConfigSource::File(path) = source {
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only nested names are config keys; `AUTHD_TOKEN` and `AUTHD_CONFIG`
        // belong to the CLI and must not trip `deny_unknown_fields`.
        let env = Env::prefixed("AUTHD_")
            .filter(|key| key.as_str().contains("__"))
            .split("__");
        let config: Config = figment
            .merge(env)
            .extract()
            .map_err(|error| ConfigError::Parse(describe_figment_error(error)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        let url = &self.server.public_url;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return invalid("server.public_url", "must start with http:// or https://");
        }
        if !self.backup.dir.is_empty() {
            if self.backup.every.as_secs() < 1 {
                return invalid("backup.every", "must be at least 1s");
            }
            if self.backup.keep == 0 {
                return invalid("backup.keep", "must be at least 1");
            }
        }
        if self.storage.data_dir.as_os_str().is_empty() {
            return invalid("storage.data_dir", "must not be empty");
        }
        let postgres_url = &self.storage.postgres_url;
        match self.storage.backend {
            StorageBackend::Postgres if postgres_url.is_empty() => {
                return invalid(
                    "storage.postgres_url",
                    "must be set when storage.backend = \"postgres\" (postgres://user:password@host:port/database)",
                );
            }
            StorageBackend::Postgres
                if !(postgres_url.starts_with("postgres://")
                    || postgres_url.starts_with("postgresql://")) =>
            {
                return invalid(
                    "storage.postgres_url",
                    "must start with postgres:// or postgresql://",
                );
            }
            _ => {}
        }
        if self.server.max_connections > CONNECTIONS_CEILING {
            return invalid(
                "server.max_connections",
                "must be at most 1048576 (0 = derived from the open-files limit)",
            );
        }
        if self.server.max_body_bytes < 1024 {
            return invalid("server.max_body_bytes", "must be at least 1024");
        }
        for (key, duration) in [
            ("tokens.access_ttl", self.tokens.access_ttl),
            ("tokens.refresh_ttl", self.tokens.refresh_ttl),
            ("tokens.id_ttl", self.tokens.id_ttl),
            ("sessions.ttl", self.sessions.ttl),
            ("server.request_timeout", self.server.request_timeout),
            ("server.header_timeout", self.server.header_timeout),
            ("audit.retention", self.audit.retention),
            ("approvals.ttl", self.approvals.ttl),
            ("mfa.challenge_ttl", self.mfa.challenge_ttl),
            ("recovery.reset_ttl", self.recovery.reset_ttl),
            (
                "recovery.operator_link_ttl",
                self.recovery.operator_link_ttl,
            ),
            ("recovery.verify_ttl", self.recovery.verify_ttl),
        ] {
            if duration.as_std().is_zero() {
                return invalid(key, "must be longer than zero");
            }
        }
        if self.passwords.memory_kib < 8 * self.passwords.parallelism.max(1) {
            return invalid("passwords.memory_kib", "must be at least 8 × parallelism");
        }
        if self.passwords.iterations == 0 {
            return invalid("passwords.iterations", "must be at least 1");
        }
        if self.passwords.parallelism == 0 {
            return invalid("passwords.parallelism", "must be at least 1");
        }
        if self.passwords.hash_concurrency == Some(0) {
            return invalid("passwords.hash_concurrency", "must be at least 1");
        }
        if self.pat.prefix.is_empty()
            || !self
                .pat
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return invalid(
                "pat.prefix",
                "must be non-empty ASCII letters, digits or '_'",
            );
        }
        if self.sessions.max_per_user == 0 {
            return invalid("sessions.max_per_user", "must be at least 1");
        }
        if self.tokens.audience == ID_TOKEN_AUDIENCE {
            return invalid(
                "tokens.audience",
                "must not be \"authd-id-token\": that is the audience of ID tokens",
            );
        }
        if self.pat.max_ttl_days == 0 {
            return invalid("pat.max_ttl_days", "must be at least 1");
        }
        if self.mfa.issuer.trim().is_empty() || self.mfa.issuer.contains(':') {
            return invalid("mfa.issuer", "must be non-empty and without ':'");
        }
        if let Err(message) = self.webauthn_origins() {
            return Err(ConfigError::Invalid {
                key: "webauthn.extra_origins",
                message,
            });
        }
        if let Err((index, why)) =
            crate::domain::forward_auth::check_rules(&self.forward_auth.rules)
        {
            return Err(ConfigError::Invalid {
                key: "forward_auth.rules",
                message: format!("rule {} of [[forward_auth.rules]]: {why}", index + 1),
            });
        }
        let cookie_domain = &self.forward_auth.cookie_domain;
        if !cookie_domain.is_empty() {
            let host = url::Url::parse(&self.server.public_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            let domain = cookie_domain.trim_start_matches('.');
            if !(host == domain || host.ends_with(&format!(".{domain}"))) || !domain.contains('.') {
                return invalid(
                    "forward_auth.cookie_domain",
                    "must be a parent domain of server.public_url's host, with a dot (e.g. home.example for auth.home.example)",
                );
            }
        }
        for webhook in &self.webhooks {
            if !(webhook.url.starts_with("http://") || webhook.url.starts_with("https://")) {
                return invalid("webhooks.url", "must start with http:// or https://");
            }
            if webhook.max_attempts == 0 {
                return invalid("webhooks.max_attempts", "must be at least 1");
            }
            if webhook.timeout.as_std().is_zero() {
                return invalid("webhooks.timeout", "must be longer than zero");
            }
            if let Some(event) = webhook
                .events
                .iter()
                .find(|e| e.as_str() != "approval.created")
            {
                return Err(ConfigError::Invalid {
                    key: "webhooks.events",
                    message: format!("unknown event {event:?} (known: \"approval.created\")"),
                });
            }
        }
        self.smtp.check()?;
        if let Err(why) = crate::telemetry::parse_level(&self.log.level) {
            return invalid(
                "log.level",
                &format!("is not a valid filter: {why} (try \"info\" or \"authd=debug,tower_http=warn\")"),
            );
        }
        Ok(())
    }

    /// Whether `server.public_url` is https, which decides the UI cookies'
    /// names and flags, and whether responses carry HSTS.
    pub fn serves_https(&self) -> bool {
        self.server.public_url.starts_with("https://")
    }

    /// The admin token file: `admin.token_file`, else `<data_dir>/admin.token`.
    pub fn admin_token_path(&self) -> PathBuf {
        self.admin
            .token_file
            .clone()
            .unwrap_or_else(|| self.storage.data_dir.join("admin.token"))
    }

    pub fn database_path(&self) -> PathBuf {
        self.storage.data_dir.join("authd.redb")
    }

    /// `webauthn.rp_id`, else the host of `server.public_url`.
    pub fn webauthn_rp_id(&self) -> String {
        if !self.webauthn.rp_id.is_empty() {
            return self.webauthn.rp_id.clone();
        }
        url_host(&self.server.public_url).unwrap_or_default()
    }

    /// `server.public_url`'s origin and `webauthn.extra_origins`, checked.
    pub fn webauthn_origins(&self) -> Result<Vec<String>, String> {
        let mut origins = vec![origin_of(&self.server.public_url)];
        for origin in &self.webauthn.extra_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://"))
                || url_host(origin).is_none()
            {
                return Err(format!(
                    "{origin:?} is not an origin like https://auth.example.com"
                ));
            }
            origins.push(origin_of(origin));
        }
        Ok(origins)
    }

    /// The number of password hashes allowed to run at once.
    pub fn hash_concurrency(&self) -> usize {
        self.passwords.hash_concurrency.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1)
        })
    }

    /// How many connections the server holds at once: `server.max_connections`,
    /// or when that is 0, derived from the open-files limit. Either way at
    /// most the limit minus [`FD_RESERVE`], so that accepting never fails
    /// with "too many open files" and the database, the log and outgoing
    /// webhook sockets always have descriptors left. The second value is
    /// the configured number when it had to be lowered, for a warning.
    pub fn max_connections(&self) -> (usize, Option<usize>) {
        let allowed = open_files_limit()
            .map_or(usize::MAX, |limit| {
                usize::try_from(limit.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX)
            })
            .max(MIN_CONNECTIONS);
        match self.server.max_connections {
            0 => (allowed.min(DERIVED_MAX_CONNECTIONS), None),
            configured if configured > allowed => (allowed, Some(configured)),
            configured => (configured, None),
        }
    }

    /// Things that work but should be fixed, one sentence each, for the log
    /// at start and for `check-config`.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.smtp.is_configured()
            && self.smtp.security == SmtpSecurity::None
            && !is_loopback_host(&self.smtp.host)
        {
            warnings.push(format!(
                "smtp.security is \"none\" for {}: mail, with password-reset links that work, can be read on the way; use \"starttls\" or \"tls\"",
                self.smtp.host
            ));
        }
        let plain_webhooks = self.webhooks.iter().filter(|webhook| {
            !webhook.url.starts_with("https://")
                && !url_host(&webhook.url).is_some_and(|host| is_loopback_host(&host))
        });
        for webhook in plain_webhooks {
            warnings.push(format!(
                "webhooks.url {} is not https: its requests (with approve/deny links that work) can be read and changed on the way; use https, or a loopback address",
                mask_url(&webhook.url)
            ));
        }
        warnings
    }

    /// The effective configuration as TOML, with derived defaults filled in
    /// and any secret replaced by `[redacted]`: webhook secrets, and the
    /// query and user info of URLs (a webhook URL often carries its token
    /// there, e.g. `?auth=…` or `https://user:token@…`).
    pub fn to_effective_toml(&self) -> String {
        let mut effective = self.clone();
        effective.server.public_url = mask_url(&self.server.public_url);
        for origin in &mut effective.webauthn.extra_origins {
            *origin = mask_url(origin);
        }
        effective.admin.token_file = Some(self.admin_token_path());
        effective.passwords.hash_concurrency = Some(self.hash_concurrency());
        effective.server.max_connections = self.max_connections().0;
        effective.webauthn.rp_id = self.webauthn_rp_id();
        effective.smtp.port = self.smtp.effective_port();
        if !self.smtp.password.is_empty() {
            effective.smtp.password = "[redacted]".to_owned();
        }
        effective.storage.postgres_url = mask_url(&self.storage.postgres_url);
        for webhook in &mut effective.webhooks {
            webhook.url = mask_url(&webhook.url);
            if webhook.secret.is_some() {
                webhook.secret = Some("[redacted]".to_owned());
            }
        }
        toml_string(&effective)
    }
}

impl SmtpConfig {
    /// `[smtp]` is either absent (no `host`) or complete and safe to use.
    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        if !self.is_configured() {
            return Ok(());
        }
        if self.host.contains(['/', ':', ' ']) {
            return invalid(
                "smtp.host",
                "must be a host name or address, without scheme or port (the port is smtp.port)",
            );
        }
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            return invalid(
                "smtp.from",
                "must be an address like authd@example.com or \"authd <authd@example.com>\"",
            );
        }
        if self.username.is_empty() != self.password.is_empty() {
            return invalid(
                "smtp.password",
                "smtp.username and smtp.password go together (the password may come from AUTHD_SMTP__PASSWORD)",
            );
        }
        if self.security == SmtpSecurity::None
            && !self.password.is_empty()
            && !is_loopback_host(&self.host)
        {
            return invalid(
                "smtp.security",
                "\"none\" would send the password in clear: use \"starttls\" or \"tls\" (\"none\" with credentials only for a relay on loopback)",
            );
        }
        if self.max_attempts == 0 {
            return invalid("smtp.max_attempts", "must be at least 1");
        }
        if self.timeout.as_std().is_zero() {
            return invalid("smtp.timeout", "must be longer than zero");
        }
        Ok(())
    }
}

/// File descriptors kept back from the connection cap: the database file,
/// stdin/out/err, the listener, the runtime's epoll and wake-up descriptors,
/// files read while running (admin token, server secret, backups), up to 16
/// webhook deliveries with their DNS look-ups, and the one connection the
/// accept loop holds while it waits for a free slot — with room to spare.
pub const FD_RESERVE: u64 = 64;

/// The derived cap never exceeds this: a homelab identity server needs far
/// fewer, and each connection costs memory (its buffers can grow to the size
/// of a request head). Set `server.max_connections` to go higher.
pub const DERIVED_MAX_CONNECTIONS: usize = 4096;

/// Whatever the limit says, serve at least this many connections.
const MIN_CONNECTIONS: usize = 8;

/// The most `server.max_connections` may say: more than any open-files
/// limit, and within what the accept loop's semaphore can count.
const CONNECTIONS_CEILING: usize = 1 << 20;

/// The soft `RLIMIT_NOFILE` of this process (`ulimit -n`, systemd's
/// `LimitNOFILE=`), or `None` if unlimited or unknown.
pub fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which lives on our stack.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    // rlim_t is u32 on 32-bit Linux (a Raspberry Pi's armv7), u64 elsewhere.
    #[allow(clippy::useless_conversion)]
    let soft = u64::from(limit.rlim_cur);
    (status == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(soft)
}

/// `url` with its user info, query and fragment replaced by `[redacted]`,
/// for output that people copy into tickets and chats.
pub fn mask_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("[redacted]@{host}"),
        None => authority.to_owned(),
    };
    let (path, masked_tail) = match after.find(['?', '#']) {
        Some(at) => {
            let marker = &after[at..=at];
            (&after[..at], format!("{marker}[redacted]"))
        }
        None => (after, String::new()),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{authority}{path}{masked_tail}"),
        None => format!("{authority}{path}{masked_tail}"),
    }
}

/// `localhost`, a name under `.localhost`, or a loopback address: traffic
/// that never leaves the machine.
fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `scheme://host[:port]` of a URL (everything before the path).
fn origin_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority_len = rest.find('/').unwrap_or(rest.len());
    url[..url.len() - rest.len() + authority_len].to_owned()
}

/// The host of an `http(s)://` URL, without port or brackets.
fn url_host(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn toml_string(config: &Config) -> String {
    match serde_json::to_value(config) {
        Ok(value) => {
            let mut out = String::new();
            render_toml_tables(&value, &mut out);
            out
        }
        Err(error) => format!("# could not render the config: {error}\n"),
    }
}

/// Renders the two-level `section.key` shape of [`Config`] as TOML without
/// pulling in a TOML serializer.
fn render_toml_tables(value: &serde_json::Value, out: &mut String) {
    let Some(sections) = value.as_object() else {
        return;
    };
    let write_keys = |keys: &serde_json::Map<String, serde_json::Value>, out: &mut String| {
        for (key, value) in keys {
            out.push_str(&format!("{key} = {value}\n"));
        }
        out.push('\n');
    };
    for (section, body) in sections {
        match body {
            serde_json::Value::Array(items) => {
                for item in items.iter().filter_map(|item| item.as_object()) {
                    out.push_str(&format!("[[{section}]]\n"));
                    write_keys(item, out);
                }
            }
            _ => {
                out.push_str(&format!("[{section}]\n"));
                if let Some(keys) = body.as_object() {
                    write_keys(keys, out);
                }
            }
        }
    }
}

/// figment reports the key path with its own profile prefix; strip it so the
/// message names the key exactly as it is written in `config.toml`.
fn describe_figment_error(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| e.to_string().replace("\"default.", "\""))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The ceiling of redb's page cache: `"auto"` (a quarter of the memory the
/// process may use, see `app`) or a number of MiB. Either way the cache is
/// filled only as pages are read, so it never holds more than the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMib {
    Auto,
    Mib(usize),
}

impl Serialize for CacheMib {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            CacheMib::Auto => serializer.serialize_str("auto"),
            CacheMib::Mib(mib) => serializer.serialize_u64(*mib as u64),
        }
    }
}

impl<'de> Deserialize<'de> for CacheMib {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Mib(usize),
            Word(String),
        }
        match Written::deserialize(deserializer)? {
            Written::Mib(mib) => Ok(CacheMib::Mib(mib)),
            Written::Word(word) if word.trim().eq_ignore_ascii_case("auto") => Ok(CacheMib::Auto),
            Written::Word(word) => word.trim().parse().map(CacheMib::Mib).map_err(|_| {
                serde::de::Error::custom(format!(
                    "expected \"auto\" or a number of MiB, found {word:?}"
                ))
            }),
        }
    }
}

/// A `std::time::Duration` written the way people say it: `"90s"`, `"15m"`,
/// `"1h"`, `"7d"`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(std::time::Duration);

impl HumanDuration {
    pub const fn from_secs(seconds: u64) -> Self {
        Self(std::time::Duration::from_secs(seconds))
    }

    pub fn as_std(self) -> std::time::Duration {
        self.0
    }

    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for HumanDuration {
    /// The largest unit that expresses the value exactly: `90d`, `15m`, `1500ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if !millis.is_multiple_of(1000) {
            return write!(f, "{millis}ms");
        }
        let seconds = millis / 1000;
        match seconds {
            0 => f.write_str("0s"),
            s if s % 86400 == 0 => write!(f, "{}d", s / 86400),
            s if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|_| {
                serde::de::Error::invalid_value(
                    serde::de::Unexpected::Str(&text),
                    &"a duration such as \"90s\", \"15m\", \"1h\" or \"7d\"",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load_toml(text: &str) -> Result<Config, ConfigError> {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write");
        Config::load(&ConfigSource::File(file.path().to_path_buf()))
    }

    #[test]
    fn defaults_match_the_spec() {
        let config = Config::default();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:9090");
        assert_eq!(config.tokens.access_ttl.as_secs(), 3600);
        assert_eq!(config.tokens.refresh_ttl.as_secs(), 7 * 86400);
        assert_eq!(config.sessions.ttl.as_secs(), 30 * 86400);
        assert_eq!(config.passwords.memory_kib, 65536);
        assert_eq!(config.limits.lockout_duration.as_secs(), 900);
        assert_eq!(config.limits.recovery_per_ip_per_hour, 5);
        assert_eq!(config.limits.recovery_per_account_per_hour, 3);
        assert_eq!(config.recovery.reset_ttl.as_secs(), 30 * 60);
        assert!(!config.smtp.is_configured());
        assert_eq!(config.pat.prefix, "pat_authd_");
        assert_eq!(config.audit.retention.as_secs(), 90 * 86400);
        assert_eq!(
            config.admin_token_path(),
            PathBuf::from("./data/admin.token")
        );
    }

    #[test]
    fn humane_durations_parse() {
        let config = load_toml("[tokens]\naccess_ttl = \"15m\"\nrefresh_ttl = \"7d\"\n")
            .expect("valid config");
        assert_eq!(config.tokens.access_ttl.as_secs(), 900);
        assert_eq!(config.tokens.refresh_ttl.as_secs(), 7 * 86400);
    }

    #[test]
    fn the_page_cache_is_auto_or_a_number_of_mib() {
        assert_eq!(Config::default().storage.cache_mib, CacheMib::Auto);
        let config = load_toml("[storage]\ncache_mib = 512\n").expect("a number");
        assert_eq!(config.storage.cache_mib, CacheMib::Mib(512));
        let config = load_toml("[storage]\ncache_mib = \"auto\"\n").expect("auto");
        assert_eq!(config.storage.cache_mib, CacheMib::Auto);
        let error = load_toml("[storage]\ncache_mib = \"lots\"\n").expect_err("must fail");
        let message = error.to_string();
        assert!(message.contains("storage.cache_mib"), "{message}");
        assert!(message.contains("auto"), "{message}");
        assert!(Config::default()
            .to_effective_toml()
            .contains("cache_mib = \"auto\""));
    }

    #[test]
    fn a_bad_duration_names_its_key() {
        let error = load_toml("[tokens]\naccess_ttl = \"soon\"\n").expect_err("must fail");
        let message = error.to_string();
        assert!(message.contains("tokens.access_ttl"), "{message}");
        assert!(message.contains("soon"), "{message}");
    }

    #[test]
    fn an_unknown_key_names_itself() {
        let error = load_toml("[server]\nlisten_port = 1\n").expect_err("must fail");
        let message = error.to_string();
        assert!(message.contains("listen_port"), "{message}");
        let error = load_toml("[nonsense]\nx = 1\n").expect_err("must fail");
        assert!(error.to_string().contains("nonsense"), "{error}");
    }

    #[test]
    fn the_id_token_audience_cannot_be_the_access_audience() {
        let error = load_toml("[tokens]\naudience = \"authd-id-token\"\n").expect_err("must fail");
        assert!(error.to_string().starts_with("tokens.audience:"), "{error}");
    }

    #[test]
    fn log_levels_take_target_directives_and_a_bad_one_names_its_key() {
        let config =
            load_toml("[log]\nlevel = \"warn,authd=debug,tower_http=trace\"\n").expect("loads");
        assert_eq!(config.log.level, "warn,authd=debug,tower_http=trace");
        for bad in ["loud", "authd=shouting", "info,[span]=debug"] {
            let error = load_toml(&format!("[log]\nlevel = \"{bad}\"\n")).expect_err(bad);
            assert!(error.to_string().starts_with("log.level:"), "{error}");
        }
    }

    #[test]
    fn a_zero_ttl_is_rejected_by_key() {
        let error = load_toml("[sessions]\nttl = \"0s\"\n").expect_err("must fail");
        assert!(error.to_string().starts_with("sessions.ttl:"), "{error}");
    }

    #[test]
    fn urls_lose_their_user_info_query_and_fragment_in_output() {
        for (url, masked) in [
            (
                "https://ntfy.example.com/authd",
                "https://ntfy.example.com/authd",
            ),
            (
                "https://hooks.example.com/x?token=s3cret&y=1",
                "https://hooks.example.com/x?[redacted]",
            ),
            (
                "https://bob:s3cret@hooks.example.com:8443/x",
                "https://[redacted]@hooks.example.com:8443/x",
            ),
            (
                "http://a@b@example.com?k=s3cret#f",
                "http://[redacted]@example.com?[redacted]",
            ),
            (
                "https://example.com#s3cret",
                "https://example.com#[redacted]",
            ),
        ] {
            assert_eq!(mask_url(url), masked, "{url}");
        }
    }

    #[test]
    fn plain_http_webhooks_off_the_machine_are_warned_about() {
        let config = load_toml(
            "[[webhooks]]\nurl = \"http://hooks.example.com/x?token=s3cret\"\n\
             [[webhooks]]\nurl = \"https://hooks.example.com/y\"\n\
             [[webhooks]]\nurl = \"http://127.0.0.1:8080/z\"\n\
             [[webhooks]]\nurl = \"http://[::1]/z\"\n\
             [[webhooks]]\nurl = \"http://localhost:9000/z\"\n",
        )
        .expect("valid config");
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("http://hooks.example.com/x?[redacted]"));
        assert!(!warnings[0].contains("s3cret"));
    }

    #[test]
    fn the_connection_cap_stays_below_the_open_files_limit() {
        let (derived, lowered) = Config::default().max_connections();
        assert!(lowered.is_none());
        assert!((MIN_CONNECTIONS..=DERIVED_MAX_CONNECTIONS).contains(&derived));
        if let Some(limit) = open_files_limit() {
            let allowed = usize::try_from(limit.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
            assert!(derived <= allowed.max(MIN_CONNECTIONS));
            let mut config = Config::default();
            config.server.max_connections = allowed.saturating_add(1);
            assert_eq!(
                config.max_connections(),
                (
                    allowed.max(MIN_CONNECTIONS),
                    Some(allowed.saturating_add(1))
                )
            );
        }
        let mut config = Config::default();
        config.server.max_connections = 20;
        assert_eq!(config.max_connections(), (20, None));
    }

    #[test]
    fn effective_toml_fills_derived_values() {
        let text = Config::default().to_effective_toml();
        assert!(text.contains("[server]"));
        assert!(
            text.contains("token_file = \"./data/admin.token\""),
            "{text}"
        );
        assert!(text.contains("hash_concurrency = "), "{text}");
        assert!(text.contains("access_ttl = \"1h\""), "{text}");
        assert!(text.contains("retention = \"90d\""), "{text}");
    }
}
