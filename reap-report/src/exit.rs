//! Exit codes, documented in the README and `--help`.

use crate::{Summary, TrendVerdict, WatchReport};

/// Every suite passed and nothing leaked.
pub const SUCCESS: i32 = 0;
/// Usage or configuration error (also internal errors).
pub const USAGE: i32 = 2;
/// A suite failed or crashed, or cargo-reap could not judge it (status `error`).
pub const TEST_FAILED: i32 = 100;
/// The build failed.
pub const BUILD_FAILED: i32 = 101;
/// A suite hung (every attempt timed out).
pub const HUNG: i32 = 102;
/// Processes leaked, and that was the only problem.
pub const LEAKED: i32 = 103;
/// `cargo reap run --watch`: a watched series (processes, orphans, memory,
/// ...) grew faster than `--max-growth` allows.
pub const GREW: i32 = 104;
/// `cargo reap run --watch`: the watched command exited before the watch
/// ended, whatever its own exit status (a service that stops is a failure).
pub const DIED: i32 = 105;
/// A filter matched no test at all: every suite ran, none ran a test
/// (libtest counted them all as filtered out). As nextest's "no tests to run".
pub const NO_TESTS: i32 = 4;

/// `cargo reap clean` did all it could, but left something it could not
/// remove or kill (each named).
pub const CLEAN_INCOMPLETE: i32 = 1;

/// The exit codes as `--help` lists them (after the options).
pub const HELP: &str = "\
EXIT CODES:
    0    every suite passed and nothing leaked
    100  a suite failed or crashed, or could not be judged (status error)
    101  the build failed
    102  a suite hung (every attempt timed out)
    103  processes leaked, and that was the only problem
    104  `run --watch`: a watched series grew faster than --max-growth allows
    105  `run --watch`: the watched command exited before the watch ended
    4    no tests to run: a filter matched no test of any suite
    2    usage or configuration error; also internal errors (a panic, a report
         that could not be written, cargo-reap's own cleanup failing)
    130  interrupted by SIGINT (143 SIGTERM, 129 SIGHUP); the report is partial
  When several apply, the first in the order 101, 100, 102, 103, 4 wins.
  `cargo reap run`: the command's own exit code, unless it hung (102),
  leaked (103) or could not be judged (100); with --watch, 0 unless it
  died (105), grew (104) or leaked (103), in that order after 100 and 102.
  The summary line ends with the exit code returned.";

/// What an exit code of a run means, in one line (the codes of [`HELP`]); `None` for a code
/// that is not one of cargo-reap's verdicts (`cargo reap run` passes the command's own on).
pub fn meaning(code: i32) -> Option<&'static str> {
    Some(match code {
        SUCCESS => "every suite passed and nothing leaked",
        TEST_FAILED => "a suite failed or crashed, or could not be judged",
        BUILD_FAILED => "the build failed",
        HUNG => "a suite hung (every attempt timed out)",
        LEAKED => "processes leaked, and that was the only problem",
        GREW => "a watched series grew faster than --max-growth allows",
        DIED => "the watched command exited before the watch ended",
        NO_TESTS => "no tests to run: a filter matched no test",
        USAGE => {
            "usage or configuration error, or an internal error (a report that could not be \
             written, cargo-reap's own cleanup failing)"
        }
        130 => "interrupted by SIGINT; the report is partial",
        143 => "interrupted by SIGTERM; the report is partial",
        129 => "interrupted by SIGHUP; the report is partial",
        _ => return None,
    })
}

/// The exit code of a completed run: the first that applies in the order
/// 100 (failed/crashed/error), 102 (hung), 103 (leaked), 4 (a filter matched
/// no test). (101 is decided before any suite runs.)
/// With `fail_on_tmp`, files left in a suite's TMPDIR count as leaks.
pub fn for_summary(s: &Summary, fail_on_tmp: bool) -> i32 {
    if s.failed + s.crashed + s.errored > 0 {
        TEST_FAILED
    } else if s.hung > 0 {
        HUNG
    } else if leaked(s, fail_on_tmp) {
        LEAKED
    } else if no_test_matched(s) {
        NO_TESTS
    } else {
        SUCCESS
    }
}

fn leaked(s: &Summary, fail_on_tmp: bool) -> bool {
    s.leaked_processes > 0 || (fail_on_tmp && s.suites_with_tmp_files > 0)
}

/// Every suite was counted, none ran or ignored a test, and some were
/// filtered out: the filter matched nothing. (A workspace without any test
/// is not an error, as with `cargo test`.)
pub fn no_test_matched(s: &Summary) -> bool {
    s.suites > 0
        && s.suites_without_counts == 0
        && s.tests.ran() + s.tests.ignored == 0
        && s.tests.filtered_out > 0
}

/// `cargo reap run`: the command's own exit code (`child`, 128 + signal when
/// a signal ended it) passes through unless cargo-reap has something to add:
/// 102 (it hung), 103 (it leaked), 100 (cargo-reap could not judge it).
/// Watched (`--watch`): 100, 102, then 105 (it died before the watch
/// ended), 104 (a series grew too fast), 103; else `child` (0 for a command
/// cargo-reap stopped at the watch's end).
pub fn for_command(s: &Summary, fail_on_tmp: bool, child: i32, watch: Option<&WatchReport>) -> i32 {
    let too_fast = |w: &WatchReport| w.trends.iter().any(|t| t.verdict == TrendVerdict::TooFast);
    if s.errored > 0 {
        TEST_FAILED
    } else if s.hung > 0 {
        HUNG
    } else if watch.is_some_and(|w| w.died_at_ms.is_some()) {
        DIED
    } else if watch.is_some_and(too_fast) {
        GREW
    } else if leaked(s, fail_on_tmp) {
        LEAKED
    } else {
        child
    }
}

