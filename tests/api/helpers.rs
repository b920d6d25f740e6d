//! The harness: [`TestServer::spawn`] starts the real binary with a temp
//! data dir and `listen = 127.0.0.1:0`, learns the port from its log, and
//! keeps every log line for assertions; [`TestServer::in_process`] runs the
//! same application in the test's process on a manual clock, for expiry
//! tests that move time instead of sleeping. Both are spoken to over HTTP.

use std::io::{BufRead, BufReader};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const AUTHD: &str = env!("CARGO_BIN_EXE_authd");

pub struct TestServer {
    child: Option<Child>,
    pub address: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    pub client: reqwest::Client,
    /// The server task of an in-process server (see [`TestServer::in_process`]).
    in_process: Option<tokio::task::JoinHandle<()>>,
}

/// Config every test server starts from; `extra` is appended, so it may add
/// whole sections (but not repeat the ones below).
/// An `extra` with its own `[server]` section must set `listen` itself.
fn base_config(data_dir: &Path, extra: &str) -> String {
    let server = if extra.contains("[server]") {
        ""
    } else {
        "[server]\nlisten = \"127.0.0.1:0\"\n\n"
    };
    // With AUTHD_TEST_STORAGE=postgres, every server gets a database of
    // its own on the shared PostgreSQL server.
    let postgres = if crate::pg_server::suite_on_postgres() {
        format!(
            "backend = \"postgres\"\npostgres_url = \"{}\"\n",
            crate::pg_server::shared().new_database()
        )
    } else {
        String::new()
    };
    format!(
        "{server}[storage]\ndata_dir = \"{}\"\n{postgres}\n[log]\nformat = \"json\"\nlevel = \"info\"\n\n{extra}\n",
        data_dir.display()
    )
}

/// Everything a server stored, as bytes to search for what must not be
/// there: its redb file, or with the PostgreSQL backend (the server's
/// config names the database) every stored value of its rows.
pub fn stored_bytes(data_dir: &Path) -> Vec<u8> {
    let config = data_dir
        .parent()
        .map(|dir| std::fs::read_to_string(dir.join("config.toml")).unwrap_or_default())
        .unwrap_or_default();
    let url = config
        .lines()
        .find_map(|line| line.strip_prefix("postgres_url = \""))
        .map(|rest| rest.trim_end_matches('"').to_owned());
    match url {
        Some(url) => {
            let output = Command::new("psql")
                .args([url.as_str(), "-At", "-c"])
                .arg("SELECT tbl, key, convert_from(value, 'UTF8') FROM authd_rows")
                .output()
                .expect("run psql");
            assert!(output.status.success(), "psql: {output:?}");
            output.stdout
        }
        None => std::fs::read(data_dir.join("authd.redb")).expect("database file"),
    }
}

/// True (and says so) when the suite runs on PostgreSQL: for the few tests
/// about the redb file itself.
pub fn redb_file_only(test: &str) -> bool {
    let on_postgres = crate::pg_server::suite_on_postgres();
    if on_postgres {
        eprintln!("{test}: about the redb file; skipped on PostgreSQL");
    }
    on_postgres
}

/// Cheap argon2 parameters so that tests exercising many logins stay fast;
/// the real defaults are covered by their own tests and the benchmarks.
pub const FAST_HASHING: &str = "[passwords]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n";

/// Limits high enough that tests which log in often never trip them.
pub const RELAXED_LIMITS: &str = "[limits]\nlogin_per_ip_per_min = 100000\nlogin_per_account_per_min = 100000\nregister_per_ip_per_min = 100000\n";

/// A password that satisfies the default policy.
pub const GOOD_PASSWORD: &str = "Correct-Horse-42";

impl TestServer {
    pub async fn spawn() -> TestServer {
        Self::spawn_with("").await
    }

    /// Fast hashing and relaxed limits: for tests about something else.
    pub async fn spawn_fast() -> TestServer {
        Self::spawn_with(&format!("{FAST_HASHING}\n{RELAXED_LIMITS}")).await
    }

    /// `POST /register` with a JSON body.
    pub async fn register(&self, body: serde_json::Value) -> reqwest::Response {
        self.post("/register")
            .json(&body)
            .send()
            .await
            .expect("register")
    }

