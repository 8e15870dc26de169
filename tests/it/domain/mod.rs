//! The domain store over a real socket, on SQLite and PostgreSQL: every route,
//! its success shape, parameter errors, business refusals, paging, and the
//! refusal of calls without a valid identity assertion.

mod assertion;
mod customer_routes;
mod order_routes;
mod partner_routes;
pub mod support;
