//! Assume-role sessions at rest (table `partner_sessions`).

use super::query::{bind_all, Where};
use super::{Store, StoreResult};
use crate::ids::*;
use crate::model::SessionFacts;
use crate::model::{join_set, split_set, AuthorizationScope};
use crate::time::{self, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

/// One session row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub access_key: String,
    pub operator: OperatorId,
    pub partner: PartnerId,
    pub customer: CustomerId,
    /// The customer's live authorization when the session was created, if any.
    pub authorization: Option<AuthorizationId>,
    pub scopes: Vec<AuthorizationScope>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// Why it ended: `switched_back`, `ended_from_inside`, `ended_by_admin`,
    /// or what ended it in the store (`authorization_revoked`,
    /// `operator_disabled`, `on_behalf_withdrawn`, `operator_deleted`,
    /// `customer_deleted`).
    pub end_reason: Option<String>,
}

/// Why a session was ended through the gateway (the store's own triggers
/// end sessions for their reasons too: [`SessionRecord::end_reason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// `DELETE /v3/partner-sessions/{id}` by the operator who switched in.
    SwitchedBack,
    /// The same, signed with the session's own credentials.
    EndedFromInside,
    /// The admin console's "end".
    EndedByAdmin,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::SwitchedBack => "switched_back",
            EndReason::EndedFromInside => "ended_from_inside",
            EndReason::EndedByAdmin => "ended_by_admin",
        }
    }
}

impl SessionRecord {
    /// What the policies see of the session.
    pub fn facts(&self) -> SessionFacts {
        SessionFacts {
            id: self.id.clone(),
            operator: self.operator.clone(),
            customer: self.customer.clone(),
            scopes: self.scopes.clone(),
            expires_at: self.expires_at,
            ended: self.ended_at.is_some(),
            end_reason: self.end_reason.clone(),
            authorization_id: self.authorization.clone(),
        }
    }

    /// When and why it stopped acting ([`SessionFacts::ended_why`]); `None`
    /// while it is live.
    pub fn end(&self, now: Timestamp) -> Option<(Timestamp, String)> {
        let facts = self.facts();
        let why = facts.ended_why(now)?;
        Some((self.ended_at.unwrap_or(self.expires_at), why.to_owned()))
    }

    /// Not ended and not expired at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.ended_at.is_none() && now < self.expires_at
    }
}

fn from_row(row: &AnyRow) -> StoreResult<SessionRecord> {
    let ended: Option<String> = row.try_get("ended_at")?;
    Ok(SessionRecord {
        id: SessionId(row.try_get("id")?),
        access_key: row.try_get("access_key")?,
        operator: OperatorId(row.try_get("operator_id")?),
        partner: PartnerId(row.try_get("partner_id")?),
        customer: CustomerId(row.try_get("customer_id")?),
        authorization: row
            .try_get::<Option<String>, _>("authorization_id")?
            .map(AuthorizationId),
        scopes: split_set(&row.try_get::<String, _>("scopes")?)?,
        created_at: time::parse(&row.try_get::<String, _>("created_at")?)?,
        expires_at: time::parse(&row.try_get::<String, _>("expires_at")?)?,
        ended_at: ended.as_deref().map(time::parse).transpose()?,
        end_reason: row.try_get("end_reason")?,
    })
}

impl Store {
    /// Stores a new session and, in the same transaction, the customer's
    /// activity record of the switch-in.
    pub async fn insert_session(&self, s: &SessionRecord) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO partner_sessions (id, access_key, operator_id, partner_id, customer_id,
                authorization_id, scopes, created_at, expires_at, ended_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
        )
        .bind(s.id.0.clone())
        .bind(s.access_key.clone())
        .bind(s.operator.0.clone())
        .bind(s.partner.0.clone())
        .bind(s.customer.0.clone())
        .bind(s.authorization.as_ref().map(|a| a.0.clone()))
        .bind(join_set(&s.scopes))
        .bind(time::format(s.created_at))
        .bind(time::format(s.expires_at))
        .execute(&mut *tx)
        .await?;
        let detail =
            serde_json::json!({"scopes": s.scopes, "expires_at": time::format(s.expires_at)});
        activity(&mut tx, s, "assume_role", &detail, s.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn session(&self, id: &SessionId) -> StoreResult<Option<SessionRecord>> {
        let row = sqlx::query("SELECT * FROM partner_sessions WHERE id = $1")
            .bind(id.0.clone())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The sessions (aliased `s`) matching `w`, newest first.
    pub async fn sessions_where(&self, w: &Where) -> StoreResult<Vec<SessionRecord>> {
        let sql = format!(
            "SELECT s.* FROM partner_sessions s{} ORDER BY s.created_at DESC, s.id DESC",
            w.sql()
        );
        let rows = bind_all(sqlx::query(&sql), w.binds())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Ends a session (switch back) for `reason` and records it in the
    /// customer's activity; true when it had not ended before.
    pub async fn end_session(
        &self,
        s: &SessionRecord,
        reason: EndReason,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE partner_sessions SET ended_at = $1, end_reason = $2
             WHERE id = $3 AND ended_at IS NULL",
        )
        .bind(time::format(now))
        .bind(reason.as_str())
        .bind(s.id.0.clone())
        .execute(&mut *tx)
        .await?;
        let ended = done.rows_affected() == 1;
        if ended {
            let detail = serde_json::json!({"reason": reason.as_str()});
            activity(&mut tx, s, "end_session", &detail, now).await?;
        }
        tx.commit().await?;
        Ok(ended)
    }

    /// How many sessions are live now (for metrics).
    pub async fn count_live_sessions(&self, now: Timestamp) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM partner_sessions WHERE ended_at IS NULL AND expires_at > $1",
        )
        .bind(time::format(now))
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<i64, _>("n")?)
    }
}

/// One row of the customer's partner-activity log for a session event.
async fn activity(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    s: &SessionRecord,
    action: &str,
    detail: &serde_json::Value,
    at: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO activities (customer_id, session_id, operator_id, partner_id, action, target, detail, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(s.customer.0.clone())
    .bind(s.id.0.clone())
    .bind(s.operator.0.clone())
    .bind(s.partner.0.clone())
    .bind(action.to_owned())
    .bind(s.id.0.clone())
    .bind(detail.to_string())
    .bind(time::format(at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
