//! Phase 5: the end of the run — the lifeline guard closed, the run's
//! directory removed, then the report (the trial shown, the summary, the
//! exit code) handed to the reporter.

use super::discovery::Found;
use super::setup::{Ready, Run};
use super::trials::Ran;
use super::{emit, keep_going, Outcome};
use crate::config::Config;
use crate::error::EngineError;
use crate::options::WatchOptions;
use crate::scratch::RunDir;
use reap_report::exit;
use reap_report::trend::MaxGrowth;
use reap_report::IsolationKind;
use reap_report::{
    Attempt, Failure, LoopSummary, Report, Selection, Summary, Trial, WatchReport, SCHEMA_VERSION,
};

/// Before any trial (a failed build, an interrupt, an empty partition): no
/// suite ran; close the guard, report.
pub(super) fn before_trials(
    run: &Run<'_>,
    ready: Ready,
    build_failed: bool,
    selection: Option<Selection>,
) -> Result<Outcome, EngineError> {
    let mut problems = Vec::new();
    keep_going(
        &mut problems,
        "closing the lifeline guard",
        ready.lifeline.close(),
    );
    let kind = ready.isolation.kind();
    let ended = Ended {
        trials: Vec::new(),
        build_failed,
        problems,
        selection,
    };
    Ok(report(run, ended, kind, ready.note, None))
}

/// After the trials.
pub(super) fn after_trials(
    run: &Run<'_>,
    run_dir: RunDir,
    found: Found,
    ran: Ran,
) -> Result<Outcome, EngineError> {
    let Ran {
        trials,
        mut problems,
    } = ran;
    let Ready {
        isolation,
        note,
        lifeline,
    } = found.ready;
    keep_going(
        &mut problems,
        "closing the lifeline guard",
        lifeline.close(),
    );
    super::phase(run, "lifeline closed");
    // What cannot be removed (a mount, an entry of another owner) is named,
    // and the run still reports.
    for w in run_dir.remove() {
        emit(&format!("cargo-reap: warning: {w}"));
    }
    if let Some(orphans) = keep_going(
        &mut problems,
        "reaping orphaned zombies",
        crate::sys::reap_unclaimed_zombies(),
    ) {
        tracing::debug!("reaped {orphans} orphaned zombie(s) at the end of the run");
    }
    if let Some(sig) = run.interrupts.signal() {
        let ran: usize = trials.last().map_or(0, |t| t.suites.len());
        emit(&format!(
            "cargo-reap: interrupted by signal {sig}: {ran} of {} suites ran in the last trial; partial report",
            found.suites.len()
        ));
    }
    let watch = run
        .reap
        .watch
        .as_ref()
        .and_then(|w| watch_report(w, &found.config, &trials, &mut problems));
    let ended = Ended {
        trials,
        build_failed: false,
        problems,
        selection: found.selection,
    };
    let outcome = report(run, ended, isolation.kind(), note, watch);
    drop(isolation);
    Ok(outcome)
}

/// `--watch`: the command's series and the trend of each, and whether it
/// died before the watch ended. None when it never ran (its suite errored).
fn watch_report(
    w: &WatchOptions,
    config: &Config,
    trials: &[Trial],
    problems: &mut Vec<String>,
) -> Option<WatchReport> {
    let attempt = trials.last()?.suites.first()?.attempts.last()?;
    let max = [config.watch().max_growth, w.max_growth.clone()]
        .into_iter()
        .flatten()
        .try_fold(MaxGrowth::default(), |m, spec| m.with(&spec));
    // Both were checked before the run; a failure here is cargo-reap's own.
    let max = keep_going(problems, "--max-growth", max.map_err(std::io::Error::other))
        .unwrap_or_default();
    let timeline = attempt.timeline.clone().unwrap_or_default();
    let died = !attempt.watch_ended && !attempt.interrupted;
    Some(WatchReport {
        duration_ms: w.duration.as_millis() as u64,
        trends: reap_report::trend::judge_timeline(&timeline, &max),
        timeline,
        died_at_ms: died.then_some(attempt.duration_ms),
        died_with: died.then(|| exit_status(attempt)),
    })
}

