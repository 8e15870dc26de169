//! Typed requests of the partner routes: customers, budgets, freezing,
//! resellers and the partner side of authorizations.

use super::fields::{
    self, cedar_decimal, choice, choices, id_list, missing, non_empty, positive_money, required_id,
    schema, Money, NoFields, Paging, PagingQuery, TimeRange,
};
use super::{ctx_string, ApiRequest, CallerRefs, Input, ParseRequest};
use crate::api_error::ApiError;
use crate::model::{Association, AuthorizationScope, BudgetType, FreezeType};
use crate::refs::EntityRef;
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};

fn customer(id: &str) -> EntityRef {
    EntityRef::Customer(id.into())
}

// ---- ListSubCustomers --------------------------------------------------------

/// `POST /v2/partners/sub-customers/query` (QuerySubCustomerListReq).
/// `account_name`, `customer` (the contact name) and `label` are
/// case-insensitive substring matches; `customer_id` exact;
/// `indirect_partner_id` narrows to that reseller's own customers.
#[derive(Debug, Default)]
pub struct ListSubCustomers {
    pub account_name: Option<String>,
    pub customer: Option<String>,
    pub label: Option<String>,
    pub customer_id: Option<String>,
    pub association: Option<Association>,
    pub associated_on: TimeRange,
    pub indirect_partner_id: Option<String>,
    pub paging: Paging,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSubCustomersBody {
    account_name: Option<String>,
    customer: Option<String>,
    #[serde(default, deserialize_with = "fields::integer")]
    #[schemars(schema_with = "schema::offset")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "fields::integer")]
    #[schemars(schema_with = "schema::limit")]
    limit: Option<i64>,
    label: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "association_type_schema")]
    association_type: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::time")]
    associated_on_begin: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::time")]
    associated_on_end: Option<String>,
    customer_id: Option<String>,
    indirect_partner_id: Option<String>,
}

/// The wire `association_type`: each association's wire value
/// ([`Association::wire_value`]: `"1"` referral, `"3"` reseller).
pub fn association_type(value: Option<String>) -> Result<Option<Association>, ApiError> {
    let Some(given) = non_empty(value) else {
        return Ok(None);
    };
    let given = given.trim();
    Association::ALL
        .iter()
        .copied()
        .find(|a| a.wire_value() == given)
        .map(Some)
        .ok_or_else(|| {
            let values: Vec<String> = Association::ALL
                .iter()
                .map(|a| format!("\"{}\" ({a})", a.wire_value()))
                .collect();
            fields::invalid(
                "association_type",
                format!("must be {}", values.join(" or ")),
            )
        })
}

/// [`association_type`]'s values.
fn association_type_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let values: Vec<&str> = Association::ALL.iter().map(|a| a.wire_value()).collect();
    let meaning: Vec<String> = Association::ALL
        .iter()
        .map(|a| format!("{}: {a}", a.wire_value()))
        .collect();
    schemars::json_schema!({"type": "string", "enum": values, "description": meaning.join(", ")})
}

impl ParseRequest for ListSubCustomers {
    type Query = NoFields;
    type Body = ListSubCustomersBody;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let b: Self::Body = fields::json(input.body)?;
        Ok(ListSubCustomers {
            paging: Paging::new(b.offset, b.limit)?,
            account_name: non_empty(b.account_name),
            customer: non_empty(b.customer),
            label: non_empty(b.label),
            customer_id: non_empty(b.customer_id),
            association: association_type(b.association_type)?,
            associated_on: TimeRange::parse(
                ("associated_on_begin", b.associated_on_begin),
                ("associated_on_end", b.associated_on_end),
                false,
            )?,
            indirect_partner_id: non_empty(b.indirect_partner_id),
        })
    }
}

impl ApiRequest for ListSubCustomers {
    fn paging(&self) -> Option<Paging> {
        Some(self.paging)
    }

    fn masked_search(&self) -> &'static [&'static str] {
        if self.customer.is_some() {
            &["name"]
        } else {
            &[]
        }
    }
}

// ---- ShowCustomerOverview ----------------------------------------------------

/// `GET /v2/partners/sub-customers/{customer_id}/overview`.
#[derive(Debug)]
pub struct ShowCustomerOverview {
    pub customer_id: String,
}

/// The public API's `indirect_partner_id` on a route that names its customer:
/// accepted for compatibility; the customer id alone decides what is served.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndirectPartnerOnly {
    #[allow(dead_code)]
    indirect_partner_id: Option<String>,
}

