//! Typed requests of the customer's own account: its consent controls and
//! partner activity (`/v2/customers/...`, R7), and orders, resources and O&M
//! (`/v2/customer/...`, R9, R10). The target is the caller's own customer
//! account: the customer principal, or the customer a session acts as.

use super::fields::{
    self, cedar_decimal, choice, non_empty, positive_money, schema, Money, NoFields, Paging,
    PagingQuery,
};
use super::orders::{
    order_by_schema, order_status, order_status_schema, order_type, order_type_schema, OrderBy,
};
use super::{ctx_string, ApiRequest, CallerRefs, Input, ParseRequest};
use crate::api_error::ApiError;
use crate::model::{Charging, ResourceOperation, ResourceStatus};
use crate::refs::EntityRef;
use crate::time::Timestamp;
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

fn own(caller: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
    Ok(vec![caller.own_customer()?])
}

// ---- consent and activity ----------------------------------------------------

/// `GET /v2/customers/partner-authorizations`: the caller's own customer, and
/// each authorization listed.
#[derive(Debug)]
pub struct ListOwnAuthorizations {
    pub paging: Paging,
}

impl ParseRequest for ListOwnAuthorizations {
    type Query = PagingQuery;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        Ok(ListOwnAuthorizations {
            paging: PagingQuery::parse(input.query)?,
        })
    }
}

impl ApiRequest for ListOwnAuthorizations {
    fn paging(&self) -> Option<Paging> {
        Some(self.paging)
    }

    fn targets(&self, caller: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        own(caller)
    }
}

/// `POST /v2/customers/partner-authorizations/{authorization_id}/approve|reject|revoke`.
#[derive(Debug)]
pub struct AuthorizationDecision {
    pub authorization_id: String,
}

impl AuthorizationDecision {
    fn parse(input: &Input) -> Result<Self, ApiError> {
        fields::no_query(input.query)?;
        fields::no_body(input.body)?;
        Ok(AuthorizationDecision {
            authorization_id: input.param("authorization_id")?,
        })
    }

    fn targets(&self) -> Vec<EntityRef> {
        vec![EntityRef::Authorization(
            self.authorization_id.as_str().into(),
        )]
    }
}

macro_rules! authorization_decision {
    ($($name:ident),+) => {$(
        #[derive(Debug)]
        pub struct $name(pub AuthorizationDecision);

        impl ParseRequest for $name {
            type Query = NoFields;
            type Body = NoFields;

            fn parse(input: &Input) -> Result<Self, ApiError> {
                AuthorizationDecision::parse(input).map($name)
            }
        }

        impl ApiRequest for $name {
            fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
                Ok(self.0.targets())
            }
        }
    )+};
}

authorization_decision!(
    ApproveAuthorization,
    RejectAuthorization,
    RevokeAuthorization
);

/// `GET /v2/customers/partner-activity`: who acted on the caller's account.
#[derive(Debug)]
pub struct ListPartnerActivity {
    pub paging: Paging,
}

impl ParseRequest for ListPartnerActivity {
    type Query = PagingQuery;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        Ok(ListPartnerActivity {
            paging: PagingQuery::parse(input.query)?,
        })
    }
}

impl ApiRequest for ListPartnerActivity {
    fn targets(&self, caller: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        own(caller)
    }
}

// ---- orders --------------------------------------------------------------------

/// A billing period: `period_type` 0 day, 1 week, 2 month, 3 year, 4 hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub period_type: i64,
    pub period_num: i64,
}

impl Period {
    pub const ONE_MONTH: Period = Period {
        period_type: 2,
        period_num: 1,
    };

    /// `t` moved on by this period; `None` when the period is not one (or overflows).
    pub fn after(self, t: Timestamp) -> Option<Timestamp> {
        let n = u32::try_from(self.period_num).ok().filter(|n| *n > 0)?;
        match self.period_type {
            0 => t.checked_add_signed(chrono::Duration::days(n.into())),
            1 => t.checked_add_signed(chrono::Duration::weeks(n.into())),
            2 => t.checked_add_months(chrono::Months::new(n)),
            3 => t.checked_add_months(chrono::Months::new(n.checked_mul(12)?)),
            4 => t.checked_add_signed(chrono::Duration::hours(n.into())),
            _ => None,
        }
    }
}

