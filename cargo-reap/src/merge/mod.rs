//! `cargo reap merge REPORT.json…`: the reports of the shards of one CI
//! matrix (`--partition`), and of several runs of one selection, as one
//! report — the terminal's leak table and summary line, one `--json`, one
//! `--junit`, one `--html` — with the exit code of the whole.
//!
//! It only reads files and writes its reports: no suite runs, no process is
//! started. The inputs are checked first ([`check`]: schema version, same
//! selection, missing or repeated shards), then combined ([`combine`]: the
//! same summary math a run uses), then handed to the reporter a run uses.

mod check;
mod combine;

use std::path::{Path, PathBuf};

use crate::report::events::{line, Reporter, TerminalOptions};
use crate::report::output::{same_file, ReportPath};
use crate::report::terminal;
use reap_report::exit;
use reap_report::{Report, SuiteStatus, SCHEMA_VERSION};

/// `cargo reap merge --help`, after the options.
pub const HELP: &str = "\
CHECKS:
    Every report must be of schema version 1 and of one selection (the same
    suites before --partition, the same test arguments); reports of different
    selections or --partition schemes are refused unless --allow-mixed. A
    shard with no report is warned about; several reports of one shard (or of
    the whole selection) are its successive trials. A report of an older
    cargo-reap, without `selection`, is merged with a warning.

EXIT CODE:
    The merged report's, in the order of a run's: 128 + signal when a run was
    interrupted, 101 when a build failed, 2 when cargo-reap's own cleanup
    failed in a run, else from the merged verdicts: 100 (failed, crashed,
    error), 102 (hung), 103 (leaked), 4 (no tests matched), 0. A single report
    keeps its own exit code (a command's, cargo reap run) unless --fail-on tmp
    is given. Also 2 when the reports cannot be merged or a report cannot be
    written.";

/// `cargo reap merge`, resolved.
#[derive(Debug, Clone, Default)]
pub struct MergeOptions {
    /// The reports to merge, in the order given (later runs of one shard are
    /// later trials).
    pub reports: Vec<PathBuf>,
    pub json: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    /// `--html PATH`: the merged report as one self-contained page.
    pub html: Option<PathBuf>,
    /// Merge reports of different selections (or shard schemes) anyway.
    pub allow_mixed: bool,
    /// `--fail-on tmp`, as the runs had it: TMPDIR leftovers fail the merge.
    pub fail_on_tmp: bool,
}

/// Why the reports were not merged (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a cargo-reap JSON report: {why}", path.display())]
    NotAReport { path: PathBuf, why: String },
    #[error("cannot merge reports of another schema version: {0}")]
    Version(String),
    #[error("{0}")]
    Mixed(String),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    RunId(#[from] crate::error::EngineError),
}

/// One report given to merge.
pub struct Input {
    pub path: PathBuf,
    pub report: Report,
}

/// Merge; returns the exit code (errors said on stderr, exit 2).
pub fn run(opts: &MergeOptions) -> i32 {
    match merge(opts) {
        Ok(code) => code,
        Err(e) => {
            say(&format!(
                "cargo-reap: error: merge: {}",
                crate::error::chain(&e)
            ));
            exit::USAGE
        }
    }
}

fn merge(opts: &MergeOptions) -> Result<i32, MergeError> {
    let run_id = crate::engine::new_run_id()?;
    let reporter = reporter(opts, &run_id)?;
    let inputs = read_all(&opts.reports)?;
    let checked = check::check(&inputs, opts.allow_mixed)?;
    for i in &inputs {
        say(&format!("cargo-reap: merge: {}", check::describe(i)));
    }
    for note in &checked.notes {
        say(&format!("cargo-reap: merge: {note}"));
    }
    let mut report = combine::combine(&inputs, &checked.shares, run_id, opts.fail_on_tmp);
    let warnings = checked
        .warnings
        .iter()
        .cloned()
        .chain(check::coverage(&checked, &report));
    for w in warnings {
        say(&format!("cargo-reap: warning: merge: {w}"));
    }
    for s in &report.suites {
        let clean = s.status == SuiteStatus::Pass && s.leaks.is_empty() && s.problems.is_empty();
        if !clean {
            let mut block = terminal::suite_line(s);
            block.push('\n');
            block.push_str(&terminal::suite_details(s, &[]));
            say(block.trim_end());
        }
    }
    reporter.run_finished(&mut report, true);
    Ok(report.exit_code)
}

/// The reporter of the merge: no per-suite events, only the end of a run
/// (leak table, loop table, reports, failures, summary line).
fn reporter(opts: &MergeOptions, run_id: &str) -> Result<Reporter, MergeError> {
    crate::report::output::distinct(&[
        ("--json", opts.json.as_deref()),
        ("--junit", opts.junit.as_deref()),
        ("--html", opts.html.as_deref()),
    ])
    .map_err(MergeError::Usage)?;
    let check = |out: &Path| -> Result<ReportPath, MergeError> {
        if let Some(input) = opts.reports.iter().find(|r| same_file(r, out)) {
            return Err(MergeError::Usage(format!(
                "{} is one of the reports to merge: write the merged report to another path",
                input.display()
            )));
        }
        ReportPath::check(out, run_id).map_err(|e| {
            MergeError::Usage(format!("cannot write the report to {}: {e}", out.display()))
        })
    };
    let json = opts.json.as_deref().map(check).transpose()?;
    let junit = opts.junit.as_deref().map(check).transpose()?;
    let html = opts.html.as_deref().map(check).transpose()?;
    let terminal = TerminalOptions::default();
    Ok(Reporter::new(terminal, junit, json).with_html(html))
}

/// Every report read and parsed; all versions other than this one's named
/// at once.
fn read_all(paths: &[PathBuf]) -> Result<Vec<Input>, MergeError> {
    if paths.is_empty() {
        return Err(MergeError::Usage(
            "no report to merge: cargo reap merge REPORT.json…".into(),
        ));
    }
    let mut texts = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| MergeError::Read {
            path: path.clone(),
            source,
        })?;
        let version = version_of(path, &text)?;
        texts.push((path, version, text));
    }
    if texts.iter().any(|(_, v, _)| *v != SCHEMA_VERSION) {
        let versions: Vec<String> = texts
            .iter()
            .map(|(p, v, _)| format!("{} has version {v}", p.display()))
            .collect();
        return Err(MergeError::Version(format!(
            "{}; this cargo-reap reads version {SCHEMA_VERSION} (merge them with the release that wrote them)",
            versions.join(", ")
        )));
    }
    texts
        .into_iter()
        .map(|(path, _, text)| {
            let report =
                serde_json::from_str::<Report>(&text).map_err(|e| MergeError::NotAReport {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            Ok(Input {
                path: path.clone(),
                report,
            })
        })
        .collect()
}

/// The schema version of a report, read before the rest (a report of
/// another version may not parse as this one).
fn version_of(path: &Path, text: &str) -> Result<u32, MergeError> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: Option<u32>,
    }
    let not_a_report = |why: String| MergeError::NotAReport {
        path: path.to_path_buf(),
        why,
    };
    match serde_json::from_str::<Versioned>(text) {
        Ok(Versioned { version: Some(v) }) => Ok(v),
        Ok(Versioned { version: None }) => Err(not_a_report("it has no `version`".into())),
        Err(e) => Err(not_a_report(e.to_string())),
    }
}

fn say(text: &str) {
    line(text);
}
