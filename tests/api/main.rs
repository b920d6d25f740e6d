//! HTTP-level tests: each spawns the real `authd` binary on a random port with
//! a temp data dir and speaks HTTP to it, like a client would.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod helpers;

mod cli;
mod lifecycle;
mod operator_api;
