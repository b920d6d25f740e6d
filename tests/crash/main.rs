//! The crash harness (SPEC §2: "a `kill -9` at any moment loses nothing
//! that was reported"). It starts the real `authd` binary on a temp data
//! dir, drives a mixed write load from concurrent clients that write down
//! every answer they saw as success, kills the server with SIGKILL at
//! seeded random moments, restarts it on the same file and checks that
//! every acknowledged write is there and behaves, and that every write in
//! flight at the kill happened whole or not at all. Some kills land on
//! purpose during a signing-key rotation, a backup through the running
//! server, a schema migration at start and the housekeeping sweep at start.
//!
//! `AUTHD_CRASH_KILLS` (default 10; `just crash 100`), `AUTHD_CRASH_SEED`
//! (default: from the clock, printed) and `AUTHD_CRASH_CLIENTS` (default
//! 4). Exits non-zero if anything acknowledged was lost. Layout:
//! `server` (the process), `load` (the clients), `ledger` (what they saw),
//! `check` (after each restart), `fixtures` (the older-schema file and the
//! sweep's expired rows), `totp` (codes).

// A test program: it reads the wall clock as any client would (TOTP codes,
// the default seed) and stops on a broken precondition.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)]

mod check;
mod fixtures;
mod ledger;
mod load;
mod server;
#[path = "../shared/totp.rs"]
mod totp;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use check::CheckReport;
use ledger::Ledger;
use load::Target;
use server::{RunDir, Server};

/// What a kill interrupts besides the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KillDuring {
    Load,
    KeyRotation,
    Backup,
    MigrationAtStart,
    SweepAtStart,
}

const ROTATION: [KillDuring; 5] = [
    KillDuring::Load,
    KillDuring::KeyRotation,
    KillDuring::Backup,
    KillDuring::MigrationAtStart,
    KillDuring::SweepAtStart,
];

struct Settings {
    kills: usize,
    seed: u64,
    clients: usize,
}

fn settings() -> Settings {
    let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let seed = number("AUTHD_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    Settings {
        kills: number("AUTHD_CRASH_KILLS").unwrap_or(10) as usize,
        seed,
        clients: number("AUTHD_CRASH_CLIENTS").unwrap_or(4).max(1) as usize,
    }
}

#[derive(Default)]
struct Totals {
    kills: usize,
    kills_by_kind: Vec<(KillDuring, usize)>,
    /// Where each start-up kill landed, from the killed process's log.
    start_up_kills: Vec<String>,
    backups: (usize, usize),
    report: CheckReport,
    failures: Vec<String>,
}

impl Totals {
    fn count_kill(&mut self, during: KillDuring) {
        self.kills += 1;
        match self.kills_by_kind.iter_mut().find(|(k, _)| *k == during) {
            Some((_, n)) => *n += 1,
            None => self.kills_by_kind.push((during, 1)),
        }
    }

    fn add(&mut self, report: CheckReport) {
        self.report.writes_checked += report.writes_checked;
        self.report.records_checked += report.records_checked;
        self.report.in_flight_settled += report.in_flight_settled;
        self.report.lost.extend(report.lost);
    }
}

