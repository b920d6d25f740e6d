//! A small W3C WebDriver client over reqwest, enough to drive chromedriver:
//! sessions, navigation, elements by CSS, keys, scripts, screenshots, the
//! WebAuthn virtual authenticator and Chrome's DevTools passthrough. Waiting is
//! always polling (50 ms steps) with a deadline; a timeout fails with what the
//! page showed at that moment and saves a screenshot of it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// The key W3C WebDriver uses for element references in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";

pub const POLL: Duration = Duration::from_millis(50);
pub const WAIT: Duration = Duration::from_secs(10);

/// An error answer of the remote end (`{"value": {"error", "message"}}`).
#[derive(Debug)]
pub struct WebDriverError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// Sends one HTTP request without an async runtime (for `Drop`): chromedriver
/// must close its browsers even when a test panics.
fn blocking_request(address: SocketAddr, method: &str, path: &str) {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(2)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return;
    }
    // Read the whole answer (chromedriver keeps the connection open, so
    // waiting for EOF would only end at the timeout).
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 4096];
    while let Ok(n @ 1..) = stream.read(&mut chunk) {
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if answer.len() >= end + 4 + length {
                return;
            }
        }
    }
}

/// A running `chromedriver`, shut down (with its browsers) on drop.
pub struct Chromedriver {
    child: Child,
    address: SocketAddr,
    http: reqwest::Client,
}

impl Chromedriver {
    pub async fn start(binary: &std::path::Path) -> Chromedriver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let driver = Chromedriver {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            http: reqwest::Client::new(),
        };
        let started = Instant::now();
        loop {
            let status = driver
                .http
                .get(format!("{}/status", driver.url()))
                .send()
                .await;
            if let Ok(response) = status {
                let body: Value = response.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(
                started.elapsed() < WAIT,
                "chromedriver did not become ready on port {port}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A new browser (its own profile: cookies and storage are not shared).
    pub async fn session(&self, label: &str, app_base: &str) -> Browser {
        self.session_with_args(label, app_base, &[]).await
    }

    /// [`Chromedriver::session`] with more command-line switches for Chromium
    /// (e.g. `--host-resolver-rules` to reach made-up host names on loopback).
    pub async fn session_with_args(
        &self,
        label: &str,
        app_base: &str,
        extra: &[String],
    ) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", profile.path().display()),
            "--window-size=1280,900".into(),
        ];
        args.extend_from_slice(extra);
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "webauthn:virtualAuthenticators": true,
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": args,
                },
            }}
        });
        let response = self
            .http
            .post(format!("{}/session", self.url()))
            .json(&capabilities)
            .send()
            .await
            .expect("new session");
        let body: Value = response.json().await.expect("session json");
        let id = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {body}"))
            .to_owned();
        let browser = Browser {
            http: self.http.clone(),
            driver: self.address,
            session: format!("{}/session/{id}", self.url()),
            id,
            label: label.to_owned(),
            app_base: app_base.to_owned(),
            _profile: profile,
        };
        browser.install_watchers().await;
        browser
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        blocking_request(self.address, "GET", "/shutdown");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs before any script of every document: records CSP violations, script
/// errors and unhandled rejections in `window.__e2eProblems`.
const WATCHERS: &str = r#"(() => {
  const note = (text) => { (window.__e2eProblems ||= []).push(text); };
  document.addEventListener('securitypolicyviolation', (e) =>
    note(`CSP ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile || '?'}:${e.lineNumber})`));
  window.addEventListener('error', (e) => note(`error: ${e.message} (${e.filename}:${e.lineno})`));
  window.addEventListener('unhandledrejection', (e) =>
    note(`unhandled rejection: ${e.reason && (e.reason.stack || e.reason.message) || e.reason}`));
})();"#;

/// One WebDriver session; deleted (the browser quits) on drop.
pub struct Browser {
    http: reqwest::Client,
    driver: SocketAddr,
    session: String,
    id: String,
    pub label: String,
    app_base: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        blocking_request(self.driver, "DELETE", &format!("/session/{}", self.id));
    }
}

