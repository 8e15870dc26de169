//! The OpenAPI 3.1 document of the API the gateway enforces, generated from
//! the catalog: every operation's route ([`OPERATIONS`]), the query string
//! and body its parser reads ([`Request::wire_schemas`]), the answer its
//! server serializes (`domain::answers`, the gateway's own sessions and
//! tokens), the errors it may answer and how a caller authenticates. Nothing
//! here lists a route or a field: it reads the structs the code uses, so the
//! document cannot say what the code does not do.
//!
//! `partner-gateway openapi` prints it; `docs/openapi.json` is a copy, held
//! equal to it by a test; `serve` hands it to the gateway, which serves it
//! unauthenticated at `GET /openapi.json`.

use crate::api_error::codes;
use crate::catalog::contact::CONTACT_FIELDS;
use crate::catalog::{Operation, Request, ServedBy, Success, OPERATIONS};
use crate::gateway::normalize::{PATH_PARAMETER_PATTERN, QUERY_VALUE_PATTERN};
use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

/// The document as `docs/openapi.json` holds it: pretty-printed JSON.
pub fn text() -> String {
    serde_json::to_string_pretty(&document()).expect("the document serializes")
}

/// The document, as JSON.
pub fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut g = SchemaGenerator::new(settings);
    let error = g.subschema_for::<crate::api_error::Body>();

    let mut paths = Map::new();
    for op in OPERATIONS {
        // The catalog's templates are OpenAPI's: `/v2/x/{id}`.
        let entry = paths.entry(op.path).or_insert_with(|| json!({}));
        entry[op.method.as_str().to_ascii_lowercase()] = operation(op, &mut g);
    }
    let mut schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    let responses = error_responses(&error, &mut schemas);
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Partner Center API, as partner-gateway enforces it",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                "sdkSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "SDK-HMAC-SHA256 request signing with an access key and its secret, as the cloud's official SDKs sign (docs/wire-format.md): `Authorization: SDK-HMAC-SHA256 Access=AK, SignedHeaders=..., Signature=...` with `X-Sdk-Date` (and `X-Domain-Id`, the partner's id for an operator, the customer's for a customer, when sent) signed."
                },
                "authToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Auth-Token",
                    "description": "A token from `POST /v3/auth/tokens`."
                },
                "securityToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Security-Token",
                    "description": "An assume-role session's security token, sent (and signed) with a signature by the session's temporary access key."
                }
            }
        },
        "security": [
            {"sdkSignature": []},
            {"authToken": []},
            {"sdkSignature": [], "securityToken": []}
        ]
    });
    without_null_defaults(&mut document);
    document
}

/// An optional wire field whose schema its checks give is marked
/// `#[serde(default)]` (that is how schemars knows it may be left out),
/// which schemars writes as a default of null: a field left out is absent,
/// so the document drops these.
fn without_null_defaults(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            map.values_mut().for_each(without_null_defaults);
        }
        Value::Array(items) => items.iter_mut().for_each(without_null_defaults),
        _ => {}
    }
}

const DESCRIPTION: &str = "Every route of the partner API and the gateway's own (sessions, tokens). Each request is authenticated, then decided by the Cedar policies in policies/; a denial is 403 CBC.0151 whether or not what it names exists. A 400 names the field it refuses.";

/// The path parameters of `template`, in order.
fn path_parameters(template: &str) -> Vec<&str> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

