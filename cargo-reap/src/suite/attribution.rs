//! Test-level attribution of leaks: which test started each surviving process.
//!
//! A suite that leaked is listed (`--list`, contained); a suite with one test
//! needs nothing more. Otherwise each test is re-run alone (`--exact NAME`, one
//! thread, its own containment, the same timeout rules) and the leaks that
//! reproduce are attributed to it, matched by command line, then by command
//! name. A leak no single test reproduces is reported as such: it comes from
//! an interaction between tests, or it is flaky. `auto` bounds the cost
//! (at most N tests or T seconds per suite); `rerun` re-runs every test.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::discover::Suite;
use crate::error::RunError;
use reap_report::Leak;

use super::attempt::{run_attempt, AttemptSpec};
use super::capture::{SuiteLog, TestResult};
use super::context::RunContext;
use super::examine::Examined;
use super::listing::list_tests;
use super::settings::AttributeMode;

pub use reap_report::{AttributionMethod, AttributionReport, NOT_LIBTEST};

/// How a leak was attributed by its test's time window in serial output.
pub const BY_WINDOW: &str = "started while its test ran (serial output)";

pub const NOT_REPRODUCED: &str = "not reproduced when run alone: interaction or flaky";

/// Why re-runs stopped before every test was tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Ctrl-C / SIGTERM during the re-runs.
    Interrupted,
    /// `--attribute auto`'s budget ran out.
    Budget,
}

/// How a leak's test was found, or why it was not: the leak's `attribution`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeakAttribution {
    /// It started while its test ran (serial output).
    ByWindow,
    /// The suite has one test.
    OnlyTest,
    /// A re-run of its test alone left it too.
    Reproduced,
    /// No re-run left it.
    NotReproduced,
    /// No re-run left it before the re-runs stopped after `rerun` tests.
    Stopped { rerun: usize, by: Stop },
    /// The suite's binary is not libtest's (why).
    NotLibtest(String),
    /// The tests could not be listed (the error).
    Unlisted(String),
}

impl fmt::Display for LeakAttribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeakAttribution::ByWindow => f.write_str(BY_WINDOW),
            LeakAttribution::OnlyTest => f.write_str("the only test of the suite"),
            LeakAttribution::Reproduced => f.write_str("reproduced when its test ran alone"),
            LeakAttribution::NotReproduced => f.write_str(NOT_REPRODUCED),
            LeakAttribution::Stopped { rerun, by } => write!(
                f,
                "not reproduced by the {rerun} test(s) re-run before {}",
                match by {
                    Stop::Interrupted => "the run was interrupted",
                    Stop::Budget => "the budget ran out",
                }
            ),
            LeakAttribution::NotLibtest(why) => {
                write!(f, "{NOT_LIBTEST} ({why}); the suite's leak")
            }
            LeakAttribution::Unlisted(e) => {
                write!(f, "not attributed: the tests could not be listed ({e})")
            }
        }
    }
}

impl LeakAttribution {
    /// Record it on `leak`, with `test` when it names one.
    pub fn set(&self, leak: &mut Leak, test: Option<String>) {
        leak.test = test;
        leak.attribution = Some(self.to_string());
    }
}

