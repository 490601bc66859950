//! `cargo reap test` and `cargo reap run`, as the run's phases:
//! [`setup`] (run id, signals, report paths, scratch, isolation) →
//! [`discovery`] (build, configuration, suites) → [`plan`] (what every suite
//! gets) → [`trials`] (run the suites, collect what no suite claimed) →
//! [`finish`] (the report, the exit code). The engine takes
//! [`crate::options`] values and sends events to the reporter; it never
//! renders anything itself.

mod discovery;
mod finish;
mod plan;
mod scope;
mod setup;
mod trials;
mod vitals;

pub use scope::systemd_scope;

use crate::error::EngineError;
use crate::interrupt;
use crate::lifeline::ForkedGuard;
use crate::options::{CargoInvocation, Color, ReapOptions, RunOptions, TestOptions};
use crate::report::terminal;
use reap_report::exit;
use reap_report::{Report, Summary, SCHEMA_VERSION};

/// What a run produced: the exit code and the report.
pub struct Outcome {
    pub exit_code: i32,
    pub report: Report,
}

/// A run id unique on this machine (see [`crate::stale::new_run_id`]).
pub fn new_run_id() -> Result<String, EngineError> {
    Ok(crate::stale::new_run_id()?)
}

/// Run `cargo reap test`. Progress and the report go to stderr, as cargo's do.
///
/// `guard`: the lifeline guard the guardian forked for this runner (`None`:
/// the run starts one itself).
pub fn run_test(opts: &TestOptions, guard: Option<ForkedGuard>) -> Result<Outcome, EngineError> {
    match opts.cargo.color {
        Some(Color::Always) => terminal::set_colors(true),
        Some(Color::Never) => terminal::set_colors(false),
        Some(Color::Auto) | None => {}
    }
    if opts.cargo.no_run {
        if !opts.unused_with_no_run.is_empty() {
            emit(&format!(
                "cargo-reap: --no-run runs no suite, so these are not used: {}",
                opts.unused_with_no_run.join(", ")
            ));
        }
        return build_only(&opts.cargo);
    }
    execute(
        &opts.reap,
        Source::Cargo(&opts.cargo),
        &opts.test_args,
        guard,
    )
}

/// Run `cargo reap run -- CMD [ARGS]`: one suite, the command (`guard` as
/// for [`run_test`]).
pub fn run_command(opts: &RunOptions, guard: Option<ForkedGuard>) -> Result<Outcome, EngineError> {
    if opts.reap.fail_fast {
        emit("cargo-reap: --fail-fast does not apply to cargo reap run (one command, one suite)");
    }
    execute(
        &opts.reap,
        Source::Command(&opts.program),
        &opts.args,
        guard,
    )
}

/// Where the suites come from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// `cargo test --no-run` with these selection flags.
    Cargo(&'a CargoInvocation),
    /// One command (`cargo reap run`).
    Command(&'a str),
}

/// The phases of a run, in order.
fn execute(
    reap: &ReapOptions,
    source: Source<'_>,
    test_args: &[String],
    guard: Option<ForkedGuard>,
) -> Result<Outcome, EngineError> {
    let (run, run_dir, pending) = setup::Run::start(reap, source, test_args, guard)?;
    phase(&run, "setup");
    let found = match discovery::discover(&run, source, pending, test_args)? {
        discovery::Discovered::Suites(found) => found,
        discovery::Discovered::Early {
            ready,
            build_failed,
            selection,
        } => return finish::before_trials(&run, ready, build_failed, selection),
    };
    phase(&run, "discovery");
    let plan = plan::Plan::make(&run, &found, source, test_args)?;
    let ran = std::thread::scope(|s| {
        // `cargo reap test`: the logs of old runs go while the suites run.
        let pruner = match (source, found.log_dir.parent()) {
            (Source::Cargo(_), Some(reap_dir)) => {
                Some(s.spawn(move || crate::stale::prune_logs(reap_dir)))
            }
            _ => None,
        };
        let ran = trials::run_all(&run, &found, &plan);
        if let Some(pruner) = pruner {
            match pruner.join() {
                Ok(problems) => problems
                    .iter()
                    .for_each(|p| emit(&format!("cargo-reap: warning: {p}"))),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        ran
    });
    phase(&run, "trials");
    let outcome = finish::after_trials(&run, run_dir, found, ran);
    phase(&run, "finish");
    outcome
}

/// `-v`: when a phase ended, from the start of the run (where a run's time goes).
fn phase(run: &setup::Run<'_>, name: &str) {
    tracing::debug!(
        "phase {name} done at {:.2} ms",
        run.started.elapsed().as_secs_f64() * 1000.0
    );
}

/// `cargo reap test --no-run`: build, name the test executables, run nothing.
fn build_only(cargo: &CargoInvocation) -> Result<Outcome, EngineError> {
    let run_id = new_run_id()?;
    // A SIGINT while cargo builds reaches cargo (see discover::build).
    let interrupts = interrupt::install()?;
    let meta = crate::discover::metadata(cargo)?;
    let built = crate::discover::build(cargo, interrupts)?;
    let lib_dirs = crate::libdir::test_lib_dirs(
        cargo.target.as_deref(),
        &crate::discover::target_dir(cargo, &meta),
    );
    let suites =
        crate::discover::suites(built, &meta, cargo, &lib_dirs, &|_, _| Default::default());
    // Doctests are compiled when they run: no executable to name (as `cargo
    // test --no-run` names none).
    for s in suites
        .iter()
        .filter(|s| s.kind != crate::discover::SuiteKind::Doctest)
    {
        emit(&format!("  Executable {} ({})", s.id, s.binary.display()));
    }
    let exit_code = match interrupts.signal() {
        Some(sig) => interrupt::exit_code(sig),
        None => exit::SUCCESS,
    };
    Ok(Outcome {
        exit_code,
        report: Report {
            version: SCHEMA_VERSION,
            run_id,
            isolation: reap_report::IsolationKind::ProcessGroup,
            isolation_note: "--no-run: no suite was run".into(),
            duration_ms: 0,
            exit_code,
            build_failed: false,
            interrupted: interrupts.signal(),
            suites: Vec::new(),
            unattributed: Vec::new(),
            summary: Summary::default(),
            trials: Vec::new(),
            loop_summary: None,
            problems: Vec::new(),
            failures: Vec::new(),
            selection: None,
            merged_from: Vec::new(),
            watch: None,
        },
    })
}

/// A failure of the run's own work once suites have run (cleanup, the
/// lifeline guard): said at once and kept for the report (`problems`, exit
/// 2), so the run still reports every suite.
fn keep_going<T, E: std::error::Error>(
    problems: &mut Vec<String>,
    what: &str,
    r: Result<T, E>,
) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            let problem = format!("{what}: {}", crate::error::chain(&e));
            emit(&format!("cargo-reap: error: {problem}"));
            problems.push(problem);
            None
        }
    }
}

/// Write a line to stderr (a closed stderr is traced, never fatal).
fn emit(line: &str) {
    crate::report::events::line(line);
}
