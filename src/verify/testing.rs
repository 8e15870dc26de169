//! The decision-test runner behind `partner-gateway policy test` and the
//! policy tests of `cargo test` (format: `policies/README.md`, *Decision
//! tests*).
//!
//! A fixture is loaded into a temporary SQLite database with the real
//! [`Store::import_fixture`], and every case's entities come from the real
//! [`EntityLoader`]: the path the gateway takes, so a test that passes here
//! says something about production.
//!
//! A test file may instead give its entities inline, in Cedar's JSON entity
//! format (`entities`): the form `policy verify` and `policy diff` write their
//! counterexamples in, since a solver's entities need not be rows the store
//! could hold. They are checked against the schema, then decided the same way.

use crate::crypto::SecretCipher;
use crate::entities::EntityLoader;
use crate::ids::*;
use crate::model::AuthorizationScope;
use crate::model::SessionFacts;
use crate::policy::{AccessRequest, Decision, PolicyEngine};
use crate::refs::EntityRef;
use crate::store::seed::Fixture;
use crate::store::Store;
use crate::time;
use cedar_policy::Entities;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `context.source_ip` of a case that does not give one.
pub const DEFAULT_SOURCE_IP: &str = "127.0.0.1";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    /// A seed-format fixture, relative to the test file...
    #[serde(default)]
    fixture: Option<String>,
    /// ...or the entities themselves, in Cedar's JSON entity format.
    #[serde(default)]
    entities: Option<Value>,
    /// The default `context.now`; required with a fixture.
    #[serde(default)]
    now: Option<String>,
    #[serde(default)]
    sessions: Vec<TestSession>,
    cases: Vec<TestCase>,
}

impl TestFile {
    fn parse(text: &str) -> Result<TestFile, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        let tf: TestFile = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| format!("not a valid test file: at {}: {}", e.path(), e.inner()))?;
        if let Some(now) = &tf.now {
            time::parse(now).map_err(|e| format!("now {now:?}: {e}"))?;
        }
        match (&tf.fixture, &tf.entities) {
            (Some(_), None) if tf.now.is_none() => {
                Err("a test file with a fixture needs \"now\"".into())
            }
            (Some(_), None) => Ok(tf),
            (None, Some(_)) if !tf.sessions.is_empty() => Err(
                "\"sessions\" go with a fixture; with inline \"entities\" a session is an entity"
                    .into(),
            ),
            (None, Some(_)) => Ok(tf),
            _ => Err("give exactly one of \"fixture\" and \"entities\"".into()),
        }
    }
}

/// A session as a test file (or `policy explain --session`) writes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSession {
    pub id: String,
    pub operator: String,
    pub customer: String,
    pub scopes: Vec<AuthorizationScope>,
    pub expires_at: String,
    #[serde(default)]
    pub ended: bool,
    /// Defaults to the customer's live authorization.
    #[serde(default)]
    pub authorization: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    principal: String,
    action: String,
    resource: String,
    #[serde(default)]
    context: Map<String, Value>,
    expect: Expect,
    #[serde(default)]
    determining: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Allow,
    Deny,
}

impl Expect {
    fn as_str(self) -> &'static str {
        match self {
            Expect::Allow => "allow",
            Expect::Deny => "deny",
        }
    }
}

/// One failing case (or a file that could not be run at all).
#[derive(Clone, Debug)]
pub struct CaseFailure {
    pub file: PathBuf,
    pub case: String,
    pub message: String,
}

impl fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FAIL {}: {}: {}",
            self.file.display(),
            self.case,
            self.message
        )
    }
}

#[derive(Debug, Default)]
pub struct TestReport {
    pub passed: usize,
    pub failures: Vec<CaseFailure>,
    /// How many cases each policy determined (passing or not): coverage.
    pub determined: HashMap<String, usize>,
}

impl TestReport {
    pub fn failed(&self) -> usize {
        self.failures.len()
    }

    /// The summary line: `N passed, N failed`.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed())
    }

    /// The policies of `engine` that determined no case, in file order.
    pub fn uncovered<'e>(&self, engine: &'e PolicyEngine) -> Vec<&'e crate::policy::PolicyInfo> {
        engine
            .policies()
            .iter()
            .filter(|p| !self.determined.contains_key(&p.id))
            .collect()
    }
}

/// Every `*.json` of `dir` that has a `cases` member (fixtures have none), by name.
pub fn default_test_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|x| x != "json") || !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let has_cases = serde_json::from_str::<Value>(&text)
            .map(|v| v.get("cases").is_some())
            // An unparsable file is a test file gone wrong: run it to report it.
            .unwrap_or(true);
        if has_cases {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A fixture in a throwaway SQLite database, with an entity loader over it.
pub struct FixtureDb {
    pub store: Store,
    pub loader: EntityLoader,
    _dir: tempfile::TempDir,
}

impl FixtureDb {
    /// Imports `path` (docs/domain.md section 5 format) with the real importer,
    /// its relative instants counted from `anchor`.
    pub async fn load(path: &Path, anchor: time::Timestamp) -> anyhow::Result<FixtureDb> {
        let fixture = Fixture::load_at(path, anchor)?;
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}/fixture.db", dir.path().display());
        // Secrets are sealed on import and never read here: any key will do.
        let cipher = SecretCipher::from_bytes(&rand::random::<[u8; 32]>())?;
        let store = Store::connect_with(&url, cipher, 4).await?;
        store.import_fixture(&fixture).await?;
        let loader = EntityLoader::new(store.clone(), 16 << 20, Duration::from_secs(300));
        Ok(FixtureDb {
            store,
            loader,
            _dir: dir,
        })
    }
}

