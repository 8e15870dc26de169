//! Retries that do not write twice: the first answer of a creating request
//! sent with an `X-Client-Token`, kept per principal for a day. The same
//! token with the same body gets that answer again; with another body, or
//! while the first is still in flight, a conflict.

use super::row::get;
use super::{Store, StoreResult};
use crate::time::{self, Timestamp};

/// How long a client token is remembered.
pub const CLIENT_TOKEN_HOURS: i64 = 24;

/// What a client token is, when a request claims it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claimed {
    /// New: this request is the first; record its answer with [`Store::answer_client_token`].
    First,
    /// The first request with this token and body was answered so.
    Answered { status: u16, body: String },
    /// The first request with this token is still in flight.
    InFlight,
    /// The token was used with another body (or another operation).
    OtherRequest,
}

/// A request that claims a client token.
#[derive(Debug)]
pub struct TokenClaim<'a> {
    pub principal: &'a str,
    pub token: &'a str,
    pub operation: &'a str,
    pub body_sha256: &'a str,
}

/// What a kept answer is sealed to: an answer may hold a secret (a new
/// session's credentials), so it is kept encrypted under the master key, and
/// bound to its principal and token.
fn sealing_label(c: &TokenClaim<'_>) -> String {
    format!("client-token\n{}\n{}", c.principal, c.token)
}

impl Store {
    /// Claims `c.token` for this request, or says what it already is. A
    /// token older than [`CLIENT_TOKEN_HOURS`] is forgotten first.
    pub async fn claim_client_token(
        &self,
        c: &TokenClaim<'_>,
        now: Timestamp,
    ) -> StoreResult<Claimed> {
        let cutoff = time::format(now - chrono::Duration::hours(CLIENT_TOKEN_HOURS));
        sqlx::query(
            "DELETE FROM client_tokens WHERE principal = $1 AND token = $2 AND created_at < $3",
        )
        .bind(c.principal.to_owned())
        .bind(c.token.to_owned())
        .bind(cutoff)
        .execute(self.pool())
        .await?;
        // The insert decides who is first, in both databases, under concurrency.
        let inserted = sqlx::query(
            "INSERT INTO client_tokens (principal, token, operation, body_sha256, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (principal, token) DO NOTHING",
        )
        .bind(c.principal.to_owned())
        .bind(c.token.to_owned())
        .bind(c.operation.to_owned())
        .bind(c.body_sha256.to_owned())
        .bind(time::format(now))
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claimed::First);
        }
        let Some(row) = sqlx::query(
            "SELECT operation, body_sha256, status, body FROM client_tokens
             WHERE principal = $1 AND token = $2",
        )
        .bind(c.principal.to_owned())
        .bind(c.token.to_owned())
        .fetch_optional(self.pool())
        .await?
        else {
            // Forgotten between the two statements: a later retry is first.
            return Ok(Claimed::InFlight);
        };
        if get::<String>(&row, "operation")? != c.operation
            || get::<String>(&row, "body_sha256")? != c.body_sha256
        {
            return Ok(Claimed::OtherRequest);
        }
        Ok(
            match (
                get::<Option<i64>>(&row, "status")?,
                get::<Option<String>>(&row, "body")?,
            ) {
                (Some(status), Some(sealed)) => Claimed::Answered {
                    status: u16::try_from(status).unwrap_or(500),
                    body: self.cipher.unseal(&sealing_label(c), &sealed)?,
                },
                _ => Claimed::InFlight,
            },
        )
    }

    /// Records the answer of the request that claimed `c.token` first.
    pub async fn answer_client_token(
        &self,
        c: &TokenClaim<'_>,
        status: u16,
        body: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE client_tokens SET status = $3, body = $4 WHERE principal = $1 AND token = $2",
        )
        .bind(c.principal.to_owned())
        .bind(c.token.to_owned())
        .bind(i64::from(status))
        .bind(self.cipher.seal(&sealing_label(c), body))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets every client token older than [`CLIENT_TOKEN_HOURS`].
    pub async fn forget_client_tokens(&self, now: Timestamp) -> StoreResult<()> {
        sqlx::query("DELETE FROM client_tokens WHERE created_at < $1")
            .bind(time::format(
                now - chrono::Duration::hours(CLIENT_TOKEN_HOURS),
            ))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Gives up a claim whose request failed: a retry with the token is
    /// first again (only successful answers are kept).
    pub async fn release_client_token(&self, c: &TokenClaim<'_>) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM client_tokens WHERE principal = $1 AND token = $2 AND status IS NULL",
        )
        .bind(c.principal.to_owned())
        .bind(c.token.to_owned())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
