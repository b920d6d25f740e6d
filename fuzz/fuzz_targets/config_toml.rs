//! Config files through the real loader (`authd::config::Config::load`:
//! figment defaults ← the TOML file ← `AUTHD_*`, then validation), and what
//! start-up derives from a config that loaded: warnings, the connection cap,
//! the WebAuthn relying party, `check-config`'s effective TOML, the plan of
//! a reload. A file is either refused with an error or loads; nothing
//! panics.
//!
//! Input: the file's bytes.
#![no_main]

use std::sync::OnceLock;

use authd::config::{Config, ConfigSource};
use libfuzzer_sys::fuzz_target;

fn config_path() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
}

fuzz_target!(|data: &[u8]| {
    let path = config_path().join("config.toml");
    std::fs::write(&path, data).expect("write the config file");
    let Ok(config) = Config::load(&ConfigSource::File(path)) else {
        return;
    };
    let _ = config.warnings();
    let _ = config.max_connections();
    let _ = config.hash_concurrency();
    let _ = config.database_path();
    let _ = config.admin_token_path();
    let _ = authd::service::webauthn::relying_party(&config);
    let effective = config.to_effective_toml();
    assert!(!effective.is_empty());
    let _ = authd::live_config::ReloadPlan::new(&Config::default(), config);
});
