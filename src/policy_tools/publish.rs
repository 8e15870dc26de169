//! `policy publish`, `rollback`, `promote`, `history` and `fleet`: one
//! policy set for a fleet of gateways, kept in the database
//! (`store::publications`). A set is stored only after the checks every
//! gateway makes again before serving it: it loads and validates strictly
//! (the loader's depth check included), its decision tests pass, and every
//! invariant is proved. The diff against the set it replaces is shown, and
//! an invariant removed or changed (an assumption added or changed) needs
//! `--allow-invariant-change`, which the publication records.

use super::args::{PolicyDirs, SolverArgs};
use super::reload;
use crate::crypto::SecretCipher;
use crate::policy::PolicyEngine;
use crate::store::publications::{NewPublication, PolicyFiles, Publication, Stage};
use crate::store::{Store, StoreError};
use crate::time;
use crate::verify::{self, testing, Invariants};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The database that holds the publications.
#[derive(Debug, Clone, clap::Args)]
pub struct PublicationDb {
    /// sqlite://PATH or postgres://...
    #[arg(long, env = "PGW_DATABASE_URL")]
    pub database_url: String,
}

impl PublicationDb {
    pub async fn open(&self) -> anyhow::Result<Store> {
        // Publications hold no secret: nothing is ever unsealed.
        let cipher = SecretCipher::from_bytes(&rand::random::<[u8; 32]>())?;
        Store::connect_with(&self.database_url, cipher, 2)
            .await
            .with_context(|| format!("cannot open the database {}", self.database_url))
    }
}

/// Who publishes, and why.
#[derive(Debug, Clone, clap::Args)]
pub struct Authorship {
    /// Why, for `policy history`.
    #[arg(long, default_value = "")]
    pub message: String,
    /// Who [default: the OS user].
    #[arg(long)]
    pub author: Option<String>,
    /// Let an invariant be removed or changed (or an assumption added or
    /// changed) against the live publication; the publication records which.
    #[arg(long)]
    pub allow_invariant_change: bool,
    /// Check everything and show what would be published; store nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub db: PublicationDb,
    #[command(flatten)]
    pub dirs: PolicyDirs,
    /// The invariants directory [default: <policies>/invariants].
    #[arg(long)]
    pub invariants: Option<PathBuf>,
    /// Publish as the shadow set: every gateway compares it with live
    /// traffic until `policy promote` makes it live.
    #[arg(long)]
    pub shadow: bool,
    #[command(flatten)]
    pub authorship: Authorship,
    #[command(flatten)]
    pub solver: SolverArgs,
}

/// `policy rollback` and `policy promote`: which publication, and as for publish.
#[derive(Debug, clap::Args)]
pub struct RepublishArgs {
    /// A version (at least 6 hex digits of it), or #N for publication N.
    pub version: String,
    #[command(flatten)]
    pub db: PublicationDb,
    #[command(flatten)]
    pub authorship: Authorship,
    #[command(flatten)]
    pub solver: SolverArgs,
}

/// The exit code of a set refused (not valid, a test failing, an invariant
/// not proved); usage errors are 2 (clap's).
const REFUSED: u8 = 1;

/// The files of a policy set as publications hold them: the `*.cedar` of
/// `policies`, the `*.cedarschema` of `schema`, the `*.cedar` of `invariants`.
pub fn read_files(
    policies: &Path,
    schema: &Path,
    invariants: &Path,
) -> anyhow::Result<PolicyFiles> {
    Ok(PolicyFiles {
        policies: read_dir(policies, "cedar")?,
        schema: read_dir(schema, "cedarschema")?,
        invariants: read_dir(invariants, "cedar")?,
    })
}

fn read_dir(dir: &Path, ext: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if !path.is_file() || path.extension().is_none_or(|x| x != ext) {
            continue;
        }
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        files.insert(name, text);
    }
    Ok(files)
}

/// Where a set's files were written: its policies, schema and invariants directories.
#[derive(Clone, Debug)]
pub struct SetDirs {
    pub policies: PathBuf,
    pub schema: PathBuf,
    pub invariants: PathBuf,
}

