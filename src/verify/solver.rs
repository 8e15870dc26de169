//! The cvc5 processes behind `policy verify` and `policy diff`.
//!
//! cedar-policy-symcc talks SMT-LIB to a solver process over stdin/stdout.
//! The executable is `$CVC5` (SymCC's own convention), else the one
//! `tools/cvc5/install.sh` installs at its default place, else `cvc5` on the
//! `PATH`.
//! Each worker thread owns one process and a current-thread runtime, so
//! nothing here runs on the gateway's async workers, and every question is
//! bounded by the caller's deadline: past it the process is killed and the
//! answer is "not proved", never a pass.

use crate::policy::describe;
use cedar_policy_symcc::solver::{LocalSolver, Solver as _};
use cedar_policy_symcc::{CedarSymCompiler, CompiledPolicy, CompiledPolicySet, Env};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The solver executable: `$CVC5`, else `tools/cvc5/install.sh`'s default
/// install if present, else `cvc5` (looked up on the `PATH`).
pub fn solver_program() -> OsString {
    if let Some(program) = std::env::var_os("CVC5") {
        return program;
    }
    default_install()
        .filter(|path| path.is_file())
        .map_or_else(|| "cvc5".into(), PathBuf::into_os_string)
}

/// Where `tools/cvc5/install.sh` puts the executable without
/// `PGW_CVC5_HOME`: `${XDG_DATA_HOME:-$HOME/.local/share}/partner-gateway/cvc5-1.3.1/bin/cvc5`.
fn default_install() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/share")))?;
    Some(data.join("partner-gateway/cvc5-1.3.1/bin/cvc5"))
}

/// The first line of `cvc5 --version`, to show which solver answered.
pub fn solver_version() -> Result<String, String> {
    let program = solver_program();
    let out = std::process::Command::new(&program)
        .arg("--version")
        .output()
        .map_err(|e| not_started(&program, &e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().next() {
        Some(line) if out.status.success() => Ok(line.trim().to_owned()),
        _ => Err(not_started(
            &program,
            &format!(
                "`--version` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        )),
    }
}

fn not_started(program: &OsString, why: &str) -> String {
    format!(
        "cannot run the SMT solver {:?} ({why}); install it with `bash tools/cvc5/install.sh`, \
         or set CVC5 to a cvc5 1.3.1 executable",
        program
    )
}

/// One question for the solver.
pub(super) enum Query<'a> {
    /// A request both sets allow (the first: the policy set; the second: an
    /// invariant's violation permit).
    Disjoint(&'a CompiledPolicySet, &'a CompiledPolicySet),
    /// A request the first set allows and the second does not.
    Implies(&'a CompiledPolicySet, &'a CompiledPolicySet),
    /// A request the set allows.
    AlwaysDenies(&'a CompiledPolicySet),
    /// A request on which the policy errors.
    NeverErrors(&'a CompiledPolicy),
}

/// A solver process and the runtime that drives it, on one thread.
pub(super) struct Worker {
    runtime: tokio::runtime::Runtime,
    compiler: Option<CedarSymCompiler<LocalSolver>>,
    deadline: Instant,
    /// Questions put to the solver.
    pub asked: usize,
}

impl Worker {
    fn start(deadline: Instant) -> Result<Worker, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime for the solver: {e}"))?;
        let mut worker = Worker {
            runtime,
            compiler: None,
            deadline,
            asked: 0,
        };
        if !worker.remaining().is_zero() {
            worker.compiler()?;
        }
        Ok(worker)
    }

    fn remaining(&self) -> std::time::Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The running solver, started (again, after a kill) when needed. A
    /// fresh process answers an empty `(check-sat)` first, so a solver that
    /// cannot run fails here with a clear message, not mid-proof.
    fn compiler(&mut self) -> Result<&mut CedarSymCompiler<LocalSolver>, String> {
        if self.compiler.is_none() {
            let program = solver_program();
            let remaining = self.remaining();
            let started = self.runtime.block_on(async {
                let mut command = tokio::process::Command::new(&program);
                command.args(["--lang", "smt"]).kill_on_drop(true);
                let mut solver = LocalSolver::from_command(&mut command)
                    .map_err(|e| not_started(&program, &describe(&e)))?;
                match tokio::time::timeout(remaining, solver.check_sat()).await {
                    Ok(Ok(_)) => Ok(solver),
                    Ok(Err(e)) => Err(not_started(&program, &describe(&e))),
                    Err(_) => Err(
                        "not proved: the time limit was reached while the solver started".into(),
                    ),
                }
            })?;
            let compiler = CedarSymCompiler::new(started).map_err(|e| describe(&e))?;
            self.compiler = Some(compiler);
        }
        self.compiler
            .as_mut()
            .ok_or_else(|| "the solver is not running".to_owned())
    }

    /// Asks one question: `Ok(None)` when it is proved that no such request
    /// exists, `Ok(Some(env))` with the solver's request and entities, `Err`
    /// when there is no answer (time limit, solver failure, `unknown`).
    pub fn ask(&mut self, query: Query<'_>) -> Result<Option<Env>, String> {
        if self.remaining().is_zero() {
            return Err("not checked: the time limit was reached".into());
        }
        self.asked += 1;
        self.compiler()?;
        let remaining = self.remaining();
        let Some(compiler) = self.compiler.as_mut() else {
            return Err("the solver is not running".into());
        };
        let answer = self.runtime.block_on(async {
            tokio::time::timeout(remaining, async {
                match query {
                    Query::Disjoint(a, b) => {
                        compiler.check_disjoint_with_counterexample_opt(a, b).await
                    }
                    Query::Implies(a, b) => {
                        compiler.check_implies_with_counterexample_opt(a, b).await
                    }
                    Query::AlwaysDenies(s) => {
                        compiler
                            .check_always_denies_with_counterexample_opt(s)
                            .await
                    }
                    Query::NeverErrors(p) => {
                        compiler.check_never_errors_with_counterexample_opt(p).await
                    }
                }
            })
            .await
        });
        match answer {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(cedar_policy_symcc::err::Error::SolverUnknown)) => {
                Err("the solver answered `unknown`".into())
            }
            Ok(Err(e)) => {
                // The process may be in any state after a failure: start afresh.
                self.compiler = None;
                Err(format!("the solver failed: {}", describe(&e)))
            }
            Err(_) => {
                // Dropping the compiler kills the process (kill_on_drop).
                self.compiler = None;
                Err("not proved: the time limit was reached while the solver worked".into())
            }
        }
    }
}

/// Runs `job` on every item with at most `jobs` workers (threads, each with
/// its own solver), and returns the results in the items' order with the
/// number of questions asked. Fails only when no solver could be started.
pub(super) fn run<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    deadline: Instant,
    job: impl Fn(&mut Worker, &T) -> R + Sync,
) -> Result<(Vec<R>, usize), String> {
    if items.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let asked = AtomicUsize::new(0);
    let threads = jobs.clamp(1, items.len());
    let started: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut worker = Worker::start(deadline)?;
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(item) = items.get(i) else { break };
                        let result = job(&mut worker, item);
                        results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
                    }
                    asked.fetch_add(worker.asked, Ordering::SeqCst);
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a solver worker panicked".into()))
            })
            .collect()
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    if results.iter().any(Option::is_none) {
        // Only when every worker failed to start does an item go unanswered.
        let why = started
            .into_iter()
            .find_map(Result::err)
            .unwrap_or_else(|| "no solver worker ran".into());
        return Err(why);
    }
    Ok((
        results.into_iter().flatten().collect(),
        asked.load(Ordering::SeqCst),
    ))
}
