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
/// suite has been spawned (a [`Backlog`] worked off while that one runs); a
/// serial run also makes the next suite's TMPDIR, log and containment then
/// ([`suite::prepare`]): the path from one suite's exit to the next one's
/// spawn holds only what the verdict needs. Not when the suites' output goes
/// to the terminal (`--no-capture`): a suite's line must not follow the next
/// one's output.
pub fn run_suites(
    ctx: &RunContext<'_>,
    suites: &[Suite],
    opts: &ScheduleOptions,
    interrupts: &Interrupts,
    events: &dyn EventSink,
) -> Vec<SuiteReport> {
    let picker = Picker {
        queue: Mutex::new((0..suites.len()).collect()),
        opts,
        interrupts,
        failed: AtomicBool::new(false),
    };
    let finishing = Finishing {
        judged: Mutex::new(Vec::new()),
        results: Mutex::new(vec![None; suites.len()]),
        events,
    };
    let defer = !ctx.options.no_capture && !ctx.options.stream;
    let workers = opts.jobs.clamp(1, suites.len().max(1));
    events.event(Event::TrialStarted {
        suites: suites.len(),
    });
    let run_one = |ctx: &RunContext<'_>, i: usize, prepared: Option<suite::Prepared>| {
        events.event(Event::SuiteStarted { id: &suites[i].id });
        let judged = suite::judge(ctx, &suites[i], i, prepared);
        if matches!(
            judged.status(),
            SuiteStatus::Fail | SuiteStatus::Crash | SuiteStatus::Hang | SuiteStatus::Error
        ) {
            picker.failed.store(true, Ordering::SeqCst);
        }
        finishing.push(i, judged);
        if !defer {
            finishing.work_off();
        }
    };
    if workers == 1 {
        // Serial (`--jobs 1`, process groups, `cargo reap run`): on this
        // thread, no worker to start and join per trial.
        let ahead = Ahead {
            finishing: &finishing,
            picker: &picker,
            suites,
            ctx: *ctx,
            made: Mutex::new(None),
        };
        let ctx = RunContext {
            backlog: defer.then_some(&ahead as &dyn Backlog),
            ..*ctx
        };
        while let Some((i, prepared)) = ahead.next() {
            run_one(&ctx, i, prepared);
        }
    } else {
        let ctx = RunContext {
            backlog: defer.then_some(&finishing as &dyn Backlog),
            ..*ctx
        };
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    while let Some(i) = picker.next() {
                        run_one(&ctx, i, None);
                    }
                });
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

/// Which suite starts next, and whether any may.
struct Picker<'a> {
    queue: Mutex<VecDeque<usize>>,
    opts: &'a ScheduleOptions,
    interrupts: &'a Interrupts,
    /// A suite failed (`--fail-fast`).
    failed: AtomicBool,
}

impl Picker<'_> {
    /// No suite may start: after an interrupt, or (`--fail-fast`) a failure.
    fn stopped(&self) -> bool {
        self.interrupts.signal().is_some()
            || (self.opts.fail_fast && self.failed.load(Ordering::SeqCst))
    }

    /// The next suite to start, if one may.
    fn next(&self) -> Option<usize> {
        if self.stopped() {
            return None;
        }
        lock(&self.queue).pop_front()
    }
}

/// A serial run's backlog: the judged suites to finish, then what the next
/// suite needs, made ahead.
struct Ahead<'a> {
    finishing: &'a Finishing<'a>,
    picker: &'a Picker<'a>,
    suites: &'a [Suite],
    /// Without a backlog ([`suite::prepare`] spawns nothing).
    ctx: RunContext<'a>,
    /// The next suite, with what was made for it (none if that failed: it
    /// is made, and the failure reported, when the suite starts).
    made: Mutex<Option<(usize, Option<suite::Prepared>)>>,
}

impl Ahead<'_> {
    /// The next suite and what was made for it. What was made is undone if
    /// no suite may start any more (its suite was taken before the verdict
    /// or the interrupt that stops the run).
    fn next(&self) -> Option<(usize, Option<suite::Prepared>)> {
        match lock(&self.made).take() {
            None => self.picker.next().map(|i| (i, None)),
            Some((i, made)) if self.picker.stopped() => {
                if let Some(made) = made {
                    for problem in made.discard(&self.ctx, &self.suites[i]) {
                        eprintln!("cargo-reap: warning: {}: {problem}", self.suites[i].id);
                    }
                }
                None
            }
            next => next,
        }
    }
}

impl Backlog for Ahead<'_> {
    fn work_off(&self) {
        self.finishing.work_off();
        let mut made = lock(&self.made);
        if made.is_some() {
            return;
        }
        if let Some(i) = self.picker.next() {
            let prepared = match suite::prepare(&self.ctx, &self.suites[i], i) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::debug!("{}: not made ahead: {e}", self.suites[i].id);
                    None
                }
            };
            *made = Some((i, prepared));
        }
    }
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