impl SetDirs {
    /// `root/policies`, `root/schema` and `root/policies/invariants`, as a
    /// checkout has them.
    pub fn under(root: &Path) -> SetDirs {
        let policies = root.join("policies");
        SetDirs {
            invariants: Invariants::dir_of(&policies),
            schema: root.join("schema"),
            policies,
        }
    }

    /// Writes `files` under `root` (which must not hold another set).
    pub fn write(root: &Path, files: &PolicyFiles) -> std::io::Result<SetDirs> {
        let dirs = SetDirs::under(root);
        for (dir, files) in [
            (&dirs.policies, &files.policies),
            (&dirs.schema, &files.schema),
            (&dirs.invariants, &files.invariants),
        ] {
            std::fs::create_dir_all(dir)?;
            for (name, text) in files {
                // Names come from the database: a name that is not a plain
                // file name is refused rather than written elsewhere.
                if Path::new(name).file_name() != Some(std::ffi::OsStr::new(name)) {
                    return Err(std::io::Error::other(format!("bad file name {name:?}")));
                }
                std::fs::write(dir.join(name), text)?;
            }
        }
        Ok(dirs)
    }
}

/// A set read and checked, ready to publish.
struct Checked {
    engine: PolicyEngine,
    invariants: Invariants,
    proof: String,
}

/// Loads the set in `dirs` and proves its invariants; `None` once it has
/// printed why it may not be published. `tests`: the decision test files to run.
async fn check(
    dirs: &SetDirs,
    tests: &[PathBuf],
    solver: &SolverArgs,
) -> anyhow::Result<Option<Checked>> {
    let (engine, invariants) =
        match reload::load_set(&dirs.policies, &dirs.schema, &dirs.invariants) {
            Ok(set) => set,
            Err(e) => {
                println!("REFUSED: the set does not load: {e}");
                return Ok(None);
            }
        };
    if !tests.is_empty() {
        let report = testing::run_files(&engine, tests).await;
        for f in &report.failures {
            println!("{f}");
        }
        println!("decision tests: {}", report.summary());
        if report.failed() > 0 {
            println!("REFUSED: a decision test fails");
            return Ok(None);
        }
    }
    let timeout = std::time::Duration::from_secs(solver.timeout_secs);
    let (engine, invariants, verification) = tokio::task::spawn_blocking(move || {
        let verification = reload::prove(&engine, &invariants, timeout);
        (engine, invariants, verification)
    })
    .await?;
    if !verification.proved() {
        println!(
            "REFUSED: not every invariant is proved: {}",
            verification.refusal
        );
        return Ok(None);
    }
    let proof = format!(
        "{} invariants proved in {:.1} s ({})",
        verification.invariants,
        verification.elapsed.as_secs_f64(),
        verify::solver_version().unwrap_or_else(|e| e)
    );
    println!("proved: {proof}");
    Ok(Some(Checked {
        engine,
        invariants,
        proof,
    }))
}

/// Each invariant and assumption of `files`, by `@id`: whether it is an
/// assumption, and its text with the whitespace collapsed.
fn invariant_texts(files: &PolicyFiles) -> BTreeMap<String, (bool, String)> {
    let mut texts = BTreeMap::new();
    for text in files.invariants.values() {
        let Ok(set) = text.parse::<cedar_policy::PolicySet>() else {
            continue;
        };
        for policy in set.policies() {
            let id = policy
                .annotation("id")
                .map(str::to_owned)
                .unwrap_or_else(|| policy.id().to_string());
            let assume = policy.annotation("check") == Some("assume");
            let text = policy
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            texts.insert(id, (assume, text));
        }
    }
    texts
}

