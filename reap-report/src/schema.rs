//! The machine-readable report, `--json PATH`: schema version 1.
//!
//! Stable contract: fields are only ever added within a version; a field's
//! meaning never changes. Documented field by field in `docs/json-schema.md`.

use serde::{Deserialize, Serialize};

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
    /// What was selected to run, before `--partition` took its share: what
    /// `cargo reap merge` checks shard reports by. Absent in reports written
    /// before the field existed (and when the build failed before the suites
    /// were known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
    /// `cargo reap merge`: the `run_id`s of the reports it merged, in the
    /// order given (absent in a run's own report).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
    /// `cargo reap run --watch`: the sampled series of the command and the
    /// trend of each (absent without `--watch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<crate::WatchReport>,
}

/// The suites a run selected (before `--partition`) and its share of them.
/// Shard reports of one CI matrix have the same `fingerprint` and
/// `suites_total` and one `partition` each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// 16 hex digits: FNV-1a (64 bit) of the sorted ids of every selected
    /// suite before partitioning, then the arguments the test binaries got
    /// (TESTNAME, the arguments after `--`). Stable across machines and
    /// releases.
    pub fingerprint: String,
    /// Suites selected before partitioning.
    pub suites_total: usize,
    /// `--partition` as given (`hash:M/N`, `slice:M/N`); absent when the run
    /// took every selected suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
}

/// The isolation mode of a run, as reported (`"cgroup"` / `"process-group"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationKind {
    Cgroup,
    ProcessGroup,
}

impl std::fmt::Display for IsolationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IsolationKind::Cgroup => "cgroup",
            IsolationKind::ProcessGroup => "process-group",
        })
    }
}

/// A failing test (or a suite that failed without naming one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The suite's `id`.
    pub suite: String,
    /// The suite's status (`fail`, `crash`, `hang`, `error`).
    pub status: SuiteStatus,
    /// The failing test (libtest printed `FAILED`), or for a hang or a
    /// crash the test in flight; absent when the suite as a whole failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// `cargo reap test -p PKG --test NAME -- TEST --exact`: re-runs exactly
    /// this test (or this suite); absent for `cargo reap run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun: Option<String>,
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

/// cargo-reap's own resources, read from `/proc/self` between trials (by cargo-reap:
/// this crate reads nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerVitals {
    /// Open file descriptors.
    pub open_fds: usize,
    /// Resident memory (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Live threads.
    pub threads: u64,
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
    pub kind: SuiteKind,
    pub binary: String,
    pub status: SuiteStatus,
    /// Wall time of all attempts.
    pub duration_ms: u64,
    /// The captured output of every attempt (absent with `--no-capture`).
    pub log: Option<String>,
    pub attempts: Vec<Attempt>,
    pub leaks: Vec<Leak>,
    /// What test-level attribution did (absent when nothing leaked or `--attribute off`).
    pub attribution: Option<AttributionReport>,
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

/// What attribution did for one suite (JSON `attribution`, and one terminal line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributionReport {
    pub method: AttributionMethod,
    pub tests_listed: usize,
    pub tests_rerun: usize,
    pub leaks_attributed: usize,
    pub leaks_total: usize,
    pub duration_ms: u64,
    /// The budget stopped the re-runs before every test was tried.
    pub budget_exhausted: bool,
    /// Listed tests not re-run because the suite's run reported them
    /// `ignored` (they did not run, so they started nothing).
    #[serde(default)]
    pub tests_skipped_ignored: usize,
    /// Re-runs made (each runs one test or a group of tests together, in a
    /// containment of its own); `tests_rerun` counts the distinct tests they
    /// ran. Absent when none was made (and in reports written before it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reruns: usize,
    /// Leaks that only several tests run together reproduced (an
    /// interaction), each with the smallest set of tests found; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interactions: Vec<Interaction>,
}

/// For `skip_serializing_if`: a count that is absent when zero.
fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A leak that no test left alone, but a set of tests run together did
/// (JSON `attribution.interactions[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interaction {
    /// The smallest set of tests found that leaves the leak when run together, in list order.
    pub tests: Vec<String>,
    /// Pids of the suite's leaks it explains (as in `leaks[].pid`).
    pub pids: Vec<i32>,
}

/// How attribution went (JSON `attribution.method`): `window`, `single-test`,
/// `rerun`, `not-libtest`, or, when the tests could not be listed, that
/// sentence with the reason (`the tests could not be listed: <why>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributionMethod {
    /// Every leak started while exactly one test ran (serial output): no re-run.
    Window,
    /// The suite has one test: every leak is its.
    SingleTest,
    /// The tests were re-run one at a time.
    Rerun,
    /// A binary that does not speak libtest (`harness = false`): no test names.
    NotLibtest,
    /// The tests could not be listed; the reason.
    Unlisted(String),
}

/// Prefix of `attribution.method` when the tests could not be listed.
const UNLISTED: &str = "the tests could not be listed: ";

