//! Column readers for the store's conventions (integer cents, RFC 3339 text
//! times, enum text), answering 500 on a malformed row. The SQL builder is
//! `crate::store::query`.

pub use crate::store::query::{bind_all, Bind, Where};

use crate::api_error::ApiError;
use crate::money::from_cents;
use crate::time::{self, Timestamp};
use rust_decimal::Decimal;
use sqlx::any::AnyRow;
use sqlx::{Any, Row};

/// Logs a database error and answers 500 without its detail.
pub fn db_error(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "domain store database error");
    ApiError::internal()
}

fn col<T>(row: &AnyRow, name: &str) -> Result<T, ApiError>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get::<T, _>(name).map_err(db_error)
}

pub fn text(row: &AnyRow, name: &str) -> Result<String, ApiError> {
    col(row, name)
}

pub fn opt_text(row: &AnyRow, name: &str) -> Result<Option<String>, ApiError> {
    col(row, name)
}

pub fn int(row: &AnyRow, name: &str) -> Result<i64, ApiError> {
    col(row, name)
}

pub fn opt_int(row: &AnyRow, name: &str) -> Result<Option<i64>, ApiError> {
    col(row, name)
}

/// A cents column as money.
pub fn money(row: &AnyRow, name: &str) -> Result<Decimal, ApiError> {
    int(row, name).map(from_cents)
}

pub fn opt_money(row: &AnyRow, name: &str) -> Result<Option<Decimal>, ApiError> {
    opt_int(row, name).map(|c| c.map(from_cents))
}

pub fn ts(row: &AnyRow, name: &str) -> Result<Timestamp, ApiError> {
    time::parse(&text(row, name)?).map_err(db_error)
}

pub fn opt_ts(row: &AnyRow, name: &str) -> Result<Option<Timestamp>, ApiError> {
    opt_text(row, name)?
        .map(|s| time::parse(&s).map_err(db_error))
        .transpose()
}

/// A stored enum value.
pub fn parse<T: std::str::FromStr<Err = crate::model::UnknownValue>>(
    row: &AnyRow,
    name: &str,
) -> Result<T, ApiError> {
    text(row, name)?.parse::<T>().map_err(db_error)
}