fn operation(op: &Operation, g: &mut SchemaGenerator) -> Value {
    let (query, body) = Request::wire_schemas(op.op, g);
    // A path parameter is an id (`Input::param`) that the target's checks
    // accept.
    let id = crate::catalog::fields::schema::id(g);
    let mut parameters: Vec<Value> = path_parameters(op.path)
        .into_iter()
        .map(|name| {
            json!({
                "name": name, "in": "path", "required": true,
                "schema": {
                    "type": "string",
                    "allOf": [id.as_value(), {"pattern": PATH_PARAMETER_PATTERN}],
                },
            })
        })
        .collect();
    let required = required_of(&query);
    for (name, schema) in properties_of(&query) {
        parameters.push(json!({
            "name": name, "in": "query", "required": required.contains(&name),
            "schema": query_schema(schema),
        }));
    }
    if op.op.creates() {
        parameters.push(json!({
            "name": "X-Client-Token", "in": "header", "required": false,
            "description": "Makes a retry safe: the first answer for this token is kept 24 hours and sent again for the same body (marked X-Client-Token-Replayed: true); another body is 409.",
            "schema": {"type": "string", "pattern": crate::gateway::CLIENT_TOKEN_PATTERN},
        }));
    }
    if op.masks_contact {
        let fields: Vec<&str> = CONTACT_FIELDS.iter().map(|c| c.field).collect();
        let one = format!(" *({}) *", fields.join("|"));
        parameters.push(json!({
            "name": "X-Reveal-Contact", "in": "header", "required": false,
            "description": format!("Contact fields to show in clear ({}; comma-separated, in any case), for the customers whose RevealContact the policies allow; masked otherwise.", fields.join(", ")),
            "schema": {"type": "string", "pattern": format!("^{one}(,{one})*$")},
        }));
    }
    let mut out = json!({
        "operationId": op.op.name(),
        "summary": summary(op),
        "parameters": parameters,
        "responses": responses(op, g, has_fields(&body)),
    });
    if has_fields(&body) {
        out["requestBody"] = json!({
            "required": !required_of(&body).is_empty() || body.get("oneOf").is_some(),
            "content": {"application/json": {"schema": null_when_optional(body)}},
        });
    }
    out
}

fn summary(op: &Operation) -> String {
    let who = match op.served_by {
        ServedBy::Store => "served by the domain store",
        ServedBy::Gateway => "served by the gateway itself",
    };
    match (op.check, op.list) {
        (Some(check), Some(list)) => format!(
            "{}: {who}; decided with {check}, each {} listed with {}",
            op.op.name(),
            list.item,
            list.action
        ),
        (Some(check), None) => format!("{}: {who}; decided with {check}", op.op.name()),
        (None, Some(list)) => format!(
            "{}: {who}; each {} listed is decided with {}",
            op.op.name(),
            list.item,
            list.action
        ),
        (None, None) => format!("{}: {who}", op.op.name()),
    }
}

/// A query parameter's schema: the value of an optional field (absence is
/// how a query string leaves it out), and a text only what the target's
/// checks accept.
fn query_schema(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Some(Value::Array(types)) = schema.get("type") {
        let types: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        schema["type"] = match types.as_slice() {
            [one] => one.clone(),
            _ => Value::Array(types),
        };
    }
    if schema["type"] == "string" && schema.get("enum").is_none() {
        // `type` beside `allOf`: client generators read it for the type.
        schema = json!({"type": "string", "allOf": [schema, {"pattern": QUERY_VALUE_PATTERN}]});
    }
    schema
}

/// A body's schema where each optional field may also be `null`, as the
/// parser reads it (an `Option`): a field schema given by its checks
/// describes the value alone.
fn null_when_optional(body: Schema) -> Value {
    let required = required_of(&body);
    let mut body = body.to_value();
    if let Some(Value::Object(properties)) = body.get_mut("properties") {
        let null_type = json!({"type": "null"});
        for (name, schema) in properties.iter_mut() {
            let nullable = match (schema.get("type"), schema.get("anyOf")) {
                (Some(Value::Array(types)), _) => types.iter().any(|t| t == "null"),
                (_, Some(Value::Array(any))) => any.contains(&null_type),
                (Some(t), _) => t == "null",
                _ => false,
            };
            if !required.contains(name) && !nullable {
                *schema = json!({"anyOf": [schema.take(), null_type.clone()]});
            }
        }
    }
    body
}

/// Whether a query or body schema has fields: properties, or alternatives
/// that do.
fn has_fields(schema: &Schema) -> bool {
    !properties_of(schema).is_empty() || schema.get("oneOf").is_some()
}

fn properties_of(schema: &Schema) -> Vec<(String, &Value)> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.iter().map(|(k, v)| (k.clone(), v)).collect())
        .unwrap_or_default()
}

