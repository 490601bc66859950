//! What a suite needs before its first spawn: its TMPDIR, its log, and the
//! containment of its first attempt ([`Prepared`]). A serial schedule makes
//! them for the next suite while the current one runs, so that the path from
//! one suite's exit to the next one's spawn holds none of these mkdirs; else
//! they are made when the suite starts.

use std::path::PathBuf;

use crate::containment::Containment;
use crate::discover::Suite;
use crate::error::RunError;

use super::capture::SuiteLog;
use super::RunContext;

/// A suite's TMPDIR (made), its log (created, unless `--no-capture`) and
/// its first attempt's containment (made, not yet registered with the
/// lifeline guard: nothing runs in it).
pub struct Prepared {
    pub(super) tmp_dir: PathBuf,
    pub(super) log: Option<SuiteLog>,
    pub(super) first: Option<Box<dyn Containment>>,
}

/// Make what `suite` (the `index`th) needs before its first spawn. On an
/// error, what was made is undone (said as a warning if that fails too).
pub fn prepare(ctx: &RunContext<'_>, suite: &Suite, index: usize) -> Result<Prepared, RunError> {
    let tmp_dir = ctx.tmp_dir(suite);
    crate::scratch::create_suite_dir(&tmp_dir)?;
    let mut made = Prepared {
        tmp_dir,
        log: None,
        first: None,
    };
    let filled = (|| {
        if !ctx.options.no_capture {
            made.log = Some(SuiteLog::create(&log_path(ctx, suite), "creating log")?);
        }
        made.first = Some(ctx.contain(suite, &attempt_leaf(ctx, suite, index, 1))?);
        Ok(())
    })();
    match filled {
        Ok(()) => Ok(made),
        Err(e) => {
            for problem in made.discard(ctx, suite) {
                eprintln!("cargo-reap: warning: {}: {problem}", suite.id);
            }
            Err(e)
        }
    }
}

impl Prepared {
    /// Undo it, for a suite that will not run (an interrupt, `--fail-fast`):
    /// the containment removed, the log and the TMPDIR (empty) too. What
    /// could not be undone, one sentence each.
    pub fn discard(self, ctx: &RunContext<'_>, suite: &Suite) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(cont) = self.first {
            if let Err(e) = cont.close() {
                problems.push(format!("removing the containment made ahead: {e}"));
            }
        }
        if let Some(log) = self.log {
            drop(log);
            let path = log_path(ctx, suite);
            if let Err(e) = std::fs::remove_file(&path) {
                problems.push(format!("removing the unused log {}: {e}", path.display()));
            }
        }
        problems.extend(crate::tmpdir::collect_and_remove(&self.tmp_dir).problems);
        problems
    }
}

/// The suite's log in this trial.
pub(super) fn log_path(ctx: &RunContext<'_>, suite: &Suite) -> PathBuf {
    if ctx.trial > 1 {
        ctx.log_dir
            .join(format!("{}.trial-{}.log", suite.slug(), ctx.trial))
    } else {
        ctx.log_dir.join(format!("{}.log", suite.slug()))
    }
}

/// The cgroup leaf (or group) name of attempt `number` of the `index`th suite.
pub(super) fn attempt_leaf(
    ctx: &RunContext<'_>,
    suite: &Suite,
    index: usize,
    number: u32,
) -> String {
    format!("{}.{index}.{number}.{}", ctx.trial, suite.slug())
}
