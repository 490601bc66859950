//! The summary math over a report's suites: counts, loop rates and growth,
//! the failing tests and the commands that re-run them.

use crate::schema::*;

impl Failure {
    /// The failures of these suites; `prefix` goes right after
    /// `cargo reap test` (e.g. the `--manifest-path` of this run).
    pub fn of(suites: &[SuiteReport], prefix: &[String]) -> Vec<Failure> {
        let mut out = Vec::new();
        for s in suites {
            if matches!(s.status, SuiteStatus::Pass | SuiteStatus::FlakyHang) {
                continue;
            }
            let mut tests: Vec<&str> = s
                .tests
                .iter()
                .filter(|t| t.result == TestResult::Failed)
                .map(|t| t.name.as_str())
                .collect();
            if tests.is_empty() && matches!(s.status, SuiteStatus::Hang | SuiteStatus::Crash) {
                if let Some(a) = s.attempts.last() {
                    tests = a.tests_in_flight.iter().map(String::as_str).collect();
                }
            }
            let entry = |test: Option<&str>| Failure {
                suite: s.id.clone(),
                status: s.status,
                test: test.map(str::to_string),
                rerun: rerun_hint(s, prefix, test),
            };
            if tests.is_empty() {
                out.push(entry(None));
            }
            out.extend(tests.into_iter().map(|t| entry(Some(t))));
        }
        out
    }
}

