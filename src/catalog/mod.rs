//! Every operation of the API, once (docs/domain.md section 3): method and path,
//! who answers it, the Cedar decisions it needs and where their resources
//! come from, the typed request (every field's validation, default, bound and
//! refusal code) and the context fields the policies see.
//!
//! The gateway's route table and the domain store's router are both built
//! from [`OPERATIONS`]; nothing else lists a path. Both sides parse a request
//! with [`Request::parse`], so they cannot read a body differently: the
//! gateway to decide, the store (behind the signed assertion, which binds the
//! body's hash) to serve.
//!
//! Who may do what is not here: an operation names the action asked of each
//! target and of each listed item; the policies answer.

pub mod contact;
pub mod fields;
mod gateway_ops;
mod orders;
mod own_account;
mod partner;

pub use gateway_ops::*;
pub use orders::*;
pub use own_account::*;
pub use partner::*;

use crate::api_error::ApiError;
use crate::refs::{EntityRef, EntityType};
use http::Method;
use serde_json::{Map, Value};

/// Who answers an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServedBy {
    /// Forwarded to the domain store.
    Store,
    /// Answered by the gateway itself (sessions and tokens are its own).
    Gateway,
}

/// What the gateway does after an allowed write succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    Nothing,
    /// The write changed its targets: drop them from the entity cache.
    Invalidate,
}

/// A list operation's items: each is decided with `action`, and the list
/// holds exactly the items allowed (the gateway turns the question into a
/// filter the store runs; see `crate::filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListOf {
    pub action: &'static str,
    pub item: EntityType,
}

/// One operation of the API.
#[derive(Clone, Debug)]
pub struct Operation {
    pub op: Op,
    pub method: Method,
    /// Path template; `{name}` segments are parameters.
    pub path: &'static str,
    pub served_by: ServedBy,
    /// The action asked of each target the request names (its customer, each
    /// id of a batch, ...); `None` when the operation names no target.
    pub check: Option<&'static str>,
    /// For a list: the action asked of each item.
    pub list: Option<ListOf>,
    pub after: After,
    /// Its answers carry contact fields, masked unless the client asks with
    /// `X-Reveal-Contact` and `RevealContact` (R2) allows, item by item.
    pub masks_contact: bool,
    /// The state of what it names may refuse it (409), besides a creating
    /// operation's reused `X-Client-Token` ([`Operation::may_conflict`]).
    pub state_conflicts: bool,
}

impl Op {
    /// Whether the operation creates something (an order, an export, an
    /// authorization request, a session): a client may retry it with an
    /// `X-Client-Token`, and only the first request with the token creates.
    pub fn creates(self) -> bool {
        matches!(
            self,
            Op::PlaceOrder | Op::CreateOrderExport | Op::RequestAuthorization | Op::CreateSession
        )
    }
}

/// What the request path knows of the caller when it works out targets.
#[derive(Clone, Copy, Debug)]
pub struct CallerRefs<'a> {
    /// The principal (`Operator::"…"`, `Customer::"…"`, `Session::"…"`).
    pub principal: &'a EntityRef,
    /// The customer whose own account the caller acts in: the customer
    /// principal itself, or a session's customer.
    pub own_customer: Option<&'a str>,
    /// How the caller proved who it is: `signature` or `token`.
    pub auth_method: &'static str,
}

impl CallerRefs<'_> {
    /// The caller's own customer account; an operator has none, which no
    /// policy can allow anything on (403 like any denial).
    pub fn own_customer(&self) -> Result<EntityRef, ApiError> {
        self.own_customer
            .map(|c| EntityRef::Customer(c.into()))
            .ok_or_else(ApiError::denied)
    }
}

/// The parts of an HTTP request a typed request is read from.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// Path parameters, decoded.
    pub params: &'a [(&'static str, String)],
    /// The query string (without `?`).
    pub query: &'a str,
    pub body: &'a [u8],
}

impl Input<'_> {
    /// A path parameter (present by construction of the route).
    pub fn param(&self, name: &str) -> Result<String, ApiError> {
        let value = self
            .params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone());
        fields::required_id(name, value)
    }
}