impl ParseRequest for ShowCustomerOverview {
    type Query = IndirectPartnerOnly;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        fields::query::<Self::Query>(input.query)?;
        Ok(ShowCustomerOverview {
            customer_id: input.param("customer_id")?,
        })
    }
}

impl ApiRequest for ShowCustomerOverview {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(vec![customer(&self.customer_id)])
    }
}

// ---- ShowSubCustomerBudget ---------------------------------------------------

/// `GET /v2/partners/sub-customers/budget?customer_id=`.
#[derive(Debug)]
pub struct ShowSubCustomerBudget {
    pub customer_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShowBudgetQuery {
    #[schemars(schema_with = "schema::id")]
    customer_id: Option<String>,
    #[allow(dead_code)]
    indirect_partner_id: Option<String>,
}

impl ParseRequest for ShowSubCustomerBudget {
    type Query = ShowBudgetQuery;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let q: Self::Query = fields::query(input.query)?;
        Ok(ShowSubCustomerBudget {
            customer_id: required_id("customer_id", q.customer_id)?,
        })
    }
}

impl ApiRequest for ShowSubCustomerBudget {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(vec![customer(&self.customer_id)])
    }
}

// ---- ListSubCustomerBudget ---------------------------------------------------

/// The most ids ListSubCustomerBudget takes (public limit).
pub const MAX_BUDGET_IDS: usize = 100;

/// `POST /v2/partners/sub-customers/budget/query`: the budgets of the named
/// customers that the caller may view (ViewBudget per customer); the others,
/// and customers without a budget, are left out.
#[derive(Debug)]
pub struct ListSubCustomerBudget {
    pub customer_ids: Vec<String>,
    pub indirect_partner_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListBudgetBody {
    #[schemars(schema_with = "schema::ids::<1, MAX_BUDGET_IDS>")]
    customer_ids: Option<Vec<String>>,
    indirect_partner_id: Option<String>,
}

impl ParseRequest for ListSubCustomerBudget {
    type Query = NoFields;
    type Body = ListBudgetBody;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let b: Self::Body = fields::json(input.body)?;
        Ok(ListSubCustomerBudget {
            customer_ids: id_list("customer_ids", b.customer_ids, 1, MAX_BUDGET_IDS)?,
            indirect_partner_id: non_empty(b.indirect_partner_id),
        })
    }
}

impl ApiRequest for ListSubCustomerBudget {}

// ---- ListSubCustomerBudgetRecords --------------------------------------------

/// `GET /v2/partners/sub-customers/budget/records?customer_id=`.
#[derive(Debug)]
pub struct ListSubCustomerBudgetRecords {
    pub customer_id: String,
    /// `DELETE` lists nothing (the store never deletes budgets).
    pub deletions_only: bool,
    pub budget_type: Option<BudgetType>,
    pub paging: Paging,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    #[schemars(schema_with = "schema::id")]
    customer_id: Option<String>,
    #[allow(dead_code)]
    indirect_partner_id: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "operation_type_schema")]
    operation_type: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::one_of::<BudgetType>")]
    budget_type: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::offset")]
    offset: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::limit")]
    limit: Option<String>,
}

/// `operation_type`'s values (the parser below).
fn operation_type_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "enum": ["SETTING", "DELETE"]})
}

impl ParseRequest for ListSubCustomerBudgetRecords {
    type Query = RecordsQuery;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let q: Self::Query = fields::query(input.query)?;
        // Absent means all; an empty string is invalid (public API).
        let deletions_only = match q.operation_type.as_deref() {
            None | Some("SETTING") => false,
            Some("DELETE") => true,
            Some(_) => {
                return Err(fields::invalid(
                    "operation_type",
                    "must be SETTING or DELETE",
                ))
            }
        };
        if q.budget_type.as_deref() == Some("") {
            return Err(fields::invalid("budget_type", "must be MONTHLY or PACKAGE"));
        }
        Ok(ListSubCustomerBudgetRecords {
            customer_id: required_id("customer_id", q.customer_id)?,
            deletions_only,
            budget_type: choice("budget_type", q.budget_type)?,
            paging: Paging::from_text(q.offset, q.limit)?,
        })
    }
}

impl ApiRequest for ListSubCustomerBudgetRecords {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(vec![customer(&self.customer_id)])
    }
}

// ---- UpdateSubCustomerBudget -------------------------------------------------