/// What `new` removes or changes of `old`'s guardrails: an invariant removed
/// or changed, an assumption added or changed (a proof that assumes more
/// proves less).
pub fn weakened_invariants(old: &PolicyFiles, new: &PolicyFiles) -> Vec<String> {
    let (old, new) = (invariant_texts(old), invariant_texts(new));
    let mut changes = Vec::new();
    for (id, (assume, text)) in &old {
        match new.get(id) {
            None if !assume => changes.push(format!("invariant {id} removed")),
            Some((_, now)) if now != text => changes.push(format!(
                "{} {id} changed",
                if *assume { "assumption" } else { "invariant" }
            )),
            _ => {}
        }
    }
    for (id, (assume, _)) in &new {
        if *assume && !old.contains_key(id) {
            changes.push(format!("assumption {id} added"));
        }
    }
    changes
}

/// Who runs the command: `--author`, else the OS user.
fn author(given: &Option<String>) -> String {
    given
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| format!("uid {}", rustix::process::getuid().as_raw()))
}

/// This machine's name.
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// What to publish: files, and where they come from.
struct Candidate {
    files: PolicyFiles,
    /// Where `files` were read from, checked there so that every problem
    /// names the file as its author knows it; `None`: checked from a copy.
    read_from: Option<SetDirs>,
    stage: Stage,
    tests: Vec<PathBuf>,
    copied_from: Option<i64>,
}

