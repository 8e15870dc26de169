//! `policy replay`: decides the requests of a decision log again, under a
//! candidate policy set and with the data as it is now, and names the
//! requests whose decision flips: impact analysis on recorded traffic.
//!
//! A record carries what decided it: the principal, the operation's route
//! (which names its check and list actions in the catalog), every resource,
//! the action's context values, `now` and the client's address. The data
//! may have moved since; so each request is also decided again under the
//! policy version that recorded it, when that set is at hand (a publication
//! of that version in the database, or `--baseline`): a request that set
//! now decides otherwise changed with the data, not with the candidate, and
//! is counted apart, never as a flip.

use super::publish::load_publication;
use crate::authorizer::{Asker, Authorizer, Question};
use crate::catalog::{Operation, OPERATIONS};
use crate::entities::EntityLoader;
use crate::policy::{Asked, Decision, PolicyEngine};
use crate::refs::{EntityRef, EntityType};
use crate::store::Store;
use crate::time::{self, Timestamp};
use anyhow::Context as _;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Decision log files (JSON lines, as `serve --decision-log` writes them).
    #[arg(long = "decision-log", required = true, num_args = 1..)]
    pub decision_logs: Vec<PathBuf>,
    /// The candidate policy directory.
    #[arg(long)]
    pub policies: PathBuf,
    /// The schema directory.
    #[arg(long, default_value = "schema")]
    pub schema: PathBuf,
    /// The data the requests are decided on now [default: the default database].
    #[arg(long, env = "PGW_DATABASE_URL", default_value = crate::store::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// A policy directory that may be the set that recorded the log (used
    /// for the records of its version; publications in the database serve
    /// as well).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Only the records answered at or after this instant (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// How many request ids to list per group of flips.
    #[arg(long, default_value_t = 5)]
    pub show: usize,
}

/// The fields of a decision record replay reads.
#[derive(Debug, serde::Deserialize)]
struct Recorded {
    ts: String,
    request_id: String,
    method: String,
    route: Option<String>,
    principal: Option<String>,
    resources: Vec<String>,
    decision: String,
    #[serde(default)]
    determining: Vec<String>,
    policy_version: Option<String>,
    now: Option<String>,
    context: Option<Map<String, Value>>,
    client_ip: Option<IpAddr>,
    /// The share of allowed decisions the log kept, on an allowed record
    /// of a sampling log.
    #[serde(default)]
    sampled_at: Option<f64>,
}

/// One request to decide again: its decisions, each an action on a resource.
struct Replayable {
    record: Recorded,
    principal: EntityRef,
    now: Timestamp,
    decisions: Vec<(&'static str, Target)>,
}

enum Target {
    One(EntityRef),
    Every(crate::catalog::ListOf),
}

/// Why a record is not replayed.
fn replayable(record: Recorded) -> Result<Replayable, &'static str> {
    if record.decision != "allow" && record.decision != "deny" {
        return Err("reached no decision");
    }
    let route = record.route.as_deref().ok_or("no route")?;
    let operation: &Operation = OPERATIONS
        .iter()
        .find(|o| o.path == route && o.method.as_str() == record.method)
        .ok_or("a route this gateway does not have")?;
    let principal = record
        .principal
        .as_deref()
        .and_then(|p| EntityRef::parse(p).ok())
        .ok_or("no principal")?;
    let now = record
        .now
        .as_deref()
        .and_then(|n| time::parse(n).ok())
        .ok_or("no now")?;
    let mut decisions = Vec::new();
    for resource in &record.resources {
        if let Some(item) = resource.strip_suffix("::*") {
            let of = operation.list.ok_or("a list the route does not have")?;
            if EntityType::parse(item) != Some(of.item) {
                return Err("a list the route does not have");
            }
            decisions.push((of.action, Target::Every(of)));
        } else {
            let action = operation.check.ok_or("a check the route does not have")?;
            let target = EntityRef::parse(resource).map_err(|_| "an unreadable resource")?;
            decisions.push((action, Target::One(target)));
        }
    }
    if decisions.is_empty() {
        return Err("no resource");
    }
    Ok(Replayable {
        record,
        principal,
        now,
        decisions,
    })
}

