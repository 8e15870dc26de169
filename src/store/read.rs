//! Reading records back: one function per entity kind, used by the entity
//! builder (Cedar), the domain store and the tests.

use super::row::{flag, get, money, opt_enum, opt_money, opt_ts, parse_enum, ts};
use super::{Store, StoreError, StoreResult};
use crate::ids::*;
use crate::model::*;
use sqlx::any::AnyRow;

/// An AK/SK credential with its secret unsealed.
#[derive(Clone)]
pub struct CredentialRecord {
    pub access_key: String,
    pub principal_kind: PrincipalKind,
    pub principal_id: String,
    pub secret: String,
}

impl std::fmt::Debug for CredentialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialRecord")
            .field("access_key", &self.access_key)
            .field("principal_kind", &self.principal_kind)
            .field("principal_id", &self.principal_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

pub(crate) fn partner_from_row(row: &AnyRow) -> StoreResult<Partner> {
    Ok(Partner {
        id: PartnerId(get(row, "id")?),
        name: get(row, "name")?,
        kind: parse_enum(row, "kind")?,
        distributor: get::<Option<String>>(row, "distributor_id")?.map(PartnerId),
        grants: Grants {
            budget: flag(row, "grant_budget")?,
            freeze: flag(row, "grant_freeze")?,
            on_behalf: flag(row, "grant_on_behalf")?,
            monthly_quota: opt_money(row, "monthly_quota_cents")?,
            one_time_quota: opt_money(row, "one_time_quota_cents")?,
        },
    })
}

pub(crate) fn operator_from_row(row: &AnyRow) -> StoreResult<Operator> {
    Ok(Operator {
        id: OperatorId(get(row, "id")?),
        partner: PartnerId(get(row, "partner_id")?),
        name: get(row, "name")?,
        roles: split_set(&get::<String>(row, "roles")?)?,
        status: parse_enum(row, "status")?,
        tokens_not_before: opt_ts(row, "tokens_not_before")?,
        generation: get(row, "generation")?,
    })
}

pub(crate) fn customer_from_row(row: &AnyRow) -> StoreResult<Customer> {
    let labels: String = get(row, "labels")?;
    Ok(Customer {
        id: CustomerId(get(row, "id")?),
        account_name: get(row, "account_name")?,
        name: get(row, "name")?,
        email: get(row, "email")?,
        phone: get(row, "phone")?,
        partner: PartnerId(get(row, "partner_id")?),
        association: parse_enum(row, "association")?,
        account_manager: get::<Option<String>>(row, "account_manager_id")?.map(OperatorId),
        frozen: flag(row, "frozen")?,
        freeze_type: opt_enum(row, "freeze_type")?,
        labels: serde_json::from_str(&labels)
            .map_err(|e| StoreError::Corrupt(format!("customer labels: {e}")))?,
        associated_on: ts(row, "associated_on")?,
        tokens_not_before: opt_ts(row, "tokens_not_before")?,
        generation: get(row, "generation")?,
    })
}

pub(crate) fn authorization_from_row(row: &AnyRow) -> StoreResult<Authorization> {
    Ok(Authorization {
        id: AuthorizationId(get(row, "id")?),
        customer: CustomerId(get(row, "customer_id")?),
        partner: PartnerId(get(row, "partner_id")?),
        scopes: split_set(&get::<String>(row, "scopes")?)?,
        status: parse_enum(row, "status")?,
        requested_by: get::<Option<String>>(row, "requested_by")?.map(OperatorId),
        duration_days: get(row, "duration_days")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
        approved_at: opt_ts(row, "approved_at")?,
        expires_at: ts(row, "expires_at")?,
    })
}

pub(crate) fn budget_from_row(row: &AnyRow) -> StoreResult<Budget> {
    Ok(Budget {
        customer: CustomerId(get(row, "customer_id")?),
        budget_type: parse_enum(row, "budget_type")?,
        amount: money(row, "amount_cents")?,
        used: money(row, "used_cents")?,
    })
}

pub(crate) fn order_from_row(row: &AnyRow) -> StoreResult<Order> {
    Ok(Order {
        id: OrderId(get(row, "id")?),
        customer: CustomerId(get(row, "customer_id")?),
        status: get(row, "status")?,
        order_type: get(row, "order_type")?,
        service_type_code: get(row, "service_type_code")?,
        source_type: get(row, "source_type")?,
        amount: money(row, "amount_cents")?,
        official_amount: money(row, "official_amount_cents")?,
        currency: get(row, "currency")?,
        created_at: ts(row, "created_at")?,
        payment_time: opt_ts(row, "payment_time")?,
    })
}

pub(crate) fn line_item_from_row(row: &AnyRow) -> StoreResult<OrderLineItem> {
    Ok(OrderLineItem {
        id: get(row, "id")?,
        product_id: get(row, "product_id")?,
        service_type_code: get(row, "service_type_code")?,
        resource_type_code: get(row, "resource_type_code")?,
        region_code: get(row, "region_code")?,
        period_type: get(row, "period_type")?,
        period_num: get(row, "period_num")?,
        subscription_num: get(row, "subscription_num")?,
        amount: money(row, "amount_cents")?,
    })
}

pub(crate) fn resource_from_row(row: &AnyRow) -> StoreResult<Resource> {
    Ok(Resource {
        id: ResourceId(get(row, "id")?),
        customer: CustomerId(get(row, "customer_id")?),
        charging: parse_enum(row, "charging")?,
        service_type_code: get(row, "service_type_code")?,
        resource_type_code: get(row, "resource_type_code")?,
        name: get(row, "name")?,
        region_code: get(row, "region_code")?,
        status: parse_enum(row, "status")?,
        expire_at: opt_ts(row, "expire_at")?,
        order: get::<Option<String>>(row, "order_id")?.map(OrderId),
        created_at: ts(row, "created_at")?,
    })
}

pub(crate) fn coupon_from_row(row: &AnyRow) -> StoreResult<Coupon> {
    Ok(Coupon {
        id: get(row, "id")?,
        customer: CustomerId(get(row, "customer_id")?),
        face_value: money(row, "face_value_cents")?,
        balance: money(row, "balance_cents")?,
        status: parse_enum(row, "status")?,
        expire_at: ts(row, "expire_at")?,
    })
}

pub(crate) fn expenditure_from_row(row: &AnyRow) -> StoreResult<Expenditure> {
    Ok(Expenditure {
        id: get(row, "id")?,
        customer: CustomerId(get(row, "customer_id")?),
        service_type_code: get(row, "service_type_code")?,
        amount: money(row, "amount_cents")?,
        spent_on: ts(row, "spent_on")?,
    })
}

impl Store {
    async fn fetch_one_by_id<T>(
        &self,
        sql: &str,
        id: &str,
        decode: fn(&AnyRow) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let row = sqlx::query(sql)
            .bind(id.to_owned())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(decode).transpose()
    }

    async fn fetch_all_by_id<T>(
        &self,
        sql: &str,
        id: &str,
        decode: fn(&AnyRow) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let rows = sqlx::query(sql)
            .bind(id.to_owned())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    pub async fn partner(&self, id: &PartnerId) -> StoreResult<Option<Partner>> {
        self.fetch_one_by_id(
            "SELECT * FROM partners WHERE id = $1",
            id.as_str(),
            partner_from_row,
        )
        .await
    }

    /// The resellers of a distributor, by id.
    pub async fn resellers_of(&self, distributor: &PartnerId) -> StoreResult<Vec<Partner>> {
        self.fetch_all_by_id(
            "SELECT * FROM partners WHERE distributor_id = $1 ORDER BY id",
            distributor.as_str(),
            partner_from_row,
        )
        .await
    }

    /// Every partner, by id (the console's partner picker).
    pub async fn partners(&self) -> StoreResult<Vec<Partner>> {
        let rows = sqlx::query("SELECT * FROM partners ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(partner_from_row).collect()
    }

    /// The customers whose direct partner is `partner`, by id.
    pub async fn customers_of(&self, partner: &PartnerId) -> StoreResult<Vec<Customer>> {
        self.fetch_all_by_id(
            "SELECT * FROM customers WHERE partner_id = $1 ORDER BY id",
            partner.as_str(),
            customer_from_row,
        )
        .await
    }

    pub async fn operator(&self, id: &OperatorId) -> StoreResult<Option<Operator>> {
        self.fetch_one_by_id(
            "SELECT * FROM operators WHERE id = $1",
            id.as_str(),
            operator_from_row,
        )
        .await
    }

    pub async fn customer(&self, id: &CustomerId) -> StoreResult<Option<Customer>> {
        self.fetch_one_by_id(
            "SELECT * FROM customers WHERE id = $1",
            id.as_str(),
            customer_from_row,
        )
        .await
    }

    pub async fn authorization(&self, id: &AuthorizationId) -> StoreResult<Option<Authorization>> {
        self.fetch_one_by_id(
            "SELECT * FROM customer_authorizations WHERE id = $1",
            id.as_str(),
            authorization_from_row,
        )
        .await
    }

    /// A customer's authorizations, newest first.
    pub async fn authorizations_of(
        &self,
        customer: &CustomerId,
    ) -> StoreResult<Vec<Authorization>> {
        self.fetch_all_by_id(
            "SELECT * FROM customer_authorizations WHERE customer_id = $1 ORDER BY created_at DESC, id DESC",
            customer.as_str(),
            authorization_from_row,
        )
        .await
    }

    /// The customer's live authorization to its direct partner: the approved
    /// one if any, otherwise the newest pending one (a newer pending request
    /// must not hide an approved authorization). Expiry is judged by the
    /// policies, which see `expires_at` and the request time.
    pub async fn live_authorization(
        &self,
        customer: &CustomerId,
        partner: &PartnerId,
    ) -> StoreResult<Option<Authorization>> {
        Ok(self
            .live_authorization_candidates(customer, partner)
            .await?
            .into_iter()
            .next())
    }

    /// Every pending or approved authorization of the customer to `partner`,
    /// the live one first (approved before pending, then newest first). The
    /// entity cache keeps all their ids: a change to any of them can change
    /// which one is live.
    pub async fn live_authorization_candidates(
        &self,
        customer: &CustomerId,
        partner: &PartnerId,
    ) -> StoreResult<Vec<Authorization>> {
        let rows = sqlx::query(
            "SELECT * FROM customer_authorizations
             WHERE customer_id = $1 AND partner_id = $2 AND status IN ('pending', 'approved')
             ORDER BY CASE WHEN status = 'approved' THEN 0 ELSE 1 END, created_at DESC, id DESC",
        )
        .bind(customer.as_str().to_owned())
        .bind(partner.as_str().to_owned())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(authorization_from_row).collect()
    }

    pub async fn budget(&self, customer: &CustomerId) -> StoreResult<Option<Budget>> {
        self.fetch_one_by_id(
            "SELECT * FROM budgets WHERE customer_id = $1",
            customer.as_str(),
            budget_from_row,
        )
        .await
    }

    /// One order with its line items.
    pub async fn order(&self, id: &OrderId) -> StoreResult<Option<Order>> {
        self.fetch_one_by_id(
            "SELECT * FROM orders WHERE id = $1",
            id.as_str(),
            order_from_row,
        )
        .await
    }

    pub async fn resource(&self, id: &ResourceId) -> StoreResult<Option<Resource>> {
        self.fetch_one_by_id(
            "SELECT * FROM resources WHERE id = $1",
            id.as_str(),
            resource_from_row,
        )
        .await
    }

    pub async fn coupons_of(&self, customer: &CustomerId) -> StoreResult<Vec<Coupon>> {
        self.fetch_all_by_id(
            "SELECT * FROM coupons WHERE customer_id = $1 ORDER BY expire_at, id",
            customer.as_str(),
            coupon_from_row,
        )
        .await
    }

    pub async fn expenditures_of(&self, customer: &CustomerId) -> StoreResult<Vec<Expenditure>> {
        self.fetch_all_by_id(
            "SELECT * FROM expenditures WHERE customer_id = $1 ORDER BY spent_on, id",
            customer.as_str(),
            expenditure_from_row,
        )
        .await
    }

    /// Who an access key belongs to, without touching its secret.
    pub async fn credential_owner(
        &self,
        access_key: &str,
    ) -> StoreResult<Option<(PrincipalKind, String)>> {
        let Some(row) = sqlx::query(
            "SELECT principal_kind, principal_id FROM credentials WHERE access_key = $1",
        )
        .bind(access_key.to_owned())
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(None);
        };
        Ok(Some((
            parse_enum(&row, "principal_kind")?,
            get(&row, "principal_id")?,
        )))
    }

    /// Looks up an access key and unseals its secret.
    pub async fn credential(&self, access_key: &str) -> StoreResult<Option<CredentialRecord>> {
        let Some(row) = sqlx::query("SELECT * FROM credentials WHERE access_key = $1")
            .bind(access_key.to_owned())
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let sealed: String = get(&row, "secret_sealed")?;
        Ok(Some(CredentialRecord {
            access_key: access_key.to_owned(),
            principal_kind: parse_enum(&row, "principal_kind")?,
            principal_id: get(&row, "principal_id")?,
            secret: self.cipher().unseal(access_key, &sealed)?,
        }))
    }
}
