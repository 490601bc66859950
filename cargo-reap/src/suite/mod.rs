//! One suite, run to its verdict: [`judge`] runs its attempts (each in
//! a fresh containment under a timeout; on expiry SIGTERM → grace → SIGKILL
//! for the whole tree; a hang is retried), collects and reaps the processes
//! that outlive its binary (leaks) and attributes them to tests;
//! [`Judged::finish`] then removes what it left in its TMPDIR.
//!
//! The modules, in the order a suite goes through them (each uses only
//! those above it; this one uses them all):
//! - `settings`: the values a run hands its suites (limits, options);
//! - `context`: what the suites of a run share, a containment registered
//!   with the lifeline guard;
//! - `command`: the one command line of a suite's binary;
//! - `capture`: its output, into its log, with libtest's lines tracked;
//! - `ahead`: what a suite needs before its first spawn (TMPDIR, log, first
//!   containment), made when it starts or, in a serial run, ahead;
//! - `examine`: its processes as reap-probe sees them;
//! - `sample`: its series while it runs (peaks, `--watch`);
//! - `listing`: its tests as libtest lists them;
//! - `attempt`: one run of its binary: spawn → wait → on exit | on hang → close;
//! - `attribution`: which test started each leak (re-runs are attempts).

pub mod ahead;
pub mod attempt;
pub mod attribution;
pub mod bisect;
pub mod capture;
pub mod command;
pub mod context;
pub mod examine;
pub mod listing;
pub mod sample;
pub mod settings;
pub mod stacks;
pub mod timing;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::discover::Suite;
use crate::error::RunError;
use reap_report::{Attempt, SuiteReport, SuiteStatus};

pub use ahead::{prepare, Prepared};
pub use command::TRIAL_VAR;
pub use context::{Backlog, RunContext};
pub use examine::{leak_of, Examined};
pub use settings::{AttributeMode, AttributeOptions, Limits, SuiteOptions};

use attempt::{run_attempt, AttemptOutcome, AttemptSpec};
use attribution::LeakAttribution;
use capture::SuiteLog;
use examine::mark_not_killed;

/// A suite judged: every process of it gone, its verdict known; what it left
/// in its TMPDIR not yet collected ([`Judged::finish`]), so that a scheduler
/// may start the next suite first and collect while that one runs.
pub struct Judged {
    report: SuiteReport,
    /// The suite's TMPDIR, once made.
    tmp_dir: Option<PathBuf>,
}

impl Judged {
    /// The verdict (collecting the TMPDIR never changes it).
    pub fn status(&self) -> SuiteStatus {
        self.report.status
    }

    /// Collect and remove what the suite left in its TMPDIR: the report is
    /// whole. Never fails: a deleted or replaced TMPDIR, a mount left in it
    /// or an entry that cannot be removed is a problem of this suite, not of
    /// the run.
    pub fn finish(self) -> SuiteReport {
        let mut report = self.report;
        if let Some(dir) = self.tmp_dir {
            let cleaned = crate::tmpdir::collect_and_remove(&dir);
            report.tmp = cleaned.left;
            report.problems.extend(cleaned.problems);
        }
        report
    }
}

/// Run one suite's attempts, reap everything they left and judge it (its
/// TMPDIR is collected by [`Judged::finish`]); `prepared`: its TMPDIR, log and
/// first containment made ahead ([`prepare`]), else they are made now.
///
/// Never fails the run: an error while running or judging the suite makes
/// its report `error` with a problem naming the error, keeping what was
/// already known (attempts, leaks). The suite's processes are killed on that
/// path too: a containment dropped without `close` kills its members.
pub fn judge(
    ctx: &RunContext<'_>,
    suite: &Suite,
    index: usize,
    prepared: Option<Prepared>,
) -> Judged {
    let started = Instant::now();
    let mut judged = Judged {
        report: SuiteReport {
            id: suite.id.clone(),
            package: suite.package.clone(),
            target: suite.target.clone(),
            kind: suite.kind,
            binary: suite.binary.display().to_string(),
            status: SuiteStatus::Error,
            duration_ms: 0,
            log: None,
            attempts: Vec::new(),
            leaks: Vec::new(),
            attribution: None,
            tests: Vec::new(),
            counts: None,
            tmp: None,
            problems: Vec::new(),
        },
        tmp_dir: None,
    };
    if let Err(e) = judge_suite(ctx, suite, index, prepared, &mut judged) {
        let report = &mut judged.report;
        report.status = SuiteStatus::Error;
        // The error itself: status `error` already says the suite was not judged.
        report.problems.push(crate::error::chain(&e));
    }
    judged.report.duration_ms = started.elapsed().as_millis() as u64;
    judged
}

