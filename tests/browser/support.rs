//! What every browser scenario needs: chromedriver (or a reason to skip), the
//! server, browsers, screenshots, TOTP codes computed here, and the steps that
//! recur (sign in, sign out).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    current_step, totp_at, TestServer, FAST_HASHING, GOOD_PASSWORD, RELAXED_LIMITS,
};
use crate::webdriver::{Browser, Chromedriver};

const CHROMIUM: &str = "/usr/bin/chromium";

/// `$CHROMEDRIVER`, else `/usr/bin/chromedriver` or the first `chromedriver`
/// on `PATH`, if it and Chromium exist.
fn chromedriver_binary() -> Option<PathBuf> {
    let driver = match std::env::var_os("CHROMEDRIVER") {
        Some(path) => PathBuf::from(path),
        None => std::iter::once(PathBuf::from("/usr/bin"))
            .chain(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            ))
            .map(|dir| dir.join("chromedriver"))
            .find(|path| path.is_file())?,
    };
    (driver.is_file() && std::path::Path::new(CHROMIUM).is_file()).then_some(driver)
}

/// One scenario's world: the real server (WebAuthn allowed on any port of
/// localhost) and a chromedriver for its browsers.
pub struct Env {
    pub server: TestServer,
    driver: Chromedriver,
    /// `http://localhost:<port>`: WebAuthn needs a domain, and the default
    /// `public_url` (http://localhost:9090) makes the RP id `localhost`.
    pub base: String,
}

impl Env {
    /// `None` (after saying why) when Chromium or chromedriver is missing and
    /// this is not CI; in CI a missing browser fails the test.
    pub async fn start() -> Option<Env> {
        Self::start_with("").await
    }

    /// [`Env::start`] with authd's `public_url` at the address it listens
    /// on (`http://localhost:<port>`), so the issuer an app discovers is the
    /// one it reaches.
    pub async fn start_as_issuer() -> Option<Env> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        Self::start_with(&format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://localhost:{port}\"\n\n"
        ))
        .await
    }

    /// [`Env::start`] with `server_section` (TOML) before the usual config.
    pub async fn start_with(server_section: &str) -> Option<Env> {
        let Some(binary) = chromedriver_binary() else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "CI is set but {CHROMIUM} or chromedriver ($CHROMEDRIVER, /usr/bin or PATH) \
                     is missing: install chromium chromium-driver"
                );
            }
            static NOTICE: std::sync::Once = std::sync::Once::new();
            NOTICE.call_once(|| {
                // Straight to stderr: the test harness would swallow eprintln!.
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "browser tests skipped: install chromium chromium-driver \
                     (apt-get install -y chromium chromium-driver) to run them"
                );
            });
            return None;
        };
        // EdDSA: generating the first RSA key would cost each scenario a second.
        let config = format!(
            "{server_section}{FAST_HASHING}\n{RELAXED_LIMITS}\n[webauthn]\nallow_any_port = true\n\n\
             [tokens]\nsigning_alg = \"EdDSA\"\n"
        );
        let (server, driver) = tokio::join!(
            TestServer::spawn_with(&config),
            Chromedriver::start(&binary),
        );
        let base = format!("http://localhost:{}", server.address.port());
        Some(Env {
            server,
            driver,
            base,
        })
    }

    /// A fresh browser context (own profile, cookies and storage).
    pub async fn browser(&self, label: &str) -> Browser {
        let browser = self.driver.session(label, &self.base).await;
        let window = browser.window_rect().await;
        assert_eq!(window["width"], 1280, "--window-size applies: {window}");
        browser
    }

    /// [`Env::browser`] with more switches for Chromium.
    pub async fn browser_with_args(&self, label: &str, extra: &[String]) -> Browser {
        self.driver
            .session_with_args(label, &self.base, extra)
            .await
    }

    /// The end of a scenario: no browser saw a CSP violation or script error.
    pub async fn finish(&self, browsers: &[&Browser]) {
        for browser in browsers {
            browser.assert_no_problems().await;
        }
    }
}

// ---- screenshots ------------------------------------------------------------

/// `$CARGO_TARGET_DIR/browser-screenshots` (default `<repo>/target/…`).
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("browser-screenshots")
}

/// Elements that stick out past the right edge when the page is wider than
/// the viewport (nothing on a page that fits).
const OVERFLOW: &str = "const width = document.documentElement.clientWidth;\
    if (document.documentElement.scrollWidth <= width) return [];\
    return [...document.querySelectorAll('body *')]\
      .filter((e) => e.getBoundingClientRect().right > width + 1)\
      .slice(0, 8)\
      .map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')\
        + (typeof e.className === 'string' && e.className ? '.' + e.className.trim().split(/\\s+/).join('.') : ''));";

