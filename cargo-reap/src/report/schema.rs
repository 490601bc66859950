//! The machine-readable report, `--json PATH`: schema version 1.
//!
//! Stable contract: fields are only ever added within a version; a field's
//! meaning never changes. Documented field by field in `docs/json-schema.md`.

use serde::{Deserialize, Serialize};

use crate::containment::IsolationKind;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    /// Unique id of this run; every suite process carried `CARGO_REAP_SUITE=<run_id>/<suite id>`.
    pub run_id: String,
    pub isolation: IsolationKind,
    /// Why the isolation was chosen (the line printed at start).
    pub isolation_note: String,
    pub duration_ms: u64,
    /// The process exit code of this run (see the README's exit codes).
    pub exit_code: i32,
    /// The build failed: no suite ran (`suites` is empty, exit code 101).
    pub build_failed: bool,
    /// The signal that interrupted the run (a partial report), if any.
    pub interrupted: Option<i32>,
    /// The suites of the (last) trial.
    pub suites: Vec<SuiteReport>,
    /// Without `--loop`: this run. With it: summed over every trial.
    pub summary: Summary,
    /// Process-group mode: processes of the run that no suite could claim
    /// (orphans while several suites ran), killed after the (last) trial.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unattributed: Vec<Leak>,
    /// `--loop`: every trial, in order (absent without `--loop`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<Trial>,
    /// `--loop`: rates per suite across the trials (absent without `--loop`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_summary: Option<LoopSummary>,
    /// Failures of cargo-reap's own work once suites had run (cleanup, the
    /// lifeline guard), one sentence each; any makes the exit code 2.
    /// Problems of one suite are that suite's `problems`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Each failing test of the (last) trial, and each failed, crashed, hung
    /// or unjudged suite that named no failing test, with the command that
    /// re-runs exactly it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
}

