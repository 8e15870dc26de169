//! partner-gateway: an authorization gateway for a cloud Partner Center API.
//!
//! The request path lives in [`gateway`]; the business data behind it in
//! [`store`] (persistence) and [`domain`] (the partner API the gateway forwards to).

pub mod admin;
pub mod api_error;
pub mod assertion;
pub mod audit;
pub mod authorizer;
pub mod caller;
pub mod catalog;
pub mod claims;
pub mod cli;
pub mod client;
pub mod config;
pub mod credentials_cli;
pub mod crypto;
pub mod domain;
pub mod entities;
pub mod filter;
pub mod gateway;
pub mod ids;
pub mod json;
pub mod listener;
pub mod metrics;
pub mod model;
pub mod money;
pub mod openapi;
pub mod otlp;
pub mod policy;
pub mod policy_tools;
pub mod recent;
pub mod refs;
pub mod serve;
pub mod sessions;
pub mod signals;
pub mod signing;
pub mod store;
pub mod throttle;
pub mod time;
pub mod trace;
pub mod verify;