/// Full-page screenshots of what `browser` shows: `<name>-desktop.png`
/// (1280 wide), `<name>-phone.png` (390×844) and `<name>-desktop-dark.png`
/// (`prefers-color-scheme: dark`). At every size the page must fit its
/// width (no sideways scrolling).
pub async fn capture(browser: &Browser, name: &str) {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    for (variant, width, height, mobile, scheme) in [
        ("desktop", 1280, 900, false, "light"),
        ("phone", 390, 844, true, "light"),
        ("desktop-dark", 1280, 900, false, "dark"),
    ] {
        browser
            .cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
            )
            .await;
        browser
            .cdp(
                "Emulation.setEmulatedMedia",
                json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
            )
            .await;
        let overflow = browser.script(OVERFLOW, json!([])).await;
        if overflow.as_array().is_some_and(|items| !items.is_empty()) {
            browser
                .fail(&format!(
                    "{name}-{variant} is wider than the screen: {overflow}"
                ))
                .await;
        }
        let png = browser.full_page_screenshot().await;
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(dir.join(format!("{name}-{variant}.png")), png).expect("write screenshot");
    }
    browser
        .cdp("Emulation.clearDeviceMetricsOverride", json!({}))
        .await;
    browser
        .cdp("Emulation.setEmulatedMedia", json!({"features": []}))
        .await;
}

// ---- TOTP, computed independently of the server (RFC 6238) -------------------

/// An authenticator app: the server takes each 30-second step's code once,
/// with ±1 step of drift, so every code handed out is for a later step than
/// the one before.
pub struct Totp {
    pub secret: String,
    last_step: u64,
}

impl Totp {
    pub fn new(secret: &str) -> Totp {
        Totp {
            secret: secret.to_owned(),
            last_step: 0,
        }
    }

    /// The current step's code, or the next step's (still inside the
    /// window) when the current one was used; waits for the clock otherwise.
    pub async fn next_code(&mut self) -> String {
        loop {
            let now = current_step();
            let step = now.max(self.last_step + 1);
            if step <= now + 1 {
                self.last_step = step;
                return totp_at(&self.secret, step);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Six digits that match no step the server would accept now.
    pub fn wrong_code(&self) -> String {
        let now = current_step();
        let valid: Vec<String> = (now - 1..=now + 2)
            .map(|step| totp_at(&self.secret, step))
            .collect();
        (0..)
            .map(|n: u32| format!("{:06}", (123_456 + n * 111_111) % 1_000_000))
            .find(|code| !valid.contains(code))
            .expect("a wrong code")
    }
}

// ---- recurring steps ------------------------------------------------------------

/// Opens the login page and submits `email` / `password`; the caller waits
/// for what should follow.
pub async fn submit_login(b: &Browser, email: &str, password: &str) {
    let on_password_step = b
        .find("body[data-page=\"login\"] #login-page[data-step=\"password\"]")
        .await
        .is_some();
    if !on_password_step {
        b.goto("/login").await;
    }
    b.wait_page("login").await;
    b.fill("#login-email", email).await;
    b.fill("#login-password", password).await;
    b.click("#login-submit").await;
}

/// Signs in with [`GOOD_PASSWORD`] (no MFA) and waits for the account page.
pub async fn sign_in(b: &Browser, email: &str) {
    submit_login(b, email, GOOD_PASSWORD).await;
    b.wait_page("account").await;
    b.wait_text("#topbar-user", email).await;
}

/// Signs in up to the MFA step.
pub async fn sign_in_to_mfa_step(b: &Browser, email: &str) {
    submit_login(b, email, GOOD_PASSWORD).await;
    b.wait_for("#login-page[data-step=\"mfa\"] #mfa-step").await;
}

/// The top bar's "Sign out": back on the login page with the notice.
pub async fn sign_out(b: &Browser) {
    b.click("#signout-button").await;
    b.wait_page("login").await;
    b.wait_text("#login-flash", "You are signed out.").await;
    assert_eq!(b.path().await, "/login");
}

/// Registers, signs in and enrolls TOTP through the API (for scenarios about
/// something else); returns the secret and the recovery codes.
pub async fn enroll_totp_over_api(server: &TestServer, email: &str) -> (Totp, Vec<String>) {
    server.register_ok(email).await;
    let tokens = server.login_ok(email).await;
    let access = tokens["access_token"].as_str().expect("access token");
    let enrollment: Value = server
        .post("/api/account/mfa/enroll")
        .bearer_auth(access)
        .json(&json!({}))
        .send()
        .await
        .expect("enroll")
        .json()
        .await
        .expect("json");
    let mut totp = Totp::new(enrollment["secret"].as_str().expect("secret"));
    let response = server
        .post("/api/account/mfa/verify")
        .bearer_auth(access)
        .json(&json!({"code": totp.next_code().await}))
        .send()
        .await
        .expect("verify");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let codes = body["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    (totp, codes)
}
