//! The decision record: one structured event per request, through `tracing`
//! (target `decision`), so a security team sees exactly why a call was
//! allowed or denied. Credentials, signatures and tokens never appear in it.
//!
//! Without `--decision-log` the records go to the human log on stderr. With
//! it, [`DecisionLog`] (a `tracing` layer for target `decision` only) writes
//! them as JSON lines to a file or to stdout (`-`), and the human log leaves
//! them out. Allowed decisions may be sampled (`--decision-log-sample-allowed
//! 0.0..=1.0`); denies and requests that reached no decision are always written.
//!
//! One JSON object per line (the schema, also in README.md "Decision log"):
//!
//! | field | type | what |
//! |---|---|---|
//! | `ts` | string | RFC 3339 UTC time the line was written, microseconds |
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

use crate::caller::{AuthFailure, Caller};
use crate::policy::{Asked, Decision};
use crate::recent::Recent;
use serde_json::{Map, Value};
use std::io::Write;
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;

/// The `tracing` target of decision records.
pub const DECISION_TARGET: &str = "decision";

/// Fields emitted as JSON text and written to the log as the JSON they
/// hold, with what an absent one is written as: lists as `[]`, the
/// context as `null`.
const JSON_FIELDS: [(&str, Value); 4] = [
    ("resources", Value::Array(Vec::new())),
    ("determining", Value::Array(Vec::new())),
    ("errors", Value::Array(Vec::new())),
    ("context", Value::Null),
];
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
/// (filtered by `RUST_LOG`, default [`DEFAULT_LOG_FILTER`]) and, when given,
/// the JSON decision log, which then takes the decision records out of the
/// stderr log, and the OTLP span exporter (its own filter: `RUST_LOG` does
/// not change what is exported).
pub fn init_logging(
    decision_log: Option<DecisionLog>,
    format: LogFormat,
    otlp: Option<&crate::otlp::Otlp>,
) {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::{filter_fn, FilterExt};
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
    match decision_log {
        None => tracing_subscriber::registry()
            .with(otlp.map(|o| o.layer()))
            .with(human.with_filter(env()))
            .init(),
        Some(log) => {
            let _ = FLUSHER.set(log.flusher());
            tracing_subscriber::registry()
                .with(otlp.map(|o| o.layer()))
                .with(human.with_filter(FilterExt::and(
                    env(),
                    filter_fn(|m| m.target() != DECISION_TARGET),
                )))
                .with(log.with_filter(filter_fn(|m| m.target() == DECISION_TARGET)))
                .init()
        }
    }
}

/// Fields that may be absent from an event and are written as null.
const OPTIONAL_FIELDS: [&str; 14] = [
    "trace_id",
    "client_ip",
    "refused",
    "route",
    "auth_failure",
    "access_key",
    "principal",
    "acting_as",
    "source_operator",
    "auth",
    "action",
    "policy_version",
    "decision_us",
    "upstream_us",
];

#[derive(Debug, Default)]
pub struct DecisionRecord {
    pub request_id: String,
    /// The W3C trace the request belongs to.
    pub trace_id: Option<String>,
    pub method: String,
    pub path: String,
    /// The route template that matched.
    pub route: Option<&'static str>,
    pub principal: Option<String>,
    pub acting_as: Option<String>,
    pub source_operator: Option<String>,
    pub auth: Option<&'static str>,
    /// Why authentication failed (a 401), as its reason code.
    pub auth_failure: Option<&'static str>,
    /// The access key of a signed request that failed authentication.
    pub access_key: Option<String>,
    pub action: Option<&'static str>,
    pub resources: Vec<String>,
    pub allow: Option<bool>,
    pub determining: Vec<String>,
    pub errors: Vec<String>,
    pub policy_version: Option<String>,
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
    pub fn new(request_id: &str, method: &str, path: &str) -> Self {
        DecisionRecord {
            request_id: request_id.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
            ..Default::default()
        }
    }

