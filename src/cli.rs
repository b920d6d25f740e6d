//! The command line: `authd [serve]`, `authd token [show|rotate]`,
//! `authd check-config`, `authd backup`, `authd restore`. Errors a person can fix say what to do.

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
    /// Write a consistent copy of the database to OUT (mode 0600): from the
    /// file, or through the running server (admin token) while one holds it.
    Backup {
        /// Where to write the backup; must not exist yet.
        out: PathBuf,
        /// The running server's address, if not `server.listen` (e.g.
        /// http://127.0.0.1:9090).
        #[arg(long, value_name = "URL")]
        server: Option<String>,
    },
    /// Put the backup IN in place of the database (the server must be
    /// stopped). Every page of the backup is verified first; a damaged
    /// database is restored over. The replaced file is kept beside it. Keep
    /// the data dir's server.secret: it unseals what the backup holds sealed.
    Restore {
        /// The backup file (from `authd backup` or `[backup]`).
        input: PathBuf,
    },
    /// Copy every table from the configured storage to another backend, and
    /// check each table's row count there. `--to postgres://…` copies into an
    /// empty PostgreSQL database; `--to FILE.redb` into a new redb file (from
    /// PostgreSQL, or from the file as a plain copy). Stop the server(s)
    /// first; then set `storage.backend` and start them on the copy.
    MigrateStorage {
        /// `postgres://user:password@host:port/database` or a new file's path.
        #[arg(long, value_name = "URL|FILE")]
        to: String,
    },
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
        Command::Backup { out, server } => backup(cli.config.as_deref(), &out, server.as_deref()),
        Command::Restore { input } => restore(cli.config.as_deref(), &input),
        Command::MigrateStorage { to } => migrate_storage(cli.config.as_deref(), &to),
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

/// Enough for every core to wait on the disk a few times over.
const MAX_BLOCKING_THREADS: usize = 32;

fn serve(explicit: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, source) = load(explicit)?;
    let log_level = telemetry::init(&config.log);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), config = %source, "starting authd");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // Blocking-pool threads (hashing, store reads) that sat idle this
        // long exit and give their stacks back, instead of after tokio's
        // 10 s: an idle server holds only the threads it needs.
        .thread_keep_alive(std::time::Duration::from_secs(2))
        // At most this many blocking-pool threads (store reads, signing,
        // hashing within its own cap): a burst of requests queues for them
        // instead of growing the pool towards tokio's 512, each thread
        // with its own stack and allocator arena.
        .max_blocking_threads(MAX_BLOCKING_THREADS)
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

fn backup(explicit: Option<&Path>, out: &Path, server: Option<&str>) -> anyhow::Result<ExitCode> {
    let (config, source) = load(explicit)?;
    let report = crate::backup::backup(&config, out, server, &start_command(&source))?;
    let how = match report.through_server {
        Some(url) => format!("through the running server at {url}"),
        None if config.storage.backend == crate::config::StorageBackend::Postgres => {
            "from one snapshot of the PostgreSQL database".to_owned()
        }
        None => "from the database file (no server held it)".to_owned(),
    };
    let counts = report.info.counts;
    println!(
        "backup written to {} {how}: schema version {}, {} users, {} sessions, {} refresh tokens, {} PATs, {} audit events",
        out.display(),
        report.info.schema_version,
        counts.users,
        counts.sessions,
        counts.refresh_tokens,
        counts.personal_access_tokens,
        counts.audit_events,
    );
    println!(
        "keep {} with it: it unseals the TOTP seeds and signing keys the backup holds",
        config.storage.data_dir.join("server.secret").display()
    );
    Ok(ExitCode::SUCCESS)
}

fn restore(explicit: Option<&Path>, input: &Path) -> anyhow::Result<ExitCode> {
    let (config, source) = load(explicit)?;
    #[allow(clippy::disallowed_methods)] // A timestamp for the kept file's name.
    let now = crate::clock::Clock::system().now();
    let (info, previous) = crate::backup::restore(&config, input, now)?;
    println!(
        "restored {} into {} (schema version {}, {} users)",
        input.display(),
        config.database_path().display(),
        info.schema_version,
        info.counts.users,
    );
    if let Some(previous) = previous {
        println!("the database it replaced is kept as {}", previous.display());
    }
    if info.schema_version < crate::store::CURRENT_SCHEMA_VERSION {
        println!(
            "it is migrated from schema version {} at the next start",
            info.schema_version
        );
    }
    println!("start the server: {}", start_command(&source));
    Ok(ExitCode::SUCCESS)
}

fn migrate_storage(explicit: Option<&Path>, to: &str) -> anyhow::Result<ExitCode> {
    use crate::config::StorageBackend;
    let (config, _) = load(explicit)?;
    #[allow(clippy::disallowed_methods)] // Opening a store records its creation time.
    let now = crate::clock::Clock::system().now();
    let (store, from) = match config.storage.backend {
        StorageBackend::Redb => {
            let path = config.database_path();
            anyhow::ensure!(
                path.exists(),
                "there is no database file at {} to copy (storage.data_dir)",
                path.display()
            );
            let (store, _) = crate::store::Store::open(&path, 16 << 20, now)?;
            (store, path.display().to_string())
        }
        StorageBackend::Postgres => {
            let (store, _) = crate::store::Store::open_postgres(&config.storage.postgres_url, now)?;
            (store, crate::config::mask_url(&config.storage.postgres_url))
        }
    };
    let to_postgres = to.starts_with("postgres://") || to.starts_with("postgresql://");
    let shown_to = if to_postgres {
        crate::config::mask_url(to)
    } else {
        to.to_owned()
    };
    let copies = if to_postgres {
        anyhow::ensure!(
            config.storage.backend == StorageBackend::Redb,
            "--to postgres://… copies a redb file; storage.backend is already postgres"
        );
        store.copy_to_postgres(to)?
    } else {
        store.copy_to_file(Path::new(to))?
    };
    println!("copied {from} to {shown_to}:");
    let mut mismatched = Vec::new();
    for copy in &copies {
        println!(
            "  {:<24} {:>10} rows{}",
            copy.table,
            copy.copied_rows,
            if copy.matches() {
                String::new()
            } else {
                format!(" (the source had {})", copy.source_rows)
            }
        );
        if !copy.matches() {
            mismatched.push(copy.table);
        }
    }
    anyhow::ensure!(
        mismatched.is_empty(),
        "row counts differ in {}: do not use the copy",
        mismatched.join(", ")
    );
    println!("every table's row count matches");
    if to_postgres {
        println!(
            "next: set storage.backend = \"postgres\" and storage.postgres_url, copy the data dir's server.secret (and admin token) to every replica, and start them"
        );
    } else {
        println!("next: put the file at <storage.data_dir>/authd.redb and set storage.backend = \"redb\"");
    }
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
