//! The gateway: every partner API call passes through [`Gateway::handle`],
//! which runs the stages in order: normalize → authenticate → route →
//! authorize (Cedar) → forward → respond → audit. Each stage is a module.

pub mod authn;
pub mod authorize;
pub mod body;
mod error;
pub mod forward;
pub mod normalize;
pub mod routes;
mod sessions;
pub mod tokens;

pub use error::GatewayError;

use crate::api_error::ApiError;
use crate::audit::DecisionRecord;
use crate::domain::customers::{mask_email, mask_name, mask_phone, REVEAL_CONTACT, REVEAL_HEADER};
use crate::entities::{EntityLoader, SessionFacts};
use crate::policy::{AccessRequest, Decision, EntityRef, PolicyEngine};
use arc_swap::ArcSwap;
use authn::{Authenticator, Caller};
use authorize::Check;
use bytes::Bytes;
use forward::{Upstream, UpstreamResponse};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use routes::{After, Answer};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Response bodies are always complete buffers.
pub type Body = Full<Bytes>;

/// The header a client sends to see masked contact fields, listing which of
/// `name`, `email`, `phone` (comma-separated). Each customer is then checked
/// with `RevealContact` (R2) and every reveal is audited.
pub const CLIENT_REVEAL_HEADER: &str = "x-reveal-contact";

/// Everything the request path needs; shared by all connections.
pub struct Gateway {
    pub policies: Arc<ArcSwap<PolicyEngine>>,
    /// Shadow policies (`--shadow-policies`): evaluated next to every live
    /// decision and compared with it, never deciding (`policy::shadow`).
    pub shadow: Option<Arc<ArcSwap<PolicyEngine>>>,
    pub entities: Arc<EntityLoader>,
    pub authn: Authenticator,
    pub upstream: Upstream,
    pub max_body_bytes: usize,
    /// Whether clients reach the gateway over TLS (for `Forwarded: proto=`).
    pub tls: bool,
}

impl crate::listener::RequestHandler for Gateway {
    async fn handle(self: Arc<Self>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        Gateway::handle(&self, req, peer).await
    }
}

