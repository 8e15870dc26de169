//! Faults end to end on the real server stack (`serve::start`): an upstream
//! that hangs or closes mid-answer, and shutdown under load.

use super::{poll, TestGateway};
use partner_gateway::client;
use partner_gateway::store::Backend;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BOUND: Duration = Duration::from_secs(20);
const BUDGET: &str = "/v2/partners/sub-customers/budget?customer_id=cust-acme";

/// What the fake upstream does once it has read a request.
#[derive(Clone, Copy)]
enum Upstream {
    /// Never answers.
    Hang,
    /// Starts a 200 with a body it never finishes, then closes.
    CloseMidBody,
    /// Answers 200 `{}` once released.
    AnswerWhenReleased,
}

struct Fake {
    url: String,
    received: Arc<AtomicUsize>,
    release: Arc<tokio::sync::Notify>,
}

async fn read_request(s: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    let _ = s.read_exact(&mut body).await;
}

async fn fake_upstream(mode: Upstream) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let (count, gate) = (received.clone(), release.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (count, gate) = (count.clone(), gate.clone());
            tokio::spawn(async move {
                read_request(&mut s).await;
                count.fetch_add(1, Ordering::SeqCst);
                match mode {
                    Upstream::Hang => std::future::pending::<()>().await,
                    Upstream::CloseMidBody => {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"budget\": ")
                            .await;
                    }
                    Upstream::AnswerWhenReleased => {
                        gate.notified().await;
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                            .await;
                    }
                }
            });
        }
    });
    Fake {
        url,
        received,
        release,
    }
}

async fn gateway_before(fake: &Fake, upstream_timeout: Duration) -> TestGateway {
    let url = fake.url.clone();
    TestGateway::start_with(Backend::Sqlite, move |cfg| {
        cfg.upstream = Some(url);
        cfg.assertion_key = Some(
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [1u8; 32]).into(),
        );
        cfg.limits.upstream_timeout = upstream_timeout;
    })
    .await
}

/// A hung upstream costs at most the upstream timeout: 504, in the API's format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_upstream_is_504() {
    let fake = fake_upstream(Upstream::Hang).await;
    let gw = gateway_before(&fake, Duration::from_secs(1)).await;
    let call = gw.call("op-east-finance", "GET", BUDGET, None);
    let answer = tokio::time::timeout(BOUND, call).await.expect("bounded");
    assert_eq!(answer.status.as_u16(), 504);
    assert_eq!(answer.error_code(), "APIGW.0504");
    assert_eq!(fake.received.load(Ordering::SeqCst), 1);
    gw.running.stop().await;
}

/// An upstream closing in the middle of its answer is a 502 in the API's
/// format: nothing of the half answer reaches the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_closing_mid_body_is_502() {
    let fake = fake_upstream(Upstream::CloseMidBody).await;
    let gw = gateway_before(&fake, Duration::from_secs(10)).await;
    let answer = gw.call("op-east-finance", "GET", BUDGET, None).await;
    assert_eq!(answer.status.as_u16(), 502);
    assert_eq!(answer.error_code(), "APIGW.0502");
    assert!(
        !String::from_utf8_lossy(&answer.body).contains("budget"),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    gw.running.stop().await;
}

