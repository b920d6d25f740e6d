//! End-to-end tests of the web UI in a real browser: Debian's headless
//! Chromium driven over W3C WebDriver (`chromedriver`) against the real
//! `authd` binary on localhost. Each scenario starts its own server and
//! chromedriver; selectors are the hooks documented in `web/TESTING.md`.
//!
//! Without Chromium and chromedriver the scenarios are compiled as ignored
//! (`build.rs` looks for them), so `cargo test` reports them skipped with
//! the packages to install; with `CI` set they run, and fail without them. Screenshots of the main pages land in
//! `target/browser-screenshots/`; every scenario also checks that no page saw
//! a Content-Security-Policy violation or a script error.

// Tests read the wall clock as any client would (TOTP codes, timings).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)]

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../api/pg_server.rs"]
#[allow(dead_code)]
mod pg_server;
mod support;
mod webdriver;

mod account;
mod admin;
mod apps;
mod forward_auth;
mod login;
mod passkeys;
mod recovery;
mod social;