/// Longest `service_type_code` and `product_id`.
pub const MAX_CODE_LEN: usize = 64;

/// `POST /v2/customer/orders`: a `yearly_monthly` purchase (with its period
/// and amount) or a `pay_per_use` one (neither: it is billed by usage).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceOrder {
    pub charging: Charging,
    /// `hws.service.type.<name>`.
    pub service_type_code: String,
    pub product_id: String,
    /// Period and amount, for yearly/monthly purchases.
    pub subscription: Option<(Period, Decimal)>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = place_order_schema)]
pub struct PlaceOrderBody {
    #[schemars(schema_with = "schema::one_of::<Charging>")]
    charging: Option<String>,
    #[schemars(schema_with = "service_type_code_schema")]
    service_type_code: Option<String>,
    #[schemars(schema_with = "product_id_schema")]
    product_id: Option<String>,
    #[serde(default, deserialize_with = "fields::integer")]
    period_type: Option<i64>,
    #[serde(default, deserialize_with = "fields::integer")]
    period_num: Option<i64>,
    amount: Option<Money>,
}

/// `service_type_code`'s form (the parser below).
fn service_type_code_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "maxLength": MAX_CODE_LEN, "pattern": "^hws\\.service\\.type\\.[a-z0-9._-]+$"})
}

/// `product_id`'s form (the parser below).
fn product_id_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "maxLength": MAX_CODE_LEN, "pattern": "^[A-Za-z0-9._-]+$"})
}

/// The longest subscription, by `period_type`: 2 (months) or 3 (years).
const PERIODS: [(i64, i64); 2] = [(2, 9), (3, 3)];

/// What depends on `charging` (the parser below), as three whole bodies a
/// generated client can build: pay-per-use (no period or amount), monthly
/// and yearly (each up to its [`PERIODS`] bound, with an amount).
fn place_order_schema(schema: &mut schemars::Schema) {
    let field = |name: &str| schema.get("properties").map(|p| p[name].clone());
    let (service_type_code, product_id) = (field("service_type_code"), field("product_id"));
    // The amount, not null: the first alternative of its optional schema.
    let amount = field("amount").map(|a| a["anyOf"][0].clone());
    let order = |title: &str, charging: &str, period: Option<(i64, i64)>| {
        let mut order = serde_json::json!({
            "title": title,
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "charging": {"const": charging},
                "service_type_code": service_type_code,
                "product_id": product_id,
            },
            "required": ["charging", "service_type_code", "product_id"],
        });
        if let Some((period_type, max)) = period {
            let properties = &mut order["properties"];
            properties["period_type"] = serde_json::json!({"const": period_type});
            properties["period_num"] =
                serde_json::json!({"type": "integer", "minimum": 1, "maximum": max});
            properties["amount"] = amount.clone().unwrap_or_default();
            for name in ["period_type", "period_num", "amount"] {
                if let Some(required) = order["required"].as_array_mut() {
                    required.push(name.into());
                }
            }
        }
        order
    };
    let [(months, max_months), (years, max_years)] = PERIODS;
    *schema = schemars::json_schema!({
        "oneOf": [
            order("PayPerUseOrder", "pay_per_use", None),
            order("MonthlyOrder", "yearly_monthly", Some((months, max_months))),
            order("YearlyOrder", "yearly_monthly", Some((years, max_years))),
        ]
    });
}

fn code(field: &str, value: Option<String>, ok: impl Fn(char) -> bool) -> Result<String, ApiError> {
    let v = non_empty(value).ok_or_else(|| fields::missing(field))?;
    let v = v.trim();
    if v.len() > MAX_CODE_LEN || !v.chars().all(ok) {
        return Err(fields::invalid(
            field,
            format!("must be at most {MAX_CODE_LEN} letters, digits, '.', '_' or '-'"),
        ));
    }
    Ok(v.to_owned())
}

