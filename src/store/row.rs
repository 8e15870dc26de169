//! Reading a column by the store's conventions: integer cents, RFC 3339
//! text times, enum text, flags that are BOOLEAN on PostgreSQL and 0/1 on
//! SQLite. A malformed value is [`super::StoreError::Corrupt`].

use super::StoreResult;
use crate::model::UnknownValue;
use crate::money::from_cents;
use crate::time::{self, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

pub(crate) fn get<T>(row: &AnyRow, col: &str) -> StoreResult<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    Ok(row.try_get::<T, _>(col)?)
}

/// A flag column: BOOLEAN on PostgreSQL, INTEGER 0/1 on SQLite.
pub(crate) fn flag(row: &AnyRow, col: &str) -> StoreResult<bool> {
    match row.try_get::<bool, _>(col) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<i64, _>(col)? != 0),
    }
}

pub(crate) fn parse_enum<T: std::str::FromStr<Err = UnknownValue>>(
    row: &AnyRow,
    col: &str,
) -> StoreResult<T> {
    Ok(get::<String>(row, col)?.parse::<T>()?)
}

pub(crate) fn opt_enum<T: std::str::FromStr<Err = UnknownValue>>(
    row: &AnyRow,
    col: &str,
) -> StoreResult<Option<T>> {
    Ok(match get::<Option<String>>(row, col)? {
        Some(s) => Some(s.parse::<T>()?),
        None => None,
    })
}

pub(crate) fn ts(row: &AnyRow, col: &str) -> StoreResult<Timestamp> {
    Ok(time::parse(&get::<String>(row, col)?)?)
}

pub(crate) fn opt_ts(row: &AnyRow, col: &str) -> StoreResult<Option<Timestamp>> {
    Ok(match get::<Option<String>>(row, col)? {
        Some(s) => Some(time::parse(&s)?),
        None => None,
    })
}

pub(crate) fn money(row: &AnyRow, col: &str) -> StoreResult<rust_decimal::Decimal> {
    Ok(from_cents(get::<i64>(row, col)?))
}

pub(crate) fn opt_money(row: &AnyRow, col: &str) -> StoreResult<Option<rust_decimal::Decimal>> {
    Ok(get::<Option<i64>>(row, col)?.map(from_cents))
}
