//! Do the reports belong together? Each is a run of one share of one
//! selection (its `selection`: the fingerprint of the suites selected before
//! `--partition`, and the partition). Reports of different selections, or
//! of one selection split two ways, are refused unless `--allow-mixed`; a
//! shard with no report is warned about; several runs of one shard become
//! trials. A report without `selection` (an older cargo-reap) is merged with
//! a warning that it cannot be checked.

use super::{Input, MergeError};
use crate::options::Partition;
use reap_report::Report;

/// What a report is a run of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareKey {
    /// A share of a selection (`partition` `None`: all of it).
    Selected {
        fingerprint: String,
        partition: Option<Partition>,
    },
    /// A report without `selection`: the ids of the suites it ran.
    Unchecked { suites: Vec<String> },
}

/// The runs of one share, in the order given (indices of the inputs).
#[derive(Debug)]
pub struct Share {
    pub key: ShareKey,
    pub runs: Vec<usize>,
}

/// The inputs grouped and what was found on the way.
#[derive(Debug)]
pub struct Checked {
    pub shares: Vec<Share>,
    /// Said as they are (how repeated shards are merged).
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
    /// One selection, every report checked, no shard missing: how many
    /// suites it selected (the merged report should have them all).
    expected_suites: Option<usize>,
}

pub fn check(inputs: &[Input], allow_mixed: bool) -> Result<Checked, MergeError> {
    same_run_twice(inputs)?;
    let keys = inputs.iter().map(key_of).collect::<Result<Vec<_>, _>>()?;
    let mut warnings: Vec<String> = inputs
        .iter()
        .zip(&keys)
        .filter(|(i, k)| matches!(k, ShareKey::Unchecked { .. }) && ran_suites(&i.report))
        .map(|(i, _)| format!(
            "{} has no `selection` (written by an older cargo-reap): whether it belongs to the same selection cannot be checked",
            i.path.display()
        ))
        .collect();
    let selections = selections(&keys);
    if selections.len() > 1 {
        let listing = selections
            .iter()
            .map(|(_, members)| list_selection(inputs, members))
            .collect::<Vec<_>>()
            .join("; ");
        if !allow_mixed {
            return Err(MergeError::Mixed(format!(
                "reports of different selections (other suites or test arguments): {listing}. Merge the reports of one command line, or pass --allow-mixed"
            )));
        }
        warnings.push(format!(
            "--allow-mixed: merging reports of different selections: {listing}"
        ));
    }
    let mut missing = false;
    // A run that ended before its suites were known (the build failed or
    // was interrupted) names no shard: it may be the one missing.
    let unknown = inputs
        .iter()
        .filter(|i| i.report.selection.is_none() && !ran_suites(&i.report))
        .map(|i| i.path.display().to_string())
        .collect::<Vec<_>>();
    for (_, members) in &selections {
        let shards = shard_check(inputs, &keys, members, allow_mixed)?;
        missing |= !shards.is_empty();
        warnings.extend(shards.into_iter().map(|w| match unknown.is_empty() {
            true => w,
            false => format!(
                "{w} (unless it is {}, which ended before its suites were known)",
                unknown.join(" or ")
            ),
        }));
    }
    let checked_all = !inputs.iter().any(|i| i.report.selection.is_none());
    let expected_suites = match selections.as_slice() {
        [(_, members)] if checked_all && !missing => inputs[members[0]]
            .report
            .selection
            .as_ref()
            .map(|s| s.suites_total),
        _ => None,
    };
    let shares = group(keys);
    let notes = shares
        .iter()
        .filter(|s| s.runs.len() > 1)
        .map(|s| repeated(inputs, s))
        .collect();
    Ok(Checked {
        shares,
        notes,
        warnings,
        expected_suites,
    })
}

/// One run given twice (the same file, or a copy) would count its suites
/// twice: refused.
fn same_run_twice(inputs: &[Input]) -> Result<(), MergeError> {
    for (i, a) in inputs.iter().enumerate() {
        if let Some(b) = inputs[..i]
            .iter()
            .find(|b| b.report.run_id == a.report.run_id)
        {
            return Err(MergeError::Mixed(format!(
                "{} and {} are the same run ({}): give each report once",
                b.path.display(),
                a.path.display(),
                a.report.run_id
            )));
        }
    }
    Ok(())
}

/// A report's share: its selection, else the suites it ran.
fn key_of(input: &Input) -> Result<ShareKey, MergeError> {
    let Some(sel) = &input.report.selection else {
        let mut suites: Vec<String> = all_suite_ids(&input.report);
        suites.sort();
        suites.dedup();
        return Ok(ShareKey::Unchecked { suites });
    };
    let partition = sel
        .partition
        .as_deref()
        .map(Partition::parse)
        .transpose()
        .map_err(|why| MergeError::NotAReport {
            path: input.path.clone(),
            why: format!("selection.partition: {why}"),
        })?;
    Ok(ShareKey::Selected {
        fingerprint: sel.fingerprint.clone(),
        partition,
    })
}

/// The ids of every suite a report ran (every trial's).
fn all_suite_ids(r: &Report) -> Vec<String> {
    r.suites
        .iter()
        .chain(r.trials.iter().flat_map(|t| &t.suites))
        .map(|s| s.id.clone())
        .collect()
}

fn ran_suites(r: &Report) -> bool {
    !all_suite_ids(r).is_empty()
}