/// Shutdown under load: requests in flight finish (200), while new
/// connections are refused from the moment shutdown begins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight_and_takes_no_new_ones() {
    const IN_FLIGHT: usize = 5;
    let fake = fake_upstream(Upstream::AnswerWhenReleased).await;
    let gw = gateway_before(&fake, Duration::from_secs(30)).await;
    let creds = gw.credentials("op-east-finance");
    let mut calls = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (http, endpoint, creds) = (gw.client.clone(), gw.endpoint.clone(), creds.clone());
        calls.push(tokio::spawn(async move {
            client::call(&http, &endpoint, Some(&creds), "GET", BUDGET, b"", &[])
                .await
                .expect("an answer")
        }));
    }
    poll("every request at the upstream", BOUND, || async {
        (fake.received.load(Ordering::SeqCst) == IN_FLIGHT).then_some(())
    })
    .await;
    let addr = gw.running.addr;
    let stopping = tokio::spawn(gw.running.stop());
    poll("the listener closed", BOUND, || async {
        TcpStream::connect(addr).await.is_err().then_some(())
    })
    .await;
    fake.release.notify_waiters();
    for call in calls {
        let answer = tokio::time::timeout(BOUND, call)
            .await
            .expect("bounded")
            .unwrap();
        assert_eq!(
            answer.status.as_u16(),
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    tokio::time::timeout(BOUND, stopping)
        .await
        .expect("shutdown completes")
        .unwrap();
}

/// Makes every insert into `table` fail (the store dies between a write and
/// its record), or lifts that again.
async fn fail_inserts(gw: &TestGateway, table: &str, fail: bool) {
    let pool = gw.db.store.pool();
    let statements: Vec<String> = match (gw.db.store.backend(), fail) {
        (Backend::Sqlite, true) => vec![format!(
            "CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'injected'); END"
        )],
        (Backend::Sqlite, false) => vec![format!("DROP TRIGGER fail_{table}")],
        (Backend::Postgres, true) => vec![
            "CREATE OR REPLACE FUNCTION pgw_injected() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$ LANGUAGE plpgsql".into(),
            format!("CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION pgw_injected()"),
        ],
        (Backend::Postgres, false) => vec![format!("DROP TRIGGER fail_{table} ON {table}")],
    };
    for sql in statements {
        sqlx::query(&sql).execute(pool).await.unwrap();
    }
}

async fn scalar(gw: &TestGateway, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(gw.db.store.pool())
        .await
        .unwrap()
}

/// A write and its record (budget history, freeze history) commit together
/// or not at all: with the record's insert failing, the write is undone and
/// the client gets a server error, never a 200.
async fn a_write_and_its_record_commit_together(backend: Backend) {
    let gw = TestGateway::start(backend).await;
    let budget =
        "SELECT COALESCE(MAX(amount_cents), -1) FROM budgets WHERE customer_id = 'cust-acme'";
    let budget_records = "SELECT COUNT(*) FROM budget_records WHERE customer_id = 'cust-acme'";
    let frozen = "SELECT CAST(frozen AS INTEGER) FROM customers WHERE id = 'cust-ember'";
    let freeze_records = "SELECT COUNT(*) FROM freeze_records WHERE customer_id = 'cust-ember'";
    let before = [
        scalar(&gw, budget).await,
        scalar(&gw, budget_records).await,
        scalar(&gw, frozen).await,
        scalar(&gw, freeze_records).await,
    ];
    let set_budget = serde_json::json!({"customer_id": "cust-acme", "budget_amount": 600.00, "budget_type": "MONTHLY"});
    let freeze = serde_json::json!({"customer_ids": ["cust-ember"], "reason": "arrears", "freeze_type": "ACCOUNT"});

    fail_inserts(&gw, "budget_records", true).await;
    fail_inserts(&gw, "freeze_records", true).await;
    let answer = gw
        .call(
            "op-east-finance",
            "POST",
            "/v2/partners/sub-customers/budget",
            Some(set_budget.clone()),
        )
        .await;
    assert!(answer.status.is_server_error(), "{:?}", answer.status);
    let answer = gw
        .call(
            "op-dist-finance",
            "POST",
            "/v2/partners/sub-customers/freeze",
            Some(freeze.clone()),
        )
        .await;
    let all_refused = answer.status.is_server_error()
        || answer.json()["error_details"]
            .as_array()
            .is_some_and(|d| d.len() == 1);
    assert!(all_refused, "{:?} {}", answer.status, answer.json());
    let after = [
        scalar(&gw, budget).await,
        scalar(&gw, budget_records).await,
        scalar(&gw, frozen).await,
        scalar(&gw, freeze_records).await,
    ];
    assert_eq!(before, after, "nothing of either write remains");

    // With the records writable again, both writes and their records land.
    fail_inserts(&gw, "budget_records", false).await;
    fail_inserts(&gw, "freeze_records", false).await;
    let answer = gw
        .call(
            "op-east-finance",
            "POST",
            "/v2/partners/sub-customers/budget",
            Some(set_budget),
        )
        .await;
    assert_eq!(answer.status.as_u16(), 200);
    let answer = gw
        .call(
            "op-dist-finance",
            "POST",
            "/v2/partners/sub-customers/freeze",
            Some(freeze),
        )
        .await;
    assert_eq!(answer.status.as_u16(), 200);
    assert_eq!(scalar(&gw, budget).await, 60_000);
    assert_eq!(scalar(&gw, budget_records).await, before[1] + 1);
    assert_eq!(scalar(&gw, frozen).await, 1);
    assert_eq!(scalar(&gw, freeze_records).await, before[3] + 1);
    gw.running.stop().await;
}

crate::test_on_backends! {
    atomic_writes => a_write_and_its_record_commit_together;
}

/// Copies a directory tree.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The policy files rewritten every 100 ms (half a file, then all of it, as
/// an editor or a deploy that is not atomic writes) while requests flow: no
/// request fails and no decision changes, since the content never does:
/// a half-written set is refused and the last complete one keeps serving.
///
/// A file written in place is empty for a moment, and an empty file is
/// valid Cedar (as half of some files is): the reloader applies only a set
/// whose files did not change while it was loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_files_rewritten_under_load() {
    const REWRITES: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&crate::kit::policies_dir(), dir.path());
    let policies = dir.path().to_owned();
    super::operations::captured();
    let gw = TestGateway::start_with(Backend::Sqlite, |cfg| cfg.policies = policies).await;
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cedar"))
        .collect();
    files.sort();
    let writer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for i in 0..REWRITES {
            let file = &files[i % files.len()];
            let text = std::fs::read(file).unwrap();
            // Half a file for one tick, the whole of it for the next. The half
            // ends in an unfinished policy: cut inside a comment, the first
            // half alone could be a valid (smaller) set, which the gateway
            // cannot tell from an intended one (README: write atomically).
            tick.tick().await;
            let mut half = text[..text.len() / 2].to_vec();
            half.extend_from_slice(b"\npermit (");
            std::fs::write(file, &half).unwrap();
            tick.tick().await;
            std::fs::write(file, &text).unwrap();
        }
    });
    let cases = [
        ("op-east-finance", 200u16),
        ("op-west-admin", 403),
        ("op-dist-admin", 200),
    ];
    let mut answered = 0;
    while !writer.is_finished() {
        for (who, expected) in cases {
            let answer = gw.call(who, "GET", BUDGET, None).await;
            if answer.status.as_u16() != expected {
                let id = answer
                    .headers
                    .get("x-request-id")
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                let line = super::operations::captured()
                    .decision_lines()
                    .into_iter()
                    .find(|l| l["request_id"] == id.as_str());
                eprintln!("the decision record of that answer: {line:?}");
            }
            assert_eq!(
                answer.status.as_u16(),
                expected,
                "{who} (after {answered} answers): {}",
                String::from_utf8_lossy(&answer.body)
            );
            answered += 1;
        }
    }
    writer.await.unwrap();
    let status = gw.running.reloader.live.status();
    assert!(
        !status["last_reload"].is_null(),
        "the rewrites were reloaded: {status}"
    );
    assert_eq!(
        status["reloads_applied"], 0,
        "only the set the rewrites keep writing ever served: {status}"
    );
    eprintln!(
        "{answered} answers; during the rewrites {} half-written sets refused, {} applied",
        status["reloads_failed"], status["reloads_applied"]
    );
    gw.running.stop().await;
}

