//! `partner-gateway policy ...`: the security team's tools to validate the
//! policies, run the decision tests, explain one decision, prove the
//! invariants and compare two policy sets.

use super::args::{EntitySource, PolicyDirs, SolverArgs};
use super::publish;
use crate::authorizer::Authorizer;
use crate::crypto::SecretCipher;
use crate::entities::EntityLoader;
use crate::policy::{AccessRequest, PolicyEngine};
use crate::refs::{EntityRef, EntityType};
use crate::store::Store;
use crate::verify::testing::{self, FixtureDb, TestSession};
use crate::verify::{self, question, Invariants};
use anyhow::Context as _;
use serde_json::{Map, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Parse the schema and policies and validate them strictly; print every
    /// problem with file and line.
    Validate {
        #[command(flatten)]
        dirs: PolicyDirs,
    },
    /// Run decision tests (policies/README.md, "Decision tests"); default:
    /// every <policies>/tests/*.json with a "cases" member.
    Test {
        /// Test files to run.
        files: Vec<PathBuf>,
        /// Also list the policies that determined no test case (exit 1 when
        /// there is one).
        #[arg(long)]
        coverage: bool,
        #[command(flatten)]
        dirs: PolicyDirs,
    },
    /// Decide one request and show why: the determining policies with file
    /// and line, the errors, and the denial the gateway would send.
    Explain {
        /// e.g. 'Operator::"op-x"' (namespace optional)
        #[arg(long)]
        principal: String,
        /// The action name, e.g. SetBudget.
        #[arg(long)]
        action: String,
        /// e.g. 'Customer::"cust-1"'; a type alone (`Customer`) explains the
        /// list question: which items, the residual policies and the filter.
        #[arg(long)]
        resource: String,
        /// The action's context as a JSON object; `now` defaults to the current
        /// time, `source_ip` to 127.0.0.1.
        #[arg(long)]
        context: Option<String>,
        /// A session the request names, as in a test file's "sessions"
        /// (JSON object; repeatable).
        #[arg(long = "session")]
        sessions: Vec<String>,
        #[command(flatten)]
        entities: EntitySource,
        #[command(flatten)]
        dirs: PolicyDirs,
    },
    /// List the principals (operators, customers, live sessions) allowed to
    /// do ACTION on RESOURCE, each with the policies that allow it: worked
    /// out from the policies by partial evaluation over an unknown principal
    /// (as lists are), not by deciding for every principal.
    WhoCan {
        /// The action name, e.g. FreezeCustomer.
        action: String,
        /// e.g. 'Customer::"cust-acme"' (namespace optional).
        resource: String,
        /// The action's context as a JSON object, as for explain; `now`
        /// defaults to the current time, `source_ip` to 127.0.0.1.
        #[arg(long)]
        context: Option<String>,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
        /// Also print, per principal type, the residual policies, the filter
        /// and its SQL that the answer was worked out from.
        #[arg(long)]
        residuals: bool,
        #[command(flatten)]
        entities: EntitySource,
        #[command(flatten)]
        dirs: PolicyDirs,
    },
    /// Prove the invariants of <policies>/invariants/ and that no policy
    /// errors, for every request and every entity store (SMT solver cvc5);
    /// print each as proved, or refuted with a counterexample written as a
    /// decision test. Exit code 0 when everything is proved.
    Verify {
        #[command(flatten)]
        dirs: PolicyDirs,
        /// The invariants directory [default: <policies>/invariants].
        #[arg(long)]
        invariants: Option<PathBuf>,
        #[command(flatten)]
        solver: SolverArgs,
    },
    /// For every action and principal/resource type, prove that two policy
    /// sets decide alike, or print the requests whose decision flips (newly
    /// allowed first), each as a decision test. Exit code 0 when they decide
    /// alike, 1 when they do not, 2 on trouble (like diff).
    Diff {
        /// The policy directory in force.
        old: PathBuf,
        /// The changed policy directory.
        new: PathBuf,
        /// The directory of *.cedarschema files (one schema for both).
        #[arg(long, default_value = "schema")]
        schema: PathBuf,
        #[command(flatten)]
        solver: SolverArgs,
    },
    /// Check a policy set as every gateway will (valid, decision tests
    /// pass, every invariant proved), show its diff against the live
    /// publication, and store it in the database for every gateway started
    /// with `--policy-source database`. Exit 1 when the set is refused.
    Publish(publish::PublishArgs),
    /// Publish again the content of an earlier publication (a version, a
    /// unique prefix of one, or #N), checked as any publication.
    Rollback(publish::RepublishArgs),
    /// Make a shadow publication (`publish --shadow`) live.
    Promote(publish::RepublishArgs),
    /// List the publications, the latest first.
    History {
        #[command(flatten)]
        db: publish::PublicationDb,
        #[arg(long)]
        json: bool,
    },
    /// Decide the requests of decision logs again under a candidate set,
    /// with the data as it is now, and print the ones whose decision flips,
    /// grouped by action, principal type and determining policies. Exit 1
    /// when any flips.
    Replay(super::replay::ReplayArgs),
    /// What each gateway serves: instance, version, since, proved, last seen.
    Fleet {
        #[command(flatten)]
        db: publish::PublicationDb,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Validate { dirs } => Ok(validate(&dirs)),
        PolicyCommand::Test {
            files,
            coverage,
            dirs,
        } => test(files, coverage, &dirs).await,
        PolicyCommand::Explain {
            principal,
            action,
            resource,
            context,
            sessions,
            entities,
            dirs,
        } => {
            // A question that names nothing real is a usage error (exit 2),
            // never a deny: it would read as an answer.
            let principal = match EntityRef::parse(&principal) {
                Ok(p) => p,
                Err(e) => return Ok(usage(format!("--principal: {e}"))),
            };
            let resource = match EntityType::parse(&resource) {
                Some(every) => Target::Every(every),
                None => match EntityRef::parse(&resource) {
                    Ok(r) => Target::One(r),
                    Err(e) => return Ok(usage(format!("--resource: {e}"))),
                },
            };
            let context = match parse_context(context.as_deref()) {
                Ok(c) => c,
                Err(e) => return Ok(usage(format!("{e:#}"))),
            };
            let request = ExplainRequest {
                principal,
                action,
                resource,
                context,
                sessions: sessions
                    .iter()
                    .map(|s| serde_json::from_str::<TestSession>(s))
                    .collect::<Result<_, _>>()
                    .context("--session: expected a session object as in a test file")?,
            };
            explain(request, &entities, &dirs).await
        }
        PolicyCommand::WhoCan {
            action,
            resource,
            context,
            json,
            residuals,
            entities,
            dirs,
        } => {
            let resource = match EntityRef::parse(&resource) {
                Ok(r) => r,
                Err(e) => return Ok(usage(format!("RESOURCE: {e}"))),
            };
            let context = match parse_context(context.as_deref()) {
                Ok(c) => c,
                Err(e) => return Ok(usage(format!("{e:#}"))),
            };
            let answer = WhoCanQuestion {
                action,
                resource,
                context,
                json,
                residuals,
            };
            who_can(answer, &entities, &dirs).await
        }
        PolicyCommand::Verify {
            dirs,
            invariants,
            solver,
        } => verify_command(&dirs, invariants, &solver).await,
        PolicyCommand::Diff {
            old,
            new,
            schema,
            solver,
        } => diff_command(old, new, schema, &solver).await,
        PolicyCommand::Publish(args) => publish::publish(args).await,
        PolicyCommand::Rollback(args) => publish::republish(&args, false).await,
        PolicyCommand::Promote(args) => publish::republish(&args, true).await,
        PolicyCommand::History { db, json } => publish::history(&db, json).await,
        PolicyCommand::Fleet { db, json } => publish::fleet(&db, json).await,
        PolicyCommand::Replay(args) => super::replay::replay(args).await,
    }
}

