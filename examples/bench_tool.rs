//! Helpers of `bench/run`, the load benchmark:
//!
//! - `cert DIR`: a self-signed certificate for 127.0.0.1 (`DIR/dev-cert.pem`,
//!   `DIR/dev-key.pem`), the one the gateway generates for development, so
//!   that the gateway, nginx and the bare proxy serve TLS with the same key.
//! - `db --customers N --out FILE --master-key B64`: a copy of the generated
//!   N-customer store (`benches/support/bigstore.rs`, cached under
//!   `<target>/bench-data/`) with the demo organisation and one credential
//!   per generated distributor's finance operator imported (secrets sealed
//!   under the gateway's master key).
//! - `script --host HOST:PORT --out FILE ...`: a wrk Lua script replaying
//!   requests signed now with SDK-HMAC-SHA256, exactly as the official SDK
//!   signs (`partner_gateway::signing::sign`; `host` and `x-sdk-date`
//!   signed). The gateway keeps no nonce, so a signed request is valid for
//!   replay within its ±15-minute clock window: `bench/run` writes the script
//!   right before each load run (`--headers-out FILE` also writes the first
//!   request's headers, one per line, for `curl -H @FILE`). Either one route (`--path`, `--ak`, `--sk`)
//!   or `--spread K --customers N`: K requests, each `GET` of a different
//!   generated customer's budget as its distributor's finance operator.
//!   With `--assert-as OPERATOR --assertion-key B64 --database-url URL`,
//!   each request also carries the identity assertion the gateway would
//!   send for that operator, so the domain store can be loaded directly
//!   (and through proxies that add nothing) with the same requests. The
//!   store accepts an assertion once, so with `--fresh-assertions N` (and
//!   `--path`) the script reads N distinct ones, signed now for request ids
//!   `bench-0`.., from `FILE.assertions`, the next one for each request;
//!   `--headers-out` gets one more of its own.
//! - `report POINTS.csv [SOAK.csv]`: the Markdown tables of BENCHMARKS.md
//!   (per-point numbers, the ratios, and the targets checked).
//! - `targets RESULTS-DIR`: issue 24's figures, each with its target and a
//!   verdict, from what the runs left in `bench/results/` (`points.csv`,
//!   `soak.csv`, `costs.tsv`, `decision.md`): a part not run this time keeps
//!   its last figures, under their own date.
//! - `pace --url URL --path P --ak AK --sk SK --rate R --seconds S`: a polite
//!   client: one signed GET at a time, R per second (each signed when sent),
//!   for S seconds; prints `PACE n p50_us p99_us non2xx` (the fairness
//!   figure: its p50 alone, and while another partner floods).

#[path = "../benches/support/bigstore.rs"]
#[allow(dead_code)]
mod bigstore;

use anyhow::Context;
use partner_gateway::assertion::{AssertionKey, CallerKind, Claims, Identity};
use partner_gateway::catalog;
use partner_gateway::crypto::SecretCipher;
use partner_gateway::signing;
use partner_gateway::store::seed::Fixture;
use partner_gateway::store::Store;
use serde_json::json;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

const BUDGET_ROUTE: &str = "/v2/partners/sub-customers/budget";

/// The credential `db` gives generated distributor `d`'s finance operator.
fn bench_credential(d: usize) -> (String, String, String) {
    (
        format!("op-dist-{d:02}-finance"),
        format!("BENCHDIST{d:02}FINANCE0"),
        format!("bench-secret-dist-{d:02}-finance-xxxxxxxxxxxx"),
    )
}

/// `--name value` options after the subcommand.
struct Opts(HashMap<String, String>);

impl Opts {
    fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Opts> {
        let mut map = HashMap::new();
        let mut args = args.peekable();
        while let Some(name) = args.next() {
            let key = name
                .strip_prefix("--")
                .with_context(|| format!("expected an --option, got {name:?}"))?;
            let value = args
                .next()
                .with_context(|| format!("{name} needs a value"))?;
            map.insert(key.to_owned(), value);
        }
        Ok(Opts(map))
    }

