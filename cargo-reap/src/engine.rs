//! `cargo reap test`: build, choose containment, run every suite, reap, report.

use std::fs::File;
use std::io::Write;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::cli::{CargoArgs, IsolationArg, ReapArgs, RunArgs, TestArgs};
use crate::config::{AllowRule, Config, PartialLimits};
use crate::containment::Isolation;
use crate::discover;
use crate::error::{EngineError, RunError};
use crate::exit;
use crate::interrupt;
use crate::lifeline::Lifeline;
use crate::report::schema::{LoopSummary, Report, RunnerVitals, Summary, Trial, SCHEMA_VERSION};
use crate::report::terminal;
use crate::schedule::{self, ScheduleOptions};
use crate::supervise::{Limits, RunContext, SuiteOptions};
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

/// A run id unique on this machine: `<unix ms hex>-<runner pid>-<pid
/// namespace inode hex>`. The pid and its namespace let a later run recognise
/// leftovers of a dead one, and leave alone those of runs in other pid
/// namespaces (containers sharing the cgroup tree), whose pids mean nothing here.
pub fn new_run_id() -> Result<String, EngineError> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let ns = crate::stale::own_pid_namespace().map_err(|e| crate::error::ContainError::Sys {
        what: "reading /proc/self/ns/pid",
        source: e,
    })?;
    Ok(format!("{ms:x}-{}-{ns:x}", std::process::id()))
}

/// Run `cargo reap test`. Progress and the report go to stderr, as cargo's do.
pub fn run_test(args: &TestArgs) -> Result<Outcome, EngineError> {
    execute(&args.reap, Source::Cargo(&args.cargo), &args.test_args)
}

/// Run `cargo reap run -- CMD [ARGS]`: one suite, the command.
pub fn run_command(args: &RunArgs) -> Result<Outcome, EngineError> {
    let Some((program, rest)) = args.command.split_first() else {
        return Err(EngineError::Usage(
            "cargo reap run needs a command: cargo reap run -- CMD [ARGS]".into(),
        ));
    };
    execute(&args.reap, Source::Command(program), rest)
}