impl ParseRequest for PlaceOrder {
    type Query = NoFields;
    type Body = PlaceOrderBody;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let b: Self::Body = fields::json(input.body)?;
        let charging: Charging =
            choice("charging", b.charging)?.ok_or_else(|| fields::missing("charging"))?;
        let code_char = |c: char| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_' || c == '-'
        };
        let service_type_code = code("service_type_code", b.service_type_code, code_char)?;
        if service_type_code
            .strip_prefix("hws.service.type.")
            .is_none_or(str::is_empty)
        {
            return Err(fields::invalid(
                "service_type_code",
                "must be a service type such as hws.service.type.ec2",
            ));
        }
        let product_id = code("product_id", b.product_id, |c| {
            c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'
        })?;
        let subscription = match charging {
            Charging::PayPerUse => {
                for (field, given) in [
                    ("period_type", b.period_type.is_some()),
                    ("period_num", b.period_num.is_some()),
                    ("amount", b.amount.is_some()),
                ] {
                    if given {
                        return Err(fields::invalid(
                            field,
                            "does not apply to pay_per_use (billed by usage)",
                        ));
                    }
                }
                None
            }
            Charging::YearlyMonthly => {
                let period_type = b
                    .period_type
                    .ok_or_else(|| fields::missing("period_type"))?;
                let Some((_, max)) = PERIODS.iter().find(|(t, _)| *t == period_type) else {
                    return Err(fields::invalid(
                        "period_type",
                        "must be 2 (month) or 3 (year)",
                    ));
                };
                let period_num = fields::long_in("period_num", b.period_num, 1..=*max, None)?;
                let amount = positive_money("amount", b.amount)?;
                Some((
                    Period {
                        period_type,
                        period_num,
                    },
                    amount,
                ))
            }
        };
        Ok(PlaceOrder {
            charging,
            service_type_code,
            product_id,
            subscription,
        })
    }
}

impl ApiRequest for PlaceOrder {
    fn targets(&self, caller: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        own(caller)
    }

    fn context(&self, _: &CallerRefs) -> Map<String, Value> {
        let mut ctx = Map::new();
        ctx_string(&mut ctx, "charging", self.charging.as_str());
        ctx_string(&mut ctx, "service_type_code", &self.service_type_code);
        if let Some((_, amount)) = self.subscription {
            ctx_string(&mut ctx, "amount", &cedar_decimal(amount));
        }
        ctx
    }
}

/// `GET /v2/customer/orders`: the customer's own orders, in the
/// ListCustomerOrders shape.
#[derive(Debug)]
pub struct ListOwnOrders {
    pub status: Option<i64>,
    pub order_type: Option<i64>,
    pub order_by: OrderBy,
    pub paging: Paging,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnOrdersQuery {
    #[serde(default)]
    #[schemars(schema_with = "schema::offset")]
    offset: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::limit")]
    limit: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "order_status_schema")]
    status: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "order_type_schema")]
    order_type: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "order_by_schema")]
    order_by: Option<String>,
}

impl ParseRequest for ListOwnOrders {
    type Query = OwnOrdersQuery;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let q: Self::Query = fields::query(input.query)?;
        Ok(ListOwnOrders {
            paging: Paging::from_text(q.offset, q.limit)?,
            status: order_status(q.status)?,
            order_type: order_type(q.order_type)?,
            order_by: OrderBy::parse(q.order_by)?,
        })
    }
}

impl ApiRequest for ListOwnOrders {
    fn paging(&self) -> Option<Paging> {
        Some(self.paging)
    }

    fn targets(&self, caller: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        own(caller)
    }
}

// ---- resources -------------------------------------------------------------------

/// `GET /v2/customer/resources`: the customer's own resources, newest first.
#[derive(Debug)]
pub struct ListOwnResources {
    pub charging: Option<Charging>,
    /// A store status name, against the status as of now (expiry included).
    pub status: Option<ResourceStatus>,
    pub paging: Paging,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnResourcesQuery {
    #[serde(default)]
    #[schemars(schema_with = "schema::offset")]
    offset: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::limit")]
    limit: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::one_of::<Charging>")]
    charging: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::one_of::<ResourceStatus>")]
    status: Option<String>,
}

impl ParseRequest for ListOwnResources {
    type Query = OwnResourcesQuery;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let q: Self::Query = fields::query(input.query)?;
        Ok(ListOwnResources {
            paging: Paging::from_text(q.offset, q.limit)?,
            charging: choice("charging", q.charging)?,
            status: choice("status", q.status)?,
        })
    }
}

