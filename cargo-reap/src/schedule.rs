//! Running a set of suites: a pool of `--jobs N` workers, each suite in its
//! own containment (so survivors are still attributed exactly), sending an
//! event as each suite starts and ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::discover::Suite;
use crate::interrupt::Interrupts;
use crate::report::events::{Event, EventSink};
use crate::suite::{self, RunContext};
use reap_report::{SuiteReport, SuiteStatus};

/// How suites are run.
pub struct ScheduleOptions {
    pub jobs: usize,
    /// `--fail-fast`: no suite starts once one failed, crashed, hung or errored.
    pub fail_fast: bool,
}

/// Run every suite (stopping early on an interrupt); reports in suite order.
/// A suite that cannot be judged is a report with status `error`: it never
/// stops the other suites.
pub fn run_suites(
    ctx: &RunContext<'_>,
    suites: &[Suite],
    opts: &ScheduleOptions,
    interrupts: &Interrupts,
    events: &dyn EventSink,
) -> Vec<SuiteReport> {
    let queue: Mutex<VecDeque<usize>> = Mutex::new((0..suites.len()).collect());
    let results: Mutex<Vec<Option<SuiteReport>>> = Mutex::new(vec![None; suites.len()]);
    let workers = opts.jobs.clamp(1, suites.len().max(1));
    let failed = AtomicBool::new(false);
    events.event(Event::TrialStarted {
        suites: suites.len(),
    });
    let work = || {
        while let Some(i) = next(&queue, opts, interrupts, &failed) {
            events.event(Event::SuiteStarted { id: &suites[i].id });
            let r = suite::run_suite(ctx, &suites[i], i);
            if matches!(
                r.status,
                SuiteStatus::Fail | SuiteStatus::Crash | SuiteStatus::Hang | SuiteStatus::Error
            ) {
                failed.store(true, Ordering::SeqCst);
            }
            events.event(Event::SuiteFinished { report: &r });
            results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
        }
    };
    if workers == 1 {
        // Serial (`--jobs 1`, process groups, `cargo reap run`): on this
        // thread, no worker to start and join per trial.
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(work);
            }
        });
    }
    events.event(Event::SuitesDone);
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// The next suite to start, if one may start: none after an interrupt, nor
/// (`--fail-fast`) after a failure.
fn next(
    queue: &Mutex<VecDeque<usize>>,
    opts: &ScheduleOptions,
    interrupts: &Interrupts,
    failed: &AtomicBool,
) -> Option<usize> {
    if interrupts.signal().is_some() {
        return None;
    }
    if opts.fail_fast && failed.load(Ordering::SeqCst) {
        return None;
    }
    queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
}
