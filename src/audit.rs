//! The decision record: one per request, so a security team sees exactly
//! why a call was allowed or denied. Credentials, signatures and tokens
//! never appear in it.
//!
//! With `--decision-log`, the record itself is handed to [`DecisionLog`]'s
//! writer thread, which writes it as a JSON line to a file or to stdout
//! (`-`): the request formats nothing. Without it, the record is an event of
//! the human log on stderr (`tracing`, target `decision`). Allowed decisions
//! may be sampled (`--decision-log-sample-allowed 0.0..=1.0`); denies and
//! requests that reached no decision are always written.
//!
//! One JSON object per line (the schema, also in README.md "Decision log"):
//!
//! | field | type | what |
//! |---|---|---|
//! | `ts` | string | RFC 3339 UTC time the request was answered, microseconds |
//! | `request_id` | string | also sent to the client and the store as `X-Request-Id` |
//! | `trace_id` | string or null | the W3C trace id (the client's `traceparent`, or a new trace) |
//! | `method`, `path` | string | as received (the path without the query) |
//! | `route` | string or null | the route template, null when no route matched |
//! | `principal` | string or null | `Operator::"id"`, `Customer::"id"` or `Session::"id"`; null before authentication |
//! | `acting_as` | string or null | a session's customer |
//! | `source_operator` | string or null | the operator behind a session |
//! | `auth` | string or null | `signature` or `token` |
//! | `auth_failure` | string or null | a 401's reason code (`unknown_key`, `bad_signature`, `clock_skew`, ...: `caller::AuthReason`) |
//! | `access_key` | string or null | a 401's access key id, when the request was signed (never the secret or signature) |
//! | `action` | string or null | the Cedar action |
//! | `resources` | array of strings | every resource checked (`Type::"id"`) |
//! | `decision` | string | `allow`, `deny`, or `none` (no decision reached: 400, 401, 404, ...) |
//! | `determining` | array of strings | the determining policy ids |
//! | `errors` | array of strings | evaluation errors (any one denies) |
//! | `policy_version` | string or null | the policy set version that decided |
//! | `now` | string or null | the `context.now` the decisions were taken at (null: no decision) |
//! | `now_supplied` | bool | the caller named `now` (AuthZEN): decided apart from live traffic's reused decisions |
//! | `context` | object or null | the fields of the action's context the request gave (an amount, a budget or freeze type, the scopes asked for, ...), without `now` and `source_ip`; null when the action has none |
//! | `client_ip` | string or null | the client's address (behind a `--trusted-proxies` load balancer, the one it names) |
//! | `refused` | string or null | why the gateway refused before or instead of a decision: `rate_limit` (429) or `shed` (503, the store's in-flight bound) |
//! | `replayed` | bool | the answer is the first answer of a retried `X-Client-Token`, not a new run |
//! | `status` | number | the HTTP status answered |
//! | `latency_us` | number | the whole request, microseconds |
//! | `decision_us`, `upstream_us` | number or null | the authorization stage, the domain store exchange |
//! | `sampled_at` | number, absent | on an allowed decision of a log that keeps only this share of them (`--decision-log-sample-allowed` below 1): `policy replay` counts the allows not recorded |

use crate::caller::{AuthFailure, Caller};
use crate::json::{entity_text, string, JsonObject};
use crate::policy::{Asked, Decision};
use crate::recent::Recent;
use crate::refs::{EntityRef, EntityType};
use serde_json::{Map, Value};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// The `tracing` target of decision records in the human log.
pub const DECISION_TARGET: &str = "decision";
/// What the human log on stderr shows when `RUST_LOG` is not set; with
/// `opentelemetry*` warnings so that a failing OTLP export is seen.
pub const DEFAULT_LOG_FILTER: &str =
    "partner_gateway=info,decision=info,reveal=info,shadow=info,opentelemetry=warn";

/// The format of the log on stderr (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event for people; coloured only when stderr is a
    /// terminal and `NO_COLOR` is not set.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, the event's
    /// fields (`message`, ...) at the top level, and `span`/`spans` with the
    /// request's `request_id`.
    Json,
}

