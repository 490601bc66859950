//! `cargo reap test`: build, choose containment, run every suite, reap, report.

use std::fs::File;
use std::io::Write;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::cli::{IsolationArg, TestArgs};
use crate::containment::Isolation;
use crate::discover;
use crate::error::{EngineError, RunError};
use crate::exit;
use crate::interrupt;
use crate::lifeline::Lifeline;
use crate::report::schema::{Report, SuiteReport, Summary, SCHEMA_VERSION};
use crate::report::terminal;
use crate::supervise::{self, RunContext, SuiteOptions};
use crate::sys;

/// What a run produced: the exit code and the report.
pub struct Outcome {
    pub exit_code: i32,
    pub report: Report,
}

/// A run id unique on this machine; it carries the runner's pid so a later
/// run can recognise leftovers of a dead one.
pub fn new_run_id() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{ms:x}-{}", std::process::id())
}

/// Run `cargo reap test`. Progress and the report go to stderr, as cargo's do.
pub fn run_test(args: &TestArgs) -> Result<Outcome, EngineError> {
    let started = Instant::now();
    let run_id = new_run_id();
    // Before any thread exists, so that every thread inherits the blocked mask.
    let interrupts = interrupt::install()?;
    let mut err = std::io::stderr();

    // Fail fast on what can be checked before a long build.
    let json_out = match &args.reap.json {
        Some(path) => Some((path.clone(), open_report(path)?)),
        None => None,
    };

    // Orphans of every suite reparent to us, not to PID 1, in both modes.
    sys::become_subreaper()?;
    let mut note = String::new();
    let isolation = Isolation::choose(args.reap.isolation, &run_id, &mut |line| note = line)
        .map_err(|e| match args.reap.isolation {
            IsolationArg::Cgroup => EngineError::Isolation(e),
            _ => EngineError::Contain(e),
        })?;
    emit(&mut err, &format!("cargo-reap: {note}"));
    // Leftovers of dead earlier runs go first, and are named.
    for line in crate::stale::sweep(false)?.lines(false) {
        emit(&mut err, &format!("cargo-reap: stale sweep: {line}"));
    }

    let finish = |suites: Vec<SuiteReport>, build_failed: bool| -> Result<Outcome, EngineError> {
        let summary = Summary::of(&suites);
        let interrupted = interrupts.signal();
        let exit_code = match interrupted {
            Some(sig) => interrupt::exit_code(sig),
            None if build_failed => exit::BUILD_FAILED,
            None => exit::for_summary(&summary),
        };
        let report = Report {
            version: SCHEMA_VERSION,
            run_id: run_id.clone(),
            isolation: isolation.kind(),
            isolation_note: note.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
            exit_code,
            build_failed,
            interrupted,
            suites,
            summary,
        };
        let mut err = std::io::stderr();
        let table = terminal::leak_table(&report);
        if !table.is_empty() {
            emit(&mut err, table.trim_end());
        }
        if !build_failed {
            emit(&mut err, &terminal::summary_line(&report));
        }
        if let Some((path, file)) = &json_out {
            write_report(path, file, &report)?;
        }
        Ok(Outcome { exit_code, report })
    };

    let meta = discover::metadata(&args.cargo)?;
    let suites = match discover::build(&args.cargo, &meta) {
        Ok(s) => s,
        Err(crate::error::BuildError::Failed(why)) => {
            emit(
                &mut err,
                &format!("cargo-reap: build failed ({why}); no suite was run"),
            );
            return finish(Vec::new(), true);
        }
        Err(crate::error::BuildError::Refused(why)) => {
            return Err(EngineError::Usage(format!(
                "cargo refused the selection ({why}); see its message above"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    if interrupts.signal().is_some() {
        return finish(Vec::new(), false);
    }
    if suites.is_empty() {
        return Err(EngineError::Usage(
            "no test binaries were selected (doctests are not run by cargo-reap)".into(),
        ));
    }

    let log_dir = discover::reap_dir(&args.cargo, &meta).join(&run_id);
    std::fs::create_dir_all(&log_dir).map_err(|source| RunError::Io {
        what: "creating log directory",
        path: log_dir.clone(),
        source,
    })?;
    let options = SuiteOptions {
        timeout: args.reap.timeout,
        grace: args.reap.grace,
        hang_retries: args.reap.hang_retries,
        settle: args.reap.settle,
        no_capture: args.reap.no_capture,
        test_args: args.test_args.clone(),
        attribute: crate::attribute::AttributeOptions {
            mode: args.reap.attribute,
            max_tests: args.reap.attribute_max_tests,
            max_time: args.reap.attribute_max_time,
        },
    };
    let lifeline = Lifeline::start(&run_id)?;
    let ctx = RunContext {
        isolation: &isolation,
        run_id: &run_id,
        options: &options,
        log_dir: &log_dir,
        lifeline: &lifeline,
    };
    emit(
        &mut err,
        &format!(
            "cargo-reap: run {run_id}: {} suite{} (timeout {}, grace {}, logs in {})",
            suites.len(),
            if suites.len() == 1 { "" } else { "s" },
            humantime::format_duration(options.timeout),
            humantime::format_duration(options.grace),
            log_dir.display()
        ),
    );

    let mut reports = Vec::with_capacity(suites.len());
    for (i, suite) in suites.iter().enumerate() {
        if interrupts.signal().is_some() {
            break;
        }
        let r = supervise::run_suite(&ctx, suite, i)?;
        emit(&mut err, &terminal::suite_line(&r));
        let tail = tail_of(&r, args.reap.tail_lines);
        let details = terminal::suite_details(&r, &tail);
        if !details.is_empty() {
            emit(&mut err, details.trim_end());
        }
        reports.push(r);
    }
    lifeline.close()?;
    let orphans = sys::sweep_zombie_children()?;
    tracing::debug!("reaped {orphans} orphaned zombie(s) at the end of the run");
    if let Some(sig) = interrupts.signal() {
        emit(
            &mut err,
            &format!(
                "cargo-reap: interrupted by signal {sig}: {} of {} suites ran; partial report",
                reports.len(),
                suites.len()
            ),
        );
    }
    finish(reports, false)
}

/// Write a line to the terminal. A closed stderr must not stop the run (the
/// JSON report and exit code still carry the result), so the error is traced.
fn emit(err: &mut impl Write, line: &str) {
    if let Err(e) = writeln!(err, "{line}") {
        tracing::debug!("stderr unavailable: {e}");
    }
}

fn tail_of(r: &crate::report::schema::SuiteReport, lines: usize) -> Vec<String> {
    let Some(log) = &r.log else { return Vec::new() };
    match std::fs::read(log) {
        Ok(bytes) => {
            // Only the end matters; the log may be large.
            let start = bytes.len().saturating_sub(256 * 1024);
            let text = String::from_utf8_lossy(&bytes[start..]);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..]
                .iter()
                .map(|s| s.to_string())
                .collect()
        }
        Err(e) => vec![format!("(could not read {log}: {e})")],
    }
}

fn open_report(path: &std::path::Path) -> Result<File, EngineError> {
    File::create(path).map_err(|e| {
        EngineError::Usage(format!(
            "cannot write the JSON report to {}: {e}",
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
