//! A real PostgreSQL server for the tests, from the Debian package: `initdb`
//! into a temp dir and `postgres` on a loopback port, run as the `postgres`
//! system user when the tests run as root (PostgreSQL refuses root). One
//! server is shared by a test binary ([`shared`]), each test server getting
//! a database of its own; a test that stops PostgreSQL starts its own
//! ([`PostgresServer::start`]). The server dies with the test process.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The environment variable that runs the whole API suite on PostgreSQL.
pub const BACKEND_VARIABLE: &str = "AUTHD_TEST_STORAGE";

/// Whether this test run puts every test server on PostgreSQL.
pub fn suite_on_postgres() -> bool {
    std::env::var(BACKEND_VARIABLE).is_ok_and(|value| value == "postgres")
}

pub struct PostgresServer {
    _dir: tempfile::TempDir,
    data: PathBuf,
    pub port: u16,
    child: Mutex<Option<Child>>,
}

/// Whether PostgreSQL is installed. Without it a test says it was skipped
/// and passes, as the proxy and browser tests do; under `CI` it fails.
pub fn installed(test: &str) -> bool {
    let found = installed_bin_dir().is_some();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: PostgreSQL is not installed (apt-get install postgresql)"
        );
        eprintln!("{test}: skipped, PostgreSQL is not installed (apt-get install postgresql)");
    }
    found
}

fn installed_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|version| version.join("bin"))
        .filter(|bin| bin.join("postgres").exists())
}

fn bin_dir() -> PathBuf {
    installed_bin_dir()
        .expect("PostgreSQL is not installed (apt-get install postgresql; .ci/run installs it)")
}

/// The uid and gid of the `postgres` user when running as root.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let output = Command::new("id").args(["-u", "postgres"]).output().ok()?;
    let uid = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .ok()?;
    let output = Command::new("id").args(["-g", "postgres"]).output().ok()?;
    let gid = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .ok()?;
    Some((uid, gid))
}

fn as_postgres(command: &mut Command) -> &mut Command {
    if let Some((uid, gid)) = run_as() {
        command.uid(uid).gid(gid);
    }
    command
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

impl PostgresServer {
    /// A new cluster, started and accepting connections.
    pub fn start() -> PostgresServer {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let data = dir.path().join("pgdata");
        std::fs::create_dir(&data).expect("mkdir");
        if let Some((uid, gid)) = run_as() {
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).expect("chown");
        }
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let output = as_postgres(
            Command::new(bin_dir().join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "authd", "--auth=trust", "-E", "UTF8", "--no-sync"])
                .stdin(Stdio::null()),
        )
        .output()
        .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let server = PostgresServer {
            _dir: dir,
            data,
            port: free_port(),
            child: Mutex::new(None),
        };
        server.resume();
        server
    }

    /// Starts (again) on the same data directory and port.
    pub fn resume(&self) {
        let mut command = Command::new(bin_dir().join("postgres"));
        command
            .arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.data.display()))
            .args(["-c", "max_connections=400"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_postgres(&mut command);
        // SAFETY: prctl is async-signal-safe; it makes the server die with
        // the thread that started it (see `shared`), so no test run leaves
        // one behind.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().expect("start postgres");
        *self.child.lock().expect("child") = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err()
            || !self.accepts_queries()
        {
            assert!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn accepts_queries(&self) -> bool {
        Command::new(bin_dir().join("pg_isready"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "authd",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Stops the server (a fast shutdown: sessions are ended, nothing
    /// committed is lost) and waits for it.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().expect("child").take() {
            // SAFETY: kill with a pid we own.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGINT);
            }
            let _ = child.wait();
        }
    }

    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = Command::new(bin_dir().join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "authd",
            ])
            .args(["-d", database, "-v", "ON_ERROR_STOP=1", "-tA", "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// A new, empty database; returns its URL.
    pub fn new_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "authd_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://authd@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server this test binary shares, started on first use by a thread
/// that lives as long as the process (the server's parent-death signal is
/// tied to it).
pub fn shared() -> &'static PostgresServer {
    static SHARED: OnceLock<&'static PostgresServer> = OnceLock::new();
    SHARED.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let server: &'static PostgresServer = Box::leak(Box::new(PostgresServer::start()));
            sender.send(server).expect("send");
            loop {
                std::thread::park();
            }
        });
        receiver.recv().expect("postgres started")
    })
}