/// `POST /v2/partners/sub-customers/budget` (ModSubCustomerBudgetReq).
#[derive(Debug)]
pub struct UpdateSubCustomerBudget {
    pub customer_id: String,
    /// In (0, 2147483647], at most two places.
    pub amount: Decimal,
    pub budget_type: BudgetType,
    /// `cancel_partner_frozen = "1"`: lift a partner freeze in the same change.
    pub cancel_partner_frozen: bool,
    /// 0 or 1 (freeze when the budget is used up); absent: unchanged.
    pub frozen_operate_type: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBudgetBody {
    #[schemars(schema_with = "schema::id")]
    customer_id: Option<String>,
    #[schemars(required)]
    budget_amount: Option<Money>,
    #[serde(default)]
    #[schemars(schema_with = "flag01_schema")]
    cancel_partner_frozen: Option<String>,
    #[allow(dead_code)]
    indirect_partner_id: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::one_of::<BudgetType>")]
    budget_type: Option<String>,
    #[serde(default, deserialize_with = "fields::integer")]
    #[schemars(schema_with = "schema::int::<0, 1>")]
    frozen_operate_type: Option<i64>,
}

/// The public API's `"0"`/`"1"` string flag (absent or blank: `"0"`).
pub fn flag01(field: &str, value: Option<String>) -> Result<bool, ApiError> {
    match non_empty(value).as_deref().map(str::trim) {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(_) => Err(fields::invalid(field, "must be \"0\" or \"1\"")),
    }
}

/// [`flag01`]'s values.
fn flag01_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "enum": ["0", "1"]})
}

impl ParseRequest for UpdateSubCustomerBudget {
    type Query = NoFields;
    type Body = UpdateBudgetBody;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let b: Self::Body = fields::json(input.body)?;
        let frozen_operate_type = b
            .frozen_operate_type
            .map(|t| fields::long_in("frozen_operate_type", Some(t), 0..=1, None))
            .transpose()?;
        Ok(UpdateSubCustomerBudget {
            customer_id: required_id("customer_id", b.customer_id)?,
            amount: positive_money("budget_amount", b.budget_amount)?,
            budget_type: choice("budget_type", b.budget_type)?.unwrap_or(BudgetType::Monthly),
            cancel_partner_frozen: flag01("cancel_partner_frozen", b.cancel_partner_frozen)?,
            frozen_operate_type,
        })
    }
}

impl ApiRequest for UpdateSubCustomerBudget {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(vec![customer(&self.customer_id)])
    }

    fn context(&self, _: &CallerRefs) -> Map<String, Value> {
        let mut ctx = Map::new();
        ctx_string(&mut ctx, "budget_type", self.budget_type.as_str());
        ctx_string(&mut ctx, "amount", &cedar_decimal(self.amount));
        ctx.insert(
            "cancel_partner_frozen".into(),
            Value::Bool(self.cancel_partner_frozen),
        );
        if let Some(t) = self.frozen_operate_type {
            ctx.insert("frozen_operate_type".into(), json!(t));
        }
        ctx
    }
}

// ---- FreezeSubCustomers / UnfreezeSubCustomers -------------------------------

/// The most customers one freeze or unfreeze call may name (public limit).
pub const MAX_FREEZE_IDS: usize = 10;
/// The longest freeze reason, in characters.
pub const MAX_FREEZE_REASON: usize = 256;

/// A freeze or unfreeze: 1..10 distinct customers, a reason, a type.
#[derive(Debug)]
pub struct FreezeChange {
    pub customer_ids: Vec<String>,
    pub reason: String,
    pub freeze_type: FreezeType,
}

/// `POST /v2/partners/sub-customers/freeze` (FreezeSubCustomersReq).
#[derive(Debug)]
pub struct FreezeSubCustomers(pub FreezeChange);