fn load_or_report(dirs: &PolicyDirs) -> Option<PolicyEngine> {
    match dirs.load() {
        Ok(engine) => Some(engine),
        Err(e) => {
            for issue in &e.issues {
                println!("{issue}");
            }
            println!(
                "{} problem{}: policies not loaded",
                e.issues.len(),
                if e.issues.len() == 1 { "" } else { "s" }
            );
            None
        }
    }
}

fn validate(dirs: &PolicyDirs) -> ExitCode {
    let Some(engine) = load_or_report(dirs) else {
        return ExitCode::FAILURE;
    };
    let dir = Invariants::dir_of(&dirs.policies);
    let Some(invariants) = invariants_or_report(&engine, &dir) else {
        return ExitCode::FAILURE;
    };
    println!(
        "OK: {} policies in {} and {} invariants in {} validate strictly against {} (version {})",
        engine.policies().len(),
        dirs.policies.display(),
        invariants.items.len(),
        dir.display(),
        dirs.schema.display(),
        engine.version()
    );
    ExitCode::SUCCESS
}

fn invariants_or_report(engine: &PolicyEngine, dir: &Path) -> Option<Invariants> {
    match Invariants::load(dir, engine.schema()) {
        Ok(invariants) => Some(invariants),
        Err(e) => {
            for issue in &e.issues {
                println!("{issue}");
            }
            println!("{} problem(s): invariants not loaded", e.issues.len());
            None
        }
    }
}

