//! A partner's own rate limit: the sustained rate and burst of each of its
//! principals (operators, their access keys, tokens and sessions), overriding
//! `serve --rate-limit` for that partner. Set with `partner-gateway limits`;
//! a running gateway hears a change within its refresh interval.

use super::row::{get, ts};
use super::{Store, StoreError, StoreResult};
use crate::time::{self, Timestamp};

/// A partner's rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartnerLimit {
    /// Requests per second, sustained; 0: unlimited.
    pub rate: u32,
    /// Requests at once after a quiet spell.
    pub burst: u32,
}

impl PartnerLimit {
    /// `rate` per second with `burst` (default twice the rate); `Err` with
    /// why when a limited rate has no burst.
    pub fn new(rate: u32, burst: Option<u32>) -> Result<PartnerLimit, &'static str> {
        let burst = burst.unwrap_or(rate.saturating_mul(2));
        if rate > 0 && burst == 0 {
            return Err("the burst must be at least 1 (or the rate 0: no limit)");
        }
        Ok(PartnerLimit { rate, burst })
    }
}

impl Store {
    /// Sets partner `partner`'s limit.
    pub async fn set_rate_limit(&self, partner: &str, limit: PartnerLimit) -> StoreResult<()> {
        if self.partner(&partner.into()).await?.is_none() {
            return Err(StoreError::NotFound(format!("partner {partner:?}")));
        }
        sqlx::query(
            "INSERT INTO rate_limits (partner_id, rate, burst, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (partner_id) DO UPDATE SET rate = excluded.rate, burst = excluded.burst,
                updated_at = excluded.updated_at",
        )
        .bind(partner.to_owned())
        .bind(i64::from(limit.rate))
        .bind(i64::from(limit.burst))
        .bind(time::format(time::now()))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Removes partner `partner`'s own limit (the gateway's applies again);
    /// `false` when it had none.
    pub async fn clear_rate_limit(&self, partner: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM rate_limits WHERE partner_id = $1")
            .bind(partner.to_owned())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every partner's own limit, by partner id, with when it was set.
    pub async fn rate_limits(&self) -> StoreResult<Vec<(String, PartnerLimit, Timestamp)>> {
        let rows = sqlx::query("SELECT * FROM rate_limits ORDER BY partner_id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let number = |col: &str| -> StoreResult<u32> {
                    u32::try_from(get::<i64>(r, col)?)
                        .map_err(|_| StoreError::Corrupt(format!("rate_limits.{col} out of range")))
                };
                Ok((
                    get(r, "partner_id")?,
                    PartnerLimit {
                        rate: number("rate")?,
                        burst: number("burst")?,
                    },
                    ts(r, "updated_at")?,
                ))
            })
            .collect()
    }
}