fn required_of(schema: &Schema) -> Vec<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The answers of `op`: its success, then each error it may answer.
fn responses(op: &Operation, g: &mut SchemaGenerator, has_body: bool) -> Value {
    let success = crate::domain::answers::success(op.op, g)
        .or_else(|| crate::gateway::own_success(op.op, g))
        .expect("every operation names its success");
    let (status, description, content) = match success {
        Success::Json(status, schema) => (
            status,
            "Done.",
            Some(json!({"application/json": {"schema": schema.to_value()}})),
        ),
        Success::Csv => (
            200,
            "The file.",
            Some(json!({"text/csv": {"schema": {"type": "string"}}})),
        ),
        Success::NoContent => (204, "Done.", None),
    };
    let mut answer = json!({
        "description": description,
        "headers": {"X-Request-Id": request_id_header()},
    });
    if let Some(content) = content {
        answer["content"] = content;
    }
    let mut out = Map::new();
    out.insert(status.to_string(), answer);
    let mut errors = vec![400, 401, 403];
    if op.may_conflict() {
        errors.push(409);
    }
    if has_body {
        errors.extend([408, 413]);
    }
    errors.extend([429, 503]);
    for status in errors {
        let (name, ..) = ERRORS
            .iter()
            .find(|(_, s, ..)| *s == status)
            .expect("every error answer is in ERRORS");
        out.insert(
            status.to_string(),
            json!({"$ref": format!("#/components/responses/{name}")}),
        );
    }
    Value::Object(out)
}

/// The error answers: name, status, description and codes.
const ERRORS: &[(&str, u16, &str, &[&str])] = &[
    (
        "BadRequest",
        400,
        "A field is missing, malformed or not acceptable; the message names it.",
        &[codes::PARAMETER_ERROR, codes::INVALID_PARAMETER],
    ),
    (
        "Unauthenticated",
        401,
        "Authentication failed (whatever the reason, the same answer; the decision record says why).",
        &[codes::UNAUTHENTICATED],
    ),
    (
        "Denied",
        403,
        "Denied by the policies, or what the request names does not exist (the same answer): CBC.0151, or the code the deciding forbid names (@error_code in policies/*.cedar).",
        &[],
    ),
    (
        "Conflict",
        409,
        "The state of what the request names refuses the change, or an X-Client-Token was used with another body.",
        &[codes::CONFLICT],
    ),
    (
        "TimedOut",
        408,
        "The body did not arrive within the body deadline.",
        &[codes::BODY_TIMEOUT],
    ),
    ("TooLarge", 413, "The body is too large.", &[codes::BODY_TOO_LARGE]),
    (
        "RateLimited",
        429,
        "Over the caller's rate limit; Retry-After says when to try again.",
        &[codes::RATE_LIMITED],
    ),
    (
        "Unavailable",
        503,
        "Not ready to serve, or shedding load (then with Retry-After).",
        &[codes::UNAVAILABLE],
    ),
];

/// `components.responses`: each error answer, once, with its body a named
/// schema (`{name}Error`: the error with the codes it carries), so that a
/// generated client has one model for each.
fn error_responses(error: &Schema, schemas: &mut Map<String, Value>) -> Value {
    ERRORS
        .iter()
        .map(|(name, _, description, codes)| {
            // A code the policies may name is any text.
            let code = match codes {
                [] => json!({"type": "string"}),
                codes => json!({"enum": codes}),
            };
            schemas.insert(
                format!("{name}Error"),
                json!({
                    "type": "object",
                    "allOf": [error.as_value(), {"properties": {"error_code": code}}],
                }),
            );
            let body = json!({"$ref": format!("#/components/schemas/{name}Error")});
            (
                name.to_string(),
                json!({
                    "description": description,
                    "headers": {"X-Request-Id": request_id_header()},
                    "content": {"application/json": {"schema": body}},
                }),
            )
        })
        .collect::<Map<String, Value>>()
        .into()
}

fn request_id_header() -> Value {
    json!({
        "description": "The request's id, as the decision record and the log name it.",
        "schema": {"type": "string"},
    })
}
