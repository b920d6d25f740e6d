//! Cookies, CSRF tokens and bearer credentials through the real router
//! in-process: the UI's session cookie (`<session id>.<secret>`), its CSRF
//! token (`X-CSRF-Token`), the social sign-in state cookie, and the bearer
//! header (access JWTs and PATs) on the endpoints that read them. Besides
//! `authd_fuzz::check_answer`, a tampered credential never succeeds: a
//! write with a CSRF token other than the session's, or a cookie that does
//! not carry the session's secret, is never answered 2xx.
//!
//! Input: byte 0 picks the endpoint, byte 1 the way the credentials are
//! built from the fuzz bytes (the rest) and the real session the target
//! signed in with at start.
#![no_main]

use std::sync::OnceLock;

use authd_fuzz::{check_answer, json_post, InProcess, GOOD_PASSWORD};
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request};
use libfuzzer_sys::fuzz_target;

/// (method, path, whether it writes: a CSRF token is then required).
const ENDPOINTS: &[(&str, &str, bool)] = &[
    ("GET", "/api/account", false),
    ("GET", "/api/account/sessions", false),
    ("GET", "/api/account/apps", false),
    ("GET", "/api/account/webauthn", false),
    ("POST", "/api/account/mfa/enroll", true),
    ("POST", "/api/account/webauthn/register", true),
    ("PATCH", "/api/account/webauthn/AAAA", true),
    ("GET", "/ui/api/consent?client_id=app&scope=openid", false),
    ("POST", "/ui/api/consent", true),
    ("POST", "/ui/api/device", true),
    ("GET", "/forward-auth", false),
    ("GET", "/oauth/authorize?client_id=app&response_type=code&redirect_uri=http%3A%2F%2Flocalhost%2Fcb&code_challenge=abc&code_challenge_method=S256", false),
    ("GET", "/oauth/callback/github?state=abc&code=def", false),
    ("GET", "/oauth/userinfo", false),
    ("GET", "/api/v1/org/memberships", false),
    ("GET", "/api/v1/auth/api-tokens", false),
];

struct Fixture {
    server: InProcess,
    /// The session cookie's value, `<session id>.<secret>`.
    session: String,
    /// The session's secret alone.
    secret: String,
    csrf: String,
}

/// What one request carries.
struct Credentials {
    cookie: Vec<u8>,
    csrf: Option<Vec<u8>>,
    bearer: Option<Vec<u8>>,
    /// The session's own cookie and CSRF token, untouched.
    genuine: bool,
}

impl Credentials {
    fn new(cookie: Vec<u8>, csrf: Option<Vec<u8>>, bearer: Option<Vec<u8>>, genuine: bool) -> Self {
        Self {
            cookie,
            csrf,
            bearer,
            genuine,
        }
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let server = InProcess::start("");
        server.register("cookie@example.com");
        let answer = server.send(json_post(
            "/ui/api/login",
            &serde_json::json!({"email": "cookie@example.com", "password": GOOD_PASSWORD}),
        ));
        let cookies = answer.cookies();
        let find = |name: &str| {
            cookies
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {name} cookie after a UI login: {cookies:?}"))
        };
        let session = find("authd_session");
        let csrf = find("authd_csrf");
        let secret = session
            .split_once('.')
            .map(|(_, secret)| secret.to_owned())
            .expect("a session cookie is <id>.<secret>");
        Fixture {
            server,
            session,
            secret,
            csrf,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let [endpoint, mode, fuzz @ ..] = data else {
        return;
    };
    let (method, path, writes) = ENDPOINTS[usize::from(*endpoint) % ENDPOINTS.len()];
    let fixture = fixture();
    let text = String::from_utf8_lossy(fuzz);
    let real_cookie = format!("authd_session={}", fixture.session);
    // What each mode sends (cookie, CSRF token, bearer token), and whether
    // the session's own credentials for this request are all there, untouched.
    let Credentials {
        cookie,
        csrf,
        bearer,
        genuine,
    } = match mode % 7 {
        0 => Credentials::new(fuzz.to_vec(), None, None, false),
        1 => {
            let mut cookie = format!("{real_cookie}; authd_csrf={}", fixture.csrf).into_bytes();
            cookie.extend_from_slice(fuzz);
            Credentials::new(cookie, Some(fixture.csrf.clone().into_bytes()), None, true)
        }
        2 => {
            let mut cookie = b"authd_session=".to_vec();
            cookie.extend_from_slice(fuzz);
            Credentials::new(cookie, Some(fixture.csrf.clone().into_bytes()), None, false)
        }
        3 => Credentials::new(real_cookie.into_bytes(), Some(fuzz.to_vec()), None, false),
        4 => {
            // One byte of the real CSRF token changed.
            let mut csrf = fixture.csrf.clone().into_bytes();
            if let [at, value, ..] = fuzz {
                let at = usize::from(*at) % csrf.len();
                csrf[at] = *value;
            }
            Credentials::new(real_cookie.into_bytes(), Some(csrf), None, false)
        }
        5 => {
            let mut cookie = b"authd_social_state=".to_vec();
            cookie.extend_from_slice(fuzz);
            Credentials::new(cookie, None, None, false)
        }
        _ => Credentials::new(Vec::new(), None, Some(fuzz.to_vec()), false),
    };
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    // Bytes a header cannot carry never reach the server from a socket.
    if !cookie.is_empty() {
        let Ok(value) = HeaderValue::from_bytes(&cookie) else {
            return;
        };
        request = request.header(header::COOKIE, value);
    }
    if let Some(csrf) = &csrf {
        let Ok(value) = HeaderValue::from_bytes(csrf) else {
            return;
        };
        request = request.header("x-csrf-token", value);
    }
    if let Some(bearer) = &bearer {
        let mut value = b"Bearer ".to_vec();
        value.extend_from_slice(bearer);
        let Ok(value) = HeaderValue::from_bytes(&value) else {
            return;
        };
        request = request.header(header::AUTHORIZATION, value);
    }
    let Ok(request) = request.body(Body::from("{}")) else {
        return;
    };
    let answer = fixture.server.send(request);
    check_answer(method, path.split('?').next().unwrap_or(path), &answer);

    if answer.status.is_success() && path.starts_with("/api/") {
        assert!(
            bearer.is_none(),
            "{method} {path} accepted a made-up bearer token {text:?}"
        );
        // A tampered cookie that still authenticates must carry the secret.
        let cookie_text = String::from_utf8_lossy(&cookie);
        assert!(
            genuine || cookie_text.contains(&fixture.secret),
            "{method} {path} succeeded with a cookie without the session's secret"
        );
        if writes {
            // hex: the CSRF token compares as bytes, so upper case is the same token.
            let presented = csrf
                .as_deref()
                .map(|csrf| String::from_utf8_lossy(csrf).to_ascii_lowercase());
            assert_eq!(
                presented.as_deref(),
                Some(fixture.csrf.as_str()),
                "{method} {path} succeeded without the session's CSRF token (fuzz {text:?})"
            );
        }
    }
});