/// Turns written sessions into [`SessionFacts`]; an absent `authorization` is
/// the customer's live authorization to its direct partner.
pub async fn session_facts(
    store: &Store,
    sessions: &[TestSession],
) -> anyhow::Result<Vec<SessionFacts>> {
    let mut out = Vec::new();
    for s in sessions {
        let what = format!("session {:?}", s.id);
        let authorization_id = match &s.authorization {
            Some(a) => AuthorizationId::from(a.as_str()),
            None => {
                let customer = store
                    .customer(&CustomerId::from(s.customer.as_str()))
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("{what}: no customer {:?}", s.customer))?;
                store
                    .live_authorization(&customer.id, &customer.partner)
                    .await?
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "{what}: customer {:?} has no live authorization; name one with \"authorization\"",
                            s.customer
                        )
                    })?
                    .id
            }
        };
        out.push(SessionFacts {
            id: SessionId::from(s.id.as_str()),
            operator: OperatorId::from(s.operator.as_str()),
            customer: CustomerId::from(s.customer.as_str()),
            scopes: s.scopes.clone(),
            expires_at: time::parse(&s.expires_at)
                .map_err(|e| anyhow::anyhow!("{what}: expires_at {:?}: {e}", s.expires_at))?,
            ended: s.ended,
            end_reason: None,
            authorization_id: Some(authorization_id),
        });
    }
    Ok(out)
}

/// Runs every case of `files` against `engine`.
pub async fn run_files(engine: &PolicyEngine, files: &[PathBuf]) -> TestReport {
    let mut report = TestReport::default();
    let mut fixtures: HashMap<(PathBuf, time::Timestamp), FixtureDb> = HashMap::new();
    for file in files {
        if let Err(e) = run_file(engine, file, &mut fixtures, &mut report).await {
            report.failures.push(CaseFailure {
                file: file.clone(),
                case: "(the whole file)".into(),
                message: format!("{e:#}"),
            });
        }
    }
    report
}

async fn run_file(
    engine: &PolicyEngine,
    file: &Path,
    fixtures: &mut HashMap<(PathBuf, time::Timestamp), FixtureDb>,
    report: &mut TestReport,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)?;
    let tf = TestFile::parse(&text).map_err(|e| anyhow::anyhow!(e))?;
    let mut record =
        |case: &TestCase, outcome: Result<Decision, String>| match outcome.and_then(|d| {
            for id in &d.determining {
                *report.determined.entry(id.clone()).or_default() += 1;
            }
            check(case, &d)
        }) {
            Ok(()) => report.passed += 1,
            Err(message) => report.failures.push(CaseFailure {
                file: file.to_owned(),
                case: case.name.clone(),
                message,
            }),
        };
    let Some(fixture) = &tf.fixture else {
        let entities = inline_entities(engine, &tf)?;
        for case in &tf.cases {
            record(case, decide_inline_case(engine, &entities, &tf, case));
        }
        return Ok(());
    };
    let fixture_path = file.parent().unwrap_or(Path::new(".")).join(fixture);
    // A fixture's relative instants count from the file's `now` (required
    // with a fixture, checked when the file was parsed).
    let now = tf
        .now
        .as_deref()
        .map(time::parse)
        .transpose()?
        .unwrap_or_else(time::now);
    let path = fixture_path
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("fixture {}: {e}", fixture_path.display()))?;
    let key = (path, now);
    if !fixtures.contains_key(&key) {
        let db = FixtureDb::load(&fixture_path, now)
            .await
            .map_err(|e| anyhow::anyhow!("fixture {}: {e:#}", fixture_path.display()))?;
        fixtures.insert(key.clone(), db);
    }
    let db = &fixtures[&key];
    let sessions = session_facts(&db.store, &tf.sessions).await?;
    for case in &tf.cases {
        let outcome = async {
            let request = case_request(case, tf.now.as_deref())?;
            let entities = db
                .loader
                .slice(engine, &request.principal, &request.resource, &sessions)
                .await
                .map_err(|e| format!("cannot build the entities: {e}"))?
                .ok_or_else(|| {
                    format!(
                        "{} or {} does not exist in the fixture",
                        request.principal, request.resource
                    )
                })?;
            decide_both_ways(engine, &request, &entities)
        }
        .await;
        record(case, outcome);
    }
    Ok(())
}

