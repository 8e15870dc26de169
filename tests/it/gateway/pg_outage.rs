//! PostgreSQL stopped and restarted under a running gateway: every request
//! in between is refused with 503 (never an allow), the gateway recovers
//! without a restart, and a revocation made after the change feed
//! reconnected is heard. The cluster is private to the test (its own data
//! directory and port, the binaries `.ci/postgres.sh` installs), since
//! stopping the shared one would fail every other test.

use super::operations::admin;
use super::{poll, TestGateway, NOTIFIED};
use partner_gateway::store::Backend;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(30);
const BUDGET: &str = "/v2/partners/sub-customers/budget?customer_id=cust-acme";

struct Cluster {
    bin: PathBuf,
    data: tempfile::TempDir,
    port: u16,
}

/// Runs a PostgreSQL binary, as the `postgres` user when we are root.
fn pg(bin: &Path, args: &[&str]) {
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let status = if root {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin)
            .args(args)
            .status()
    } else {
        Command::new(bin).args(args).status()
    }
    .unwrap();
    assert!(status.success(), "{} {args:?}", bin.display());
}

impl Cluster {
    fn new() -> Cluster {
        let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed (.ci/postgres.sh)")
            .map(|e| e.unwrap().path().join("bin"))
            .collect();
        bins.sort();
        let bin = bins.pop().expect("a PostgreSQL version");
        let data = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = data.path().to_str().unwrap().to_owned();
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres", &dir])
            .status();
        pg(
            &bin.join("initdb"),
            &["-D", &dir, "-A", "trust", "-U", "pgw"],
        );
        let cluster = Cluster { bin, data, port };
        cluster.start();
        cluster
    }

    fn dir(&self) -> String {
        self.data.path().to_str().unwrap().to_owned()
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir()
        );
        let log = format!("{}/server.log", self.dir());
        pg(
            &self.bin.join("pg_ctl"),
            &["-D", &self.dir(), "-l", &log, "-w", "-o", &options, "start"],
        );
    }

    fn stop(&self) {
        pg(
            &self.bin.join("pg_ctl"),
            &["-D", &self.dir(), "-w", "-m", "fast", "stop"],
        );
    }

    fn url(&self) -> String {
        format!("postgres://pgw@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.dir(), "-m", "immediate", "stop"])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_restarted_under_load() {
    let cluster = Cluster::new();
    let url = cluster.url();
    let gw = TestGateway::start_with(Backend::Sqlite, |cfg| {
        cfg.database.database_url = url;
    })
    .await;
    let status = || async {
        gw.call("op-east-finance", "GET", BUDGET, None)
            .await
            .status
            .as_u16()
    };
    assert_eq!(status().await, 200);

    cluster.stop();
    // Until the database is back, every answer is 503: never an allow.
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(status().await);
    }
    assert!(seen.iter().all(|s| *s == 503), "{seen:?}");
    // The lost feed is noticed at once: no cached row is trusted while
    // notifications cannot arrive.
    poll("the change feed reported lost", NOTIFIED, || async {
        (!gw.running
            .gateway
            .authorizer
            .entities
            .change_feed_connected())
        .then_some(())
    })
    .await;

    cluster.start();
    poll("recovery without a restart", BOUND, || async {
        let s = status().await;
        assert!(s == 200 || s == 503, "{s} while recovering");
        (s == 200).then_some(())
    })
    .await;
    // The change feed reconnected: a revocation made in the database is heard.
    poll("the change feed back", BOUND, || async {
        gw.running
            .gateway
            .authorizer
            .entities
            .change_feed_connected()
            .then_some(())
    })
    .await;
    assert_eq!(status().await, 200, "the operator's row is cached again");
    let pool = sqlx::AnyPool::connect(&cluster.url()).await.unwrap();
    sqlx::query("UPDATE operators SET status = 'disabled' WHERE id = 'op-east-finance'")
        .execute(&pool)
        .await
        .unwrap();
    // Heard through the change feed, as before the restart: milliseconds,
    // not the entity cache's 5 s TTL (the feed once stayed "connected"
    // while sqlx reconnected it, and notifications sent meanwhile were lost).
    poll("the revocation heard", NOTIFIED, || async {
        (status().await == 403).then_some(())
    })
    .await;
    gw.running.stop().await;
}

/// PostgreSQL turned read-only under a running gateway (what a failover to a
/// standby or `default_transaction_read_only` does): `/readyz` says not ready
/// and why, writes are 503 in the API's format and change nothing, reads go
/// on; once writable again, both recover without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_postgres_is_not_ready() {
    let cluster = Cluster::new();
    let gw = TestGateway::start_with(Backend::Sqlite, |cfg| {
        cfg.database.database_url = cluster.url();
    })
    .await;
    let pool = sqlx::AnyPool::connect(&cluster.url()).await.unwrap();
    let read_only = |on: bool| {
        let pool = pool.clone();
        async move {
            let setting = if on { "on" } else { "off" };
            sqlx::query(&format!(
                "ALTER SYSTEM SET default_transaction_read_only = {setting}"
            ))
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query("SELECT pg_reload_conf()")
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    let budget_cents = || async {
        let (cents,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(MAX(amount_cents), -1) FROM budgets WHERE customer_id = 'cust-acme'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        cents
    };
    let set_budget = || {
        gw.call(
            "op-east-finance",
            "POST",
            "/v2/partners/sub-customers/budget",
            Some(serde_json::json!({"customer_id": "cust-acme", "budget_amount": 600, "budget_type": "MONTHLY"})),
        )
    };
    assert_eq!(admin(&gw, "GET", "/readyz", None).await.status, 200);
    let before = budget_cents().await;

    read_only(true).await;
    let ready = poll("not ready while read-only", BOUND, || async {
        let answer = admin(&gw, "GET", "/readyz", None).await;
        (answer.status == 503).then(|| answer.json())
    })
    .await;
    let error = ready["database"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("read-only"), "{ready}");
    let answer = set_budget().await;
    assert_eq!(answer.status.as_u16(), 503, "{}", answer.json());
    assert_eq!(answer.error_code(), "APIGW.0503");
    assert_eq!(
        budget_cents().await,
        before,
        "a refused write changed nothing"
    );
    let read = gw.call("op-east-finance", "GET", BUDGET, None).await;
    assert_eq!(read.status.as_u16(), 200, "reads go on");

    read_only(false).await;
    poll("ready again", BOUND, || async {
        (admin(&gw, "GET", "/readyz", None).await.status == 200).then_some(())
    })
    .await;
    assert_eq!(set_budget().await.status.as_u16(), 200);
    assert_eq!(budget_cents().await, 60000);
    gw.running.stop().await;
}