/// `POST /v2/partners/sub-customers/unfreeze` (UnfreezeSubCustomersReq).
#[derive(Debug)]
pub struct UnfreezeSubCustomers(pub FreezeChange);

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FreezeBody {
    #[schemars(schema_with = "schema::ids::<1, MAX_FREEZE_IDS>")]
    customer_ids: Option<Vec<String>>,
    #[schemars(schema_with = "schema::text::<MAX_FREEZE_REASON>")]
    reason: Option<String>,
    #[allow(dead_code)]
    indirect_partner_id: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::one_of::<FreezeType>")]
    freeze_type: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnfreezeBody {
    #[schemars(schema_with = "schema::ids::<1, MAX_FREEZE_IDS>")]
    customer_ids: Option<Vec<String>>,
    #[schemars(schema_with = "schema::text::<MAX_FREEZE_REASON>")]
    reason: Option<String>,
    #[allow(dead_code)]
    indirect_partner_id: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::one_of::<FreezeType>")]
    unfreeze_type: Option<String>,
}

/// A required reason of 1..=`max` characters.
pub fn reason(field: &str, value: Option<String>, max: usize) -> Result<String, ApiError> {
    let reason = non_empty(value).ok_or_else(|| missing(field))?;
    if reason.chars().count() > max {
        return Err(fields::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(reason)
}

impl FreezeChange {
    fn parse(
        ids: Option<Vec<String>>,
        why: Option<String>,
        (type_field, freeze_type): (&str, Option<String>),
    ) -> Result<FreezeChange, ApiError> {
        Ok(FreezeChange {
            customer_ids: id_list("customer_ids", ids, 1, MAX_FREEZE_IDS)?,
            reason: reason("reason", why, MAX_FREEZE_REASON)?,
            freeze_type: choice(type_field, freeze_type)?.unwrap_or(FreezeType::Account),
        })
    }

    fn targets(&self) -> Vec<EntityRef> {
        self.customer_ids.iter().map(|id| customer(id)).collect()
    }

    fn context(&self) -> Map<String, Value> {
        let mut ctx = Map::new();
        ctx_string(&mut ctx, "freeze_type", self.freeze_type.as_str());
        ctx
    }
}

impl ParseRequest for FreezeSubCustomers {
    type Query = NoFields;
    type Body = FreezeBody;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let b: Self::Body = fields::json(input.body)?;
        FreezeChange::parse(b.customer_ids, b.reason, ("freeze_type", b.freeze_type))
            .map(FreezeSubCustomers)
    }
}

impl ParseRequest for UnfreezeSubCustomers {
    type Query = NoFields;
    type Body = UnfreezeBody;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let b: Self::Body = fields::json(input.body)?;
        FreezeChange::parse(b.customer_ids, b.reason, ("unfreeze_type", b.unfreeze_type))
            .map(UnfreezeSubCustomers)
    }
}

impl ApiRequest for FreezeSubCustomers {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(self.0.targets())
    }
    fn context(&self, _: &CallerRefs) -> Map<String, Value> {
        self.0.context()
    }
}

impl ApiRequest for UnfreezeSubCustomers {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(self.0.targets())
    }
    fn context(&self, _: &CallerRefs) -> Map<String, Value> {
        self.0.context()
    }
}

// ---- ListIndirectPartners ----------------------------------------------------

/// `POST /v2/partners/indirect-partners/query` (QueryIndirectPartnersReq):
/// the resellers the caller may list (ListResellers per reseller).
#[derive(Debug)]
pub struct ListIndirectPartners {
    /// Case-insensitive substring of the reseller's id (its account name).
    pub account_name: Option<String>,
    pub indirect_partner_id: Option<String>,
    pub associated_on: TimeRange,
    pub paging: Paging,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListResellersBody {
    account_name: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::time")]
    associated_on_begin: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::time")]
    associated_on_end: Option<String>,
    #[serde(default, deserialize_with = "fields::integer")]
    #[schemars(schema_with = "schema::offset")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "fields::integer")]
    #[schemars(schema_with = "schema::limit")]
    limit: Option<i64>,
    indirect_partner_id: Option<String>,
}

impl ParseRequest for ListIndirectPartners {
    type Query = NoFields;
    type Body = ListResellersBody;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let b: Self::Body = fields::json(input.body)?;
        Ok(ListIndirectPartners {
            account_name: non_empty(b.account_name),
            indirect_partner_id: non_empty(b.indirect_partner_id),
            associated_on: TimeRange::parse(
                ("associated_on_begin", b.associated_on_begin),
                ("associated_on_end", b.associated_on_end),
                false,
            )?,
            paging: Paging::new(b.offset, b.limit)?,
        })
    }
}

impl ApiRequest for ListIndirectPartners {
    fn paging(&self) -> Option<Paging> {
        Some(self.paging)
    }
}

// ---- reseller grants ---------------------------------------------------------

/// `GET /v2/partners/indirect-partners/{partner_id}/grants`.
#[derive(Debug)]
pub struct ShowResellerGrants {
    pub partner_id: String,
}

impl ParseRequest for ShowResellerGrants {
    type Query = NoFields;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        fields::no_query(input.query)?;
        Ok(ShowResellerGrants {
            partner_id: input.param("partner_id")?,
        })
    }
}

