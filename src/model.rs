//! The domain's vocabulary (docs/domain.md section 1): enums with one textual form
//! shared by the fixture format, the database and the Cedar entities, and the
//! records the store reads and writes.

use crate::ids::*;
use crate::time::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An enum whose variants have exactly one text form (serde, database, Cedar).
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl TextEnum for $name {
            fn all() -> &'static [$name] {
                $name::ALL
            }
            fn text(self) -> &'static str {
                self.as_str()
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { kind: stringify!($name), value: s.to_owned() }),
                }
            }
        }
    };
}

/// An enum with one text form per variant (see `text_enum!`).
pub trait TextEnum: FromStr + Copy + 'static {
    fn all() -> &'static [Self];
    fn text(self) -> &'static str;
}

/// A text that is not one of an enum's values.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown {kind} value {value:?}")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

text_enum!(
    /// What kind of partner an organisation is.
    PartnerKind { SolutionProvider = "solution_provider", Distributor = "distributor", Reseller = "reseller" }
);
text_enum!(
    /// An operator's role; an operator holds one to three.
    Role { Admin = "admin", AccountManager = "account_manager", Finance = "finance", Operations = "operations" }
);
text_enum!(OperatorStatus { Active = "active", Disabled = "disabled" });
text_enum!(
    /// How a customer is associated with its partner. Wire values: referral `"1"`, reseller `"3"`.
    Association { Referral = "referral", Reseller = "reseller" }
);
text_enum!(FreezeType { Account = "ACCOUNT", AccountAndResource = "ACCOUNT_AND_RESOURCE" });
text_enum!(AuthorizationScope { Om = "om", Order = "order" });
text_enum!(AuthorizationStatus { Pending = "pending", Approved = "approved", Rejected = "rejected", Revoked = "revoked" });
text_enum!(BudgetType { Monthly = "MONTHLY", Package = "PACKAGE" });
text_enum!(Charging { YearlyMonthly = "yearly_monthly", PayPerUse = "pay_per_use" });
text_enum!(ResourceStatus { InUse = "in_use", Stopped = "stopped", Frozen = "frozen", Expired = "expired", Closed = "closed" });
text_enum!(
    /// What the customer-self O&M route does to a resource.
    ResourceOperation { Start = "start", Stop = "stop", Restart = "restart", Renew = "renew", Unsubscribe = "unsubscribe" }
);
text_enum!(CouponStatus { Available = "available", Used = "used", Expired = "expired" });
text_enum!(ExportStatus { Pending = "pending", Completed = "completed", Failed = "failed" });
text_enum!(PrincipalKind { Operator = "operator", Customer = "customer" });

impl Association {
    /// The public API's `association_type` wire value.
    pub fn wire_value(self) -> &'static str {
        match self {
            Association::Referral => "1",
            Association::Reseller => "3",
        }
    }
}

/// Joins enum values into the comma-separated form the database keeps for small sets.
pub fn join_set<T: Copy + fmt::Display>(values: &[T]) -> String {
    values
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Splits the comma-separated database form back into enum values.
pub fn split_set<T: FromStr<Err = UnknownValue>>(text: &str) -> Result<Vec<T>, UnknownValue> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(T::from_str)
        .collect()
}

/// Order status codes of the public API, as ListCustomerOrders accepts them
/// in its `status` filter (docs/wire-format.md §4.8): 1 pending approval,
/// 3 processing, 4 cancelled, 5 completed, 6 pending payment, 9 to be
/// confirmed. The response models also list 2 (pending refund) and 10..=13
/// (logistics of physical goods); the store has neither refunds nor goods, so
/// it neither stores those codes nor accepts them as a filter, and every
/// stored order can be found with the public filter.
pub const ORDER_STATUSES: &[i64] = &[1, 3, 4, 5, 6, 9];
/// Order status (public code): pending approval.
pub const ORDER_STATUS_PENDING_APPROVAL: i64 = 1;
/// Order status (public code): pending payment.
pub const ORDER_STATUS_PENDING_PAYMENT: i64 = 6;
/// The statuses of an order not paid yet (when it has no payment time
/// either, [`Order::unpaid`]).
pub const UNPAID_ORDER_STATUSES: [i64; 2] =
    [ORDER_STATUS_PENDING_APPROVAL, ORDER_STATUS_PENDING_PAYMENT];
/// Order type (public code): new purchase.
pub const ORDER_TYPE_NEW: i64 = 1;
/// Order type codes of the public API.
pub const ORDER_TYPES: &[i64] = &[1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15];

