//! Use cases. Nothing here knows HTTP; handlers call these with parsed
//! inputs and a [`RequestContext`], and map [`ServiceError`] to a response.
//!
//! Calls between these modules go downward only. The sign-in chain:
//! [`login`] → [`mfa_step`] → {[`totp`], [`webauthn`]} → [`sessions`] →
//! [`tokens`]; a passkey alone: [`passkey_login`] → [`passkey_assertions`]
//! → [`webauthn`], then [`sessions`] → [`tokens`]. Beside it, [`factors`]
//! and [`accounts`] → [`step_up`] → {[`totp`], [`passkey_assertions`]};
//! [`passkey_enrollment`] → [`webauthn`]; [`enrolled_factors`],
//! [`lockout`] and [`limiter`] are leaves.
//! The rest — [`pats`], [`members`], [`user_admin`], [`refresh`], [`orgs`], [`keys`],
//! [`approvals`], [`webhooks`], [`audit_log`] — stand on those;
//! [`recovery`] (forgotten passwords, recovery links, verified emails)
//! stands on [`accounts`] and [`sessions`] and sends through [`mail`]. Apps signing
//! in through authd: [`clients`] → [`authorize`] → [`client_tokens`] →
//! [`sessions`]; [`device`] stands on those two, [`forward_auth`] on [`pats`].
//! Signing in through an upstream provider: [`social`] → {[`upstream_user`]
//! → [`upstream`], [`identities`], [`providers`], [`accounts`], [`mfa_step`],
//! [`sessions`]}.
//!
//! Store calls are blocking and run on the blocking pool through
//! [`Services::store_read`] / [`Services::store_write`]; password hashing runs
//! on its own bounded pool inside [`PasswordHasher`].

pub mod accounts;
pub mod approvals;
pub mod audit_log;
pub mod authorize;
pub mod backup;
pub mod client_tokens;
pub mod clients;
pub mod device;
pub mod enrolled_factors;
pub mod factors;
pub mod forward_auth;
pub mod identities;
pub mod keys;
pub mod limiter;
pub mod lockout;
pub mod login;
pub mod mail;
pub mod members;
pub mod mfa_step;
pub mod orgs;
pub mod passkey_assertions;
pub mod passkey_enrollment;
pub mod passkey_login;
pub mod pats;
pub mod providers;
pub mod recovery;
pub mod refresh;
pub mod reload;
pub mod sessions;
pub mod social;
pub mod status;
pub mod step_up;
pub mod tokens;
pub mod totp;
pub mod upstream;
pub mod upstream_user;
pub mod user_admin;
pub mod webauthn;
pub mod webhooks;

use std::sync::Arc;

use crate::audit::RequestOrigin;
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::passwords::{Argon2Params, PasswordError, PasswordHasher};
use crate::domain::password_policy::Violation;
use crate::live_config::LiveConfig;
use crate::store::{ReadTxn, Store, StoreError, Sweep, WriteTxn};
use crate::swappable::Swappable;

pub use keys::KeyRing;
pub use limiter::LoginLimiter;
pub use sessions::SessionActivity;