/// `cargo reap test -p foo --test bar -- name --exact` (shell-quoted where needed).
pub fn rerun_hint(s: &SuiteReport, prefix: &[String], test: Option<&str>) -> Option<String> {
    let target: Vec<&str> = match s.kind {
        SuiteKind::Lib | SuiteKind::ProcMacro => vec!["--lib"],
        SuiteKind::Bin => vec!["--bin", &s.target],
        SuiteKind::Test => vec!["--test", &s.target],
        SuiteKind::Example => vec!["--example", &s.target],
        SuiteKind::Bench => vec!["--bench", &s.target],
        SuiteKind::Doctest => vec!["--doc"],
        SuiteKind::Command => return None,
    };
    let mut words: Vec<&str> = vec!["cargo", "reap", "test"];
    words.extend(prefix.iter().map(String::as_str));
    words.extend(["-p", &s.package]);
    words.extend(target);
    match test {
        // A doctest's name has spaces and cargo hands rustdoc the test
        // arguments split on whitespace: `--exact` cannot name it; the first
        // word of its name that no other test of the suite has filters it.
        Some(t) if s.kind == SuiteKind::Doctest && t.contains(char::is_whitespace) => {
            let unique = t.split_whitespace().find(|word| {
                s.tests
                    .iter()
                    .all(|other| other.name == t || !other.name.contains(word))
            });
            words.extend(["--", unique.unwrap_or(t)]);
        }
        Some(t) => words.extend(["--", t, "--exact"]),
        None => {}
    }
    Some(
        words
            .iter()
            .map(|w| shell_word(w))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// A word a POSIX shell reads back as itself.
fn shell_word(w: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-.:/=+@%,".contains(c);
    if !w.is_empty() && w.chars().all(plain) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// Do these per-trial peaks keep growing? At least three trials, never
/// falling, rising in at least two steps (one jump is a short-lived process
/// sampled in one trial, not a trend), and the last at least half again the
/// first (and a real amount).
pub fn growth(peaks: &[u64], min_increase: u64) -> bool {
    let rises = peaks.windows(2).filter(|w| w[1] > w[0]).count();
    peaks.len() >= 3
        && peaks.windows(2).all(|w| w[1] >= w[0])
        && rises >= 2
        && peaks[peaks.len() - 1] >= peaks[0] + (peaks[0] / 2).max(min_increase)
}

impl LoopSummary {
    pub fn of(trials: &[Trial]) -> LoopSummary {
        let mut rates: Vec<SuiteRates> = Vec::new();
        for t in trials {
            for s in &t.suites {
                let i = match rates.iter().position(|r| r.id == s.id) {
                    Some(i) => i,
                    None => {
                        rates.push(SuiteRates {
                            id: s.id.clone(),
                            ..Default::default()
                        });
                        rates.len() - 1
                    }
                };
                let r = &mut rates[i];
                r.trials += 1;
                match s.status {
                    SuiteStatus::Pass => r.pass += 1,
                    SuiteStatus::Fail => r.fail += 1,
                    SuiteStatus::Crash => r.crash += 1,
                    SuiteStatus::Hang => r.hang += 1,
                    SuiteStatus::FlakyHang => r.flaky += 1,
                    SuiteStatus::Error => r.error += 1,
                }
                if s.failing_leaks() > 0 {
                    r.trials_with_leaks += 1;
                }
                r.max_survivors = r.max_survivors.max(s.failing_leaks() as u32);
                r.peak_processes.push(
                    s.attempts
                        .iter()
                        .map(|a| a.peak_processes)
                        .max()
                        .unwrap_or(0),
                );
                r.peak_memory_bytes.push(
                    s.attempts
                        .iter()
                        .map(|a| a.peak_memory_bytes)
                        .max()
                        .unwrap_or(0),
                );
            }
        }
        for r in &mut rates {
            let procs: Vec<u64> = r.peak_processes.iter().map(|&p| p as u64).collect();
            if growth(&procs, 2) {
                r.growing = Some(format!("peak processes grow trial over trial: {procs:?}"));
            } else if growth(&r.peak_memory_bytes, 8 << 20) {
                let mib: Vec<u64> = r.peak_memory_bytes.iter().map(|b| b >> 20).collect();
                r.growing = Some(format!("peak memory grows trial over trial (MiB): {mib:?}"));
            }
        }
        rates.sort_by(|a, b| a.id.cmp(&b.id));
        LoopSummary {
            trials: trials.len() as u32,
            leak_free_trials: trials
                .iter()
                .filter(|t| t.summary.leaked_processes == 0)
                .count() as u32,
            suites: rates,
        }
    }
}

/// Which trial a report shows in `suites` (its index): the last that
/// leaked (its table is the one to read), else the last.
pub fn shown_trial(trials: &[Trial]) -> Option<usize> {
    trials
        .iter()
        .rposition(|t| t.summary.leaked_processes > 0)
        .or(trials.len().checked_sub(1))
}

impl Summary {
    /// The counts of one trial: its suites, and the processes no suite could
    /// claim (counted as leaked too).
    pub fn of_trial(suites: &[SuiteReport], unattributed: &[Leak]) -> Summary {
        let mut s = Summary::of(suites);
        s.leaked_processes += unattributed.len();
        s.unattributed_processes += unattributed.len();
        s
    }

    /// The counts of one run's (or trial's) suites.
    pub fn of(suites: &[SuiteReport]) -> Summary {
        let count = |s: SuiteStatus| suites.iter().filter(|x| x.status == s).count();
        Summary {
            suites: suites.len(),
            passed: count(SuiteStatus::Pass),
            failed: count(SuiteStatus::Fail),
            crashed: count(SuiteStatus::Crash),
            hung: count(SuiteStatus::Hang),
            flaky: count(SuiteStatus::FlakyHang),
            errored: count(SuiteStatus::Error),
            leaked_processes: suites.iter().map(|s| s.failing_leaks()).sum(),
            suites_with_leaks: suites.iter().filter(|s| s.failing_leaks() > 0).count(),
            allowed_processes: suites
                .iter()
                .map(|s| s.leaks.len() - s.failing_leaks())
                .sum(),
            suites_with_tmp_files: suites.iter().filter(|s| s.tmp.is_some()).count(),
            unattributed_processes: 0,
            tests: suites.iter().filter_map(|s| s.counts).fold(
                TestCounts::default(),
                |mut sum, c| {
                    sum.add(&c);
                    sum
                },
            ),
            suites_without_counts: suites.iter().filter(|s| s.counts.is_none()).count(),
        }
    }

    /// Element-wise sum (trials of a loop).
    pub fn add(&mut self, o: &Summary) {
        self.suites += o.suites;
        self.passed += o.passed;
        self.failed += o.failed;
        self.crashed += o.crashed;
        self.hung += o.hung;
        self.flaky += o.flaky;
        self.errored += o.errored;
        self.leaked_processes += o.leaked_processes;
        self.suites_with_leaks += o.suites_with_leaks;
        self.allowed_processes += o.allowed_processes;
        self.suites_with_tmp_files += o.suites_with_tmp_files;
        self.unattributed_processes += o.unattributed_processes;
        self.tests.add(&o.tests);
        self.suites_without_counts += o.suites_without_counts;
    }
}

impl SuiteReport {
    /// Leaks no `allow` rule expects.
    pub fn failing_leaks(&self) -> usize {
        self.leaks.iter().filter(|l| l.allowed.is_none()).count()
    }
}

impl TestCounts {
    pub fn add(&mut self, o: &TestCounts) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.ignored += o.ignored;
        self.measured += o.measured;
        self.filtered_out += o.filtered_out;
    }

    /// Tests that ran: passed, failed or measured (not ignored, not filtered out).
    pub fn ran(&self) -> usize {
        self.passed + self.failed + self.measured
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rerun_hints_name_the_target_and_the_test() {
        let test = |name: &str| TestOutcome {
            name: name.into(),
            result: TestResult::Failed,
            duration_ms: None,
            output: None,
        };
        let mut s = SuiteReport {
            id: "foo::doctest/foo".into(),
            package: "foo".into(),
            target: "foo".into(),
            kind: SuiteKind::Doctest,
            binary: "cargo".into(),
            status: SuiteStatus::Fail,
            duration_ms: 0,
            log: None,
            attempts: vec![],
            leaks: vec![],
            attribution: None,
            tests: vec![
                test("src/lib.rs - add (line 3)"),
                test("src/lib.rs - sub (line 9)"),
            ],
            counts: None,
            tmp: None,
            problems: vec![],
        };
        // A doctest: the first word of its name no other test has, no --exact.
        assert_eq!(
            rerun_hint(&s, &[], Some("src/lib.rs - add (line 3)")).unwrap(),
            "cargo reap test -p foo --doc -- add"
        );
        s.kind = SuiteKind::ProcMacro;
        assert_eq!(
            rerun_hint(&s, &[], Some("it works")).unwrap(),
            "cargo reap test -p foo --lib -- 'it works' --exact"
        );
        s.kind = SuiteKind::Bin;
        assert_eq!(
            rerun_hint(&s, &[], None).unwrap(),
            "cargo reap test -p foo --bin foo"
        );
    }

    #[test]
    fn the_shown_trial_is_the_last_that_leaked_else_the_last() {
        let trial = |number: u32, leaked: usize| Trial {
            number,
            duration_ms: 0,
            suites: vec![],
            summary: Summary {
                leaked_processes: leaked,
                ..Default::default()
            },
            unattributed: vec![],
            runner: None,
        };
        assert_eq!(shown_trial(&[]), None);
        assert_eq!(shown_trial(&[trial(1, 0), trial(2, 0)]), Some(1));
        let t = [trial(1, 2), trial(2, 1), trial(3, 0)];
        assert_eq!(shown_trial(&t), Some(1));
    }

    #[test]
    fn growth_needs_a_steady_real_climb() {
        assert!(growth(&[2, 3, 5, 8], 2));
        assert!(!growth(&[2, 3], 2), "two trials are not a trend");
        assert!(!growth(&[5, 9, 4, 9], 2), "falling once is not growth");
        assert!(!growth(&[10, 10, 11], 2), "too small to matter");
        assert!(!growth(&[100, 100, 100], 2));
        assert!(
            !growth(&[1, 1, 3], 2),
            "one jump (a short-lived child sampled in one trial only) is not a trend"
        );
    }
}
