//! Phase 4: the trials. Each runs every suite (the schedule), applies the
//! allow list, then kills and reports what no suite could claim; `--loop`
//! repeats until its count, duration or `--until-*` condition. Afterwards
//! the lifeline guard is closed and the run's directory removed.

use std::time::Instant;

use super::discovery::Found;
use super::plan::Plan;
use super::setup::Run;
use super::{emit, keep_going};
use crate::config::AllowRule;
use crate::containment::pgroup;
use crate::report::events::{Event, EventSink};
use crate::suite::RunContext;
use crate::sys;
use reap_report::{Leak, RunnerVitals, SuiteReport, Summary, Trial};

/// What the trials produced, and the failures of the run's own work.
pub(super) struct Ran {
    pub trials: Vec<Trial>,
    pub problems: Vec<String>,
}

pub(super) fn run_all(run: &Run<'_>, found: &Found, plan: &Plan) -> Ran {
    let mut trials: Vec<Trial> = Vec::new();
    // Failures of the run's own work after suites ran: the report is still written.
    let mut problems: Vec<String> = Vec::new();
    let loop_started = Instant::now();
    for number in 1u32.. {
        let trial = run_trial(run, found, plan, number, &mut problems);
        run.reporter.event(Event::TrialFinished { trial: &trial });
        let stop = stop_after(run, &trial, loop_started);
        trials.push(trial);
        if stop {
            break;
        }
    }
    Ran { trials, problems }
}

/// Stop after this trial? Always without `--loop`; else at its count, its
/// duration, an interrupt, or the `--until-*` condition.
fn stop_after(run: &Run<'_>, trial: &Trial, loop_started: Instant) -> bool {
    let l = &run.reap.looping;
    let s = &trial.summary;
    let leaked = s.leaked_processes > 0;
    let failed = s.failed + s.crashed + s.hung + s.errored > 0;
    run.interrupts.signal().is_some()
        || !l.looping()
        || l.count.is_some_and(|n| trial.number >= n)
        || l.duration.is_some_and(|d| loop_started.elapsed() >= d)
        || (l.until_leak && leaked)
        || (l.until_failure && failed)
}

fn run_trial(
    run: &Run<'_>,
    found: &Found,
    plan: &Plan,
    number: u32,
    problems: &mut Vec<String>,
) -> Trial {
    let ctx = RunContext {
        isolation: &found.ready.isolation,
        run_id: &run.run_id,
        options: &plan.options,
        log_dir: &plan.log_dir,
        tmp_root: &run.tmp_root,
        lifeline: &found.ready.lifeline,
        trial: number,
        interrupts: run.interrupts,
        live: plan
            .options
            .watch
            .map(|_| &run.reporter as &dyn crate::report::events::EventSink),
        // The schedule sets its own.
        backlog: None,
    };
    let trial_started = Instant::now();
    // Before the first spawn: what the trial starts is born after it.
    let since = reap_probe::Epoch::now();
    let suites = &found.suites;
    let mut suites_run =
        crate::schedule::run_suites(&ctx, suites, &plan.schedule, run.interrupts, &run.reporter);
    if plan.schedule.fail_fast
        && suites_run.len() < suites.len()
        && run.interrupts.signal().is_none()
    {
        emit(&format!(
            "cargo-reap: --fail-fast: {} of {} suites not run after a suite failed (without --fail-fast every suite runs)",
            suites.len() - suites_run.len(),
            suites.len()
        ));
    }
    super::phase(run, "suites ran");
    apply_allow_list(&mut suites_run, &plan.allow);
    let mut summary = Summary::of(&suites_run);
    let unattributed = unclaimed(&run.run_id, &since, number, problems);
    super::phase(run, "unclaimed processes checked");
    summary.leaked_processes += unattributed.len();
    summary.unattributed_processes += unattributed.len();
    // Orphans that exited on their own after being reparented to us are
    // our zombies: reap them every trial, or a long --loop piles them up.
    if let Some(zombies) = keep_going(
        problems,
        "reaping orphaned zombies",
        sys::reap_unclaimed_zombies(),
    ) {
        tracing::debug!("trial {number}: reaped {zombies} orphaned zombie(s)");
    }
    Trial {
        number,
        duration_ms: trial_started.elapsed().as_millis() as u64,
        suites: suites_run,
        summary,
        unattributed,
        runner: runner_vitals(),
    }
}

/// The runner's own vitals at the end of a trial (`--loop` shows their trend).
fn runner_vitals() -> Option<RunnerVitals> {
    match super::vitals::runner_vitals() {
        Ok(v) => Some(v),
        Err(e) => {
            emit(&format!(
                "cargo-reap: warning: cannot read its own vitals in /proc/self: {e}"
            ));
            None
        }
    }
}

/// No suite can claim an orphan that left every containment while several
/// suites ran (a cgroup leaf too: a root suite can leave it): whatever of
/// the run is still alive is killed and reported.
fn unclaimed(
    run_id: &str,
    since: &reap_probe::Epoch,
    trial: u32,
    problems: &mut Vec<String>,
) -> Vec<Leak> {
    let left = keep_going(
        problems,
        "listing the run's processes no suite claimed",
        pgroup::unattributed(run_id, since),
    );
    let Some(left) = left.filter(|l| !l.is_empty()) else {
        return Vec::new();
    };
    let refused = keep_going(
        problems,
        "killing the run's processes no suite claimed",
        pgroup::kill_listed(&left),
    );
    left.iter()
        .map(|p| {
            let mut leak = unattributed_leak(p, trial);
            let why = match &refused {
                // The kill itself failed (said in the run's problems).
                None => Some("the kill failed (see the run's problems)".to_string()),
                Some(refused) => refused
                    .iter()
                    .find(|(pid, _)| *pid == p.pid)
                    .map(|(_, e)| format!("could not be killed: {}", pgroup::errno_name(*e))),
            };
            if let Some(why) = why {
                leak.reaped = false;
                leak.kill_error = Some(why);
            }
            leak
        })
        .collect()
}

/// A leak no suite could claim.
fn unattributed_leak(p: &reap_probe::ProcessInfo, trial: u32) -> Leak {
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
fn apply_allow_list(suites: &mut [SuiteReport], allow: &[AllowRule]) {
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