fn main() -> ExitCode {
    // `cargo test NAME` hands NAME to every test binary: run only when it
    // names this one (or nothing).
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| "crash".contains(f.as_str())) {
        return ExitCode::SUCCESS;
    }
    let settings = settings();
    println!(
        "crash: seed {} (rerun with AUTHD_CRASH_SEED={}), {} kills, {} clients, binary {}",
        settings.seed,
        settings.seed,
        settings.kills,
        settings.clients,
        server::AUTHD
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let totals = runtime.block_on(run(&settings));
    print_summary(&settings, &totals, started.elapsed());
    if totals.report.lost.is_empty() && totals.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_summary(settings: &Settings, totals: &Totals, elapsed: Duration) {
    for lost in &totals.report.lost {
        println!("crash: LOST {lost}");
    }
    for failure in &totals.failures {
        println!("crash: FAILED {failure}");
    }
    for landed in &totals.start_up_kills {
        println!("crash: start-up kill {landed}");
    }
    let kinds: Vec<String> = totals
        .kills_by_kind
        .iter()
        .map(|(kind, n)| format!("{n} during {kind:?}"))
        .collect();
    println!(
        "crash: seed {}: {} kills ({}), {} acknowledged writes checked ({} record checks), \
         {} unanswered writes settled whole, backups {} made / {} cut off cleanly, lost {}, \
         failures {}, {:.0} s",
        settings.seed,
        totals.kills,
        kinds.join(", "),
        totals.report.writes_checked,
        totals.report.records_checked,
        totals.report.in_flight_settled,
        totals.backups.0,
        totals.backups.1,
        totals.report.lost.len(),
        totals.failures.len(),
        elapsed.as_secs_f64()
    );
}

async fn run(settings: &Settings) -> Totals {
    let mut totals = Totals::default();
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = RunDir::create(dir.path());
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    let mut server = match Server::start(&run_dir, &[]).await {
        Ok(server) => server,
        Err(error) => {
            totals.failures.push(format!("first start: {error}"));
            return totals;
        }
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut target = Arc::new(Target {
        client: client.clone(),
        base: server.base.clone(),
        admin_token: run_dir.admin_token(),
        ledger: ledger.clone(),
    });
    let gated = target
        .operator(
            reqwest::Method::POST,
            "/v1/orgs",
            Some(json!({"slug": "gated", "name": "Gated", "registration": "approval"})),
        )
        .await;
    if !matches!(gated, Some((201, _))) {
        totals
            .failures
            .push(format!("creating the approval org: {gated:?}"));
        return totals;
    }

    let mut round = 0;
    while totals.kills < settings.kills {
        round += 1;
        let during = ROTATION[(round - 1) % ROTATION.len()];
        let start_up = server.time_to_listen;
        let logs = load_then_kill(
            &target,
            server,
            &run_dir,
            settings,
            round,
            during,
            &mut rng,
            &mut totals,
        )
        .await;
        totals.count_kill(during);
        check_log(&logs, &mut totals, "the killed server");

        match during {
            KillDuring::MigrationAtStart if totals.kills < settings.kills => {
                fixtures::downgrade_to_v5(&run_dir.database());
                let landed = kill_during_start(&run_dir, &mut rng, start_up).await;
                totals.count_kill(during);
                totals.start_up_kills.push(format!("(migration): {landed}"));
            }
            KillDuring::SweepAtStart if totals.kills < settings.kills => {
                let made = fixtures::expired_sessions(&run_dir, &client).await;
                if let Err(error) = made {
                    totals.failures.push(format!("sweep fixture: {error}"));
                } else {
                    let landed = kill_during_start(&run_dir, &mut rng, start_up).await;
                    totals.count_kill(during);
                    totals.start_up_kills.push(format!("(sweep): {landed}"));
                }
            }
            _ => {}
        }

        server = match Server::start(&run_dir, &[]).await {
            Ok(server) => server,
            Err(error) => {
                totals
                    .failures
                    .push(format!("restart after kill {}: {error}", totals.kills));
                return totals;
            }
        };
        if during == KillDuring::MigrationAtStart {
            let version = server::log_field(&server.log_lines(), "database open", "schema_version");
            if version != Some(json!(authd::store::CURRENT_SCHEMA_VERSION)) {
                totals
                    .failures
                    .push(format!("after a migration kill the schema is {version:?}"));
            }
        }
        leftovers(&run_dir, &mut totals);
        target = Arc::new(Target {
            client: client.clone(),
            base: server.base.clone(),
            admin_token: run_dir.admin_token(),
            ledger: ledger.clone(),
        });
        let last = totals.kills >= settings.kills;
        let report = check::check(&target, &mut rng, last).await;
        println!(
            "crash: kill {:>3} during {:?}: {} writes newly checked, {} records, {} settled, {} lost",
            totals.kills,
            during,
            report.writes_checked,
            report.records_checked,
            report.in_flight_settled,
            report.lost.len()
        );
        totals.add(report);
    }
    let acknowledged = ledger.lock().expect("ledger").acknowledged_total;
    if acknowledged != totals.report.writes_checked {
        totals.failures.push(format!(
            "{acknowledged} writes acknowledged, {} checked",
            totals.report.writes_checked
        ));
    }
    let logs = server.stop();
    check_log(&logs, &mut totals, "the last server");
    totals
}

/// Runs the clients (and the round's extra: key rotations or backups) for
/// a seeded while, then SIGKILLs the server. Returns its log.
#[allow(clippy::too_many_arguments)]
async fn load_then_kill(
    target: &Arc<Target>,
    server: Server,
    run_dir: &RunDir,
    settings: &Settings,
    round: usize,
    during: KillDuring,
    rng: &mut StdRng,
    totals: &mut Totals,
) -> Vec<String> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for worker in 0..settings.clients {
        tasks.push(tokio::spawn(load::client(
            target.clone(),
            worker,
            round,
            settings.seed,
            stop.clone(),
        )));
    }
    if during == KillDuring::KeyRotation {
        tasks.push(tokio::spawn(load::key_rotations(
            target.clone(),
            stop.clone(),
        )));
    }
    let backups = (during == KillDuring::Backup).then(|| {
        let users_before = {
            let ledger = target.ledger.lock().expect("ledger");
            ledger.accounts.len()
        };
        let root = run_dir.root.clone();
        let config = run_dir.config.clone();
        let base = server.base.clone();
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            backups_until(&root, &config, &base, &stop, users_before)
        })
    });
    let load_ms = rng.gen_range(400..2500);
    tokio::time::sleep(Duration::from_millis(load_ms)).await;
    let logs = server.kill9();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    if let Some(backups) = backups {
        match backups.await {
            Ok(outcome) => {
                totals.backups.0 += outcome.made;
                totals.backups.1 += outcome.cut_off;
                totals.failures.extend(outcome.failures);
            }
            Err(error) => totals.failures.push(format!("backup task: {error}")),
        }
    }
    logs
}

