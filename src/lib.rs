//! partner-gateway: an authorization gateway for a cloud Partner Center API.
//!
//! The request path lives in [`gateway`]; the business data behind it in
//! [`store`] (persistence) and [`domain`] (the partner API the gateway forwards to).

pub mod api_error;
pub mod assertion;
pub mod config;
pub mod crypto;
pub mod ids;
pub mod model;
pub mod money;
pub mod store;
#[doc(hidden)]
pub mod testkit;
pub mod time;