/// Attribute `leaks` (from `suite`'s attempts) to tests. `ignored`: the
/// tests the suite's run reported as ignored (not re-run: they ran nothing;
/// with `--ignored` or `--include-ignored` libtest runs them and reports
/// their results instead).
pub fn attribute(
    ctx: &RunContext<'_>,
    suite: &Suite,
    index: usize,
    leaks: &mut [Leak],
    ignored: &HashSet<&str>,
    log: Option<&SuiteLog>,
    log_path: &Path,
) -> Result<Option<AttributionReport>, RunError> {
    let opts = &ctx.options.attribute;
    if leaks.is_empty() || opts.mode == AttributeMode::Off || interrupted(ctx) {
        return Ok(None);
    }
    let started = Instant::now();
    let by_window = leaks.iter().filter(|l| l.test.is_some()).count();
    if by_window == leaks.len() {
        return Ok(Some(AttributionReport {
            duration_ms: 0,
            ..summary(AttributionMethod::Window, leaks, by_window, started)
        }));
    }
    let listed = match list_tests(ctx, suite, &format!("{}.{index}.attr.list", ctx.trial)) {
        Ok(l) => l,
        Err(RunError::NotLibtest(why)) => return Ok(Some(not_libtest(leaks, &why, started))),
        Err(e) => {
            let how = LeakAttribution::Unlisted(e.to_string());
            for l in leaks.iter_mut().filter(|l| l.test.is_none()) {
                how.set(l, None);
            }
            return Ok(Some(summary(
                AttributionMethod::Unlisted(e.to_string()),
                leaks,
                by_window,
                started,
            )));
        }
    };
    if let [only] = listed.as_slice() {
        for l in leaks.iter_mut().filter(|l| l.test.is_none()) {
            LeakAttribution::OnlyTest.set(l, Some(only.clone()));
        }
        let all = leaks.len();
        return Ok(Some(AttributionReport {
            tests_listed: 1,
            ..summary(AttributionMethod::SingleTest, leaks, all, started)
        }));
    }
    let rerunner = Rerunner::new(ctx, suite, index, log, log_path)?;
    let mut reruns = match rerunner.rerun_each(&listed, ignored, started)? {
        Reran::Done(r) => r,
        Reran::NotLibtest(why) => return Ok(Some(not_libtest(leaks, &why, started))),
    };
    rerunner.warn_log_problem();
    let attributed = by_window + reruns.match_leaks(leaks);
    Ok(Some(AttributionReport {
        tests_listed: listed.len(),
        tests_rerun: reruns.rerun,
        budget_exhausted: reruns.stopped == Some(Stop::Budget),
        tests_skipped_ignored: reruns.skipped,
        ..summary(AttributionMethod::Rerun, leaks, attributed, started)
    }))
}

/// Has cargo-reap been interrupted (Ctrl-C / SIGTERM)?
fn interrupted(ctx: &RunContext<'_>) -> bool {
    ctx.interrupts.signal().is_some()
}

/// The report of an attribution by `method` with `attributed` of `leaks`
/// attributed; no test listed or re-run (the re-run path adds its counts).
fn summary(
    method: AttributionMethod,
    leaks: &[Leak],
    attributed: usize,
    started: Instant,
) -> AttributionReport {
    AttributionReport {
        method,
        tests_listed: 0,
        tests_rerun: 0,
        leaks_attributed: attributed,
        leaks_total: leaks.len(),
        duration_ms: started.elapsed().as_millis() as u64,
        budget_exhausted: false,
        tests_skipped_ignored: 0,
    }
}

/// Every leak is the suite's: its binary is not libtest's (`why`).
fn not_libtest(leaks: &mut [Leak], why: &str, started: Instant) -> AttributionReport {
    let how = LeakAttribution::NotLibtest(why.to_string());
    for l in leaks.iter_mut() {
        how.set(l, None);
    }
    summary(AttributionMethod::NotLibtest, leaks, 0, started)
}

/// Two or more distinct tests in a re-run's results: `` `a` and `b` ``.
fn ran_others(results: &[TestResult]) -> Option<String> {
    let first = &results.first()?.name;
    let other = results.iter().find(|r| &r.name != first)?;
    Some(format!("`{first}` and `{}`", other.name))
}

/// A process a re-run of `test` left behind.
struct Candidate {
    test: String,
    cmdline: Vec<String>,
    comm: String,
    used: bool,
}

/// How the re-runs of a suite's tests ended.
enum Reran {
    Done(Reruns),
    /// A re-run ran more than its test: the binary ignores `--exact`, and
    /// its re-runs prove nothing (why).
    NotLibtest(String),
}

/// What the re-runs did.
struct Reruns {
    /// What each re-run left behind.
    pool: Vec<Candidate>,
    rerun: usize,
    /// Tests not re-run: the suite's run reported them ignored.
    skipped: usize,
    stopped: Option<Stop>,
}

