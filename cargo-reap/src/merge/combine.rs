//! The merged report, with the summary math a run uses (`reap_report`).
//!
//! Each share's runs are its trials, one after the other (a run with
//! `--loop` brings all of its trials); trial K of the merge is trial K of
//! every share that has one. `suites` is, for each share, the trial a run
//! shows (the last that leaked, else the last); `summary` sums the merged
//! trials; `duration_ms` sums the reports' (runner time: shards run side by
//! side, so the matrix took less wall time).

use std::collections::BTreeMap;

use super::check::Share;
use super::Input;
use reap_report::exit;
use reap_report::{
    Failure, IsolationKind, Leak, LoopSummary, Report, Selection, SuiteReport, Summary, Trial,
    SCHEMA_VERSION,
};

/// A trial of one of the inputs.
struct RunTrial {
    input: usize,
    trial: Trial,
}

pub fn combine(inputs: &[Input], shares: &[Share], run_id: String, fail_on_tmp: bool) -> Report {
    let per_share: Vec<Vec<RunTrial>> = shares.iter().map(|s| share_trials(inputs, s)).collect();
    let trials = merged_trials(&per_share);
    let mut summary = Summary::default();
    for t in &trials {
        summary.add(&t.summary);
    }
    let (suites, unattributed, failures) = shown(inputs, &per_share);
    let looping = trials.len() > 1 || inputs.iter().any(|i| i.report.loop_summary.is_some());
    let interrupted = inputs.iter().find_map(|i| i.report.interrupted);
    let build_failed = inputs.iter().any(|i| i.report.build_failed);
    let problems: Vec<String> = inputs
        .iter()
        .flat_map(|i| {
            i.report
                .problems
                .iter()
                .map(move |p| format!("{}: {p}", i.path.display()))
        })
        .collect();
    let (isolation, isolation_note) = isolation(inputs);
    Report {
        version: SCHEMA_VERSION,
        run_id,
        isolation,
        isolation_note,
        duration_ms: inputs.iter().map(|i| i.report.duration_ms).sum(),
        exit_code: match inputs {
            // One report re-rendered: its own code (a command's, `cargo reap run`; a watch's
            // verdict), unless `--fail-on tmp` asks the merge for more than the run did.
            [one] if !fail_on_tmp => one.report.exit_code,
            _ => exit_code(interrupted, build_failed, &problems, &summary, fail_on_tmp),
        },
        build_failed,
        interrupted,
        suites,
        summary,
        unattributed,
        loop_summary: looping.then(|| LoopSummary::of(&trials)),
        trials: if looping { trials } else { Vec::new() },
        problems,
        failures,
        selection: selection(inputs, shares),
        merged_from: inputs.iter().map(|i| i.report.run_id.clone()).collect(),
        watch: single_watch(inputs),
    }
}

/// A watch belongs to one command's run: kept when there is exactly one
/// input (`cargo reap merge RUN.json --html PAGE` re-renders a saved
/// report), dropped when several runs are combined (their series are of
/// different commands or times).
fn single_watch(inputs: &[Input]) -> Option<reap_report::WatchReport> {
    match inputs {
        [one] => one.report.watch.clone(),
        _ => None,
    }
}

/// The trials of a share: each run's, in the order given. A run without
/// `--loop` is one trial: its suites.
fn share_trials(inputs: &[Input], share: &Share) -> Vec<RunTrial> {
    share
        .runs
        .iter()
        .flat_map(|&input| {
            let r = &inputs[input].report;
            let trials = if r.trials.is_empty() {
                vec![Trial {
                    number: 1,
                    duration_ms: r.duration_ms,
                    suites: r.suites.clone(),
                    summary: Summary::of_trial(&r.suites, &r.unattributed),
                    unattributed: r.unattributed.clone(),
                    runner: None,
                }]
            } else {
                r.trials.clone()
            };
            trials
                .into_iter()
                .map(move |trial| RunTrial { input, trial })
        })
        .collect()
}

/// Trial K of the merge: trial K of every share that has one, its summary
/// recomputed. (The runner's vitals belong to one machine: not merged.)
fn merged_trials(per_share: &[Vec<RunTrial>]) -> Vec<Trial> {
    let count = per_share.iter().map(Vec::len).max().unwrap_or(0);
    (0..count)
        .map(|k| {
            let parts: Vec<&Trial> = per_share
                .iter()
                .filter_map(|s| s.get(k))
                .map(|rt| &rt.trial)
                .collect();
            let suites = by_id(
                parts
                    .iter()
                    .flat_map(|t| t.suites.iter().cloned().map(|s| (0, s))),
            );
            let suites: Vec<SuiteReport> = suites.into_iter().map(|(_, s)| s).collect();
            let unattributed: Vec<Leak> = parts
                .iter()
                .flat_map(|t| t.unattributed.iter().cloned())
                .collect();
            Trial {
                number: k as u32 + 1,
                duration_ms: parts.iter().map(|t| t.duration_ms).sum(),
                summary: Summary::of_trial(&suites, &unattributed),
                suites,
                unattributed,
                runner: None,
            }
        })
        .collect()
}

