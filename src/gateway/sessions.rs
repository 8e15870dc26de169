//! The gateway's own operations, answered after their decisions: assume-role
//! sessions (switch into a customer account, list the live sessions, switch
//! back; R8) and tokens. See src/sessions for the session credentials.

use super::authorize::Decided;
use super::{json_response, Body, Call, Gateway, GatewayError};
use crate::assertion::CallerKind;
use crate::audit::DecisionRecord;
use crate::caller::{AuthMethod, Caller};
use crate::catalog::{CreateSession, IssueToken, Request, ENDED_SHOWN_HOURS};
use crate::catalog::{Op, Success};
use crate::entities::PrincipalRow;
use crate::filter::ListScope;
use crate::ids::{OperatorId, PartnerId};
use crate::model::AuthorizationScope;
use crate::model::PrincipalKind;
use crate::refs::{EntityRef, EntityType};
use crate::sessions::SessionKeys;
use crate::store::filter_sql as sql;
use crate::store::query::{Bind, Where};
use crate::store::sessions::{EndReason, SessionRecord};
use crate::time::{self, Timestamp};
use http::{HeaderValue, Response, StatusCode};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Map;

/// A session as `GET /v3/partner-sessions` lists it and
/// `POST /v3/partner-sessions` answers it (with its credential).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SessionView {
    session_id: String,
    customer_id: String,
    scopes: Vec<AuthorizationScope>,
    created_at: String,
    expires_at: String,
    /// The operator who switched in.
    source_identity: String,
    /// With `include_ended=true`: when and why it ended (`null` while live).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    end: Option<SessionEnd>,
    /// Only when it is created: the temporary credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    credential: Option<SessionCredential>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SessionEnd {
    ended_at: Option<String>,
    end_reason: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SessionCredential {
    access: String,
    secret: String,
    securitytoken: String,
    expires_at: String,
}

/// `GET /v3/partner-sessions`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SessionList {
    count: usize,
    sessions: Vec<SessionView>,
}

