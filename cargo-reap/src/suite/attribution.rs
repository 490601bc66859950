//! Test-level attribution of leaks: which test started each surviving process.
//!
//! A suite that leaked is listed (`--list`, contained); a suite with one test
//! needs nothing more. Otherwise the tests are re-run in groups ([`bisect`]):
//! the first half of a group (`--exact NAME…`, as many test threads as the
//! suite's run, its own containment, the same timeout rules; a single test on
//! one thread), and only the halves that leak are
//! split further, so k leaking tests among n take about k·log2(n) re-runs; a
//! leak matches by command line, then by command name. A leak no single test
//! reproduces is searched for as an interaction (the smallest set of tests
//! that leaves it together), else reported as not reproduced (flaky, or it
//! needs the suite's parallel run). Doctests, and harnesses that do not run
//! several `--exact` names at once, are re-run one test at a time. `auto`
//! bounds the cost (at most N re-runs or T seconds per suite); `rerun` has no
//! bound.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::discover::Suite;
use crate::error::RunError;
use reap_report::Leak;

use super::attempt::{run_attempt, AttemptOutcome, AttemptSpec};
use super::bisect::{self, Verdict};
use super::capture::{ResultLine, SuiteLog};
use super::command::is_doctest;
use super::context::RunContext;
use super::examine::Examined;
use super::listing::list_tests;
use super::settings::AttributeMode;
use super::timing::Threads;

pub use reap_report::{AttributionMethod, AttributionReport, Interaction, NOT_LIBTEST};