/// What each typed request tells the request path.
pub trait ApiRequest: std::fmt::Debug + Send + Sync {
    /// The entities the operation's `check` is asked of, in order (all must
    /// be allowed). Empty for operations that name none.
    fn targets(&self, _caller: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(Vec::new())
    }

    /// The action's context fields, besides `now` and `source_ip`: every
    /// request field that changes what the call does.
    fn context(&self, _caller: &CallerRefs) -> Map<String, Value> {
        Map::new()
    }

    /// Whether the operation's list applies to this request (an export that
    /// names its orders lists nothing: each order is a target).
    fn lists(&self) -> bool {
        true
    }

    /// A list's page: the gateway pages a list it decided item by item.
    fn paging(&self) -> Option<fields::Paging> {
        None
    }

    /// The masked contact fields (`name`, `email`, `phone`) this request
    /// searches by: such a search may match only customers whose field the
    /// caller may reveal (R2).
    fn masked_search(&self) -> &'static [&'static str] {
        &[]
    }
}

/// What an operation answers when it succeeds, for the OpenAPI document:
/// each side that serves operations (the domain store, the gateway) names
/// the struct it serializes.
pub enum Success {
    /// A JSON body of this schema, with this status.
    Json(u16, schemars::Schema),
    /// A CSV file (200).
    Csv,
    /// No body (204).
    NoContent,
}

impl Success {
    pub fn json<T: schemars::JsonSchema>(
        status: u16,
        g: &mut schemars::SchemaGenerator,
    ) -> Success {
        Success::Json(status, g.subschema_for::<T>())
    }
}

/// Parsing a typed request from its HTTP parts.
pub trait ParseRequest: Sized {
    /// The wire form of the query string and of the JSON body: the structs
    /// `parse` reads (a struct without fields when there is none), whose
    /// schemas the OpenAPI document shows (`crate::openapi`).
    type Query: schemars::JsonSchema;
    type Body: schemars::JsonSchema;

    fn parse(input: &Input) -> Result<Self, ApiError>;
}

macro_rules! catalog {
    ($($op:ident($req:ident)),+ $(,)?) => {
        /// Every operation, by name: the public API's operation name, or
        /// ours for the extensions.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Op { $($op),+ }

        impl Op {
            pub fn name(self) -> &'static str {
                match self {
                    $(Op::$op => stringify!($op)),+
                }
            }

            /// The operation named `name`.
            pub fn from_name(name: &str) -> Option<Op> {
                match name {
                    $(stringify!($op) => Some(Op::$op),)+
                    _ => None,
                }
            }
        }

        /// A parsed, validated request of one operation.
        #[derive(Debug)]
        pub enum Request { $($op($req)),+ }

        impl Request {
            /// Parses and validates the request of `op`: 400 naming the field
            /// on any refusal.
            pub fn parse(op: Op, input: &Input) -> Result<Request, ApiError> {
                match op {
                    $(Op::$op => $req::parse(input).map(Request::$op)),+
                }
            }

            /// What the request tells the request path.
            pub fn describe(&self) -> &dyn ApiRequest {
                match self {
                    $(Request::$op(r) => r),+
                }
            }

            /// The schemas of `op`'s query string and JSON body: those of
            /// the structs its parser reads ([`ParseRequest`]), inline.
            pub fn wire_schemas(
                op: Op,
                g: &mut schemars::SchemaGenerator,
            ) -> (schemars::Schema, schemars::Schema) {
                use schemars::JsonSchema as _;
                match op {
                    $(Op::$op => (
                        <$req as ParseRequest>::Query::json_schema(g),
                        <$req as ParseRequest>::Body::json_schema(g),
                    )),+
                }
            }
        }
    };
}