/// `POST /v3/auth/tokens`: the token itself is the `X-Subject-Token` header.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct TokenIssued {
    token: TokenView,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct TokenView {
    issued_at: String,
    expires_at: String,
    /// `hw_ak_sk` (asked with a signature) or `token`.
    methods: Vec<&'static str>,
    user: TokenUser,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct TokenUser {
    id: String,
    domain: TokenDomain,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct TokenDomain {
    /// The partner's id for an operator, the customer's for a customer.
    id: Option<String>,
}

/// What the gateway's own operations answer when they succeed (the
/// OpenAPI document); `None` for the domain store's.
pub fn success(op: Op, g: &mut schemars::SchemaGenerator) -> Option<Success> {
    match op {
        Op::CreateSession => Some(Success::json::<SessionView>(201, g)),
        Op::ListSessions => Some(Success::json::<SessionList>(200, g)),
        Op::EndSession => Some(Success::NoContent),
        Op::IssueToken => Some(Success::json::<TokenIssued>(201, g)),
        _ => None,
    }
}

fn session_view(s: &SessionRecord) -> SessionView {
    SessionView {
        session_id: s.id.0.clone(),
        customer_id: s.customer.0.clone(),
        scopes: s.scopes.clone(),
        created_at: time::format(s.created_at),
        expires_at: time::format(s.expires_at),
        source_identity: s.operator.0.clone(),
        end: None,
        credential: None,
    }
}

impl Gateway {
    /// Answers an operation the gateway serves itself, after its decisions.
    pub(super) async fn answer_own(
        &self,
        call: &Call<'_>,
        decided: &Decided,
        now: Timestamp,
        _record: &mut DecisionRecord,
    ) -> Result<Response<Body>, GatewayError> {
        match &call.request {
            Request::CreateSession(r) => self.create_session(&call.caller, r, now).await,
            Request::ListSessions(r) => {
                self.list_sessions(call, decided, r.include_ended, now)
                    .await
            }
            Request::EndSession(r) => self.end_session(&call.caller, &r.session_id, now).await,
            Request::IssueToken(r) => self.issue_token(&call.caller, r, now).await,
            _ => Err(GatewayError::UnknownRoute),
        }
    }

    /// `POST /v3/partner-sessions`, after `AssumeRole` was allowed: issues
    /// the temporary credentials. The session is bound to the customer's live
    /// authorization, when it has one, and never outlives it.
    async fn create_session(
        &self,
        caller: &Caller,
        req: &CreateSession,
        now: Timestamp,
    ) -> Result<Response<Body>, GatewayError> {
        let unavailable = |e: crate::store::StoreError| {
            GatewayError::Unavailable(format!("creating a session: {e}"))
        };
        // A session remembers the operator who switched in; the schema
        // defines AssumeRole only for principals that have one.
        let (Some(operator), Some(partner)) = (
            caller.identity.acting_operator(),
            caller.identity.partner.as_deref(),
        ) else {
            return Err(GatewayError::Internal(
                "AssumeRole allowed to a caller without an operator".into(),
            ));
        };
        let store = self.authorizer.entities.store();
        let customer = store
            .customer(&req.customer_id.as_str().into())
            .await
            .map_err(unavailable)?
            .ok_or_else(GatewayError::denied)?;
        let authorization = store
            .live_authorization(&customer.id, &customer.partner)
            .await
            .map_err(unavailable)?;
        let mut expires_at = now + chrono::Duration::seconds(req.duration_seconds);
        if let Some(a) = &authorization {
            expires_at = expires_at.min(a.expires_at);
        }
        let (id, access_key) = SessionKeys::new_ids();
        let record = SessionRecord {
            id,
            access_key,
            operator: OperatorId::from(operator),
            partner: PartnerId::from(partner),
            customer: customer.id.clone(),
            authorization: authorization.map(|a| a.id),
            scopes: req.scopes.clone(),
            created_at: now,
            expires_at,
            ended_at: None,
            end_reason: None,
        };
        store.insert_session(&record).await.map_err(unavailable)?;
        let keys = self.authn.sessions();
        let mut body = session_view(&record);
        body.credential = Some(SessionCredential {
            access: record.access_key.clone(),
            secret: keys.secret_for(&record.access_key),
            securitytoken: keys.security_token(
                &record.id,
                &record.access_key,
                expires_at.timestamp(),
            ),
            expires_at: time::format(expires_at),
        });
        tracing::info!(target: "session", session = %record.id, operator, customer = %record.customer, "session started");
        Ok(json_response(StatusCode::CREATED, &body))
    }

    /// `GET /v3/partner-sessions`: the live sessions the caller may list,
    /// and with `include_ended` those that ended in the last day.
    async fn list_sessions(
        &self,
        call: &Call<'_>,
        decided: &Decided,
        include_ended: bool,
        now: Timestamp,
    ) -> Result<Response<Body>, GatewayError> {
        let (filter, one_by_one) = match &decided.list {
            Some(ListScope::Filter(f)) => (f, false),
            Some(ListScope::Candidates(f)) => (f, true),
            _ => {
                return Err(GatewayError::Internal(
                    "a session list without a scope".into(),
                ))
            }
        };
        // Live: not ended, not expired (a dead session is nobody's to
        // manage); or, asked for, ended (or expired) within the last day.
        let mut w = Where::new();
        if include_ended {
            let since = now - chrono::Duration::hours(ENDED_SHOWN_HOURS);
            w.cmp(
                "COALESCE(s.ended_at, s.expires_at)",
                ">",
                Bind::Text(time::format(since)),
            );
        } else {
            w.raw("s.ended_at IS NULL");
            w.cmp("s.expires_at", ">", Bind::Text(time::format(now)));
        }
        let cond = sql::condition(filter, EntityType::Session, "s", &mut w)
            .map_err(|e| GatewayError::Internal(format!("session list filter: {e}")))?;
        w.raw(cond);
        let mut sessions = self
            .authorizer
            .entities
            .store()
            .sessions_where(&w)
            .await
            .map_err(|e| GatewayError::Unavailable(format!("listing sessions: {e}")))?;
        if one_by_one {
            let ids: Vec<EntityRef> = sessions
                .iter()
                .map(|s| EntityRef::Session(s.id.0.as_str().into()))
                .collect();
            let decided = self
                .authorizer
                .decide_each(&call.question("ListSessions", Map::new()), ids)
                .await?;
            // In the order listed: each session kept as its decision says.
            let mut allowed = decided.into_iter().map(|(_, d)| d.allow);
            sessions.retain(|_| allowed.next().unwrap_or(false));
        }
        let shown: Vec<SessionView> = sessions
            .iter()
            .map(|s| {
                let mut view = session_view(s);
                if include_ended {
                    let end = s.end(now);
                    view.end = Some(SessionEnd {
                        ended_at: end.as_ref().map(|(at, _)| time::format(*at)),
                        end_reason: end.map(|(_, why)| why),
                    });
                }
                view
            })
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &SessionList {
                count: shown.len(),
                sessions: shown,
            },
        ))
    }

    /// `DELETE /v3/partner-sessions/{id}`, after `EndSession` was allowed:
    /// switch back. Ending an ended session is a no-op (204 again).
    async fn end_session(
        &self,
        caller: &Caller,
        session_id: &str,
        now: Timestamp,
    ) -> Result<Response<Body>, GatewayError> {
        let store = self.authorizer.entities.store();
        let unavailable = |e: crate::store::StoreError| {
            GatewayError::Unavailable(format!("ending a session: {e}"))
        };
        let session = store
            .session(&session_id.into())
            .await
            .map_err(unavailable)?
            .ok_or_else(GatewayError::denied)?;
        let reason = if caller.principal == EntityRef::Session(session.id.0.as_str().into()) {
            EndReason::EndedFromInside
        } else {
            EndReason::SwitchedBack
        };
        if store
            .end_session(&session, reason, now)
            .await
            .map_err(unavailable)?
        {
            tracing::info!(target: "session", session = %session.id, reason = reason.as_str(), "session ended");
        }
        let mut response = Response::new(Body::default());
        *response.status_mut() = StatusCode::NO_CONTENT;
        Ok(response)
    }

    /// A denial of a session that has ended (or expired) says so, and why
    /// (as authentication read it): its holder learns nothing of anyone
    /// else's, and knows to switch in again. The decision stays the
    /// policies' (R12); only its message grows.
    pub(super) fn say_if_session_ended(
        caller: &Caller,
        denied: GatewayError,
        now: Timestamp,
    ) -> GatewayError {
        let why = caller.session.as_ref().and_then(|s| s.ended_why(now));
        match (why, denied) {
            (Some(why), GatewayError::Denied { code, details, .. }) => GatewayError::Denied {
                code,
                msg: format!(
                    "Access denied: this session has ended ({why}); switch in again with POST /v3/partner-sessions."
                ),
                details,
            },
            (_, denied) => denied,
        }
    }

    /// `POST /v3/auth/tokens`, after `IssueToken` was allowed: a token for the
    /// caller, in `X-Subject-Token`. A token names an operator or a customer,
    /// the only principals the schema defines IssueToken for.
    async fn issue_token(
        &self,
        caller: &Caller,
        req: &IssueToken,
        now: Timestamp,
    ) -> Result<Response<Body>, GatewayError> {
        let kind = match caller.identity.kind {
            CallerKind::Operator => PrincipalKind::Operator,
            CallerKind::Customer => PrincipalKind::Customer,
            CallerKind::Session => {
                return Err(GatewayError::Internal(
                    "IssueToken allowed to a session".into(),
                ))
            }
        };
        // The generation of the row the caller was authenticated as.
        let row = self
            .authorizer
            .entities
            .principal(&caller.principal)
            .await
            .map_err(|e| GatewayError::Unavailable(format!("principal lookup: {e}")))?
            .ok_or_else(GatewayError::denied)?;
        let generation = match &*row {
            PrincipalRow::Operator(op) => &op.generation,
            PrincipalRow::Customer(customer) => &customer.generation,
        };
        let (token, expires_at) = self.authn.tokens().issue(
            kind,
            &caller.identity.id,
            generation,
            now,
            req.duration_seconds,
        );
        let body = TokenIssued {
            token: TokenView {
                issued_at: time::format(now),
                expires_at: time::format(expires_at),
                methods: vec![match caller.method {
                    AuthMethod::Signature => "hw_ak_sk",
                    AuthMethod::Token(_) => "token",
                }],
                user: TokenUser {
                    id: caller.identity.id.clone(),
                    domain: TokenDomain {
                        id: caller
                            .identity
                            .partner
                            .clone()
                            .or_else(|| caller.identity.customer.clone()),
                    },
                },
            },
        };
        let mut response = json_response(StatusCode::CREATED, &body);
        response.headers_mut().insert(
            "x-subject-token",
            HeaderValue::from_str(&token).map_err(|e| GatewayError::Internal(e.to_string()))?,
        );
        Ok(response)
    }
}