async fn verify_command(
    dirs: &PolicyDirs,
    invariants: Option<PathBuf>,
    args: &SolverArgs,
) -> anyhow::Result<ExitCode> {
    let Some(engine) = load_or_report(dirs) else {
        return Ok(ExitCode::FAILURE);
    };
    let dir = invariants.unwrap_or_else(|| Invariants::dir_of(&dirs.policies));
    let Some(invariants) = invariants_or_report(&engine, &dir) else {
        return Ok(ExitCode::FAILURE);
    };
    let options = args.options();
    let assuming = invariants.assuming();
    let (solver, report) = tokio::task::spawn_blocking(move || {
        (
            verify::solver_version(),
            verify::verify(&engine, &invariants, &options),
        )
    })
    .await?;
    println!("solver: {}", solver.unwrap_or_else(|e| e));
    println!("{assuming}");
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            println!("NOT VERIFIED: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    print!("{}", report.render(args.show));
    args.write(report.properties.iter().flat_map(|p| {
        p.findings.iter().filter_map(move |f| match f {
            verify::Finding::Counterexample(c) => Some((p.id.as_str(), c)),
            verify::Finding::Unproved { .. } => None,
        })
    }))?;
    Ok(if report.proved() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn diff_command(
    old: PathBuf,
    new: PathBuf,
    schema: PathBuf,
    args: &SolverArgs,
) -> anyhow::Result<ExitCode> {
    let trouble = ExitCode::from(2);
    let load = |policies: &PathBuf| {
        load_or_report(&PolicyDirs {
            policies: policies.clone(),
            schema: schema.clone(),
        })
    };
    let (Some(old), Some(new)) = (load(&old), load(&new)) else {
        return Ok(trouble);
    };
    let options = args.options();
    let report = tokio::task::spawn_blocking(move || verify::diff(&old, &new, &options)).await?;
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            println!("NOT COMPARED: {e}");
            return Ok(trouble);
        }
    };
    print!("{}", report.render(args.show));
    if report.alike() {
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} request kind(s) newly allowed, {} newly denied, {} not proved (of {}, {:.1} s)",
        report.newly_allowed.len(),
        report.newly_denied.len(),
        report.unproved.len(),
        report.request_kinds,
        report.elapsed.as_secs_f64()
    );
    args.write(
        report
            .newly_allowed
            .iter()
            .map(|c| ("newly-allowed", c))
            .chain(report.newly_denied.iter().map(|c| ("newly-denied", c))),
    )?;
    Ok(if report.unproved.is_empty() {
        ExitCode::FAILURE
    } else {
        trouble
    })
}

