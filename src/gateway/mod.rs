//! The gateway: every partner API call passes through [`Gateway::handle`],
//! which runs the stages in order: normalize → authenticate → operation
//! (the catalog's, with its typed request) → authorize (Cedar: every target,
//! and a list's items as a filter) → answer (forward to the domain store, or
//! the gateway's own sessions and tokens) → respond → audit. Each stage is a
//! module.

pub mod authn;
mod authorize;
mod client_tokens;
mod error;
pub mod forward;
pub mod forwarded;
pub mod normalize;
mod respond;
mod sessions;
pub mod tokens;

pub use client_tokens::TOKEN_PATTERN as CLIENT_TOKEN_PATTERN;
pub use sessions::success as own_success;

pub use error::GatewayError;

use crate::api_error::ApiError;
use crate::assertion::{Claims, ASSERTION_TTL_SECS};
use crate::audit::{DecisionRecord, RequestId};
use crate::authorizer::Authorizer;
use crate::caller::Caller;
use crate::catalog::{self, After, Input, Operation, Request, ServedBy};
use crate::filter::{Candidates, ListScope};
use crate::listener::Body;
use crate::policy::{Asked, PolicyEngine};
use crate::recent::Recent;
use crate::trace;
use authn::Authenticator;
use authorize::Decided;
use bytes::{Bytes, BytesMut};
use forward::{Upstream, UpstreamResponse};
use http::request::Parts;
use http::{HeaderValue, Request as HttpRequest, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use normalize::CanonicalTarget;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument as _;

/// Everything the request path needs; shared by all connections.
pub struct Gateway {
    /// The policies, the entities and the decisions reused.
    pub authorizer: Authorizer,
    /// The last decision records, for the console.
    pub recent_decisions: Recent<std::sync::Arc<crate::audit::Kept>>,
    /// Where decision records are written; `None`: the human log on stderr.
    pub decision_log: Option<crate::audit::DecisionLog>,
    /// Whether spans are exported (`--otlp-endpoint`): a request's span
    /// then joins the exported trace (`otlp::adopt`).
    pub exports_traces: bool,
    pub authn: Authenticator,
    pub upstream: Upstream,
    pub max_body_bytes: usize,
    /// From a request head to its complete body.
    pub body_timeout: std::time::Duration,
    /// Body bytes (one permit each) that requests whose signature is not
    /// yet verified may hold, all together.
    pub unauthenticated_bytes: Arc<tokio::sync::Semaphore>,
    /// Whether clients reach the gateway over TLS (for `Forwarded: proto=`).
    pub tls: bool,
    /// Each principal's rate limit.
    pub throttle: crate::throttle::Throttle,
    /// Requests in flight to the domain store (one permit each); none left: 503.
    pub upstream_slots: tokio::sync::Semaphore,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: crate::config::TrustedProxies,
    /// The OpenAPI document (`crate::openapi`), served to anyone at
    /// [`OPENAPI_PATH`]: the public contract, which partner developers
    /// read before they hold any credential.
    pub openapi: Bytes,
}

/// Where the gateway serves its OpenAPI document.
pub const OPENAPI_PATH: &str = "/openapi.json";

impl crate::listener::RequestHandler for Gateway {
    async fn handle(
        self: Arc<Self>,
        req: HttpRequest<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        Gateway::handle(&self, req, peer).await
    }
}

/// One request on its way through the stages.
struct Call<'a> {
    parts: Parts,
    target: CanonicalTarget,
    body: Bytes,
    /// The client's address (behind a trusted proxy, the one it names).
    client: std::net::IpAddr,
    /// The moment every decision of the request is taken at.
    asked: Asked,
    request_id: &'a str,
    trace: &'a trace::TraceContext,
    caller: Caller,
    operation: &'static Operation,
    request: Request,
    engine: Arc<PolicyEngine>,
}