/// What a use case may fail with. The HTTP layer decides what each looks like.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Input that parsed but is not acceptable, per field.
    #[error("invalid fields")]
    InvalidFields(Vec<FieldError>),
    #[error("password does not meet the policy")]
    InvalidPassword(Vec<Violation>),
    #[error("email already registered in this org")]
    EmailTaken,
    #[error("registration is closed for this org")]
    RegistrationClosed,
    /// Unknown email, wrong password, locked, pending or disabled: one answer.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("too many attempts")]
    RateLimited { retry_after_seconds: u64 },
    /// A bearer token that is not (or no longer) valid.
    #[error("invalid token")]
    InvalidToken,
    #[error("forbidden")]
    Forbidden,
    /// A PAT without the scope an endpoint needs.
    #[error("insufficient scope: {0}")]
    InsufficientScope(crate::domain::Scope),
    /// An `mfa_token` that is unknown, expired, used up or spent.
    #[error("invalid mfa token")]
    InvalidMfaToken,
    /// A wrong second factor for a live `mfa_token`.
    #[error("invalid mfa code")]
    InvalidMfaCode,
    /// The session may only enroll MFA (the org requires it).
    #[error("mfa enrollment required")]
    MfaEnrollmentRequired,
    /// The org requires a second factor and the session began without one.
    #[error("mfa required")]
    MfaRequired,
    /// A signed link that is forged, expired, or already used.
    #[error("invalid or expired signature")]
    InvalidSignature,
    /// A recovery or verification link that is forged, expired, used, or
    /// outlived by a password change.
    #[error("invalid or expired link")]
    InvalidLink,
    /// A control-plane call without `X-Active-Org-Id`.
    #[error("org required")]
    OrgRequired,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
    /// An OAuth 2.0 refusal with its RFC 6749 code (`invalid_grant`,
    /// `invalid_scope`, `authorization_pending`, …); `invalid_client` is a 401.
    #[error("oauth: {code}: {description}")]
    OAuth {
        code: &'static str,
        description: String,
    },
    /// The database cannot be reached just now (a PostgreSQL backend that
    /// is down or restarting); the cause is for the log only. (Wrapped
    /// anywhere, a store error of that kind becomes this: see `internal`.)
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database cannot be written: its volume is full (or failing).
    /// Nothing was changed; the cause is kept for the log.
    #[error("storage unavailable: {0:#}")]
    StorageUnavailable(anyhow::Error),
    /// Something that should not fail did; its whole chain of causes is
    /// kept for the one log line the HTTP layer writes.
    #[error("internal: {0:#}")]
    Internal(anyhow::Error),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl ServiceError {
    /// An internal failure, keeping `error` and its sources; a store that
    /// cannot write for want of space is [`ServiceError::StorageUnavailable`]
    /// wherever it is wrapped, so that a full disk is never a bare 500.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        let error = error.into();
        let storage_full = error.chain().any(|cause| {
            cause
                .downcast_ref::<StoreError>()
                .is_some_and(StoreError::is_storage_full)
        });
        let unreachable = error.chain().any(|cause| {
            cause
                .downcast_ref::<StoreError>()
                .is_some_and(StoreError::is_unavailable)
        });
        if storage_full {
            ServiceError::StorageUnavailable(error)
        } else if unreachable {
            ServiceError::Unavailable(format!("{error:#}"))
        } else {
            ServiceError::Internal(error)
        }
    }

    pub fn oauth(code: &'static str, description: impl Into<String>) -> Self {
        ServiceError::OAuth {
            code,
            description: description.into(),
        }
    }

    /// Client authentication failed: one answer for an unknown client, a
    /// wrong secret or a missing one (RFC 6749 §5.2).
    pub fn invalid_client() -> Self {
        Self::oauth("invalid_client", "client authentication failed")
    }

    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        ServiceError::InvalidFields(vec![FieldError {
            field,
            message: message.into(),
        }])
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        ServiceError::internal(error)
    }
}

impl From<PasswordError> for ServiceError {
    fn from(error: PasswordError) -> Self {
        ServiceError::internal(error)
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Who is asking and from where, for audit records and rate limits.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub ip: std::net::IpAddr,
    pub user_agent: String,
    pub request_id: String,
}

impl RequestContext {
    pub fn origin(&self) -> RequestOrigin {
        RequestOrigin {
            ip: Some(self.ip.to_string()),
            user_agent: Some(self.user_agent.clone()).filter(|ua| !ua.is_empty()),
            request_id: Some(self.request_id.clone()),
        }
    }
}

/// Everything the use cases need, built once at start.
pub struct Services {
    /// Read through [`Services::config`]; a reload swaps it.
    live_config: LiveConfig,
    pub store: Arc<Store>,
    pub passwords: PasswordHasher,
    pub keys: KeyRing,
    pub limiter: LoginLimiter,
    pub activity: SessionActivity,
    pub pat_activity: pats::PatActivity,
    /// Seals TOTP seeds; derived from the server secret file, never stored.
    pub mfa_key: Arc<crate::crypto::sealed::SealingKey>,
    /// Signs approval links; derived from the server secret.
    pub link_key: crate::crypto::signed_link::LinkKey,
    /// Keys the browser session cookie and its CSRF token; from the server secret.
    pub cookie_key: crate::crypto::signed_link::LinkKey,
    /// `None` when `server.public_url` cannot be a relying party (an IP
    /// address); rebuilt when a reload changes `mfa.issuer`, its name.
    webauthn: Swappable<Option<Arc<webauthn_rs::Webauthn>>>,
    /// Passkey sign-ins between their options and their answer.
    pub pending_passkey_sign_ins: passkey_assertions::PendingPasskeySignIns,
    /// One reload at a time.
    reloading: std::sync::Mutex<()>,
    /// Posts events to `[[webhooks]]` from a background worker.
    pub webhooks: webhooks::Webhooks,
    /// Sends recovery and verification mail through `[smtp]`, off the
    /// request path.
    pub mailer: mail::Mailer,
    /// Access tokens whose signature and claims already checked out.
    pub verified_tokens: tokens::VerifiedTokens,
    /// Apps' access tokens that verified (userinfo, introspection).
    pub verified_client_tokens: tokens::VerifiedTokens<client_tokens::ClientAccessClaims>,
    /// Seals upstream providers' client secrets and Apple keys.
    pub provider_key: Arc<crate::crypto::sealed::SealingKey>,
    /// Outbound calls to upstream providers, with their caches.
    pub upstream: upstream::Upstream,
    /// Social sign-ins on their way to a provider and back.
    pub social_flows: social::PendingFlows,
    /// Where every use case takes the time from (manual in tests).
    pub clock: Clock,
}

impl Services {
    /// The config as it is now (reloads replace it whole).
    pub fn config(&self) -> Arc<Config> {
        self.live_config.get()
    }