/// Decides every decision of `request` under `authorizer`'s set: allowed
/// when all are, with the determining policies of each.
async fn decide(authorizer: &Authorizer, request: &Replayable) -> anyhow::Result<Decision> {
    let engine = authorizer.policies.load_full();
    let source_ip = request
        .record
        .client_ip
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let asked = Asked::at(Some(request.now), source_ip);
    let mut all = Decision {
        allow: true,
        determining: Vec::new(),
        errors: Vec::new(),
    };
    for (action, target) in &request.decisions {
        let context = match target {
            Target::One(_) => request.record.context.clone().unwrap_or_default(),
            Target::Every(_) => Map::new(),
        };
        let question = Question {
            engine: &engine,
            principal: &request.principal,
            sessions: &[],
            action,
            context,
            asked: &asked,
            asker: Asker::Admin,
        };
        let decision = match target {
            Target::One(resource) => authorizer.decide(&question, resource).await,
            Target::Every(of) => authorizer
                .list_scope(&question, *of)
                .await
                .map(|a| a.decision),
        };
        let decision = match decision {
            Ok(d) => d,
            // A principal gone from the data is denied, as the gateway would.
            Err(crate::authorizer::AuthorizeError::Unknown) => Decision {
                allow: false,
                determining: Vec::new(),
                errors: Vec::new(),
            },
            Err(e) => anyhow::bail!("request {}: {e}", request.record.request_id),
        };
        all.allow &= decision.allow;
        for id in decision.determining {
            if !all.determining.contains(&id) {
                all.determining.push(id);
            }
        }
        all.errors.extend(decision.errors);
    }
    Ok(all)
}

/// The engines of the versions the log was recorded under, that are at hand.
async fn baselines(
    versions: impl Iterator<Item = String>,
    store: &Store,
    baseline: Option<PolicyEngine>,
    work: &Path,
) -> anyhow::Result<HashMap<String, PolicyEngine>> {
    let mut found: HashMap<String, PolicyEngine> = HashMap::new();
    if let Some(engine) = baseline {
        found.insert(engine.version().to_owned(), engine);
    }
    let publications = store.publications().await?;
    for version in versions {
        if found.contains_key(&version) {
            continue;
        }
        let Some(p) = publications.iter().find(|p| p.new.version == version) else {
            continue;
        };
        if let Ok(engine) = load_publication(&work.join(p.seq.to_string()), p)? {
            found.insert(version, engine);
        }
    }
    Ok(found)
}

/// A group of flips: which way, the action, the principal type, and the
/// policies that determined before and now.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct FlipKind {
    newly_allowed: bool,
    action: String,
    principal_type: String,
    before: String,
    after: String,
}

fn policies(ids: &[String]) -> String {
    if ids.is_empty() {
        "(no policy: the default deny)".into()
    } else {
        ids.join(", ")
    }
}