/// `--attribute auto`'s default bound on re-runs per leaking suite: group
/// re-runs name 4 leaking tests among 200 in about 31, an interaction pair in
/// about 25 (`--attribute-max-tests`).
pub const DEFAULT_MAX_RERUNS: usize = 40;

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
    /// No test alone left it; these tests run together did.
    Together(Vec<String>),
    /// No re-run left it.
    NotReproduced,
    /// No re-run left it before the re-runs stopped after `rerun` re-runs.
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
            LeakAttribution::Together(tests) => write!(
                f,
                "not reproduced when run alone; reproduced when these tests ran together \
                 (an interaction): {}",
                tests
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            LeakAttribution::Stopped { rerun, by } => write!(
                f,
                "not reproduced by the {rerun} re-run(s) made before {}",
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
    let report = rerunner.attribute(&listed, ignored, leaks, started);
    rerunner.warn_log_problem();
    let report = match report? {
        Ok(r) => r,
        Err(why) => not_libtest(leaks, &why, started),
    };
    Ok(Some(AttributionReport {
        leaks_attributed: by_window + report.leaks_attributed,
        ..report
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
        reruns: 0,
        interactions: Vec::new(),
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
fn ran_others(results: &[ResultLine]) -> Option<String> {
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

/// Can the suite's `tests` be re-run in groups? Not doctests (cargo splits
/// test arguments on whitespace, so a group of doctest names cannot be
/// given exactly), not a name that would read as an option, not fewer than
/// two tests.
fn groupable(suite: &Suite, tests: &[&str]) -> bool {
    !is_doctest(suite) && tests.len() >= 2 && tests.iter().all(|t| !t.starts_with('-'))
}

/// What identifies a leak in a re-run's survivors: its command line, else
/// its command name.
struct LeakKey {
    cmdline: Vec<String>,
    comm: String,
}

/// Which of `pending` (indices) the survivors `left` of a re-run reproduce:
/// each survivor stands for one leak, the same command line first, then the
/// same program.
fn reproduced(pending: &[LeakKey], left: &[Examined]) -> Vec<usize> {
    let mut used = vec![false; left.len()];
    let mut got: Vec<usize> = Vec::new();
    let same_cmdline = |k: &LeakKey, e: &Examined| e.info.cmdline == k.cmdline;
    let same_comm = |k: &LeakKey, e: &Examined| e.info.comm == k.comm;
    for same in [
        &same_cmdline as &dyn Fn(&LeakKey, &Examined) -> bool,
        &same_comm,
    ] {
        for (i, key) in pending.iter().enumerate() {
            if got.contains(&i) {
                continue;
            }
            let hit = (0..left.len()).find(|&j| !used[j] && same(key, &left[j]));
            if let Some(j) = hit {
                used[j] = true;
                got.push(i);
            }
        }
    }
    got.sort_unstable();
    got
}

/// What one re-run of a set of tests showed.
enum SetRun {
    /// It ran every test asked, and left these.
    Left(Vec<Examined>),
    /// It reported fewer tests than asked (a harness that takes one name at a
    /// time, a crash or a hang in the group): group re-runs prove nothing here.
    Incomplete,
    /// It ran more than it was asked: `--exact` is ignored (why).
    NotLibtest(String),
}

/// What the group search did (see [`bisect`]).
struct Grouped {
    verdicts: Vec<Verdict>,
    reruns: usize,
    /// Distinct tests (indices) that ran in at least one re-run.
    tested: HashSet<usize>,
    stopped: Option<Stop>,
}

/// How the group search ended.
enum GroupEnd {
    Done(Grouped),
    /// Re-run one test at a time instead (a group re-run was incomplete),
    /// after this many re-runs.
    OneByOne(usize),
    NotLibtest(String),
}

impl Grouped {
    /// Record the verdicts on the leaks (`pending`: indices into `leaks`,
    /// in the order of the verdicts); the interactions found, and how many
    /// leaks were attributed (to a test or a set of tests).
    fn apply(
        &self,
        tests: &[&str],
        leaks: &mut [Leak],
        pending: &[usize],
    ) -> (Vec<Interaction>, usize) {
        let mut interactions: Vec<Interaction> = Vec::new();
        let mut attributed = 0;
        for (v, &l) in self.verdicts.iter().zip(pending) {
            let leak = &mut leaks[l];
            match v {
                Verdict::Test(t) => {
                    LeakAttribution::Reproduced.set(leak, Some(tests[*t].to_string()));
                    attributed += 1;
                }
                Verdict::Together(set) => {
                    let names: Vec<String> = set.iter().map(|&t| tests[t].to_string()).collect();
                    LeakAttribution::Together(names.clone()).set(leak, None);
                    attributed += 1;
                    match interactions.iter_mut().find(|i| i.tests == names) {
                        Some(i) => i.pids.push(leak.pid),
                        None => interactions.push(Interaction {
                            tests: names,
                            pids: vec![leak.pid],
                        }),
                    }
                }
                Verdict::NotReproduced => LeakAttribution::NotReproduced.set(leak, None),
                Verdict::Stopped => LeakAttribution::Stopped {
                    rerun: self.reruns,
                    by: self.stopped.unwrap_or(Stop::Budget),
                }
                .set(leak, None),
            }
        }
        (interactions, attributed)
    }
}

/// Re-runs tests of a suite, alone or in groups.
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

    /// Attribute the leaks no window attributed: by group re-runs where the
    /// suite allows ([`groupable`]), else one test at a time. `Ok(Err(why))`:
    /// the binary is not libtest's.
    fn attribute(
        &self,
        listed: &[String],
        ignored: &HashSet<&str>,
        leaks: &mut [Leak],
        started: Instant,
    ) -> Result<Result<AttributionReport, String>, RunError> {
        let tests: Vec<&str> = listed
            .iter()
            .map(String::as_str)
            .filter(|t| !ignored.contains(t))
            .collect();
        let mut spent = 0;
        if groupable(self.suite, &tests) {
            let pending: Vec<usize> = (0..leaks.len())
                .filter(|&i| leaks[i].test.is_none())
                .collect();
            let keys: Vec<LeakKey> = pending
                .iter()
                .map(|&i| LeakKey {
                    cmdline: leaks[i].cmdline.clone(),
                    comm: leaks[i].comm.clone(),
                })
                .collect();
            match self.rerun_groups(&tests, &keys, started)? {
                GroupEnd::Done(g) => {
                    let (interactions, attributed) = g.apply(&tests, leaks, &pending);
                    return Ok(Ok(AttributionReport {
                        tests_listed: listed.len(),
                        tests_rerun: g.tested.len(),
                        budget_exhausted: g.stopped == Some(Stop::Budget),
                        tests_skipped_ignored: listed.len() - tests.len(),
                        reruns: g.reruns,
                        interactions,
                        ..summary(AttributionMethod::Rerun, leaks, attributed, started)
                    }));
                }
                GroupEnd::NotLibtest(why) => return Ok(Err(why)),
                GroupEnd::OneByOne(n) => spent = n,
            }
        }
        let mut reruns = match self.rerun_each(listed, ignored, started)? {
            Reran::Done(r) => r,
            Reran::NotLibtest(why) => return Ok(Err(why)),
        };
        let attributed = reruns.match_leaks(leaks);
        Ok(Ok(AttributionReport {
            tests_listed: listed.len(),
            tests_rerun: reruns.rerun,
            budget_exhausted: reruns.stopped == Some(Stop::Budget),
            tests_skipped_ignored: reruns.skipped,
            reruns: spent + reruns.rerun,
            ..summary(AttributionMethod::Rerun, leaks, attributed, started)
        }))
    }

    /// Place the `pending` leaks among `tests` by group re-runs ([`bisect`]).
    fn rerun_groups(
        &self,
        tests: &[&str],
        pending: &[LeakKey],
        started: Instant,
    ) -> Result<GroupEnd, RunError> {
        let mut reruns = 0;
        let mut tested: HashSet<usize> = HashSet::new();
        let mut stopped = None;
        let mut halt = None;
        let leaks: Vec<usize> = (0..pending.len()).collect();
        let verdicts = bisect::search::<RunError>(tests.len(), &leaks, &mut |set: &[usize]| {
            if let Some(stop) = self.stop_before(reruns, started) {
                stopped = Some(stop);
                return Ok(None);
            }
            let names: Vec<&str> = set.iter().map(|&t| tests[t]).collect();
            let ran = self.rerun_set(reruns, &names)?;
            reruns += 1;
            match ran {
                SetRun::Left(left) => {
                    tested.extend(set.iter().copied());
                    Ok(Some(reproduced(pending, &left)))
                }
                SetRun::Incomplete => {
                    halt = Some(GroupEnd::OneByOne(reruns));
                    Ok(None)
                }
                SetRun::NotLibtest(why) => {
                    halt = Some(GroupEnd::NotLibtest(why));
                    Ok(None)
                }
            }
        })?;
        Ok(halt.unwrap_or(GroupEnd::Done(Grouped {
            verdicts,
            reruns,
            tested,
            stopped,
        })))
    }

    /// Why no more re-run may start after `reruns` of them, if one may not.
    fn stop_before(&self, reruns: usize, started: Instant) -> Option<Stop> {
        let opts = &self.ctx.options.attribute;
        // Ctrl-C / SIGTERM during the re-runs: stop re-running at once.
        if interrupted(self.ctx) {
            return Some(Stop::Interrupted);
        }
        let spent = reruns >= opts.max_tests || started.elapsed() >= opts.max_time;
        (opts.mode == AttributeMode::Auto && spent).then_some(Stop::Budget)
    }

    /// Re-run the tests `names` together (`--exact NAME…`): what they left,
    /// or why the re-run proves nothing. One test runs on one thread; a group
    /// on as many as the suite's run had, so that it takes no longer than that
    /// run (its timeout holds) and leaks that need tests running at once
    /// reproduce.
    fn rerun_set(&self, number: usize, names: &[&str]) -> Result<SetRun, RunError> {
        let mut args = vec!["--exact".to_string()];
        args.extend(names.iter().map(|n| n.to_string()));
        let threads = match names {
            [_] => 1,
            _ => Threads::of(&self.ctx.options.test_args, &self.suite.env).count,
        };
        args.extend(["--test-threads".to_string(), threads.to_string()]);
        args.extend(self.passthrough.iter().cloned());
        let header = match names {
            [one] => format!("attribution re-run of `{one}` alone"),
            [first, .., last] => format!(
                "attribution re-run of {} tests together (`{first}` … `{last}`)",
                names.len()
            ),
            [] => "attribution re-run of no test".to_string(),
        };
        let leaf = format!("{}.{}.attr.g{number}", self.ctx.trial, self.index);
        let out = self.attempt(leaf, &args, header)?;
        let ran: HashSet<&str> = out.results.iter().map(|r| r.name.as_str()).collect();
        Ok(if ran.len() > names.len() {
            SetRun::NotLibtest(match (names, ran_others(&out.results)) {
                ([one], Some(others)) => format!("`--exact {one}` ran {others}"),
                _ => format!(
                    "`--exact` with {} test names ran {} tests",
                    names.len(),
                    ran.len()
                ),
            })
        } else if ran.len() < names.len() && names.len() > 1 {
            SetRun::Incomplete
        } else {
            SetRun::Left(out.survivors)
        })
    }

    /// One re-run in a containment of its own, logged where the re-runs go.
    fn attempt(
        &self,
        leaf: String,
        args: &[String],
        header: String,
    ) -> Result<AttemptOutcome, RunError> {
        let spec = AttemptSpec {
            leaf,
            number: 0,
            args,
            header,
        };
        let (log, log_path) = match &self.own_log {
            Some((own, path)) => (Some(own), path.as_path()),
            None => (self.log, self.log_path),
        };
        run_attempt(self.ctx, self.suite, &spec, log, log_path, None)
    }

    /// Re-run each listed test alone (not those `ignored`) until done, the
    /// budget (`auto`) runs out or cargo-reap is interrupted.
    fn rerun_each(
        &self,
        listed: &[String],
        ignored: &HashSet<&str>,
        started: Instant,
    ) -> Result<Reran, RunError> {
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
            if let Some(stop) = self.stop_before(reruns.rerun, started) {
                reruns.stopped = Some(stop);
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
        let out = self.attempt(
            format!("{}.{}.attr.{k}", self.ctx.trial, self.index),
            &args,
            format!("attribution re-run of `{test}` alone"),
        )?;
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
        let r = |names: &[&str]| -> Vec<ResultLine> {
            names
                .iter()
                .map(|n| ResultLine {
                    name: n.to_string(),
                    result: reap_report::TestResult::Ok,
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
        // Still says what the e2e expectations of a leak without a test look for.
        assert_eq!(
            said(LeakAttribution::Together(vec!["a".into(), "b".into()])),
            "not reproduced when run alone; reproduced when these tests ran together \
             (an interaction): `a`, `b`"
        );
        assert_eq!(
            said(LeakAttribution::Stopped {
                rerun: 3,
                by: Stop::Budget
            }),
            "not reproduced by the 3 re-run(s) made before the budget ran out"
        );
        assert_eq!(
            said(LeakAttribution::Stopped {
                rerun: 0,
                by: Stop::Interrupted
            }),
            "not reproduced by the 0 re-run(s) made before the run was interrupted"
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
