//! Stage 3, route: the table mapping each API route to the Cedar check it
//! needs. Routes are data, in one place, to be read next to `policies/`:
//! method and path template → action, where the resource id comes from, which
//! request fields become the Cedar context, and what happens after. A route
//! that is not here does not exist (404, nothing forwarded).

use crate::policy::EntityRef;
use http::Method;

/// The kind of entity an id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Partner,
    Customer,
    Order,
    Resource,
    Authorization,
    Session,
}

impl Kind {
    pub fn entity(self, id: String) -> EntityRef {
        match self {
            Kind::Partner => EntityRef::Partner(id),
            Kind::Customer => EntityRef::Customer(id),
            Kind::Order => EntityRef::Order(id),
            Kind::Resource => EntityRef::Resource(id),
            Kind::Authorization => EntityRef::Authorization(id),
            Kind::Session => EntityRef::Session(id),
        }
    }
}

/// Where the resource of the check comes from.
#[derive(Clone, Copy, Debug)]
pub enum ResourceFrom {
    /// A `{name}` segment of the path.
    Path(&'static str, Kind),
    /// A required query parameter.
    Query(&'static str, Kind),
    /// A required string field of the JSON body.
    Body(&'static str, Kind),
    /// Each id of a JSON array field: one check per id, all or nothing.
    EachInBody(&'static str, Kind),
    /// The caller's own partner (list routes that name no customer).
    CallerPartner,
    /// The customer whose own account is served: the customer principal, or a session's customer.
    CallerCustomer,
    /// The caller's live sessions, one check each, made by the handler.
    CallerSessions,
}

/// How a request field becomes a Cedar context value.
#[derive(Clone, Copy, Debug)]
pub enum ContextValue {
    /// A string out of a fixed set, with a default when absent.
    OneOf(&'static [&'static str], Option<&'static str>),
    /// A decimal amount, at most two places, in (0, 2147483647].
    Amount,
    /// The public API's `"0"`/`"1"` string flag as a Bool (absent = false).
    Flag01,
    /// A whole number in a range, with a default when absent.
    Long {
        min: i64,
        max: i64,
        default: Option<i64>,
    },
    /// A non-empty set of distinct authorization scopes (`om`, `order`).
    Scopes,
}

/// One context field: its Cedar name, the body field it is read from, and how.
#[derive(Clone, Copy, Debug)]
pub struct ContextField {
    pub name: &'static str,
    pub from: &'static str,
    pub value: ContextValue,
}

/// What the gateway does after an allowed upstream answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    Nothing,
    /// Re-check every customer of a ListSubCustomers page with `ViewCustomer`
    /// (drop the denied) and unmask contact fields only where `RevealContact` allows.
    FilterCustomers,
    /// Re-check every order of a ListCustomerOrders page with `ViewOrder`.
    FilterOrders,
    /// The write changed the checked entities: drop them from the entity cache.
    Invalidate,
}

/// Who answers the route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Forwarded to the domain store.
    Upstream,
    /// `POST /v3/auth/tokens`: answered by the gateway after authentication
    /// alone (it grants nothing the credential did not already have).
    IssueToken,
    /// Assume-role sessions are the gateway's own (src/gateway/sessions.rs).
    CreateSession,
    ListSessions,
    EndSession,
}

#[derive(Clone, Debug)]
pub struct Route {
    pub method: Method,
    pub template: &'static str,
    pub action: &'static str,
    pub resource: ResourceFrom,
    pub context: &'static [ContextField],
    pub after: After,
    pub answer: Answer,
    /// When the resource parameter is absent, check this action on the
    /// caller's partner instead and filter the answer (a list over the whole scope).
    pub when_absent: Option<(&'static str, After)>,
}

const fn route(
    method: Method,
    template: &'static str,
    action: &'static str,
    resource: ResourceFrom,
) -> Route {
    Route {
        method,
        template,
        action,
        resource,
        context: &[],
        after: After::Nothing,
        answer: Answer::Upstream,
        when_absent: None,
    }
}

impl Route {
    const fn context(mut self, context: &'static [ContextField]) -> Route {
        self.context = context;
        self
    }
    const fn after(mut self, after: After) -> Route {
        self.after = after;
        self
    }
    const fn when_absent(mut self, action: &'static str, after: After) -> Route {
        self.when_absent = Some((action, after));
        self
    }
    const fn answered_by(mut self, answer: Answer) -> Route {
        self.answer = answer;
        self
    }
}

use After::*;
use Kind::*;
use ResourceFrom::*;

const FREEZE_TYPES: &[&str] = &["ACCOUNT", "ACCOUNT_AND_RESOURCE"];

/// Every route of DOMAIN.md section 3.
pub static ROUTES: &[Route] = &[
    // ---- customers (R1, R2) ----
    route(
        Method::POST,
        "/v2/partners/sub-customers/query",
        "ListCustomers",
        CallerPartner,
    )
    .after(FilterCustomers),
    route(
        Method::GET,
        "/v2/partners/sub-customers/{customer_id}/overview",
        "ViewCustomer",
        Path("customer_id", Customer),
    ),
    // ---- budgets (R1, R3) ----
    route(
        Method::GET,
        "/v2/partners/sub-customers/budget",
        "ViewBudget",
        Query("customer_id", Customer),
    ),
    route(
        Method::POST,
        "/v2/partners/sub-customers/budget/query",
        "ViewBudget",
        EachInBody("customer_ids", Customer),
    ),
    route(
        Method::GET,
        "/v2/partners/sub-customers/budget/records",
        "ViewBudget",
        Query("customer_id", Customer),
    ),
    route(
        Method::POST,
        "/v2/partners/sub-customers/budget",
        "SetBudget",
        Body("customer_id", Customer),
    )
    .context(&[
        ContextField {
            name: "budget_type",
            from: "budget_type",
            value: ContextValue::OneOf(&["MONTHLY", "PACKAGE"], Some("MONTHLY")),
        },
        ContextField {
            name: "amount",
            from: "budget_amount",
            value: ContextValue::Amount,
        },
        ContextField {
            name: "cancel_partner_frozen",
            from: "cancel_partner_frozen",
            value: ContextValue::Flag01,
        },
    ])
    .after(Invalidate),
    // ---- freeze (R3) ----
    route(
        Method::POST,
        "/v2/partners/sub-customers/freeze",
        "FreezeCustomer",
        EachInBody("customer_ids", Customer),
    )
    .context(&[ContextField {
        name: "freeze_type",
        from: "freeze_type",
        value: ContextValue::OneOf(FREEZE_TYPES, Some("ACCOUNT")),
    }])
    .after(Invalidate),
    route(
        Method::POST,
        "/v2/partners/sub-customers/unfreeze",
        "UnfreezeCustomer",
        EachInBody("customer_ids", Customer),
    )
    .context(&[ContextField {
        name: "freeze_type",
        from: "unfreeze_type",
        value: ContextValue::OneOf(FREEZE_TYPES, Some("ACCOUNT")),
    }])
    .after(Invalidate),
    // ---- orders (R1, R4) ----
    route(
        Method::GET,
        "/v2/orders/customer-orders",
        "ViewOrders",
        Query("customer_id", Customer),
    )
    .when_absent("ListOrders", FilterOrders),
    route(
        Method::GET,
        "/v2/orders/customer-orders/details/{order_id}",
        "ViewOrder",
        Path("order_id", Order),
    ),
    route(
        Method::GET,
        "/v2/orders/customer-orders/{order_id}/price-adjustments",
        "ViewOrder",
        Path("order_id", Order),
    ),
    route(
        Method::POST,
        "/v2/orders/customer-orders/{order_id}/price-adjustments",
        "AdjustOrderPrice",
        Path("order_id", Order),
    ),
    route(
        Method::POST,
        "/v2/orders/customer-orders/exports",
        "ExportOrders",
        EachInBody("order_ids", Order),
    )
    .when_absent("ListOrders", Nothing),
    route(
        Method::GET,
        "/v2/orders/customer-orders/exports",
        "ViewExports",
        CallerPartner,
    ),
    route(
        Method::GET,
        "/v2/orders/customer-orders/exports/{export_id}",
        "ViewExports",
        CallerPartner,
    ),
    route(
        Method::GET,
        "/v2/orders/customer-orders/exports/{export_id}/file",
        "ViewExports",
        CallerPartner,
    ),
    // ---- resources (R1) ----
    route(
        Method::POST,
        "/v2/partners/sub-customers/on-demand-resources/query",
        "ViewResources",
        Body("customer_id", Customer),
    ),
    route(
        Method::POST,
        "/v2/orders/suscriptions/resources/query",
        "ViewResources",
        Body("customer_id", Customer),
    ),
    // ---- resellers (R5) ----
    route(
        Method::POST,
        "/v2/partners/indirect-partners/query",
        "ListResellers",
        CallerPartner,
    ),
    route(
        Method::GET,
        "/v2/partners/indirect-partners/{partner_id}/grants",
        "ViewResellerGrants",
        Path("partner_id", Partner),
    ),
    route(
        Method::PUT,
        "/v2/partners/indirect-partners/{partner_id}/grants",
        "SetResellerGrants",
        Path("partner_id", Partner),
    )
    .after(Invalidate),
    // ---- customer authorizations (R6, R7) ----
    route(
        Method::POST,
        "/v2/partners/sub-customers/{customer_id}/authorizations",
        "RequestAuthorization",
        Path("customer_id", Customer),
    )
    .context(&[
        ContextField {
            name: "scopes",
            from: "scopes",
            value: ContextValue::Scopes,
        },
        ContextField {
            name: "duration_days",
            from: "duration_days",
            value: ContextValue::Long {
                min: 1,
                max: 3650,
                default: Some(365),
            },
        },
    ])
    .after(Invalidate),
    route(
        Method::GET,
        "/v2/partners/sub-customers/{customer_id}/authorizations",
        "ViewAuthorizations",
        Path("customer_id", Customer),
    ),
    route(
        Method::GET,
        "/v2/customers/partner-authorizations",
        "ViewOwnAuthorizations",
        CallerCustomer,
    ),
    route(
        Method::POST,
        "/v2/customers/partner-authorizations/{authorization_id}/approve",
        "ApproveAuthorization",
        Path("authorization_id", Authorization),
    )
    .after(Invalidate),
    route(
        Method::POST,
        "/v2/customers/partner-authorizations/{authorization_id}/reject",
        "RejectAuthorization",
        Path("authorization_id", Authorization),
    )
    .after(Invalidate),
    route(
        Method::POST,
        "/v2/customers/partner-authorizations/{authorization_id}/revoke",
        "RevokeAuthorization",
        Path("authorization_id", Authorization),
    )
    .after(Invalidate),
    route(
        Method::GET,
        "/v2/customers/partner-activity",
        "ViewPartnerActivity",
        CallerCustomer,
    ),
    // ---- the customer's own account (R9, R10, customer-self) ----
    route(
        Method::POST,
        "/v2/customer/orders",
        "PlaceOrder",
        CallerCustomer,
    )
    .context(&[ContextField {
        name: "charging",
        from: "charging",
        value: ContextValue::OneOf(&["yearly_monthly", "pay_per_use"], None),
    }]),
    route(
        Method::GET,
        "/v2/customer/orders",
        "ViewOwnOrders",
        CallerCustomer,
    ),
    route(
        Method::GET,
        "/v2/customer/resources",
        "ViewOwnResources",
        CallerCustomer,
    ),
    route(
        Method::POST,
        "/v2/customer/resources/{resource_id}/operations",
        "OperateResource",
        Path("resource_id", Resource),
    )
    .context(&[ContextField {
        name: "operation",
        from: "operation",
        value: ContextValue::OneOf(&["start", "stop", "restart", "renew", "unsubscribe"], None),
    }]),
    // ---- assume-role sessions (R8), answered by the gateway ----
    route(
        Method::POST,
        "/v3/partner-sessions",
        "AssumeRole",
        Body("customer_id", Customer),
    )
    .context(&[
        ContextField {
            name: "scopes",
            from: "scopes",
            value: ContextValue::Scopes,
        },
        ContextField {
            name: "duration_seconds",
            from: "duration_seconds",
            value: ContextValue::Long {
                min: 900,
                max: 43_200,
                default: Some(3_600),
            },
        },
    ])
    .answered_by(Answer::CreateSession),
    route(
        Method::GET,
        "/v3/partner-sessions",
        "ListSessions",
        CallerSessions,
    )
    .answered_by(Answer::ListSessions),
    route(
        Method::DELETE,
        "/v3/partner-sessions/{session_id}",
        "EndSession",
        Path("session_id", Session),
    )
    .answered_by(Answer::EndSession),
    // ---- authentication ----
    route(Method::POST, "/v3/auth/tokens", "", CallerPartner).answered_by(Answer::IssueToken),
];

/// Path parameters captured by a template, decoded.
pub type Params = Vec<(&'static str, String)>;

/// The route for a method and (already normalized) path, with its parameters.
pub fn resolve(method: &Method, path: &str) -> Option<(&'static Route, Params)> {
    ROUTES
        .iter()
        .filter(|r| r.method == *method)
        .find_map(|r| match_template(r.template, path).map(|params| (r, params)))
}

fn match_template(template: &'static str, path: &str) -> Option<Params> {
    let mut t = template.split('/');
    let mut p = path.split('/');
    let mut params = Vec::new();
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) => {
                if let Some(name) = ts.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
                    if ps.is_empty() {
                        return None;
                    }
                    let decoded = percent_encoding::percent_decode_str(ps)
                        .decode_utf8()
                        .ok()?;
                    params.push((name, decoded.into_owned()));
                } else if ts != ps {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_templates_and_literals() {
        let (r, params) =
            resolve(&Method::GET, "/v2/orders/customer-orders/details/ord%201").unwrap();
        assert_eq!(r.action, "ViewOrder");
        assert_eq!(params, vec![("order_id", "ord 1".to_string())]);
        // A literal segment is not a parameter value.
        let (r, _) = resolve(&Method::GET, "/v2/orders/customer-orders/exports").unwrap();
        assert_eq!(r.action, "ViewExports");
        let (r, _) = resolve(&Method::POST, "/v2/partners/sub-customers/budget/query").unwrap();
        assert_eq!(r.action, "ViewBudget");
        assert!(resolve(&Method::DELETE, "/v2/partners/sub-customers/query").is_none());
        assert!(resolve(&Method::GET, "/v2/partners/sub-customers//overview").is_none());
        assert!(resolve(&Method::GET, "/v2/partners/sub-customers/x/overview/extra").is_none());
    }

    #[test]
    fn every_template_is_reachable_and_unshadowed() {
        for r in ROUTES {
            let path = r.template.replace(['{', '}'], "");
            let (found, _) = resolve(&r.method, &path).unwrap();
            assert_eq!(found.template, r.template, "{} is shadowed", r.template);
        }
    }
}