    /// Builds the services; creates the first signing key if there is none.
    pub async fn build(
        config: Arc<Config>,
        store: Arc<Store>,
        server_secret: &[u8],
        clock: Clock,
    ) -> anyhow::Result<Services> {
        let params = Argon2Params {
            memory_kib: config.passwords.memory_kib,
            iterations: config.passwords.iterations,
            parallelism: config.passwords.parallelism,
        };
        let concurrency = config.hash_concurrency();
        let passwords =
            tokio::task::spawn_blocking(move || PasswordHasher::new(params, concurrency)).await??;
        let keys = KeyRing::load_or_create(
            &store,
            &config,
            Arc::new(keys::sealing_key(server_secret)),
            clock.clone(),
        )
        .await?;
        let webauthn = match webauthn::relying_party(&config) {
            Ok(relying_party) => Some(Arc::new(relying_party)),
            Err(why) => {
                tracing::warn!("WebAuthn is off: {why}; set webauthn.rp_id and server.public_url to a domain name");
                None
            }
        };
        let webhooks =
            webhooks::Webhooks::start(config.webhooks.clone(), store.clone(), clock.clone())?;
        let public_host = url::Url::parse(&config.server.public_url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".to_owned());
        let mailer = mail::Mailer::start(&config.smtp, &public_host, store.clone(), clock.clone())?;
        let limiter = LoginLimiter::new(&config.limits);
        if let Some(counts) = store.shared_counts() {
            limiter.share_with(counts);
        }
        Ok(Services {
            mailer,
            verified_tokens: tokens::VerifiedTokens::default(),
            verified_client_tokens: tokens::VerifiedTokens::default(),
            webhooks,
            webauthn: Swappable::new(webauthn),
            reloading: std::sync::Mutex::new(()),
            pending_passkey_sign_ins: passkey_assertions::PendingPasskeySignIns::default(),
            cookie_key: crate::crypto::signed_link::LinkKey::derive_for(
                server_secret,
                "authd/browser-session/v1",
            ),
            limiter,
            activity: SessionActivity::default(),
            pat_activity: pats::PatActivity::default(),
            mfa_key: Arc::new(totp::sealing_key(server_secret)),
            provider_key: Arc::new(providers::sealing_key(server_secret)),
            upstream: upstream::Upstream::new()?,
            social_flows: social::PendingFlows::default(),
            link_key: crate::crypto::signed_link::LinkKey::derive(server_secret),
            live_config: LiveConfig::new(config),
            store,
            passwords,
            keys,
            clock,
        })
    }

    /// Runs one housekeeping sweep through a whole table, a page of 1,000
    /// rows at a time (see `store::sweep`), on the blocking pool; returns how
    /// many rows it removed.
    pub async fn sweep(&self, sweep: Sweep) -> ServiceResult<usize> {
        let (store, now) = (self.store.clone(), self.clock.now());
        tokio::task::spawn_blocking(move || store.sweep(sweep, now, 1_000))
            .await
            .map_err(ServiceError::internal)?
            .map_err(ServiceError::from)
    }

    /// A few point reads on the request path (a session, a PAT and its
    /// user, a profile), run where the request is. On cached pages they take
    /// microseconds; the hop to the blocking pool and back cost more than
    /// the reads themselves (a context switch each way: `scripts/profile.sh`
    /// showed that hop as the largest cost of an authenticated GET). Scans
    /// and anything unbounded go through [`Services::store_read`].
    /// With PostgreSQL the reads are a round trip to the database, so the
    /// worker thread hands its other tasks on meanwhile (`block_in_place`).
    pub fn store_lookup<T>(
        &self,
        work: impl FnOnce(&ReadTxn) -> ServiceResult<T>,
    ) -> ServiceResult<T> {
        // redb's cached reads stay inline with no further question.
        if !self.store.is_postgres() {
            return self.store.read(work);
        }
        let on_worker_pool = tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
            runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        if on_worker_pool {
            return tokio::task::block_in_place(|| self.store.read(work));
        }
        self.store.read(work)
    }

    pub async fn store_read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&ReadTxn) -> ServiceResult<T> + Send + 'static,
    ) -> ServiceResult<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.read(work))
            .await
            .map_err(ServiceError::internal)?
    }

    pub async fn store_write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut WriteTxn) -> ServiceResult<T> + Send + 'static,
    ) -> ServiceResult<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.write(work))
            .await
            .map_err(ServiceError::internal)?
    }
}