    fn get(&self, name: &str) -> anyhow::Result<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .with_context(|| format!("--{name} is required"))
    }

    fn opt(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("cert") => {
            let dir = PathBuf::from(args.next().context("cert DIR")?);
            let (cert, key) = partner_gateway::listener::development_certificate(&dir)?;
            println!("{} {}", cert.display(), key.display());
            Ok(())
        }
        Some("db") => db(Opts::parse(args)?).await,
        Some("script") => script(Opts::parse(args)?).await,
        Some("pace") => pace(Opts::parse(args)?).await,
        Some("targets") => {
            let dir = args.next().context("targets RESULTS-DIR")?;
            print!("{}", targets(std::path::Path::new(&dir))?);
            Ok(())
        }
        Some("report") => {
            let points = args.next().context("report POINTS.csv [SOAK.csv]")?;
            report(&points, args.next().as_deref())
        }
        _ => {
            eprintln!("usage: bench_tool cert DIR | db --customers N --out FILE --master-key B64 | script --host HOST:PORT --out FILE (--path P --ak AK --sk SK | --spread K --customers N) [--assert-as OP --assertion-key B64 --database-url URL [--fresh-assertions N]] | pace --url URL --path P --ak AK --sk SK --rate R --seconds S | report POINTS.csv [SOAK.csv] | targets RESULTS-DIR");
            std::process::exit(2);
        }
    }
}

async fn pace(opts: Opts) -> anyhow::Result<()> {
    use partner_gateway::client::{self, Credentials, Trust};
    let url = opts.get("url")?;
    let path = opts.get("path")?;
    let creds = Credentials {
        access_key: opts.get("ak")?.to_owned(),
        secret_key: opts.get("sk")?.to_owned(),
        security_token: None,
    };
    let rate: f64 = opts.get("rate")?.parse()?;
    let seconds: f64 = opts.get("seconds")?.parse()?;
    anyhow::ensure!(rate > 0.0 && seconds > 0.0, "--rate and --seconds above 0");
    let http = client::https_client(&Trust::System)?;
    let every = std::time::Duration::from_secs_f64(1.0 / rate);
    let end = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut latencies, mut non2xx) = (Vec::new(), 0u64);
    while std::time::Instant::now() < end {
        ticks.tick().await;
        let sent = std::time::Instant::now();
        let answer = client::call(&http, url, Some(&creds), "GET", path, b"", &[]).await?;
        latencies.push(sent.elapsed().as_micros() as u64);
        if !answer.status.is_success() {
            non2xx += 1;
        }
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!("PACE {} {} {} {non2xx}", latencies.len(), at(0.5), at(0.99));
    Ok(())
}

async fn db(opts: Opts) -> anyhow::Result<()> {
    let customers: usize = opts.get("customers")?.parse()?;
    let out = PathBuf::from(opts.get("out")?);
    let cipher = SecretCipher::from_base64(opts.get("master-key")?)?;
    let source = bigstore::sqlite(customers).await;
    // Everything into the main file, so that a plain copy is the whole database.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(source.pool())
        .await?;
    source.close().await;
    let from = bigstore::data_dir().join(format!("decision-{customers}.db"));
    std::fs::copy(&from, &out)
        .with_context(|| format!("copying {} to {}", from.display(), out.display()))?;
    let store = Store::connect(&format!("sqlite://{}", out.display()), cipher).await?;
    store
        .import_fixture(&Fixture::parse(partner_gateway::serve::DEMO_FIXTURE)?)
        .await?;
    let operators: Vec<_> = (0..bigstore::DISTRIBUTORS)
        .map(|d| {
            let (id, ak, sk) = bench_credential(d);
            json!({"id": id, "partner": format!("dist-{d:02}"), "name": format!("dist-{d:02} finance"),
                   "roles": ["finance"], "access_key": ak, "secret_key": sk})
        })
        .collect();
    store
        .import_fixture(&Fixture::parse(
            &json!({ "operators": operators }).to_string(),
        )?)
        .await?;
    store.close().await;
    println!("{}", out.display());
    Ok(())
}