impl Gateway {
    /// The request path, start to finish. Whatever happens, the client gets
    /// an answer in the API's format and one decision record is written.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut record = DecisionRecord::new(&request_id, req.method().as_str(), req.uri().path());
        // Every log line of the request carries its id (shadow disagreements, errors).
        let span = tracing::info_span!("request", request_id = %request_id);
        let processed = tracing::Instrument::instrument(
            self.process(req, peer, &request_id, &mut record),
            span,
        )
        .await;
        let mut response = match processed {
            Ok(response) => response,
            Err(err) => api_error_response(err.to_api_error()),
        };
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-request-id", v);
        }
        let latency = started.elapsed();
        record.emit(response.status().as_u16(), latency);
        crate::metrics::observe_request(&record, response.status().as_u16(), latency);
        response
    }

    async fn process(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        request_id: &str,
        record: &mut DecisionRecord,
    ) -> Result<Response<Body>, GatewayError> {
        let (parts, incoming) = req.into_parts();

        // 1. Normalize: one canonical request, or 400.
        let target = normalize::check(&parts)?;
        let body = read_body(incoming, self.max_body_bytes).await?;

        // 2. Authenticate: AK/SK signature or token, or 401.
        let now = chrono::Utc::now();
        let caller = self.authn.authenticate(&parts, &target, &body, now).await?;
        record.caller(&caller);

        // 3. Route: the table says which check the call needs, or 404.
        let (route, params) =
            routes::resolve(&parts.method, &target.path).ok_or(GatewayError::UnknownRoute)?;
        record.route = Some(route.template);
        if route.answer == Answer::IssueToken {
            return self.issue_token(&caller, &body, now);
        }
        let fields = body::BodyFields::parse(&body)?;
        let plan = authorize::plan(route, &params, &target.query, &fields, &caller)?;

        // 4. Authorize: every check must be allowed by the policies, or 403.
        let engine = self.policies.load_full();
        let authorizing = Instant::now();
        let authorized = self
            .authorize_all(&engine, &caller, &plan.checks, peer, record)
            .await;
        record.decision_latency = Some(authorizing.elapsed());
        authorized?;
        match route.answer {
            Answer::CreateSession => return self.create_session(&caller, &fields, now).await,
            Answer::ListSessions => {
                return self
                    .list_sessions(&engine, &caller, peer, now, record)
                    .await
            }
            Answer::EndSession => {
                let id = params
                    .iter()
                    .find(|(n, _)| *n == "session_id")
                    .map(|(_, v)| v.as_str())
                    .unwrap_or_default();
                return self.end_session(id, now).await;
            }
            Answer::Upstream | Answer::IssueToken => {}
        }
        let reveal = self.requested_reveal(&parts.headers, plan.after)?;

        // 5. Forward to the domain store with the signed identity assertion.
        let extra: Vec<(HeaderName, HeaderValue)> = if reveal.is_some() {
            vec![(
                HeaderName::from_static(REVEAL_HEADER),
                HeaderValue::from_static(REVEAL_CONTACT),
            )]
        } else {
            vec![]
        };
        let forwarding = Instant::now();
        let answer = self
            .upstream
            .forward(
                &parts, &target, body, &caller, request_id, peer, self.tls, &extra,
            )
            .await;
        record.upstream_latency = Some(forwarding.elapsed());
        let answer = answer?;

        // 6. Respond: re-check listed items, unmask only what R2 allows, and
        //    drop from the entity cache what an allowed write changed.
        if answer.status.is_success() && plan.after == After::Invalidate {
            for check in &plan.checks {
                self.entities.invalidate(&check.resource);
            }
        }
        self.respond(
            &engine,
            &caller,
            plan.after,
            reveal.as_deref(),
            peer,
            answer,
        )
        .await
    }

    /// Decides every check; all must allow. A batch names the denied ids.
    async fn authorize_all(
        &self,
        engine: &PolicyEngine,
        caller: &Caller,
        checks: &[Check],
        peer: SocketAddr,
        record: &mut DecisionRecord,
    ) -> Result<(), GatewayError> {
        let mut denied = Vec::new();
        for check in checks {
            let decision = self.decide(engine, caller, check, peer).await?;
            record.decision(
                check.action,
                check.resource.to_string(),
                &decision,
                engine.version(),
            );
            if !decision.allow {
                denied.push((check.resource.id().to_owned(), engine.denial(&decision)));
            }
        }
        match denied.as_slice() {
            [] => Ok(()),
            [(_, (code, msg))] if checks.len() == 1 => Err(GatewayError::Denied {
                code: code.clone(),
                msg: msg.clone(),
                details: None,
            }),
            _ => {
                let details: Vec<Value> = denied
                    .iter()
                    .map(
                        |(id, (code, msg))| json!({"id": id, "error_code": code, "error_msg": msg}),
                    )
                    .collect();
                let first = ApiError::denied();
                Err(GatewayError::Denied {
                    code: first.code,
                    msg: "Access denied for one or more of the listed ids; nothing was changed."
                        .into(),
                    details: Some(Value::Array(details)),
                })
            }
        }
    }

    /// One Cedar decision. An unknown principal or resource is a plain deny
    /// (no existence oracle); a failure to load entities is 503 (fail closed).
    async fn decide(
        &self,
        engine: &PolicyEngine,
        caller: &Caller,
        check: &Check,
        peer: SocketAddr,
    ) -> Result<Decision, GatewayError> {
        // Sessions are not cached entities: the caller's comes from
        // authentication, one named as the resource is read now.
        let mut sessions: Vec<SessionFacts> = caller.session.iter().cloned().collect();
        if let EntityRef::Session(id) = &check.resource {
            if caller.session.as_ref().map(|s| s.id.as_str()) != Some(id.as_str()) {
                let stored = self
                    .entities
                    .store()
                    .session(&id.as_str().into())
                    .await
                    .map_err(|e| GatewayError::Unavailable(format!("loading a session: {e}")))?;
                sessions.extend(stored.map(|s| s.facts()));
            }
        }
        let slice = self
            .entities
            .slice(engine, &caller.principal, &check.resource, &sessions)
            .await
            .map_err(|e| GatewayError::Unavailable(format!("loading entities: {e}")))?;
        let Some(entities) = slice else {
            return Ok(Decision {
                allow: false,
                determining: vec![],
                errors: vec![],
            });
        };
        let request = AccessRequest::new(
            caller.principal.clone(),
            check.action,
            check.resource.clone(),
            check.context.clone(),
        )
        .with_live_context(peer.ip());
        let decision = engine.decide(&request, &entities);
        if let Some(shadow) = &self.shadow {
            crate::policy::shadow::compare(&shadow.load(), engine, &request, &entities, &decision);
        }
        if !decision.errors.is_empty() {
            tracing::error!(errors = ?decision.errors, action = check.action, resource = %check.resource, "policy evaluation failed; denied");
        }
        Ok(decision)
    }

    /// The contact fields the client asked to see, on a route that lists customers.
    fn requested_reveal(
        &self,
        headers: &http::HeaderMap,
        after: After,
    ) -> Result<Option<Vec<String>>, GatewayError> {
        let Some(value) = headers.get(CLIENT_REVEAL_HEADER) else {
            return Ok(None);
        };
        if after != After::FilterCustomers {
            return Ok(None);
        }
        let text = value.to_str().map_err(|_| {
            GatewayError::BadParameter(format!("invalid header {CLIENT_REVEAL_HEADER}"))
        })?;
        let mut fields: Vec<String> = text
            .split(',')
            .map(|f| f.trim().to_ascii_lowercase())
            .filter(|f| !f.is_empty())
            .collect();
        fields.sort();
        fields.dedup();
        if fields.is_empty()
            || !fields
                .iter()
                .all(|f| ["name", "email", "phone"].contains(&f.as_str()))
        {
            return Err(GatewayError::BadParameter(format!(
                "invalid header {CLIENT_REVEAL_HEADER}: a comma-separated list of name, email, phone"
            )));
        }
        Ok(Some(fields))
    }

    async fn respond(
        &self,
        engine: &PolicyEngine,
        caller: &Caller,
        after: After,
        reveal: Option<&[String]>,
        peer: SocketAddr,
        answer: UpstreamResponse,
    ) -> Result<Response<Body>, GatewayError> {
        let UpstreamResponse {
            status,
            mut headers,
            body,
        } = answer;
        forward::strip_response_hop_headers(&mut headers);
        let body = match after {
            After::FilterCustomers if status.is_success() => {
                self.filter_customers(engine, caller, reveal, peer, &body)
                    .await?
            }
            After::FilterOrders if status.is_success() => {
                self.filter_orders(engine, caller, peer, &body).await?
            }
            _ => body,
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }

    /// ListSubCustomers: every listed customer is re-checked with `ViewCustomer`
    /// (a disagreement with the store's scoping is logged as an error and the
    /// customer dropped), and contact fields stay masked unless `RevealContact`
    /// allows them for that customer.
    async fn filter_customers(
        &self,
        engine: &PolicyEngine,
        caller: &Caller,
        reveal: Option<&[String]>,
        peer: SocketAddr,
        body: &Bytes,
    ) -> Result<Bytes, GatewayError> {
        let mut doc: Value = serde_json::from_slice(body).map_err(|e| {
            GatewayError::Internal(format!("upstream customer list is not JSON: {e}"))
        })?;
        let Some(items) = doc.get_mut("customer_infos").and_then(Value::as_array_mut) else {
            return Err(GatewayError::Internal(
                "upstream customer list has no customer_infos".into(),
            ));
        };
        let mut kept = Vec::with_capacity(items.len());
        let mut dropped = 0i64;
        for mut item in std::mem::take(items) {
            let id = item
                .get("customer_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let view = Check {
                action: "ViewCustomer",
                resource: EntityRef::Customer(id.clone()),
                context: Default::default(),
            };
            if !self.decide(engine, caller, &view, peer).await?.allow {
                tracing::error!(customer = %id, principal = %caller.principal, "the store listed a customer the policies deny; dropped");
                dropped += 1;
                continue;
            }
            if let Some(fields) = reveal {
                let mut context = serde_json::Map::new();
                context.insert("fields".into(), json!(fields));
                let check = Check {
                    action: "RevealContact",
                    resource: EntityRef::Customer(id.clone()),
                    context,
                };
                let decision = self.decide(engine, caller, &check, peer).await?;
                let shown: &[String] = if decision.allow { fields } else { &[] };
                if decision.allow {
                    tracing::info!(target: "reveal", principal = %caller.principal, customer = %id, fields = %fields.join(","), "contact fields revealed");
                }
                mask_contact(&mut item, shown);
            }
            kept.push(item);
        }
        *items = kept;
        if let Some(count) = doc.get_mut("count") {
            if let Some(n) = count.as_i64() {
                *count = json!((n - dropped).max(0));
            }
        }
        Ok(Bytes::from(
            serde_json::to_vec(&doc).map_err(|e| GatewayError::Internal(e.to_string()))?,
        ))
    }

    /// ListCustomerOrders over the whole scope: every order re-checked with `ViewOrder`.
    async fn filter_orders(
        &self,
        engine: &PolicyEngine,
        caller: &Caller,
        peer: SocketAddr,
        body: &Bytes,
    ) -> Result<Bytes, GatewayError> {
        let mut doc: Value = serde_json::from_slice(body)
            .map_err(|e| GatewayError::Internal(format!("upstream order list is not JSON: {e}")))?;
        let Some(items) = doc.get_mut("order_infos").and_then(Value::as_array_mut) else {
            return Err(GatewayError::Internal(
                "upstream order list has no order_infos".into(),
            ));
        };
        let mut kept = Vec::with_capacity(items.len());
        let mut dropped = 0i64;
        for item in std::mem::take(items) {
            let id = item
                .get("order_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let view = Check {
                action: "ViewOrder",
                resource: EntityRef::Order(id.clone()),
                context: Default::default(),
            };
            if self.decide(engine, caller, &view, peer).await?.allow {
                kept.push(item);
            } else {
                tracing::error!(order = %id, principal = %caller.principal, "the store listed an order the policies deny; dropped");
                dropped += 1;
            }
        }
        *items = kept;
        if let Some(count) = doc.get_mut("total_count") {
            if let Some(n) = count.as_i64() {
                *count = json!((n - dropped).max(0));
            }
        }
        Ok(Bytes::from(
            serde_json::to_vec(&doc).map_err(|e| GatewayError::Internal(e.to_string()))?,
        ))
    }

    /// `POST /v3/auth/tokens`: a token for the signing principal, in `X-Subject-Token`.
    fn issue_token(
        &self,
        caller: &Caller,
        body: &[u8],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Response<Body>, GatewayError> {
        if caller.method != authn::AuthMethod::Signature {
            // A token does not mint tokens: its lifetime would never end.
            return Err(GatewayError::Unauthenticated(
                "tokens are issued to AK/SK signatures only",
            ));
        }
        let fields = body::BodyFields::parse(body)?;
        let lifetime = fields
            .integer("duration_seconds")?
            .unwrap_or(tokens::MAX_TOKEN_SECS);
        if !(tokens::MIN_TOKEN_SECS..=tokens::MAX_TOKEN_SECS).contains(&lifetime) {
            return Err(GatewayError::InvalidParameter(format!(
                "invalid parameter duration_seconds: must be between {} and {}",
                tokens::MIN_TOKEN_SECS,
                tokens::MAX_TOKEN_SECS
            )));
        }
        let kind = match caller.identity.kind {
            crate::assertion::CallerKind::Operator => crate::model::PrincipalKind::Operator,
            crate::assertion::CallerKind::Customer => crate::model::PrincipalKind::Customer,
            crate::assertion::CallerKind::Session => {
                return Err(GatewayError::Unauthenticated("sessions do not mint tokens"))
            }
        };
        let (token, expires_at) =
            self.authn
                .tokens()
                .issue(kind, &caller.identity.id, now, lifetime);
        let body = json!({"token": {
            "issued_at": crate::time::format(now),
            "expires_at": crate::time::format(expires_at),
            "methods": ["hw_ak_sk"],
            "user": {"id": caller.identity.id, "domain": {"id": caller.identity.partner.as_ref().or(caller.identity.customer.as_ref())}},
        }});
        let mut response = json_response(StatusCode::CREATED, &body);
        response.headers_mut().insert(
            "x-subject-token",
            HeaderValue::from_str(&token).map_err(|e| GatewayError::Internal(e.to_string()))?,
        );
        Ok(response)
    }
}

/// Masks the contact fields of one listed customer except those in `shown`.
fn mask_contact(item: &mut Value, shown: &[String]) {
    let is_shown = |f: &str| shown.iter().any(|s| s == f);
    for (field, wire, mask) in [
        ("name", "customer", mask_name as fn(&str) -> String),
        ("email", "email", mask_email),
        ("phone", "telephone", mask_phone),
    ] {
        if is_shown(field) {
            continue;
        }
        if let Some(Value::String(s)) = item.get_mut(wire) {
            *s = mask(s);
        }
    }
}

async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, GatewayError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(GatewayError::BodyTooLarge)
        }
        Err(e) => Err(GatewayError::BadParameter(format!(
            "the request body could not be read: {e}"
        ))),
    }
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    json_bytes_response(
        status,
        serde_json::to_vec(body).expect("JSON value serializes"),
    )
}

/// The API error as an HTTP response.
pub fn api_error_response(err: ApiError) -> Response<Body> {
    json_bytes_response(err.status, err.body())
}

fn json_bytes_response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    response
}
