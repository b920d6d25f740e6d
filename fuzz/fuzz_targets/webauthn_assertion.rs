//! WebAuthn client data as the server reads it before and while handing it
//! to webauthn-rs: the `PublicKeyCredential` JSON of a passkey sign-in
//! (`/webauthn/login`, the UI's `/ui/api/passkey`) parsed by our extractor,
//! the user handle and credential id it names, for a live ceremony, through
//! the real router in-process; and the registration answer of an
//! enrollment link (`/webauthn/enroll`). `authd_fuzz::check_answer` holds
//! and no fuzzed assertion ever signs anyone in.
//!
//! Input: byte 0 picks the endpoint; the rest is the `credential` member's
//! JSON text.
#![no_main]

use std::sync::OnceLock;

use authd_fuzz::{check_answer, json_post, InProcess};
use axum::body::Body;
use axum::http::{header, Request};
use libfuzzer_sys::fuzz_target;

fn server() -> &'static InProcess {
    static SERVER: OnceLock<InProcess> = OnceLock::new();
    SERVER.get_or_init(|| InProcess::start(""))
}

fuzz_target!(|data: &[u8]| {
    let [endpoint, credential @ ..] = data else {
        return;
    };
    let server = server();
    // Earlier ceremonies expire, so the per-address bound never fills.
    server.clock.advance(16 * 60);
    let path = match endpoint % 3 {
        0 => "/webauthn/login",
        1 => "/ui/api/passkey",
        _ => "/webauthn/enroll",
    };
    let prefix = if path == "/webauthn/enroll" {
        // No enrollment link exists: the body is parsed whole, then refused.
        r#"{"token":"not-a-link","ceremony_id":"x","credential":"#.to_owned()
    } else {
        let options = server.send(json_post("/webauthn/login/options", &serde_json::json!({})));
        assert_eq!(options.status, 200, "passkey options");
        let ceremony_id = options
            .json()
            .and_then(|body| body["ceremony_id"].as_str().map(str::to_owned))
            .expect("a ceremony id");
        format!(r#"{{"ceremony_id":"{ceremony_id}","credential":"#)
    };
    let mut body = prefix.into_bytes();
    body.extend_from_slice(credential);
    body.push(b'}');
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("request");
    let answer = server.send(request);
    check_answer("POST", path, &answer);
    assert!(
        !answer.status.is_success(),
        "a made-up assertion signed someone in at {path}: {}",
        String::from_utf8_lossy(&answer.body)
    );
});