/// Installs the process's log subscriber: the log on stderr in `format`
/// (filtered by `RUST_LOG`, default [`DEFAULT_LOG_FILTER`]) and the OTLP
/// span exporter (its own filter: `RUST_LOG` does not change what is
/// exported). Decision records reach the human log only when there is no
/// decision log.
pub fn init_logging(format: LogFormat, otlp: Option<&crate::otlp::Otlp>) {
    use std::io::IsTerminal;
    use tracing_subscriber::prelude::*;
    let env = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| DEFAULT_LOG_FILTER.into())
    };
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let human: Box<dyn tracing_subscriber::Layer<_> + Send + Sync> = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colour)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(otlp.map(|o| o.layer()))
        .with(human.with_filter(env()))
        .init()
}

/// A request's id: a random (v4) UUID, or one of a batch's items
/// (`<uuid>.<i>`), kept as its characters, so that the record, the span and
/// the headers take it without a copy on the heap.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    text: [u8; RequestId::CAPACITY],
    len: u8,
}

impl RequestId {
    /// A UUID, a dot and an index of up to 20 digits (any `usize`).
    const CAPACITY: usize = uuid::fmt::Hyphenated::LENGTH + 1 + 20;

    /// From the thread's generator: `Uuid::new_v4` would ask the kernel for
    /// randomness on every request.
    pub fn random() -> RequestId {
        RequestId::of(uuid::Builder::from_random_bytes(rand::random()).into_uuid())
    }

    fn of(uuid: uuid::Uuid) -> RequestId {
        let mut text = [0; RequestId::CAPACITY];
        let len = uuid.hyphenated().encode_lower(&mut text).len();
        RequestId {
            text,
            len: len as u8,
        }
    }

    /// The id of item `i` of a batch that has this one: `<id>.<i>`.
    pub fn item(&self, i: usize) -> RequestId {
        use std::io::Write as _;
        let uuid = uuid::fmt::Hyphenated::LENGTH;
        debug_assert_eq!(usize::from(self.len), uuid, "an item of a batch's own id");
        let mut text = self.text;
        let mut rest = &mut text[uuid..];
        write!(rest, ".{i}").expect("an index fits");
        let len = RequestId::CAPACITY - rest.len();
        RequestId {
            text,
            len: len as u8,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text[..usize::from(self.len)]).expect("the id is ASCII")
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for RequestId {
    /// The nil UUID: a record that was never given an id.
    fn default() -> RequestId {
        RequestId::of(uuid::Uuid::nil())
    }
}

/// What a decision was about: one entity, or the items of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecidedOn {
    /// `Customer::"c-1"`
    One(EntityRef),
    /// `Customer::*`
    Every(EntityType),
}

impl std::fmt::Display for DecidedOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecidedOn::One(entity) => entity.fmt(f),
            DecidedOn::Every(kind) => write!(f, "{kind}::*"),
        }
    }
}

impl serde::Serialize for DecidedOn {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[derive(Debug, Default)]
pub struct DecisionRecord {
    pub request_id: RequestId,
    /// The W3C trace the request belongs to.
    pub trace_id: Option<crate::trace::TraceId>,
    /// A method's clone copies no text (the standard ones).
    pub method: http::Method,
    pub path: String,
    /// The route template that matched.
    pub route: Option<&'static str>,
    /// Written as text (`Operator::"id"`) by whoever reads the record.
    pub principal: Option<EntityRef>,
    pub acting_as: Option<String>,
    pub source_operator: Option<String>,
    pub auth: Option<&'static str>,
    /// Why authentication failed (a 401), as its reason code.
    pub auth_failure: Option<&'static str>,
    /// The access key of a signed request that failed authentication.
    pub access_key: Option<String>,
    pub action: Option<&'static str>,
    /// Inline: most requests decide one.
    pub resources: smallvec::SmallVec<[DecidedOn; 1]>,
    pub allow: Option<bool>,
    pub determining: Vec<String>,
    pub errors: Vec<String>,
    pub policy_version: Option<Arc<str>>,
    /// The `context.now` the decisions were taken at.
    pub now: Option<crate::time::Timestamp>,
    /// Whether the caller named that `now` rather than the gateway's clock.
    pub now_supplied: bool,
    /// The action's own context fields the decisions saw (an amount, ...),
    /// so that a decision that turned on them can be explained from its
    /// record; `None` when there are none.
    pub context: Option<Map<String, Value>>,
    /// How long the authorization stage took (entity slices and Cedar).
    pub decision_latency: Option<Duration>,
    /// How long the exchange with the domain store took.
    pub upstream_latency: Option<Duration>,
    /// The client's address.
    pub client_ip: Option<std::net::IpAddr>,
    /// Why the gateway refused without deciding: `rate_limit` or `shed`.
    pub refused: Option<&'static str>,
    /// The answer was a retried client token's first answer.
    pub replayed: bool,
}

impl DecisionRecord {
    pub fn new(request_id: RequestId, method: http::Method, path: &str) -> Self {
        DecisionRecord {
            request_id,
            method,
            path: path.to_owned(),
            ..Default::default()
        }
    }

