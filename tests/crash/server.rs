//! One `authd` process of the crash run: the real binary on the run's data
//! dir, its log kept line by line, started until it answers `/healthz`, and
//! ended with SIGKILL (never a clean shutdown, except where a fixture needs
//! a closed file).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub const AUTHD: &str = env!("CARGO_BIN_EXE_authd");

/// The run's directory: the config and the data dir the server keeps
/// across every restart.
pub struct RunDir {
    pub root: PathBuf,
    pub config: PathBuf,
}

impl RunDir {
    pub fn create(root: &Path) -> RunDir {
        let config = root.join("config.toml");
        // Cheap hashing and limits no load here reaches: the run is about
        // the file, not about the defences.
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[storage]\ndata_dir = \"{}\"\n\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n\n\
             [passwords]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n\n\
             [limits]\nlogin_per_ip_per_min = 1000000\nlogin_per_account_per_min = 1000000\n\
             register_per_ip_per_min = 1000000\nlockout_threshold = 1000000\n",
            root.join("data").display()
        );
        std::fs::write(&config, text).expect("write config");
        RunDir {
            root: root.to_path_buf(),
            config,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn database(&self) -> PathBuf {
        self.data_dir().join("authd.redb")
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("admin.token"))
            .expect("admin token file")
            .trim()
            .to_owned()
    }
}

/// A running (or just started) server process.
pub struct Server {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    address: mpsc::Receiver<SocketAddr>,
    spawned_at: Instant,
    /// From spawn to listening (a start-up kill picks its moment in it).
    pub time_to_listen: Duration,
    pub base: String,
}

impl Server {
    /// Starts the binary without waiting for anything (a kill during
    /// start-up needs the process before it listens).
    pub fn spawn(run: &RunDir, env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(AUTHD);
        command
            .arg("--config")
            .arg(&run.config)
            .env_remove("AUTHD_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn authd");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (sender, address) = mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().expect("stderr")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().expect("stdout")),
        ] {
            let logs = logs.clone();
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Some(address) = listening_address(&line) {
                        let _ = sender.send(address);
                    }
                    logs.lock().expect("logs").push(line);
                }
            });
        }
        Server {
            child,
            logs,
            address,
            spawned_at: Instant::now(),
            time_to_listen: Duration::ZERO,
            base: String::new(),
        }
    }

    /// Starts the binary and waits until `/healthz` answers 200; an exit or
    /// a minute of silence is an error with the log.
    pub async fn start(run: &RunDir, env: &[(&str, &str)]) -> Result<Server, String> {
        let mut server = Server::spawn(run, env);
        server.wait_ready().await?;
        Ok(server)
    }

    pub async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let address = loop {
            if let Ok(address) = self.address.try_recv() {
                break address;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("authd exited ({status}):\n{}", self.log_text()));
            }
            if Instant::now() > deadline {
                return Err(format!("authd did not listen:\n{}", self.log_text()));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        self.time_to_listen = self.spawned_at.elapsed();
        self.base = format!("http://{address}");
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            let healthz = client.get(format!("{}/healthz", self.base)).send().await;
            if healthz.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(format!(
            "authd did not answer /healthz:\n{}",
            self.log_text()
        ))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().expect("logs").clone()
    }

    pub fn log_text(&self) -> String {
        self.log_lines().join("\n")
    }

    /// SIGKILL, then wait for the process; its log.
    pub fn kill9(mut self) -> Vec<String> {
        // SAFETY: a plain kill(2) of our own child, which has not been
        // reaped yet (so its pid is still ours).
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGKILL);
        }
        let _ = self.child.wait();
        // The reader threads see EOF once the process is gone.
        std::thread::sleep(Duration::from_millis(20));
        self.log_lines()
    }

    /// SIGTERM and wait: a closed file, for fixtures that open it directly.
    pub fn stop(mut self) -> Vec<String> {
        // SAFETY: as in `kill9`.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(20));
        self.log_lines()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn log_message(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(value.get("fields")?.get("message")?.as_str()?.to_owned())
}

/// A field of the log line whose message is `message`.
pub fn log_field(lines: &[String], message: &str, field: &str) -> Option<serde_json::Value> {
    lines.iter().find_map(|line| {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        let fields = value.get("fields")?;
        (fields.get("message")?.as_str()? == message).then(|| fields.get(field).cloned())?
    })
}

fn listening_address(line: &str) -> Option<SocketAddr> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "authd listening" {
        return None;
    }
    fields.get("address")?.as_str()?.parse().ok()
}

/// `authd --config CONFIG ARGS…`: whether it succeeded and what it said.
pub fn authd_cli(run: &RunDir, args: &[&str]) -> (bool, String) {
    let output = Command::new(AUTHD)
        .arg("--config")
        .arg(&run.config)
        .args(args)
        .env_remove("AUTHD_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run authd");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}