impl ApiRequest for ShowResellerGrants {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(vec![EntityRef::Partner(self.partner_id.as_str().into())])
    }
}

/// `PUT /v2/partners/indirect-partners/{partner_id}/grants`: replaces all five.
#[derive(Debug)]
pub struct SetResellerGrants {
    pub partner_id: String,
    pub budget: bool,
    pub freeze: bool,
    pub on_behalf: bool,
    /// `None`: no quota, so that budget type is not allowed to the reseller.
    pub monthly_quota: Option<Decimal>,
    pub one_time_quota: Option<Decimal>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = quotas_required)]
pub struct GrantsBody {
    #[schemars(required)]
    budget: Option<bool>,
    #[schemars(required)]
    freeze: Option<bool>,
    #[schemars(required)]
    on_behalf: Option<bool>,
    // `null` is meaningful (no quota), so presence is tracked apart from value.
    #[serde(default, deserialize_with = "present")]
    monthly_quota: Option<Option<Money>>,
    #[serde(default, deserialize_with = "present")]
    one_time_quota: Option<Option<Money>>,
}

/// Both quotas must be given, `null` for none (the parser below): schemars
/// reads the fields' `default` as optional.
fn quotas_required(schema: &mut schemars::Schema) {
    if let Some(serde_json::Value::Array(required)) = schema.get_mut("required") {
        required.extend(["monthly_quota".into(), "one_time_quota".into()]);
    }
}

/// `Some(value)` for a field that is present, even as `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Money>>, D::Error> {
    Option::<Money>::deserialize(d).map(Some)
}

impl ParseRequest for SetResellerGrants {
    type Query = NoFields;
    type Body = GrantsBody;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let b: Self::Body = fields::json(input.body)?;
        let quota = |field: &str, v: Option<Option<Money>>| -> Result<Option<Decimal>, ApiError> {
            match v {
                None => Err(missing(field)),
                Some(None) => Ok(None),
                Some(Some(m)) => positive_money(field, Some(m)).map(Some),
            }
        };
        Ok(SetResellerGrants {
            partner_id: input.param("partner_id")?,
            budget: b.budget.ok_or_else(|| missing("budget"))?,
            freeze: b.freeze.ok_or_else(|| missing("freeze"))?,
            on_behalf: b.on_behalf.ok_or_else(|| missing("on_behalf"))?,
            monthly_quota: quota("monthly_quota", b.monthly_quota)?,
            one_time_quota: quota("one_time_quota", b.one_time_quota)?,
        })
    }
}

impl ApiRequest for SetResellerGrants {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(vec![EntityRef::Partner(self.partner_id.as_str().into())])
    }

    fn context(&self, _: &CallerRefs) -> Map<String, Value> {
        let mut ctx = Map::new();
        ctx.insert("budget".into(), Value::Bool(self.budget));
        ctx.insert("freeze".into(), Value::Bool(self.freeze));
        ctx.insert("on_behalf".into(), Value::Bool(self.on_behalf));
        if let Some(q) = self.monthly_quota {
            ctx_string(&mut ctx, "monthly_quota", &cedar_decimal(q));
        }
        if let Some(q) = self.one_time_quota {
            ctx_string(&mut ctx, "one_time_quota", &cedar_decimal(q));
        }
        ctx
    }
}

// ---- authorizations, partner side --------------------------------------------

/// Accepted `duration_days` of an authorization request, and its default.
pub const AUTHORIZATION_DAYS: std::ops::RangeInclusive<i64> = 1..=3650;
pub const DEFAULT_AUTHORIZATION_DAYS: i64 = 365;

/// `POST /v2/partners/sub-customers/{customer_id}/authorizations`.
#[derive(Debug)]
pub struct RequestAuthorization {
    pub customer_id: String,
    pub scopes: Vec<AuthorizationScope>,
    pub duration_days: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestAuthorizationBody {
    #[schemars(schema_with = "schema::some_of::<AuthorizationScope>")]
    scopes: Option<Vec<String>>,
    #[schemars(
        schema_with = "schema::int::<{ *AUTHORIZATION_DAYS.start() }, { *AUTHORIZATION_DAYS.end() }>"
    )]
    #[serde(default, deserialize_with = "fields::integer")]
    duration_days: Option<i64>,
}

impl ParseRequest for RequestAuthorization {
    type Query = NoFields;
    type Body = RequestAuthorizationBody;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let b: Self::Body = fields::json(input.body)?;
        Ok(RequestAuthorization {
            customer_id: input.param("customer_id")?,
            scopes: choices("scopes", b.scopes)?,
            duration_days: fields::long_in(
                "duration_days",
                b.duration_days,
                AUTHORIZATION_DAYS,
                Some(DEFAULT_AUTHORIZATION_DAYS),
            )?,
        })
    }
}

