//! Thin handlers: request DTO → service call → response DTO, one file per
//! URL family.

pub mod account;
pub mod control_plane;
pub mod forward_auth;
pub mod health;
pub mod identity;
pub mod metrics;
pub mod oauth;
pub mod oidc;
pub mod operator;
pub mod passkeys;
pub mod social;
pub mod status;
pub mod ui;