    /// Registers `email` with [`GOOD_PASSWORD`] in the default org; panics unless 201.
    pub async fn register_ok(&self, email: &str) -> serde_json::Value {
        let response = self
            .register(serde_json::json!({"email": email, "password": GOOD_PASSWORD}))
            .await;
        assert_eq!(response.status(), 201, "register {email}");
        response.json().await.expect("json")
    }

    pub async fn login(&self, body: serde_json::Value) -> reqwest::Response {
        self.post("/login").json(&body).send().await.expect("login")
    }

    /// A control-plane session token for `email` with [`GOOD_PASSWORD`].
    pub async fn session_token(&self, email: &str) -> String {
        let response = self
            .post("/api/v1/auth/login")
            .json(&serde_json::json!({"email": email, "password": GOOD_PASSWORD}))
            .send()
            .await
            .expect("login");
        assert_eq!(response.status(), 200, "control-plane login {email}");
        let body: serde_json::Value = response.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_owned()
    }

    /// The status of `GET /api/account` with `bearer`: whether it still works.
    pub async fn account_status(&self, bearer: &str) -> reqwest::StatusCode {
        self.bearer(bearer).get("/api/account").await.status()
    }

    /// Rotates `token` at the token endpoint (`grant_type=refresh_token`).
    pub async fn refresh(&self, token: &str) -> reqwest::Response {
        self.post("/oauth/token")
            .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
            .send()
            .await
            .expect("refresh")
    }

    /// RFC 7662 introspection of any token (access, refresh, PAT) with the
    /// operator token; panics unless 200.
    pub async fn introspect(&self, token: &str) -> serde_json::Value {
        let response = self
            .operator(reqwest::Method::POST, "/oauth/introspect")
            .form(&[("token", token)])
            .send()
            .await
            .expect("introspect");
        assert_eq!(response.status(), 200);
        response.json().await.expect("json")
    }

    /// Logs in with [`GOOD_PASSWORD`]; panics unless 200; returns the token set.
    pub async fn login_ok(&self, email: &str) -> serde_json::Value {
        let response = self
            .login(serde_json::json!({"email": email, "password": GOOD_PASSWORD}))
            .await;
        assert_eq!(response.status(), 200, "login {email}");
        response.json().await.expect("json")
    }

    /// GET `path` with the admin token; the JSON body.
    pub async fn operator_get(&self, path: &str) -> serde_json::Value {
        self.operator(reqwest::Method::GET, path)
            .send()
            .await
            .expect("operator request")
            .json()
            .await
            .expect("json body")
    }

