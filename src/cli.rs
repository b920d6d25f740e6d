//! The command line: `authd [serve]`, `authd token [show|rotate]`,
//! `authd check-config`. Errors a person can fix say what to do.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::admin_token::{self, TokenSource};
use crate::app;
use crate::config::{self, Config, ConfigSource};
use crate::crypto;
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "authd",
    version,
    about = "A complete identity server in one binary: users, sessions, tokens, MFA and audit in one redb file.",
    after_help = "Config is read from --config, else $AUTHD_CONFIG, else ./config.toml, else built-in defaults.\nAny key can be overridden by the environment: AUTHD_<SECTION>__<KEY>, e.g. AUTHD_TOKENS__ACCESS_TTL=15m."
)]
pub struct Cli {
    /// Path to the config file (TOML).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve,
    /// Show or rotate the operator's admin bearer token.
    Token {
        #[command(subcommand)]
        action: Option<TokenAction>,
    },
    /// Validate the config and print the effective values (secrets masked).
    CheckConfig,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Print the admin token: $AUTHD_TOKEN if set, else the token file.
    Show,
    /// Generate a new token and write it to the token file (mode 0600). A
    /// running server picks it up within a second.
    Rotate {
        /// Do not ask for confirmation.
        #[arg(long)]
        force: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config.as_deref()),
        Command::Token { action } => match action.unwrap_or(TokenAction::Show) {
            TokenAction::Show => token_show(cli.config.as_deref()),
            TokenAction::Rotate { force } => token_rotate(cli.config.as_deref(), force),
        },
        Command::CheckConfig => check_config(cli.config.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(explicit: Option<&Path>) -> anyhow::Result<(Config, ConfigSource)> {
    let source = config::resolve_source(explicit)?;
    let config = Config::load(&source)?;
    Ok((config, source))
}

/// How the user starts the server with the config they are using, for hints.
fn start_command(source: &ConfigSource) -> String {
    match source {
        ConfigSource::File(path) => format!("authd --config {}", path.display()),
        ConfigSource::Defaults => "authd".to_owned(),
    }
}

fn serve(explicit: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, source) = load(explicit)?;
    let log_level = telemetry::init(&config.log);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), config = %source, "starting authd");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shutdown = app::shutdown_signal()?;
        let reloader = crate::live_config::Reloader::new(source, log_level);
        let application = app::Application::build(config, reloader).await?;
        application.run_until_stopped(shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn token_show(explicit: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, source) = load(explicit)?;
    let (token, _) = admin_token::current(&config.admin_token_path(), &start_command(&source))?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

fn token_rotate(explicit: Option<&Path>, force: bool) -> anyhow::Result<ExitCode> {
    let (config, _) = load(explicit)?;
    let path = config.admin_token_path();
    if !force
        && !confirm(&format!(
            "Rotate token and overwrite {}? [y/N]: ",
            path.display()
        ))?
    {
        eprintln!("aborted; the token was not changed");
        return Ok(ExitCode::FAILURE);
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        app::ensure_data_dir(parent)?;
    }
    let token = crypto::random::hex_token();
    admin_token::write_file(&path, &token)?;
    if std::env::var_os(admin_token::ENV_TOKEN).is_some() {
        eprintln!(
            "note: {} is set and takes precedence over the file; update it too",
            admin_token::ENV_TOKEN
        );
    }
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// Asks on stderr and reads one line; no terminal or an empty answer is "no".
fn confirm(question: &str) -> io::Result<bool> {
    let mut stderr = io::stderr();
    stderr.write_all(question.as_bytes())?;
    stderr.flush()?;
    let stdin = io::stdin();
    let mut answer = String::new();
    if stdin.lock().read_line(&mut answer)? == 0 {
        if !stdin.is_terminal() {
            eprintln!();
        }
        return Ok(false);
    }
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

fn check_config(explicit: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, source) = load(explicit)?;
    app::probe_data_dir(&config.storage.data_dir)?;
    println!("# effective configuration (from {source}, then AUTHD_* environment)");
    print!("{}", config.to_effective_toml());
    let token_line = match admin_token::current(&config.admin_token_path(), &start_command(&source))
    {
        Ok((_, TokenSource::Environment)) => "set by AUTHD_TOKEN (value hidden)".to_owned(),
        Ok((_, TokenSource::File(path))) => format!("{} (value hidden)", path.display()),
        Err(error) => error.to_string(),
    };
    println!("# admin token: {token_line}");
    for warning in config.warnings() {
        println!("# warning: {warning}");
    }
    println!("# config OK");
    Ok(ExitCode::SUCCESS)
}