/// Where the suites come from.
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
    let fail_on_tmp = reap.fail_on.iter().any(|w| w == "tmp");
    let started = Instant::now();
    let run_id = new_run_id()?;
    // Before any thread exists, so that every thread inherits the blocked mask.
    let interrupts = interrupt::install()?;
    let mut err = std::io::stderr();

    // Fail fast on what can be checked before a long build.
    let json_out = match &reap.json {
        Some(path) => Some((path.clone(), open_report(path)?)),
        None => None,
    };
    let junit_out = match &reap.junit {
        Some(path) => Some((path.clone(), open_report(path)?)),
        None => None,
    };

    // Orphans of every suite reparent to us, not to PID 1, in both modes.
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

    let finish = |trials: Vec<Trial>,
                  build_failed: bool,
                  isolation: crate::containment::IsolationKind,
                  note: String,
                  lifeline: Option<Lifeline>|
     -> Result<Outcome, EngineError> {
        if let Some(l) = lifeline {
            l.close()?;
        }
        let looping = trials.len() > 1 || reap.loop_count.is_some() || reap.loop_duration.is_some();
        let mut summary = Summary::default();
        for t in &trials {
            summary.add(&t.summary);
        }
        let interrupted = interrupts.signal();
        let exit_code = match interrupted {
            Some(sig) => interrupt::exit_code(sig),
            None if build_failed => exit::BUILD_FAILED,
            None => exit::for_summary(&summary, fail_on_tmp),
        };
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
        };
        let mut err = std::io::stderr();
        let table = terminal::leak_table(&report);
        if !table.is_empty() {
            emit(&mut err, table.trim_end());
        }
        if let Some(ls) = &report.loop_summary {
            emit(&mut err, terminal::loop_table(ls).trim_end());
        }
        let clean_and_quiet = quiet && exit_code == exit::SUCCESS;
        if !build_failed && !clean_and_quiet {
            emit(&mut err, &terminal::summary_line(&report));
        }
        if let Some((path, file)) = &json_out {
            write_report(path, file, &report)?;
        }
        if let Some((path, mut file)) = junit_out.as_ref().map(|(p, f)| (p, f)) {
            let io = |source| RunError::Io {
                what: "writing the JUnit report",
                path: path.clone(),
                source,
            };
            let xml = crate::report::junit::render(&report)
                .map_err(|e| io(std::io::Error::other(e.to_string())))?;
            file.write_all(xml.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
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
                Ok(b) => discover::suites(b, &meta),
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
            (
                vec![discover::command_suite(program)?],
                std::env::temp_dir().join("cargo-reap").join(&run_id),
                Config::default(),
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
            "no test binaries were selected (doctests are not run by cargo-reap)".into(),
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
        .unwrap_or(crate::attribute::AttributeMode::Auto);
    let options = SuiteOptions {
        // `run` streams: as a target runner, output belongs where cargo test puts it.
        no_capture: reap.no_capture || command_mode,
        listable: runs_libtest,
        test_args: test_args.to_vec(),
        attribute: crate::attribute::AttributeOptions {
            // A command need not understand `--list` / `--exact`: only on request.
            mode: match (runs_libtest, attribute_mode) {
                (false, crate::attribute::AttributeMode::Auto) => {
                    crate::attribute::AttributeMode::Off
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
    let tmp_root = std::env::temp_dir().join(format!("cargo-reap-{run_id}"));
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
    };
    let mut trials: Vec<Trial> = Vec::new();
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
        let mut suites_run = schedule::run_suites(&ctx, &suites, &schedule)?;
        apply_allow_list(&mut suites_run, &allow);
        let mut summary = Summary::of(&suites_run);
        // No suite can claim an orphan that left every containment while
        // several suites ran (a cgroup leaf too: a root suite can leave it):
        // whatever of the run is still alive is killed and reported.
        let mut unattributed = Vec::new();
        let left = crate::containment::pgroup::unattributed(&run_id, since)?;
        if !left.is_empty() {
            let refused = crate::containment::pgroup::kill_listed(&left)?;
            unattributed = left
                .iter()
                .map(|p| {
                    let mut leak = unattributed_leak(p, number);
                    if let Some((_, e)) = refused.iter().find(|(pid, _)| *pid == p.pid) {
                        leak.reaped = false;
                        leak.kill_error = Some(format!(
                            "could not be killed: {}",
                            crate::containment::pgroup::errno_name(*e)
                        ));
                    }
                    leak
                })
                .collect();
        }
        summary.leaked_processes += unattributed.len();
        summary.unattributed_processes += unattributed.len();
        // Orphans that exited on their own after being reparented to us are
        // our zombies: reap them every trial, or a long --loop piles them up.
        let zombies = sys::reap_unclaimed_zombies()?;
        tracing::debug!("trial {number}: reaped {zombies} orphaned zombie(s)");
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
        let failed = trial.summary.failed + trial.summary.crashed + trial.summary.hung > 0;
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
    lifeline.close()?;
    remove_if_exists(&tmp_root)?;
    if command_mode {
        // Only the listing scratch files of `run` lived there.
        remove_if_exists(&log_dir)?;
    }
    let orphans = sys::reap_unclaimed_zombies()?;
    tracing::debug!("reaped {orphans} orphaned zombie(s) at the end of the run");
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
    finish(trials, false, isolation.kind(), note, None)
}

fn remove_if_exists(dir: &std::path::Path) -> Result<(), EngineError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RunError::Io {
            what: "removing",
            path: dir.to_path_buf(),
            source,
        }
        .into()),
    }
}

/// A leak no suite could claim.
fn unattributed_leak(p: &reap_probe::ProcessInfo, trial: u32) -> crate::report::schema::Leak {
    let seen = crate::supervise::Examined {
        info: p.clone(),
        forensics: None,
    };
    let mut leak = crate::supervise::leak_of(&seen, trial, true);
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

fn open_report(path: &std::path::Path) -> Result<File, EngineError> {
    File::create(path).map_err(|e| {
        EngineError::Usage(format!(
            "cannot write the report to {}: {e}",
            path.display()
        ))
    })
}

fn write_report(
    path: &std::path::Path,
    mut file: &File,
    report: &Report,
) -> Result<(), EngineError> {
    let io = |source| RunError::Io {
        what: "writing the JSON report",
        path: path.to_path_buf(),
        source,
    };
    serde_json::to_writer_pretty(&mut file, report).map_err(|e| io(e.into()))?;
    file.write_all(b"\n").map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(())
}