/// The work of [`judge`], filling its report as it goes.
fn judge_suite(
    ctx: &RunContext<'_>,
    suite: &Suite,
    index: usize,
    prepared: Option<Prepared>,
    judged: &mut Judged,
) -> Result<(), RunError> {
    let log_path = ahead::log_path(ctx, suite);
    let Prepared {
        tmp_dir,
        log,
        first,
    } = match prepared {
        Some(p) => p,
        None => prepare(ctx, suite, index)?,
    };
    judged.tmp_dir = Some(tmp_dir);
    let report = &mut judged.report;
    if log.is_some() {
        report.log = Some(log_path.display().to_string());
    }
    run_attempts(ctx, suite, index, log.as_ref(), &log_path, first, report)?;
    // The verdict of the attempts; the log problem (if any) is a note on it.
    report.status = classify(&report.attempts);
    let ignored: HashSet<&str> = report
        .tests
        .iter()
        .filter(|t| t.result == reap_report::TestResult::Ignored)
        .map(|t| t.name.as_str())
        .collect();
    let attribution = attribution::attribute(
        ctx,
        suite,
        index,
        &mut report.leaks,
        &ignored,
        log.as_ref(),
        &log_path,
    );
    if let Some(log) = &log {
        report.problems.extend(log.problem());
    }
    report.attribution = attribution?;
    Ok(())
}

/// The suite's attempts: one, and another after each hang while retries
/// are left.
fn run_attempts(
    ctx: &RunContext<'_>,
    suite: &Suite,
    index: usize,
    log: Option<&SuiteLog>,
    log_path: &Path,
    mut first: Option<Box<dyn crate::containment::Containment>>,
    report: &mut SuiteReport,
) -> Result<(), RunError> {
    let max = suite.limits.hang_retries.saturating_add(1);
    for number in 1..=max {
        let spec = AttemptSpec {
            leaf: ahead::attempt_leaf(ctx, suite, index, number),
            number,
            args: &ctx.options.test_args,
            header: format!("attempt {number}"),
        };
        let out = run_attempt(ctx, suite, &spec, log, log_path, first.take())?;
        let threads = timing::Threads::of(&ctx.options.test_args, &suite.env);
        if !record_attempt(out, threads, report) {
            break;
        }
    }
    Ok(())
}

/// Add an attempt's leaks, test results and problems to `report`; returns
/// whether the attempt calls for another (a hang, not an interrupt).
fn record_attempt(out: AttemptOutcome, threads: timing::Threads, report: &mut SuiteReport) -> bool {
    let serial = threads.count == 1;
    let number = out.attempt.number;
    report.problems.extend(out.problems);
    for e in &out.survivors {
        let mut leak = leak_of(e, number, true);
        mark_not_killed(&mut leak, &out.not_killed);
        // First guess at the test: with one test thread, the one whose run
        // (per its output) is the only one spanning the process's start.
        // (Parallel libtest prints `test NAME ... ` only at completion.)
        let mut spans = out.windows.iter().filter(|w| w.contains(e.info.start_time));
        if let (true, Some(w), None) = (serial, spans.next(), spans.next()) {
            LeakAttribution::ByWindow.set(&mut leak, Some(w.name.clone()));
        }
        report.leaks.push(leak);
    }
    report.tests = timing::outcomes(
        out.results,
        out.sections,
        &out.attempt.tests_in_flight,
        out.running_at.unwrap_or(out.spawned),
        threads,
    );
    report.counts = out.counts;
    report.problems.extend(capture::results_disagree(
        &report.tests.iter().map(|t| t.result).collect::<Vec<_>>(),
        report.counts.as_ref(),
    ));
    let attempt = out.attempt;
    let retry = attempt.timed_out && !attempt.interrupted;
    report.attempts.push(attempt);
    retry
}

/// A suite's status from its attempts.
pub fn classify(attempts: &[Attempt]) -> SuiteStatus {
    let Some(last) = attempts.last() else {
        return SuiteStatus::Fail;
    };
    // Stopped by our own interrupt handling: not a crash, not a pass.
    if last.interrupted {
        return SuiteStatus::Fail;
    }
    // Stopped by cargo-reap at the end of its watch: it lived through it.
    if last.watch_ended {
        return SuiteStatus::Pass;
    }
    let single = if last.timed_out {
        SuiteStatus::Hang
    } else if last.signal.is_some() {
        SuiteStatus::Crash
    } else if last.exit_code != Some(0) {
        SuiteStatus::Fail
    } else {
        SuiteStatus::Pass
    };
    if single == SuiteStatus::Pass && attempts.iter().any(|a| a.timed_out) {
        SuiteStatus::FlakyHang
    } else {
        single
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(timed_out: bool, code: Option<i32>, signal: Option<i32>) -> Attempt {
        Attempt {
            number: 1,
            exit_code: code,
            signal,
            timed_out,
            ..Attempt::default()
        }
    }

    #[test]
    fn classifies_attempts() {
        assert_eq!(
            classify(&[attempt(false, Some(0), None)]),
            SuiteStatus::Pass
        );
        assert_eq!(
            classify(&[attempt(false, Some(101), None)]),
            SuiteStatus::Fail
        );
        assert_eq!(
            classify(&[attempt(false, None, Some(6))]),
            SuiteStatus::Crash
        );
        assert_eq!(
            classify(&[attempt(true, None, Some(15)), attempt(true, None, Some(9))]),
            SuiteStatus::Hang
        );
        assert_eq!(
            classify(&[attempt(true, None, Some(15)), attempt(false, Some(0), None)]),
            SuiteStatus::FlakyHang
        );
        assert_eq!(
            classify(&[attempt(true, None, Some(15)), attempt(false, Some(1), None)]),
            SuiteStatus::Fail
        );
    }
}