/// The command's exit status: its code, or 128 + the signal that ended it.
fn exit_status(a: &Attempt) -> i32 {
    match (a.exit_code, a.signal) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => exit::TEST_FAILED,
    }
}

/// What the run ended with.
struct Ended {
    trials: Vec<Trial>,
    build_failed: bool,
    problems: Vec<String>,
    selection: Option<Selection>,
}

/// The report of the run, handed to the reporter; its exit code.
fn report(
    run: &Run<'_>,
    ended: Ended,
    isolation: IsolationKind,
    note: String,
    watch: Option<WatchReport>,
) -> Outcome {
    let Ended {
        trials,
        build_failed,
        problems,
        selection,
    } = ended;
    let looping = trials.len() > 1 || run.reap.looping.looping();
    let mut summary = Summary::default();
    for t in &trials {
        summary.add(&t.summary);
    }
    let interrupted = run.interrupts.signal();
    let child_code = command_exit_code(&trials);
    let exit_code = exit_code(
        run,
        &summary,
        build_failed,
        &problems,
        child_code,
        watch.as_ref(),
    );
    // The child's code passed through: nothing of cargo-reap's to say.
    let passed_through = run.command_mode
        && watch.is_none()
        && interrupted.is_none()
        && child_code.is_some_and(|c| c == exit_code)
        && summary.hung + summary.errored + summary.leaked_processes == 0;
    // The last trial that leaked keeps its full table; else the last trial.
    let shown_trial = reap_report::shown_trial(&trials).map(|i| &trials[i]);
    let shown = shown_trial.map(|t| t.suites.clone()).unwrap_or_default();
    let unattributed = shown_trial
        .map(|t| t.unattributed.clone())
        .unwrap_or_default();
    let failures = if run.command_mode {
        Vec::new()
    } else {
        Failure::of(&shown, &run.rerun_prefix)
    };
    let mut report = Report {
        version: SCHEMA_VERSION,
        run_id: run.run_id.clone(),
        isolation,
        isolation_note: note,
        duration_ms: run.started.elapsed().as_millis() as u64,
        exit_code,
        build_failed,
        interrupted,
        suites: shown,
        unattributed,
        summary,
        loop_summary: looping.then(|| LoopSummary::of(&trials)),
        trials: if looping { trials } else { Vec::new() },
        problems,
        failures,
        selection,
        merged_from: Vec::new(),
        watch,
    };
    // Always the summary line (`-q` too), but not over a wrapped command's
    // own result when cargo-reap has nothing to add.
    run.reporter
        .run_finished(&mut report, !build_failed && !passed_through);
    Outcome {
        exit_code: report.exit_code,
        report,
    }
}

/// `cargo reap run`: the command's own exit code, as it ended its last
/// attempt (0 when cargo-reap stopped it at the end of its watch).
fn command_exit_code(trials: &[Trial]) -> Option<i32> {
    trials
        .last()
        .and_then(|t| t.suites.first())
        .and_then(|s| s.attempts.last())
        .map(|a| {
            if a.watch_ended {
                exit::SUCCESS
            } else {
                exit_status(a)
            }
        })
}

fn exit_code(
    run: &Run<'_>,
    summary: &Summary,
    build_failed: bool,
    problems: &[String],
    child_code: Option<i32>,
    watch: Option<&WatchReport>,
) -> i32 {
    exit::for_run(&exit::Ending {
        interrupted: run.interrupts.signal(),
        build_failed,
        // cargo-reap's own cleanup failed: an internal error.
        problems: !problems.is_empty(),
        command: child_code.filter(|_| run.command_mode),
        summary,
        fail_on_tmp: run.reap.fail_on_tmp(),
        watch,
    })
}