    pub fn caller(&mut self, caller: &Caller) {
        self.principal = Some(caller.principal.clone());
        if caller.identity.kind == crate::assertion::CallerKind::Session {
            self.acting_as = caller.identity.customer.clone();
            self.source_operator = caller.identity.source_operator.clone();
        }
        self.auth = Some(caller.method.name());
    }

    /// When the request's decisions are taken.
    pub fn asked(&mut self, asked: &Asked) {
        self.now = Some(asked.now);
        self.now_supplied = asked.now_supplied;
    }

    /// A 401: why, and with which access key.
    pub fn auth_failed(&mut self, failure: &AuthFailure) {
        self.auth_failure = Some(failure.reason.code());
        self.access_key = failure.access_key.clone();
    }

    /// Adds one decision; the request is allowed only if every decision was.
    pub fn decision(
        &mut self,
        action: &'static str,
        resource: DecidedOn,
        decision: Decision,
        version: Arc<str>,
    ) {
        self.action = Some(action);
        self.resources.push(resource);
        self.allow = Some(self.allow.unwrap_or(true) && decision.allow);
        if self.determining.is_empty() {
            self.determining = decision.determining;
        } else {
            for id in decision.determining {
                if !self.determining.contains(&id) {
                    self.determining.push(id);
                }
            }
        }
        self.errors.extend(decision.errors);
        self.policy_version = Some(version);
    }

    /// The request as the request metrics count and time it.
    pub fn answered(&self, status: u16, latency: Duration) -> crate::metrics::Answered {
        crate::metrics::Answered {
            route: self.route,
            action: self.action,
            decision: self.decision_text(),
            status,
            auth_failure: self.auth_failure,
            latency,
            decision_latency: self.decision_latency,
            upstream_latency: self.upstream_latency,
        }
    }

    /// `allow`, `deny`, or `none` when the request reached no decision.
    pub fn decision_text(&self) -> &'static str {
        match self.allow {
            Some(true) => "allow",
            Some(false) => "deny",
            None => "none",
        }
    }

    /// Writes the record (to `log`, else to the human log on stderr) and
    /// keeps it in `recent`, the console's buffer: moved, not copied, and
    /// formatted by whoever reads it.
    pub fn emit(
        self,
        status: u16,
        latency: Duration,
        recent: &Recent<Arc<Kept>>,
        log: Option<&DecisionLog>,
    ) {
        let kept = Arc::new(Kept {
            at: chrono::Utc::now(),
            status,
            latency,
            record: self,
        });
        match log {
            Some(log) => log.write(&kept),
            None => kept.trace(),
        }
        recent.push(kept);
    }
}

/// A decision record once answered: what the decision log writes and the
/// console's recent list keeps, shared by both and shaped alike
/// ([`Kept::write_json`]).
pub struct Kept {
    /// When it was answered.
    at: chrono::DateTime<chrono::Utc>,
    status: u16,
    latency: Duration,
    record: DecisionRecord,
}

impl Kept {
    /// Appends the record's line of the decision log (the schema above),
    /// newline-terminated, of a log that keeps `sample_allowed` of the
    /// allowed decisions, to `line`. Written into memory, not into the
    /// sink: one copy of the finished line costs less than its many small
    /// pieces each through `dyn Write` and a `BufWriter`.
    fn write_line(&self, line: &mut Vec<u8>, sample_allowed: f64) -> serde_json::Result<()> {
        let sampled_at =
            (self.record.allow == Some(true) && sample_allowed < 1.0).then_some(sample_allowed);
        self.write_json(line, sampled_at)?;
        line.push(b'\n');
        Ok(())
    }