    pub fn caller(&mut self, caller: &Caller) {
        self.principal = Some(caller.principal.to_string());
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
        resource: String,
        decision: &Decision,
        version: &str,
    ) {
        self.action = Some(action);
        self.resources.push(resource);
        self.allow = Some(self.allow.unwrap_or(true) && decision.allow);
        for id in &decision.determining {
            if !self.determining.contains(id) {
                self.determining.push(id.clone());
            }
        }
        self.errors.extend(decision.errors.iter().cloned());
        self.policy_version = Some(version.to_owned());
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

    /// Writes the record (the decision log, or stderr) and keeps it in
    /// `recent`, the console's buffer.
    pub fn emit(&self, status: u16, latency: Duration, recent: &Recent) {
        let now = self.now.map(crate::time::format);
        let context = self
            .context
            .as_ref()
            .map(|c| serde_json::to_string(c).expect("a JSON map serializes"));
        recent.push(serde_json::json!({
            "ts": crate::time::format(crate::time::now()),
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "principal": self.principal,
            "acting_as": self.acting_as,
            "source_operator": self.source_operator,
            "action": self.action,
            "resources": self.resources,
            "decision": self.decision_text(),
            "determining": self.determining,
            "errors": self.errors,
            "policy_version": self.policy_version,
            "now": now,
            "now_supplied": self.now_supplied,
            "context": self.context,
            "client_ip": self.client_ip.map(|ip| ip.to_string()),
            "refused": self.refused,
            "replayed": self.replayed,
            "status": status,
        }));
        tracing::info!(
            target: DECISION_TARGET,
            request_id = %self.request_id,
            trace_id = self.trace_id.as_deref(),
            method = %self.method,
            path = %self.path,
            route = self.route,
            principal = self.principal.as_deref(),
            acting_as = self.acting_as.as_deref(),
            source_operator = self.source_operator.as_deref(),
            auth = self.auth,
            auth_failure = self.auth_failure,
            access_key = self.access_key.as_deref(),
            action = self.action,
            resources = %json_list(&self.resources),
            decision = self.decision_text(),
            determining = %json_list(&self.determining),
            errors = %json_list(&self.errors),
            policy_version = self.policy_version.as_deref(),
            now = now.as_deref(),
            now_supplied = self.now_supplied,
            context = context.as_deref(),
            client_ip = self.client_ip.map(tracing::field::display),
            refused = self.refused,
            replayed = self.replayed,
            status,
            latency_us = latency.as_micros() as u64,
            decision_us = self.decision_latency.map(|d| d.as_micros() as u64),
            upstream_us = self.upstream_latency.map(|d| d.as_micros() as u64),
        );
    }
}

/// A list as JSON text: readable in the human log, exact in the JSON log.
fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).expect("strings serialize")
}

/// Records waiting for the writer thread at most. A request whose record
/// finds the queue full waits for room: a record is never dropped.
const QUEUED_RECORDS: usize = 16_384;

/// What the writer thread is sent.
enum ToWriter {
    /// An event's fields and when it happened: made into its line there.
    Record(Map<String, Value>, chrono::DateTime<chrono::Utc>),
    /// Write and flush everything sent before, then answer.
    Flush(std::sync::mpsc::Sender<()>),
    /// Write and flush everything sent before, then reopen the file by its
    /// name (after logrotate moved it away): SIGUSR1.
    Reopen,
}

/// The `tracing` layer writing decision records as JSON lines; events of
/// other targets are ignored. A request only collects its event's fields
/// and queues them; a thread of its own turns them into lines and writes
/// them, whole and in order, batching what has queued up into one write.
pub struct DecisionLog {
    queue: std::sync::mpsc::SyncSender<ToWriter>,
    sample_allowed: f64,
}

/// Waits until the decision log has written every line queued before.
#[derive(Clone)]
pub struct LogFlusher(std::sync::mpsc::SyncSender<ToWriter>);