    /// GET `path` without credentials; the JSON body.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.get(path)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json body")
    }

    /// Operator request with a JSON body.
    pub async fn operator_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.operator(method, path)
            .json(&body)
            .send()
            .await
            .expect("operator request")
    }

    /// Audit events of one type (newest first).
    pub async fn audit_events(&self, query: &str) -> Vec<serde_json::Value> {
        let response = self
            .operator(reqwest::Method::GET, &format!("/v1/audit?{query}"))
            .send()
            .await
            .expect("audit");
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.expect("json");
        body["items"].as_array().expect("items").clone()
    }

    /// A server whose `public_url` is its own address, so that a relying
    /// party that checks the issuer (discovery, ID tokens) can talk to it.
    /// The port is chosen free just before the start.
    pub async fn spawn_as_issuer(extra_config: &str) -> TestServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        Self::spawn_with(&format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\n{extra_config}"
        ))
        .await
    }

    pub async fn spawn_with(extra_config: &str) -> TestServer {
        Self::spawn_customised(extra_config, &[], |_| {}).await
    }

    /// [`TestServer::spawn_with`], with environment variables for the server.
    pub async fn spawn_with_env(extra_config: &str, env: &[(&str, &str)]) -> TestServer {
        Self::spawn_customised(extra_config, env, |_| {}).await
    }

    /// [`TestServer::spawn_with`], with environment variables and a last say
    /// on the command (e.g. to start it under resource limits).
    pub async fn spawn_customised(
        extra_config: &str,
        env: &[(&str, &str)],
        customise: impl FnOnce(&mut Command),
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("config.toml");
        std::fs::write(
            &config_path,
            base_config(&dir.path().join("data"), extra_config),
        )
        .expect("write config");
        Self::start_customised(dir, config_path, env, customise).await
    }

    /// Starts the binary on an existing directory (to test restarts).
    pub async fn start(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        env: &[(&str, &str)],
    ) -> TestServer {
        Self::start_customised(dir, config_path, env, |_| {}).await
    }

    async fn start_customised(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        env: &[(&str, &str)],
        customise: impl FnOnce(&mut Command),
    ) -> TestServer {
        let mut command = Command::new(AUTHD);
        command
            .arg("--config")
            .arg(&config_path)
            .env_remove("AUTHD_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        customise(&mut command);
        let mut child = command.spawn().expect("spawn authd");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_sender, address_receiver) = mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().expect("stderr")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().expect("stdout")),
        ] {
            let logs = logs.clone();
            let address_sender = address_sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Some(address) = listening_address(&line) {
                        let _ = address_sender.send(address);
                    }
                    logs.lock().expect("logs").push(line);
                }
            });
        }
        let address = match address_receiver.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "authd did not start:\n{}",
                    logs.lock().expect("logs").join("\n")
                );
            }
        };
        TestServer {
            child: Some(child),
            address,
            dir,
            config_path,
            logs,
            client: reqwest::Client::new(),
            in_process: None,
        }
    }

    /// The same server in this process, on a manual clock: a test moves the
    /// time on (`clock.advance`) instead of sleeping through expiry. It has
    /// no log to read; everything else is as with [`TestServer::spawn_with`].
    pub async fn in_process(extra_config: &str) -> (TestServer, authd::clock::Clock) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("config.toml");
        std::fs::write(
            &config_path,
            base_config(&dir.path().join("data"), extra_config),
        )
        .expect("write config");
        let config =
            authd::config::Config::load(&authd::config::ConfigSource::File(config_path.clone()))
                .expect("config");
        let clock = authd::clock::Clock::manual(1_800_000_000);
        let app = authd::app::Application::build_with_clock(config, clock.clone())
            .await
            .expect("build");
        let address = app.local_addr().expect("address");
        let task = tokio::spawn(async move {
            app.run_until_stopped(std::future::pending())
                .await
                .expect("serve");
        });
        let server = TestServer {
            child: None,
            address,
            dir,
            config_path,
            logs: Arc::default(),
            client: reqwest::Client::new(),
            in_process: Some(task),
        };
        (server, clock)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// The server process's id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a spawned server").id()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("admin.token"))
            .expect("token file")
            .trim()
            .to_owned()
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path))
    }

    /// A request to the operator API with the admin token.
    pub fn operator(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(self.admin_token())
    }

    /// `authd` with this server's config, for CLI tests.
    pub fn cli(&self) -> Command {
        let mut command = Command::new(AUTHD);
        command
            .arg("--config")
            .arg(&self.config_path)
            .env_remove("AUTHD_TOKEN")
            .stdin(Stdio::null());
        command
    }

    pub fn logs(&self) -> String {
        self.logs.lock().expect("logs").join("\n")
    }

    /// Waits (at most 5 s) for a log line containing `needle`: the proof that
    /// a request was logged before a test looks for what must not be there.
    pub async fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.logs().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?} in:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM, then wait (at most 20 s) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        wait_with_timeout(&mut child, Duration::from_secs(20))
    }

    /// Stops the server and hands back its directory for a restart.
    pub fn stop(mut self) -> (tempfile::TempDir, PathBuf) {
        let status = self.terminate();
        assert!(status.success(), "clean exit: {status:?}\n{}", self.logs());
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        (dir, self.config_path.clone())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- authd log ---\n{}\n--- end of authd log ---",
                self.logs()
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(task) = self.in_process.take() {
            task.abort();
        }
    }
}

pub fn wait_with_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn listening_address(line: &str) -> Option<SocketAddr> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "authd listening" {
        return None;
    }
    fields.get("address")?.as_str()?.parse().ok()
}

/// `authd --config CONFIG ARGS…` (no `AUTHD_TOKEN`, no stdin): whether it
/// succeeded, and what it printed on stdout and stderr together.
pub fn authd_with(config: &Path, args: &[&str]) -> (bool, String) {
    let (status, stdout, stderr) = run(
        Command::new(AUTHD)
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("AUTHD_TOKEN")
            .stdin(Stdio::null()),
        None,
    );
    (status.success(), format!("{stdout}{stderr}"))
}

