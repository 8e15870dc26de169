//! Living with the policies while traffic flows: hot reload under load, an
//! invalid edit refused and reported, shadow policies, explain over HTTP,
//! metrics, graceful shutdown (in process, and SIGTERM/SIGHUP to the real
//! binary) and the JSON decision log.

use super::{poll, TestGateway};
use crate::kit::{http_client, send, TestResponse};
use crate::test_on_backends;
use partner_gateway::client::{self, Credentials, Trust};
use partner_gateway::store::Backend;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// A forbid the tests switch on: nobody views customers, so no customer
/// list can hold any (the list is denied as a whole).
const PAUSE_LISTS: &str = r#"// Trial: customer lists are paused.
@id("trial-pause-lists")
@error_code("CBC.0151")
@error_msg("Lists are paused.")
forbid (
  principal,
  action == PartnerCenter::Action::"ViewCustomer",
  resource
);
"#;
const PAUSED: &str = "Lists are paused.";

/// The list call every demo distributor admin may make (forwarded, then filtered).
const LIST_PATH: &str = "/v2/partners/sub-customers/query";
const BUDGET_PATH: &str = "/v2/partners/sub-customers/budget?customer_id=cust-acme";

// ---------------------------------------------------------------- helpers

/// A private, editable copy of `policies/*.cedar`, the invariants
/// (`policies/invariants/*.cedar`) and `schema/*.cedarschema`.
pub(crate) struct PolicyCopy {
    dir: tempfile::TempDir,
}

impl PolicyCopy {
    pub(crate) fn new() -> PolicyCopy {
        let dir = tempfile::tempdir().unwrap();
        for (from, to, ext) in [
            ("policies", "policies", "cedar"),
            ("policies/invariants", "policies/invariants", "cedar"),
            ("schema", "schema", "cedarschema"),
        ] {
            std::fs::create_dir(dir.path().join(to)).unwrap();
            for entry in std::fs::read_dir(Path::new(REPO).join(from)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().and_then(|e| e.to_str()) == Some(ext) {
                    std::fs::copy(&path, dir.path().join(to).join(path.file_name().unwrap()))
                        .unwrap();
                }
            }
        }
        PolicyCopy { dir }
    }

    pub(crate) fn policies(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    pub(super) fn schema(&self) -> PathBuf {
        self.dir.path().join("schema")
    }

    /// Writes a policy file as editors do: aside, then renamed into place.
    pub(crate) fn write(&self, name: &str, text: &str) {
        let aside = self.policies().join(format!(".{name}.tmp"));
        std::fs::write(&aside, text).unwrap();
        std::fs::rename(&aside, self.policies().join(name)).unwrap();
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.policies().join(name)).unwrap();
    }
}

pub(super) async fn start_on(
    copy: &PolicyCopy,
    tweak: impl FnOnce(&mut partner_gateway::config::ServeConfig),
) -> TestGateway {
    let (policies, schema) = (copy.policies(), copy.schema());
    TestGateway::start_with(Backend::Sqlite, move |cfg| {
        cfg.policies = policies;
        cfg.schema = schema;
        tweak(cfg);
    })
    .await
}

pub(super) async fn admin(
    gw: &TestGateway,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> TestResponse {
    let body = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    let headers = [("content-type", "application/json".to_owned())];
    send(
        &http_client(),
        method,
        &format!("http://{}{path}", gw.running.admin_addr),
        &headers,
        body,
    )
    .await
}

pub(super) async fn readyz(gw: &TestGateway) -> Value {
    admin(gw, "GET", "/readyz", None).await.json()
}

async fn list(gw: &TestGateway) -> client::Answer {
    gw.call(
        "op-dist-admin",
        "POST",
        LIST_PATH,
        Some(json!({"limit": 1})),
    )
    .await
}

/// Every `shadow` event and error log line of this test process (its
/// decision lines: `kit::decisions`). The subscriber is process-wide, so
/// readers filter on what is theirs.
pub(crate) struct Captured {
    shadow: Arc<Mutex<Vec<Value>>>,
    /// The gateway's error-mapping log lines, as JSON with their spans.
    errors: crate::kit::SharedBuffer,
}

impl Captured {
    fn shadow_events(&self) -> Vec<Value> {
        self.shadow.lock().unwrap().clone()
    }

    pub(crate) fn decision_lines(&self) -> Vec<Value> {
        crate::kit::decisions().lines()
    }

    /// Lines logged by `gateway::error` (authentication failures, causes).
    pub(crate) fn error_lines(&self) -> Vec<Value> {
        self.errors.json_lines()
    }
}

/// Collects the fields of `shadow` events.
struct ShadowCapture(Arc<Mutex<Vec<Value>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ShadowCapture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Fields(serde_json::Map<String, Value>);
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0
                    .insert(field.name().into(), Value::String(value.into()));
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0
                    .insert(field.name().into(), Value::String(format!("{value:?}")));
            }
        }
        let mut fields = Fields(serde_json::Map::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(Value::Object(fields.0));
    }
}

