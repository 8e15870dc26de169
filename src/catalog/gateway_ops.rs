//! Typed requests of the gateway's own routes: assume-role sessions (R8)
//! and tokens (docs/domain.md section 4).

use super::fields::{self, choices, required_id, schema, NoFields};
use super::partner::scopes_value;
use super::{ctx_string, ApiRequest, CallerRefs, Input, ParseRequest};
use crate::api_error::ApiError;
use crate::model::AuthorizationScope;
use crate::refs::EntityRef;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Session length in seconds (docs/domain.md section 3), and its default.
pub const SESSION_SECS: std::ops::RangeInclusive<i64> = 900..=43_200;
pub const DEFAULT_SESSION_SECS: i64 = 3_600;

/// Token lifetime in seconds (at most 24 h), and its default.
pub const TOKEN_SECS: std::ops::RangeInclusive<i64> = 900..=86_400;
pub const DEFAULT_TOKEN_SECS: i64 = 86_400;

/// `POST /v3/partner-sessions`: switch into a customer account.
#[derive(Debug)]
pub struct CreateSession {
    pub customer_id: String,
    pub scopes: Vec<AuthorizationScope>,
    pub duration_seconds: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionBody {
    #[schemars(schema_with = "schema::id")]
    customer_id: Option<String>,
    #[schemars(schema_with = "schema::some_of::<AuthorizationScope>")]
    scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "fields::integer")]
    #[schemars(schema_with = "schema::int::<{ *SESSION_SECS.start() }, { *SESSION_SECS.end() }>")]
    duration_seconds: Option<i64>,
}

impl ParseRequest for CreateSession {
    type Query = NoFields;
    type Body = CreateSessionBody;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let b: Self::Body = fields::json(input.body)?;
        Ok(CreateSession {
            customer_id: required_id("customer_id", b.customer_id)?,
            scopes: choices("scopes", b.scopes)?,
            duration_seconds: fields::long_in(
                "duration_seconds",
                b.duration_seconds,
                SESSION_SECS,
                Some(DEFAULT_SESSION_SECS),
            )?,
        })
    }
}

impl ApiRequest for CreateSession {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(vec![EntityRef::Customer(self.customer_id.as_str().into())])
    }

    fn context(&self, _: &CallerRefs) -> Map<String, Value> {
        let mut ctx = Map::new();
        ctx.insert("scopes".into(), scopes_value(&self.scopes));
        ctx.insert("duration_seconds".into(), json!(self.duration_seconds));
        ctx
    }
}

/// `GET /v3/partner-sessions[?include=ended]`: the sessions the caller may
/// list (ListSessions per session) that are still live, and with
/// `include=ended` also those that ended in the last [`ENDED_SHOWN_HOURS`]
/// hours, with when and why.
#[derive(Debug)]
pub struct ListSessions {
    pub include_ended: bool,
}

/// How far back `include=ended` looks.
pub const ENDED_SHOWN_HOURS: i64 = 24;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSessionsQuery {
    #[serde(default)]
    #[schemars(schema_with = "include_schema")]
    include: Option<String>,
}

/// `include`'s one value (the parser below).
fn include_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "enum": ["ended"]})
}

impl ParseRequest for ListSessions {
    type Query = ListSessionsQuery;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let q: Self::Query = fields::query(input.query)?;
        let include_ended = match fields::non_empty(q.include).as_deref() {
            None => false,
            Some("ended") => true,
            Some(_) => return Err(fields::invalid("include", "must be \"ended\" or absent")),
        };
        Ok(ListSessions { include_ended })
    }
}

impl ApiRequest for ListSessions {}

/// `DELETE /v3/partner-sessions/{session_id}`: switch back.
#[derive(Debug)]
pub struct EndSession {
    pub session_id: String,
}

impl ParseRequest for EndSession {
    type Query = NoFields;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        fields::no_query(input.query)?;
        Ok(EndSession {
            session_id: input.param("session_id")?,
        })
    }
}

impl ApiRequest for EndSession {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(vec![EntityRef::Session(self.session_id.as_str().into())])
    }
}

/// `POST /v3/auth/tokens`: a token for the caller itself, in `X-Subject-Token`.
#[derive(Debug)]
pub struct IssueToken {
    pub duration_seconds: i64,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueTokenBody {
    #[serde(default, deserialize_with = "fields::integer")]
    #[schemars(schema_with = "schema::int::<{ *TOKEN_SECS.start() }, { *TOKEN_SECS.end() }>")]
    duration_seconds: Option<i64>,
}

impl ParseRequest for IssueToken {
    type Query = NoFields;
    type Body = IssueTokenBody;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let b: Self::Body = fields::json(input.body)?;
        Ok(IssueToken {
            duration_seconds: fields::long_in(
                "duration_seconds",
                b.duration_seconds,
                TOKEN_SECS,
                Some(DEFAULT_TOKEN_SECS),
            )?,
        })
    }
}

impl ApiRequest for IssueToken {
    fn targets(&self, caller: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(vec![caller.principal.clone()])
    }

    fn context(&self, caller: &CallerRefs) -> Map<String, Value> {
        let mut ctx = Map::new();
        ctx_string(&mut ctx, "auth_method", caller.auth_method);
        ctx.insert("duration_seconds".into(), json!(self.duration_seconds));
        ctx
    }
}