/// How a leak of a binary that does not speak libtest is described (in the
/// leak's `attribution` and the terminal's attribution line).
pub const NOT_LIBTEST: &str = "not a libtest binary";

impl std::fmt::Display for AttributionMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttributionMethod::Window => f.write_str("window"),
            AttributionMethod::SingleTest => f.write_str("single-test"),
            AttributionMethod::Rerun => f.write_str("rerun"),
            AttributionMethod::NotLibtest => f.write_str("not-libtest"),
            AttributionMethod::Unlisted(why) => write!(f, "{UNLISTED}{why}"),
        }
    }
}

impl Serialize for AttributionMethod {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AttributionMethod {
    /// Any other string is a reason the tests could not be listed (with or
    /// without the sentence's prefix).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "window" => AttributionMethod::Window,
            "single-test" => AttributionMethod::SingleTest,
            "rerun" => AttributionMethod::Rerun,
            "not-libtest" => AttributionMethod::NotLibtest,
            other => {
                AttributionMethod::Unlisted(other.strip_prefix(UNLISTED).unwrap_or(other).into())
            }
        })
    }
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestOutcome {
    pub name: String,
    pub result: TestResult,
    /// How long the test ran, derived from when cargo-reap read libtest's
    /// lines (the model and its limits: `docs/json-schema.md`); 0 for an
    /// ignored test; absent when the order tests started in is unknown
    /// (`--shuffle` with several test threads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The test's section of libtest's `failures:` block (`---- NAME stdout
    /// ----`): what it printed to stdout and stderr (libtest captures both
    /// into one) and its panic message and backtrace; at most 64 KiB (8 MiB
    /// for all tests of an attempt), cut with a note saying so. Absent
    /// for a passing test (libtest prints a passing test's output only with
    /// `--show-output`; then it is here too) and with `--no-capture`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// (`Default`: an attempt before anything happened, number 0.)
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based.
    pub number: u32,
    pub exit_code: Option<i32>,
    /// The signal that ended the test binary (ours after a timeout, else a crash).
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub duration_ms: u64,
    /// Tests started and not finished when the hang-kill fired; for an
    /// attempt that crashed (killed by a signal not cargo-reap's), the test
    /// whose `test NAME ... ` line was printed without a result when it died
    /// (serial runs only: parallel libtest names a test only at its end).
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
    pub memory_source: crate::MemorySource,
    /// Timed-out attempts: reap-probe's report of the suite's process tree
    /// when the kill fired (what each process and thread was blocked on,
    /// sockets, pipes, findings), one string per line.
    pub tree: Vec<String>,
    /// Hung attempts: where every thread of the suite's processes was blocked when the
    /// hang-kill fired (captured before the SIGTERM; the test binary first): per process,
    /// per thread, its frames (function, file, line, module, address), innermost first.
    /// Empty when capture is off (`--no-stacks`) or the attempt did not hang.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<ProcessStacks>,
    /// The suite's series while this attempt ran, sampled at the run's
    /// interval (absent when nothing was sampled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<crate::Timeline>,
    /// `cargo reap run --watch`: the watch's DURATION ended while the
    /// command ran, and cargo-reap stopped it (SIGTERM, the grace, SIGKILL):
    /// its exit status is cargo-reap's doing, not a crash.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub watch_ended: bool,
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
    pub state: char,
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

// The stacks of a hung attempt (captured by the reap-stack crate).

/// One frame of a thread's stack, innermost first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The instruction pointer (first frame) or return address.
    pub address: u64,
    /// The function, demangled (`std::sync::mpsc::Receiver<T>::recv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The file name of the object (binary or library) the address is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// An inlined call (shares its address with the frame below it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inlined: bool,
}