/// Runs a command to completion with `stdin` fed in, returning status, stdout
/// and stderr as text.
pub fn run(command: &mut Command, stdin: Option<&str>) -> (ExitStatus, String, String) {
    use std::io::Write;
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().expect("spawn");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let output = child.wait_with_output().expect("output");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `token` with one character in the middle of its signature changed (the
/// last characters of base64url can be padding bits, which would not count).
pub fn tamper_signature(token: &str) -> String {
    let signature_start = token.rfind('.').expect("a JWT") + 1;
    let middle = signature_start + (token.len() - signature_start) / 2;
    let mut bytes = token.as_bytes().to_vec();
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ascii")
}

pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[path = "../shared/totp.rs"]
mod totp;
pub use totp::{current_step, totp_at};

/// A client bound to one bearer credential and, optionally, an active org
/// (`X-Active-Org-Id`).
pub struct Bearer<'a> {
    server: &'a TestServer,
    token: String,
    org: Option<String>,
}

impl TestServer {
    pub fn bearer(&self, token: &str) -> Bearer<'_> {
        Bearer {
            server: self,
            token: token.to_owned(),
            org: None,
        }
    }
}

impl Bearer<'_> {
    pub fn in_org(mut self, org: &str) -> Self {
        self.org = Some(org.to_owned());
        self
    }

    /// `method path`, with a JSON body if given.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut request = self
            .server
            .client
            .request(method, self.server.url(path))
            .bearer_auth(&self.token);
        if let Some(org) = &self.org {
            request = request.header("X-Active-Org-Id", org);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
}

/// A request with a bearer `token`, optionally in `org` and with a JSON body.
pub async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
    org: Option<&str>,
    body: Option<serde_json::Value>,
) -> reqwest::Response {
    let bearer = server.bearer(token);
    match org {
        Some(org) => bearer.in_org(org),
        None => bearer,
    }
    .send(method, path, body)
    .await
}

/// Asserts that `response` is the error `code` with `status`; its body.
pub async fn assert_error(
    response: reqwest::Response,
    status: reqwest::StatusCode,
    code: &str,
) -> serde_json::Value {
    let actual = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    assert_eq!(
        (actual, body["error"].as_str().unwrap_or_default()),
        (status, code),
        "{body}"
    );
    body
}

/// Whether python3 can import `modules` (installed with `pip install
/// package`); outside CI their absence skips (and says so), under CI it fails.
pub fn python_has(modules: &str, package: &str) -> bool {
    let available = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install {package}"
        );
        eprintln!("skipped: python3 without {package} (pip install {package})");
    }
    available
}

/// Whether python3 with PyJWT is here for the example verifier.
pub fn pyjwt_available() -> bool {
    python_has("jwt, cryptography", "pyjwt[crypto]")
}

// The web UI's cookie session, as a browser holds it.
use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The browser session of one sign-in: the two cookies as a `Cookie` header,
/// and the CSRF token the page's script would read.
pub struct BrowserSession {
    pub cookie_header: String,
    pub csrf: String,
    pub set_cookies: Vec<String>,
}

pub fn cookies_of(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}

pub fn cookie_value<'a>(set_cookies: &'a [String], name: &str) -> &'a str {
    set_cookies
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|rest| rest.split(';').next())
        .expect("cookie set")
}

