//! One policy set for a fleet: `policy publish` stores a proved set, every
//! gateway started with `--policy-source database` serves it (PostgreSQL:
//! LISTEN/NOTIFY; SQLite: the WAL probe), rollback and history, the fleet
//! status, and the refusals: an unproved set at publish and at every
//! gateway, a weakened invariant, nothing published.

use crate::kit::{self, DomainServer, TestDb};
use partner_gateway::config::{PolicySource, ServeConfig};
use partner_gateway::serve::{self, RunningGateway};
use partner_gateway::store::publications::{NewPublication, Stage};
use partner_gateway::store::Backend;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// `partner-gateway policy ARGS --database-url URL`: its exit code and stdout.
fn policy(url: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_partner-gateway"))
        .arg("policy")
        .args(args)
        .args(["--database-url", url])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run partner-gateway policy");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

/// A copy of the shipped policies (without their decision tests) to change.
fn policies_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
            }
        }
    };
    copy(&kit::policies_dir(), dir.path());
    copy(
        &kit::policies_dir().join("invariants"),
        &dir.path().join("invariants"),
    );
    dir
}

/// Removes the policy (or invariant) `@id(id)` from `file`.
fn remove_policy(file: &Path, id: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    let start = text
        .find(&format!("@id(\"{id}\")"))
        .unwrap_or_else(|| panic!("{id} is not in {}", file.display()));
    let end = text[start + 4..]
        .find("@id(")
        .map_or(text.len(), |e| start + 4 + e);
    std::fs::write(file, format!("{}{}", &text[..start], &text[end..])).unwrap();
}

/// The publication's version, as `publish` prints it.
fn published_version(out: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.starts_with("published version "))
        .unwrap_or_else(|| panic!("nothing published:\n{out}"));
    line.split_whitespace().nth(2).unwrap().to_owned()
}

async fn gateway(
    db: &TestDb,
    instance: &str,
    invariants: Option<PathBuf>,
) -> anyhow::Result<RunningGateway> {
    let mut config = ServeConfig::local(
        kit::test_database(db),
        kit::policies_dir(),
        kit::schema_dir(),
    );
    config.operations.policy_source = PolicySource::Database;
    config.operations.instance = Some(instance.to_owned());
    config.operations.invariants = invariants;
    // Nothing but the notification (PostgreSQL) or the WAL probe (SQLite)
    // tells these gateways of a publication.
    config.operations.fleet_heartbeat = Duration::from_secs(3600);
    config.operations.decision_log_writer = Some(kit::decisions().log.clone());
    serve::start(config).await
}

fn serving(gw: &RunningGateway) -> String {
    gw.reloader.live.engine.load().version().to_owned()
}