/// The checks and the store shared by publish, rollback and promote.
async fn publish_files(
    store: &Store,
    candidate: Candidate,
    authorship: &Authorship,
    solver: &SolverArgs,
) -> anyhow::Result<ExitCode> {
    let work = tempfile::Builder::new()
        .prefix("partner-gateway-publish-")
        .tempdir()?;
    let dirs = match &candidate.read_from {
        Some(dirs) => dirs.clone(),
        None => SetDirs::write(&work.path().join("new"), &candidate.files)?,
    };
    let Some(checked) = check(&dirs, &candidate.tests, solver).await? else {
        return Ok(ExitCode::from(REFUSED));
    };
    // What was checked is what is stored: files changed meanwhile are not.
    if candidate.read_from.is_some()
        && read_files(&dirs.policies, &dirs.schema, &dirs.invariants)? != candidate.files
    {
        println!("NOT PUBLISHED: the files changed while they were checked; run the command again");
        return Ok(ExitCode::from(REFUSED));
    }
    let live = store.live_publication().await?;
    let latest = store.latest_publication_seq().await?;
    let mut invariant_change = None;
    if let Some(live) = &live {
        if live.new.version == checked.engine.version()
            && live.new.invariants_digest == checked.invariants.digest
            && candidate.stage == Stage::Live
        {
            println!(
                "publication {} (version {}) already holds this set; nothing published",
                live.seq, live.new.version
            );
            return Ok(ExitCode::SUCCESS);
        }
        let weakened = weakened_invariants(&live.new.files, &candidate.files);
        if !weakened.is_empty() {
            let list = weakened.join(", ");
            if !authorship.allow_invariant_change {
                println!(
                    "REFUSED: against publication {} (version {}): {list}; \
                     give --allow-invariant-change to publish that, and it will be recorded",
                    live.seq, live.new.version
                );
                return Ok(ExitCode::from(REFUSED));
            }
            println!("invariant change allowed and recorded: {list}");
            invariant_change = Some(list);
        }
    }
    let version = checked.engine.version().to_owned();
    match &live {
        Some(live) => show_diff(&work.path().join("live"), live, checked.engine, solver).await?,
        None => println!("nothing is published yet: this will be the first publication"),
    }
    let new = NewPublication {
        version,
        stage: candidate.stage,
        files: candidate.files,
        invariants_digest: checked.invariants.digest.clone(),
        author: author(&authorship.author),
        host: host_name(),
        message: authorship.message.clone(),
        proof: checked.proof,
        invariant_change,
        copied_from: candidate.copied_from,
    };
    if authorship.dry_run {
        println!(
            "dry run: would publish version {} as publication {} ({}); nothing stored",
            new.version,
            latest.unwrap_or(0) + 1,
            new.stage.as_str()
        );
        return Ok(ExitCode::SUCCESS);
    }
    match store.publish_policies(latest, &new).await {
        Ok(p) => {
            println!(
                "published version {} as publication {} ({}) at {}",
                p.new.version,
                p.seq,
                p.new.stage.as_str(),
                time::format(p.published_at)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(StoreError::Refused(why)) => {
            println!("NOT PUBLISHED: {why}");
            Ok(ExitCode::from(REFUSED))
        }
        Err(e) => Err(e.into()),
    }
}

/// The engine of a stored publication, its files written under `root`;
/// `Err` with why when they no longer load here.
pub fn load_publication(
    root: &Path,
    publication: &Publication,
) -> std::io::Result<Result<PolicyEngine, crate::policy::PolicyLoadError>> {
    let dirs = SetDirs::write(root, &publication.new.files)?;
    Ok(PolicyEngine::load(&dirs.policies, &dirs.schema))
}

/// Prints what the candidate newly allows and denies against `live` (proved
/// by the solver, as `policy diff`).
async fn show_diff(
    root: &Path,
    live: &Publication,
    candidate: PolicyEngine,
    solver: &SolverArgs,
) -> anyhow::Result<()> {
    let old = match load_publication(root, live)? {
        Ok(old) => old,
        Err(e) => {
            println!("diff: the live publication does not load here ({e}); not compared");
            return Ok(());
        }
    };
    println!(
        "diff against publication {} (version {}):",
        live.seq, live.new.version
    );
    if old.schema_digest() != candidate.schema_digest() {
        println!("  the schema changed: the solver compares sets over one schema; not compared");
        return Ok(());
    }
    let options = solver.options();
    let report =
        tokio::task::spawn_blocking(move || verify::diff(&old, &candidate, &options)).await?;
    match report {
        Ok(report) if report.alike() => println!("  the two sets decide alike on every request"),
        Ok(report) => {
            print!("{}", report.render(solver.show));
            println!(
                "  {} request kind(s) newly allowed, {} newly denied, {} not proved",
                report.newly_allowed.len(),
                report.newly_denied.len(),
                report.unproved.len()
            );
        }
        Err(e) => println!("  not compared: {e}"),
    }
    Ok(())
}

pub async fn publish(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let invariants = args
        .invariants
        .clone()
        .unwrap_or_else(|| Invariants::dir_of(&args.dirs.policies));
    let files = read_files(&args.dirs.policies, &args.dirs.schema, &invariants)?;
    let read_from = SetDirs {
        policies: args.dirs.policies.clone(),
        schema: args.dirs.schema.clone(),
        invariants,
    };
    let tests_dir = args.dirs.policies.join("tests");
    let tests = if tests_dir.is_dir() {
        testing::default_test_files(&tests_dir)
            .with_context(|| format!("cannot list {}", tests_dir.display()))?
    } else {
        Vec::new()
    };
    let store = args.db.open().await?;
    let stage = if args.shadow {
        Stage::Shadow
    } else {
        Stage::Live
    };
    publish_files(
        &store,
        Candidate {
            files,
            read_from: Some(read_from),
            stage,
            tests,
            copied_from: None,
        },
        &args.authorship,
        &args.solver,
    )
    .await
}

/// The publication `wanted` names: a version (or a prefix of one, at least
/// six characters, naming one version), the latest publication of it; or
/// `#N`, publication N.
fn find<'p>(publications: &'p [Publication], wanted: &str) -> Result<&'p Publication, String> {
    if let Some(seq) = wanted.strip_prefix('#') {
        let seq: i64 = seq
            .parse()
            .map_err(|_| format!("{wanted:?}: not a publication number"))?;
        return publications
            .iter()
            .find(|p| p.seq == seq)
            .ok_or_else(|| format!("no publication {wanted}"));
    }
    if wanted.len() < 6 {
        return Err(format!(
            "{wanted:?}: give at least 6 characters of a version, or #N for publication N"
        ));
    }
    let versions: std::collections::BTreeSet<&str> = publications
        .iter()
        .map(|p| p.new.version.as_str())
        .filter(|v| v.starts_with(wanted))
        .collect();
    match versions.into_iter().collect::<Vec<_>>().as_slice() {
        [] => Err(format!("no publication of version {wanted}")),
        [one] => Ok(publications
            .iter()
            .find(|p| p.new.version == *one)
            .expect("the version was found among them")),
        many => Err(format!(
            "{wanted} names several versions: {}",
            many.join(", ")
        )),
    }
}