pub(crate) fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        use tracing_subscriber::filter::filter_fn;
        use tracing_subscriber::prelude::*;
        let captured = Captured {
            shadow: Arc::default(),
            errors: Default::default(),
        };
        let errors = captured.errors.clone();
        let error_log = tracing_subscriber::fmt::layer()
            .json()
            .with_span_list(true)
            .with_writer(move || errors.clone());
        let subscriber = tracing_subscriber::registry()
            .with(
                ShadowCapture(captured.shadow.clone())
                    .with_filter(filter_fn(|m| m.target() == "shadow")),
            )
            .with(error_log.with_filter(filter_fn(|m| {
                // The request span too: its id is what the lines must carry.
                (m.is_span() && m.name() == "request")
                    || m.target() == "partner_gateway::gateway::error"
            })));
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in the test binary");
        captured
    })
}

// ------------------------------------------------------- Prometheus text

#[derive(Debug, Clone)]
pub(super) struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn valid_name(name: &str, colon: bool) -> bool {
    let mut chars = name.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    matches!(chars.next(), Some(c) if ok_first(c))
        && chars.all(|c| ok_first(c) || c.is_ascii_digit())
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        t => t.parse::<f64>().map_err(|_| format!("bad value {t:?}")),
    }
}

/// A strict reader of the Prometheus text exposition format (0.0.4): every
/// sample belongs to a family declared by `# TYPE` before it, names and
/// labels are well formed, values are numbers, and each histogram's buckets
/// are cumulative with `+Inf` equal to `_count`.
fn parse_prometheus(text: &str) -> Result<(HashMap<String, String>, Vec<Sample>), String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", i + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            match parts.next() {
                Some("TYPE") => {
                    let name = parts
                        .next()
                        .ok_or_else(|| err("TYPE without a name".into()))?;
                    let kind = parts
                        .next()
                        .ok_or_else(|| err("TYPE without a type".into()))?;
                    if !valid_name(name, true) {
                        return Err(err("bad metric name".into()));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(err(format!("unknown type {kind}")));
                    }
                    if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(err("a second TYPE for the same family".into()));
                    }
                }
                Some("HELP") => {
                    let name = parts
                        .next()
                        .ok_or_else(|| err("HELP without a name".into()))?;
                    if !valid_name(name, true) {
                        return Err(err("bad metric name".into()));
                    }
                }
                _ => {}
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !valid_name(name, true) {
            return Err(err("bad metric name".into()));
        }
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            let mut end = None;
            loop {
                match chars.peek() {
                    Some((j, '}')) => {
                        end = Some(*j);
                        break;
                    }
                    None => break,
                    _ => {}
                }
                let mut label = String::new();
                for (_, c) in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    label.push(c);
                }
                if !valid_name(&label, false) {
                    return Err(err(format!("bad label name {label:?}")));
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(err("label value not quoted".into()));
                }
                let mut value = String::new();
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => return Err(err(format!("bad escape {other:?}"))),
                        },
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                if !closed {
                    return Err(err("unterminated label value".into()));
                }
                if labels.insert(label, value).is_some() {
                    return Err(err("a label given twice".into()));
                }
                match chars.peek().map(|(_, c)| *c) {
                    Some(',') => {
                        chars.next();
                    }
                    Some('}') => {}
                    _ => return Err(err("expected , or } after a label".into())),
                }
            }
            let end = end.ok_or_else(|| err("labels not closed".into()))?;
            rest = &after[end + 1..];
        }
        let mut fields = rest.split_whitespace();
        let value =
            parse_value(fields.next().ok_or_else(|| err("no value".into()))?).map_err(err)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| err("bad timestamp".into()))?;
        }
        if fields.next().is_some() || !rest.starts_with(' ') {
            return Err(err("unexpected text after the value".into()));
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .find(|f| {
                matches!(
                    types.get(*f).map(String::as_str),
                    Some("histogram" | "summary")
                )
            })
            .unwrap_or(name);
        let kind = types
            .get(family)
            .ok_or_else(|| err("sample before its # TYPE".into()))?;
        if kind == "histogram" && name.ends_with("_bucket") && !labels.contains_key("le") {
            return Err(err("bucket without le".into()));
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    // Histograms: cumulative buckets, +Inf == _count.
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for s in samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let mut key = s.labels.clone();
            let le = parse_value(&key.remove("le").unwrap())?;
            series.entry(key).or_default().push((le, s.value));
        }
        for (key, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                return Err(format!("{family}{key:?}: buckets are not cumulative"));
            }
            let inf = buckets
                .last()
                .filter(|b| b.0.is_infinite())
                .ok_or(format!("{family}{key:?}: no +Inf bucket"))?
                .1;
            let count = samples
                .iter()
                .find(|s| s.name == format!("{family}_count") && s.labels == key)
                .ok_or(format!("{family}{key:?}: no _count"))?
                .value;
            if inf != count {
                return Err(format!(
                    "{family}{key:?}: +Inf bucket {inf} != count {count}"
                ));
            }
        }
    }
    Ok((types, samples))
}