async fn test(files: Vec<PathBuf>, coverage: bool, dirs: &PolicyDirs) -> anyhow::Result<ExitCode> {
    let Some(engine) = load_or_report(dirs) else {
        return Ok(ExitCode::FAILURE);
    };
    let files = if files.is_empty() {
        let dir = dirs.policies.join("tests");
        testing::default_test_files(&dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
    } else {
        files
    };
    if files.is_empty() {
        anyhow::bail!("no test files given or found");
    }
    let report = testing::run_files(&engine, &files).await;
    for f in &report.failures {
        println!("{f}");
    }
    println!("{}", report.summary());
    let uncovered = report.uncovered(&engine);
    if coverage {
        let total = engine.policies().len();
        println!(
            "coverage: {} of {total} policies determined at least one case",
            total - uncovered.len()
        );
        for p in &uncovered {
            println!("  not covered: {} ({})", p.id, p.location());
        }
    }
    Ok(
        if report.failed() == 0 && (!coverage || uncovered.is_empty()) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

fn parse_context(text: Option<&str>) -> anyhow::Result<Map<String, Value>> {
    match text {
        None => Ok(Map::new()),
        Some(t) => match serde_json::from_str::<Value>(t).context("--context is not JSON")? {
            Value::Object(map) => Ok(map),
            _ => anyhow::bail!("--context must be a JSON object"),
        },
    }
}

struct ExplainRequest {
    principal: EntityRef,
    action: String,
    resource: Target,
    context: Map<String, Value>,
    sessions: Vec<TestSession>,
}

/// What `policy explain` is asked about: one resource, or every item of a type.
enum Target {
    One(EntityRef),
    Every(EntityType),
}

async fn explain(
    req: ExplainRequest,
    entities: &EntitySource,
    dirs: &PolicyDirs,
) -> anyhow::Result<ExitCode> {
    let Some(engine) = load_or_report(dirs) else {
        return Ok(ExitCode::FAILURE);
    };
    // Keep the fixture's temporary database alive until the end.
    let (_fixture_db, store, loader) = open_entities(entities).await?;
    let authorizer = Authorizer::for_questions(engine, loader);
    let engine = authorizer.policies.load_full();
    let resource_type = match &req.resource {
        Target::One(r) => r.kind(),
        Target::Every(t) => *t,
    };
    let asked = question::check(
        &engine,
        Some(req.principal.kind()),
        &req.action,
        resource_type,
        &req.context,
    );
    if let Err(refusal) = asked {
        store.close().await;
        return Ok(refused(&refusal));
    }
    let sessions = testing::session_facts(&store, &req.sessions).await?;
    let filled = |context| {
        let mut r = AccessRequest::new(
            req.principal.clone(),
            req.action.clone(),
            req.principal.clone(),
            context,
        );
        r.fill_context(crate::time::now(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        r.context
    };
    match req.resource {
        Target::One(resource) => {
            let request = AccessRequest::new(
                req.principal.clone(),
                req.action.clone(),
                resource,
                filled(req.context.clone()),
            );
            let (explanation, _) =
                super::explain::explain(&authorizer, &engine, &request, &sessions).await?;
            print!("{explanation}");
        }
        Target::Every(item) => {
            let explanation = super::explain::explain_list(
                &authorizer,
                &engine,
                &req.principal,
                &req.action,
                item,
                filled(req.context.clone()),
                &sessions,
            )
            .await?;
            print!("{explanation}");
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// The store and an entity loader over `--fixture` (a temporary database,
/// returned to be kept alive while used) or `--database-url`.
async fn open_entities(
    source: &EntitySource,
) -> anyhow::Result<(Option<FixtureDb>, Store, EntityLoader)> {
    let given = (source.fixture.as_deref(), source.database_url.as_deref());
    Ok(match given {
        (Some(path), _) => {
            let db = FixtureDb::load(path, crate::time::now())
                .await
                .with_context(|| format!("fixture {}", path.display()))?;
            let (store, loader) = (db.store.clone(), fresh_loader(&db.store));
            (Some(db), store, loader)
        }
        (None, Some(url)) => {
            // Only relationship rows are read; no secret is ever unsealed.
            let cipher = SecretCipher::from_bytes(&rand::random::<[u8; 32]>())?;
            let store = Store::connect_with(url, cipher, 2).await?;
            let loader = fresh_loader(&store);
            (None, store, loader)
        }
        (None, None) => anyhow::bail!("give --fixture FILE or --database-url URL"),
    })
}

/// Prints a refused question as a usage error naming the option; exit 2.
fn refused(refusal: &question::Refusal) -> ExitCode {
    usage(format!("--{}: {}", refusal.field, refusal.message))
}

struct WhoCanQuestion {
    action: String,
    resource: EntityRef,
    context: Map<String, Value>,
    json: bool,
    residuals: bool,
}

async fn who_can(
    q: WhoCanQuestion,
    entities: &EntitySource,
    dirs: &PolicyDirs,
) -> anyhow::Result<ExitCode> {
    let Some(engine) = load_or_report(dirs) else {
        return Ok(ExitCode::FAILURE);
    };
    let (_fixture_db, store, loader) = open_entities(entities).await?;
    let authorizer = Authorizer::for_questions(engine, loader);
    let engine = authorizer.policies.load_full();
    let asked = question::check(&engine, None, &q.action, q.resource.kind(), &q.context);
    let answer = match asked {
        Ok(()) => {
            Ok(
                super::who_can::who_can(&authorizer, &engine, &q.action, &q.resource, q.context)
                    .await,
            )
        }
        Err(refusal) => Err(refusal),
    };
    store.close().await;
    match answer {
        // ACTION and RESOURCE are arguments here, not options.
        Err(refusal) => Ok(match refusal.field {
            "action" | "resource" => usage(format!(
                "{}: {}",
                refusal.field.to_uppercase(),
                refusal.message
            )),
            _ => refused(&refusal),
        }),
        Ok(Err(e @ super::who_can::WhoCanError::NoSuchResource { .. })) => {
            Ok(usage(format!("RESOURCE: {e}")))
        }
        Ok(Err(e)) => Err(e.into()),
        Ok(Ok(answer)) => {
            if q.json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else if q.residuals {
                print!("{answer:#}");
            } else {
                print!("{answer}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints a usage error; exit status 2.
fn usage(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn fresh_loader(store: &Store) -> EntityLoader {
    EntityLoader::new(store.clone(), 1 << 20, Duration::from_secs(60))
}
