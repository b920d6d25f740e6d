//! authd: a complete identity server in one binary, with all state in one
//! redb file.
//!
//! # Layout, in reading order
//!
//! - [`config`]: defaults ← `config.toml` ← `AUTHD_*` env, validated once.
//! - [`live_config`]: the running config, and what a reload may change.
//! - [`cli`]: `authd token …`, `check-config`, and the dispatch to `serve`.
//! - [`backup`]: `authd backup` / `authd restore`, through the server or the file.
//! - [`app`]: builds the state, binds the listener, runs until shutdown.
//! - [`http`]: the only module that knows axum; router, extractors, errors.
//! - [`service`]: use cases — the sign-in chain (login → second-factor
//!   step → TOTP / WebAuthn → sessions → tokens; or a passkey alone →
//!   sessions → tokens), passkey enrollment links, accounts and step-up
//!   checks, orgs and their members, PATs, refresh tokens, signing keys,
//!   approvals and webhooks, audit, and apps signing in through authd
//!   (OAuth clients, authorization, app tokens, device grant, forward-auth);
//!   no HTTP types, calls go downward only.
//! - [`domain`]: ids, emails, passwords, roles, orgs, users, sessions,
//!   policies, OAuth clients, forward-auth rules: parsed once, plain data.
//! - [`audit`]: the closed set of audit event kinds and their records.
//! - [`store`]: the only module that knows redb; every table and migration.
//! - [`admin_token`]: the operator's bearer token file and its verifier.
//! - [`server_secret`]: the root of the keys that seal secrets at rest.
//! - [`crypto`]: randomness, digests, constant-time comparison, argon2id,
//!   JWTs, TOTP, PAT format, sealing, signed links.
//! - [`clock`]: the one place that reads the wall clock.
//! - [`swappable`]: a value read per request and replaced whole.
//! - [`telemetry`]: log output and its reloadable level.
//! - [`metrics`]: counters for `/metrics`, added to where things happen.
//! - [`systemd`]: `READY=1` and `STOPPING=1` for a `Type=notify` unit.
//!
//! Dependencies point one way:
//! `cli → app → http → service → {store, crypto, audit} → domain → clock`.

pub mod admin_token;
pub mod app;
pub mod audit;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod live_config;
pub mod metrics;
pub mod resident;
pub mod server_secret;
pub mod service;
pub mod store;
pub mod swappable;
pub mod systemd;
pub mod telemetry;