    /// The record as one JSON object, its fields in the schema's order.
    /// Written field by field rather than derived: serde escaped every key
    /// and went through the formatter for each instant and entity, most of
    /// the writer's cost per line.
    fn write_json(&self, out: &mut Vec<u8>, sampled_at: Option<f64>) -> serde_json::Result<()> {
        let r = &self.record;
        let micros = |d: Duration| d.as_micros() as u64;
        let mut o = JsonObject::new(out);
        o.value("ts", &crate::time::Rfc3339::micros(self.at))?;
        o.text("request_id", Some(r.request_id.as_str()));
        o.text("trace_id", r.trace_id.as_ref().map(|t| t.as_str()));
        o.text("method", Some(r.method.as_str()));
        o.text("path", Some(&r.path));
        o.text("route", r.route);
        o.entity("principal", r.principal.as_ref());
        o.text("acting_as", r.acting_as.as_deref());
        o.text("source_operator", r.source_operator.as_deref());
        o.text("auth", r.auth);
        o.text("auth_failure", r.auth_failure);
        o.text("access_key", r.access_key.as_deref());
        o.text("action", r.action);
        o.list("resources", &r.resources, |out, resource| match resource {
            DecidedOn::One(entity) => entity_text(out, entity),
            DecidedOn::Every(_) => string(out, &resource.to_string()),
        });
        o.text("decision", Some(r.decision_text()));
        o.list("determining", &r.determining, |out, id| string(out, id));
        o.list("errors", &r.errors, |out, error| string(out, error));
        o.text("policy_version", r.policy_version.as_deref());
        o.value("now", &r.now.map(crate::time::Rfc3339::secs))?;
        o.value("now_supplied", &r.now_supplied)?;
        o.value("context", &r.context)?;
        o.value("client_ip", &r.client_ip)?;
        o.text("refused", r.refused);
        o.value("replayed", &r.replayed)?;
        o.value("status", &self.status)?;
        o.value("latency_us", &micros(self.latency))?;
        o.value("decision_us", &r.decision_latency.map(micros))?;
        o.value("upstream_us", &r.upstream_latency.map(micros))?;
        if let Some(share) = sampled_at {
            o.value("sampled_at", &share)?;
        }
        o.end();
        Ok(())
    }

    /// The record as an event of the human log (no decision log).
    fn trace(&self) {
        let r = &self.record;
        fn list(items: &[impl serde::Serialize]) -> String {
            serde_json::to_string(items).expect("strings serialize")
        }
        let context = r
            .context
            .as_ref()
            .map(|c| serde_json::to_string(c).expect("a JSON map serializes"));
        tracing::info!(
            target: DECISION_TARGET,
            request_id = %r.request_id,
            trace_id = r.trace_id.as_ref().map(|t| t.as_str()),
            method = %r.method,
            path = %r.path,
            route = r.route,
            principal = r.principal.as_ref().map(tracing::field::display),
            acting_as = r.acting_as.as_deref(),
            source_operator = r.source_operator.as_deref(),
            auth = r.auth,
            auth_failure = r.auth_failure,
            access_key = r.access_key.as_deref(),
            action = r.action,
            resources = %list(&r.resources),
            decision = r.decision_text(),
            determining = %list(&r.determining),
            errors = %list(&r.errors),
            policy_version = r.policy_version.as_deref(),
            now = r.now.map(crate::time::format).as_deref(),
            now_supplied = r.now_supplied,
            context = context.as_deref(),
            client_ip = r.client_ip.map(tracing::field::display),
            refused = r.refused,
            replayed = r.replayed,
            status = self.status,
            latency_us = self.latency.as_micros() as u64,
            decision_us = r.decision_latency.map(|d| d.as_micros() as u64),
            upstream_us = r.upstream_latency.map(|d| d.as_micros() as u64),
        );
    }
}