catalog! {
    ListSubCustomers(ListSubCustomers),
    ShowCustomerOverview(ShowCustomerOverview),
    ShowSubCustomerBudget(ShowSubCustomerBudget),
    ListSubCustomerBudget(ListSubCustomerBudget),
    ListSubCustomerBudgetRecords(ListSubCustomerBudgetRecords),
    UpdateSubCustomerBudget(UpdateSubCustomerBudget),
    FreezeSubCustomers(FreezeSubCustomers),
    UnfreezeSubCustomers(UnfreezeSubCustomers),
    ListIndirectPartners(ListIndirectPartners),
    ShowResellerGrants(ShowResellerGrants),
    SetResellerGrants(SetResellerGrants),
    RequestAuthorization(RequestAuthorization),
    ListCustomerAuthorizations(ListCustomerAuthorizations),
    ListCustomerOrders(ListCustomerOrders),
    ShowCustomerOrderDetails(ShowCustomerOrderDetails),
    ListPriceAdjustments(ListPriceAdjustments),
    AdjustOrderPrice(AdjustOrderPrice),
    CreateOrderExport(CreateOrderExport),
    ListOrderExports(ListOrderExports),
    ShowOrderExport(ShowOrderExport),
    DownloadOrderExport(DownloadOrderExport),
    ListCustomerOnDemandResources(ListCustomerOnDemandResources),
    ListPayPerUseCustomerResources(ListPayPerUseCustomerResources),
    ListOwnAuthorizations(ListOwnAuthorizations),
    ApproveAuthorization(ApproveAuthorization),
    RejectAuthorization(RejectAuthorization),
    RevokeAuthorization(RevokeAuthorization),
    ListPartnerActivity(ListPartnerActivity),
    PlaceOrder(PlaceOrder),
    ListOwnOrders(ListOwnOrders),
    ListOwnResources(ListOwnResources),
    OperateResource(OperateResource),
    CreateSession(CreateSession),
    ListSessions(ListSessions),
    EndSession(EndSession),
    IssueToken(IssueToken),
}

const fn op(op: Op, method: Method, path: &'static str, check: Option<&'static str>) -> Operation {
    Operation {
        op,
        method,
        path,
        served_by: ServedBy::Store,
        check,
        list: None,
        after: After::Nothing,
        masks_contact: false,
        state_conflicts: false,
    }
}

impl Operation {
    const fn list(mut self, action: &'static str, item: EntityType) -> Operation {
        self.list = Some(ListOf { action, item });
        self
    }
    const fn invalidates(mut self) -> Operation {
        self.after = After::Invalidate;
        self
    }
    const fn masks_contact(mut self) -> Operation {
        self.masks_contact = true;
        self
    }
    const fn state_conflicts(mut self) -> Operation {
        self.state_conflicts = true;
        self
    }

    /// Whether it may answer 409: its target's state refuses it, or a
    /// creating operation's `X-Client-Token` came with another body.
    pub fn may_conflict(&self) -> bool {
        self.state_conflicts || self.op.creates()
    }
    const fn by_gateway(mut self) -> Operation {
        self.served_by = ServedBy::Gateway;
        self
    }
}