impl ApiRequest for ListOwnResources {
    fn paging(&self) -> Option<Paging> {
        Some(self.paging)
    }

    fn targets(&self, caller: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        own(caller)
    }
}

/// `POST /v2/customer/resources/{resource_id}/operations`.
#[derive(Debug)]
pub struct OperateResource {
    pub resource_id: String,
    pub operation: ResourceOperation,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationBody {
    #[schemars(schema_with = "schema::one_of::<ResourceOperation>")]
    operation: Option<String>,
}

impl ParseRequest for OperateResource {
    type Query = NoFields;
    type Body = OperationBody;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let b: Self::Body = fields::json(input.body)?;
        Ok(OperateResource {
            resource_id: input.param("resource_id")?,
            operation: choice("operation", b.operation)?
                .ok_or_else(|| fields::missing("operation"))?,
        })
    }
}

impl ApiRequest for OperateResource {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(vec![EntityRef::Resource(self.resource_id.as_str().into())])
    }

    fn context(&self, _: &CallerRefs) -> Map<String, Value> {
        let mut ctx = Map::new();
        ctx_string(&mut ctx, "operation", self.operation.as_str());
        ctx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(r: &dyn ApiRequest) -> serde_json::Map<String, serde_json::Value> {
        let principal = EntityRef::Operator("op".into());
        r.context(&CallerRefs {
            principal: &principal,
            own_customer: None,
            auth_method: "signature",
        })
    }

    fn place(body: serde_json::Value) -> Result<PlaceOrder, ApiError> {
        let body = body.to_string();
        PlaceOrder::parse(&Input {
            params: &[],
            query: "",
            body: body.as_bytes(),
        })
    }

    #[test]
    fn purchases_are_validated() {
        let ok = place(serde_json::json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2",
            "product_id": "00301-ec2", "period_type": 3, "period_num": 1, "amount": "1200.00"}))
        .unwrap();
        assert_eq!(
            ok.subscription.unwrap().0,
            Period {
                period_type: 3,
                period_num: 1
            }
        );
        assert_eq!(ctx(&ok)["amount"], "1200.00");
        let ppu = place(serde_json::json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.obs",
            "product_id": "obs-std"}))
        .unwrap();
        assert_eq!(ppu.subscription, None);
        let refused = [
            serde_json::json!({"charging": "monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p"}),
            serde_json::json!({"charging": "pay_per_use", "service_type_code": "ec2", "product_id": "p"}),
            serde_json::json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.ec2", "product_id": "a b"}),
            serde_json::json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.ec2", "product_id": "p", "amount": "1.00"}),
            serde_json::json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p", "period_type": 1, "period_num": 1, "amount": "1.00"}),
            serde_json::json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p", "period_type": 2, "period_num": 10, "amount": "1.00"}),
            serde_json::json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p", "period_type": 3, "period_num": 4, "amount": "1.00"}),
            serde_json::json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p", "period_type": 2, "period_num": 1, "amount": "0.00"}),
            serde_json::json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p", "period_type": 2, "period_num": 1}),
        ];
        for r in refused {
            assert!(place(r.clone()).is_err(), "{r}");
        }
    }

    #[test]
    fn periods() {
        let t = crate::time::parse("2026-01-31T00:00:00Z").unwrap();
        let p = |period_type, period_num| Period {
            period_type,
            period_num,
        };
        assert_eq!(
            crate::time::format(p(2, 1).after(t).unwrap()),
            "2026-02-28T00:00:00Z"
        );
        assert_eq!(
            crate::time::format(p(3, 1).after(t).unwrap()),
            "2027-01-31T00:00:00Z"
        );
        assert!(p(5, 1).after(t).is_none());
        assert!(p(2, 0).after(t).is_none());
    }
}
