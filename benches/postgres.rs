//! The PostgreSQL backend beside redb: logins/s (cheap argon2id), refresh
//! rotations/s (EdDSA) and PAT GET/s on one redb server, on one replica
//! over PostgreSQL, and on two replicas sharing it (the load split between
//! them), each the same 1,000 seeded users with a PAT each; and what bounds
//! the PostgreSQL figures, measured alone: one commit's round trip (a
//! one-row INSERT on one connection) and a read's. PostgreSQL is the Debian
//! package, started by the bench in a temp dir on a loopback port (see
//! tests/api/pg_server.rs). `cargo bench --bench postgres` (3 s per
//! scenario; `-- --quick` 0.5 s). Prints a table and writes
//! `target/bench/postgres.json`.

// A bench is a client: it reads the wall clock as one would.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)]

mod common;
#[path = "../tests/api/pg_server.rs"]
#[allow(dead_code)]
mod pg_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::seed::{self, PASSWORD};
use common::{
    closed_loop, cores, header, row, save, status_of, BenchServer, Launch, LoadResult,
    RequestFuture, CHEAP_ARGON2, NO_LIMITS,
};
use serde_json::{json, Value};

const USERS: u64 = 1_000;
const SIGNING: &str = "[tokens]\nsigning_alg = \"EdDSA\"\n";

/// The servers of one setup: requests go to them in turn.
struct Setup {
    name: &'static str,
    servers: Vec<BenchServer>,
}

impl Setup {
    fn bases(&self) -> Arc<Vec<String>> {
        Arc::new(self.servers.iter().map(|s| s.base.clone()).collect())
    }
}

fn extra() -> String {
    format!("{CHEAP_ARGON2}{NO_LIMITS}{SIGNING}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .expect("client")
}

fn random_user() -> u64 {
    rand::random::<u64>() % USERS
}

fn seed_postgres(url: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let (store, _) = authd::store::Store::open_postgres(url, now).expect("open postgres");
    let org = store
        .read(|txn| authd::store::Queries::org_by_slug(txn, "default"))
        .expect("read")
        .expect("default org")
        .id;
    let phc = seed::phc(1024, 1, 1);
    seed::users(&store, &org, 0..USERS, &phc, true);
}

fn postgres_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AUTHD_STORAGE__BACKEND", "postgres".to_owned()),
        ("AUTHD_STORAGE__POSTGRES_URL", url.to_owned()),
    ]
}