/// One request to replay: path and query, and who signs it.
struct Planned {
    path_and_query: String,
    operator: String,
    ak: String,
    sk: String,
}

async fn script(opts: Opts) -> anyhow::Result<()> {
    let host = opts.get("host")?;
    let out = PathBuf::from(opts.get("out")?);
    let planned: Vec<Planned> = match opts.opt("spread") {
        Some(k) => {
            let k: usize = k.parse()?;
            let customers: usize = opts.get("customers")?.parse()?;
            anyhow::ensure!(
                k > 0 && customers >= 10,
                "--spread needs K > 0 and --customers of at least 10"
            );
            let stride = (customers / k).max(1);
            (0..k)
                .map(|n| {
                    let mut i = (n * stride) % customers;
                    if !bigstore::is_resale(i) {
                        i -= 1; // a referral customer has no budget; its neighbour is resale
                    }
                    let (operator, ak, sk) = bench_credential(i % bigstore::DISTRIBUTORS);
                    Planned {
                        path_and_query: format!(
                            "{BUDGET_ROUTE}?customer_id={}",
                            bigstore::customer_id(i)
                        ),
                        operator,
                        ak,
                        sk,
                    }
                })
                .collect()
        }
        None => vec![Planned {
            path_and_query: opts.get("path")?.to_owned(),
            operator: opts.opt("assert-as").unwrap_or_default().to_owned(),
            ak: opts.get("ak")?.to_owned(),
            sk: opts.get("sk")?.to_owned(),
        }],
    };

    // The identity assertion the gateway would send, per operator.
    let mut assertions: HashMap<String, String> = HashMap::new();
    let mut fresh: Option<(PathBuf, String)> = None;
    if let Some(key) = opts.opt("assertion-key") {
        let key = AssertionKey::from_base64(key)
            .map_err(|_| anyhow::anyhow!("--assertion-key: base64 of ≥ 32 bytes"))?;
        let store = Store::connect(opts.get("database-url")?, bigstore::cipher()).await?;
        for p in &planned {
            if assertions.contains_key(&p.operator) {
                continue;
            }
            let op = store
                .operator(&p.operator.as_str().into())
                .await?
                .with_context(|| format!("no operator {:?} (give --assert-as)", p.operator))?;
            let identity = Identity {
                kind: CallerKind::Operator,
                id: op.id.0.clone(),
                partner: Some(op.partner.0),
                customer: None,
                source_operator: None,
            };
            // What the gateway would have decided: the catalog's operation
            // and its targets.
            let (path, query) = p
                .path_and_query
                .split_once('?')
                .unwrap_or((&p.path_and_query, ""));
            let (operation, params) = catalog::resolve(&http::Method::GET, path)
                .with_context(|| format!("no GET operation at {path}"))?;
            let request = catalog::Request::parse(
                operation.op,
                &catalog::Input {
                    params: &params,
                    query,
                    body: b"",
                },
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let principal = identity.principal();
            let resources = request
                .describe()
                .targets(&catalog::CallerRefs {
                    principal: &principal,
                    own_customer: None,
                    auth_method: "signature",
                })
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let claims = Claims {
                identity: std::borrow::Cow::Owned(identity),
                operation: operation.op.name().into(),
                method: "GET".into(),
                target: p.path_and_query.as_str().into(),
                body_sha256: signing::sha256_hex(b"").into(),
                resources: resources.into(),
                list: None,
                searchable: None,
                reveal: false,
                request_id: "bench".into(),
                exp: chrono::Utc::now().timestamp() + 3600,
            };
            // The store accepts an assertion once: with `--fresh-assertions N`,
            // N of them, each for its own request id, one per line of
            // `<out>.assertions`, which the script reads in turn.
            if let Some(n) = opts.opt("fresh-assertions") {
                let n: usize = n.parse().context("--fresh-assertions N")?;
                anyhow::ensure!(planned.len() == 1, "--fresh-assertions needs --path");
                let mut lines = String::with_capacity(n * 640);
                let mut claims = claims;
                for i in 0..n {
                    claims.request_id = format!("bench-{i}").into();
                    lines.push_str(&key.sign(&claims));
                    lines.push('\n');
                }
                let file = assertions_file(&out);
                std::fs::write(&file, lines)
                    .with_context(|| format!("writing {}", file.display()))?;
                claims.request_id = "bench-check".into();
                fresh = Some((file, key.sign(&claims)));
            } else {
                assertions.insert(p.operator.clone(), key.sign(&claims));
            }
        }
        store.close().await;
    }

    let date = chrono::Utc::now().format(signing::DATE_FORMAT).to_string();
    // Chunks of requests, each table in its own function: LuaJIT allows at
    // most 65536 constants per function.
    let mut lua = String::from(
        "-- generated by examples/bench_tool.rs: pre-signed requests, replayed in turn\n\
         local requests = {}\n\
         local function add(t) for _, r in ipairs(t) do requests[#requests + 1] = r end end\n",
    );
    let mut first_headers = String::new();
    for (k, p) in planned.iter().enumerate() {
        if k % 10_000 == 0 {
            if k > 0 {
                lua.push_str("} end)()\n");
            }
            // The leading `;` keeps Lua from reading `(` as a call of the line before.
            lua.push_str(";(function() add {\n");
        }
        let (path, query) = p
            .path_and_query
            .split_once('?')
            .unwrap_or((&p.path_and_query, ""));
        let headers = [("Host", host), ("X-Sdk-Date", date.as_str())];
        let authorization = signing::sign("GET", path, query, &headers, b"", &p.ak, &p.sk);
        let mut raw = format!(
            "GET {} HTTP/1.1\\r\\nHost: {host}\\r\\nX-Sdk-Date: {date}\\r\\nAuthorization: {authorization}\\r\\n",
            p.path_and_query
        );
        if let Some(assertion) = assertions.get(&p.operator) {
            let _ = write!(raw, "X-Pgw-Identity: {assertion}\\r\\n");
        }
        anyhow::ensure!(!raw.contains('"'), "a request would break the Lua string");
        if fresh.is_some() {
            // The blank line comes after the assertion the script appends.
            let _ = writeln!(lua, "\"{raw}\",");
        } else {
            let _ = writeln!(lua, "\"{raw}\\r\\n\",");
        }
        if k == 0 {
            first_headers = raw
                .split("\\r\\n")
                .skip(1)
                .filter(|h| !h.is_empty())
                .collect::<Vec<_>>()
                .join("\n")
                + "\n";
        }
    }
    if let Some((_, check)) = &fresh {
        // For one check by hand (curl), an assertion of its own.
        let _ = writeln!(first_headers, "X-Pgw-Identity: {check}");
    }
    if let Some(path) = opts.opt("headers-out") {
        std::fs::write(path, &first_headers).with_context(|| format!("writing {path}"))?;
    }
    lua.push_str(
        "} end)()\nlocal n = #requests\nlocal i = 0\n\
         function init(args) i = math.random(n) - 1 end\n",
    );
    match &fresh {
        None => lua.push_str("function request()\n  i = i % n + 1\n  return requests[i]\nend\n"),
        // Each request takes the next assertion; past the last, they start
        // over and the store refuses the replays (non-2xx, and bench/run stops).
        Some((file, _)) => {
            let file = file.display().to_string();
            anyhow::ensure!(!file.contains('"') && !file.contains('\\'), "an odd path");
            let _ = write!(
                lua,
                "local fresh = assert(io.open(\"{file}\", \"r\"))\n\
                 function request()\n\
                 \x20 local a = fresh:read(\"*l\")\n\
                 \x20 if not a then fresh:seek(\"set\"); a = fresh:read(\"*l\") end\n\
                 \x20 return requests[1] .. \"X-Pgw-Identity: \" .. a .. \"\\r\\n\\r\\n\"\n\
                 end\n"
            );
        }
    }
    lua.push_str(
        "\
         -- one machine-readable line for bench/run: req/s, p50, p99, p99.9 (µs), non-2xx, socket errors\n\
         function done(summary, latency, requests)\n\
         \x20 local e = summary.errors\n\
         \x20 io.write(string.format(\"BENCHRESULT %.1f %.1f %.1f %.1f %d %d\\n\",\n\
         \x20   summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),\n\
         \x20   latency:percentile(99.9), e.status, e.connect + e.read + e.write + e.timeout))\n\
         end\n",
    );
    std::fs::write(&out, lua).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{} ({} signed requests, X-Sdk-Date {date})",
        out.display(),
        planned.len()
    );
    Ok(())
}