impl LogFlusher {
    pub fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.0.send(ToWriter::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Has the file reopened by its name once what came before is written.
    pub fn reopen(&self) {
        let _ = self.0.send(ToWriter::Reopen);
    }
}

/// The installed decision log's flusher, for [`flush`] at shutdown and
/// [`reopen`] on SIGUSR1. Process-wide because the decision log is a layer
/// of the process-wide `tracing` subscriber ([`init_logging`], once).
static FLUSHER: std::sync::OnceLock<LogFlusher> = std::sync::OnceLock::new();

/// Writes out every decision record queued so far (before the process
/// ends, for instance); nothing when no decision log is installed.
pub fn flush() {
    if let Some(flusher) = FLUSHER.get() {
        flusher.flush();
    }
}

/// Reopens the decision log file by its name (SIGUSR1, after logrotate
/// renamed it); nothing when no decision log file is installed.
pub fn reopen() {
    if let Some(flusher) = FLUSHER.get() {
        flusher.reopen();
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
            .spawn(move || write_lines(sink, lines))?;
        Ok(DecisionLog {
            queue,
            sample_allowed,
        })
    }

    pub fn flusher(&self) -> LogFlusher {
        LogFlusher(self.queue.clone())
    }

    /// The fields of one decision event, or `None` when sampled out. Only
    /// this runs on the request's thread; [`line`] on the writer's.
    fn fields(&self, event: &Event<'_>) -> Option<Map<String, Value>> {
        let mut visitor = JsonVisitor(Map::new());
        event.record(&mut visitor);
        let fields = visitor.0;
        let allowed = fields.get("decision").and_then(Value::as_str) == Some("allow");
        (!allowed || sampled_in(self.sample_allowed)).then_some(fields)
    }
}

/// One JSON line of the documented schema from an event's fields, stamped
/// `at` (when the event happened).
fn line(mut fields: Map<String, Value>, at: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    for (name, absent) in JSON_FIELDS {
        let value = match fields.remove(name) {
            Some(Value::String(text)) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
            Some(other) => other,
            None => absent,
        };
        fields.insert(name.to_owned(), value);
    }
    for name in OPTIONAL_FIELDS {
        fields.entry(name).or_insert(Value::Null);
    }
    let ts = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    fields.insert("ts".into(), Value::String(ts));
    let mut line = serde_json::to_vec(&Value::Object(fields)).expect("JSON value serializes");
    line.push(b'\n');
    line
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
fn write_lines(mut sink: Sink, lines: std::sync::mpsc::Receiver<ToWriter>) {
    let complain = |e: std::io::Error| {
        // Not through tracing: the log would see its own complaint.
        eprintln!("decision log: cannot write: {e}");
    };
    while let Ok(first) = lines.recv() {
        let mut answer = Vec::new();
        if let Sink::File(file) = &mut sink {
            if let Err(e) = file.follow_renames() {
                complain(e);
            }
        }
        for message in std::iter::once(first).chain(lines.try_iter()) {
            match message {
                ToWriter::Record(fields, at) => {
                    if let Err(e) = sink.out().write_all(&line(fields, at)) {
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

impl<S: Subscriber> tracing_subscriber::Layer<S> for DecisionLog {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != DECISION_TARGET {
            return;
        }
        if let Some(fields) = self.fields(event) {
            let at = chrono::Utc::now();
            // Waits while the queue is full; fails only if the writer thread is gone.
            if self.queue.send(ToWriter::Record(fields, at)).is_err() {
                eprintln!("decision log: the writer has stopped; a record is lost");
            }
        }
    }
}

struct JsonVisitor(Map<String, Value>);

impl Visit for JsonVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_owned()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::Bool(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

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
        let mut r = DecisionRecord::new("req-1", "POST", "/v2/partners/sub-customers/budget");
        r.route = Some("/v2/partners/sub-customers/budget");
        r.principal = Some("Operator::\"op-1\"".into());
        r.auth = Some("signature");
        let decision = Decision {
            allow,
            determining: vec![if allow { "permit-a" } else { "forbid-b" }.into()],
            errors: vec![],
        };
        r.decision("SetBudget", "Customer::\"c,1\"".into(), &decision, "abc123");
        r.decision_latency = Some(Duration::from_micros(42));
        r.context = serde_json::json!({"amount": "100.00", "budget_type": "MONTHLY"})
            .as_object()
            .cloned();
        r
    }

    fn capture(rate: f64, emit: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let layer = DecisionLog::to_writer(buffer.clone(), rate).unwrap();
        let flusher = layer.flusher();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, emit);
        flusher.flush();
        buffer.lines()
    }

    /// logrotate's two ways: the file renamed and the log told (SIGUSR1,
    /// `reopen`), or renamed and nothing said (`follow_renames`, at the next
    /// line). No line is lost: each lands in the old file or the new.
    #[test]
    fn a_rotated_decision_log_is_reopened_by_its_name_and_loses_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let layer = DecisionLog::open(path.to_str().unwrap(), 1.0).unwrap();
        let flusher = layer.flusher();
        let subscriber = tracing_subscriber::registry().with(layer);
        let count =
            |p: &std::path::Path| std::fs::read_to_string(p).map_or(0, |t| t.lines().count());
        tracing::subscriber::with_default(subscriber, || {
            record(false).emit(403, Duration::from_micros(10), &Recent::new(10));
            flusher.flush();
            // Rotated and told.
            std::fs::rename(&path, dir.path().join("decisions.jsonl.1")).unwrap();
            flusher.reopen();
            record(false).emit(403, Duration::from_micros(10), &Recent::new(10));
            flusher.flush();
            assert_eq!(count(&dir.path().join("decisions.jsonl.1")), 1);
            assert_eq!(count(&path), 1, "the new file, by the old name");
            // Rotated and not told: followed at the next line.
            std::fs::rename(&path, dir.path().join("decisions.jsonl.2")).unwrap();
            record(false).emit(403, Duration::from_micros(10), &Recent::new(10));
            flusher.flush();
            assert_eq!(count(&dir.path().join("decisions.jsonl.2")), 1);
            assert_eq!(count(&path), 1, "the next line, in a new file");
        });
    }

    #[test]
    fn a_record_is_one_json_line_of_the_documented_schema() {
        let lines = capture(1.0, || {
            record(false).emit(403, Duration::from_micros(1500), &Recent::new(10));
            tracing::info!(target: "partner_gateway", "not a decision");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["request_id"], "req-1");
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

    #[test]
    fn allowed_decisions_are_sampled_denies_never() {
        let lines = capture(0.0, || {
            for _ in 0..20 {
                record(true).emit(200, Duration::from_micros(1), &Recent::new(10));
                record(false).emit(403, Duration::from_micros(1), &Recent::new(10));
            }
            DecisionRecord::new("req-2", "GET", "/nowhere").emit(
                404,
                Duration::from_micros(1),
                &Recent::new(10),
            );
        });
        assert_eq!(lines.len(), 21);
        assert!(lines.iter().all(|l| l["decision"] != "allow"));
        assert_eq!(lines.last().unwrap()["decision"], "none");
        let all = capture(1.0, || {
            for _ in 0..5 {
                record(true).emit(200, Duration::from_micros(1), &Recent::new(10));
            }
        });
        assert_eq!(all.len(), 5);
        let half = capture(0.5, || {
            for _ in 0..400 {
                record(true).emit(200, Duration::from_micros(1), &Recent::new(10));
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
