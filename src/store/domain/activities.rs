//! What partners did on a customer's behalf (in a session): recorded with
//! each change a session makes, listed for the customer.

use super::super::query::{Bind, Where};
use super::super::row::{get, ts};
use super::super::{Store, StoreResult};
use super::Page;
use crate::catalog::fields::Paging;
use crate::time::{self, Timestamp};
use sqlx::AnyConnection;

/// One action of a partner on a customer's behalf.
#[derive(Debug)]
pub struct Activity {
    pub id: i64,
    pub session_id: Option<String>,
    pub operator_id: Option<String>,
    pub partner_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    /// What was done, as JSON text.
    pub detail: Option<String>,
    pub at: Timestamp,
}

/// An action to record: who did what to which target of the customer.
#[derive(Debug)]
pub struct NewActivity<'a> {
    pub customer: &'a str,
    pub session: &'a str,
    pub operator: Option<&'a str>,
    pub partner: Option<&'a str>,
    pub action: &'a str,
    pub target: &'a str,
    /// What was done, as a JSON object.
    pub detail: &'a serde_json::Value,
    pub at: Timestamp,
}

/// Records `a` in the transaction of the change it describes.
pub(super) async fn record(conn: &mut AnyConnection, a: &NewActivity<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO activities (customer_id, session_id, operator_id, partner_id, action, target, detail, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(a.customer.to_owned())
    .bind(a.session.to_owned())
    .bind(a.operator.map(str::to_owned))
    .bind(a.partner.map(str::to_owned))
    .bind(a.action.to_owned())
    .bind(a.target.to_owned())
    .bind(a.detail.to_string())
    .bind(time::format(a.at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// What partners did on customer `customer`'s behalf, newest first.
    pub async fn activities(&self, customer: &str, paging: Paging) -> StoreResult<Page<Activity>> {
        let mut f = Where::new();
        f.eq("customer_id", Bind::Text(customer.to_owned()));
        super::page(
            self.pool(),
            f,
            (
                "FROM activities",
                "SELECT * FROM activities",
                "ORDER BY created_at DESC, id DESC",
            ),
            paging,
            |r| {
                Ok(Activity {
                    id: get(r, "id")?,
                    session_id: get(r, "session_id")?,
                    operator_id: get(r, "operator_id")?,
                    partner_id: get(r, "partner_id")?,
                    action: get(r, "action")?,
                    target: get(r, "target")?,
                    detail: get(r, "detail")?,
                    at: ts(r, "created_at")?,
                })
            },
        )
        .await
    }
}