/// The sum of the samples named `name` whose labels include `labels`.
pub(super) fn total(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

pub(super) async fn scrape(gw: &TestGateway) -> (HashMap<String, String>, Vec<Sample>) {
    let answer = admin(gw, "GET", "/metrics", None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    parse_prometheus(&text)
        .unwrap_or_else(|e| panic!("/metrics is not Prometheus text: {e}\n{text}"))
}

#[test]
fn the_prometheus_reader_refuses_malformed_text() {
    let good = "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"b\\\"c\",d=\"\"} 1\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n";
    let (types, samples) = parse_prometheus(good).unwrap();
    assert_eq!(types["h"], "histogram");
    assert_eq!(samples[0].labels["a"], "b\"c");
    for bad in [
        "x_total 1\n",                             // no TYPE
        "# TYPE x counter\nx{a=\"b} 1\n",          // unterminated
        "# TYPE x counter\nx{a=b} 1\n",            // unquoted
        "# TYPE x counter\nx one\n",               // not a number
        "# TYPE x counter\n# TYPE x gauge\nx 1\n", // TYPE twice
        "# TYPE 1x counter\n",                     // bad name
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", // not cumulative
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 1\n", // +Inf != count
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted {bad:?}");
    }
}

// ------------------------------------------------------------ hot reload

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_edit_takes_effect_under_load_without_a_failed_request() {
    let captured = captured();
    let copy = PolicyCopy::new();
    let gw = start_on(&copy, |_| {}).await;
    let before = readyz(&gw).await["policies"]["version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(list(&gw).await.status, 200);

    let (client, endpoint, creds) = (
        gw.client.clone(),
        gw.endpoint.clone(),
        gw.credentials("op-dist-admin"),
    );
    let switched = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for task in 0..4 {
        let (client, endpoint, creds, switched, done) = (
            client.clone(),
            endpoint.clone(),
            creds.clone(),
            switched.clone(),
            done.clone(),
        );
        load.push(tokio::spawn(async move {
            let (mut old, mut new, mut after_switch) = (0usize, 0usize, 0usize);
            // At least 50 requests each, and until 5 started after the switch was seen.
            for i in 0..2_000 {
                let started_after_switch = switched.load(Ordering::SeqCst);
                let answer = client::call(&client, &endpoint, Some(&creds), "POST", LIST_PATH, br#"{"limit": 1}"#, &[])
                    .await
                    .unwrap_or_else(|e| panic!("task {task} request {i} failed: {e}"));
                let paused = answer.status == 403 && answer.json()["error_msg"] == PAUSED;
                match answer.status.as_u16() {
                    200 => old += 1,
                    403 if paused => new += 1,
                    _ => panic!("task {task} request {i}: {} {}", answer.status, String::from_utf8_lossy(&answer.body)),
                }
                if started_after_switch {
                    assert!(paused, "task {task} request {i} started after the new set served, yet was decided by the old one");
                    after_switch += 1;
                }
                done.fetch_add(1, Ordering::SeqCst);
                if i >= 49 && after_switch >= 5 {
                    break;
                }
            }
            (old, new)
        }));
    }

    // Edit while the load runs.
    poll("the load to start", Duration::from_secs(30), || async {
        (done.load(Ordering::SeqCst) >= 20).then_some(())
    })
    .await;
    copy.write("90-trial.cedar", PAUSE_LISTS);
    let after = poll("the edit to be served", Duration::from_secs(5), || async {
        let version = readyz(&gw).await["policies"]["version"]
            .as_str()
            .unwrap()
            .to_owned();
        (version != before).then_some(version)
    })
    .await;
    switched.store(true, Ordering::SeqCst);

    let (mut old, mut new) = (0, 0);
    for task in load {
        let (o, n) = task.await.expect("no request failed");
        old += o;
        new += n;
    }
    assert!(
        old > 0 && new > 0,
        "both sets decided: {old} old, {new} new"
    );
    let answer = list(&gw).await;
    assert_eq!(
        (answer.status.as_u16(), answer.error_code()),
        (403, "CBC.0151".to_owned())
    );
    let ready = readyz(&gw).await;
    assert_eq!(ready["policies"]["last_reload"]["result"], "applied");
    assert_eq!(ready["policies"]["last_reload_error"], Value::Null);
    assert_eq!(ready["status"], "ready");

    // Every decision record carries the version that took it.
    let lines = captured.decision_lines();
    let denied_by_new: Vec<&Value> = lines
        .iter()
        .filter(|l| l["policy_version"] == after.as_str())
        .collect();
    assert!(
        denied_by_new.len() > new,
        "{} records of the new version, {new} answers",
        denied_by_new.len()
    );
    for line in denied_by_new {
        assert_eq!(line["decision"], "deny");
        assert_eq!(line["determining"], json!(["trial-pause-lists"]));
        assert_eq!(line["route"], LIST_PATH);
        assert_eq!(line["status"], 403);
    }
    gw.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_keeps_the_last_good_set_and_is_reported() {
    let copy = PolicyCopy::new();
    let gw = start_on(&copy, |_| {}).await;
    let ready = readyz(&gw).await;
    let (version, count) = (
        ready["policies"]["version"].clone(),
        ready["policies"]["count"].clone(),
    );
    let (_, m0) = scrape(&gw).await;
    let failed = |m: &[Sample]| {
        total(
            m,
            "pgw_policy_reloads_total",
            &[("set", "live"), ("result", "failed")],
        )
    };

    // Line 3 reads an attribute the schema does not have: strict validation refuses it.
    copy.write(
        "95-broken.cedar",
        "// A rule with a typo.\n@id(\"broken-rule\")\npermit (principal, action, resource) when { principal.no_such_attribute };\n",
    );
    let error = poll(
        "the refusal to be reported",
        Duration::from_secs(5),
        || async {
            let ready = readyz(&gw).await;
            let error = ready["policies"]["last_reload_error"].clone();
            (!error.is_null()).then_some((ready, error))
        },
    )
    .await;
    let (ready, error) = error;
    assert_eq!(ready["status"], "ready", "the last good set keeps serving");
    assert_eq!(ready["policies"]["version"], version);
    assert_eq!(ready["policies"]["count"], count);
    assert_eq!(ready["policies"]["last_reload"]["result"], "failed");
    let issues: Vec<&str> = error["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    let file = copy
        .policies()
        .join("95-broken.cedar")
        .display()
        .to_string();
    assert!(
        issues.iter().any(|i| i.starts_with(&format!("{file}:"))
            && i[file.len() + 1..]
                .split(':')
                .next()
                .unwrap()
                .parse::<usize>()
                .is_ok()),
        "an issue names the file and line: {issues:?}"
    );
    assert!(
        issues.iter().any(|i| i.contains("no_such_attribute")),
        "{issues:?}"
    );

    // Old decisions stand.
    assert_eq!(list(&gw).await.status, 200);
    let denied = gw.call("op-west-admin", "GET", BUDGET_PATH, None).await;
    assert_eq!(denied.status, 403);
    let (_, m1) = scrape(&gw).await;
    assert!(
        failed(&m1) >= failed(&m0) + 1.0,
        "pgw_policy_reloads_total{{result=failed}} moved"
    );

    // Fixed on disk: the error clears, the same version serves.
    copy.remove("95-broken.cedar");
    poll("the error to clear", Duration::from_secs(5), || async {
        let ready = readyz(&gw).await;
        ready["policies"]["last_reload_error"]
            .is_null()
            .then_some(())
    })
    .await;
    assert_eq!(readyz(&gw).await["policies"]["version"], version);
    gw.running.stop().await;
}

// ------------------------------------------------------- shadow policies

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_policies_log_and_count_disagreements_and_decide_nothing() {
    let captured = captured();
    let live = PolicyCopy::new();
    let shadow = PolicyCopy::new();
    shadow.write("90-trial.cedar", PAUSE_LISTS);
    let shadow_dir = shadow.policies();
    let gw = start_on(&live, move |cfg| {
        cfg.operations.shadow_policies = Some(shadow_dir)
    })
    .await;
    let ready = readyz(&gw).await;
    let live_version = ready["policies"]["version"].as_str().unwrap().to_owned();
    let shadow_version = ready["shadow_policies"]["version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(live_version, shadow_version);

    let disagreements = |m: &[Sample]| {
        total(
            m,
            "pgw_shadow_disagreements_total",
            &[
                ("action", "ViewCustomer"),
                ("live", "allow"),
                ("shadow", "deny"),
            ],
        )
    };
    let compared =
        |m: &[Sample], action: &str| total(m, "pgw_shadow_decisions_total", &[("action", action)]);
    let (_, m0) = scrape(&gw).await;
    for _ in 0..3 {
        let answer = list(&gw).await;
        assert_eq!(
            answer.status,
            200,
            "the live set decides: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    // Both sets deny this one: compared, no disagreement.
    assert_eq!(
        gw.call("op-west-admin", "GET", BUDGET_PATH, None)
            .await
            .status,
        403
    );
    let (_, m1) = scrape(&gw).await;
    // Only this test runs shadow policies in the test binary, so the counts are exact.
    assert_eq!(disagreements(&m1) - disagreements(&m0), 3.0);
    assert_eq!(
        compared(&m1, "ViewCustomer") - compared(&m0, "ViewCustomer"),
        3.0
    );
    assert_eq!(
        compared(&m1, "ViewBudget") - compared(&m0, "ViewBudget"),
        1.0
    );
    assert_eq!(
        total(
            &m1,
            "pgw_shadow_disagreements_total",
            &[("action", "ViewBudget")]
        ),
        total(
            &m0,
            "pgw_shadow_disagreements_total",
            &[("action", "ViewBudget")]
        )
    );

    let events: Vec<Value> = captured
        .shadow_events()
        .into_iter()
        .filter(|e| e["shadow_version"] == shadow_version.as_str())
        .collect();
    assert_eq!(events.len(), 3, "{events:?}");
    for e in &events {
        assert_eq!(e["principal"], "Operator::\"op-dist-admin\"");
        assert_eq!(e["action"], "ViewCustomer");
        assert_eq!(e["resource"], "Customer::*");
        assert_eq!(
            (e["live"].as_str(), e["shadow"].as_str()),
            (Some("allow"), Some("deny"))
        );
        assert_eq!(e["live_determining"], "");
        assert_eq!(e["shadow_determining"], "trial-pause-lists");
        assert_eq!(e["live_version"], live_version.as_str());
    }

    // Explain shows both sides, with file and line.
    let explained = admin(
        &gw,
        "POST",
        "/v1/explain",
        Some(json!({"principal": "Operator::\"op-dist-admin\"", "action": "ViewCustomer", "resource": "Customer::\"cust-nova\""})),
    )
    .await;
    assert_eq!(explained.status, 200);
    let explained = explained.json();
    assert_eq!(explained["decision"], "allow");
    assert_eq!(explained["shadow"]["decision"], "deny");
    let determining = &explained["shadow"]["determining"][0];
    assert_eq!(determining["id"], "trial-pause-lists");
    assert_eq!(
        determining["file"],
        shadow
            .policies()
            .join("90-trial.cedar")
            .display()
            .to_string()
    );
    assert_eq!(determining["line"], 2);
    assert_eq!(explained["shadow"]["denial"]["error_msg"], PAUSED);
    // An administrator's questions are not live traffic: neither that one
    // nor the list question is compared or counted.
    let listed = admin(
        &gw,
        "POST",
        "/v1/explain",
        Some(json!({"principal": "Operator::\"op-dist-admin\"", "action": "ViewCustomer", "resource": "Customer"})),
    )
    .await;
    assert_eq!(listed.status, 200);
    let (_, m_explained) = scrape(&gw).await;
    assert_eq!(
        compared(&m_explained, "ViewCustomer"),
        compared(&m1, "ViewCustomer")
    );
    assert_eq!(disagreements(&m_explained), disagreements(&m1));

    // The shadow set reloads too: the trial removed, the two agree again.
    shadow.remove("90-trial.cedar");
    poll(
        "the shadow set to reload",
        Duration::from_secs(5),
        || async {
            (readyz(&gw).await["shadow_policies"]["version"] == live_version.as_str()).then_some(())
        },
    )
    .await;
    assert_eq!(list(&gw).await.status, 200);
    let (_, m2) = scrape(&gw).await;
    assert_eq!(disagreements(&m2), disagreements(&m1));
    assert!(compared(&m2, "ViewCustomer") > compared(&m1, "ViewCustomer"));
    gw.running.stop().await;
}

// ------------------------------------------------------------- explain

async fn explain(gw: &TestGateway, body: Value) -> TestResponse {
    admin(gw, "POST", "/v1/explain", Some(body)).await
}

async fn explain_uses_live_data(backend: Backend) {
    let gw = TestGateway::start(backend).await;
    // A deny: the determining forbid, where it is written, and the 403 the gateway sends.
    let denied = explain(
        &gw,
        json!({"principal": "Operator::\"op-west-admin\"", "action": "ViewBudget", "resource": "Customer::\"cust-acme\""}),
    )
    .await;
    assert_eq!(denied.status, 200);
    let denied = denied.json();
    assert_eq!(denied["decision"], "deny");
    assert_eq!(denied["found"], true);
    let first = &denied["determining"][0];
    assert_eq!(first["effect"], "forbid");
    let text = std::fs::read_to_string(first["file"].as_str().unwrap()).unwrap();
    let line = text
        .lines()
        .nth(first["line"].as_u64().unwrap() as usize - 1)
        .unwrap();
    assert!(
        line.contains(&format!("@id(\"{}\")", first["id"].as_str().unwrap())),
        "{line}"
    );
    let real = gw.call("op-west-admin", "GET", BUDGET_PATH, None).await;
    assert_eq!(real.status, 403);
    assert_eq!(
        denied["denial"]["error_code"].as_str().unwrap(),
        real.error_code()
    );
    assert_eq!(
        denied["policy_version"],
        readyz(&gw).await["policies"]["version"]
    );

    // An allow with a context, on the store's current data...
    let set_budget = json!({
        "principal": "Operator::\"op-east-finance\"", "action": "SetBudget", "resource": "Customer::\"cust-acme\"",
        "context": {"budget_type": "PACKAGE", "amount": "10.00", "cancel_partner_frozen": false},
    });
    let allowed = explain(&gw, set_budget.clone()).await.json();
    assert_eq!(allowed["decision"], "allow", "{allowed}");
    assert_eq!(allowed["denial"], Value::Null);
    assert!(
        allowed["context"]["now"].is_string() && allowed["context"]["source_ip"] == "127.0.0.1"
    );
    // ...and after the distributor takes the reseller's budget grant away, through the gateway.
    let grants = gw
        .call(
            "op-dist-admin",
            "PUT",
            "/v2/partners/indirect-partners/res-east/grants",
            Some(json!({"budget": false, "freeze": false, "on_behalf": true, "monthly_quota": null, "one_time_quota": null})),
        )
        .await;
    assert_eq!(
        grants.status,
        200,
        "{}",
        String::from_utf8_lossy(&grants.body)
    );
    let now_denied = explain(&gw, set_budget).await.json();
    assert_eq!(now_denied["decision"], "deny", "{now_denied}");

    // Unknown ids are a deny like any other.
    let unknown = explain(
        &gw,
        json!({"principal": "Operator::\"op-dist-admin\"", "action": "ViewCustomer", "resource": "Customer::\"no-such\""}),
    )
    .await
    .json();
    assert_eq!(
        (unknown["found"].clone(), unknown["decision"].clone()),
        (json!(false), json!("deny"))
    );
    assert_eq!(unknown["denial"]["error_code"], "CBC.0151");

    // Bad input: 400 in the API format, naming the field.
    for (body, field) in [
        (
            json!({"principal": "Op::\"x\"", "action": "ViewBudget", "resource": "Customer::\"cust-acme\""}),
            "principal",
        ),
        (
            json!({"principal": "Operator::\"op-dist-admin\"", "resource": "Customer::\"cust-acme\""}),
            "action",
        ),
        (
            json!({"principal": "Operator::\"op-dist-admin\"", "action": "ViewBudget", "resource": "cust-acme"}),
            "resource",
        ),
        (
            json!({"principal": "Operator::\"op-dist-admin\"", "action": "ViewBudget", "resource": "Customer::\"cust-acme\"", "extra": 1}),
            "extra",
        ),
    ] {
        let answer = explain(&gw, body).await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.error_code(), "CBC.0100");
        assert!(
            answer.json()["error_msg"].as_str().unwrap().contains(field),
            "{:?}",
            answer.json()
        );
    }
    gw.running.stop().await;
}

test_on_backends! {
    explain_over_http => explain_uses_live_data;
}

// ------------------------------------------------------------- metrics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_move_with_requests() {
    let gw = TestGateway::start(Backend::Sqlite).await;
    let (types, m0) = scrape(&gw).await;
    for (name, kind) in [
        ("pgw_requests_total", "counter"),
        ("pgw_request_duration_seconds", "histogram"),
        ("pgw_entity_cache_hits_total", "counter"),
        ("pgw_entity_cache_misses_total", "counter"),
        ("pgw_entity_cache_entries", "gauge"),
        ("pgw_entity_cache_bytes", "gauge"),
        ("pgw_decision_cache_entries", "gauge"),
        ("pgw_decision_cache_bytes", "gauge"),
        ("pgw_policy_reloads_total", "counter"),
        ("pgw_policy_reload_error", "gauge"),
        ("pgw_policy_version_info", "gauge"),
        ("pgw_live_sessions", "gauge"),
    ] {
        // Request metrics exist once any request was answered in this process.
        if name.starts_with("pgw_request") && !types.contains_key(name) {
            continue;
        }
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
    }
    // (Its value is process-wide: another test's reload may have marked this version 0.)
    let version = readyz(&gw).await["policies"]["version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(m0
        .iter()
        .any(|s| s.name == "pgw_policy_version_info" && s.labels.get("version") == Some(&version)));

    for _ in 0..3 {
        assert_eq!(
            gw.call("op-west-admin", "GET", BUDGET_PATH, None)
                .await
                .status,
            403
        );
    }
    for _ in 0..2 {
        assert_eq!(
            gw.call("op-east-finance", "GET", BUDGET_PATH, None)
                .await
                .status,
            200
        );
    }
    assert_eq!(
        gw.call("op-dist-admin", "GET", "/v2/partners/no-such-api", None)
            .await
            .status,
        404
    );
    let (types, m1) = scrape(&gw).await;
    for (name, kind) in [
        ("pgw_requests_total", "counter"),
        ("pgw_request_duration_seconds", "histogram"),
        ("pgw_decision_duration_seconds", "histogram"),
        ("pgw_upstream_duration_seconds", "histogram"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
    }
    // Other tests of this binary share the process-wide registry: at least, not exactly.
    let moved =
        |name: &str, labels: &[(&str, &str)]| total(&m1, name, labels) - total(&m0, name, labels);
    let budget = [
        ("route", "/v2/partners/sub-customers/budget"),
        ("action", "ViewBudget"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| [&budget[..], extra].concat();
    assert!(
        moved(
            "pgw_requests_total",
            &with(&[("decision", "deny"), ("status", "403")])
        ) >= 3.0
    );
    assert!(
        moved(
            "pgw_requests_total",
            &with(&[("decision", "allow"), ("status", "200")])
        ) >= 2.0
    );
    assert!(
        moved(
            "pgw_requests_total",
            &[
                ("route", "unmatched"),
                ("action", "none"),
                ("decision", "none"),
                ("status", "404")
            ]
        ) >= 1.0
    );
    assert!(
        moved(
            "pgw_decision_duration_seconds_count",
            &[("action", "ViewBudget")]
        ) >= 5.0
    );
    assert!(
        moved(
            "pgw_upstream_duration_seconds_count",
            &[("route", "/v2/partners/sub-customers/budget")]
        ) >= 2.0
    );
    assert!(
        moved(
            "pgw_request_duration_seconds_count",
            &[("route", "/v2/partners/sub-customers/budget")]
        ) >= 5.0
    );
    let cache =
        moved("pgw_entity_cache_hits_total", &[]) + moved("pgw_entity_cache_misses_total", &[]);
    assert!(cache >= 5.0, "entity cache lookups moved by {cache}");
    gw.running.stop().await;
}

// ---------------------------------------------------- graceful shutdown

/// An upstream that counts arrivals and holds every API call until released
/// (its `/healthz` answers at once).
async fn gated_upstream() -> (String, Arc<AtomicUsize>, tokio::sync::watch::Sender<bool>) {
    let arrivals = Arc::new(AtomicUsize::new(0));
    let (release, released) = tokio::sync::watch::channel(false);
    let counter = arrivals.clone();
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(move || {
            let (counter, mut released) = (counter.clone(), released.clone());
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = released.wait_for(|r| *r).await;
                axum::Json(json!({"budget": "held"}))
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), arrivals, release)
}

pub(super) fn assertion_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([7u8; 32])
}

async fn refuses_connections(addr: std::net::SocketAddr) -> Option<()> {
    tokio::net::TcpStream::connect(addr)
        .await
        .is_err()
        .then_some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_finishes_requests_in_flight() {
    let (upstream, arrivals, release) = gated_upstream().await;
    let gw = TestGateway::start_with(Backend::Sqlite, |cfg| {
        cfg.upstream = Some(upstream.clone());
        cfg.assertion_key = Some(assertion_key().into());
    })
    .await;
    let creds = gw.credentials("op-east-finance");
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let (client, endpoint, creds) = (gw.client.clone(), gw.endpoint.clone(), creds.clone());
            tokio::spawn(async move {
                client::call(
                    &client,
                    &endpoint,
                    Some(&creds),
                    "GET",
                    BUDGET_PATH,
                    b"",
                    &[],
                )
                .await
            })
        })
        .collect();
    poll("4 requests in flight", Duration::from_secs(10), || async {
        (arrivals.load(Ordering::SeqCst) == 4).then_some(())
    })
    .await;

    let addr = gw.running.addr;
    let stopping = tokio::spawn(gw.running.stop());
    poll("the listener to close", Duration::from_secs(5), || {
        refuses_connections(addr)
    })
    .await;
    assert!(
        !stopping.is_finished(),
        "stop waits for the requests in flight"
    );

    release.send(true).unwrap();
    for call in calls {
        let answer = call
            .await
            .unwrap()
            .expect("a request in flight is answered");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json()["budget"], "held");
    }
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("stop returns once they are done")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_gives_up_on_requests_after_the_grace_period() {
    let (upstream, arrivals, _never) = gated_upstream().await;
    let gw = TestGateway::start_with(Backend::Sqlite, |cfg| {
        cfg.upstream = Some(upstream.clone());
        cfg.assertion_key = Some(assertion_key().into());
        cfg.operations.shutdown_grace = Duration::from_millis(300);
    })
    .await;
    let (client, endpoint, creds) = (
        gw.client.clone(),
        gw.endpoint.clone(),
        gw.credentials("op-east-finance"),
    );
    let call = tokio::spawn(async move {
        client::call(
            &client,
            &endpoint,
            Some(&creds),
            "GET",
            BUDGET_PATH,
            b"",
            &[],
        )
        .await
    });
    poll("a request in flight", Duration::from_secs(10), || async {
        (arrivals.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let started = Instant::now();
    gw.running.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the grace period: {:?}",
        started.elapsed()
    );
    let answer = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the client hears the close")
        .unwrap();
    assert!(
        answer.is_err(),
        "a request past the grace period is cut: {answer:?}"
    );
}

// ----------------------------------------------- the binary: signals, log

/// `partner-gateway serve` as a child process, killed if the test fails.
struct Child {
    process: tokio::process::Child,
    endpoint: String,
    admin: String,
}

impl Child {
    fn signal(&self, name: &str) {
        let pid = self.process.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {pid}");
    }

    async fn readyz(&self) -> Value {
        send(
            &http_client(),
            "GET",
            &format!("{}/readyz", self.admin),
            &[],
            vec![],
        )
        .await
        .json()
    }
}

async fn spawn_binary(dir: &Path, copy: &PolicyCopy, upstream: &str) -> Child {
    let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_partner-gateway"))
        .args([
            "serve",
            "--demo",
            "--plaintext",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--no-policy-watch",
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("gw.db").display()))
        .arg("--policies")
        .arg(copy.policies())
        .arg("--schema")
        .arg(copy.schema())
        .args([
            "--upstream",
            upstream,
            "--assertion-key",
            assertion_key().as_str(),
        ])
        .arg("--decision-log")
        .arg(dir.join("decisions.jsonl"))
        .env("PGW_MASTER_KEY", super::test_master_key())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(process.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the banner within 60 s")
        .unwrap()
        .unwrap_or_else(|| {
            panic!(
                "no banner; stderr: {}",
                std::fs::read_to_string(dir.join("stderr.log")).unwrap()
            )
        });
    // "partner-gateway listening on http://ADDR (admin: http://ADMIN)"
    let words: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(
        words[..3],
        ["partner-gateway", "listening", "on"],
        "{first}"
    );
    let endpoint = words[3].to_owned();
    let admin = words[5].trim_end_matches(')').to_owned();
    // Drain the rest of stdout so the child never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Child {
        process,
        endpoint,
        admin,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reloads_on_sighup_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let copy = PolicyCopy::new();
    let (upstream, arrivals, release) = gated_upstream().await;
    let mut child = spawn_binary(dir.path(), &copy, &upstream).await;
    let client = client::https_client(&Trust::Insecure).unwrap();
    let keys = super::demo_keys();
    let endpoint = child.endpoint.clone();
    let call = |who: &str, method: &'static str, path: &'static str, body: &'static [u8]| {
        let (client, endpoint, creds): (_, _, Credentials) =
            (client.clone(), endpoint.clone(), keys[who].clone());
        async move { client::call(&client, &endpoint, Some(&creds), method, path, body, &[]).await }
    };
    let before = child.readyz().await["policies"]["version"]
        .as_str()
        .unwrap()
        .to_owned();

    // SIGHUP (the directories are not watched): the edit is validated and served.
    copy.write("90-trial.cedar", PAUSE_LISTS);
    child.signal("HUP");
    let after = poll("SIGHUP to reload", Duration::from_secs(5), || async {
        let v = child.readyz().await["policies"]["version"]
            .as_str()
            .unwrap()
            .to_owned();
        (v != before).then_some(v)
    })
    .await;
    let paused = call("op-dist-admin", "POST", LIST_PATH, br#"{"limit": 1}"#)
        .await
        .unwrap();
    assert_eq!(
        (paused.status.as_u16(), paused.json()["error_msg"].clone()),
        (403, json!(PAUSED))
    );

    // SIGTERM with requests in flight: they finish, new connections are refused, exit 0.
    let in_flight: Vec<_> = (0..3)
        .map(|_| tokio::spawn(call("op-east-finance", "GET", BUDGET_PATH, b"")))
        .collect();
    poll("3 requests in flight", Duration::from_secs(10), || async {
        (arrivals.load(Ordering::SeqCst) == 3).then_some(())
    })
    .await;
    child.signal("TERM");
    let addr: std::net::SocketAddr = endpoint.trim_start_matches("http://").parse().unwrap();
    poll("the listener to close", Duration::from_secs(5), || {
        refuses_connections(addr)
    })
    .await;
    release.send(true).unwrap();
    for call in in_flight {
        let answer = call.await.unwrap().expect("answered before exit");
        assert_eq!(answer.status, 200);
    }
    let status = tokio::time::timeout(Duration::from_secs(15), child.process.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(
        status.success(),
        "exit status {status:?}; stderr: {}",
        std::fs::read_to_string(dir.path().join("stderr.log")).unwrap()
    );

    // The decision log: one JSON object per line, every field of the schema.
    let log = std::fs::read_to_string(dir.path().join("decisions.jsonl")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let fields = [
        "ts",
        "request_id",
        "trace_id",
        "method",
        "path",
        "route",
        "principal",
        "acting_as",
        "source_operator",
        "auth",
        "auth_failure",
        "access_key",
        "action",
        "resources",
        "decision",
        "determining",
        "errors",
        "policy_version",
        "now",
        "now_supplied",
        "context",
        "client_ip",
        "refused",
        "replayed",
        "status",
        "latency_us",
        "decision_us",
        "upstream_us",
    ];
    for line in &lines {
        // Every field of the schema, in its order, and nothing else.
        let keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, fields, "{line}");
    }
    let budget: Vec<&Value> = lines
        .iter()
        .filter(|l| l["action"] == "ViewBudget")
        .collect();
    assert_eq!(budget.len(), 3);
    for l in budget {
        assert_eq!(
            (l["decision"].as_str(), l["status"].as_u64()),
            (Some("allow"), Some(200))
        );
        assert_eq!(l["policy_version"], after.as_str());
        assert!(l["upstream_us"].as_u64().is_some());
        assert_eq!(l["principal"], "Operator::\"op-east-finance\"");
        assert_eq!(l["now_supplied"], false);
        assert!(l["now"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
    }
    let denied: Vec<&Value> = lines
        .iter()
        .filter(|l| l["action"] == "ViewCustomer")
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["determining"], json!(["trial-pause-lists"]));
    assert_eq!(denied[0]["upstream_us"], Value::Null);
    // The human log stays on stderr and leaves the decision records out.
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(stderr.contains("SIGHUP"), "{stderr}");
    assert!(
        !stderr.contains("request_id"),
        "decision records went to the JSON log only"
    );
}

/// The resident set of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// One admin request cannot take the process's memory: a body past 1 MiB is
/// 413 before it is parsed (a 1.8 MB batch of 600 000 empty evaluations
/// once took 2.1 GB), a batch past 1 000 evaluations is 400 naming the cap
/// before any is decided, and every evaluation of a batch within the cap
/// has its own decision record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_requests_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let copy = PolicyCopy::new();
    let (upstream, _arrivals, _release) = gated_upstream().await;
    let mut child = spawn_binary(dir.path(), &copy, &upstream).await;
    let pid = child.process.id().unwrap();
    let evaluations = format!("{}/access/v1/evaluations", child.admin);
    let post = |body: Vec<u8>| {
        let url = evaluations.clone();
        async move {
            send(
                &http_client(),
                "POST",
                &url,
                &[("content-type", "application/json".into())],
                body,
            )
            .await
        }
    };
    let question = json!({
        "subject": {"type": "Operator", "id": "op-east-admin"},
        "action": {"name": "ViewCustomer"},
        "resource": {"type": "Customer", "id": "cust-acme"},
    });
    // Warm: the first evaluation builds what every later one uses.
    assert_eq!(
        post(serde_json::to_vec(&question).unwrap()).await.status,
        200
    );
    let before = rss_kib(pid);

    let mut huge = question.clone();
    huge["evaluations"] = Value::Array(vec![json!({}); 600_000]);
    let huge = serde_json::to_vec(&huge).unwrap();
    assert!(huge.len() > 1_800_000, "{}", huge.len());
    let r = post(huge).await;
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error_code"], "APIGW.0201");

    let mut over = question.clone();
    over["evaluations"] = Value::Array(vec![json!({}); 1001]);
    let r = post(serde_json::to_vec(&over).unwrap()).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let msg = r.json()["error_msg"].as_str().unwrap().to_owned();
    assert!(msg.contains("evaluations") && msg.contains("1000"), "{msg}");
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(grown < 10 * 1024, "the gateway grew by {grown} KiB");

    let mut two = question.clone();
    two["evaluations"] = json!([{}, {"resource": {"type": "Customer", "id": "cust-kite"}}]);
    let r = post(serde_json::to_vec(&two).unwrap()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    child.signal("TERM");
    tokio::time::timeout(Duration::from_secs(15), child.process.wait())
        .await
        .expect("exits")
        .unwrap();
    let log = std::fs::read_to_string(dir.path().join("decisions.jsonl")).unwrap();
    let batch_records = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["path"] == "/access/v1/evaluations")
        .count();
    // The warm-up, then one record per evaluation of the batch of two; the
    // refused requests decided nothing.
    assert_eq!(batch_records, 3, "{log}");
}