/// What a distributor delegates to one of its resellers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    pub budget: bool,
    pub freeze: bool,
    pub on_behalf: bool,
    pub monthly_quota: Option<Decimal>,
    pub one_time_quota: Option<Decimal>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partner {
    pub id: PartnerId,
    pub name: String,
    pub kind: PartnerKind,
    pub distributor: Option<PartnerId>,
    pub grants: Grants,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    pub id: OperatorId,
    pub partner: PartnerId,
    pub name: String,
    pub roles: Vec<Role>,
    pub status: OperatorStatus,
    /// Tokens issued at or before this instant are refused (set on disable).
    pub tokens_not_before: Option<Timestamp>,
    /// New for every row created: a token names the generation it was
    /// issued to, so none outlives a deleted principal of the same id.
    pub generation: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Customer {
    pub id: CustomerId,
    pub account_name: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub partner: PartnerId,
    pub association: Association,
    pub account_manager: Option<OperatorId>,
    pub frozen: bool,
    pub freeze_type: Option<FreezeType>,
    pub labels: Vec<String>,
    pub associated_on: Timestamp,
    /// Tokens issued at or before this instant are refused.
    pub tokens_not_before: Option<Timestamp>,
    /// As [`Operator::generation`].
    pub generation: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub id: AuthorizationId,
    pub customer: CustomerId,
    pub partner: PartnerId,
    pub scopes: Vec<AuthorizationScope>,
    pub status: AuthorizationStatus,
    pub requested_by: Option<OperatorId>,
    /// How long an approval lasts; the clock starts at approval (seeded
    /// authorizations may have none and keep their `expires_at`).
    pub duration_days: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub approved_at: Option<Timestamp>,
    pub expires_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    pub customer: CustomerId,
    pub budget_type: BudgetType,
    pub amount: Decimal,
    pub used: Decimal,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub customer: CustomerId,
    pub status: i64,
    pub order_type: i64,
    pub service_type_code: String,
    pub source_type: i64,
    /// What the customer pays (after discounts and price adjustments).
    pub amount: Decimal,
    /// The list price.
    pub official_amount: Decimal,
    pub currency: String,
    pub created_at: Timestamp,
    pub payment_time: Option<Timestamp>,
}

impl Order {
    /// Not paid yet: pending approval or payment, with no payment time. Price
    /// adjustment and the customer overview's unpaid count use this one
    /// definition.
    pub fn unpaid(&self) -> bool {
        UNPAID_ORDER_STATUSES.contains(&self.status) && self.payment_time.is_none()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderLineItem {
    pub id: String,
    pub product_id: String,
    pub service_type_code: String,
    pub resource_type_code: Option<String>,
    pub region_code: Option<String>,
    pub period_type: Option<i64>,
    pub period_num: Option<i64>,
    pub subscription_num: i64,
    pub amount: Decimal,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub id: ResourceId,
    pub customer: CustomerId,
    pub charging: Charging,
    pub service_type_code: String,
    pub resource_type_code: Option<String>,
    pub name: String,
    pub region_code: Option<String>,
    pub status: ResourceStatus,
    pub expire_at: Option<Timestamp>,
    pub order: Option<OrderId>,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coupon {
    pub id: String,
    pub customer: CustomerId,
    pub face_value: Decimal,
    pub balance: Decimal,
    pub status: CouponStatus,
    pub expire_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expenditure {
    pub id: String,
    pub customer: CustomerId,
    pub service_type_code: String,
    pub amount: Decimal,
    /// The day the amount was spent (UTC midnight).
    pub spent_on: Timestamp,
}

/// An assume-role session as the policies see it. The store reads them
/// (`crate::store`); the policy test runner makes them from a fixture.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionFacts {
    pub id: SessionId,
    /// The source identity that switched in.
    pub operator: OperatorId,
    pub customer: CustomerId,
    pub scopes: Vec<AuthorizationScope>,
    pub expires_at: Timestamp,
    pub ended: bool,
    /// Why it ended, when it has (no policy reads it: its holder's 403 says it).
    pub end_reason: Option<String>,
    /// The customer's live authorization when the session was created, if any.
    pub authorization_id: Option<AuthorizationId>,
}

impl SessionFacts {
    /// Why the session no longer acts at `now`: the reason it was ended
    /// with (`switched_back`, `authorization_revoked`, ...), or `expired`;
    /// `None` while it is live.
    pub fn ended_why(&self, now: Timestamp) -> Option<&str> {
        if self.ended {
            Some(self.end_reason.as_deref().unwrap_or("ended"))
        } else if self.expires_at <= now {
            Some("expired")
        } else {
            None
        }
    }
}
