//! The cheap-to-clone handle every handler receives.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use crate::admin_token::AdminTokenVerifier;
use crate::config::Config;
use crate::service::Services;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    /// Checks operator bearer tokens; follows `authd token rotate`.
    pub admin_token: Arc<AdminTokenVerifier>,
    /// For `/v1/status` uptime.
    pub started_at: Instant,
    /// The use cases.
    pub services: Arc<Services>,
    /// Reads the config again (`POST /v1/config/reload`, SIGHUP).
    pub reloader: Arc<crate::live_config::Reloader>,
    /// Ends live streams (SSE) when the server shuts down.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// The config as it is now (a reload replaces it whole).
    pub fn config(&self) -> Arc<Config> {
        self.services.config()
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
