//! The gateway's own routes for assume-role sessions (R8): switch into a
//! customer account, list the live sessions, switch back. The decision
//! (`AssumeRole`, `ListSessions`, `EndSession`) is Cedar's, made before these
//! handlers run (or, for the list, per session here); see src/sessions for
//! the credentials.

use super::authn::Caller;
use super::authorize::Check;
use super::body::BodyFields;
use super::{json_response, Body, Gateway, GatewayError};
use crate::assertion::CallerKind;
use crate::audit::DecisionRecord;
use crate::ids::{OperatorId, PartnerId};
use crate::model::{AuthorizationScope, AuthorizationStatus};
use crate::policy::{EntityRef, PolicyEngine};
use crate::sessions::{SessionKeys, DEFAULT_DURATION_SECS};
use crate::store::sessions::SessionRecord;
use crate::time::{self, Timestamp};
use http::{Response, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;

fn session_view(s: &SessionRecord) -> Value {
    json!({
        "session_id": s.id,
        "customer_id": s.customer,
        "scopes": s.scopes,
        "created_at": time::format(s.created_at),
        "expires_at": time::format(s.expires_at),
        "source_identity": s.operator,
    })
}

impl Gateway {
    /// `POST /v3/partner-sessions`, after `AssumeRole` was allowed: issues
    /// the temporary credentials, never valid past the authorization.
    pub(super) async fn create_session(
        &self,
        caller: &Caller,
        fields: &BodyFields,
        now: Timestamp,
    ) -> Result<Response<Body>, GatewayError> {
        let unavailable = |e: crate::store::StoreError| {
            GatewayError::Unavailable(format!("creating a session: {e}"))
        };
        let (Some(operator), Some(partner)) = (
            caller.identity.acting_operator(),
            caller.identity.partner.as_deref(),
        ) else {
            return Err(GatewayError::denied());
        };
        let customer_id = fields.string("customer_id")?.unwrap_or_default();
        let store = self.entities.store();
        let customer = store
            .customer(&customer_id.as_str().into())
            .await
            .map_err(unavailable)?
            .ok_or_else(GatewayError::denied)?;
        // The policies allowed only under an approved, unexpired authorization
        // covering the scopes; it is the one the session is bound to.
        let authorization = store
            .live_authorization(&customer.id, &customer.partner)
            .await
            .map_err(unavailable)?
            .filter(|a| a.status == AuthorizationStatus::Approved && now < a.expires_at)
            .ok_or_else(GatewayError::denied)?;
        let scopes: Vec<AuthorizationScope> = fields
            .strings("scopes")?
            .unwrap_or_default()
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| GatewayError::BadParameter(format!("invalid scope {s:?}")))
            })
            .collect::<Result<_, _>>()?;
        let duration = fields
            .integer("duration_seconds")?
            .unwrap_or(DEFAULT_DURATION_SECS);
        let expires_at = (now + chrono::Duration::seconds(duration)).min(authorization.expires_at);
        let (id, access_key) = SessionKeys::new_ids();
        let record = SessionRecord {
            id,
            access_key,
            operator: OperatorId::from(operator),
            partner: PartnerId::from(partner),
            customer: customer.id.clone(),
            authorization: authorization.id.clone(),
            scopes,
            created_at: now,
            expires_at,
            ended_at: None,
        };
        store.insert_session(&record).await.map_err(unavailable)?;
        let keys = self.authn.sessions();
        let mut body = session_view(&record);
        body["credential"] = json!({
            "access": record.access_key,
            "secret": keys.secret_for(&record.access_key),
            "securitytoken": keys.security_token(&record.id, &record.access_key, expires_at.timestamp()),
            "expires_at": time::format(expires_at),
        });
        tracing::info!(target: "session", session = %record.id, operator, customer = %record.customer, "session started");
        Ok(json_response(StatusCode::CREATED, &body))
    }

    /// `GET /v3/partner-sessions`: the caller's live sessions, each one
    /// re-checked with `ListSessions`. A session asking is checked on itself
    /// (and denied: no session manages sessions, R11).
    pub(super) async fn list_sessions(
        &self,
        engine: &PolicyEngine,
        caller: &Caller,
        peer: SocketAddr,
        now: Timestamp,
        record: &mut DecisionRecord,
    ) -> Result<Response<Body>, GatewayError> {
        let store = self.entities.store();
        let unavailable = |e: crate::store::StoreError| {
            GatewayError::Unavailable(format!("listing sessions: {e}"))
        };
        let candidates = match caller.identity.kind {
            CallerKind::Operator => store
                .live_sessions_of(&caller.identity.id.as_str().into(), now)
                .await
                .map_err(unavailable)?,
            CallerKind::Session => store
                .session(&caller.identity.id.as_str().into())
                .await
                .map_err(unavailable)?
                .into_iter()
                .collect(),
            CallerKind::Customer => vec![],
        };
        let mut shown = Vec::new();
        for session in &candidates {
            let check = Check {
                action: "ListSessions",
                resource: EntityRef::Session(session.id.0.clone()),
                context: Default::default(),
            };
            let decision = self.decide(engine, caller, &check, peer).await?;
            record.decision(
                check.action,
                check.resource.to_string(),
                &decision,
                engine.version(),
            );
            if decision.allow {
                shown.push(session_view(session));
            }
        }
        if shown.is_empty() && !candidates.is_empty() {
            return Err(GatewayError::denied());
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({"count": shown.len(), "sessions": shown}),
        ))
    }

    /// `DELETE /v3/partner-sessions/{id}`, after `EndSession` was allowed:
    /// switch back. Ending an ended session is a no-op (204 again).
    pub(super) async fn end_session(
        &self,
        session_id: &str,
        now: Timestamp,
    ) -> Result<Response<Body>, GatewayError> {
        let store = self.entities.store();
        let unavailable = |e: crate::store::StoreError| {
            GatewayError::Unavailable(format!("ending a session: {e}"))
        };
        let session = store
            .session(&session_id.into())
            .await
            .map_err(unavailable)?
            .ok_or_else(GatewayError::denied)?;
        if store
            .end_session(&session, now)
            .await
            .map_err(unavailable)?
        {
            tracing::info!(target: "session", session = %session.id, "session ended");
        }
        let mut response = Response::new(Body::default());
        *response.status_mut() = StatusCode::NO_CONTENT;
        Ok(response)
    }
}