impl Reruns {
    /// Give each unattributed leak the test whose re-run left the same
    /// process (exact command lines first, then the same program); the
    /// rest are marked not reproduced. Returns how many were attributed.
    fn match_leaks(&mut self, leaks: &mut [Leak]) -> usize {
        let mut attributed = 0;
        let same_cmdline = |l: &Leak, e: &Candidate| e.cmdline == l.cmdline;
        let same_comm = |l: &Leak, e: &Candidate| e.comm == l.comm;
        for same in [
            &same_cmdline as &dyn Fn(&Leak, &Candidate) -> bool,
            &same_comm,
        ] {
            for l in leaks.iter_mut().filter(|l| l.test.is_none()) {
                if let Some(entry) = self.pool.iter_mut().find(|e| !e.used && same(l, e)) {
                    entry.used = true;
                    LeakAttribution::Reproduced.set(l, Some(entry.test.clone()));
                    attributed += 1;
                }
            }
        }
        let how = match self.stopped {
            Some(by) => LeakAttribution::Stopped {
                rerun: self.rerun,
                by,
            },
            None => LeakAttribution::NotReproduced,
        };
        for l in leaks.iter_mut().filter(|l| l.test.is_none()) {
            how.set(l, None);
        }
        attributed
    }
}

/// Re-runs one test of a suite at a time.
struct Rerunner<'r> {
    ctx: &'r RunContext<'r>,
    suite: &'r Suite,
    index: usize,
    log: Option<&'r SuiteLog>,
    log_path: &'r Path,
    /// The re-runs' own log, when the suite has none (see [`Rerunner::new`]).
    own_log: Option<(SuiteLog, PathBuf)>,
    /// `--ignored` / `--include-ignored` of the user's arguments: a re-run
    /// runs a test as the suite's run did.
    passthrough: Vec<String>,
}

