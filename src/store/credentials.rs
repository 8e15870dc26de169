//! The credential lifecycle (`partner-gateway operators ...`, `keys ...`,
//! `tokens revoke`): each change is one transaction, and running gateways
//! hear it at once through the same channels as any other change (the SQLite
//! WAL probe, the PostgreSQL change feed: `entities::principals`).
//! Disabling an operator also revokes its tokens and ends its sessions
//! (database triggers, migration 0012), however the change is made.

use super::{Store, StoreError, StoreResult};
use crate::model::{join_set, OperatorStatus, PrincipalKind, Role};
use crate::time;

/// A new operator (`operators add`).
#[derive(Clone, Debug)]
pub struct NewOperator {
    pub id: String,
    pub partner: String,
    pub name: String,
    pub roles: Vec<Role>,
}

/// The table holding principals of `kind`.
fn table(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::Operator => "operators",
        PrincipalKind::Customer => "customers",
    }
}

fn not_found(what: String) -> StoreError {
    StoreError::NotFound(what)
}

/// A change that touched no row named nothing that exists.
fn touched(done: sqlx::any::AnyQueryResult, what: impl FnOnce() -> String) -> StoreResult<()> {
    if done.rows_affected() == 0 {
        return Err(not_found(what()));
    }
    Ok(())
}

impl Store {
    /// Refused for an id that still owns AK/SK credentials (left behind by a
    /// deletion that bypassed the database's triggers): they would become
    /// the new operator's.
    pub async fn add_operator(&self, op: &NewOperator) -> StoreResult<()> {
        let owned: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM credentials WHERE principal_kind = 'operator' AND principal_id = $1",
        )
        .bind(op.id.clone())
        .fetch_one(self.pool())
        .await?;
        if owned > 0 {
            return Err(StoreError::Refused(format!(
                "{owned} access key(s) still belong to the id {:?}; revoke them first (keys revoke ACCESS_KEY)",
                op.id
            )));
        }
        sqlx::query(
            "INSERT INTO operators (id, partner_id, name, roles, status, created_at)
             VALUES ($1, $2, $3, $4, 'active', $5)",
        )
        .bind(op.id.clone())
        .bind(op.partner.clone())
        .bind(op.name.clone())
        .bind(join_set(&op.roles))
        .bind(time::format(time::now()))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Sets an operator's status; false when it already had it.
    pub async fn set_operator_status(&self, id: &str, status: OperatorStatus) -> StoreResult<bool> {
        let exists = self.principal_exists(PrincipalKind::Operator, id).await?;
        if !exists {
            return Err(not_found(format!("operator {id}")));
        }
        let done = sqlx::query("UPDATE operators SET status = $1 WHERE id = $2 AND status <> $1")
            .bind(status.as_str())
            .bind(id.to_owned())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_operator_roles(&self, id: &str, roles: &[Role]) -> StoreResult<()> {
        let done = sqlx::query("UPDATE operators SET roles = $1 WHERE id = $2")
            .bind(join_set(roles))
            .bind(id.to_owned())
            .execute(self.pool())
            .await?;
        touched(done, || format!("operator {id}"))
    }

    async fn principal_exists(&self, kind: PrincipalKind, id: &str) -> StoreResult<bool> {
        let sql = format!("SELECT COUNT(*) FROM {} WHERE id = $1", table(kind));
        let n: i64 = sqlx::query_scalar(&sql)
            .bind(id.to_owned())
            .fetch_one(self.pool())
            .await?;
        Ok(n == 1)
    }

    /// A new access key for a principal (`keys create`).
    pub async fn create_key(
        &self,
        kind: PrincipalKind,
        id: &str,
        access_key: &str,
        secret: &str,
    ) -> StoreResult<()> {
        if !self.principal_exists(kind, id).await? {
            return Err(not_found(format!("{} {id}", kind.as_str())));
        }
        sqlx::query(
            "INSERT INTO credentials (access_key, principal_kind, principal_id, secret_sealed, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(access_key.to_owned())
        .bind(kind.as_str())
        .bind(id.to_owned())
        .bind(self.cipher().seal(access_key, secret))
        .bind(time::format(time::now()))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Replaces a key's secret (`keys rotate`): the old one is refused from
    /// the next request on.
    pub async fn rotate_key(&self, access_key: &str, secret: &str) -> StoreResult<()> {
        let done = sqlx::query("UPDATE credentials SET secret_sealed = $1 WHERE access_key = $2")
            .bind(self.cipher().seal(access_key, secret))
            .bind(access_key.to_owned())
            .execute(self.pool())
            .await?;
        touched(done, || format!("access key {access_key}"))
    }

    /// Deletes a key (`keys revoke`).
    pub async fn revoke_key(&self, access_key: &str) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM credentials WHERE access_key = $1")
            .bind(access_key.to_owned())
            .execute(self.pool())
            .await?;
        touched(done, || format!("access key {access_key}"))
    }

    /// Revokes every `X-Auth-Token` the principal holds (`tokens revoke`):
    /// those issued until now (this second included) are refused.
    pub async fn revoke_tokens(&self, kind: PrincipalKind, id: &str) -> StoreResult<()> {
        let sql = format!(
            "UPDATE {} SET tokens_not_before = $1 WHERE id = $2",
            table(kind)
        );
        let done = sqlx::query(&sql)
            .bind(time::format(time::now()))
            .bind(id.to_owned())
            .execute(self.pool())
            .await?;
        touched(done, || format!("{} {id}", kind.as_str()))
    }
}