struct BackupOutcome {
    made: usize,
    cut_off: usize,
    failures: Vec<String>,
}

/// `authd backup --server` again and again until the kill: each one either
/// writes a whole backup that opens (the CLI opens it and counts its
/// rows) holding at least the users acknowledged before the round, or
/// fails and leaves no file behind.
fn backups_until(
    root: &std::path::Path,
    config: &std::path::Path,
    base: &str,
    stop: &AtomicBool,
    users_before: usize,
) -> BackupOutcome {
    let mut outcome = BackupOutcome {
        made: 0,
        cut_off: 0,
        failures: Vec::new(),
    };
    let run = RunDir {
        root: root.to_path_buf(),
        config: config.to_path_buf(),
    };
    let mut n = 0;
    loop {
        n += 1;
        let out = root.join(format!("backup-{n}.redb"));
        let (ok, said) = server::authd_cli(
            &run,
            &["backup", "--server", base, out.to_str().expect("utf-8")],
        );
        if ok {
            outcome.made += 1;
            let users = said
                .split(", ")
                .find_map(|part| part.strip_suffix(" users"))
                .and_then(|n| n.trim().parse::<usize>().ok());
            if users.is_none_or(|users| users < users_before) || !out.is_file() {
                outcome.failures.push(format!(
                    "backup {n} holds fewer users than were acknowledged ({users_before}): {said}"
                ));
            }
        } else {
            outcome.cut_off += 1;
            if out.exists() || out.with_extension("partial").exists() {
                outcome
                    .failures
                    .push(format!("a failed backup left a file behind: {said}"));
            }
            if stop.load(Ordering::Relaxed) {
                return outcome;
            }
        }
        let _ = std::fs::remove_file(&out);
        if stop.load(Ordering::Relaxed) {
            return outcome;
        }
    }
}

/// Starts the server and SIGKILLs it a seeded random time into its
/// start-up (open, migration, first sweep): within the time the last start
/// took to listen, and a little after. Says where it landed.
async fn kill_during_start(run_dir: &RunDir, rng: &mut StdRng, last_start: Duration) -> String {
    let server = Server::spawn(run_dir, &[]);
    let window_ms = (last_start.as_millis() as u64 * 5 / 4).max(20);
    let delay = rng.gen_range(0..window_ms);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let logs = server.kill9();
    let seen = |message: &str| {
        logs.iter()
            .any(|line| server::log_message(line).as_deref() == Some(message))
    };
    let phase = if !seen("database open") {
        "before the database was open (migration or repair unfinished)"
    } else if !seen("authd listening") {
        "after the database opened, before listening"
    } else if !logs.iter().any(|line| line.contains("swept ")) {
        "while listening, before the first sweep logged"
    } else {
        "after the first sweep"
    };
    format!("{delay} ms after spawn: {phase}")
}

/// A panic anywhere in a server's log is a failure.
fn check_log(logs: &[String], totals: &mut Totals, whose: &str) {
    for line in logs {
        if line.contains("panicked") {
            totals.failures.push(format!("{whose} panicked: {line}"));
        }
    }
}

/// Nothing half-made stays in the data dir across a restart (a backup's
/// temporary copy, say).
fn leftovers(run_dir: &RunDir, totals: &mut Totals) {
    let Ok(entries) = std::fs::read_dir(run_dir.data_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".backup-") {
            totals.failures.push(format!(
                "a backup's temporary copy outlived the restart: {name}"
            ));
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
