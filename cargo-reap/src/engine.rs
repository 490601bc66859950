//! `cargo reap test`: build, choose containment, run every suite, reap, report.

use std::io::Write;
use std::time::Instant;

use crate::cli::{CargoArgs, IsolationArg, ReapArgs, RunArgs, TestArgs};
use crate::config::{AllowRule, Config, PartialLimits};
use crate::containment::Isolation;
use crate::discover;
use crate::error::{EngineError, RunError};
use crate::exit;
use crate::interrupt;
use crate::lifeline::Lifeline;
use crate::report::output::ReportPath;
use crate::report::schema::{
    Failure, LoopSummary, Report, RunnerVitals, Summary, Trial, SCHEMA_VERSION,
};
use crate::report::terminal;
use crate::schedule::{self, ScheduleOptions};
use crate::suite::{Limits, RunContext, SuiteOptions};
use crate::sys;

/// What a run produced: the exit code and the report.
pub struct Outcome {
    pub exit_code: i32,
    pub report: Report,
}

/// What a run needs before its first suite: the isolation (and the line that
/// says why), and the lifeline guard.
struct Setup {
    isolation: Isolation,
    note: String,
    lifeline: Lifeline,
}

/// A run id unique on this machine (see [`crate::stale::new_run_id`]).
pub fn new_run_id() -> Result<String, EngineError> {
    Ok(crate::stale::new_run_id()?)
}

/// Run `cargo reap test`. Progress and the report go to stderr, as cargo's do.
pub fn run_test(args: &TestArgs) -> Result<Outcome, EngineError> {
    discover::message_format(&args.cargo.message_format).map_err(EngineError::Usage)?;
    match args.cargo.color {
        Some(crate::cli::ColorArg::Always) => terminal::set_colors(true),
        Some(crate::cli::ColorArg::Never) => terminal::set_colors(false),
        Some(crate::cli::ColorArg::Auto) | None => {}
    }
    if args.cargo.no_run {
        let r = &args.reap;
        let unused: Vec<&str> = [
            (args.testname.is_some(), "TESTNAME"),
            (!args.test_args.is_empty(), "-- ARGS"),
            (r.json.is_some(), "--json"),
            (r.junit.is_some(), "--junit"),
            (
                r.loop_count.is_some() || r.loop_duration.is_some(),
                "--loop",
            ),
            (r.no_capture, "--no-capture"),
            (r.fail_fast, "--fail-fast"),
            (r.partition.is_some(), "--partition"),
        ]
        .iter()
        .filter_map(|(given, name)| given.then_some(*name))
        .collect();
        if !unused.is_empty() {
            emit(
                &mut std::io::stderr(),
                &format!(
                    "cargo-reap: --no-run runs no suite, so these are not used: {}",
                    unused.join(", ")
                ),
            );
        }
        return build_only(&args.cargo);
    }
    execute(
        &args.reap,
        Source::Cargo(&args.cargo),
        &test_binary_args(args),
    )
}

/// What every test binary gets: the TESTNAME filter, the user's arguments
/// after `--`, then `--color WHEN` and (`--no-capture`) `--nocapture` unless
/// the user already gave them after `--`.
pub fn test_binary_args(args: &TestArgs) -> Vec<String> {
    let mut v: Vec<String> = args.testname.iter().cloned().collect();
    v.extend(args.test_args.iter().cloned());
    let given = |flag: &str| {
        args.test_args
            .iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    if let Some(c) = args.cargo.color {
        if !given("--color") {
            v.push(format!("--color={}", c.as_str()));
        }
    }
    if args.reap.no_capture && !given("--nocapture") && !given("--no-capture") {
        v.push("--nocapture".into());
    }
    v
}

/// Output is streamed: `--no-capture`, or libtest's own `--nocapture` after `--`.
fn streams(reap: &ReapArgs, test_args: &[String]) -> bool {
    reap.no_capture
        || test_args
            .iter()
            .any(|a| a == "--nocapture" || a == "--no-capture")
}

/// `cargo reap test --no-run`: build, name the test executables, run nothing.
fn build_only(cargo: &CargoArgs) -> Result<Outcome, EngineError> {
    let run_id = new_run_id()?;
    // A SIGINT while cargo builds reaches cargo (see discover::build).
    let interrupts = interrupt::install()?;
    let meta = discover::metadata(cargo)?;
    let built = discover::build(cargo)?;
    let mut err = std::io::stderr();
    let suites = discover::suites(built, &meta, cargo);
    // Doctests are compiled when they run: no executable to name (as `cargo
    // test --no-run` names none).
    for s in suites.iter().filter(|s| s.kind != "doctest") {
        emit(
            &mut err,
            &format!("  Executable {} ({})", s.id, s.binary.display()),
        );
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
            isolation: crate::containment::IsolationKind::ProcessGroup,
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
        },
    })
}