pub async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let usage = ExitCode::from(2);
    let since = match args.since.as_deref().map(time::parse).transpose() {
        Ok(since) => since,
        Err(e) => {
            println!("--since: not an RFC 3339 instant: {e}");
            return Ok(usage);
        }
    };
    let candidate = match PolicyEngine::load(&args.policies, &args.schema) {
        Ok(engine) => engine,
        Err(e) => {
            println!("the candidate does not load: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let baseline = match &args.baseline {
        Some(dir) => Some(
            PolicyEngine::load(dir, &args.schema)
                .map_err(|e| anyhow::anyhow!("--baseline {}: {e}", dir.display()))?,
        ),
        None => None,
    };

    // Read every record first: the versions decide which baselines to load.
    let mut requests = Vec::new();
    let mut skipped: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut records, mut unrecorded_allows) = (0usize, 0f64);
    for file in &args.decision_logs {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let record: Recorded = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not a decision record", file.display(), n + 1))?;
            let answered = time::parse(&record.ts).ok();
            if since.is_some_and(|since| answered.is_none_or(|at| at < since)) {
                continue;
            }
            records += 1;
            if let Some(rate) = record.sampled_at.filter(|r| *r > 0.0 && *r < 1.0) {
                unrecorded_allows += 1.0 / rate - 1.0;
            }
            match replayable(record) {
                Ok(r) => requests.push(r),
                Err(why) => *skipped.entry(why).or_default() += 1,
            }
        }
    }

    let cipher = crate::crypto::SecretCipher::from_bytes(&rand::random::<[u8; 32]>())?;
    let store = Store::connect_with(&args.database_url, cipher, 2)
        .await
        .with_context(|| format!("cannot open the database {}", args.database_url))?;
    let loader = || {
        EntityLoader::new(
            store.clone(),
            16 << 20,
            std::time::Duration::from_secs(3600),
        )
    };
    let work = tempfile::Builder::new()
        .prefix("partner-gateway-replay-")
        .tempdir()?;
    let mut versions: Vec<String> = requests
        .iter()
        .filter_map(|r| r.record.policy_version.clone())
        .collect();
    versions.sort();
    versions.dedup();
    let baselines = baselines(versions.iter().cloned(), &store, baseline, work.path()).await?;
    let baseline_authorizers: HashMap<String, Authorizer> = baselines
        .into_iter()
        .map(|(version, engine)| (version, Authorizer::for_questions(engine, loader())))
        .collect();
    let candidate_version = candidate.version().to_owned();
    let candidate = Authorizer::for_questions(candidate, loader());

    let mut flips: BTreeMap<FlipKind, Vec<String>> = BTreeMap::new();
    let (mut data_changed, mut without_baseline) = (Vec::new(), 0usize);
    for request in &requests {
        let recorded = request.record.decision == "allow";
        if let Some(own) = request
            .record
            .policy_version
            .as_ref()
            .and_then(|v| baseline_authorizers.get(v))
        {
            if decide(own, request).await?.allow != recorded {
                data_changed.push(request.record.request_id.clone());
                continue;
            }
        } else {
            without_baseline += 1;
        }
        let now = decide(&candidate, request).await?;
        if now.allow != recorded {
            let kind = FlipKind {
                newly_allowed: now.allow,
                action: request.decisions[0].0.to_owned(),
                principal_type: request.principal.type_name().to_owned(),
                before: policies(&request.record.determining),
                after: policies(&now.determining),
            };
            flips
                .entry(kind)
                .or_default()
                .push(request.record.request_id.clone());
        }
    }

    println!(
        "replayed {} of {records} record(s) against {candidate_version} on {}",
        requests.len(),
        args.database_url
    );
    for (why, n) in &skipped {
        println!("  not replayed, {why}: {n}");
    }
    if unrecorded_allows >= 0.5 {
        println!(
            "  about {} allowed decision(s) were not recorded (the log sampled allowed decisions): replay covers what the log holds",
            unrecorded_allows.round() as u64
        );
    }
    println!(
        "  decided under the version that recorded them: {} request(s); {without_baseline} without that version at hand (--baseline, or a publication in the database)",
        requests.len() - without_baseline
    );
    if !data_changed.is_empty() {
        println!(
            "  {} request(s) decide otherwise today under their own version (the data changed; not counted as flips): {}",
            data_changed.len(),
            data_changed.join(", ")
        );
    }
    let total: usize = flips.values().map(Vec::len).sum();
    if total == 0 {
        println!("no flip: the candidate decides every replayed request as it was decided");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{total} request(s) flip:");
    for (kind, ids) in &flips {
        let shown: Vec<&str> = ids.iter().take(args.show).map(String::as_str).collect();
        println!(
            "  {} {} by {}: {} request(s)\n    before: {}\n    now:    {}\n    e.g. {}{}",
            if kind.newly_allowed {
                "NEWLY ALLOWED"
            } else {
                "NEWLY DENIED "
            },
            kind.action,
            kind.principal_type,
            ids.len(),
            kind.before,
            kind.after,
            shown.join(", "),
            if ids.len() > shown.len() { ", ..." } else { "" }
        );
    }
    Ok(ExitCode::FAILURE)
}