/// Suites by id, each once (a later one of the same id replaces an earlier:
/// overlapping shares under `--allow-mixed`), with where each came from.
fn by_id(suites: impl Iterator<Item = (usize, SuiteReport)>) -> Vec<(usize, SuiteReport)> {
    let mut map: BTreeMap<String, (usize, SuiteReport)> = BTreeMap::new();
    for (input, s) in suites {
        map.insert(s.id.clone(), (input, s));
    }
    map.into_values().collect()
}

/// What the report shows: for each share the trial a run shows (the last
/// that leaked, else the last), its suites, unattributed leaks, and the
/// failures its report listed for them (a suite's failures and rerun hints
/// are `Failure::of` over that suite, with the `--manifest-path` of its run).
fn shown(
    inputs: &[Input],
    per_share: &[Vec<RunTrial>],
) -> (Vec<SuiteReport>, Vec<Leak>, Vec<Failure>) {
    let mut suites = Vec::new();
    let mut unattributed = Vec::new();
    for trials in per_share {
        let plain: Vec<Trial> = trials.iter().map(|rt| rt.trial.clone()).collect();
        let Some(i) = reap_report::shown_trial(&plain) else {
            continue;
        };
        let rt = &trials[i];
        suites.extend(rt.trial.suites.iter().cloned().map(|s| (rt.input, s)));
        unattributed.extend(rt.trial.unattributed.iter().cloned());
    }
    let suites = by_id(suites.into_iter());
    let failures = suites
        .iter()
        .flat_map(|(input, s)| {
            inputs[*input]
                .report
                .failures
                .iter()
                .filter(|f| f.suite == s.id)
                .cloned()
        })
        .collect();
    let suites = suites.into_iter().map(|(_, s)| s).collect();
    (suites, unattributed, failures)
}

/// The exit code of the merge, in the order of a run's: interrupted
/// (128 + the first input's signal), the build failed (101), cargo-reap's
/// own cleanup failed in a run (2), then the verdicts of the merged summary.
fn exit_code(
    interrupted: Option<i32>,
    build_failed: bool,
    problems: &[String],
    summary: &Summary,
    fail_on_tmp: bool,
) -> i32 {
    exit::for_run(&exit::Ending {
        interrupted,
        build_failed,
        problems: !problems.is_empty(),
        command: None,
        summary,
        fail_on_tmp,
        watch: None,
    })
}

/// The weakest isolation of the inputs, and which report had which.
fn isolation(inputs: &[Input]) -> (IsolationKind, String) {
    let first = &inputs[0].report;
    if inputs.iter().all(|i| {
        i.report.isolation == first.isolation && i.report.isolation_note == first.isolation_note
    }) {
        return (first.isolation, first.isolation_note.clone());
    }
    let kind = if inputs
        .iter()
        .all(|i| i.report.isolation == IsolationKind::Cgroup)
    {
        IsolationKind::Cgroup
    } else {
        IsolationKind::ProcessGroup
    };
    let each: Vec<String> = inputs
        .iter()
        .map(|i| format!("{}: {}", i.path.display(), i.report.isolation_note))
        .collect();
    (
        kind,
        format!("merged from {} reports; {}", inputs.len(), each.join("; ")),
    )
}

/// The selection of the merge: the inputs' when they share one; the
/// partition kept only when every input is a run of the same share.
fn selection(inputs: &[Input], shares: &[Share]) -> Option<Selection> {
    let first = inputs[0].report.selection.as_ref()?;
    let same = inputs.iter().all(|i| {
        i.report
            .selection
            .as_ref()
            .is_some_and(|s| s.fingerprint == first.fingerprint)
    });
    same.then(|| Selection {
        fingerprint: first.fingerprint.clone(),
        suites_total: first.suites_total,
        partition: if shares.len() == 1 {
            first.partition.clone()
        } else {
            None
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_in_a_runs_order() {
        let failed = Summary {
            suites: 1,
            failed: 1,
            ..Default::default()
        };
        let problem = ["a.json: cleanup failed".to_string()];
        assert_eq!(exit_code(Some(15), true, &problem, &failed, false), 143);
        assert_eq!(exit_code(None, true, &problem, &failed, false), 101);
        assert_eq!(exit_code(None, false, &problem, &failed, false), 2);
        assert_eq!(exit_code(None, false, &[], &failed, false), 100);
        let tmp = Summary {
            suites: 1,
            passed: 1,
            suites_with_tmp_files: 1,
            ..Default::default()
        };
        assert_eq!(exit_code(None, false, &[], &tmp, false), 0);
        assert_eq!(exit_code(None, false, &[], &tmp, true), 103);
    }
}