/// Run `cargo reap run -- CMD [ARGS]`: one suite, the command.
pub fn run_command(args: &RunArgs) -> Result<Outcome, EngineError> {
    if args.reap.fail_fast {
        emit(
            &mut std::io::stderr(),
            "cargo-reap: --fail-fast does not apply to cargo reap run (one command, one suite)",
        );
    }
    let Some((program, rest)) = args.command.split_first() else {
        return Err(EngineError::Usage(
            "cargo reap run needs a command: cargo reap run -- CMD [ARGS]".into(),
        ));
    };
    execute(&args.reap, Source::Command(program), rest)
}

/// Where the suites come from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// `cargo test --no-run` with these selection flags.
    Cargo(&'a CargoArgs),
    /// One command (`cargo reap run`).
    Command(&'a str),
}

fn execute(
    reap: &ReapArgs,
    source: Source<'_>,
    test_args: &[String],
) -> Result<Outcome, EngineError> {
    let command_mode = matches!(source, Source::Command(_));
    // What a rerun hint needs after `cargo reap test` to find the same workspace.
    let rerun_prefix: Vec<String> = match &source {
        Source::Cargo(c) => c
            .manifest_path
            .iter()
            .flat_map(|p| ["--manifest-path".to_string(), p.display().to_string()])
            .collect(),
        Source::Command(_) => Vec::new(),
    };
    let fail_on_tmp = reap.fail_on.iter().any(|w| w == "tmp");
    let started = Instant::now();
    let run_id = new_run_id()?;
    // Before any thread exists, so that every thread inherits the blocked mask.
    let interrupts = interrupt::install()?;
    let mut err = std::io::stderr();

    // Fail fast on what can be checked before a long build. An old report
    // stays as it is until the new one is complete (temp file + rename).
    if let (Some(j), Some(x)) = (&reap.json, &reap.junit) {
        if crate::report::output::same_file(j, x) {
            return Err(EngineError::Usage(format!(
                "--json {} and --junit {} name the same file: give each report its own path",
                j.display(),
                x.display()
            )));
        }
    }
    let check_report = |path: &std::path::Path| {
        ReportPath::check(path, &run_id).map_err(|e| {
            EngineError::Usage(format!(
                "cannot write the report to {}: {e}",
                path.display()
            ))
        })
    };
    let json_out = reap.json.as_deref().map(check_report).transpose()?;
    let junit_out = reap.junit.as_deref().map(check_report).transpose()?;

    // Orphans of every suite reparent to us, not to PID 1, in both modes.
    // Kept in cgroup mode too: a suite that left its leaf, double-forked,
    // called setsid and cleared its environment is found only this way. The
    // cost, an orphan's getppid() is never 1, is a documented difference
    // from cargo test (README; tests/reparent.rs).
    sys::become_subreaper()?;
    let quiet = command_mode || reap.quiet;
    // Choosing the isolation and starting the lifeline guard each start a
    // process (and the cgroup probe waits out a kernel grace period to move
    // it), so under `auto` both run while cargo builds. An explicit
    // `--isolation` is checked first: it fails fast, before a long build.
    let choose = || -> Result<(Isolation, String), EngineError> {
        let mut note = String::new();
        let isolation = Isolation::choose(reap.isolation, &run_id, &mut |line| note = line)
            .map_err(|e| match reap.isolation {
                IsolationArg::Cgroup => EngineError::Isolation(e),
                _ => EngineError::Contain(e),
            })?;
        Ok((isolation, note))
    };
    let setup = |chosen: Option<(Isolation, String)>| -> Result<Setup, EngineError> {
        let (isolation, note) = match chosen {
            Some(c) => c,
            None => choose()?,
        };
        let lifeline = Lifeline::start(&run_id)?;
        Ok(Setup {
            isolation,
            note,
            lifeline,
        })
    };
    let chosen = match reap.isolation {
        IsolationArg::Auto => None,
        _ => Some(choose()?),
    };
    // Leftovers of dead earlier runs are swept while cargo builds, and named
    // before any suite runs.
    let sweeper = std::thread::Builder::new()
        .name("cargo-reap-sweep".into())
        .spawn(|| crate::stale::sweep(false, crate::stale::Scope::WhenMarked))
        .map_err(|e| crate::error::ContainError::Sys {
            what: "starting the stale sweep",
            source: e,
        })?;
    // The run's own directory (per user, 0700): the suites' private TMPDIRs
    // and `cargo reap run`'s scratch files. Dropped on an error path, it is
    // removed; declared before the lifeline so that the guard has killed
    // everything before it goes.
    let (run_dir, tmp_note) = crate::scratch::RunDir::create(&run_id)?;
    if let Some(note) = tmp_note {
        emit(&mut err, &format!("cargo-reap: warning: {note}"));
    }

    let finish = |trials: Vec<Trial>,
                  build_failed: bool,
                  isolation: crate::containment::IsolationKind,
                  note: String,
                  lifeline: Option<Lifeline>,
                  mut problems: Vec<String>|
     -> Result<Outcome, EngineError> {
        if let Some(l) = lifeline {
            keep_going(&mut problems, "closing the lifeline guard", l.close());
        }
        let looping = trials.len() > 1 || reap.loop_count.is_some() || reap.loop_duration.is_some();
        let mut summary = Summary::default();
        for t in &trials {
            summary.add(&t.summary);
        }
        let interrupted = interrupts.signal();
        // `cargo reap run`: the command's own exit code, as it ended its last attempt.
        let child_code = trials
            .last()
            .and_then(|t| t.suites.first())
            .and_then(|s| s.attempts.last())
            .map(|a| match (a.exit_code, a.signal) {
                (Some(c), _) => c,
                (None, Some(sig)) => 128 + sig,
                (None, None) => exit::TEST_FAILED,
            });
        let exit_code = match (interrupted, child_code) {
            (Some(sig), _) => interrupt::exit_code(sig),
            _ if build_failed => exit::BUILD_FAILED,
            // cargo-reap's own cleanup failed: an internal error.
            _ if !problems.is_empty() => exit::USAGE,
            (None, Some(child)) if command_mode => exit::for_command(&summary, fail_on_tmp, child),
            _ => exit::for_summary(&summary, fail_on_tmp),
        };
        // The child's code passed through: nothing of cargo-reap's to say.
        let passed_through = command_mode
            && interrupted.is_none()
            && child_code.is_some_and(|c| c == exit_code)
            && summary.hung + summary.errored + summary.leaked_processes == 0;
        // The last trial that leaked keeps its full table; else the last trial.
        let shown_trial = trials
            .iter()
            .rev()
            .find(|t| t.summary.leaked_processes > 0)
            .or(trials.last());
        let shown = shown_trial.map(|t| t.suites.clone()).unwrap_or_default();
        let unattributed = shown_trial
            .map(|t| t.unattributed.clone())
            .unwrap_or_default();
        let loop_summary = looping.then(|| LoopSummary::of(&trials));
        let failures = if command_mode {
            Vec::new()
        } else {
            Failure::of(&shown, &rerun_prefix)
        };
        let report = Report {
            version: SCHEMA_VERSION,
            run_id: run_id.clone(),
            isolation,
            isolation_note: note,
            duration_ms: started.elapsed().as_millis() as u64,
            exit_code,
            build_failed,
            interrupted,
            suites: shown,
            unattributed,
            summary,
            trials: if looping { trials } else { Vec::new() },
            loop_summary,
            problems,
            failures,
        };
        let mut err = std::io::stderr();
        let table = terminal::leak_table(&report);
        if !table.is_empty() {
            emit(&mut err, table.trim_end());
        }
        if let Some(ls) = &report.loop_summary {
            emit(&mut err, terminal::loop_table(ls).trim_end());
        }
        // The reports before the summary line: a report that cannot be
        // written makes the exit code 2, and the summary prints the final one.
        let mut report = report;
        if let Some(out) = &junit_out {
            let written = crate::report::junit::render(&report)
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|xml| out.write(xml.as_bytes()));
            report_written(&mut report, "JUnit", out, written);
        }
        if let Some(out) = &json_out {
            let written = serde_json::to_vec_pretty(&report)
                .map_err(std::io::Error::from)
                .and_then(|mut json| {
                    json.push(b'\n');
                    out.write(&json)
                });
            report_written(&mut report, "JSON", out, written);
        }
        let exit_code = report.exit_code;
        let failing = terminal::failures_list(&report);
        if !failing.is_empty() {
            emit(&mut err, failing.trim_end());
        }
        if exit_code == exit::NO_TESTS {
            emit(
                &mut err,
                &format!(
                    "cargo-reap: error: no tests to run: the filter matched none of the {} test(s) of {} suite(s) (exit {})",
                    report.summary.tests.filtered_out,
                    report.summary.suites,
                    exit::NO_TESTS
                ),
            );
        }
        // Always the summary line (`-q` too), but not over a wrapped
        // command's own result when cargo-reap has nothing to add.
        if !build_failed && !passed_through {
            emit(&mut err, &terminal::summary_line(&report));
        }
        Ok(Outcome { exit_code, report })
    };

    // Before any trial: no suite ran; close the guard, report.
    let finish_early = |build_failed: bool, ready: Setup| {
        finish(
            Vec::new(),
            build_failed,
            ready.isolation.kind(),
            ready.note,
            Some(ready.lifeline),
            Vec::new(),
        )
    };
    // The isolation line (and --max-pids) once the isolation is known.
    let announce = |ready: &mut Setup| {
        let mut err = std::io::stderr();
        if !quiet || ready.isolation.kind() != crate::containment::IsolationKind::Cgroup {
            emit(&mut err, &format!("cargo-reap: {}", ready.note));
        }
        if let Some(n) = reap.max_pids {
            match ready.isolation.limit_pids(n) {
                Ok(()) => emit(
                    &mut err,
                    &format!("cargo-reap: each suite is limited to {n} processes (pids.max)"),
                ),
                Err(why) => emit(
                    &mut err,
                    &format!("cargo-reap: warning: --max-pids {n} not applied: {why}"),
                ),
            }
        }
    };
    let (mut suites, log_dir, config, ready) = match source {
        Source::Cargo(cargo) => {
            // `cargo metadata` runs while cargo builds: neither waits for the other.
            let (meta, built, ready) = std::thread::scope(|s| {
                let meta = s.spawn(|| discover::metadata(cargo));
                let ready = s.spawn(|| setup(chosen));
                let built = discover::build(cargo);
                (meta.join(), built, ready.join())
            });
            let (meta, mut ready) = match (meta, ready) {
                (Ok(m), Ok(r)) => (m, r?),
                (Err(panic), _) | (_, Err(panic)) => std::panic::resume_unwind(panic),
            };
            announce(&mut ready);
            // A bad manifest path or flag: metadata says it most clearly.
            let meta = match (meta, &built) {
                (Err(e), Err(_)) => return Err(e.into()),
                (m, _) => m?,
            };
            // Bad configuration is an error before any suite runs, naming key and file.
            let config = Config::load(&meta)?;
            let suites = match built {
                // Interrupted while cargo built (the signal was passed on to
                // it): a partial report with no suite, exit 128 + signal.
                Err(_) if interrupts.signal().is_some() => return finish_early(false, ready),
                Ok(b) => discover::suites(b, &meta, cargo),
                Err(crate::error::BuildError::Failed(why)) => {
                    emit(
                        &mut err,
                        &format!("cargo-reap: build failed ({why}); no suite was run"),
                    );
                    return finish_early(true, ready);
                }
                Err(crate::error::BuildError::Refused(why)) => {
                    return Err(EngineError::Usage(format!(
                        "cargo refused the selection ({why}); see its message above"
                    )))
                }
                Err(e) => return Err(e.into()),
            };
            (
                suites,
                discover::reap_dir(cargo, &meta).join(&run_id),
                config,
                ready,
            )
        }
        Source::Command(program) => {
            let mut ready = setup(chosen)?;
            announce(&mut ready);
            let (config, warning) = Config::for_runner()?;
            if let Some(w) = warning {
                emit(&mut err, &format!("cargo-reap: warning: {w}"));
            }
            (
                vec![discover::command_suite(program)?],
                run_dir.command_scratch(),
                config,
                ready,
            )
        }
    };
    // Leftovers of a dead run do not invalidate this one: a failed sweep is
    // a loud warning, and `cargo reap clean` retries it with a full error.
    match sweeper.join() {
        Ok(Ok(swept)) => {
            for line in swept.lines(false) {
                emit(&mut err, &format!("cargo-reap: stale sweep: {line}"));
            }
        }
        Ok(Err(e)) => emit(
            &mut err,
            &format!("cargo-reap: warning: stale sweep of dead runs failed: {e} (retry: cargo reap clean)"),
        ),
        Err(panic) => std::panic::resume_unwind(panic),
    }
    if let Some(p) = reap.partition {
        let before = suites.len();
        suites = p.select(suites);
        emit(
            &mut err,
            &format!(
                "cargo-reap: partition {p}: {} of {before} suites",
                suites.len()
            ),
        );
    }
    let cli_limits = PartialLimits {
        timeout: reap.timeout,
        grace: reap.grace,
        hang_retries: reap.hang_retries,
        settle: reap.settle,
    };
    for s in &mut suites {
        s.limits = config.limits_for(&s.id, &s.package, cli_limits, Limits::default());
    }
    for line in config.old_suite_keys(&suites) {
        emit(&mut err, &format!("cargo-reap: warning: {line}"));
    }
    let allow: Vec<AllowRule> = config.allow_rules().cloned().collect();
    let run_limits = cli_limits.over(config.workspace.limits.over(Limits::default()));
    if interrupts.signal().is_some() {
        return finish_early(false, ready);
    }
    if suites.is_empty() && reap.partition.is_some() {
        // More CI machines than suites: an empty share passes.
        return finish_early(false, ready);
    }
    if suites.is_empty() {
        return Err(EngineError::Usage(
            "no test binaries or doctests were selected".into(),
        ));
    }

    std::fs::create_dir_all(&log_dir).map_err(|source| RunError::Io {
        what: "creating log directory",
        path: log_dir.clone(),
        source,
    })?;
    // Test binaries understand `--list` / `--exact`; an arbitrary command need not.
    let runs_libtest = suites.iter().all(|s| s.kind != "command");
    let ws = &config.workspace;
    let attribute_mode = reap
        .attribute
        .or(ws.attribute)
        .unwrap_or(crate::suite::settings::AttributeMode::Auto);
    // The target runner of cargo's configuration for the suites' target.
    let runner = match &source {
        Source::Cargo(cargo) => {
            let runner = crate::runner::resolve(cargo.target.as_deref(), &cargo.config)
                .map_err(|e| EngineError::Usage(crate::error::chain(&e)))?;
            if crate::runner::is_cargo_reap(&runner) {
                emit(&mut err, &format!("cargo-reap: the configured target runner `{}` is cargo-reap itself: not used (the suites already run in containment)", runner.join(" ")));
                Vec::new()
            } else {
                if !runner.is_empty() && !quiet {
                    emit(&mut err, &format!("cargo-reap: target runner (cargo configuration): each suite runs as `{} BINARY ARGS`", runner.join(" ")));
                }
                runner
            }
        }
        Source::Command(_) => Vec::new(),
    };
    let stream = !command_mode && streams(reap, test_args);
    let options = SuiteOptions {
        // `run` passes output straight through: as a target runner, output
        // belongs where cargo test puts it.
        no_capture: command_mode,
        stream,
        runner,
        listable: runs_libtest,
        test_args: test_args.to_vec(),
        attribute: crate::suite::settings::AttributeOptions {
            // A command need not understand `--list` / `--exact`: only on request.
            mode: match (runs_libtest, attribute_mode) {
                (false, crate::suite::settings::AttributeMode::Auto) => {
                    crate::suite::settings::AttributeMode::Off
                }
                (_, m) => m,
            },
            max_tests: reap
                .attribute_max_tests
                .or(ws.attribute_max_tests)
                .unwrap_or(20),
            max_time: reap
                .attribute_max_time
                .or(ws.attribute_max_time)
                .unwrap_or(std::time::Duration::from_secs(60)),
        },
    };
    let jobs = match reap.jobs.or(ws.jobs) {
        Some(0) => return Err(EngineError::Usage("--jobs must be at least 1".into())),
        // Streamed output of suites running at once would interleave: one at
        // a time unless --jobs says otherwise (as nextest's --no-capture).
        _ if stream && reap.jobs.is_none() => 1,
        Some(n) => n,
        // Process groups can pin an untagged orphan to its suite only while
        // that suite runs alone: serial unless asked otherwise.
        None if ready.isolation.kind() == crate::containment::IsolationKind::ProcessGroup => 1,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let looping = reap.loop_count.is_some() || reap.loop_duration.is_some();
    if (reap.until_leak || reap.until_failure) && !looping {
        return Err(EngineError::Usage(
            "--until-leak and --until-failure go with --loop N or --loop-duration D".into(),
        ));
    }
    if reap.loop_count == Some(0) {
        return Err(EngineError::Usage("--loop must be at least 1".into()));
    }
    let tmp_root = run_dir.path().to_path_buf();
    let Setup {
        isolation,
        note,
        lifeline,
    } = ready;
    if !quiet {
        emit(
        &mut err,
        &format!(
            "cargo-reap: run {run_id}: {} suite{}{} (jobs {jobs}, timeout {}, grace {}, logs in {})",
            suites.len(),
            if suites.len() == 1 { "" } else { "s" },
            match (reap.loop_count, reap.loop_duration) {
                (Some(n), None) => format!(" x {n} trials"),
                (None, Some(d)) => format!(" in trials for {}", humantime::format_duration(d)),
                (Some(n), Some(d)) => format!(" x {n} trials (at most {})", humantime::format_duration(d)),
                (None, None) => String::new(),
            },
            humantime::format_duration(run_limits.timeout),
            humantime::format_duration(run_limits.grace),
            log_dir.display()
        ),
    );
    }

    let schedule = ScheduleOptions {
        jobs,
        tail_lines: reap.tail_lines,
        per_suite_lines: !looping,
        only_problems: quiet,
        fail_fast: reap.fail_fast && !reap.no_fail_fast,
        progress_bar: !stream,
    };
    let mut trials: Vec<Trial> = Vec::new();
    // Failures of the run's own work after suites ran: the report is still written.
    let mut problems: Vec<String> = Vec::new();
    let loop_started = Instant::now();
    for number in 1u32.. {
        let ctx = RunContext {
            isolation: &isolation,
            run_id: &run_id,
            options: &options,
            log_dir: &log_dir,
            tmp_root: &tmp_root,
            lifeline: &lifeline,
            trial: number,
        };
        let trial_started = Instant::now();
        let since = reap_probe::boottime_ticks().saturating_sub(1);
        let mut suites_run = schedule::run_suites(&ctx, &suites, &schedule);
        if schedule.fail_fast && suites_run.len() < suites.len() && interrupts.signal().is_none() {
            emit(
                &mut err,
                &format!(
                    "cargo-reap: --fail-fast: {} of {} suites not run after a suite failed (without --fail-fast every suite runs)",
                    suites.len() - suites_run.len(),
                    suites.len()
                ),
            );
        }
        apply_allow_list(&mut suites_run, &allow);
        let mut summary = Summary::of(&suites_run);
        // No suite can claim an orphan that left every containment while
        // several suites ran (a cgroup leaf too: a root suite can leave it):
        // whatever of the run is still alive is killed and reported.
        let mut unattributed = Vec::new();
        let left = keep_going(
            &mut problems,
            "listing the run's processes no suite claimed",
            crate::containment::pgroup::unattributed(&run_id, since),
        );
        if let Some(left) = left.filter(|l| !l.is_empty()) {
            let refused = keep_going(
                &mut problems,
                "killing the run's processes no suite claimed",
                crate::containment::pgroup::kill_listed(&left),
            );
            unattributed = left
                .iter()
                .map(|p| {
                    let mut leak = unattributed_leak(p, number);
                    let why = match &refused {
                        // The kill itself failed (said in the run's problems).
                        None => Some("the kill failed (see the run's problems)".to_string()),
                        Some(refused) => {
                            refused.iter().find(|(pid, _)| *pid == p.pid).map(|(_, e)| {
                                format!(
                                    "could not be killed: {}",
                                    crate::containment::pgroup::errno_name(*e)
                                )
                            })
                        }
                    };
                    if let Some(why) = why {
                        leak.reaped = false;
                        leak.kill_error = Some(why);
                    }
                    leak
                })
                .collect();
        }
        summary.leaked_processes += unattributed.len();
        summary.unattributed_processes += unattributed.len();
        // Orphans that exited on their own after being reparented to us are
        // our zombies: reap them every trial, or a long --loop piles them up.
        if let Some(zombies) = keep_going(
            &mut problems,
            "reaping orphaned zombies",
            sys::reap_unclaimed_zombies(),
        ) {
            tracing::debug!("trial {number}: reaped {zombies} orphaned zombie(s)");
        }
        let runner = match RunnerVitals::read() {
            Ok(v) => Some(v),
            Err(e) => {
                emit(
                    &mut err,
                    &format!("cargo-reap: warning: cannot read its own vitals in /proc/self: {e}"),
                );
                None
            }
        };
        let trial = Trial {
            number,
            duration_ms: trial_started.elapsed().as_millis() as u64,
            suites: suites_run,
            summary,
            unattributed,
            runner,
        };
        if looping {
            emit(&mut err, &terminal::trial_line(&trial, reap.loop_count));
        }
        let leaked = trial.summary.leaked_processes > 0;
        let failed = trial.summary.failed
            + trial.summary.crashed
            + trial.summary.hung
            + trial.summary.errored
            > 0;
        trials.push(trial);
        let done = interrupts.signal().is_some()
            || !looping
            || reap.loop_count.is_some_and(|n| number >= n)
            || reap
                .loop_duration
                .is_some_and(|d| loop_started.elapsed() >= d)
            || (reap.until_leak && leaked)
            || (reap.until_failure && failed);
        if done {
            break;
        }
    }
    keep_going(
        &mut problems,
        "closing the lifeline guard",
        lifeline.close(),
    );
    // What cannot be removed (a mount, an entry of another owner) is named,
    // and the run still reports.
    for w in run_dir.remove() {
        emit(&mut err, &format!("cargo-reap: warning: {w}"));
    }
    if let Some(orphans) = keep_going(
        &mut problems,
        "reaping orphaned zombies",
        sys::reap_unclaimed_zombies(),
    ) {
        tracing::debug!("reaped {orphans} orphaned zombie(s) at the end of the run");
    }
    if let Some(sig) = interrupts.signal() {
        let ran: usize = trials.last().map_or(0, |t| t.suites.len());
        emit(
            &mut err,
            &format!(
                "cargo-reap: interrupted by signal {sig}: {ran} of {} suites ran in the last trial; partial report",
                suites.len()
            ),
        );
    }
    finish(trials, false, isolation.kind(), note, None, problems)
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
            emit(
                &mut std::io::stderr(),
                &format!("cargo-reap: error: {problem}"),
            );
            problems.push(problem);
            None
        }
    }
}