fn launch_on_postgres(url: &str, copy_secrets_from: Option<&BenchServer>) -> BenchServer {
    let env = postgres_env(url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    BenchServer::launch(
        &Launch {
            binary: None,
            env: &env,
        },
        &extra(),
        |database| {
            // Replicas share the server secret and the admin token.
            if let (Some(first), Some(data)) = (copy_secrets_from, database.parent()) {
                for file in ["server.secret", "admin.token"] {
                    std::fs::copy(first.dir.path().join("data").join(file), data.join(file))
                        .expect("copy");
                }
            }
        },
    )
}

async fn login(client: &reqwest::Client, base: &str) -> Result<(u16, Value), String> {
    let response = client
        .post(format!("{base}/login"))
        .json(&json!({"email": seed::email(random_user()), "password": PASSWORD}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

async fn measure(setup: &Setup, connections: usize, duration: Duration) -> [LoadResult; 3] {
    let bases = setup.bases();
    let http = client();
    let logins = {
        let (http, bases) = (http.clone(), bases.clone());
        closed_loop(connections, duration, 200, move |worker, _| {
            let (http, base) = (http.clone(), bases[worker % bases.len()].clone());
            Box::pin(async move { login(&http, &base).await.map(|(s, _)| s) }) as RequestFuture
        })
        .await
    };
    let mut chains = Vec::new();
    for worker in 0..connections {
        let (status, body) = login(&http, &bases[worker % bases.len()])
            .await
            .expect("login");
        assert_eq!(status, 200, "{body}");
        chains.push(tokio::sync::Mutex::new(
            body["refresh_token"].as_str().expect("refresh").to_owned(),
        ));
    }
    let chains = Arc::new(chains);
    let rotations = {
        let (http, bases) = (http.clone(), bases.clone());
        closed_loop(connections, duration, 200, move |worker, _| {
            let (http, base, chains) = (
                http.clone(),
                bases[worker % bases.len()].clone(),
                chains.clone(),
            );
            Box::pin(async move { common::rotate(&http, &base, &chains[worker]).await })
                as RequestFuture
        })
        .await
    };
    let pat_gets = {
        let (http, bases) = (http.clone(), bases.clone());
        closed_loop(connections, duration, 200, move |worker, _| {
            status_of(
                http.get(format!("{}/api/account", bases[worker % bases.len()]))
                    .bearer_auth(seed::pat_token(random_user())),
            )
        })
        .await
    };
    [logins, rotations, pat_gets]
}

/// One-row INSERT commits on one connection, and point reads, alone.
async fn postgres_alone(url: &str, duration: Duration) -> (f64, f64) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute("CREATE TABLE bench_commits (n bigint)")
        .await
        .expect("table");
    let started = Instant::now();
    let mut commits = 0_u64;
    while started.elapsed() < duration {
        client
            .execute(
                "INSERT INTO bench_commits VALUES ($1)",
                &[&(commits as i64)],
            )
            .await
            .expect("insert");
        commits += 1;
    }
    let commit_ms = started.elapsed().as_secs_f64() * 1000.0 / commits as f64;
    let started = Instant::now();
    let mut reads = 0_u64;
    while started.elapsed() < duration {
        client
            .query("SELECT n FROM bench_commits WHERE n = $1", &[&0_i64])
            .await
            .expect("read");
        reads += 1;
    }
    let read_ms = started.elapsed().as_secs_f64() * 1000.0 / reads as f64;
    (commit_ms, read_ms)
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let duration = Duration::from_millis(if quick { 500 } else { 3_000 });
    let connections = 8 * cores();
    if !pg_server::installed("the postgres bench") {
        return;
    }
    let postgres = pg_server::PostgresServer::start();

    let file = Setup {
        name: "redb file",
        servers: vec![BenchServer::start_seeded(&extra(), |path| {
            let (store, org) = seed::open(path);
            seed::users(&store, &org, 0..USERS, &seed::phc(1024, 1, 1), true);
        })],
    };
    let one_url = postgres.new_database();
    seed_postgres(&one_url);
    let one = Setup {
        name: "postgres, 1 replica",
        servers: vec![launch_on_postgres(&one_url, None)],
    };
    let two_url = postgres.new_database();
    seed_postgres(&two_url);
    let first = launch_on_postgres(&two_url, None);
    let second = launch_on_postgres(&two_url, Some(&first));
    let two = Setup {
        name: "postgres, 2 replicas",
        servers: vec![first, second],
    };

    header("PostgreSQL backend beside redb (1,000 users, cheap argon2id, EdDSA)");
    let mut figures = serde_json::Map::new();
    for setup in [&file, &one, &two] {
        let [logins, rotations, pat_gets] = measure(setup, connections, duration).await;
        for (what, result) in [
            ("logins/s", &logins),
            ("refresh rotations/s", &rotations),
            ("PAT GET/s", &pat_gets),
        ] {
            row(
                &format!("{}: {what}", setup.name),
                format!("{:.0}/s", result.per_second()),
                format!("p99 {:.1} ms, errors {}", result.p99_ms, result.errors),
            );
        }
        figures.insert(
            setup.name.to_owned(),
            json!({"logins": logins.json(), "refresh_rotations": rotations.json(), "pat_gets": pat_gets.json()}),
        );
    }
    let (commit_ms, read_ms) = postgres_alone(&postgres.url("postgres"), duration).await;
    row(
        "PostgreSQL alone: one commit (1-row INSERT)",
        format!("{commit_ms:.3} ms"),
        format!("{:.0} commits/s on one connection", 1000.0 / commit_ms),
    );
    row(
        "PostgreSQL alone: one point read",
        format!("{read_ms:.3} ms"),
        format!("{:.0} reads/s on one connection", 1000.0 / read_ms),
    );
    figures.insert(
        "postgres_alone".to_owned(),
        json!({"commit_ms": commit_ms, "read_ms": read_ms}),
    );
    save("postgres", &Value::Object(figures));
}