/// A policy file emptied and written back 150 ms later (`open(O_TRUNC)`,
/// then `write`, as an in-place write does, here a slow one): a reload asked
/// for in between must not serve the smaller set, even one fast enough to
/// read, load and prove it (its proof remembered from before) while the file
/// stays empty, which the check that the files did not change while loading
/// cannot see. The reload waits for the files to be quiet, then finds the
/// set serving.
#[test]
fn a_set_read_while_a_file_was_emptied_never_serves() {
    use partner_gateway::policy_tools::reload::{self, Outcome, PolicyReloader, Serving};
    const EMPTY_FOR: Duration = Duration::from_millis(150);
    let proved = |dir: &std::path::Path| {
        let invariants_dir = reload::invariants_dir(dir, None);
        let (engine, invariants) =
            reload::load_set(dir, &crate::kit::schema_dir(), &invariants_dir).unwrap();
        let verification = reload::prove(&engine, &invariants, Duration::from_secs(60));
        assert!(verification.proved(), "{:?}", verification.refusal);
        (engine, invariants_dir, verification)
    };
    let emptied = tempfile::tempdir().unwrap();
    copy_tree(&crate::kit::policies_dir(), emptied.path());
    std::fs::File::create(emptied.path().join("10-view.cedar")).unwrap();
    let (smaller, _, _) = proved(emptied.path());
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&crate::kit::policies_dir(), dir.path());
    let (engine, invariants_dir, verification) = proved(dir.path());
    let serving_version = engine.version().to_owned();
    assert_ne!(smaller.version(), serving_version);
    let live = Arc::new(arc_swap::ArcSwap::from_pointee(engine));
    let reloader = PolicyReloader::new(
        Serving {
            engine: live.clone(),
            invariants_dir,
            verification,
        },
        None,
        Duration::from_secs(60),
    );
    let file = dir.path().join("10-view.cedar");
    let text = std::fs::read(&file).unwrap();
    std::fs::File::create(&file).unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(EMPTY_FOR);
        std::fs::write(&file, &text).unwrap();
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcomes = runtime.block_on(reloader.reload("test"));
    writer.join().unwrap();
    for (_, outcome) in &outcomes {
        assert!(
            !matches!(outcome, Outcome::Applied { .. }),
            "a set applied while a file was emptied: {outcome:?}"
        );
    }
    assert_eq!(live.load().version(), serving_version);
}

