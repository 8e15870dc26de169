//! Money: exact decimals with two places. The database keeps integer cents
//! (`BIGINT`) so that amounts sort, sum and compare exactly on both SQLite and
//! PostgreSQL; everything outside the store sees [`Decimal`].

use rust_decimal::Decimal;

/// The largest budget amount the public API accepts.
pub const MAX_BUDGET: Decimal = Decimal::from_parts(2_147_483_647, 0, 0, false, 0);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("more than two decimal places")]
    TooPrecise,
    #[error("negative amount")]
    Negative,
    #[error("amount out of range")]
    OutOfRange,
    #[error("not a decimal number")]
    NotANumber,
}

/// Parses a decimal string such as `"1000.00"` (at most two places, not negative).
pub fn parse_amount(s: &str) -> Result<Decimal, MoneyError> {
    let s = s.trim();
    // Plain notation only: `1e3`, `+1`, `1_000` and the like are refused.
    let digits = s.strip_prefix('-').unwrap_or(s);
    let plain = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1
        && !digits.starts_with('.')
        && !digits.ends_with('.');
    if !plain {
        return Err(MoneyError::NotANumber);
    }
    let d: Decimal = s.parse().map_err(|_| MoneyError::NotANumber)?;
    check_amount(d)?;
    Ok(d)
}

/// Accepts a decimal that has at most two places and is not negative.
pub fn check_amount(d: Decimal) -> Result<(), MoneyError> {
    if d.is_sign_negative() && !d.is_zero() {
        return Err(MoneyError::Negative);
    }
    if d.normalize().scale() > 2 {
        return Err(MoneyError::TooPrecise);
    }
    Ok(())
}

/// Decimal → integer cents (exact; refuses more than two places).
pub fn to_cents(d: Decimal) -> Result<i64, MoneyError> {
    if d.normalize().scale() > 2 {
        return Err(MoneyError::TooPrecise);
    }
    let cents = d * Decimal::ONE_HUNDRED;
    i64::try_from(cents.trunc()).map_err(|_| MoneyError::OutOfRange)
}

/// Integer cents → decimal with exactly two places.
pub fn from_cents(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_round_trip_keeps_two_places() {
        let d = parse_amount("1000.5").unwrap();
        assert_eq!(to_cents(d).unwrap(), 100_050);
        assert_eq!(from_cents(100_050).to_string(), "1000.50");
        assert_eq!(from_cents(0).to_string(), "0.00");
    }

    #[test]
    fn refuses_bad_amounts() {
        assert_eq!(parse_amount("1.001"), Err(MoneyError::TooPrecise));
        assert_eq!(parse_amount("-1"), Err(MoneyError::Negative));
        assert_eq!(parse_amount("ten"), Err(MoneyError::NotANumber));
        assert_eq!(parse_amount("1e3"), Err(MoneyError::NotANumber));
        assert!(parse_amount("2147483647.00").unwrap() == MAX_BUDGET);
    }
}