/// Waits until every gateway serves `version`; how long that took.
async fn until_served(gateways: &[&RunningGateway], version: &str) -> Duration {
    let started = Instant::now();
    while gateways.iter().any(|g| serving(g) != version) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not every gateway serves {version}: {:?}",
            gateways.iter().map(|g| serving(g)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_reaches_three_gateways_and_rolls_back() {
    let db = TestDb::postgres().await;
    let (code, out) = policy(&db.url, &["publish", "--message", "the shipped set"]);
    assert_eq!(code, 0, "{out}");
    let first = published_version(&out);
    let mut gateways = Vec::new();
    for name in ["gw-1", "gw-2", "gw-3"] {
        gateways.push(
            gateway(&db, name, None)
                .await
                .expect("starts on the publication"),
        );
    }
    let all: Vec<&RunningGateway> = gateways.iter().collect();
    until_served(&all, &first).await;

    // A tightened set: operators no longer view their exports.
    let tightened = policies_copy();
    remove_policy(
        &tightened.path().join("10-view.cedar"),
        "R1-operator-views-own-exports",
    );
    let dir = tightened.path().to_str().unwrap();
    let (code, out) = policy(
        &db.url,
        &[
            "publish",
            "--policies",
            dir,
            "--message",
            "tighter",
            "--author",
            "sec-team",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("NEWLY DENIED  Operator::\"operator-1\" ViewExport")
            && out.contains("0 request kind(s) newly allowed"),
        "the diff shows what the change denies:\n{out}"
    );
    let second = published_version(&out);
    let took = until_served(&all, &second).await;
    eprintln!("publish → 3 gateways serving: {} ms", took.as_millis());
    for gw in &gateways {
        assert!(gw
            .reloader
            .live
            .engine
            .load()
            .policy("R1-operator-views-own-exports")
            .is_none());
    }

    // The fleet status: every gateway, its version and publication.
    let (code, out) = policy(&db.url, &["fleet", "--json"]);
    assert_eq!(code, 0, "{out}");
    let fleet: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(fleet.len(), 3, "{out}");
    for g in &fleet {
        assert_eq!(g["version"], second.as_str(), "{out}");
        assert_eq!(g["seq"], 2, "{out}");
        assert_eq!(g["proved"], true, "{out}");
        for key in ["instance", "since", "last_seen"] {
            assert!(g[key].is_string(), "{key} in {out}");
        }
    }

    // Rollback: a new publication of the first one's content.
    let (code, out) = policy(&db.url, &["rollback", &first, "--message", "back"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(published_version(&out), first);
    until_served(&all, &first).await;
    let (code, out) = policy(&db.url, &["history", "--json"]);
    assert_eq!(code, 0, "{out}");
    let history: Vec<Value> = serde_json::from_str(&out).unwrap();
    let seqs: Vec<&Value> = history.iter().map(|p| &p["seq"]).collect();
    assert_eq!(seqs, [3, 2, 1], "{out}");
    assert_eq!(history[0]["copied_from"], 1, "{out}");
    assert_eq!(history[1]["author"], "sec-team", "{out}");
    assert_eq!(history[1]["message"], "tighter", "{out}");

    // A gateway that starts now comes up on the current publication.
    let last = gateways.pop().unwrap();
    last.stop().await;
    let restarted = gateway(&db, "gw-3", None).await.expect("restarts");
    assert_eq!(serving(&restarted), first);
    restarted.stop().await;
    for gw in gateways {
        gw.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unproved_set_is_refused_at_publish_and_at_every_gateway() {
    let db = TestDb::sqlite().await;
    let (code, out) = policy(&db.url, &["publish"]);
    assert_eq!(code, 0, "{out}");
    let good = published_version(&out);

    // A set that lets anyone do anything breaks the invariants.
    let open = policies_copy();
    std::fs::write(
        open.path().join("99-open.cedar"),
        "@id(\"open\")\npermit (principal, action, resource);\n",
    )
    .unwrap();
    let dir = open.path().to_str().unwrap();
    let (code, out) = policy(&db.url, &["publish", "--policies", dir]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("REFUSED: not every invariant is proved"),
        "{out}"
    );
    assert!(out.contains("INV-"), "names the refuted invariant:\n{out}");
    assert!(out.contains("counterexample"), "{out}");
    let (_, history) = policy(&db.url, &["history", "--json"]);
    // A problem names the file as its author knows it.
    let broken = policies_copy();
    let file = broken.path().join("99-broken.cedar");
    std::fs::write(
        &file,
        "@id(\"broken\")\npermit (principal, action, resource) when {\n",
    )
    .unwrap();
    let (code, out) = policy(
        &db.url,
        &["publish", "--policies", broken.path().to_str().unwrap()],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("{}:", file.display())), "{out}");
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&history).unwrap().len(),
        1
    );

    // Written into the database past the CLI, with its guardrails cut to
    // one that promises nothing: the gateway proves against its own
    // invariants (`--invariants`), refuses it, and keeps serving.
    let gw = gateway(
        &db,
        "gw-local",
        Some(kit::policies_dir().join("invariants")),
    )
    .await
    .expect("starts");
    assert_eq!(serving(&gw), good);
    // Its first report made, only the WAL probe can tell it of what follows.
    let started = Instant::now();
    while db.store.fleet().await.unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no first report"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let weak = tempfile::tempdir().unwrap();
    kit::promise_nothing(weak.path());
    let mut files = partner_gateway::policy_tools::publish::read_files(
        open.path(),
        &kit::schema_dir(),
        &weak.path().join("invariants"),
    )
    .unwrap();
    files.invariants.insert(
        "assumptions.cedar".into(),
        std::fs::read_to_string(kit::policies_dir().join("invariants/assumptions.cedar")).unwrap(),
    );
    let forged = NewPublication {
        version: "forged".into(),
        stage: Stage::Live,
        files,
        invariants_digest: String::new(),
        author: "someone with the database password".into(),
        host: "elsewhere".into(),
        message: String::new(),
        proof: "none".into(),
        invariant_change: None,
        copied_from: None,
    };
    db.store.publish_policies(Some(1), &forged).await.unwrap();
    let started = Instant::now();
    loop {
        let fleet = db.store.fleet().await.unwrap();
        let me = fleet.iter().find(|g| g.instance == "gw-local");
        if let Some(problem) = me.and_then(|me| me.problem.as_ref()) {
            let me = me.unwrap();
            assert!(problem.contains("publication 2 refused"), "{problem}");
            assert_eq!(me.version, good);
            assert_eq!(me.seq, Some(1));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the forged publication was not refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(serving(&gw), good, "the last good set keeps serving");
    assert!(gw.reloader.live.engine.load().policy("open").is_none());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weakened_invariant_needs_allow_invariant_change() {
    let db = TestDb::sqlite().await;
    let (code, out) = policy(&db.url, &["publish"]);
    assert_eq!(code, 0, "{out}");
    let weaker = policies_copy();
    remove_policy(
        &weaker.path().join("invariants/invariants.cedar"),
        "INV-R11-session-touches-no-other-session",
    );
    let dir = weaker.path().to_str().unwrap();
    let (code, out) = policy(&db.url, &["publish", "--policies", dir]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("invariant INV-R11-session-touches-no-other-session removed")
            && out.contains("--allow-invariant-change"),
        "{out}"
    );
    let (code, out) = policy(
        &db.url,
        &["publish", "--policies", dir, "--allow-invariant-change"],
    );
    assert_eq!(code, 0, "{out}");
    let (_, out) = policy(&db.url, &["history", "--json"]);
    let history: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[0]["invariant_change"],
        "invariant INV-R11-session-touches-no-other-session removed"
    );
    // An added assumption weakens every proof as well.
    let assuming = policies_copy();
    let file = assuming.path().join("invariants/assumptions.cedar");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("\n@id(\"A-nobody-calls\")\n@check(\"assume\")\npermit (principal, action, resource)\nwhen { context.source_ip == ip(\"10.9.9.9\") };\n");
    std::fs::write(&file, text).unwrap();
    let dir = assuming.path().to_str().unwrap();
    let (code, out) = policy(&db.url, &["publish", "--policies", dir, "--dry-run"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("assumption A-nobody-calls added"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_with_nothing_published_does_not_start() {
    let db = TestDb::sqlite().await;
    let err = gateway(&db, "gw-empty", None).await.err().expect("refused");
    assert!(
        format!("{err:#}").contains("nothing is published"),
        "{err:#}"
    );
    // A dry run stores nothing either.
    let (code, out) = policy(&db.url, &["publish", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("dry run: would publish"), "{out}");
    assert!(db.store.live_publication().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_publication_counts_flips_on_live_traffic_until_promoted() {
    let s = DomainServer::start_tuned(
        Backend::Sqlite,
        crate::gateway::DEMO,
        &kit::policies_dir(),
        |config| {
            let (code, out) = policy(&config.database.database_url, &["publish"]);
            assert_eq!(code, 0, "{out}");
            config.operations.policy_source = PolicySource::Database;
            config.operations.instance = Some("gw-shadow".into());
            config.operations.fleet_heartbeat = Duration::from_secs(3600);
        },
    )
    .await;
    let url = s.db.url.clone();
    let live = serving(&s.running);
    assert!(s.running.reloader.shadow().is_none());

    // Operators no longer read their customers' data: compared, not decided.
    let narrower = policies_copy();
    remove_policy(
        &narrower.path().join("10-view.cedar"),
        "R1-operator-views-customer-data",
    );
    let dir = narrower.path().to_str().unwrap();
    let (code, out) = policy(&url, &["publish", "--shadow", "--policies", dir]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("as publication 2 (shadow)"), "{out}");
    let candidate = published_version(&out);
    let shadow_version = |s: &DomainServer| {
        s.running
            .reloader
            .shadow()
            .map(|set| set.engine.load().version().to_owned())
    };
    let started = Instant::now();
    while shadow_version(&s).as_deref() != Some(candidate.as_str()) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the shadow publication was not taken up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        serving(&s.running),
        live,
        "a shadow publication decides nothing"
    );

    let admin = s.operator("op-east-admin").await;
    let overview = "/v2/partners/sub-customers/cust-acme/overview";
    assert_eq!(
        s.call("GET", overview, Some(&admin), None).await.status,
        200
    );
    assert_eq!(s.running.reloader.shadow_slot().flips(), 1);
    let fleet = s.db.store.fleet().await.unwrap();
    let me = fleet.iter().find(|g| g.instance == "gw-shadow").unwrap();
    assert_eq!(me.shadow_version.as_deref(), Some(candidate.as_str()));

    // Promoted, it decides; the shadow set is gone.
    let (code, out) = policy(&url, &["promote", &candidate[..8]]);
    assert_eq!(code, 0, "{out}");
    until_served(&[&s.running], &candidate).await;
    let started = Instant::now();
    while s.running.reloader.shadow().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the shadow set stayed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        s.call("GET", overview, Some(&admin), None).await.status,
        403
    );
    // Promoting what is live already is refused as a usage error.
    let (code, out) = policy(&url, &["promote", &live]);
    assert_eq!(code, 2, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_log_against_a_tightened_set_names_exactly_the_requests_that_flip() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("decisions.jsonl");
    let log_path = log.to_str().unwrap().to_owned();
    let s = DomainServer::start_tuned(
        Backend::Sqlite,
        crate::gateway::DEMO,
        &kit::policies_dir(),
        |config| {
            config.operations.decision_log_writer = None;
            config.operations.decision_log = Some(log_path);
        },
    )
    .await;
    let request_id = |r: &partner_gateway::client::Answer| {
        r.headers["x-request-id"].to_str().unwrap().to_owned()
    };
    let overview = "/v2/partners/sub-customers/cust-acme/overview";
    let east = s.operator("op-east-admin").await;
    let west = s.operator("op-west-admin").await;
    let acme = s.customer("cust-acme");
    let allowed = s.call("GET", overview, Some(&east), None).await;
    assert_eq!(allowed.status, 200);
    let denied = s.call("GET", overview, Some(&west), None).await;
    assert_eq!(denied.status, 403);
    let own = s
        .call("GET", "/v2/customers/partner-activity", Some(&acme), None)
        .await;
    assert_eq!(own.status, 200);
    s.running.gateway.decision_log.as_ref().unwrap().flush();

    // Operators no longer read their customers' data.
    let narrower = policies_copy();
    remove_policy(
        &narrower.path().join("10-view.cedar"),
        "R1-operator-views-customer-data",
    );
    let replay = |candidate: &Path| {
        policy(
            &s.db.url,
            &[
                "replay",
                "--decision-log",
                log.to_str().unwrap(),
                "--policies",
                candidate.to_str().unwrap(),
                "--baseline",
                kit::policies_dir().to_str().unwrap(),
            ],
        )
    };
    let (code, out) = replay(narrower.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("replayed 3 of 3 record(s)"), "{out}");
    assert!(out.contains("1 request(s) flip:"), "{out}");
    assert!(
        out.contains("NEWLY DENIED  ViewCustomer by Operator: 1 request(s)")
            && out.contains("before: R1-operator-views-customer-data"),
        "{out}"
    );
    assert!(out.contains(&request_id(&allowed)), "{out}");
    assert!(!out.contains(&request_id(&denied)), "{out}");
    assert!(!out.contains(&request_id(&own)), "{out}");

    // The set that recorded them flips nothing.
    let (code, out) = replay(&kit::policies_dir());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no flip"), "{out}");
}