/// One thread's stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadStack {
    pub tid: i32,
    /// Its name (`/proc/PID/task/TID/comm`, 15 bytes: libtest names a test's thread after it).
    pub name: String,
    /// Its state before we stopped it (`S`, `D`, `R`, ...).
    pub state: String,
    /// The kernel function it sleeps in (`/proc/PID/task/TID/wchan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wchan: Option<String>,
    pub frames: Vec<Frame>,
    /// Why its stack is missing or cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The stacks of one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStacks {
    pub pid: i32,
    /// Its command (`/proc/PID/comm`).
    pub command: String,
    pub threads: Vec<ThreadStack>,
    /// Threads left out (over the thread limit, out of time), one sentence each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// Why no stack of it was captured (the kernel refused, it exited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the capture took, in microseconds (reading its objects, stopping, unwinding,
    /// symbolizing).
    pub capture_us: u64,
    /// How long its threads were stopped, in microseconds (from the first seize to the last
    /// detach).
    #[serde(default)]
    pub stopped_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds, results and memory sources are enums in the code and the
    /// same words as before in the JSON (reports of earlier runs still read).
    #[test]
    fn enum_fields_keep_their_json_words() {
        use crate::MemorySource;
        let words = |v: serde_json::Value| v.as_str().unwrap().to_string();
        for k in [
            SuiteKind::Lib,
            SuiteKind::ProcMacro,
            SuiteKind::Bin,
            SuiteKind::Test,
            SuiteKind::Example,
            SuiteKind::Bench,
            SuiteKind::Doctest,
            SuiteKind::Command,
        ] {
            assert_eq!(words(serde_json::to_value(k).unwrap()), k.as_str());
            let back: SuiteKind = serde_json::from_value(k.as_str().into()).unwrap();
            assert_eq!(back, k);
        }
        for r in [
            TestResult::Ok,
            TestResult::Failed,
            TestResult::Ignored,
            TestResult::Bench,
        ] {
            assert_eq!(words(serde_json::to_value(r).unwrap()), r.as_str());
        }
        assert_eq!(TestResult::Failed.as_str(), "FAILED");
        assert_eq!(SuiteKind::ProcMacro.as_str(), "proc-macro");
        for m in [
            MemorySource::Unknown,
            MemorySource::MemoryCurrent,
            MemorySource::Rss,
        ] {
            assert_eq!(words(serde_json::to_value(m).unwrap()), m.as_str());
            let back: MemorySource = serde_json::from_value(m.as_str().into()).unwrap();
            assert_eq!(back, m);
        }
    }

    /// A report written before `selection` and `merged_from` existed still
    /// reads; without them nothing new is written.
    #[test]
    fn reports_before_selection_still_read() {
        let old = r#"{"version": 1, "run_id": "r", "isolation": "cgroup",
            "isolation_note": "", "duration_ms": 1, "exit_code": 0,
            "build_failed": false, "interrupted": null, "suites": [],
            "summary": {"suites": 0, "passed": 0, "failed": 0, "crashed": 0,
                        "hung": 0, "flaky": 0, "leaked_processes": 0,
                        "suites_with_leaks": 0}}"#;
        let r: Report = serde_json::from_str(old).unwrap();
        assert!(r.selection.is_none() && r.merged_from.is_empty());
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("selection") && !json.contains("merged_from"));
        let mut r = r;
        r.selection = Some(Selection {
            fingerprint: "0123456789abcdef".into(),
            suites_total: 4,
            partition: Some("hash:1/2".into()),
        });
        let back: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.selection, r.selection);
    }

    #[test]
    fn attribution_method_reads_back_as_it_was_written() {
        for m in [
            AttributionMethod::Window,
            AttributionMethod::SingleTest,
            AttributionMethod::Rerun,
            AttributionMethod::NotLibtest,
            AttributionMethod::Unlisted("cargo test --list: exit 101".into()),
        ] {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(
                serde_json::from_str::<AttributionMethod>(&json).unwrap(),
                m,
                "{json}"
            );
        }
        assert_eq!(
            serde_json::to_string(&AttributionMethod::Unlisted("exit 101".into())).unwrap(),
            "\"the tests could not be listed: exit 101\""
        );
        assert_eq!(
            serde_json::to_string(&AttributionMethod::SingleTest).unwrap(),
            "\"single-test\""
        );
    }
}

/// What a suite runs: a test target's binary (by the target's kind), a
/// package's doctests, or `cargo reap run`'s command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuiteKind {
    Lib,
    ProcMacro,
    Bin,
    Test,
    Example,
    Bench,
    Doctest,
    Command,
}

impl SuiteKind {
    /// The name in ids and reports: `lib`, `proc-macro`, `bin`, `test`,
    /// `example`, `bench`, `doctest`, `command`.
    pub fn as_str(self) -> &'static str {
        match self {
            SuiteKind::Lib => "lib",
            SuiteKind::ProcMacro => "proc-macro",
            SuiteKind::Bin => "bin",
            SuiteKind::Test => "test",
            SuiteKind::Example => "example",
            SuiteKind::Bench => "bench",
            SuiteKind::Doctest => "doctest",
            SuiteKind::Command => "command",
        }
    }

    /// A libtest harness (or rustdoc's): understands `--list` and `--exact`.
    pub fn is_libtest(self) -> bool {
        self != SuiteKind::Command
    }
}

impl std::fmt::Display for SuiteKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A test's result, as libtest prints it on its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TestResult {
    #[serde(rename = "ok")]
    Ok,
    #[serde(rename = "FAILED")]
    Failed,
    #[serde(rename = "ignored")]
    Ignored,
    #[serde(rename = "bench")]
    Bench,
}

impl TestResult {
    /// libtest's word: `ok`, `FAILED`, `ignored`, `bench`.
    pub fn as_str(self) -> &'static str {
        match self {
            TestResult::Ok => "ok",
            TestResult::Failed => "FAILED",
            TestResult::Ignored => "ignored",
            TestResult::Bench => "bench",
        }
    }
}

impl std::fmt::Display for TestResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