impl<'r> Rerunner<'r> {
    /// With the suite's output streamed (`--no-capture`, `cargo reap run` as
    /// a target runner), the re-runs still go to a log of their own: their
    /// libtest output must not land in the user's test output, and their
    /// per-test results are read back like any attempt's.
    fn new(
        ctx: &'r RunContext<'r>,
        suite: &'r Suite,
        index: usize,
        log: Option<&'r SuiteLog>,
        log_path: &'r Path,
    ) -> Result<Rerunner<'r>, RunError> {
        let own_log = match log {
            Some(_) => None,
            None => {
                let path = log_path.with_extension("attribution.log");
                let own = SuiteLog::create(&path, "creating the attribution re-runs' log")?;
                Some((own, path))
            }
        };
        let passthrough = ctx
            .options
            .test_args
            .iter()
            .filter(|a| matches!(a.as_str(), "--ignored" | "--include-ignored"))
            .cloned()
            .collect();
        Ok(Rerunner {
            ctx,
            suite,
            index,
            log,
            log_path,
            own_log,
            passthrough,
        })
    }

    /// Re-run each listed test alone (not those `ignored`) until done, the
    /// budget (`auto`) runs out or cargo-reap is interrupted.
    fn rerun_each(
        &self,
        listed: &[String],
        ignored: &HashSet<&str>,
        started: Instant,
    ) -> Result<Reran, RunError> {
        let opts = &self.ctx.options.attribute;
        let mut reruns = Reruns {
            pool: Vec::new(),
            rerun: 0,
            skipped: 0,
            stopped: None,
        };
        for (k, test) in listed.iter().enumerate() {
            if ignored.contains(test.as_str()) {
                reruns.skipped += 1;
                continue;
            }
            // Ctrl-C / SIGTERM during the re-runs: stop re-running at once.
            if interrupted(self.ctx) {
                reruns.stopped = Some(Stop::Interrupted);
                break;
            }
            if opts.mode == AttributeMode::Auto
                && (reruns.rerun >= opts.max_tests || started.elapsed() >= opts.max_time)
            {
                reruns.stopped = Some(Stop::Budget);
                break;
            }
            let left = match self.rerun(k, test, listed)? {
                Ok(left) => left,
                Err(why) => return Ok(Reran::NotLibtest(why)),
            };
            reruns.rerun += 1;
            reruns.pool.extend(left.into_iter().map(|e| Candidate {
                test: test.clone(),
                cmdline: e.info.cmdline,
                comm: e.info.comm,
                used: false,
            }));
        }
        Ok(Reran::Done(reruns))
    }

    /// Re-run `test` (the `k`th listed) alone: what it left behind, or why
    /// the re-runs prove nothing.
    fn rerun(
        &self,
        k: usize,
        test: &str,
        listed: &[String],
    ) -> Result<Result<Vec<Examined>, String>, RunError> {
        let mut args = crate::discover::rerun_args(self.suite, test, listed);
        args.extend(self.passthrough.iter().cloned());
        let spec = AttemptSpec {
            leaf: format!("{}.{}.attr.{k}", self.ctx.trial, self.index),
            number: 0,
            args: &args,
            header: format!("attribution re-run of `{test}` alone"),
        };
        let (log, log_path) = match &self.own_log {
            Some((own, path)) => (Some(own), path.as_path()),
            None => (self.log, self.log_path),
        };
        let out = run_attempt(self.ctx, self.suite, &spec, log, log_path)?;
        // libtest runs exactly the one test `--exact NAME` names; a harness
        // whose re-run reports two tests ignores `--exact`, and its re-runs
        // prove nothing. (One result line is never judged: a name holding
        // ` ... ` or a newline is not read back whole from the output.)
        Ok(match ran_others(&out.results) {
            Some(ran) => Err(format!("`--exact {test}` ran {ran}")),
            None => Ok(out.survivors),
        })
    }

    /// The re-runs' own log could not be written in full: said in the
    /// diagnostics (the verdict does not depend on it).
    fn warn_log_problem(&self) {
        if let Some((own, path)) = &self.own_log {
            if let Some(problem) = own.problem() {
                tracing::warn!(
                    "{}: attribution re-runs' log {}: {problem}",
                    self.suite.id,
                    path.display()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rerun_that_reports_two_tests_ignored_exact() {
        let r = |names: &[&str]| -> Vec<TestResult> {
            names
                .iter()
                .map(|n| TestResult {
                    name: n.to_string(),
                    result: "ok".to_string(),
                    at: Instant::now(),
                    started: None,
                })
                .collect()
        };
        assert_eq!(ran_others(&r(&[])), None);
        assert_eq!(ran_others(&r(&["a"])), None);
        // One test whose name holds ` ... ` reads back as another name: not judged.
        assert_eq!(ran_others(&r(&["dots"])), None);
        assert_eq!(ran_others(&r(&["a", "a"])), None);
        assert_eq!(ran_others(&r(&["a", "b"])).as_deref(), Some("`a` and `b`"));
    }

    #[test]
    fn leak_attributions_read_as_before() {
        let said = |a: LeakAttribution| a.to_string();
        assert_eq!(said(LeakAttribution::ByWindow), BY_WINDOW);
        assert_eq!(said(LeakAttribution::NotReproduced), NOT_REPRODUCED);
        assert_eq!(
            said(LeakAttribution::Stopped {
                rerun: 3,
                by: Stop::Budget
            }),
            "not reproduced by the 3 test(s) re-run before the budget ran out"
        );
        assert_eq!(
            said(LeakAttribution::Stopped {
                rerun: 0,
                by: Stop::Interrupted
            }),
            "not reproduced by the 0 test(s) re-run before the run was interrupted"
        );
        assert_eq!(
            said(LeakAttribution::NotLibtest("why".into())),
            "not a libtest binary (why); the suite's leak"
        );
        assert_eq!(
            said(LeakAttribution::Unlisted("e".into())),
            "not attributed: the tests could not be listed (e)"
        );
    }
}
