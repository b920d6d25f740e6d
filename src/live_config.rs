//! The running configuration and what a reload may change in it.
//!
//! [`LiveConfig`] holds the config every use case reads; a reload (SIGHUP or
//! `POST /v1/config/reload`) swaps in a new one whole, so a request sees
//! either the old settings or the new, never a mix. [`ReloadPlan`] decides
//! what the new one is: the re-read file's values for the reloadable keys,
//! the running values for every other key (those are reported as needing a
//! restart, never half-applied: a new `server.listen` would need a new
//! socket, a new `storage.data_dir` another database).

use std::sync::Arc;

use serde_json::Value;

use crate::config::{Config, ConfigError, ConfigSource};
use crate::swappable::Swappable;
use crate::telemetry::LogLevel;

/// Keys (and whole sections) that take effect without a restart.
pub const RELOADABLE: &[&str] = &[
    "log.level",
    "limits",
    "mfa",
    "approvals",
    "webhooks",
    "forward_auth",
    "backup",
];

/// The config requests read; replaced whole by a reload.
pub type LiveConfig = Swappable<Arc<Config>>;

/// Where the running config came from, to read it again, and the log
/// filter to change when `log.level` does.
pub struct Reloader {
    source: ConfigSource,
    log_level: LogLevel,
}

impl Reloader {
    pub fn new(source: ConfigSource, log_level: LogLevel) -> Self {
        Self { source, log_level }
    }

    /// The config file and environment, read and validated again.
    pub fn reread(&self) -> Result<Config, ConfigError> {
        Config::load(&self.source)
    }

    pub fn set_log_level(&self, level: &str) {
        if let Err(why) = self.log_level.set(level) {
            tracing::warn!(%why, "log.level not applied");
        }
    }
}

/// What reloading `running` with `reread` does.
#[derive(Debug)]
pub struct ReloadPlan {
    /// The config to run with from now on.
    pub next: Config,
    /// Changed keys that take effect now (dotted names; a list such as
    /// `forward_auth.rules` or `webhooks` is one key).
    pub applied: Vec<String>,
    /// Changed keys that keep their running value until a restart.
    pub restart_required: Vec<String>,
}

impl ReloadPlan {
    pub fn new(running: &Config, reread: Config) -> ReloadPlan {
        let (mut applied, mut restart_required) = (Vec::new(), Vec::new());
        for key in changed_keys(running, &reread) {
            if is_reloadable(&key) {
                applied.push(key);
            } else {
                restart_required.push(key);
            }
        }
        let mut next = running.clone();
        next.log.level = reread.log.level;
        next.limits = reread.limits;
        next.mfa = reread.mfa;
        next.approvals = reread.approvals;
        next.webhooks = reread.webhooks;
        next.forward_auth = reread.forward_auth;
        next.backup = reread.backup;
        ReloadPlan {
            next,
            applied,
            restart_required,
        }
    }
}

fn is_reloadable(key: &str) -> bool {
    RELOADABLE.iter().any(|reloadable| {
        key == *reloadable
            || key
                .strip_prefix(reloadable)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// Dotted names of the leaves that differ (arrays count as leaves).
fn changed_keys(before: &Config, after: &Config) -> Vec<String> {
    let (Ok(before), Ok(after)) = (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Vec::new();
    };
    let mut changed = Vec::new();
    diff("", &before, &after, &mut changed);
    changed
}

fn diff(path: &str, before: &Value, after: &Value, changed: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(before), Value::Object(after)) => {
            let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                diff(
                    &child,
                    before.get(key).unwrap_or(&Value::Null),
                    after.get(key).unwrap_or(&Value::Null),
                    changed,
                );
            }
        }
        (before, after) if before != after => changed.push(path.to_owned()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, toml).expect("write");
        Config::load(&crate::config::ConfigSource::File(path)).expect("loads")
    }

    #[test]
    fn reloadable_keys_apply_and_the_others_wait_for_a_restart() {
        let running = config("[server]\nlisten = \"127.0.0.1:9090\"\n");
        let reread = config(
            "[server]\nlisten = \"127.0.0.1:9191\"\n\
             [limits]\nlogin_per_ip_per_min = 3\n\
             [log]\nlevel = \"debug\"\nformat = \"json\"\n\
             [[forward_auth.rules]]\nhosts = [\"a.example\"]\npolicy = \"bypass\"\n",
        );
        let plan = ReloadPlan::new(&running, reread);
        assert_eq!(
            plan.applied,
            [
                "forward_auth.rules",
                "limits.login_per_ip_per_min",
                "log.level"
            ]
        );
        assert_eq!(plan.restart_required, ["log.format", "server.listen"]);
        assert_eq!(plan.next.limits.login_per_ip_per_min, 3);
        assert_eq!(plan.next.log.level, "debug");
        assert_eq!(plan.next.forward_auth.rules.len(), 1);
        assert_eq!(plan.next.server.listen, running.server.listen);
        assert_eq!(plan.next.log.format, running.log.format);
    }

    #[test]
    fn an_unchanged_file_changes_nothing() {
        let running = config("[limits]\nlogin_per_ip_per_min = 3\n");
        let plan = ReloadPlan::new(&running, running.clone());
        assert!(plan.applied.is_empty() && plan.restart_required.is_empty());
        assert_eq!(plan.next, running);
    }

    #[test]
    fn a_prefix_is_a_section_not_a_spelling() {
        assert!(is_reloadable("limits.lockout_threshold"));
        assert!(is_reloadable("webhooks"));
        assert!(!is_reloadable("limitsx"));
        assert!(!is_reloadable("log.format"));
    }
}