/// Makes the SQLite database (its directory and files) immutable, or
/// writable again (`chattr`: as root, permissions would not stop writes).
fn immutable(db_url: &str, on: bool) {
    let file = db_url
        .strip_prefix("sqlite://")
        .and_then(|p| p.split('?').next())
        .expect("a SQLite URL");
    let file = std::path::Path::new(file);
    let mut paths = vec![file.parent().unwrap().to_owned()];
    for suffix in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", file.display()));
        if p.exists() {
            paths.push(p);
        }
    }
    let status = std::process::Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .args(&paths)
        .status()
        .expect("chattr (e2fsprogs) is installed");
    assert!(
        status.success(),
        "chattr on {paths:?} (needs root and ext4)"
    );
}

/// The SQLite file made read-only under a running gateway: writes are 503
/// in the API's format (not 500s, never a 200) and change nothing; once
/// writable again, writes succeed without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_sqlite_file_is_503() {
    let gw = TestGateway::start(Backend::Sqlite).await;
    let url = gw.db.url.clone();
    let budget =
        "SELECT COALESCE(MAX(amount_cents), -1) FROM budgets WHERE customer_id = 'cust-acme'";
    let before = scalar(&gw, budget).await;
    let set_budget = serde_json::json!({"customer_id": "cust-acme", "budget_amount": 600.00, "budget_type": "MONTHLY"});
    immutable(&url, true);
    let answer = gw
        .call(
            "op-east-finance",
            "POST",
            "/v2/partners/sub-customers/budget",
            Some(set_budget.clone()),
        )
        .await;
    let read = gw.call("op-east-finance", "GET", BUDGET, None).await;
    immutable(&url, false);
    assert_eq!(answer.status.as_u16(), 503, "{}", answer.json());
    assert_eq!(answer.error_code(), "APIGW.0503");
    assert!(
        [200, 503].contains(&read.status.as_u16()),
        "a read: {:?}",
        read.status
    );
    assert_eq!(scalar(&gw, budget).await, before);
    let answer = gw
        .call(
            "op-east-finance",
            "POST",
            "/v2/partners/sub-customers/budget",
            Some(set_budget),
        )
        .await;
    assert_eq!(answer.status.as_u16(), 200);
    gw.running.stop().await;
}

/// Past `--max-upstream-in-flight`, a request is shed at once (503 with
/// `Retry-After`) instead of queueing behind a slow store; the request in
/// flight is answered when the store answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_upstream_bound_requests_are_shed_at_once() {
    let fake = fake_upstream(Upstream::AnswerWhenReleased).await;
    let url = fake.url.clone();
    let gw = TestGateway::start_with(Backend::Sqlite, move |cfg| {
        cfg.upstream = Some(url);
        cfg.assertion_key = Some(
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [1u8; 32]).into(),
        );
        cfg.limits.max_upstream_in_flight = 1;
    })
    .await;
    let creds = gw.credentials("op-east-finance");
    let (http, endpoint) = (gw.client.clone(), gw.endpoint.clone());
    let first = tokio::spawn(async move {
        client::call(&http, &endpoint, Some(&creds), "GET", BUDGET, b"", &[])
            .await
            .expect("an answer")
    });
    poll("the first request at the upstream", BOUND, || async {
        (fake.received.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let shed = tokio::time::timeout(BOUND, gw.call("op-east-admin", "GET", BUDGET, None))
        .await
        .expect("answered at once");
    assert_eq!(shed.status.as_u16(), 503);
    assert_eq!(shed.error_code(), "APIGW.0503");
    assert_eq!(shed.headers.get("retry-after").unwrap(), "1");
    let record = &gw.running.gateway.recent_decisions.newest_first()[0];
    assert_eq!(record["refused"], "shed", "{record}");
    fake.release.notify_waiters();
    let first = tokio::time::timeout(BOUND, first)
        .await
        .expect("bounded")
        .unwrap();
    assert_eq!(first.status.as_u16(), 200);
    assert_eq!(
        fake.received.load(Ordering::SeqCst),
        1,
        "the shed one never reached it"
    );
    gw.running.stop().await;
}