/// `policy rollback` (stage live, from any publication) and `policy
/// promote` (stage live, from a shadow publication): a new publication of
/// an earlier one's content, checked as any publication is.
pub async fn republish(args: &RepublishArgs, from_shadow: bool) -> anyhow::Result<ExitCode> {
    let store = args.db.open().await?;
    let publications = store.publications().await?;
    let found = match find(&publications, &args.version) {
        Ok(found) => found,
        Err(why) => {
            println!("{why}");
            return Ok(ExitCode::from(2));
        }
    };
    if from_shadow && found.new.stage != Stage::Shadow {
        println!(
            "publication {} (version {}) was not published with --shadow; use policy rollback",
            found.seq, found.new.version
        );
        return Ok(ExitCode::from(2));
    }
    println!(
        "{} publication {} (version {}, {} by {})",
        if from_shadow {
            "promoting"
        } else {
            "rolling back to"
        },
        found.seq,
        found.new.version,
        time::format(found.published_at),
        found.new.author
    );
    publish_files(
        &store,
        Candidate {
            files: found.new.files.clone(),
            read_from: None,
            stage: Stage::Live,
            tests: Vec::new(),
            copied_from: Some(found.seq),
        },
        &args.authorship,
        &args.solver,
    )
    .await
}

/// `policy history`: every publication, the latest first.
pub async fn history(db: &PublicationDb, json: bool) -> anyhow::Result<ExitCode> {
    let store = db.open().await?;
    let publications = store.publications().await?;
    if json {
        let list: Vec<serde_json::Value> = publications.iter().map(summary).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if publications.is_empty() {
        println!("nothing is published");
    }
    for p in &publications {
        let n = &p.new;
        println!(
            "#{:<4} {:<6} {}  {}  {}@{}  {}{}{}",
            p.seq,
            n.stage.as_str(),
            n.version,
            time::format(p.published_at),
            n.author,
            n.host,
            n.message,
            n.copied_from
                .map(|c| format!(" (content of #{c})"))
                .unwrap_or_default(),
            n.invariant_change
                .as_ref()
                .map(|c| format!(" [invariant change: {c}]"))
                .unwrap_or_default(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A publication without its files, as history and the console show it.
pub fn summary(p: &Publication) -> serde_json::Value {
    serde_json::json!({
        "seq": p.seq,
        "stage": p.new.stage.as_str(),
        "version": p.new.version,
        "published_at": time::format(p.published_at),
        "author": p.new.author,
        "host": p.new.host,
        "message": p.new.message,
        "proof": p.new.proof,
        "invariant_change": p.new.invariant_change,
        "copied_from": p.new.copied_from,
    })
}

/// `policy fleet`: what each gateway reports it serves.
pub async fn fleet(db: &PublicationDb, json: bool) -> anyhow::Result<ExitCode> {
    let store = db.open().await?;
    let fleet = store.fleet().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&fleet)?);
        return Ok(ExitCode::SUCCESS);
    }
    if fleet.is_empty() {
        println!("no gateway has reported");
    }
    let now = time::now();
    for g in &fleet {
        println!(
            "{}  {}  version {}{}  since {}  {}  last seen {} s ago{}{}",
            g.instance,
            g.host,
            g.version,
            g.seq
                .map(|s| format!(" (#{s})"))
                .unwrap_or_else(|| " (files)".into()),
            time::format(g.since),
            if g.proved { "proved" } else { "NOT PROVED" },
            (now - g.last_seen).num_seconds(),
            g.shadow_version
                .as_ref()
                .map(|v| format!("  shadow {v}: {} flip(s)", g.shadow_flips))
                .unwrap_or_default(),
            g.problem
                .as_ref()
                .map(|p| format!("  problem: {p}"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