pub async fn browser_login(server: &TestServer, email: &str) -> BrowserSession {
    let response = server
        .post("/ui/api/login")
        .json(&serde_json::json!({"email": email, "password": GOOD_PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookies = cookies_of(response.headers());
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["profile"]["email"], email);
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
    BrowserSession::from_set_cookies(set_cookies)
}

/// Enrolls TOTP for `email` over the account API (signing in with the
/// password); returns the secret. The current step's code is spent.
pub async fn enroll_totp(server: &TestServer, email: &str) -> String {
    let token = server.session_token(email).await;
    let enrollment: Value = server
        .bearer(&token)
        .post("/api/account/mfa/enroll", serde_json::json!({}))
        .await
        .json()
        .await
        .expect("json");
    let secret = enrollment["secret"].as_str().expect("secret").to_owned();
    let verified = server
        .bearer(&token)
        .post(
            "/api/account/mfa/verify",
            serde_json::json!({"code": totp_at(&secret, current_step())}),
        )
        .await;
    assert_eq!(verified.status(), StatusCode::OK);
    secret
}

/// [`browser_login`] for an account with TOTP: the password, then the MFA
/// step with the next step's code (enrolling spent the current one).
pub async fn browser_login_with_totp(
    server: &TestServer,
    email: &str,
    secret: &str,
) -> BrowserSession {
    let step: Value = server
        .post("/ui/api/login")
        .json(&serde_json::json!({"email": email, "password": GOOD_PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let mfa_token = step["mfa_token"].as_str().expect("an MFA step");
    let response = server
        .post("/ui/api/mfa")
        .json(&serde_json::json!({
            "mfa_token": mfa_token,
            "code": totp_at(secret, current_step() + 1),
        }))
        .send()
        .await
        .expect("mfa");
    assert_eq!(response.status(), StatusCode::OK);
    BrowserSession::from_set_cookies(cookies_of(response.headers()))
}

impl BrowserSession {
    /// The session the UI's sign-in answer set: behind https the cookies are
    /// `__Host-` ones, or `__Secure-` ones when forward-auth shares them with
    /// subdomains.
    fn from_set_cookies(set_cookies: Vec<String>) -> BrowserSession {
        let prefix = ["__Host-", "__Secure-"]
            .into_iter()
            .find(|prefix| set_cookies.iter().any(|c| c.starts_with(prefix)))
            .unwrap_or("");
        let session = cookie_value(&set_cookies, &format!("{prefix}authd_session")).to_owned();
        let csrf = cookie_value(&set_cookies, &format!("{prefix}authd_csrf")).to_owned();
        BrowserSession {
            cookie_header: format!("{prefix}authd_session={session}; {prefix}authd_csrf={csrf}"),
            csrf,
            set_cookies,
        }
    }
}

impl BrowserSession {
    /// A request the page's script makes to read: the cookie only.
    pub fn read(&self, server: &TestServer, path: &str) -> reqwest::RequestBuilder {
        with_cookie(server, Method::GET, path, self)
    }

    /// A request the page's script makes to change something: the cookie
    /// and the CSRF token.
    pub fn write(
        &self,
        server: &TestServer,
        method: Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        with_cookie(server, method, path, self).header("x-csrf-token", &self.csrf)
    }
}

pub fn with_cookie(
    server: &TestServer,
    method: Method,
    path: &str,
    session: &BrowserSession,
) -> reqwest::RequestBuilder {
    server
        .client
        .request(method, server.url(path))
        .header(COOKIE, &session.cookie_header)
}

// ---- reverse proxies in front of an app (forward-auth) ---------------------------

/// A proxy process, stopped when the test ends.
pub struct Proxy {
    pub child: Child,
    pub address: SocketAddr,
    /// The config and the proxy's own files, removed with it.
    pub _files: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Whether `binary` is installed; outside CI a missing one skips the test.
pub fn installed(binary: &str) -> bool {
    if std::path::Path::new(binary).is_file() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but {binary} is missing: apt-get install -y nginx caddy"
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "{binary} is missing: forward-auth proxy test skipped (apt-get install -y nginx caddy)"
    );
    false
}

impl Proxy {
    /// Runs `command` (its config in `files`) and waits until it listens
    /// on `port` of loopback.
    pub async fn start(mut command: Command, port: u16, files: tempfile::TempDir) -> Proxy {
        let child = command.spawn().expect("start the proxy");
        let mut proxy = Proxy {
            child,
            address: ([127, 0, 0, 1], port).into(),
            _files: files,
        };
        wait_until_listening(&mut proxy).await;
        proxy
    }
}

async fn wait_until_listening(proxy: &mut Proxy) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(proxy.address).await.is_ok() {
            return;
        }
        if let Ok(Some(status)) = proxy.child.try_wait() {
            panic!("the proxy exited: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the proxy did not listen on {}", proxy.address);
}

/// The app behind the proxy: answers every request with its headers, by
/// lower-case name; a header that came more than once has its values joined
/// with `, `, so a forged copy beside the proxy's own shows.
pub async fn start_echo_app() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let seen: serde_json::Map<String, Value> = headers
            .keys()
            .map(|name| {
                let values: Vec<&str> = headers
                    .get_all(name)
                    .iter()
                    .map(|value| value.to_str().unwrap_or("<binary>"))
                    .collect();
                (name.as_str().to_owned(), Value::String(values.join(", ")))
            })
            .collect();
        axum::Json(seen)
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// The README's config for `lang` (`nginx`, `caddyfile`) from its section
/// "Protect an app with forward-auth", with each `(from, to)` swapped in:
/// the proxy tests run what a reader copies.
pub fn readme_proxy_config(lang: &str, swaps: &[(&str, &str)]) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let section = readme
        .split_once("## Protect an app with forward-auth")
        .expect("the README's forward-auth section")
        .1;
    let mut config = section
        .split_once(&format!("```{lang}\n"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .unwrap_or_else(|| panic!("its {lang} block"))
        .0
        .to_owned();
    for (from, to) in swaps {
        assert!(
            config.contains(from),
            "the README's {lang} config no longer has {from:?}"
        );
        config = config.replace(from, to);
    }
    config
}

/// nginx with `auth_request` to authd at `authd` in front of `app`, with the
/// README's server block: a 401 becomes a 302 to the sign-in URL authd names
/// in its answer's `Location`, and the app gets the `Remote-*` headers from
/// authd's answer in place of anything the client sent. The block answers
/// every host here (no `server_name`), so a test picks the host it asks for.
pub async fn start_nginx(authd: &str, app: SocketAddr) -> Proxy {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let root = dir.path().display();
    let server = readme_proxy_config(
        "nginx",
        &[
            ("listen 443 ssl;", &format!("listen 127.0.0.1:{port};")),
            ("server_name files.home.example;", ""),
            ("http://127.0.0.1:9090", authd),
            ("http://127.0.0.1:3000", &format!("http://{app}")),
        ],
    );
    let config = format!(
        r#"
pid {root}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
{server}
}}
"#
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, config).expect("write nginx.conf");
    let mut command = Command::new("/usr/sbin/nginx");
    command
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&path)
        .arg("-g")
        .arg("daemon off; master_process off;")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    Proxy::start(command, port, dir).await
}

/// A real SMTP server on loopback for mail tests: Python's `aiosmtpd` run as
/// a subprocess, writing each message it receives as one JSON file
/// (`to`, `subject`, and the decoded text `body`) into a temp dir.
pub struct MailSink {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

const MAIL_SINK_SCRIPT: &str = r#"
import email, email.policy, json, os, sys, time
from aiosmtpd.controller import Controller
out, port = sys.argv[1], int(sys.argv[2])
class Sink:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        record = {"to": envelope.rcpt_tos, "from": envelope.mail_from, "subject": str(message["subject"]),
                  "body": message.get_content()}
        name = os.path.join(out, "%020d.json" % time.time_ns())
        with open(name + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(name + ".tmp", name)
        return "250 OK"
controller = Controller(Sink(), hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

impl MailSink {
    /// `None` (after saying why) without python3's aiosmtpd outside CI.
    pub fn start() -> Option<MailSink> {
        if !python_has("aiosmtpd", "aiosmtpd") {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut child = Command::new("python3")
            .args(["-c", MAIL_SINK_SCRIPT])
            .arg(dir.path())
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP sink");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut ready)
            .expect("sink output");
        assert_eq!(ready.trim(), "ready", "the SMTP sink did not start");
        Some(MailSink { child, dir, port })
    }

    /// The `[smtp]` section that sends to this sink.
    pub fn config(&self) -> String {
        format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nfrom = \"authd <authd@example.com>\"\nbackoff = \"1s\"\n",
            self.port
        )
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("read sink dir")
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|path| {
                serde_json::from_str(&std::fs::read_to_string(path).expect("read mail"))
                    .expect("mail json")
            })
            .collect()
    }

    /// The messages to `to`, waiting up to 20 s until there are `count`.
    pub async fn wait_for(&self, to: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mails: Vec<Value> = self
                .messages()
                .into_iter()
                .filter(|m| {
                    m["to"]
                        .as_array()
                        .is_some_and(|to_list| to_list.iter().any(|t| t == to))
                })
                .collect();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "{count} mails to {to} expected, {} arrived",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The newest mail to `to` (waiting for the `count`th) and the token of
    /// the link in it to `page` (`reset-password`, `verify-email`).
    pub async fn token_in_mail(&self, to: &str, count: usize, page: &str) -> String {
        let mails = self.wait_for(to, count).await;
        let body = mails[count - 1]["body"].as_str().expect("body").to_owned();
        link_token(&body, page)
    }
}

/// The token of the `<public_url>/<page>#token=…` link in `text`.
pub fn link_token(text: &str, page: &str) -> String {
    let marker = format!("/{page}#token=");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("no {page} link in {text:?}"))
        + marker.len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect()
}

impl Drop for MailSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
