//! The system test suite: one binary (shorter links), a module per area.
//! Every store test runs against SQLite and PostgreSQL.

mod admin;
mod authzen;
mod console;
mod domain;
mod explain;
mod fleet;
mod gateway;
pub mod kit;
mod layers;
mod lists;
pub(crate) mod logs;
mod openapi;
mod policy;
mod store;
mod truth;
mod verify;
mod who_can;
