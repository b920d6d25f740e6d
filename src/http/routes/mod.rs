//! Thin handlers: request DTO → service call → response DTO, one file per
//! URL family.

pub mod health;
pub mod status;