#[derive(Clone)]
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
    pub css: String,
}

impl Browser {
    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| WebDriverError {
            error: "transport".into(),
            message: e.to_string(),
        })?;
        let ok = response.status().is_success();
        let body: Value = response.json().await.map_err(|e| WebDriverError {
            error: "invalid json".into(),
            message: e.to_string(),
        })?;
        let value = body.get("value").cloned().unwrap_or(Value::Null);
        if ok {
            Ok(value)
        } else {
            Err(WebDriverError {
                error: value["error"].as_str().unwrap_or("unknown").to_owned(),
                message: value["message"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            })
        }
    }

    async fn get(&self, path: &str) -> Value {
        self.command(reqwest::Method::GET, path, None)
            .await
            .unwrap_or_else(|e| panic!("[{}] GET {path}: {e}", self.label))
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body))
            .await
            .unwrap_or_else(|e| panic!("[{}] POST {path}: {e}", self.label))
    }

    // ---- navigation -------------------------------------------------------

    /// Loads `path` of the app. Problems the page had so far fail first (a
    /// new document forgets them).
    pub async fn goto(&self, path: &str) {
        self.assert_no_problems().await;
        self.post("/url", json!({"url": format!("{}{path}", self.app_base)}))
            .await;
    }

    /// Loads an absolute URL (another site: an app that signs in through
    /// authd).
    pub async fn open(&self, url: &str) {
        self.assert_no_problems().await;
        self.post("/url", json!({ "url": url })).await;
    }

    pub async fn refresh(&self) {
        self.assert_no_problems().await;
        self.post("/refresh", json!({})).await;
    }

    pub async fn current_url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn path(&self) -> String {
        self.script("return location.pathname", json!([]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    // ---- scripts ----------------------------------------------------------

    /// `execute/sync`: `script` is a function body; `arguments[i]` are `args`.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
            .await
    }

    /// A Chrome DevTools Protocol command through chromedriver.
    pub async fn cdp(&self, command: &str, params: Value) -> Value {
        self.post(
            "/goog/cdp/execute",
            json!({"cmd": command, "params": params}),
        )
        .await
    }

    async fn install_watchers(&self) {
        self.cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": WATCHERS}),
        )
        .await;
    }

    /// What the watchers recorded on the current document.
    pub async fn problems(&self) -> Vec<String> {
        let value = self
            .command(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({"script": "return window.__e2eProblems || []", "args": []})),
            )
            .await
            .unwrap_or_default();
        value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// No CSP violation, script error or unhandled rejection on this page.
    pub async fn assert_no_problems(&self) {
        let problems = self.problems().await;
        if !problems.is_empty() {
            self.fail(&format!("the page had problems: {problems:#?}"))
                .await;
        }
    }

    // ---- elements ---------------------------------------------------------

    fn element_of<'b>(&'b self, value: &Value, css: &str) -> Option<Element<'b>> {
        value[ELEMENT_KEY].as_str().map(|id| Element {
            browser: self,
            id: id.to_owned(),
            css: css.to_owned(),
        })
    }

    /// The first element matching `css`, if any (no waiting).
    pub async fn find(&self, css: &str) -> Option<Element<'_>> {
        match self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
        {
            Ok(value) => self.element_of(&value, css),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("[{}] find {css}: {e}", self.label),
        }
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let value = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| self.element_of(v, css))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `css` that is rendered (not hidden), if any.
    async fn visible(&self, css: &str) -> Option<Element<'_>> {
        let value = self
            .script(
                "const e = document.querySelector(arguments[0]);\
                 return e && e.getClientRects().length > 0 ? e : null;",
                json!([css]),
            )
            .await;
        self.element_of(&value, css)
    }

    /// Waits (up to 10 s) until an element matching `css` is visible.
    pub async fn wait_for(&self, css: &str) -> Element<'_> {
        self.wait_for_within(css, WAIT).await
    }

    pub async fn wait_for_within(&self, css: &str, limit: Duration) -> Element<'_> {
        let started = Instant::now();
        loop {
            if let Some(element) = self.visible(css).await {
                return element;
            }
            if started.elapsed() > limit {
                self.fail(&format!("waited {limit:?} for `{css}`")).await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until nothing matches `css` (or nothing matching is visible).
    pub async fn wait_gone(&self, css: &str) {
        let started = Instant::now();
        while self.visible(css).await.is_some() {
            if started.elapsed() > WAIT {
                self.fail(&format!("waited {WAIT:?} for `{css}` to go away"))
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until `script` (a function body) returns something truthy.
    pub async fn wait_until(&self, what: &str, script: &str, args: Value) -> Value {
        let started = Instant::now();
        loop {
            let value = self.script(script, args.clone()).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if started.elapsed() > WAIT {
                self.fail(&format!("waited {WAIT:?} for {what}")).await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the page named `page` (`body[data-page]`) is showing.
    pub async fn wait_page(&self, page: &str) {
        self.wait_for(&format!("body[data-page=\"{page}\"]")).await;
    }

    /// Waits until a visible element matching `css` has exactly this text.
    pub async fn wait_text(&self, css: &str, text: &str) -> Element<'_> {
        let started = Instant::now();
        loop {
            if let Some(element) = self.visible(css).await {
                if element.try_text().await.as_deref() == Some(text) {
                    return element;
                }
            }
            if started.elapsed() > WAIT {
                let seen = match self.visible(css).await {
                    Some(element) => element.try_text().await.unwrap_or_default(),
                    None => "(nothing visible)".into(),
                };
                self.fail(&format!(
                    "waited {WAIT:?} for `{css}` to read {text:?}; it reads {seen:?}"
                ))
                .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for `css`, then clicks it, retrying while something covers it
    /// or it went stale (the page re-rendered).
    pub async fn click(&self, css: &str) {
        let started = Instant::now();
        loop {
            let element = self.wait_for(css).await;
            match element.try_click().await {
                Ok(()) => return,
                Err(e)
                    if started.elapsed() < WAIT
                        && [
                            "element click intercepted",
                            "stale element reference",
                            "element not interactable",
                        ]
                        .contains(&e.error.as_str()) =>
                {
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => self.fail(&format!("click `{css}`: {e}")).await,
            }
        }
    }

    /// Waits for the input `css`, empties it and types `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.wait_for(css).await;
        element.clear().await;
        element.send_keys(text).await;
    }

    /// The visible text of the first visible `css`.
    pub async fn text(&self, css: &str) -> String {
        self.wait_for(css).await.text().await
    }

    /// Key presses sent to whatever has the focus (the keyboard alone).
    pub async fn press_keys(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.post(
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .await;
    }

    /// The id of the focused element ("" for none).
    pub async fn focused_id(&self) -> String {
        self.script(
            "return document.activeElement ? document.activeElement.id : ''",
            json!([]),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    // ---- window, screenshots, WebAuthn --------------------------------------

    pub async fn window_rect(&self) -> Value {
        self.get("/window/rect").await
    }

    /// The viewport as a PNG (WebDriver's own screenshot).
    pub async fn screenshot(&self) -> Result<Vec<u8>, WebDriverError> {
        let data = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await?;
        base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .map_err(|e| WebDriverError {
                error: "invalid base64".into(),
                message: e.to_string(),
            })
    }

    /// The whole page (not only the viewport) as a PNG, through DevTools.
    pub async fn full_page_screenshot(&self) -> Vec<u8> {
        // From the top: a sticky top bar would otherwise be drawn where the
        // page happens to be scrolled to.
        let size = self
            .script(
                "const y = scrollY; scrollTo(0, 0);\
                 return [document.documentElement.clientWidth,\
                 Math.max(document.documentElement.scrollHeight, innerHeight), y]",
                json!([]),
            )
            .await;
        let width = size[0].as_f64().unwrap_or(1280.0);
        let height = size[1].as_f64().unwrap_or(900.0).min(8000.0);
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
                }),
            )
            .await;
        self.script("scrollTo(0, arguments[0])", json!([size[2]]))
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .expect("base64 png")
    }

    /// Adds a CTAP2 USB virtual authenticator that has a resident key store
    /// and verifies the user; returns its id.
    pub async fn add_virtual_authenticator(&self) -> String {
        self.post(
            "/webauthn/authenticator",
            json!({
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": true,
                "hasUserVerification": true,
                "isUserVerified": true,
            }),
        )
        .await
        .as_str()
        .expect("authenticator id")
        .to_owned()
    }

    // ---- failures -----------------------------------------------------------

    /// What the page shows now: URL, `data-page`, login step, messages.
    pub async fn describe(&self) -> String {
        let state = self
            .command(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({
                    "script": "const texts = (css) => [...document.querySelectorAll(css)]\
                        .filter((e) => e.getClientRects().length > 0)\
                        .map((e) => `${e.id ? '#' + e.id : e.tagName.toLowerCase()}: ${e.innerText.trim()}`)\
                        .filter((t) => !t.endsWith(': '));\
                      const step = document.getElementById('login-page');\
                      return {url: location.href, page: document.body.dataset.page || null,\
                        loginStep: step ? step.dataset.step : null, title: document.title,\
                        messages: texts('.msg, [role=alert], .banner'),\
                        dialogOpen: !!(document.getElementById('confirm-dialog') || {}).open,\
                        problems: window.__e2eProblems || []};",
                    "args": [],
                })),
            )
            .await;
        match state {
            Ok(state) => serde_json::to_string_pretty(&state).unwrap_or_default(),
            Err(e) => format!("(could not read the page: {e})"),
        }
    }

    /// Fails the test with the page's state and a screenshot of it.
    pub async fn fail(&self, what: &str) -> ! {
        let state = self.describe().await;
        let mut saved = String::new();
        if let Ok(png) = self.screenshot().await {
            let dir = crate::support::screenshot_dir().join("failures");
            let _ = std::fs::create_dir_all(&dir);
            let file: PathBuf = dir.join(format!(
                "{}-{}.png",
                self.label,
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or_default()
            ));
            if std::fs::write(&file, png).is_ok() {
                saved = format!("\nscreenshot: {}", file.display());
            }
        }
        panic!("[{}] {what}\npage: {state}{saved}", self.label);
    }
}

impl Element<'_> {
    async fn call(&self, method: reqwest::Method, what: &str, body: Option<Value>) -> Value {
        match self
            .browser
            .command(method, &format!("/element/{}{what}", self.id), body)
            .await
        {
            Ok(value) => value,
            Err(e) => {
                self.browser
                    .fail(&format!("`{}` {what}: {e}", self.css))
                    .await
            }
        }
    }

    async fn try_click(&self) -> Result<(), WebDriverError> {
        self.browser
            .command(
                reqwest::Method::POST,
                &format!("/element/{}/click", self.id),
                Some(json!({})),
            )
            .await
            .map(|_| ())
    }

    async fn try_text(&self) -> Option<String> {
        self.browser
            .command(
                reqwest::Method::GET,
                &format!("/element/{}/text", self.id),
                None,
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
    }

    pub async fn clear(&self) {
        self.call(reqwest::Method::POST, "/clear", Some(json!({})))
            .await;
    }

    pub async fn send_keys(&self, text: &str) {
        self.call(reqwest::Method::POST, "/value", Some(json!({"text": text})))
            .await;
    }

    /// The rendered text (`innerText` as WebDriver defines it).
    pub async fn text(&self) -> String {
        self.call(reqwest::Method::GET, "/text", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The content attribute `name`, if present.
    pub async fn attribute(&self, name: &str) -> Option<String> {
        self.call(reqwest::Method::GET, &format!("/attribute/{name}"), None)
            .await
            .as_str()
            .map(str::to_owned)
    }

    /// The DOM property `name` (e.g. `value`, `checked`).
    pub async fn property(&self, name: &str) -> Value {
        self.call(reqwest::Method::GET, &format!("/property/{name}"), None)
            .await
    }
}
