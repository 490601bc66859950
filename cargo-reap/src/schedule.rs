//! Running a set of suites: a pool of `--jobs N` workers, each suite in its
//! own containment (so survivors are still attributed exactly), sending an
//! event as each suite starts and ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::discover::Suite;
use crate::interrupt::Interrupts;
use crate::report::events::{Event, EventSink};
use crate::suite::{self, Backlog, Judged, RunContext};
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
///
/// A judged suite's TMPDIR is collected, and its end reported, once the next
/// suite has been spawned (a [`Backlog`] worked off while that one runs):
/// the path from one suite's exit to the next one's start holds only what
/// the verdict needs. Not when the suites' output goes to the terminal
/// (`--no-capture`): a suite's line must not follow the next one's output.
pub fn run_suites(
    ctx: &RunContext<'_>,
    suites: &[Suite],
    opts: &ScheduleOptions,
    interrupts: &Interrupts,
    events: &dyn EventSink,
) -> Vec<SuiteReport> {
    let queue: Mutex<VecDeque<usize>> = Mutex::new((0..suites.len()).collect());
    let finishing = Finishing {
        judged: Mutex::new(Vec::new()),
        results: Mutex::new(vec![None; suites.len()]),
        events,
    };
    let defer = !ctx.options.no_capture && !ctx.options.stream;
    let ctx = RunContext {
        backlog: defer.then_some(&finishing as &dyn Backlog),
        ..*ctx
    };
    let workers = opts.jobs.clamp(1, suites.len().max(1));
    let failed = AtomicBool::new(false);
    events.event(Event::TrialStarted {
        suites: suites.len(),
    });
    let work = || {
        while let Some(i) = next(&queue, opts, interrupts, &failed) {
            events.event(Event::SuiteStarted { id: &suites[i].id });
            let judged = suite::judge(&ctx, &suites[i], i);
            if matches!(
                judged.status(),
                SuiteStatus::Fail | SuiteStatus::Crash | SuiteStatus::Hang | SuiteStatus::Error
            ) {
                failed.store(true, Ordering::SeqCst);
            }
            finishing.push(i, judged);
            if !defer {
                finishing.work_off();
            }
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
    // The last suites' backlog: no suite is left to run meanwhile.
    finishing.work_off();
    events.event(Event::SuitesDone);
    finishing
        .results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// Suites judged and not yet finished, and the finished reports by index.
struct Finishing<'a> {
    judged: Mutex<Vec<(usize, Judged)>>,
    results: Mutex<Vec<Option<SuiteReport>>>,
    events: &'a dyn EventSink,
}

impl Finishing<'_> {
    fn push(&self, index: usize, judged: Judged) {
        lock(&self.judged).push((index, judged));
    }
}

impl Backlog for Finishing<'_> {
    /// Finish every judged suite (each worker takes its own share), report
    /// its end and keep its report.
    fn work_off(&self) {
        let judged = std::mem::take(&mut *lock(&self.judged));
        for (i, j) in judged {
            let r = j.finish();
            self.events.event(Event::SuiteFinished { report: &r });
            lock(&self.results)[i] = Some(r);
        }
    }
}

/// A lock whose holder panicked still guards whole values (each is set in
/// one assignment).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
    lock(queue).pop_front()
}