/// An interrupted run: 128 + signal (130 SIGINT, 143 SIGTERM, 129 SIGHUP).
pub fn for_signal(signal: i32) -> i32 {
    128 + signal
}

/// How a run ended, for its exit code.
#[derive(Debug, Clone, Copy)]
pub struct Ending<'a> {
    /// The signal that interrupted it.
    pub interrupted: Option<i32>,
    pub build_failed: bool,
    /// cargo-reap's own work (cleanup, the guard) failed.
    pub problems: bool,
    /// `cargo reap run`: the command's own exit code.
    pub command: Option<i32>,
    pub summary: &'a Summary,
    pub fail_on_tmp: bool,
    /// `cargo reap run --watch`: what the watch saw.
    pub watch: Option<&'a WatchReport>,
}

/// The exit code of a run (or of a merge of runs), in one order: 128 +
/// signal when interrupted, 101 when the build failed, 2 when cargo-reap's
/// own work failed, then [`for_command`] for `cargo reap run` and
/// [`for_summary`] otherwise.
pub fn for_run(e: &Ending<'_>) -> i32 {
    let s = e.summary;
    match (e.interrupted, e.command) {
        (Some(sig), _) => for_signal(sig),
        _ if e.build_failed => BUILD_FAILED,
        _ if e.problems => USAGE,
        (None, Some(child)) => for_command(s, e.fail_on_tmp, child, e.watch),
        (None, None) => for_summary(s, e.fail_on_tmp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let mut s = Summary::default();
        assert_eq!(for_summary(&s, false), SUCCESS);
        s.leaked_processes = 3;
        assert_eq!(for_summary(&s, false), LEAKED);
        s.hung = 1;
        assert_eq!(for_summary(&s, false), HUNG);
        s.crashed = 1;
        assert_eq!(for_summary(&s, false), TEST_FAILED);
        s.flaky = 4;
        assert_eq!(for_summary(&s, false), TEST_FAILED);
    }

    #[test]
    fn a_filter_matching_nothing_is_its_own_code() {
        let mut s = Summary {
            suites: 2,
            passed: 2,
            ..Default::default()
        };
        assert_eq!(for_summary(&s, false), SUCCESS, "no tests at all is fine");
        s.tests.filtered_out = 7;
        assert_eq!(for_summary(&s, false), NO_TESTS);
        s.tests.ignored = 1;
        assert_eq!(
            for_summary(&s, false),
            SUCCESS,
            "an ignored match is a match"
        );
    }

    #[test]
    fn command_code_passes_through_unless_we_add_one() {
        let mut s = Summary::default();
        assert_eq!(for_command(&s, false, 5, None), 5);
        s.leaked_processes = 1;
        assert_eq!(for_command(&s, false, 5, None), LEAKED);
        s.hung = 1;
        assert_eq!(for_command(&s, false, 0, None), HUNG);
    }

    #[test]
    fn a_watch_fails_on_death_then_growth_then_leaks() {
        let trend = |verdict| crate::Trend {
            series: crate::SeriesName::Orphans,
            slope_per_hour: 0.0,
            intercept: 0.0,
            first: 0.0,
            last: 0.0,
            samples: 10,
            warmup_samples: 2,
            max_per_hour: Some(0.0),
            verdict,
            sentence: String::new(),
        };
        let mut w = WatchReport {
            duration_ms: 1000,
            timeline: crate::Timeline::default(),
            trends: vec![trend(TrendVerdict::Flat)],
            died_at_ms: None,
            died_with: None,
        };
        let mut s = Summary::default();
        assert_eq!(for_command(&s, false, 0, Some(&w)), SUCCESS);
        s.leaked_processes = 2;
        assert_eq!(for_command(&s, false, 0, Some(&w)), LEAKED);
        w.trends.push(trend(TrendVerdict::TooFast));
        assert_eq!(for_command(&s, false, 0, Some(&w)), GREW);
        w.died_at_ms = Some(500);
        w.died_with = Some(0);
        assert_eq!(for_command(&s, false, 0, Some(&w)), DIED);
        s.hung = 1;
        assert_eq!(for_command(&s, false, 0, Some(&w)), HUNG);
    }

    #[test]
    fn tmp_files_fail_only_on_request() {
        let s = Summary {
            suites_with_tmp_files: 1,
            ..Default::default()
        };
        assert_eq!(for_summary(&s, false), SUCCESS);
        assert_eq!(for_summary(&s, true), LEAKED);
    }

    #[test]
    fn the_help_names_every_code() {
        for code in [
            SUCCESS,
            TEST_FAILED,
            BUILD_FAILED,
            HUNG,
            LEAKED,
            GREW,
            DIED,
            NO_TESTS,
            USAGE,
        ] {
            let listed = HELP
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{code} ")));
            assert!(listed, "exit code {code} is not in the help:\n{HELP}");
        }
    }

    #[test]
    fn flaky_hang_alone_passes() {
        let s = Summary {
            flaky: 1,
            passed: 2,
            suites: 3,
            ..Default::default()
        };
        assert_eq!(for_summary(&s, false), SUCCESS);
    }

    /// Every code `--help` lists has a meaning (a new code without one shows as "the
    /// command's own" in the HTML report).
    #[test]
    fn every_listed_code_has_a_meaning() {
        let listed: Vec<i32> = HELP
            .lines()
            .filter_map(|l| {
                l.strip_prefix("    ")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        assert!(listed.len() >= 10, "{listed:?}");
        for code in listed.into_iter().chain([129, 143]) {
            assert!(meaning(code).is_some(), "exit code {code} has no meaning");
        }
        assert_eq!(meaning(3), None);
    }
}
