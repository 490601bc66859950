//! Running a set of suites: `--jobs N` at once, each in its own containment
//! (so survivors are still attributed exactly), a line per suite as it ends.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;

use crate::discover::Suite;
use crate::error::RunError;
use crate::report::schema::SuiteReport;
use crate::report::terminal;
use crate::supervise::{self, RunContext};

/// How suites are run and shown.
pub struct ScheduleOptions {
    pub jobs: usize,
    pub tail_lines: usize,
    /// Print a line per suite (off in `--loop`, which prints per trial).
    pub per_suite_lines: bool,
    /// Only suites that did not pass cleanly get their line.
    pub only_problems: bool,
}

/// Run every suite (stopping early on an interrupt); reports in suite order.
pub fn run_suites(
    ctx: &RunContext<'_>,
    suites: &[Suite],
    opts: &ScheduleOptions,
) -> Result<Vec<SuiteReport>, RunError> {
    let queue: Mutex<VecDeque<usize>> = Mutex::new((0..suites.len()).collect());
    let results: Mutex<Vec<Option<SuiteReport>>> = Mutex::new(vec![None; suites.len()]);
    let failure: Mutex<Option<RunError>> = Mutex::new(None);
    let workers = opts.jobs.clamp(1, suites.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let stop = crate::interrupt::get().is_some_and(|i| i.signal().is_some())
                    || failure.lock().unwrap_or_else(|p| p.into_inner()).is_some();
                if stop {
                    return;
                }
                let Some(i) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else {
                    return;
                };
                match supervise::run_suite(ctx, &suites[i], i) {
                    Ok(r) => {
                        let clean = r.status == crate::report::schema::SuiteStatus::Pass
                            && r.leaks.is_empty();
                        if opts.per_suite_lines && !(opts.only_problems && clean) {
                            print_suite(&r, opts.tail_lines);
                        }
                        results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                    }
                    Err(e) => {
                        let mut f = failure.lock().unwrap_or_else(|p| p.into_inner());
                        if f.is_none() {
                            *f = Some(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect())
}

/// The suite's line and details, written as one block.
fn print_suite(r: &SuiteReport, tail_lines: usize) {
    let tail = tail_of(r, tail_lines);
    let mut block = terminal::suite_line(r);
    block.push('\n');
    let details = terminal::suite_details(r, &tail);
    block.push_str(&details);
    if let Err(e) = std::io::stderr().lock().write_all(block.as_bytes()) {
        tracing::debug!("stderr unavailable: {e}");
    }
}

/// The last `lines` lines of a suite's log.
pub fn tail_of(r: &SuiteReport, lines: usize) -> Vec<String> {
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