/// Where `script --out FILE --fresh-assertions N` writes its assertions.
fn assertions_file(script: &std::path::Path) -> PathBuf {
    let mut name = script.as_os_str().to_owned();
    name.push(".assertions");
    PathBuf::from(name)
}

/// `targets RESULTS-DIR`: issue 24's table (see the module's doc).
fn targets(dir: &std::path::Path) -> anyhow::Result<String> {
    let path = |name: &str| dir.join(name).display().to_string();
    let mut out = String::from(
        "| figure | measured | target | verdict | measured on |\n|---|---|---:|---|---|\n",
    );
    // One row: what was measured and its verdict, or `None` when that part
    // of the benchmark never ran.
    let mut row = |figure: &str, target: &str, got: Option<(String, String)>, when: &str| {
        let (measured, verdict, when) = match got {
            Some((measured, verdict)) => (measured, verdict, when),
            None => ("not measured".to_owned(), "–".to_owned(), "–"),
        };
        let _ = writeln!(
            out,
            "| {figure} | {measured} | {target} | {verdict} | {when} |"
        );
    };

    // costs.tsv: `name value` lines written by bench/run's costs.
    let costs: HashMap<String, String> = std::fs::read_to_string(path("costs.tsv"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let num = |k: &str| costs.get(k).and_then(|v| v.parse::<f64>().ok());
    let costs_date = costs.get("date").map_or("–", String::as_str);
    for (key, figure, goal) in [
        (
            "cpu_gateway",
            "CPU added per request over the bare proxy, reused decision",
            10.0,
        ),
        (
            "cpu_gateway_new",
            "CPU added per request, new decision (warm slice, `--decision-cache-mib 0`)",
            30.0,
        ),
    ] {
        let got = num("cpu_bare").zip(num(key)).map(|(bare, gw)| {
            let added = gw - bare;
            (
                format!("{added:+.1} µs ({gw:.1} vs {bare:.1} µs)"),
                verdict(added <= goal, format!("by {:.1} µs", added - goal)),
            )
        });
        row(figure, &format!("≤ {goal} µs"), got, costs_date);
    }
    let got = num("allocations").map(|a| {
        let miss = format!("{:.1}×", a / 40.0);
        (format!("{a:.1}"), verdict(a <= 40.0, miss))
    });
    row(
        "allocations per request, reused path",
        "≤ 40",
        got,
        costs_date,
    );

    // points.csv and soak.csv: the load points and the soak, dated by machine.md.
    let points_date = std::fs::read_to_string(path("machine.md"))
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("- date: ").map(str::to_owned))
        })
        .unwrap_or_else(|| "–".into());
    let points = read_points(&path("points.csv")).unwrap_or_default();
    let peak = |u: &str, t: &str| {
        points
            .iter()
            .filter(|p| p.upstream == u && p.target == t)
            .map(|p| p.rps)
            .reduce(f64::max)
    };
    for (u, goal) in [("static", 0.7), ("store", 0.9)] {
        let got = peak(u, "gateway").zip(peak(u, "bare")).map(|(g, b)| {
            (
                format!("{:.2} ({g:.0} vs {b:.0} req/s)", g / b),
                verdict(g / b >= goal, format!("by {:.2}", goal - g / b)),
            )
        });
        let figure = format!("peak throughput / bare proxy, {u} upstream");
        row(&figure, &format!("≥ {goal}"), got, &points_date);
    }
    let one = |t: &str| {
        points
            .iter()
            .find(|p| p.upstream == "static" && p.target == t && p.conns == 1)
            .map(|p| p.p50)
    };
    let got = one("gateway").zip(one("bare")).map(|(g, b)| {
        (
            format!("{:+.0} µs ({g:.0} vs {b:.0} µs)", g - b),
            verdict(g - b <= 20.0, format!("by {:.0} µs", g - b - 20.0)),
        )
    });
    let figure = "added p50 over the bare proxy, one connection (static upstream)";
    row(figure, "≤ 20 µs", got, &points_date);
    let soak_max = read_soak(&path("soak.csv"))
        .unwrap_or_default()
        .into_iter()
        .map(|(_, mb)| mb)
        .reduce(f64::max);
    let got = soak_max.map(|mb| {
        (
            format!("{mb:.1} MB max"),
            verdict(mb <= 64.0, format!("by {:.1} MB", mb - 64.0)),
        )
    });
    row(
        "RSS, soak over many customers",
        "≤ 64 MB",
        got,
        &points_date,
    );

    // decision.md: the decision bench's own rows and verdicts, copied.
    let decision = std::fs::read_to_string(path("decision.md")).unwrap_or_default();
    let decision_date = decision
        .lines()
        .next()
        .and_then(|l| l.split(" on ").nth(1))
        .map(|d| d.split(';').next().unwrap_or(d).trim().to_owned())
        .unwrap_or_else(|| "–".into());
    let mut copied = 0;
    for line in decision.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, figure, measured, verdict, ..] = cells[..] else {
            continue;
        };
        let target = if figure.starts_with("warm decision p99") {
            "≤ 25 µs"
        } else if figure.ends_with("ahead of cedar-local-agent at p50 and p99") {
            "ahead"
        } else {
            continue;
        };
        let got = Some((measured.to_owned(), verdict.to_owned()));
        row(figure, target, got, &decision_date);
        copied += 1;
    }
    if copied == 0 {
        let figure = "new decision on a warm slice, p99; against cedar-local-agent";
        row(figure, "≤ 25 µs; ahead", None, "–");
    }
    Ok(out)
}