/// A failing test (or a suite that failed without naming one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The suite's `id`.
    pub suite: String,
    /// The suite's status (`fail`, `crash`, `hang`, `error`).
    pub status: SuiteStatus,
    /// The failing test (libtest printed `FAILED`), or for a hang the test in
    /// flight; absent when the suite as a whole failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// `cargo reap test -p PKG --test NAME -- TEST --exact`: re-runs exactly
    /// this test (or this suite); absent for `cargo reap run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun: Option<String>,
}

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
                .filter(|t| t.result == "FAILED")
                .map(|t| t.name.as_str())
                .collect();
            if tests.is_empty() && s.status == SuiteStatus::Hang {
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
    let target: Vec<&str> = match s.kind.as_str() {
        "lib" | "proc-macro" => vec!["--lib"],
        "bin" => vec!["--bin", &s.target],
        "test" => vec!["--test", &s.target],
        "example" => vec!["--example", &s.target],
        "bench" => vec!["--bench", &s.target],
        "doctest" => vec!["--doc"],
        _ => return None,
    };
    let mut words: Vec<&str> = vec!["cargo", "reap", "test"];
    words.extend(prefix.iter().map(String::as_str));
    words.extend(["-p", &s.package]);
    words.extend(target);
    match test {
        // A doctest's name has spaces and cargo hands rustdoc the test
        // arguments split on whitespace: `--exact` cannot name it; the first
        // word of its name that no other test of the suite has filters it.
        Some(t) if s.kind == "doctest" && t.contains(char::is_whitespace) => {
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

/// One run of every selected suite in `--loop` mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trial {
    /// 1-based; suites saw it as `CARGO_REAP_TRIAL`.
    pub number: u32,
    pub duration_ms: u64,
    pub suites: Vec<SuiteReport>,
    pub summary: Summary,
    /// Processes of the trial no suite could claim (process-group mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unattributed: Vec<Leak>,
    /// The runner's own descriptors and memory once the trial was reaped:
    /// flat across trials, or the runner itself leaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<RunnerVitals>,
}

/// cargo-reap's own resources, read from `/proc/self` between trials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerVitals {
    /// Open file descriptors.
    pub open_fds: usize,
    /// Resident memory (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Live threads.
    pub threads: u64,
}

impl RunnerVitals {
    /// Read them now (memory and threads through reap-probe's snapshot).
    pub fn read() -> Result<Self, reap_probe::ProbeError> {
        let fd_dir = std::path::Path::new("/proc/self/fd");
        let open_fds = std::fs::read_dir(fd_dir)
            .map_err(|source| reap_probe::ProbeError::Io {
                path: fd_dir.to_path_buf(),
                source,
            })?
            .count();
        let me = reap_probe::snapshot(std::process::id() as i32, Default::default())?;
        Ok(Self {
            // read_dir's own descriptor was open while it counted.
            open_fds: open_fds.saturating_sub(1),
            rss_kib: me.rss_bytes / 1024,
            threads: me.threads.max(0) as u64,
        })
    }
}

/// Per-suite rates across the trials of a `--loop` run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoopSummary {
    pub trials: u32,
    /// Trials in which no process leaked.
    pub leak_free_trials: u32,
    pub suites: Vec<SuiteRates>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SuiteRates {
    pub id: String,
    pub trials: u32,
    pub pass: u32,
    pub fail: u32,
    pub crash: u32,
    pub hang: u32,
    pub flaky: u32,
    /// Trials in which cargo-reap could not judge the suite.
    #[serde(default)]
    pub error: u32,
    pub trials_with_leaks: u32,
    /// Most processes leaked in one trial.
    pub max_survivors: u32,
    /// Peak process count of the suite in each trial.
    #[serde(default)]
    pub peak_processes: Vec<usize>,
    /// Peak memory of the suite in each trial.
    #[serde(default)]
    pub peak_memory_bytes: Vec<u64>,
    /// Set when the peaks grow trial over trial (how slow accumulation looks
    /// at minute one): what grows and the figures.
    #[serde(default)]
    pub growing: Option<String>,
}

/// Do these per-trial peaks keep growing? At least three trials, never
/// falling, and the last at least half again the first (and a real amount).
pub fn growth(peaks: &[u64], min_increase: u64) -> bool {
    peaks.len() >= 3
        && peaks.windows(2).all(|w| w[1] >= w[0])
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

impl Summary {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuiteStatus {
    Pass,
    Fail,
    Crash,
    Hang,
    FlakyHang,
    /// cargo-reap could not judge the suite (an I/O or system error of its
    /// own while running or reaping it): the verdict is unknown, see `problems`.
    Error,
}

impl SuiteStatus {
    /// The JSON name: `pass`, `fail`, `crash`, `hang`, `flaky-hang`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            SuiteStatus::Pass => "pass",
            SuiteStatus::Fail => "fail",
            SuiteStatus::Crash => "crash",
            SuiteStatus::Hang => "hang",
            SuiteStatus::FlakyHang => "flaky-hang",
            SuiteStatus::Error => "error",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SuiteStatus::Pass => "PASS",
            SuiteStatus::Fail => "FAIL",
            SuiteStatus::Crash => "CRASH",
            SuiteStatus::Hang => "HANG",
            SuiteStatus::FlakyHang => "FLAKY-HANG",
            SuiteStatus::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteReport {
    /// `<package>::<target>`
    pub id: String,
    pub package: String,
    pub target: String,
    /// `lib`, `bin`, `test`, `example`, `bench`
    pub kind: String,
    pub binary: String,
    pub status: SuiteStatus,
    /// Wall time of all attempts.
    pub duration_ms: u64,
    /// The captured output of every attempt (absent with `--no-capture`).
    pub log: Option<String>,
    pub attempts: Vec<Attempt>,
    pub leaks: Vec<Leak>,
    /// What test-level attribution did (absent when nothing leaked or `--attribute off`).
    pub attribution: Option<crate::suite::attribution::AttributionReport>,
    /// Each test of the last attempt and its result as libtest printed it
    /// (`ok`, `FAILED`, `ignored`); empty with `--no-capture`.
    #[serde(default)]
    pub tests: Vec<TestOutcome>,
    /// The last attempt's test counts, from libtest's `test result:` line
    /// (absent when it printed none: `--no-capture`, a crash or a hang, a
    /// binary that is not libtest's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<TestCounts>,
    /// Files the suite left in its private TMPDIR (removed); absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmp: Option<TmpLeftovers>,
    /// What went wrong in cargo-reap's own handling of this suite (a TMPDIR
    /// the suite deleted, a leak that could not be signalled, a log that could
    /// not be written, ...), one sentence each. With status `error` the
    /// verdict is unknown; otherwise the verdict stands and these are notes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// What a suite left in its private TMPDIR and cargo-reap removed. What it
/// did not remove (a mount, an entry it may not delete) and a TMPDIR that was
/// deleted or replaced by a symlink are sentences in `SuiteReport::problems`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpLeftovers {
    /// Files removed (anything but a directory; a symlink counts, its target is never touched).
    pub files: u64,
    /// Their bytes (a symlink's: the length of its target's name).
    pub bytes: u64,
    /// A few of the paths, relative to the TMPDIR.
    pub examples: Vec<String>,
}

impl SuiteReport {
    /// Leaks no `allow` rule expects.
    pub fn failing_leaks(&self) -> usize {
        self.leaks.iter().filter(|l| l.allowed.is_none()).count()
    }
}

/// Tests counted as libtest counts them (`N passed; N failed; N ignored;
/// N measured; N filtered out`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCounts {
    pub passed: usize,
    pub failed: usize,
    pub ignored: usize,
    pub measured: usize,
    pub filtered_out: usize,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestOutcome {
    pub name: String,
    pub result: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based.
    pub number: u32,
    pub exit_code: Option<i32>,
    /// The signal that ended the test binary (ours after a timeout, else a crash).
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub duration_ms: u64,
    /// Tests started and not finished when the hang-kill fired.
    pub tests_in_flight: Vec<String>,
    /// Of `tests_in_flight`, those named only by a thread name's 15-byte
    /// prefix that fits several unfinished tests: each may or may not run.
    #[serde(default)]
    pub in_flight_guesses: Vec<String>,
    /// The suite's processes when the hang-kill fired (part of the hang, not leaks).
    pub hang_processes: Vec<Leak>,
    /// SIGKILL rounds needed to empty the containment (0: nothing to kill).
    pub kill_rounds: u32,
    /// Bytes of output the attempt wrote.
    pub output_bytes: u64,
    /// Stopped because cargo-reap was interrupted (SIGINT/SIGTERM/SIGHUP).
    pub interrupted: bool,
    /// Most processes the suite had at once (sampled every 100 ms while it ran).
    #[serde(default)]
    pub peak_processes: usize,
    /// Most memory at once: cgroup `memory.current` where the memory
    /// controller is on, else the summed RSS of its processes.
    #[serde(default)]
    pub peak_memory_bytes: u64,
    /// `memory.current` or `rss`.
    #[serde(default)]
    pub memory_source: String,
    /// Timed-out attempts: reap-probe's report of the suite's process tree
    /// when the kill fired (what each process and thread was blocked on,
    /// sockets, pipes, findings), one string per line.
    pub tree: Vec<String>,
}

/// A process of the suite alive after its test binary exited (or, in
/// `hang_processes`, alive when the hang-kill fired).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Leak {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// One-letter state from /proc/PID/stat (`S`, `R`, `T`, `D`, ...).
    pub state: String,
    pub comm: String,
    pub cmdline: Vec<String>,
    /// Age when collected.
    pub age_ms: u64,
    pub attempt: u32,
    /// The runner killed it and confirmed it gone.
    pub reaped: bool,
    /// Why it is still alive when the runner could not kill it, e.g.
    /// `could not be killed: EPERM` (a root process of a non-root run, started
    /// through sudo or a setuid program); absent when it was killed. Such a
    /// leak fails the run like any other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_error: Option<String>,
    /// The test that started it, when attribution could tell.
    pub test: Option<String>,
    /// How `test` was determined, or why it could not be.
    pub attribution: Option<String>,
    /// Ids of the reap-probe rules that hold for it (`orphaned`, `escaped-session`, ...).
    pub findings: Vec<String>,
    /// The findings in plain words, one line each (same order as `findings`).
    pub notes: Vec<String>,
    /// Its open file descriptors by kind.
    pub fds: Option<reap_probe::FdSummary>,
    /// Kernel function it was sleeping in, when known.
    pub wchan: Option<String>,
    /// The system call it was blocked in, e.g. `read(fd=0)`, when readable.
    pub syscall: Option<String>,
    /// An `allow` rule of the configuration expects it: the rule's reason.
    /// Allowed survivors are reported (and reaped) but do not fail the run.
    #[serde(default)]
    pub allowed: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub suites: usize,
    pub passed: usize,
    pub failed: usize,
    pub crashed: usize,
    pub hung: usize,
    pub flaky: usize,
    /// Suites cargo-reap could not judge (status `error`).
    #[serde(default)]
    pub errored: usize,
    /// Survivors not covered by an `allow` rule.
    pub leaked_processes: usize,
    pub suites_with_leaks: usize,
    /// Survivors an `allow` rule expected.
    #[serde(default)]
    pub allowed_processes: usize,
    /// Suites that left files in their TMPDIR.
    #[serde(default)]
    pub suites_with_tmp_files: usize,
    /// Survivors no suite could claim (also counted in `leaked_processes`).
    #[serde(default)]
    pub unattributed_processes: usize,
    /// Tests of every suite that printed libtest's `test result:` line, summed.
    #[serde(default)]
    pub tests: TestCounts,
    /// Suites whose tests could not be counted (no `test result:` line:
    /// `--no-capture`, a crash or hang, a binary that is not libtest's).
    #[serde(default)]
    pub suites_without_counts: usize,
}

impl Summary {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rerun_hints_name_the_target_and_the_test() {
        let test = |name: &str| TestOutcome {
            name: name.into(),
            result: "FAILED".into(),
        };
        let mut s = SuiteReport {
            id: "foo::doctest/foo".into(),
            package: "foo".into(),
            target: "foo".into(),
            kind: "doctest".into(),
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
        s.kind = "proc-macro".into();
        assert_eq!(
            rerun_hint(&s, &[], Some("it works")).unwrap(),
            "cargo reap test -p foo --lib -- 'it works' --exact"
        );
        s.kind = "bin".into();
        assert_eq!(
            rerun_hint(&s, &[], None).unwrap(),
            "cargo reap test -p foo --bin foo"
        );
    }

    #[test]
    fn growth_needs_a_steady_real_climb() {
        assert!(growth(&[2, 3, 5, 8], 2));
        assert!(!growth(&[2, 3], 2), "two trials are not a trend");
        assert!(!growth(&[5, 9, 4, 9], 2), "falling once is not growth");
        assert!(!growth(&[10, 10, 11], 2), "too small to matter");
        assert!(!growth(&[100, 100, 100], 2));
    }
}
