//! Stage 6, respond: the store's answer goes back with its hop headers
//! stripped, and contact fields stay masked unless the client asked to see
//! them and `RevealContact` (R2) allows, customer by customer; every reveal
//! is audited.

use super::forward::{self, UpstreamResponse};
use super::{Body, Call, Gateway, GatewayError};
use crate::catalog::contact::{CONTACT_FIELDS, REVEAL_CONTACT};
use crate::catalog::Operation;
use crate::refs::EntityRef;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use serde_json::{json, Map, Value};

/// The header a client sends to see masked contact fields, listing which of
/// `name`, `email`, `phone` (comma-separated).
pub const CLIENT_REVEAL_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-reveal-contact");

/// The contact fields the client asked to see, on an operation whose answers
/// carry them.
pub(super) fn requested_reveal(
    headers: &http::HeaderMap,
    operation: &Operation,
) -> Result<Option<Vec<String>>, GatewayError> {
    let Some(value) = headers.get(CLIENT_REVEAL_HEADER) else {
        return Ok(None);
    };
    if !operation.masks_contact {
        return Ok(None);
    }
    let text = value.to_str().map_err(|_| {
        GatewayError::BadParameter("invalid header X-Reveal-Contact: not text".into())
    })?;
    let mut fields: Vec<String> = text
        .split(',')
        .map(|f| f.trim().to_ascii_lowercase())
        .filter(|f| !f.is_empty())
        .collect();
    fields.sort();
    fields.dedup();
    let known = |f: &String| CONTACT_FIELDS.iter().any(|c| c.field == f);
    if fields.is_empty() || !fields.iter().all(known) {
        return Err(GatewayError::BadParameter(
            "invalid header X-Reveal-Contact: a comma-separated list of name, email, phone".into(),
        ));
    }
    Ok(Some(fields))
}

impl Gateway {
    pub(super) async fn respond(
        &self,
        call: &Call<'_>,
        reveal: Option<&[String]>,
        answer: UpstreamResponse,
    ) -> Result<Response<Body>, GatewayError> {
        let UpstreamResponse {
            status,
            mut headers,
            body,
        } = answer;
        forward::strip_response_hop_headers(&mut headers);
        let body = match reveal {
            Some(fields) if status.is_success() => self.reveal(call, fields, &body).await?,
            _ => body,
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }

    /// The store answered the listed customers in clear: each keeps in clear
    /// only the fields `RevealContact` allows for it (audited), the others
    /// are masked again.
    async fn reveal(
        &self,
        call: &Call<'_>,
        fields: &[String],
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
        let mut context = Map::new();
        context.insert("fields".into(), json!(fields));
        let customers: Vec<EntityRef> = items
            .iter()
            .map(|item| {
                EntityRef::Customer(
                    item.get("customer_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                )
            })
            .collect();
        let decided = self
            .authorizer
            .decide_each(&call.question(REVEAL_CONTACT, context), customers)
            .await?;
        for (item, (customer, decision)) in items.iter_mut().zip(&decided) {
            let shown: &[String] = if decision.allow { fields } else { &[] };
            if decision.allow {
                tracing::info!(target: "reveal", principal = %call.caller.principal, customer = %customer.id(), fields = %fields.join(","), "contact fields revealed");
            }
            mask_contact(item, shown);
        }
        Ok(Bytes::from(
            serde_json::to_vec(&doc).map_err(|e| GatewayError::Internal(e.to_string()))?,
        ))
    }
}

/// Masks the contact fields of one listed customer except those in `shown`.
fn mask_contact(item: &mut Value, shown: &[String]) {
    let is_shown = |f: &str| shown.iter().any(|s| s == f);
    for contact in CONTACT_FIELDS {
        if is_shown(contact.field) {
            continue;
        }
        if let Some(Value::String(s)) = item.get_mut(contact.wire) {
            *s = (contact.mask)(s);
        }
    }
}