/// The span of one stage of the request path: only when traces are
/// exported or the log is at debug. Otherwise each would cost the request
/// allocations for what nobody sees; the request's own span is always there.
macro_rules! stage_span {
    ($gateway:expr, $name:literal) => {
        if $gateway.exports_traces || tracing::enabled!(tracing::Level::DEBUG) {
            tracing::info_span!($name)
        } else {
            tracing::Span::none()
        }
    };
}

impl Gateway {
    /// The request path, start to finish. Whatever happens, the client gets
    /// an answer in the API's format and one decision record is written.
    pub async fn handle(&self, req: HttpRequest<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let request_id = RequestId::random();
        let mut trace = trace::TraceContext::from_headers(req.headers());
        // Every log line of the request carries its id and trace id (shadow
        // disagreements, authentication failures, errors): the error is
        // mapped, and its cause logged, inside the span.
        let span = if self.exports_traces {
            // With OTLP export the span joins the client's trace and lends
            // its ids to everything below; before any of them is recorded.
            let span = tracing::info_span!(
                "request",
                request_id = %request_id,
                trace_id = tracing::field::Empty
            );
            crate::otlp::adopt(&span, &mut trace);
            span.record("trace_id", tracing::field::display(&trace.trace_id));
            span
        } else {
            // Both ids at once: recording one later is a second pass
            // through the log's formatter.
            tracing::info_span!("request", request_id = %request_id, trace_id = %trace.trace_id)
        };
        let mut record = DecisionRecord::new(request_id, req.method().clone(), req.uri().path());
        record.trace_id = Some(trace.trace_id);
        let client = forwarded::client_ip(peer.ip(), req.headers(), &self.trusted_proxies);
        record.client_ip = Some(client);
        let mut response = async {
            let process = self.process(req, client, request_id.as_str(), &trace, &mut record);
            match crate::entities::as_one_request(process).await {
                Ok(response) => response,
                Err(err) => {
                    match &err {
                        GatewayError::Unauthenticated(failure) => record.auth_failed(failure),
                        GatewayError::Shed => {
                            record.refused = Some("shed");
                            crate::metrics::shed();
                        }
                        _ => {}
                    }
                    api_error_response(err.to_api_error())
                }
            }
        }
        .instrument(span)
        .await;
        if let Ok(v) = HeaderValue::from_str(request_id.as_str()) {
            response.headers_mut().insert(forward::X_REQUEST_ID, v);
        }
        let latency = started.elapsed();
        let status = response.status().as_u16();
        crate::metrics::observe_request(record.answered(status, latency));
        self.keep_record(record, status, latency);
        response
    }

    /// Writes a request's decision record (the decision log, else the
    /// human log) and keeps it for the console.
    pub fn keep_record(&self, record: DecisionRecord, status: u16, latency: std::time::Duration) {
        record.emit(
            status,
            latency,
            &self.recent_decisions,
            self.decision_log.as_ref(),
        );
    }

