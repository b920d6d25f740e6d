//! The JSON and form bodies and the query strings of every public endpoint,
//! through the real router in-process (`authd_fuzz::InProcess`), checked
//! against `authd_fuzz::check_answer`: no 5xx but a documented 503, error
//! bodies in their family's JSON shape, no panic. The signed links of
//! approvals (`/v1/approvals/{id}/resolve?action=&exp=&sig=`) are among them.
//!
//! Input: byte 0 picks the endpoint, byte 1 the content type; then the query
//! string up to the first `\n`, and the body after it.
#![no_main]

use std::sync::OnceLock;

use authd_fuzz::{check_answer, InProcess};
use axum::body::Body;
use axum::http::{header, Method, Request};
use libfuzzer_sys::fuzz_target;

const ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/register"),
    ("POST", "/login"),
    ("POST", "/password/forgot"),
    ("POST", "/password/reset"),
    ("POST", "/email/verify"),
    ("POST", "/mfa/challenge"),
    ("POST", "/mfa/webauthn/options"),
    ("POST", "/webauthn/login/options"),
    ("POST", "/webauthn/login"),
    ("POST", "/webauthn/enroll/options"),
    ("POST", "/webauthn/enroll"),
    ("POST", "/logout"),
    ("POST", "/oauth/token"),
    ("POST", "/oauth/revoke"),
    ("POST", "/oauth/introspect"),
    ("POST", "/oauth/device_authorization"),
    ("POST", "/oauth/authorize"),
    ("GET", "/oauth/authorize"),
    ("POST", "/oauth/end_session"),
    ("GET", "/oauth/end_session"),
    ("POST", "/oauth/userinfo"),
    ("POST", "/oauth/callback/github"),
    ("GET", "/oauth/callback/github"),
    ("POST", "/ui/api/login"),
    ("POST", "/ui/api/mfa"),
    ("POST", "/ui/api/passkey"),
    ("POST", "/ui/api/consent"),
    ("POST", "/ui/api/device"),
    ("POST", "/ui/api/end_session"),
    ("GET", "/ui/api/consent"),
    ("GET", "/ui/api/device"),
    ("GET", "/ui/api/end_session"),
    ("GET", "/ui/api/return"),
    ("GET", "/forward-auth"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/v1/approvals/01J9ZZZZZZZZZZZZZZZZZZZZZZ/resolve"),
    ("GET", "/v1/approvals/01J9ZZZZZZZZZZZZZZZZZZZZZZ/resolve"),
];

const CONTENT_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    None,
    Some("text/plain"),
    Some("application/json; charset=utf-8"),
    Some("multipart/form-data; boundary=x"),
];

fn server() -> &'static InProcess {
    static SERVER: OnceLock<InProcess> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = InProcess::start("");
        // A known account, so that a body naming it gets past the lookup.
        server.register("fuzz@example.com");
        server
    })
}

/// Bytes a query may carry as they are; everything else is %-escaped, so
/// that the parsers see every input (stray `%` included) and not the URI
/// builder's refusal.
fn escape_query(bytes: &[u8]) -> String {
    let mut query = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%[]".contains(&byte) {
            query.push(byte as char);
        } else {
            query.push_str(&format!("%{byte:02X}"));
        }
    }
    query
}

fuzz_target!(|data: &[u8]| {
    let [endpoint, content_type, rest @ ..] = data else {
        return;
    };
    let (method, path) = ENDPOINTS[usize::from(*endpoint) % ENDPOINTS.len()];
    let content_type = CONTENT_TYPES[usize::from(*content_type) % CONTENT_TYPES.len()];
    let (query, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let uri = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", escape_query(query))
    };
    let server = server();
    // Past the progressive delay (15 minutes of the clock) and the limiter's
    // windows: every input meets the same defences, none sleeps.
    server.clock.advance(16 * 60);
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(&uri);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return;
    };
    let answer = server.send(request);
    check_answer(method, path, &answer);
});
