//! Reloading the config while running (SIGHUP, `POST /v1/config/reload`):
//! the re-read file's reloadable keys replace the running ones whole, and
//! the parts that copied a setting when they started (the login limiter,
//! the webhook worker, the WebAuthn relying party) take the new values.
//! Which keys reload, and what happens to the others: [`crate::live_config`].

use std::sync::Arc;

use crate::config::Config;
use crate::config::ConfigError;
use crate::live_config::{ReloadPlan, Reloader};

use super::{webauthn, Services};

/// What a reload did, for the operator and the log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadOutcome {
    /// Changed keys now in effect.
    pub applied: Vec<String>,
    /// Changed keys that keep their running value until a restart.
    pub restart_required: Vec<String>,
    /// `log.level` from now on (the log output is set by the caller).
    #[serde(skip)]
    pub log_level: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file (or environment) does not make a valid config.
    #[error("{0}")]
    Invalid(ConfigError),
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

impl Services {
    /// The relying party for WebAuthn now, if there is one.
    pub fn webauthn(&self) -> Option<Arc<webauthn_rs::Webauthn>> {
        self.webauthn.get()
    }

    /// Reads the config again through `reloader` and runs with it; a file
    /// that does not load leaves everything as it was.
    pub fn reload_from(&self, reloader: &Reloader) -> Result<ReloadOutcome, ReloadError> {
        let reread = reloader.reread().map_err(|error| {
            tracing::warn!(%error, "config not reloaded; the running config stays");
            ReloadError::Invalid(error)
        })?;
        let outcome = self.reload(reread).map_err(ReloadError::Internal)?;
        reloader.set_log_level(&outcome.log_level);
        Ok(outcome)
    }

    /// Runs with `reread` (a config loaded and validated again) from now on,
    /// as far as it may change without a restart.
    pub fn reload(&self, reread: Config) -> anyhow::Result<ReloadOutcome> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let running = self.config();
        let plan = ReloadPlan::new(&running, reread);
        let next = Arc::new(plan.next);
        if next.mfa.issuer != running.mfa.issuer {
            if let Ok(relying_party) = webauthn::relying_party(&next) {
                self.webauthn.set(Some(Arc::new(relying_party)));
            }
        }
        self.webhooks.replace(next.webhooks.clone())?;
        self.limiter.set_limits(&next.limits);
        self.live_config.set(next.clone());
        for warning in next.warnings() {
            tracing::warn!("{warning}");
        }
        tracing::info!(
            applied = ?plan.applied,
            restart_required = ?plan.restart_required,
            "config reloaded"
        );
        Ok(ReloadOutcome {
            applied: plan.applied,
            restart_required: plan.restart_required,
            log_level: next.log.level.clone(),
        })
    }
}
