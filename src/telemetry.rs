//! Log output: `pretty` for people, `json` for collectors, to stderr so that
//! stdout stays clean for commands like `authd token`.
//!
//! What is logged is decided where events are emitted; the invariant is that
//! no password, token, secret, code or Authorization header is ever a field.
//!
//! `log.level` is a list of `target=level` directives (`info`,
//! `authd=debug,tower_http=warn`), parsed by `Targets`: the same syntax as
//! an env filter without its span and field matchers, which would link a
//! regex engine (~1 MB) into the binary for a feature nobody configures here.

use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, Layer, Registry};

use crate::config::{LogConfig, LogFormat};

/// `log.level` parsed, or why not. A directive without `=` must be a level:
/// `Targets` would read `verbose` as a target name and log nothing else.
pub fn parse_level(level: &str) -> Result<Targets, String> {
    for directive in level.split(',').map(str::trim) {
        if directive.contains(['[', '{']) {
            return Err(format!(
                "{directive:?}: span and field filters are not supported, only target=level"
            ));
        }
        if !directive.contains('=') && LevelFilter::from_str(directive).is_err() {
            return Err(format!(
                "{directive:?} is neither a level (trace, debug, info, warn, error, off) nor target=level"
            ));
        }
    }
    Targets::from_str(level).map_err(|err| err.to_string())
}

/// Changes the running server's log filter (config reload).
#[derive(Clone)]
pub struct LogLevel {
    handle: Option<reload::Handle<Targets, Registry>>,
}

impl LogLevel {
    /// For a server whose log output is not ours to change (in-process tests).
    pub fn detached() -> Self {
        Self { handle: None }
    }

    /// Applies `level` (already checked by `Config::load`).
    pub fn set(&self, level: &str) -> Result<(), String> {
        let targets = parse_level(level)?;
        match &self.handle {
            Some(handle) => handle.reload(targets).map_err(|err| err.to_string()),
            None => Ok(()),
        }
    }
}

pub fn init(config: &LogConfig) -> LogLevel {
    // `Config::load` already checked the directives; fall back to `info` anyway.
    let targets = parse_level(&config.level)
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO));
    let (filter, handle) = reload::Layer::new(targets);
    let output = match config.format {
        LogFormat::Pretty => fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .is_ok();
    LogLevel {
        handle: installed.then_some(handle),
    }
}