/// The distinct fingerprints, in the order first given, with the inputs of each.
fn selections(keys: &[ShareKey]) -> Vec<(&str, Vec<usize>)> {
    let mut out: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let ShareKey::Selected { fingerprint, .. } = k else {
            continue;
        };
        match out.iter_mut().find(|(f, _)| f == fingerprint) {
            Some((_, members)) => members.push(i),
            None => out.push((fingerprint, vec![i])),
        }
    }
    out
}

/// `a.json, b.json (selection 0123456789abcdef, 4 suites)`
fn list_selection(inputs: &[Input], members: &[usize]) -> String {
    let files: Vec<String> = members
        .iter()
        .map(|&i| inputs[i].path.display().to_string())
        .collect();
    let sel = inputs[members[0]].report.selection.as_ref();
    format!(
        "{} (selection {}, {} suites)",
        files.join(", "),
        sel.map_or("?", |s| s.fingerprint.as_str()),
        sel.map_or(0, |s| s.suites_total)
    )
}

/// The shards of one selection: one partition scheme (or none) throughout,
/// else refused (their suites overlap) unless `--allow-mixed`; a warning for
/// each shard of the scheme no report is of.
fn shard_check(
    inputs: &[Input],
    keys: &[ShareKey],
    members: &[usize],
    allow_mixed: bool,
) -> Result<Vec<String>, MergeError> {
    let partitions: Vec<Option<Partition>> = members
        .iter()
        .map(|&i| match &keys[i] {
            ShareKey::Selected { partition, .. } => *partition,
            ShareKey::Unchecked { .. } => None,
        })
        .collect();
    let scheme = |p: &Option<Partition>| p.map(|p| (p.by_hash, p.n));
    let first = scheme(&partitions[0]);
    if partitions.iter().any(|p| scheme(p) != first) {
        let listing: Vec<String> = members
            .iter()
            .zip(&partitions)
            .map(|(&i, p)| format!("{} {}", inputs[i].path.display(), share_name(*p)))
            .collect();
        let listing = listing.join(", ");
        if !allow_mixed {
            return Err(MergeError::Mixed(format!(
                "reports of one selection split in different ways: {listing}: their suites overlap. Merge the shards of one --partition scheme, or pass --allow-mixed"
            )));
        }
        return Ok(vec![format!(
            "--allow-mixed: merging shards of different --partition schemes: {listing}"
        )]);
    }
    let Some((by_hash, n)) = first else {
        return Ok(Vec::new());
    };
    Ok((1..=n)
        .map(|m| Partition { by_hash, m, n })
        .filter(|want| !partitions.contains(&Some(*want)))
        .map(|p| {
            format!(
                "shard {}/{} ({p}) is missing: no report names it, its suites are not in the merged report",
                p.m, p.n
            )
        })
        .collect())
}

fn share_name(p: Option<Partition>) -> String {
    match p {
        Some(p) => p.to_string(),
        None => "(every suite, no --partition)".into(),
    }
}

/// The inputs by share, shares in the order first given.
fn group(keys: Vec<ShareKey>) -> Vec<Share> {
    let mut shares: Vec<Share> = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        match shares.iter_mut().find(|s| s.key == key) {
            Some(s) => s.runs.push(i),
            None => shares.push(Share { key, runs: vec![i] }),
        }
    }
    shares
}

/// How several runs of one share are merged.
fn repeated(inputs: &[Input], share: &Share) -> String {
    let files: Vec<String> = share
        .runs
        .iter()
        .map(|&i| inputs[i].path.display().to_string())
        .collect();
    let what = match &share.key {
        ShareKey::Selected {
            partition: Some(p), ..
        } => format!("shard {p}"),
        ShareKey::Selected {
            partition: None, ..
        } => "the whole selection".to_string(),
        ShareKey::Unchecked { .. } => "the same suites".to_string(),
    };
    format!(
        "{} reports of {what} ({}): their runs are successive trials, in the order given",
        share.runs.len(),
        files.join(", ")
    )
}

/// One line per input: what it is.
pub fn describe(input: &Input) -> String {
    let r = &input.report;
    let share = match &r.selection {
        Some(s) => match &s.partition {
            Some(p) => format!("shard {p} of {} suites", s.suites_total),
            None => format!("all {} suites", s.suites_total),
        },
        None if r.build_failed => "the build failed".to_string(),
        None => "selection unknown".to_string(),
    };
    let trials = match r.trials.len() {
        0 | 1 => String::new(),
        n => format!(", {n} trials"),
    };
    let interrupted = match r.interrupted {
        Some(sig) => format!(", interrupted by signal {sig}"),
        None => String::new(),
    };
    format!(
        "{}: run {}, {share}: {} suite(s) ran{trials}{interrupted}, exit {}",
        input.path.display(),
        r.run_id,
        r.suites.len(),
        r.exit_code
    )
}

/// When every report was checked and no shard is missing, yet the merged
/// report has fewer suites than were selected (a run interrupted or stopped
/// by `--fail-fast`): how many are missing.
pub fn coverage(checked: &Checked, merged: &Report) -> Option<String> {
    let total = checked.expected_suites?;
    let mut ids = all_suite_ids(merged);
    ids.sort();
    ids.dedup();
    (ids.len() < total).then(|| {
        format!(
            "the merged report has {} of the {total} selected suites (a run was interrupted, failed to build or stopped by --fail-fast)",
            ids.len()
        )
    })
}