/// A leak no suite could claim.
fn unattributed_leak(p: &reap_probe::ProcessInfo, trial: u32) -> crate::report::schema::Leak {
    let seen = crate::suite::Examined {
        info: p.clone(),
        forensics: None,
    };
    let mut leak = crate::suite::leak_of(&seen, trial, true);
    leak.attribution = Some(
        "no suite could claim it: orphaned outside every containment while several suites ran (use --jobs 1)".into(),
    );
    leak.findings = vec!["orphaned".into()];
    leak
}

/// Mark the leaks the configuration expects (`allow`): reported, not failing.
fn apply_allow_list(suites: &mut [crate::report::schema::SuiteReport], allow: &[AllowRule]) {
    for s in suites {
        for l in &mut s.leaks {
            if let Some(rule) = allow
                .iter()
                .find(|r| r.matches(&s.id, &s.package, &l.cmdline))
            {
                l.allowed = Some(rule.reason.clone());
            }
        }
    }
}

/// Write a line to the terminal. A closed stderr must not stop the run (the
/// JSON report and exit code still carry the result), so the error is traced.
fn emit(err: &mut impl Write, line: &str) {
    if let Err(e) = writeln!(err, "{line}") {
        tracing::debug!("stderr unavailable: {e}");
    }
}

/// After writing a report: a failure is said and makes the exit code 2
/// (a CI gate must not pass without the report it asked for).
fn report_written(report: &mut Report, what: &str, out: &ReportPath, written: std::io::Result<()>) {
    if let Err(e) = written {
        emit(
            &mut std::io::stderr(),
            &format!(
                "cargo-reap: error: could not write the {what} report to {}: {e}",
                out.path.display()
            ),
        );
        report.exit_code = exit::USAGE;
    }
}