/// Every operation of docs/domain.md section 3, the gateway's own included. Read
/// it next to `policies/`: the action each target and each listed item is
/// decided with.
pub static OPERATIONS: &[Operation] = &[
    // ---- customers (R1, R2) ----
    op(
        Op::ListSubCustomers,
        Method::POST,
        "/v2/partners/sub-customers/query",
        None,
    )
    .list("ViewCustomer", EntityType::Customer)
    .masks_contact(),
    op(
        Op::ShowCustomerOverview,
        Method::GET,
        "/v2/partners/sub-customers/{customer_id}/overview",
        Some("ViewCustomer"),
    ),
    // ---- budgets (R1, R3) ----
    op(
        Op::ShowSubCustomerBudget,
        Method::GET,
        "/v2/partners/sub-customers/budget",
        Some("ViewBudget"),
    ),
    op(
        Op::ListSubCustomerBudget,
        Method::POST,
        "/v2/partners/sub-customers/budget/query",
        None,
    )
    .list("ViewBudget", EntityType::Customer),
    op(
        Op::ListSubCustomerBudgetRecords,
        Method::GET,
        "/v2/partners/sub-customers/budget/records",
        Some("ViewBudget"),
    ),
    op(
        Op::UpdateSubCustomerBudget,
        Method::POST,
        "/v2/partners/sub-customers/budget",
        Some("SetBudget"),
    )
    .invalidates(),
    // ---- freeze (R3) ----
    op(
        Op::FreezeSubCustomers,
        Method::POST,
        "/v2/partners/sub-customers/freeze",
        Some("FreezeCustomer"),
    )
    .state_conflicts()
    .invalidates(),
    op(
        Op::UnfreezeSubCustomers,
        Method::POST,
        "/v2/partners/sub-customers/unfreeze",
        Some("UnfreezeCustomer"),
    )
    .state_conflicts()
    .invalidates(),
    // ---- resellers (R5) ----
    op(
        Op::ListIndirectPartners,
        Method::POST,
        "/v2/partners/indirect-partners/query",
        None,
    )
    .list("ListResellers", EntityType::Partner),
    op(
        Op::ShowResellerGrants,
        Method::GET,
        "/v2/partners/indirect-partners/{partner_id}/grants",
        Some("ViewResellerGrants"),
    )
    .state_conflicts(),
    op(
        Op::SetResellerGrants,
        Method::PUT,
        "/v2/partners/indirect-partners/{partner_id}/grants",
        Some("SetResellerGrants"),
    )
    .state_conflicts()
    .invalidates(),
    // ---- customer authorizations, partner side (R6) ----
    op(
        Op::RequestAuthorization,
        Method::POST,
        "/v2/partners/sub-customers/{customer_id}/authorizations",
        Some("RequestAuthorization"),
    )
    .invalidates(),
    op(
        Op::ListCustomerAuthorizations,
        Method::GET,
        "/v2/partners/sub-customers/{customer_id}/authorizations",
        Some("ViewAuthorizations"),
    )
    .list("ViewAuthorizations", EntityType::Authorization),
    // ---- orders (R1, R4) ----
    op(
        Op::ListCustomerOrders,
        Method::GET,
        "/v2/orders/customer-orders",
        Some("ViewOrders"),
    )
    .list("ViewOrder", EntityType::Order),
    op(
        Op::ShowCustomerOrderDetails,
        Method::GET,
        "/v2/orders/customer-orders/details/{order_id}",
        Some("ViewOrder"),
    ),
    op(
        Op::ListPriceAdjustments,
        Method::GET,
        "/v2/orders/customer-orders/{order_id}/price-adjustments",
        Some("ViewOrder"),
    ),
    op(
        Op::AdjustOrderPrice,
        Method::POST,
        "/v2/orders/customer-orders/{order_id}/price-adjustments",
        Some("AdjustOrderPrice"),
    )
    .state_conflicts(),
    op(
        Op::CreateOrderExport,
        Method::POST,
        "/v2/orders/customer-orders/exports",
        Some("ExportOrders"),
    )
    .list("ExportOrders", EntityType::Order),
    op(
        Op::ListOrderExports,
        Method::GET,
        "/v2/orders/customer-orders/exports",
        None,
    )
    .list("ViewExport", EntityType::Export),
    op(
        Op::ShowOrderExport,
        Method::GET,
        "/v2/orders/customer-orders/exports/{export_id}",
        Some("ViewExport"),
    ),
    op(
        Op::DownloadOrderExport,
        Method::GET,
        "/v2/orders/customer-orders/exports/{export_id}/file",
        Some("ViewExport"),
    )
    .state_conflicts(),
    // ---- resources (R1) ----
    op(
        Op::ListCustomerOnDemandResources,
        Method::POST,
        "/v2/partners/sub-customers/on-demand-resources/query",
        Some("ViewResources"),
    )
    .list("ViewResources", EntityType::Resource),
    op(
        Op::ListPayPerUseCustomerResources,
        Method::POST,
        "/v2/orders/suscriptions/resources/query",
        Some("ViewResources"),
    )
    .list("ViewResources", EntityType::Resource),
    // ---- the customer's consent (R7) ----
    op(
        Op::ListOwnAuthorizations,
        Method::GET,
        "/v2/customers/partner-authorizations",
        Some("ViewOwnAuthorizations"),
    )
    .list("ViewOwnAuthorizations", EntityType::Authorization),
    op(
        Op::ApproveAuthorization,
        Method::POST,
        "/v2/customers/partner-authorizations/{authorization_id}/approve",
        Some("ApproveAuthorization"),
    )
    .state_conflicts()
    .invalidates(),
    op(
        Op::RejectAuthorization,
        Method::POST,
        "/v2/customers/partner-authorizations/{authorization_id}/reject",
        Some("RejectAuthorization"),
    )
    .state_conflicts()
    .invalidates(),
    op(
        Op::RevokeAuthorization,
        Method::POST,
        "/v2/customers/partner-authorizations/{authorization_id}/revoke",
        Some("RevokeAuthorization"),
    )
    .state_conflicts()
    .invalidates(),
    op(
        Op::ListPartnerActivity,
        Method::GET,
        "/v2/customers/partner-activity",
        Some("ViewPartnerActivity"),
    ),
    // ---- the customer's own account (R9, R10) ----
    op(
        Op::PlaceOrder,
        Method::POST,
        "/v2/customer/orders",
        Some("PlaceOrder"),
    ),
    op(
        Op::ListOwnOrders,
        Method::GET,
        "/v2/customer/orders",
        Some("ViewOwnOrders"),
    )
    .list("ViewOwnOrders", EntityType::Order),
    op(
        Op::ListOwnResources,
        Method::GET,
        "/v2/customer/resources",
        Some("ViewOwnResources"),
    )
    .list("ViewOwnResources", EntityType::Resource),
    op(
        Op::OperateResource,
        Method::POST,
        "/v2/customer/resources/{resource_id}/operations",
        Some("OperateResource"),
    )
    .state_conflicts(),
    // ---- assume-role sessions (R8), the gateway's own ----
    op(
        Op::CreateSession,
        Method::POST,
        "/v3/partner-sessions",
        Some("AssumeRole"),
    )
    .by_gateway(),
    op(Op::ListSessions, Method::GET, "/v3/partner-sessions", None)
        .list("ListSessions", EntityType::Session)
        .by_gateway(),
    op(
        Op::EndSession,
        Method::DELETE,
        "/v3/partner-sessions/{session_id}",
        Some("EndSession"),
    )
    .by_gateway(),
    // ---- tokens, the gateway's own ----
    op(
        Op::IssueToken,
        Method::POST,
        "/v3/auth/tokens",
        Some("IssueToken"),
    )
    .by_gateway(),
];