/// Decides every case of a test file in the inline-entities form, exactly
/// as `policy test` does, without checking the expectations: how a written
/// counterexample is replayed.
pub fn decide_inline(engine: &PolicyEngine, file: &Value) -> Result<Vec<Decision>, String> {
    let tf = TestFile::parse(&file.to_string())?;
    if tf.fixture.is_some() {
        return Err("not an inline-entities test file".into());
    }
    let entities = inline_entities(engine, &tf).map_err(|e| format!("{e:#}"))?;
    tf.cases
        .iter()
        .map(|case| decide_inline_case(engine, &entities, &tf, case))
        .collect()
}

fn inline_entities(engine: &PolicyEngine, tf: &TestFile) -> anyhow::Result<Entities> {
    let json = tf.entities.clone().unwrap_or(Value::Array(Vec::new()));
    Entities::from_json_value(json, Some(engine.schema()))
        .map_err(|e| anyhow::anyhow!("entities: {}", crate::policy::describe(&e)))
}

fn decide_inline_case(
    engine: &PolicyEngine,
    entities: &Entities,
    tf: &TestFile,
    case: &TestCase,
) -> Result<Decision, String> {
    let request = case_request(case, tf.now.as_deref())?;
    for r in [&request.principal, &request.resource] {
        if entities.get(&r.uid()).is_none() {
            return Err(format!("{r} is not among the entities"));
        }
    }
    decide_both_ways(engine, &request, entities)
}

fn case_request(case: &TestCase, now: Option<&str>) -> Result<AccessRequest, String> {
    let principal = EntityRef::parse(&case.principal).map_err(|e| e.to_string())?;
    let resource = EntityRef::parse(&case.resource).map_err(|e| e.to_string())?;
    let mut context = case.context.clone();
    if let Some(now) = now {
        context
            .entry("now")
            .or_insert_with(|| Value::String(now.to_owned()));
    }
    context
        .entry("source_ip")
        .or_insert_with(|| Value::String(DEFAULT_SOURCE_IP.to_owned()));
    Ok(AccessRequest::new(
        principal,
        case.action.clone(),
        resource,
        context,
    ))
}

/// The gateway's decision, after checking that the plain path agrees.
fn decide_both_ways(
    engine: &PolicyEngine,
    request: &AccessRequest,
    entities: &Entities,
) -> Result<Decision, String> {
    let decision = engine.decide(request, entities);
    let plain = engine.decide_unplanned(request, entities);
    let sorted = |d: &Decision| {
        let mut errors = d.errors.clone();
        errors.sort();
        (d.allow, d.determining.clone(), errors)
    };
    if sorted(&decision) != sorted(&plain) {
        return Err(format!(
            "the planned decision {decision:?} differs from the plain one {plain:?}"
        ));
    }
    Ok(decision)
}

fn check(case: &TestCase, d: &Decision) -> Result<(), String> {
    let got = if d.allow { "allow" } else { "deny" };
    let determining_ok = match &case.determining {
        None => true,
        Some(want) => {
            want.iter().collect::<BTreeSet<_>>() == d.determining.iter().collect::<BTreeSet<_>>()
        }
    };
    if got == case.expect.as_str() && determining_ok && d.errors.is_empty() {
        return Ok(());
    }
    let mut msg = format!("expected {}, got {got}", case.expect.as_str());
    if let Some(want) = &case.determining {
        msg.push_str(&format!("; determining expected {want:?}"));
    }
    msg.push_str(&format!("; determining {:?}", d.determining));
    if !d.errors.is_empty() {
        msg.push_str(&format!("; errors {:?}", d.errors));
    }
    Err(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_file_has_a_fixture_or_inline_entities() {
        let case = r#""cases": [{"name": "n", "principal": "Operator::\"o\"", "action": "ViewCustomer", "resource": "Customer::\"c\"", "expect": "deny"}]"#;
        let parse = |fields: &str| TestFile::parse(&format!("{{{fields}, {case}}}"));
        assert!(parse(r#""fixture": "f.json", "now": "2026-11-21T12:00:00Z""#).is_ok());
        assert!(parse(r#""entities": []"#).is_ok());
        for (fields, reason) in [
            (r#""fixture": "f.json""#, "needs \"now\""),
            (
                r#""fixture": "f.json", "entities": [], "now": "2026-11-21T12:00:00Z""#,
                "exactly one",
            ),
            (r#""now": "2026-11-21T12:00:00Z""#, "exactly one"),
            (
                r#""entities": [], "sessions": [{"id": "s", "operator": "o", "customer": "c", "scopes": ["om"], "expires_at": "2026-11-21T12:00:00Z"}]"#,
                "a session is an entity",
            ),
            (r#""entities": [], "now": "yesterday""#, "now"),
        ] {
            let err = parse(fields)
                .err()
                .unwrap_or_else(|| panic!("accepted {fields}"));
            assert!(err.contains(reason), "{fields}: {err}");
        }
    }
}
