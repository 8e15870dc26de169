//! The mixed soak of issue 15: the real gateway binary under a realistic mix
//! for a long time, with revocations in the middle.
//!
//! `cargo run --release --example soak -- [--seconds 600] [--workers 8]
//! [--revoke-every 20] [--database-url URL]` starts `partner-gateway serve
//! --demo --demo-reset --plaintext` (the binary beside this example, on a
//! SQLite file in a temporary directory unless `--database-url` names
//! another database, which is reset to the demo data), then for `--seconds`:
//!
//! - `--workers` clients send, in the shares of a partner's day, budget reads
//!   (40 %), customer lists (15 %), a customer's own orders (10 %), budget
//!   writes (10 %), calls the policies deny (10 %), and assume-role sessions
//!   created, used, ended and tried again (15 %); each call has one expected
//!   status and any other is counted as unexpected;
//! - every `--revoke-every` seconds a revocation, alternately: an operator
//!   disabled with `partner-gateway operators disable` (its key, a token and a
//!   session held from before must be refused, and after `enable` its key
//!   works again while the token and session stay dead), and a customer
//!   revoking its authorization through the API (a live session on it must be
//!   refused). A revocation must be heard on the next request on SQLite, and
//!   within 2 s on PostgreSQL (LISTEN/NOTIFY); after it is heard, no allow;
//! - the gateway's resident memory is sampled every second.
//!
//! It prints a summary in Markdown (BENCHMARKS.md keeps the figures) and exits
//! non-zero on any unexpected status, any allow after a revocation, or
//! memory growing by more than 10 % from the first half to the second of
//! what is sampled after the first 40 s (runs of 100 s or more: until then
//! the store's record of accepted assertions is still filling, as it should).
//! `.ci/run` runs a short smoke of it.

use anyhow::{bail, Context};
use partner_gateway::client::{self, Answer, Credentials, HttpsClient, Trust};
use rand::Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MASTER_KEY: &str = "c29hay1tYXN0ZXIta2V5LWZvci10aGUtc29hay0zMiE="; // 32 bytes
const BUDGET: &str = "/v2/partners/sub-customers/budget";
const LIST: &str = "/v2/partners/sub-customers/query";
const OWN_RESOURCES: &str = "/v2/customer/resources";
/// How long PostgreSQL's change feed may take to bring a revocation.
const NOTIFIED: Duration = Duration::from_secs(2);

struct Options {
    seconds: u64,
    workers: usize,
    revoke_every: u64,
    database_url: Option<String>,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let mut o = Options {
            seconds: 600,
            workers: 8,
            revoke_every: 20,
            database_url: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(name) = args.next() {
            let value = args
                .next()
                .with_context(|| format!("{name} needs a value"))?;
            match name.as_str() {
                "--seconds" => o.seconds = value.parse().context("--seconds")?,
                "--workers" => o.workers = value.parse().context("--workers")?,
                "--revoke-every" => o.revoke_every = value.parse().context("--revoke-every")?,
                "--database-url" => o.database_url = Some(value),
                _ => bail!("unknown option {name} (see the top of examples/soak.rs)"),
            }
        }
        Ok(o)
    }
}

/// Calls by kind: (as expected, unexpected), and the first unexpected ones.
#[derive(Default)]
struct Tally {
    calls: BTreeMap<&'static str, (u64, u64)>,
    unexpected: Vec<String>,
    revocations: u64,
    allows_after_revocation: u64,
    slowest_heard: Duration,
}

#[derive(Clone)]
struct Soak {
    http: HttpsClient,
    endpoint: String,
    keys: Arc<HashMap<String, Credentials>>,
    tally: Arc<Mutex<Tally>>,
    postgres: bool,
}