/// The console reads a record as the decision log writes it.
impl serde::Serialize for Kept {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut line = Vec::with_capacity(1024);
        self.write_json(&mut line, None).map_err(S::Error::custom)?;
        let fields: Value = serde_json::from_slice(&line).map_err(S::Error::custom)?;
        fields.serialize(serializer)
    }
}

/// Records waiting for the writer thread at most. A request whose record
/// finds the queue full waits for room: a record is never dropped.
const QUEUED_RECORDS: usize = 16_384;

/// How long the writer lets records gather after the first of a batch
/// wakes it. Under load a batch then takes one wake-up, one look at the
/// file's name and one write for hundreds of records, where it took them
/// for every record (each a futex wake on the request's thread and two
/// context switches). The queue holds 16 384 records, far more than
/// arrive in it; a flush that wakes the writer is answered at once.
const LINGER: Duration = Duration::from_millis(2);

/// What the writer thread is sent.
enum ToWriter {
    /// A record, made into its line there.
    Record(Arc<Kept>),
    /// Write and flush everything sent before, then answer.
    Flush(std::sync::mpsc::Sender<()>),
    /// Write and flush everything sent before, then reopen the file by its
    /// name (after logrotate moved it away): SIGUSR1.
    Reopen,
}

/// The decision log: records queue for a thread of its own, which turns
/// them into lines and writes them, whole and in order, batching what has
/// queued up into one write. A clone writes to the same log.
#[derive(Clone)]
pub struct DecisionLog {
    queue: Arc<std::sync::mpsc::SyncSender<ToWriter>>,
    sample_allowed: f64,
}

/// Handles are equal when they write to the same log.
impl PartialEq for DecisionLog {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.queue, &other.queue)
    }
}

impl std::fmt::Debug for DecisionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionLog")
            .field("sample_allowed", &self.sample_allowed)
            .finish_non_exhaustive()
    }
}

/// Where the writer thread writes.
enum Sink {
    /// stdout, or a test's buffer.
    Writer(std::io::BufWriter<Box<dyn Write + Send>>),
    File(LogFile),
}

/// The decision log file, and which file its name named when it was opened.
struct LogFile {
    path: std::path::PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    identity: Option<(u64, u64)>,
}

impl LogFile {
    fn open(path: std::path::PathBuf) -> std::io::Result<LogFile> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(LogFile {
            identity: identity(&path),
            path,
            out: std::io::BufWriter::new(file),
        })
    }

    /// Opens the name afresh, after flushing the file it had. On failure
    /// the old file keeps being written: a line is never dropped.
    fn reopen(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        *self = LogFile::open(self.path.clone())?;
        Ok(())
    }

    /// Reopens when the name no longer names the open file (renamed or
    /// removed): one `stat` per batch, on the writer's thread.
    fn follow_renames(&mut self) -> std::io::Result<()> {
        if identity(&self.path) != self.identity {
            self.reopen()?;
        }
        Ok(())
    }
}

/// A file's device and inode, `None` when there is none by that name.
#[cfg(unix)]
fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(_: &std::path::Path) -> Option<(u64, u64)> {
    None
}

impl Sink {
    fn out(&mut self) -> &mut dyn Write {
        match self {
            Sink::Writer(w) => w,
            Sink::File(f) => &mut f.out,
        }
    }
}

impl DecisionLog {
    /// `-` is stdout; anything else a file, created if missing and appended
    /// to, and reopened by its name on SIGUSR1 ([`reopen`]) or once it is
    /// renamed or removed (looked at before each batch of lines), so that
    /// logrotate loses no line.
    pub fn open(target: &str, sample_allowed: f64) -> std::io::Result<DecisionLog> {
        if target == "-" {
            return Self::to_writer(std::io::stdout(), sample_allowed);
        }
        let file = LogFile::open(std::path::PathBuf::from(target))?;
        Self::start(Sink::File(file), sample_allowed)
    }

    /// Writes to any writer (tests, embedding programs).
    pub fn to_writer(
        writer: impl Write + Send + 'static,
        sample_allowed: f64,
    ) -> std::io::Result<DecisionLog> {
        Self::start(
            Sink::Writer(std::io::BufWriter::new(Box::new(writer))),
            sample_allowed,
        )
    }

