//! The system test suite: one binary (shorter links), a module per area.
//! Every store test runs against SQLite and PostgreSQL.

mod domain;
mod gateway;
mod policy;
mod store;
mod verify;
