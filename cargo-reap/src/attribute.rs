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
use std::path::Path;
use std::time::{Duration, Instant};

use crate::discover::Suite;
use crate::error::RunError;
use crate::supervise::{list_tests, run_attempt, AttemptSpec, RunContext};
use reap_report::Leak;

pub use crate::options::AttributeMode;

#[derive(Debug, Clone)]
pub struct AttributeOptions {
    pub mode: AttributeMode,
    pub max_tests: usize,
    pub max_time: Duration,
}

pub use reap_report::{AttributionMethod, AttributionReport};

/// A process a re-run of `test` left behind.
struct Candidate {
    test: String,
    cmdline: Vec<String>,
    comm: String,
    used: bool,
}

/// How a leak was attributed by its test's time window in serial output.
pub const BY_WINDOW: &str = "started while its test ran (serial output)";

pub use reap_report::NOT_LIBTEST;

pub const NOT_REPRODUCED: &str = "not reproduced when run alone: interaction or flaky";

/// Two or more distinct tests in a re-run's results: `` `a` and `b` ``.
fn ran_others(results: &[(String, String)]) -> Option<String> {
    let first = &results.first()?.0;
    let other = results.iter().find(|(n, _)| n != first)?;
    Some(format!("`{first}` and `{}`", other.0))
}