    fn start(sink: Sink, sample_allowed: f64) -> std::io::Result<DecisionLog> {
        let sample_allowed = check_rate(sample_allowed)?;
        let (queue, lines) = std::sync::mpsc::sync_channel(QUEUED_RECORDS);
        std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || write_lines(sink, lines, sample_allowed))?;
        Ok(DecisionLog {
            queue: Arc::new(queue),
            sample_allowed,
        })
    }

    /// Queues a record, unless it is an allowed decision sampled out.
    /// Waits while the queue is full: a record is never dropped.
    fn write(&self, kept: &Arc<Kept>) {
        if kept.record.allow == Some(true) && !sampled_in(self.sample_allowed) {
            return;
        }
        if self.queue.send(ToWriter::Record(kept.clone())).is_err() {
            eprintln!("decision log: the writer has stopped; a record is lost");
        }
    }

    /// Waits until every record queued before is written (before the
    /// process ends, for instance).
    pub fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.queue.send(ToWriter::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Has the file reopened by its name once what came before is written
    /// (SIGUSR1, after logrotate renamed it).
    pub fn reopen(&self) {
        let _ = self.queue.send(ToWriter::Reopen);
    }
}

fn check_rate(rate: f64) -> std::io::Result<f64> {
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("the sampling rate of allowed decisions must be within 0.0..=1.0, not {rate}"),
        ))
    }
}

fn sampled_in(rate: f64) -> bool {
    rate >= 1.0 || (rate > 0.0 && rand::random::<f64>() < rate)
}