/// A call's signer: a demo principal's key, temporary credentials, or a token.
enum As<'a> {
    Key(&'a str),
    Session(&'a Credentials),
    Token(&'a str),
}

impl Soak {
    async fn call(&self, who: As<'_>, method: &str, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (creds, token) = match who {
            As::Key(id) => (Some(&self.keys[id]), None),
            As::Session(c) => (Some(c), None),
            As::Token(t) => (None, Some(t)),
        };
        let extra: Vec<(&str, &str)> = token.map(|t| ("X-Auth-Token", t)).into_iter().collect();
        match client::call(
            &self.http,
            &self.endpoint,
            creds,
            method,
            path,
            body.as_bytes(),
            &extra,
        )
        .await
        {
            Ok(answer) => answer,
            // A transport failure is an unexpected answer like any other.
            Err(e) => Answer {
                status: http::StatusCode::from_u16(599).unwrap(),
                headers: Default::default(),
                body: e.to_string().into(),
            },
        }
    }

    /// Counts `answer` under `kind`; whether it was the expected status.
    fn expect(&self, kind: &'static str, answer: &Answer, want: u16) -> bool {
        let ok = answer.status.as_u16() == want;
        let mut tally = self.tally.lock().unwrap();
        let entry = tally.calls.entry(kind).or_default();
        if ok {
            entry.0 += 1;
        } else {
            entry.1 += 1;
            if tally.unexpected.len() < 20 {
                let got = format!(
                    "{kind}: {} (expected {want}): {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                );
                tally.unexpected.push(got);
            }
        }
        ok
    }

    /// One call of a worker, drawn from the day's shares.
    async fn one_call(&self, rng: &mut rand::rngs::StdRng) {
        let roll = rng.gen_range(0..100);
        let budget_of = |id: &str| format!("{BUDGET}?customer_id={id}");
        match roll {
            0..40 => {
                let a = self
                    .call(
                        As::Key("op-east-finance"),
                        "GET",
                        &budget_of("cust-acme"),
                        None,
                    )
                    .await;
                self.expect("read budget", &a, 200);
            }
            40..55 => {
                let a = self
                    .call(
                        As::Key("op-dist-admin"),
                        "POST",
                        LIST,
                        Some(json!({"limit": 10})),
                    )
                    .await;
                self.expect("list customers", &a, 200);
            }
            55..65 => {
                let a = self
                    .call(As::Key("cust-acme"), "GET", "/v2/customer/orders", None)
                    .await;
                self.expect("own orders", &a, 200);
            }
            65..75 => {
                let amount = rng.gen_range(600..900);
                let body = json!({"customer_id": "cust-acme", "budget_amount": amount, "budget_type": "MONTHLY"});
                let a = self
                    .call(As::Key("op-east-finance"), "POST", BUDGET, Some(body))
                    .await;
                self.expect("write budget", &a, 200);
            }
            75..85 => {
                // Another partner's customer, and one that does not exist: the same 403.
                let id = if roll % 2 == 0 {
                    "cust-kite"
                } else {
                    "cust-nobody"
                };
                let a = self
                    .call(As::Key("op-dist-admin"), "GET", &budget_of(id), None)
                    .await;
                self.expect("denied", &a, 403);
            }
            _ => self.session_life().await,
        }
    }

    /// Switch in, act, switch back, and the ended session refused.
    async fn session_life(&self) {
        let created = self.assume("op-east-ops", "cust-acme").await;
        if !self.expect("session create", &created, 201) {
            return;
        }
        let (id, creds) = session_of(&created);
        let used = self
            .call(As::Session(&creds), "GET", OWN_RESOURCES, None)
            .await;
        self.expect("session use", &used, 200);
        let path = format!("/v3/partner-sessions/{id}");
        let ended = self
            .call(As::Key("op-east-ops"), "DELETE", &path, None)
            .await;
        self.expect("session end", &ended, 204);
        let after = self
            .call(As::Session(&creds), "GET", OWN_RESOURCES, None)
            .await;
        self.expect("ended session refused", &after, 403);
    }

    async fn assume(&self, operator: &str, customer: &str) -> Answer {
        let body = json!({"customer_id": customer, "scopes": ["om"], "duration_seconds": 1800});
        self.call(
            As::Key(operator),
            "POST",
            "/v3/partner-sessions",
            Some(body),
        )
        .await
    }

    /// After a revocation: `check` (a call with the dead credential) must be
    /// refused on the next request (SQLite) or within [`NOTIFIED`]
    /// (PostgreSQL), and then stay refused.
    async fn heard(&self, what: &'static str, check: impl AsyncFn() -> Answer) {
        let revoked = Instant::now();
        loop {
            let answer = check().await;
            let allowed = answer.status.is_success();
            if !allowed {
                let waited = revoked.elapsed();
                {
                    let mut tally = self.tally.lock().unwrap();
                    tally.slowest_heard = tally.slowest_heard.max(waited);
                }
                let again = check().await;
                if again.status.is_success() {
                    self.violation(what, &again);
                }
                return;
            }
            if !self.postgres || revoked.elapsed() > NOTIFIED {
                self.violation(what, &answer);
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn violation(&self, what: &str, answer: &Answer) {
        let mut tally = self.tally.lock().unwrap();
        tally.allows_after_revocation += 1;
        tally.unexpected.push(format!(
            "{what}: allowed after its revocation ({})",
            answer.status
        ));
    }

    /// An operator disabled (and enabled again) with the credentials CLI.
    async fn operator_cycle(&self, cli: &Cli) -> anyhow::Result<()> {
        let op = "op-dist-ops";
        let issued = self
            .call(
                As::Key(op),
                "POST",
                "/v3/auth/tokens",
                Some(json!({"duration_seconds": 3600})),
            )
            .await;
        self.expect("revocation setup", &issued, 201);
        let token = issued
            .headers
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let created = self.assume(op, "cust-nova").await;
        if !self.expect("revocation setup", &created, 201) {
            return Ok(());
        }
        let (_, session) = session_of(&created);
        let by_key = async || {
            self.call(As::Key(op), "POST", LIST, Some(json!({"limit": 1})))
                .await
        };
        let by_token = async || {
            self.call(As::Token(&token), "POST", LIST, Some(json!({"limit": 1})))
                .await
        };
        let by_session = async || {
            self.call(As::Session(&session), "GET", OWN_RESOURCES, None)
                .await
        };
        for a in [by_key().await, by_token().await, by_session().await] {
            self.expect("revocation setup", &a, 200);
        }

        cli.run(&["operators", "disable", op])?;
        self.tally.lock().unwrap().revocations += 1;
        self.heard("disabled operator's key", by_key).await;
        self.heard("disabled operator's token", by_token).await;
        self.heard("disabled operator's session", by_session).await;

        cli.run(&["operators", "enable", op])?;
        let enabled = Instant::now();
        loop {
            let a = by_key().await;
            if a.status == 200 || !self.postgres || enabled.elapsed() > NOTIFIED {
                self.expect("enabled operator's key", &a, 200);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.expect("old token stays dead", &by_token().await, 401);
        self.expect("old session stays dead", &by_session().await, 403);
        Ok(())
    }

    /// A customer consents, the partner switches in, the customer revokes.
    async fn authorization_cycle(&self) {
        let (op, customer) = ("op-east-ops", "cust-birch");
        let requested = self
            .call(
                As::Key(op),
                "POST",
                &format!("/v2/partners/sub-customers/{customer}/authorizations"),
                Some(json!({"scopes": ["om"], "duration_days": 30})),
            )
            .await;
        if !self.expect("revocation setup", &requested, 201) {
            return;
        }
        let auth = requested.json()["authorization_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let consent = |verb: &str| format!("/v2/customers/partner-authorizations/{auth}/{verb}");
        let approved = self
            .call(As::Key(customer), "POST", &consent("approve"), None)
            .await;
        self.expect("revocation setup", &approved, 200);
        let created = self.assume(op, customer).await;
        if !self.expect("revocation setup", &created, 201) {
            return;
        }
        let (_, session) = session_of(&created);
        let by_session = async || {
            self.call(As::Session(&session), "GET", OWN_RESOURCES, None)
                .await
        };
        self.expect("revocation setup", &by_session().await, 200);

        let revoked = self
            .call(As::Key(customer), "POST", &consent("revoke"), None)
            .await;
        self.expect("revocation setup", &revoked, 200);
        self.tally.lock().unwrap().revocations += 1;
        self.heard("session on a revoked authorization", by_session)
            .await;
    }
}

fn session_of(created: &Answer) -> (String, Credentials) {
    let v = created.json();
    let c = &v["credential"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let creds = Credentials {
        access_key: text(&c["access"]),
        secret_key: text(&c["secret"]),
        security_token: Some(text(&c["securitytoken"])),
    };
    (text(&v["session_id"]), creds)
}

/// The gateway binary and its database, for the credentials CLI.
struct Cli {
    bin: PathBuf,
    database_url: String,
}

impl Cli {
    fn run(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = Command::new(&self.bin)
            .args(args)
            .args([
                "--database-url",
                &self.database_url,
                "--master-key",
                MASTER_KEY,
            ])
            .output()?;
        if !out.status.success() {
            bail!("{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }
}

/// The demo principals' keys (operators and customers that have one).
fn demo_keys() -> HashMap<String, Credentials> {
    let demo: Value = serde_json::from_str(include_str!("demo.json")).expect("demo.json");
    let mut keys = HashMap::new();
    for kind in ["operators", "customers"] {
        for p in demo[kind].as_array().into_iter().flatten() {
            if let (Some(ak), Some(sk)) = (p["access_key"].as_str(), p["secret_key"].as_str()) {
                let creds = Credentials {
                    access_key: ak.to_owned(),
                    secret_key: sk.to_owned(),
                    security_token: None,
                };
                keys.insert(p["id"].as_str().unwrap_or_default().to_owned(), creds);
            }
        }
    }
    keys
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let dir = tempfile::tempdir()?;
    // The gateway binary of the same build: target/<profile>/partner-gateway.
    let bin = std::env::current_exe()?
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("partner-gateway"))
        .context("where is this example?")?;
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: cargo build first",
        bin.display()
    );
    let database_url = options
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/soak.db", dir.path().display()));
    let (port, admin_port) = (free_port()?, free_port()?);
    let root = env!("CARGO_MANIFEST_DIR");
    let log = std::fs::File::create(dir.path().join("gateway.log"))?;
    let child = Command::new(&bin)
        .args([
            "serve",
            "--demo",
            "--demo-reset",
            "--plaintext",
            "--no-policy-watch",
        ])
        // The gateway as shipped, its rate limit on, at a rate the soak's
        // principals never reach: it measures the gateway, not refusals.
        .args(["--rate-limit", "1000000"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .args(["--database-url", &database_url, "--master-key", MASTER_KEY])
        .args(["--policies", &format!("{root}/policies")])
        .args(["--schema", &format!("{root}/schema")])
        .args([
            "--decision-log",
            &dir.path().join("decisions.log").display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let gateway = Gateway(child);
    let pid = gateway.0.id();
    let http = client::https_client(&Trust::System)?;
    let ready = format!("http://127.0.0.1:{admin_port}");
    let started = Instant::now();
    while client::call(&http, &ready, None, "GET", "/readyz", b"", &[])
        .await
        .map_or(true, |a| a.status != 200)
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the gateway did not get ready; its log: {}",
            dir.path().join("gateway.log").display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let soak = Soak {
        http,
        endpoint: format!("http://127.0.0.1:{port}"),
        keys: Arc::new(demo_keys()),
        tally: Arc::default(),
        postgres: database_url.starts_with("postgres"),
    };
    let cli = Cli { bin, database_url };
    // auth-birch waits for consent: turned down, so that the partner may ask anew.
    let path = "/v2/customers/partner-authorizations/auth-birch/reject";
    let rejected = soak.call(As::Key("cust-birch"), "POST", path, None).await;
    soak.expect("revocation setup", &rejected, 200);

    let begun = Instant::now();
    let deadline = begun + Duration::from_secs(options.seconds);
    let mut tasks = Vec::new();
    for w in 0..options.workers {
        let soak = soak.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(w as u64);
            while Instant::now() < deadline {
                soak.one_call(&mut rng).await;
            }
        }));
    }
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        while Instant::now() < deadline {
            samples.extend(rss_kib(pid));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        samples
    });
    let mut cycle = 0u64;
    let mut next = begun + Duration::from_secs(options.revoke_every.min(options.seconds / 2));
    while next < deadline {
        tokio::time::sleep_until(next.into()).await;
        if cycle.is_multiple_of(2) {
            soak.operator_cycle(&cli).await?;
        } else {
            soak.authorization_cycle().await;
        }
        cycle += 1;
        next += Duration::from_secs(options.revoke_every.max(1));
    }
    for t in tasks {
        t.await?;
    }
    let rss = sampler.await?;
    let elapsed = begun.elapsed();
    let metrics = client::call(&soak.http, &ready, None, "GET", "/metrics", b"", &[]).await?;
    let metrics = String::from_utf8_lossy(&metrics.body).into_owned();
    drop(gateway);
    report(&options, &soak, &rss, elapsed, &metrics)
}

/// A counter's value in Prometheus text (0 when absent).
fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn report(
    options: &Options,
    soak: &Soak,
    rss: &[u64],
    elapsed: Duration,
    metrics: &str,
) -> anyhow::Result<()> {
    let tally = soak.tally.lock().unwrap();
    let total: u64 = tally.calls.values().map(|(ok, bad)| ok + bad).sum();
    let unexpected: u64 = tally.calls.values().map(|(_, bad)| bad).sum();
    let backend = if soak.postgres {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "## Mixed soak: {} s, {} workers, {backend}\n",
        elapsed.as_secs(),
        options.workers
    );
    println!("| calls | as expected | unexpected |\n|---|---:|---:|");
    for (kind, (ok, bad)) in &tally.calls {
        println!("| {kind} | {ok} | {bad} |");
    }
    println!(
        "\n{total} calls ({:.0}/s), {unexpected} unexpected; {} revocations, slowest heard after {:?}, {} allows after a revocation",
        total as f64 / elapsed.as_secs_f64(),
        tally.revocations,
        tally.slowest_heard,
        tally.allows_after_revocation
    );
    let reused = counter(metrics, "pgw_decisions_reused_total");
    let taken = counter(metrics, "pgw_decisions_taken_total");
    println!(
        "Decisions reused: {reused} of {} reusable ({:.1} %)",
        reused + taken,
        100.0 * reused / (reused + taken).max(1.0)
    );
    let third = rss.len() / 3;
    let mean = |s: &[u64]| s.iter().sum::<u64>() as f64 / s.len().max(1) as f64 / 1024.0;
    let (first, middle, last) = (
        mean(&rss[..third]),
        mean(&rss[third..2 * third]),
        mean(&rss[2 * third..]),
    );
    let peak = rss.iter().max().copied().unwrap_or(0) as f64 / 1024.0;
    println!(
        "RSS (MiB, mean of each third of the run): {first:.1} → {middle:.1} → {last:.1}; peak {peak:.1}"
    );
    for line in &tally.unexpected {
        println!("- {line}");
    }
    // Growth is judged after the store's record of accepted assertions has
    // filled: it holds each for an assertion's lifetime and 5 s more, so it
    // grows for that long under any load, then stays. The samples after
    // that are halved, and the later half may not be 10 % above the earlier.
    let filled = partner_gateway::assertion::ASSERTION_TTL_SECS as usize + 10;
    let grew = match rss.get(filled..) {
        Some(after) if after.len() >= 60 => {
            let half = after.len() / 2;
            mean(&after[half..]) > mean(&after[..half]) * 1.10
        }
        _ => false,
    };
    if unexpected > 0 || tally.allows_after_revocation > 0 || grew {
        bail!(
            "soak failed: {unexpected} unexpected, {} allows after revocation, memory {}",
            tally.allows_after_revocation,
            if grew { "grew" } else { "flat" }
        );
    }
    Ok(())
}