/// Attribute `leaks` (from `suite`'s attempts) to tests. `ignored`: the
/// tests the suite's run reported as ignored (not re-run: they ran nothing;
/// with `--ignored` or `--include-ignored` libtest runs them and reports
/// their results instead).
#[allow(clippy::too_many_arguments)]
pub fn attribute(
    ctx: &RunContext<'_>,
    suite: &Suite,
    index: usize,
    opts: &AttributeOptions,
    leaks: &mut [Leak],
    ignored: &HashSet<&str>,
    log: Option<&crate::supervise::SuiteLog>,
    log_path: &Path,
) -> Result<Option<AttributionReport>, RunError> {
    let interrupted = crate::interrupt::get().is_some_and(|i| i.signal().is_some());
    if leaks.is_empty() || opts.mode == AttributeMode::Off || interrupted {
        return Ok(None);
    }
    let started = Instant::now();
    let by_window = leaks.iter().filter(|l| l.test.is_some()).count();
    if by_window == leaks.len() {
        return Ok(Some(AttributionReport {
            method: AttributionMethod::Window,
            tests_listed: 0,
            tests_rerun: 0,
            leaks_attributed: by_window,
            leaks_total: leaks.len(),
            duration_ms: 0,
            budget_exhausted: false,
            tests_skipped_ignored: 0,
        }));
    }
    let not_libtest = |leaks: &mut [Leak], why: &str| {
        for l in leaks.iter_mut() {
            l.test = None;
            l.attribution = Some(format!("{NOT_LIBTEST} ({why}); the suite's leak"));
        }
        Ok(Some(AttributionReport {
            method: AttributionMethod::NotLibtest,
            tests_listed: 0,
            tests_rerun: 0,
            leaks_attributed: 0,
            leaks_total: leaks.len(),
            duration_ms: started.elapsed().as_millis() as u64,
            budget_exhausted: false,
            tests_skipped_ignored: 0,
        }))
    };
    let listed = match list_tests(ctx, suite, &format!("{}.{index}.attr.list", ctx.trial)) {
        Ok(l) => l,
        Err(RunError::NotLibtest(why)) => return not_libtest(leaks, &why),
        Err(e) => {
            for l in leaks.iter_mut().filter(|l| l.test.is_none()) {
                l.attribution = Some(format!(
                    "not attributed: the tests could not be listed ({e})"
                ));
            }
            return Ok(Some(AttributionReport {
                method: AttributionMethod::Unlisted(e.to_string()),
                tests_listed: 0,
                tests_rerun: 0,
                leaks_attributed: by_window,
                leaks_total: leaks.len(),
                duration_ms: started.elapsed().as_millis() as u64,
                budget_exhausted: false,
                tests_skipped_ignored: 0,
            }));
        }
    };
    if listed.len() == 1 {
        for l in leaks.iter_mut().filter(|l| l.test.is_none()) {
            l.test = Some(listed[0].clone());
            l.attribution = Some("the only test of the suite".into());
        }
        return Ok(Some(AttributionReport {
            method: AttributionMethod::SingleTest,
            tests_listed: 1,
            tests_rerun: 0,
            leaks_attributed: leaks.len(),
            leaks_total: leaks.len(),
            duration_ms: started.elapsed().as_millis() as u64,
            budget_exhausted: false,
            tests_skipped_ignored: 0,
        }));
    }

    // With the suite's output streamed (`--no-capture`, `cargo reap run` as
    // a target runner), the re-runs still go to a log of their own: their
    // libtest output must not land in the user's test output, and their
    // per-test results are read back like any attempt's.
    let own_log_path = log_path.with_extension("attribution.log");
    let own_log = match log {
        Some(_) => None,
        None => Some(crate::supervise::SuiteLog {
            file: std::fs::File::create(&own_log_path).map_err(|source| RunError::Io {
                what: "creating the attribution re-runs' log",
                path: own_log_path.clone(),
                source,
            })?,
            logged: Default::default(),
            failure: Default::default(),
        }),
    };
    let (log, log_path) = match &own_log {
        Some(l) => (Some(l), own_log_path.as_path()),
        None => (log, log_path),
    };
    let passthrough: Vec<String> = ctx
        .options
        .test_args
        .iter()
        .filter(|a| matches!(a.as_str(), "--ignored" | "--include-ignored"))
        .cloned()
        .collect();
    // What each re-run left behind.
    let mut pool: Vec<Candidate> = Vec::new();
    let mut rerun = 0;
    let mut exhausted = false;
    let mut interrupted = false;
    let mut skipped = 0;
    for (k, test) in listed.iter().enumerate() {
        if ignored.contains(test.as_str()) {
            skipped += 1;
            continue;
        }
        // Ctrl-C / SIGTERM during the re-runs: stop re-running at once.
        if crate::interrupt::get().is_some_and(|i| i.signal().is_some()) {
            interrupted = true;
            break;
        }
        if opts.mode == AttributeMode::Auto
            && (rerun >= opts.max_tests || started.elapsed() >= opts.max_time)
        {
            exhausted = true;
            break;
        }
        let mut args = crate::discover::rerun_args(suite, test, &listed);
        args.extend(passthrough.iter().cloned());
        let spec = AttemptSpec {
            leaf: format!("{}.{index}.attr.{k}", ctx.trial),
            number: 0,
            args: &args,
            header: format!("attribution re-run of `{test}` alone"),
        };
        let out = run_attempt(ctx, suite, &spec, log, log_path)?;
        // libtest runs exactly the one test `--exact NAME` names; a harness
        // whose re-run reports two tests ignores `--exact`, and its re-runs
        // prove nothing. (One result line is never judged: a name holding
        // ` ... ` or a newline is not read back whole from the output.)
        if let Some(ran) = ran_others(&out.results) {
            let why = format!("`--exact {test}` ran {ran}");
            return not_libtest(leaks, &why);
        }
        let survivors = out.survivors;
        rerun += 1;
        pool.extend(survivors.into_iter().map(|e| Candidate {
            test: test.clone(),
            cmdline: e.info.cmdline,
            comm: e.info.comm,
            used: false,
        }));
    }

    let mut attributed = by_window;
    let mut assign = |l: &mut Leak, same: &dyn Fn(&Candidate) -> bool| {
        if let Some(entry) = pool.iter_mut().find(|e| !e.used && same(e)) {
            entry.used = true;
            l.test = Some(entry.test.clone());
            l.attribution = Some("reproduced when its test ran alone".into());
            true
        } else {
            false
        }
    };
    // Exact command lines first, then the same program.
    for l in leaks.iter_mut().filter(|l| l.test.is_none()) {
        let cmdline = l.cmdline.clone();
        if assign(l, &|e| e.cmdline == cmdline) {
            attributed += 1;
        }
    }
    for l in leaks.iter_mut().filter(|l| l.test.is_none()) {
        let comm = l.comm.clone();
        if assign(l, &|e| e.comm == comm) {
            attributed += 1;
        }
    }
    for l in leaks.iter_mut().filter(|l| l.test.is_none()) {
        l.attribution = Some(if interrupted {
            format!("not reproduced by the {rerun} test(s) re-run before the run was interrupted")
        } else if exhausted {
            format!("not reproduced by the {rerun} test(s) re-run before the budget ran out")
        } else {
            NOT_REPRODUCED.to_string()
        });
    }
    if let Some(problem) = own_log.as_ref().and_then(|l| l.problem()) {
        tracing::warn!(
            "{}: attribution re-runs' log {}: {problem}",
            suite.id,
            own_log_path.display()
        );
    }
    Ok(Some(AttributionReport {
        method: AttributionMethod::Rerun,
        tests_listed: listed.len(),
        tests_rerun: rerun,
        leaks_attributed: attributed,
        leaks_total: leaks.len(),
        duration_ms: started.elapsed().as_millis() as u64,
        budget_exhausted: exhausted,
        tests_skipped_ignored: skipped,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rerun_that_reports_two_tests_ignored_exact() {
        let r = |names: &[&str]| -> Vec<(String, String)> {
            names
                .iter()
                .map(|n| (n.to_string(), "ok".to_string()))
                .collect()
        };
        assert_eq!(ran_others(&r(&[])), None);
        assert_eq!(ran_others(&r(&["a"])), None);
        // One test whose name holds ` ... ` reads back as another name: not judged.
        assert_eq!(ran_others(&r(&["dots"])), None);
        assert_eq!(ran_others(&r(&["a", "a"])), None);
        assert_eq!(ran_others(&r(&["a", "b"])).as_deref(), Some("`a` and `b`"));
    }
}