/// The writer thread: takes what has queued up, writes it, flushes.
fn write_lines(mut sink: Sink, lines: std::sync::mpsc::Receiver<ToWriter>, sample_allowed: f64) {
    let complain = |e: std::io::Error| {
        // Not through tracing: the log would see its own complaint.
        eprintln!("decision log: cannot write: {e}");
    };
    let mut line = Vec::with_capacity(1024);
    while let Ok(first) = lines.recv() {
        if matches!(first, ToWriter::Record(_)) {
            std::thread::sleep(LINGER);
        }
        let mut answer = Vec::new();
        if let Sink::File(file) = &mut sink {
            if let Err(e) = file.follow_renames() {
                complain(e);
            }
        }
        for message in std::iter::once(first).chain(lines.try_iter()) {
            match message {
                ToWriter::Record(kept) => {
                    line.clear();
                    let written = kept
                        .write_line(&mut line, sample_allowed)
                        .map_err(std::io::Error::from)
                        .and_then(|()| sink.out().write_all(&line));
                    if let Err(e) = written {
                        complain(e);
                    }
                }
                ToWriter::Flush(done) => answer.push(done),
                ToWriter::Reopen => {
                    if let Sink::File(file) = &mut sink {
                        if let Err(e) = file.reopen() {
                            complain(e);
                        }
                    }
                }
            }
        }
        if let Err(e) = sink.out().flush() {
            complain(e);
        }
        for done in answer {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Buffer {
        fn lines(&self) -> Vec<Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|l| serde_json::from_str(l).expect("each line is JSON"))
                .collect()
        }
    }

    fn record(allow: bool) -> DecisionRecord {
        let mut r = DecisionRecord::new(
            RequestId::default(),
            http::Method::POST,
            "/v2/partners/sub-customers/budget",
        );
        r.route = Some("/v2/partners/sub-customers/budget");
        r.principal = Some(EntityRef::Operator("op-1".into()));
        r.auth = Some("signature");
        let decision = Decision {
            allow,
            determining: vec![if allow { "permit-a" } else { "forbid-b" }.into()],
            errors: vec![],
        };
        let resource = DecidedOn::One(EntityRef::Customer("c,1".into()));
        r.decision("SetBudget", resource, decision, "abc123".into());
        r.decision_latency = Some(Duration::from_micros(42));
        r.context = serde_json::json!({"amount": "100.00", "budget_type": "MONTHLY"})
            .as_object()
            .cloned();
        r
    }

    fn capture(rate: f64, emit: impl FnOnce(&DecisionLog)) -> Vec<Value> {
        let buffer = Buffer::default();
        let log = DecisionLog::to_writer(buffer.clone(), rate).unwrap();
        emit(&log);
        log.flush();
        buffer.lines()
    }

    /// logrotate's two ways: the file renamed and the log told (SIGUSR1,
    /// `reopen`), or renamed and nothing said (`follow_renames`, at the next
    /// line). No line is lost: each lands in the old file or the new.
    #[test]
    fn a_rotated_decision_log_is_reopened_by_its_name_and_loses_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let log = &DecisionLog::open(path.to_str().unwrap(), 1.0).unwrap();
        let count =
            |p: &std::path::Path| std::fs::read_to_string(p).map_or(0, |t| t.lines().count());
        {
            record(false).emit(403, Duration::from_micros(10), &Recent::new(10), Some(log));
            log.flush();
            // Rotated and told.
            std::fs::rename(&path, dir.path().join("decisions.jsonl.1")).unwrap();
            log.reopen();
            record(false).emit(403, Duration::from_micros(10), &Recent::new(10), Some(log));
            log.flush();
            assert_eq!(count(&dir.path().join("decisions.jsonl.1")), 1);
            assert_eq!(count(&path), 1, "the new file, by the old name");
            // Rotated and not told: followed at the next line.
            std::fs::rename(&path, dir.path().join("decisions.jsonl.2")).unwrap();
            record(false).emit(403, Duration::from_micros(10), &Recent::new(10), Some(log));
            log.flush();
            assert_eq!(count(&dir.path().join("decisions.jsonl.2")), 1);
            assert_eq!(count(&path), 1, "the next line, in a new file");
        }
    }

    #[test]
    fn a_record_is_one_json_line_of_the_documented_schema() {
        let lines = capture(1.0, |log| {
            record(false).emit(
                403,
                Duration::from_micros(1500),
                &Recent::new(10),
                Some(log),
            );
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["request_id"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(line["route"], "/v2/partners/sub-customers/budget");
        assert_eq!(line["principal"], "Operator::\"op-1\"");
        assert_eq!(line["acting_as"], Value::Null);
        assert_eq!(line["action"], "SetBudget");
        assert_eq!(line["resources"], serde_json::json!(["Customer::\"c,1\""]));
        assert_eq!(line["decision"], "deny");
        assert_eq!(line["determining"], serde_json::json!(["forbid-b"]));
        assert_eq!(line["errors"], serde_json::json!([]));
        assert_eq!(line["policy_version"], "abc123");
        assert_eq!(line["status"], 403);
        assert_eq!(line["latency_us"], 1500);
        assert_eq!(line["decision_us"], 42);
        assert_eq!(line["upstream_us"], Value::Null);
        // The context that decided, as an object.
        assert_eq!(
            line["context"],
            serde_json::json!({"amount": "100.00", "budget_type": "MONTHLY"})
        );
        assert!(chrono::DateTime::parse_from_rfc3339(line["ts"].as_str().unwrap()).is_ok());
    }

    /// The line is written by hand: text that needs escaping (the client's
    /// path, an odd id) is escaped, and the console sees the same object.
    #[test]
    fn a_line_escapes_what_needs_it() {
        let mut r = record(true);
        r.path = "/v2/a\"b\\c\u{1}d/é".into();
        r.principal = Some(EntityRef::Customer("c\"1\\".into()));
        r.resources.push(DecidedOn::Every(EntityType::Customer));
        r.access_key = Some("AK\n1".into());
        r.errors = vec!["a \"quoted\" error".into()];
        r.client_ip = Some("2001:db8::1".parse().unwrap());
        r.now = Some(chrono::DateTime::from_timestamp(1_796_000_000, 0).unwrap());
        let kept = Kept {
            at: chrono::DateTime::from_timestamp(1_796_000_000, 1_000).unwrap(),
            status: 200,
            latency: Duration::from_micros(7),
            record: r,
        };
        let mut line = Vec::new();
        kept.write_line(&mut line, 0.25).unwrap();
        assert_eq!(line.last(), Some(&b'\n'));
        let parsed: Map<String, Value> = serde_json::from_slice(&line).expect("one JSON object");
        // The schema's order is held on real lines in the gateway's tests;
        // the share of a sampled log comes last.
        assert_eq!(
            parsed.keys().next_back().map(String::as_str),
            Some("sampled_at")
        );
        assert_eq!(parsed.len(), 29);
        assert_eq!(parsed["ts"], "2026-11-30T00:53:20.000001Z");
        assert_eq!(parsed["now"], "2026-11-30T00:53:20Z");
        assert_eq!(parsed["path"], "/v2/a\"b\\c\u{1}d/é");
        let principal = EntityRef::Customer("c\"1\\".into()).to_string();
        assert_eq!(parsed["principal"], principal.as_str());
        assert_eq!(
            parsed["resources"],
            serde_json::json!(["Customer::\"c,1\"", "Customer::*"])
        );
        assert_eq!(parsed["access_key"], "AK\n1");
        assert_eq!(parsed["errors"], serde_json::json!(["a \"quoted\" error"]));
        assert_eq!(parsed["client_ip"], "2001:db8::1");
        assert_eq!(parsed["trace_id"], Value::Null);
        assert_eq!(parsed["now_supplied"], false);
        assert_eq!(parsed["sampled_at"], 0.25);
        // The console's view is the same object, without the log's sampling.
        let mut console = serde_json::to_value(&kept).unwrap();
        console
            .as_object_mut()
            .unwrap()
            .insert("sampled_at".into(), 0.25.into());
        assert_eq!(console, Value::Object(parsed));
    }

    #[test]
    fn a_request_id_is_a_uuid_and_a_batch_item_is_it_with_the_index() {
        let id = RequestId::random();
        let uuid = uuid::Uuid::parse_str(id.as_str()).expect("a UUID");
        assert_eq!(uuid.get_version_num(), 4);
        assert_eq!(id.as_str(), uuid.hyphenated().to_string());
        assert_ne!(RequestId::random(), id);
        assert_eq!(id.item(7).as_str(), format!("{id}.7"));
        assert_eq!(id.item(usize::MAX).as_str(), format!("{id}.{}", usize::MAX));
        assert_eq!(
            DecidedOn::Every(EntityType::Customer).to_string(),
            "Customer::*"
        );
    }

    #[test]
    fn allowed_decisions_are_sampled_denies_never() {
        let lines = capture(0.0, |log| {
            for _ in 0..20 {
                record(true).emit(200, Duration::from_micros(1), &Recent::new(10), Some(log));
                record(false).emit(403, Duration::from_micros(1), &Recent::new(10), Some(log));
            }
            DecisionRecord::new(RequestId::random(), http::Method::GET, "/nowhere").emit(
                404,
                Duration::from_micros(1),
                &Recent::new(10),
                Some(log),
            );
        });
        assert_eq!(lines.len(), 21);
        assert!(lines.iter().all(|l| l["decision"] != "allow"));
        assert!(lines.iter().all(|l| l.get("sampled_at").is_none()));
        // A log that keeps every other allow says so on each it keeps.
        let half = capture(0.5, |log| {
            for _ in 0..40 {
                record(true).emit(200, Duration::from_micros(1), &Recent::new(10), Some(log));
            }
        });
        assert!(!half.is_empty() && half.len() < 40, "{}", half.len());
        assert!(half.iter().all(|l| l["sampled_at"] == 0.5));
        assert_eq!(lines.last().unwrap()["decision"], "none");
        let all = capture(1.0, |log| {
            for _ in 0..5 {
                record(true).emit(200, Duration::from_micros(1), &Recent::new(10), Some(log));
            }
        });
        assert_eq!(all.len(), 5);
        let half = capture(0.5, |log| {
            for _ in 0..400 {
                record(true).emit(200, Duration::from_micros(1), &Recent::new(10), Some(log));
            }
        });
        // 400 draws at p = 0.5: outside 120..=280 has probability < 1e-15.
        assert!((120..=280).contains(&half.len()), "{}", half.len());
    }

    #[test]
    fn sampling_rates_outside_zero_to_one_are_refused() {
        assert!(DecisionLog::to_writer(Buffer::default(), 1.5).is_err());
        assert!(DecisionLog::to_writer(Buffer::default(), -0.1).is_err());
        assert!(DecisionLog::to_writer(Buffer::default(), f64::NAN).is_err());
    }
}