/// Path parameters captured by a template, decoded.
pub type Params = Vec<(&'static str, String)>;

/// The operation for a method and (already normalized) path, with its parameters.
pub fn resolve(method: &Method, path: &str) -> Option<(&'static Operation, Params)> {
    if let Some(routes) = LITERAL_ROUTES.get(path) {
        if let Some(o) = routes.iter().find(|o| o.method == *method) {
            return Some((o, Vec::new()));
        }
    }
    OPERATIONS
        .iter()
        .filter(|o| o.method == *method)
        .find_map(|o| match_template(o.path, path).map(|params| (o, params)))
}

/// The routes without parameters by their path: most requests find theirs
/// with one lookup rather than by trying the templates in turn. No route
/// shadows another (`every_operation_is_listed_once_reachable_and_unshadowed`),
/// so it is the one the templates would have found.
static LITERAL_ROUTES: std::sync::LazyLock<
    std::collections::HashMap<&'static str, Vec<&'static Operation>>,
> = std::sync::LazyLock::new(|| {
    let mut routes = std::collections::HashMap::<_, Vec<_>>::new();
    for o in OPERATIONS.iter().filter(|o| !o.path.contains('{')) {
        routes.entry(o.path).or_default().push(o);
    }
    routes
});

/// The name of the path parameter that segment `index` of `path` is, for
/// the first route whose template has as many segments and the same fixed
/// ones (a refusal of the raw path names it).
pub fn path_parameter_at(path: &str, index: usize) -> Option<&'static str> {
    let segments: Vec<&str> = path.split(is_slash).collect();
    OPERATIONS.iter().find_map(|o| {
        let template: Vec<&'static str> = o.path.split(is_slash).collect();
        let fits = template.len() == segments.len()
            && template
                .iter()
                .zip(&segments)
                .all(|(t, s)| t.starts_with('{') || t == s);
        let param = template.get(index)?.strip_prefix('{')?.strip_suffix('}');
        param.filter(|_| fits)
    })
}

/// The operation `op`.
pub fn operation(op: Op) -> &'static Operation {
    OPERATIONS
        .iter()
        .find(|o| o.op == op)
        .expect("every Op has an entry in OPERATIONS (tested)")
}

