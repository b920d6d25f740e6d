//! HTTP-level tests: each spawns the real `authd` binary on a random port with
//! a temp data dir and speaks HTTP to it, like a client would.

// Tests read the wall clock as any client would (TOTP codes, timings).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)]

mod helpers;
mod pg_server;

mod account;
mod approvals;
mod audit;
mod backup;
mod cli;
mod config_reload;
mod control_plane;
mod error_bodies;
mod forward_auth;
mod forward_auth_proxies;
mod hardening;
mod hostile_data_dir;
mod lifecycle;
mod login;
mod metrics;
mod mfa;
mod oidc;
mod operator_api;
mod operator_users;
mod passkeys;
mod postgres_backend;
mod recovery;
mod registration;
mod sign_in_defences;
mod social_login;
mod systemd;
mod token_hardening;
mod tokens;
mod web_ui;
mod webauthn;
mod webhooks;
