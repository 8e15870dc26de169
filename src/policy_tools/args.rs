//! The arguments the `policy` subcommands share: where a set's files are,
//! where a question's entities come from, how the solver runs.

use crate::policy::PolicyEngine;
use crate::verify::{self, Counterexample, VerifyOptions};
use anyhow::Context as _;
use std::path::PathBuf;
use std::time::Duration;

/// Where the policies and the schema are.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyDirs {
    /// The directory of *.cedar policy files.
    #[arg(long, default_value = "policies")]
    pub policies: PathBuf,
    /// The directory of *.cedarschema files.
    #[arg(long, default_value = "schema")]
    pub schema: PathBuf,
}

/// Where the entities of a question come from.
#[derive(Debug, Clone, clap::Args)]
pub struct EntitySource {
    /// Load the entities from this fixture (docs/domain.md section 5 format).
    #[arg(
        long,
        conflicts_with = "database_url",
        required_unless_present = "database_url"
    )]
    pub fixture: Option<PathBuf>,
    /// Load the entities from this database (sqlite://PATH or postgres://...).
    #[arg(long)]
    pub database_url: Option<String>,
}

impl PolicyDirs {
    pub(super) fn load(&self) -> Result<PolicyEngine, crate::policy::PolicyLoadError> {
        PolicyEngine::load(&self.policies, &self.schema)
    }
}

/// How `verify` and `diff` run the solver.
#[derive(Debug, Clone, clap::Args)]
pub struct SolverArgs {
    /// Time limit for the whole run, in seconds; what is not proved by then
    /// is reported as not proved (never as a pass).
    #[arg(long, default_value_t = verify::DEFAULT_TIMEOUT.as_secs())]
    pub timeout_secs: u64,
    /// Solver processes at once [default: the cores, at most 4].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Write every counterexample as a decision test file into this directory.
    #[arg(long, value_name = "DIR")]
    pub write_cases: Option<PathBuf>,
    /// How many counterexamples to print in full, per property (verify) or
    /// per direction (diff); the others are listed on one line each.
    #[arg(long, default_value_t = 1)]
    pub show: usize,
}

impl SolverArgs {
    pub(super) fn options(&self) -> VerifyOptions {
        let mut options = VerifyOptions {
            timeout: Duration::from_secs(self.timeout_secs),
            ..VerifyOptions::default()
        };
        if let Some(jobs) = self.jobs {
            options.jobs = jobs.max(1);
        }
        options
    }

    /// Writes `cases` as `<dir>/<name>-<n>.json`; prints where.
    pub(super) fn write<'c>(
        &self,
        cases: impl IntoIterator<Item = (&'c str, &'c Counterexample)>,
    ) -> anyhow::Result<()> {
        let Some(dir) = &self.write_cases else {
            return Ok(());
        };
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut count: std::collections::HashMap<String, usize> = Default::default();
        let mut written = 0;
        for (name, c) in cases {
            let safe: String = name
                .chars()
                .map(|ch| {
                    if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
                        ch
                    } else {
                        '_'
                    }
                })
                .collect();
            let n = count.entry(safe.clone()).or_insert(0);
            *n += 1;
            let path = dir.join(format!("{safe}-{n}.json"));
            std::fs::write(&path, serde_json::to_string_pretty(&c.test)? + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
            written += 1;
        }
        println!(
            "{written} decision test file(s) written to {}",
            dir.display()
        );
        Ok(())
    }
}
