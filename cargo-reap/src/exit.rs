//! Exit codes, documented in the README and `--help`.

use crate::report::schema::Summary;

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
/// `cargo reap clean` did all it could, but left something it could not
/// remove or kill (each named).
pub const CLEAN_INCOMPLETE: i32 = 1;

/// The exit code of a completed run: the first that applies in the order
/// 100 (failed/crashed/error), 102 (hung), 103 (leaked). (101 is decided before any suite runs.)
/// With `fail_on_tmp`, files left in a suite's TMPDIR count as leaks.
pub fn for_summary(s: &Summary, fail_on_tmp: bool) -> i32 {
    if s.failed + s.crashed + s.errored > 0 {
        TEST_FAILED
    } else if s.hung > 0 {
        HUNG
    } else if s.leaked_processes > 0 || (fail_on_tmp && s.suites_with_tmp_files > 0) {
        LEAKED
    } else {
        SUCCESS
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
    fn tmp_files_fail_only_on_request() {
        let s = Summary {
            suites_with_tmp_files: 1,
            ..Default::default()
        };
        assert_eq!(for_summary(&s, false), SUCCESS);
        assert_eq!(for_summary(&s, true), LEAKED);
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
}