    async fn process(
        &self,
        req: HttpRequest<Incoming>,
        client: std::net::IpAddr,
        request_id: &str,
        trace: &trace::TraceContext,
        record: &mut DecisionRecord,
    ) -> Result<Response<Body>, GatewayError> {
        let (parts, incoming) = req.into_parts();

        // 1. Normalize: one canonical request, or 400.
        let target = normalize::check(&parts)?;

        // The public contract, to anyone: it names no data and decides
        // nothing.
        if parts.method == http::Method::GET && target.path() == OPENAPI_PATH {
            record.route = Some(OPENAPI_PATH);
            return Ok(json_bytes_response(StatusCode::OK, self.openapi.clone()));
        }

        // The route is known before authentication so that a 401 is counted
        // under it; an unknown one is answered only to a known caller.
        let route = catalog::resolve(&parts.method, target.path());
        record.route = route.as_ref().map(|(operation, _)| operation.path);

        // 2. Authenticate: who is calling (a valid key and signature, token
        //    or session credential), or 401. Whether it may act is Cedar's.
        //    The head first: an unknown key or a bad head is refused before
        //    any body byte is read; the signature covers the body hash.
        let now = chrono::Utc::now();
        let checked = self
            .authn
            .begin(&parts, &target, now)
            .instrument(stage_span!(self, "authenticate"))
            .await?;
        let unverified = matches!(checked, authn::HeadChecked::Signature(_));
        let (body, held) = self.read_body(incoming, unverified).await?;
        let caller = self
            .authn
            .finish(checked, &body)
            .instrument(stage_span!(self, "verify_signature"))
            .await?;
        drop(held); // verified: its bytes no longer count against the cap
        record.caller(&caller);

        // Each principal's fair share, debited only now that the signature
        // is verified: nobody can spend another's budget.
        if let crate::throttle::Admission::Throttled { retry_after_secs } =
            self.throttle.admit(&caller.identity, Instant::now())
        {
            record.refused = Some("rate_limit");
            crate::metrics::rate_limited(caller.identity.partner.as_deref());
            // A loop that retries at once, ignoring Retry-After, waits for
            // its refusal: its connections send a few requests a second, not
            // thousands, and other partners keep the CPU.
            tokio::time::sleep(crate::throttle::REFUSAL_DELAY).await;
            return Err(GatewayError::Throttled { retry_after_secs });
        }

        // 3. Operation: the catalog's, read once into its typed request
        //    (400 naming the field), or 404.
        let (operation, params) = route.ok_or(GatewayError::UnknownRoute)?;
        let request = Request::parse(
            operation.op,
            &Input {
                params: &params,
                query: target.query(),
                body: &body,
            },
        )?;

        // 4. Authorize: every target and a list's items, by the policies, or 403.
        let engine = self.authorizer.policies.load_full();
        let asked = Asked::live(client);
        record.asked(&asked);
        let mut call = Call {
            parts,
            target,
            body,
            client,
            asked,
            request_id,
            trace,
            caller,
            operation,
            request,
            engine,
        };
        let authorizing = Instant::now();
        let decided = self
            .authorize(&call, record)
            .instrument(stage_span!(self, "authorize"))
            .await;
        record.decision_latency = Some(authorizing.elapsed());
        let decided =
            decided.map_err(|denied| Gateway::say_if_session_ended(&call.caller, denied, now))?;

        // A retried create (`X-Client-Token`) gets the first answer again.
        let claim = match self.claim_client_token(&call, record).await? {
            client_tokens::Claim::Replay(response) => return Ok(response),
            client_tokens::Claim::First(claim) => claim,
        };

        // 5. Answer: the gateway's own operations here, the rest by the store.
        let response = match operation.served_by {
            ServedBy::Gateway => {
                // Boxed: a rarer path whose state the forwarding requests
                // should not carry in their futures.
                Box::pin(self.answer_own(&call, &decided, now, record))
                    .instrument(stage_span!(self, "answer"))
                    .await?
            }
            ServedBy::Store => {
                let reveal = respond::requested_reveal(&call.parts.headers, operation)?;
                let forwarding = Instant::now();
                let answer = self
                    .forward(&mut call, &decided, reveal.is_some())
                    .instrument(stage_span!(self, "forward"))
                    .await;
                record.upstream_latency = Some(forwarding.elapsed());
                self.respond(&call, reveal.as_deref(), answer?)
                    .instrument(stage_span!(self, "respond"))
                    .await?
            }
        };

        let response = self.remember_answer(claim, response).await?;

        // 6. Drop from the entity cache what an allowed write changed.
        if operation.after == After::Invalidate && response.status().is_success() {
            for target in &decided.targets {
                self.authorizer.entities.invalidate(target);
            }
        }
        Ok(response)
    }

