//! Which customers a caller's lists may contain: the caller's partner and,
//! for a distributor, its resellers' customers; an operator whose only role is
//! account_manager sees just the customers they manage. This mirrors the R1
//! reach of `policies/` as a second line of defence; the gateway re-checks
//! every listed customer with Cedar and logs any disagreement.

use crate::api_error::ApiError;
use crate::assertion::{CallerKind, Identity};

/// The reach of a partner operator, as SQL over the `customers` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerScope {
    pub partner: String,
    /// Set when the operator is an account manager and nothing else.
    pub account_manager: Option<String>,
}

impl PartnerScope {
    /// Partner routes serve partner operators only; anyone else is denied.
    pub fn of(identity: &Identity) -> Result<PartnerScope, ApiError> {
        match (identity.kind, &identity.partner) {
            (CallerKind::Operator, Some(partner)) => Ok(PartnerScope {
                partner: partner.clone(),
                account_manager: identity
                    .is_account_manager_only()
                    .then(|| identity.id.clone()),
            }),
            _ => Err(ApiError::denied()),
        }
    }

    /// A SQL condition on the customers table aliased `alias`, using
    /// placeholders from `$first` on; returns the condition and its binds in order.
    pub fn condition(&self, alias: &str, first: usize) -> (String, Vec<String>) {
        let mut sql = format!(
            "({alias}.partner_id = ${first} OR {alias}.partner_id IN (SELECT id FROM partners WHERE distributor_id = ${first}))"
        );
        let mut binds = vec![self.partner.clone()];
        if let Some(am) = &self.account_manager {
            sql.push_str(&format!(" AND {alias}.account_manager_id = ${}", first + 1));
            binds.push(am.clone());
        }
        (sql, binds)
    }
}

/// The customer whose own account a customer-side route serves: the customer
/// principal itself, or the customer a session acts as.
pub fn own_customer(identity: &Identity) -> Result<String, ApiError> {
    match identity.kind {
        CallerKind::Customer | CallerKind::Session => {
            identity.customer.clone().ok_or_else(ApiError::denied)
        }
        CallerKind::Operator => Err(ApiError::denied()),
    }
}

/// 400 `CBC.99000037`: `indirect_partner_id` names no reseller of the caller
/// (unknown and foreign look the same).
pub const NOT_YOUR_RESELLER: &str = "CBC.99000037";

impl PartnerScope {
    /// Applies the public API's `indirect_partner_id`: a distributor names one
    /// of its resellers to work on that reseller's customers only (the scope
    /// becomes the reseller's, the account-manager narrowing is kept). An id
    /// that is not one of the distributor's resellers is refused; for any other
    /// caller the parameter is ignored, as the public API documents.
    pub async fn narrowed(
        self,
        store: &crate::store::Store,
        indirect_partner_id: Option<&str>,
    ) -> Result<PartnerScope, ApiError> {
        let Some(reseller) = indirect_partner_id.filter(|s| !s.trim().is_empty()) else {
            return Ok(self);
        };
        let kind: Option<String> = sqlx::query_scalar("SELECT kind FROM partners WHERE id = $1")
            .bind(self.partner.clone())
            .fetch_optional(store.pool())
            .await?;
        if kind.as_deref() != Some(crate::model::PartnerKind::Distributor.as_str()) {
            return Ok(self);
        }
        let found: Option<String> =
            sqlx::query_scalar("SELECT id FROM partners WHERE id = $1 AND distributor_id = $2")
                .bind(reseller.to_owned())
                .bind(self.partner.clone())
                .fetch_optional(store.pool())
                .await?;
        match found {
            Some(id) => Ok(PartnerScope {
                partner: id,
                account_manager: self.account_manager,
            }),
            None => Err(ApiError::new(
                http::StatusCode::BAD_REQUEST,
                NOT_YOUR_RESELLER,
                "indirect_partner_id is not one of your resellers.",
            )),
        }
    }

    /// Whether customer `id` is within this scope (on any executor, so that a
    /// transaction can check before it writes).
    pub async fn sees_customer<'c, E>(&self, exec: E, id: &str) -> Result<bool, ApiError>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        let (cond, binds) = self.condition("c", 2);
        let sql = format!("SELECT c.id FROM customers c WHERE c.id = $1 AND {cond}");
        let mut q = sqlx::query_scalar::<_, String>(&sql).bind(id.to_owned());
        for b in binds {
            q = q.bind(b);
        }
        Ok(q.fetch_optional(exec).await?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;

    fn op(roles: Vec<Role>) -> Identity {
        Identity {
            kind: CallerKind::Operator,
            id: "op-1".into(),
            partner: Some("dist-a".into()),
            roles,
            customer: None,
            scopes: vec![],
            source_operator: None,
        }
    }

    #[test]
    fn account_manager_alone_is_narrowed() {
        let s = PartnerScope::of(&op(vec![Role::AccountManager])).unwrap();
        let (sql, binds) = s.condition("c", 3);
        assert!(sql.contains("c.account_manager_id = $4"), "{sql}");
        assert_eq!(binds, vec!["dist-a".to_string(), "op-1".to_string()]);
        let s = PartnerScope::of(&op(vec![Role::AccountManager, Role::Finance])).unwrap();
        assert_eq!(s.account_manager, None);
    }
}