/// One load point of `bench/run`'s CSV.
struct Point {
    upstream: String,
    target: String,
    conns: u32,
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    errors: u64,
    rss_mb: Option<f64>,
}

/// The load points of `bench/run`'s CSV.
fn read_points(path: &str) -> anyhow::Result<Vec<Point>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let mut points = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        anyhow::ensure!(f.len() == 10, "bad CSV line {line:?}");
        points.push(Point {
            upstream: f[0].into(),
            target: f[1].into(),
            conns: f[2].parse()?,
            rps: f[3].parse()?,
            p50: f[4].parse()?,
            p99: f[5].parse()?,
            p999: f[6].parse()?,
            errors: f[7].parse::<u64>()? + f[8].parse::<u64>()?,
            rss_mb: f[9]
                .parse::<f64>()
                .ok()
                .filter(|kb| *kb > 0.0)
                .map(|kb| kb / 1024.0),
        });
    }
    Ok(points)
}

/// The soak's RSS samples: (seconds, MB).
fn read_soak(path: &str) -> anyhow::Result<Vec<(f64, f64)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .filter_map(|(t, kb)| Some((t.parse().ok()?, kb.trim().parse::<f64>().ok()? / 1024.0)))
        .collect())
}

/// A target's verdict: met, or by how much it was missed.
fn verdict(met: bool, miss: String) -> String {
    if met {
        "met".to_owned()
    } else {
        format!("missed: {miss}")
    }
}