/// Matches `path` against `template`, decoding each `{name}` segment.
pub fn match_template(template: &'static str, path: &str) -> Option<Params> {
    let param = |segment: &'static str| segment.strip_prefix('{')?.strip_suffix('}');
    // Matched first, without a copy: most templates tried do not match.
    let mut t = template.split(is_slash);
    let mut p = path.split(is_slash);
    loop {
        match (t.next(), p.next()) {
            (None, None) => break,
            (Some(ts), Some(ps)) => match param(ts) {
                Some(_) if ps.is_empty() => return None,
                Some(_) => {}
                None if ts != ps => return None,
                None => {}
            },
            _ => return None,
        }
    }
    let mut params = Vec::new();
    for (ts, ps) in template.split(is_slash).zip(path.split(is_slash)) {
        if let Some(name) = param(ts) {
            let decoded = percent_encoding::percent_decode_str(ps)
                .decode_utf8()
                .ok()?;
            params.push((name, decoded.into_owned()));
        }
    }
    Some(params)
}

/// Splits a path at its slashes. A predicate, not the pattern `'/'`:
/// `str::split('/')` searches each segment with `memchr`, whose setup costs
/// more than a byte-by-byte look at segments this short (routing splits
/// some 30 of them a request).
fn is_slash(c: char) -> bool {
    c == '/'
}

/// A context field from a string.
pub(crate) fn ctx_string(ctx: &mut Map<String, Value>, name: &str, value: &str) {
    ctx.insert(name.to_owned(), Value::String(value.to_owned()));
}

/// Every action the gateway asks, by its name in the schema: each
/// operation's check and list action, and [`contact::REVEAL_CONTACT`].
/// The names are `'static`, as decision records and metric labels take them.
pub fn action_named(name: &str) -> Option<&'static str> {
    OPERATIONS
        .iter()
        .flat_map(|o| o.check.into_iter().chain(o.list.map(|l| l.action)))
        .chain([contact::REVEAL_CONTACT])
        .find(|a| *a == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_templates_and_literals() {
        let (o, params) =
            resolve(&Method::GET, "/v2/orders/customer-orders/details/ord%201").unwrap();
        assert_eq!(o.op, Op::ShowCustomerOrderDetails);
        assert_eq!(params, vec![("order_id", "ord 1".to_string())]);
        // A literal segment is not a parameter value.
        let (o, _) = resolve(&Method::GET, "/v2/orders/customer-orders/exports").unwrap();
        assert_eq!(o.op, Op::ListOrderExports);
        let (o, _) = resolve(&Method::POST, "/v2/partners/sub-customers/budget/query").unwrap();
        assert_eq!(o.op, Op::ListSubCustomerBudget);
        assert!(resolve(&Method::DELETE, "/v2/partners/sub-customers/query").is_none());
        assert!(resolve(&Method::GET, "/v2/partners/sub-customers//overview").is_none());
        assert!(resolve(&Method::GET, "/v2/partners/sub-customers/x/overview/extra").is_none());
    }

    /// The literal routes' table answers as trying every template would.
    #[test]
    fn a_literal_route_is_found_as_the_templates_find_it() {
        for o in OPERATIONS.iter().filter(|o| !o.path.contains('{')) {
            for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
                let by_templates = OPERATIONS
                    .iter()
                    .filter(|t| t.method == method)
                    .find(|t| match_template(t.path, o.path).is_some());
                let found = resolve(&method, o.path).map(|(found, _)| found.op);
                assert_eq!(found, by_templates.map(|t| t.op), "{method} {}", o.path);
            }
        }
    }

    #[test]
    fn every_operation_is_listed_once_reachable_and_unshadowed() {
        let mut seen = std::collections::HashSet::new();
        for o in OPERATIONS {
            assert!(seen.insert(o.op), "{:?} listed twice", o.op);
            assert_eq!(operation(o.op).path, o.path);
            let path = o.path.replace(['{', '}'], "");
            let (found, _) = resolve(&o.method, &path).unwrap();
            assert_eq!(found.op, o.op, "{} {} is shadowed", o.method, o.path);
            assert!(
                o.check.is_some() || o.list.is_some(),
                "{:?} decides nothing",
                o.op
            );
        }
    }
}