/// A set of scopes as a Cedar context value.
pub(super) fn scopes_value(scopes: &[AuthorizationScope]) -> Value {
    Value::Array(scopes.iter().map(|s| json!(s.as_str())).collect())
}

impl ApiRequest for RequestAuthorization {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(vec![customer(&self.customer_id)])
    }

    fn context(&self, _: &CallerRefs) -> Map<String, Value> {
        let mut ctx = Map::new();
        ctx.insert("scopes".into(), scopes_value(&self.scopes));
        ctx.insert("duration_days".into(), json!(self.duration_days));
        ctx
    }
}

/// `GET /v2/partners/sub-customers/{customer_id}/authorizations`.
#[derive(Debug)]
pub struct ListCustomerAuthorizations {
    pub customer_id: String,
    pub paging: Paging,
}

impl ParseRequest for ListCustomerAuthorizations {
    type Query = PagingQuery;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        Ok(ListCustomerAuthorizations {
            customer_id: input.param("customer_id")?,
            paging: PagingQuery::parse(input.query)?,
        })
    }
}

impl ApiRequest for ListCustomerAuthorizations {
    fn paging(&self) -> Option<Paging> {
        Some(self.paging)
    }

    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(vec![customer(&self.customer_id)])
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

    fn input<'a>(params: &'a [(&'static str, String)], query: &'a str, body: &'a str) -> Input<'a> {
        Input {
            params,
            query,
            body: body.as_bytes(),
        }
    }

    #[test]
    fn budget_amounts_reach_the_context_normalized() {
        for amount in ["100", "100.0", "\"100\"", "\"100.00\""] {
            let body = format!(r#"{{"customer_id": "c", "budget_amount": {amount}}}"#);
            let r = UpdateSubCustomerBudget::parse(&input(&[], "", &body)).unwrap();
            assert_eq!(ctx(&r)["amount"], "100.00", "{amount}");
            assert_eq!(ctx(&r)["budget_type"], "MONTHLY");
            assert!(ctx(&r).get("frozen_operate_type").is_none());
        }
        let r = UpdateSubCustomerBudget::parse(&input(
            &[],
            "",
            r#"{"customer_id": "c", "budget_amount": 1, "frozen_operate_type": 1}"#,
        ))
        .unwrap();
        assert_eq!(ctx(&r)["frozen_operate_type"], 1);
        let err = UpdateSubCustomerBudget::parse(&input(
            &[],
            "",
            r#"{"customer_id": "c", "budget_amount": 1, "frozen_operate_type": 2}"#,
        ))
        .unwrap_err();
        assert!(err.msg.contains("frozen_operate_type"), "{err}");
    }

    #[test]
    fn scopes_are_checked_and_canonical() {
        let params = [("customer_id", "c".to_string())];
        let parse = |body: &str| RequestAuthorization::parse(&input(&params, "", body));
        let r = parse(r#"{"scopes": ["order", "om"]}"#).unwrap();
        assert_eq!(
            r.scopes,
            vec![AuthorizationScope::Om, AuthorizationScope::Order]
        );
        assert_eq!(r.duration_days, 365);
        for bad in [
            r#"{"scopes": []}"#,
            r#"{"scopes": ["om", "om"]}"#,
            r#"{"scopes": ["admin"]}"#,
            r#"{}"#,
            r#"{"scopes": ["om"], "duration_days": 0}"#,
            r#"{"scopes": ["om"], "duration_days": 3651}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn grants_need_every_field_and_take_numbers_or_strings() {
        let params = [("partner_id", "r".to_string())];
        let parse = |body: &str| SetResellerGrants::parse(&input(&params, "", body));
        let r = parse(
            r#"{"budget": true, "freeze": false, "on_behalf": true, "monthly_quota": 5000, "one_time_quota": null}"#,
        )
        .unwrap();
        assert_eq!(r.monthly_quota, Some(Decimal::new(5000, 0)));
        assert_eq!(r.one_time_quota, None);
        assert_eq!(ctx(&r)["monthly_quota"], "5000.00");
        let err =
            parse(r#"{"budget": true, "freeze": false, "on_behalf": true, "monthly_quota": null}"#)
                .unwrap_err();
        assert!(err.msg.contains("one_time_quota"), "{err}");
    }
}