/// `report POINTS.csv [SOAK.csv]`: the Markdown tables of BENCHMARKS.md.
fn report(points_csv: &str, soak_csv: Option<&str>) -> anyhow::Result<()> {
    let points = read_points(points_csv)?;
    let find = |u: &str, t: &str, c: u32| {
        points
            .iter()
            .find(|p| p.upstream == u && p.target == t && p.conns == c)
    };
    let mut upstreams: Vec<&str> = points.iter().map(|p| p.upstream.as_str()).collect();
    upstreams.dedup();
    let mut conns: Vec<u32> = points.iter().map(|p| p.conns).collect();
    conns.sort_unstable();
    conns.dedup();
    let us = |v: f64| {
        if v >= 10_000.0 {
            format!("{:.1} ms", v / 1000.0)
        } else {
            format!("{v:.0} µs")
        }
    };
    let mut out = String::new();
    for u in &upstreams {
        let _ = writeln!(out, "#### Upstream: {u}\n");
        out.push_str("| target | connections | requests/s | p50 | p99 | p99.9 | errors | proxy RSS (max) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for p in points.iter().filter(|p| p.upstream == *u) {
            let rss = p
                .rss_mb
                .map(|m| format!("{m:.1} MB"))
                .unwrap_or_else(|| "–".into());
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {rss} |",
                p.target,
                p.conns,
                p.rps,
                us(p.p50),
                us(p.p99),
                us(p.p999),
                p.errors
            );
        }
        out.push_str("\n| connections | gateway / bare proxy | gateway / nginx | gateway-tls / bare-tls | gateway-tls / nginx-tls | gateway added p50 / p99 over direct | gateway-tls added p50 / p99 over direct |\n|---:|---:|---:|---:|---:|---:|---:|\n");
        for &c in &conns {
            let ratio = |a: &str, b: &str| match (find(u, a, c), find(u, b, c)) {
                (Some(a), Some(b)) if b.rps > 0.0 => format!("{:.0} %", 100.0 * a.rps / b.rps),
                _ => "–".into(),
            };
            let added = |t: &str| match (find(u, t, c), find(u, "direct", c)) {
                (Some(g), Some(d)) => format!("{} / {}", us(g.p50 - d.p50), us(g.p99 - d.p99)),
                _ => "–".into(),
            };
            let _ = writeln!(
                out,
                "| {c} | {} | {} | {} | {} | {} | {} |",
                ratio("gateway", "bare"),
                ratio("gateway", "nginx"),
                ratio("gateway-tls", "bare-tls"),
                ratio("gateway-tls", "nginx-tls"),
                added("gateway"),
                added("gateway-tls")
            );
        }
        out.push('\n');
    }

    // The targets, checked on the static upstream (it isolates the
    // proxy), plaintext: throughput is each target's best over the
    // connection counts, added latency is at the lowest count (one request
    // in flight: no queueing).
    out.push_str("#### Against the targets (static upstream, plaintext)\n\n| target | measured | verdict |\n|---|---:|---|\n");
    let lo = conns.first().copied().unwrap_or(1);
    let peak = |t: &str| {
        points
            .iter()
            .filter(|p| p.upstream == "static" && p.target == t)
            .max_by(|a, b| a.rps.total_cmp(&b.rps))
    };
    if let (Some(g), Some(b), Some(n)) = (peak("gateway"), peak("bare"), peak("nginx")) {
        let share = g.rps / b.rps;
        let _ = writeln!(
            out,
            "| peak throughput ≥ 85 % of the bare proxy's | {:.0} % ({:.0} vs {:.0} req/s) | {} |",
            100.0 * share,
            g.rps,
            b.rps,
            verdict(
                share >= 0.85,
                format!("{:.0} points short", 100.0 * (0.85 - share))
            )
        );
        let _ = writeln!(
            out,
            "| peak throughput above nginx's | {:.0} % of nginx's {:.0} req/s | {} |",
            100.0 * g.rps / n.rps,
            n.rps,
            verdict(
                g.rps > n.rps,
                format!("{:.0} % below", 100.0 * (1.0 - g.rps / n.rps))
            )
        );
    }
    if let (Some(g), Some(d)) = (find("static", "gateway", lo), find("static", "direct", lo)) {
        let (a50, a99) = (g.p50 - d.p50, g.p99 - d.p99);
        let _ = writeln!(
            out,
            "| added latency p50 ≤ 100 µs ({lo} connection) | {} | {} |",
            us(a50),
            verdict(a50 <= 100.0, format!("by {}", us(a50 - 100.0)))
        );
        let _ = writeln!(
            out,
            "| added latency p99 ≤ 500 µs ({lo} connection) | {} | {} |",
            us(a99),
            verdict(a99 <= 500.0, format!("by {}", us(a99 - 500.0)))
        );
    }
    let max_rss = points
        .iter()
        .filter(|p| p.target.starts_with("gateway"))
        .filter_map(|p| p.rss_mb)
        .fold(0.0, f64::max);
    if max_rss > 0.0 {
        let _ = writeln!(
            out,
            "| gateway RSS ≤ 100 MB, load on one customer | {max_rss:.1} MB max | {} |",
            verdict(max_rss <= 100.0, format!("by {:.1} MB", max_rss - 100.0))
        );
    }
    let mut soak_text = String::new();
    if let Some(path) = soak_csv {
        let samples = read_soak(path)?;
        if samples.len() >= 4 {
            let soak_max = samples.iter().map(|s| s.1).fold(0.0, f64::max);
            let _ = writeln!(
                out,
                "| gateway RSS ≤ 100 MB, soak over many customers | {soak_max:.1} MB max | {} |",
                verdict(soak_max <= 100.0, format!("by {:.1} MB", soak_max - 100.0))
            );
            // Growth: the last third against the middle third (the first is warm-up).
            let third = samples.len() / 3;
            let mean = |s: &[(f64, f64)]| s.iter().map(|x| x.1).sum::<f64>() / s.len() as f64;
            let (mid, last) = (
                mean(&samples[third..2 * third]),
                mean(&samples[2 * third..]),
            );
            let growth = 100.0 * (last - mid) / mid;
            let secs = samples.last().map(|s| s.0).unwrap_or(0.0) + 5.0;
            let _ = writeln!(
                out,
                "| no growth over the soak ({secs:.0} s) | RSS {mid:.1} → {last:.1} MB (mean of the middle → last third, {growth:+.1} %) | {} |",
                verdict(growth.abs() < 5.0, format!("{growth:+.1} %"))
            );
            if secs < 600.0 {
                out.push_str("| (the issue asks for 10 minutes: `bench/run --soak 600`) | | |\n");
            }
            // The RSS curve, one sample a minute (all of them for a short soak).
            let step = if secs > 120.0 { 60.0 } else { 5.0 };
            let curve: Vec<String> = samples
                .iter()
                .filter(|(t, _)| t % step == 0.0)
                .map(|(t, mb)| format!("{t:.0} s: {mb:.1}"))
                .collect();
            let _ = write!(
                soak_text,
                "\nSoak RSS (MB, sampled every 5 s into `bench/results/soak.csv`): {}.\n",
                curve.join(", ")
            );
        }
    }
    out.push_str(&soak_text);
    print!("{out}");
    Ok(())
}