    /// Forwards the call with the signed assertion of what was decided. A
    /// list the compiler could not turn into a filter takes two exchanges:
    /// the candidate ids first, each decided here, then the page of allowed
    /// ones.
    async fn forward(
        &self,
        call: &mut Call<'_>,
        decided: &Decided,
        reveal: bool,
    ) -> Result<UpstreamResponse, GatewayError> {
        let body_sha256 = crate::signing::sha256_hex64(&call.body);
        let mut claims = Claims {
            identity: Cow::Borrowed(&call.caller.identity),
            operation: Cow::Borrowed(call.operation.op.name()),
            method: Cow::Borrowed(call.parts.method.as_str()),
            target: Cow::Borrowed(call.target.path_and_query()),
            body_sha256: Cow::Borrowed(std::str::from_utf8(&body_sha256).expect("hex is ASCII")),
            resources: Cow::Borrowed(&decided.targets),
            list: decided.list.clone(),
            searchable: decided.searchable.clone(),
            reveal,
            request_id: Cow::Borrowed(call.request_id),
            exp: chrono::Utc::now().timestamp() + ASSERTION_TTL_SECS,
        };
        let answer = self.send(call, &claims).await?;
        let Some(ListScope::Candidates(_)) = &claims.list else {
            return Ok(answer);
        };
        if !answer.status.is_success() {
            return Ok(answer);
        }
        let candidates: Candidates = serde_json::from_slice(&answer.body).map_err(|e| {
            GatewayError::Internal(format!("the store's candidate list is not JSON: {e}"))
        })?;
        claims.list = Some(Box::pin(self.decide_candidates(call, candidates.candidates)).await?);
        self.send(call, &claims).await
    }

    /// Reads the body within the size limit and the body deadline. While
    /// `unverified` (its signature still to check), each byte holds a permit
    /// of the global cap until the returned guard drops; past the cap: 503.
    async fn read_body(
        &self,
        incoming: Incoming,
        unverified: bool,
    ) -> Result<(Bytes, Option<OwnedSemaphorePermit>), GatewayError> {
        let deadline = tokio::time::Instant::now() + self.body_timeout;
        let mut body = Limited::new(incoming, self.max_body_bytes);
        let mut read = BytesMut::new();
        let mut held: Option<OwnedSemaphorePermit> = None;
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => return Err(GatewayError::BodyTimeout),
                Ok(None) => break,
                Ok(Some(Err(e))) if e.is::<http_body_util::LengthLimitError>() => {
                    return Err(GatewayError::BodyTooLarge)
                }
                Ok(Some(Err(e))) => {
                    return Err(GatewayError::BadParameter(format!(
                        "the request body could not be read: {e}"
                    )))
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers: not part of the signed body
            };
            if unverified && !data.is_empty() {
                // Limited keeps a chunk within max_body_bytes, far below u32::MAX.
                let n = u32::try_from(data.len()).map_err(|_| GatewayError::BodyTooLarge)?;
                let permit = self
                    .unauthenticated_bytes
                    .clone()
                    .try_acquire_many_owned(n)
                    .map_err(|_| GatewayError::Overloaded)?;
                match &mut held {
                    Some(h) => h.merge(permit),
                    None => held = Some(permit),
                }
            }
            read.extend_from_slice(&data);
        }
        Ok((read.freeze(), held))
    }

    async fn send(
        &self,
        call: &Call<'_>,
        claims: &Claims<'_>,
    ) -> Result<UpstreamResponse, GatewayError> {
        // Bounded: past the bound the store is slow, and queueing would only
        // make every partner wait; a 503 tells the client to come back.
        let _slot = self
            .upstream_slots
            .try_acquire()
            .map_err(|_| GatewayError::Shed)?;
        self.upstream
            .forward(
                &call.parts,
                &call.target,
                call.body.clone(),
                claims,
                forward::Origin {
                    client: call.client,
                    tls: self.tls,
                    trace: call.trace,
                },
            )
            .await
    }
}

pub(crate) fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Body> {
    json_bytes_response(
        status,
        serde_json::to_vec(body).expect("an answer serializes"),
    )
}

/// The API error as an HTTP response.
pub fn api_error_response(err: ApiError) -> Response<Body> {
    let mut response = json_bytes_response(err.status, err.body());
    if let Some(secs) = err.retry_after_secs {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn json_bytes_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    response
}
