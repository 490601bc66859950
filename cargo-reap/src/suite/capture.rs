//! Capture of a suite's output: one pipe for stdout and stderr (interleaved as on
//! a terminal), drained by a thread into the suite's log file (bounded), with a
//! tail kept in memory and libtest's `test NAME ... RESULT` lines tracked so a
//! hang can be attributed to the tests that had not finished.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reap_report::TestResult;

/// At most this much of one attempt's output is written to its log.
pub const LOG_LIMIT: u64 = 256 * 1024 * 1024;
/// At most this many per-test results are kept (a suite of a million tests
/// must not make the runner's memory grow without bound).
const MAX_RESULTS: usize = 100_000;
/// Lines kept in memory for the tail shown after a failure.
const TAIL_LINES: usize = 200;
/// At most this much of one test's section in libtest's `failures:` (or,
/// with `--show-output`, `successes:`) block is kept (the whole is in the log).
pub const SECTION_LIMIT: usize = 64 * 1024;
/// At most this many such sections are kept.
const MAX_SECTIONS: usize = 1_000;
/// At most this much of all sections of one attempt is kept.
const SECTIONS_TOTAL: usize = 8 * 1024 * 1024;
/// Ends a section that was cut.
const SECTION_CUT: &str = "[cargo-reap: cut here; the whole output is in the suite's log]";

/// One test's result as libtest printed it, with when cargo-reap read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultLine {
    pub name: String,
    pub result: TestResult,
    /// When the result was read.
    pub at: Instant,
    /// When its `test NAME ... ` line was read ahead of the result (serial
    /// runs, where libtest prints the name before running the test).
    pub started: Option<Instant>,
}

/// The span of boot-time clock ticks in which a test ran, as its output showed
/// (`test NAME ... ` when it started, the result when it ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestWindow {
    pub name: String,
    pub start_ticks: u64,
    pub end_ticks: Option<u64>,
}

impl TestWindow {
    /// Could a process started at `ticks` have been started by this test?
    /// One tick of slack each side: lines are read a moment after they are written.
    pub fn contains(&self, ticks: u64) -> bool {
        ticks + 1 >= self.start_ticks && self.end_ticks.is_none_or(|e| ticks <= e + 1)
    }
}

/// What the capture thread has seen so far.
#[derive(Debug, Default)]
pub struct OutputState {
    /// Tests libtest reported as finished (`ok`, `FAILED`, `ignored`, ...).
    pub finished: HashSet<String>,
    /// Tests whose `test NAME ... ` line was printed without a result yet
    /// (serial runs print the name before running the test).
    pub started: Vec<String>,
    /// The last lines of output.
    pub tail: VecDeque<String>,
    /// When each test ran, where the output shows its start (serial runs).
    pub windows: Vec<TestWindow>,
    /// Each finished test and its result word (`ok`, `FAILED`, `ignored`), in order.
    pub results: Vec<ResultLine>,
    /// libtest's `test result:` lines, summed (absent when none was printed).
    pub counts: Option<reap_report::TestCounts>,
    /// When libtest's `running N tests` line was read (its tests start then).
    pub running_at: Option<Instant>,
    /// Each test's section of libtest's `failures:` block (`---- NAME stdout
    /// ----`: its captured output, panic message and backtrace), in order,
    /// bounded by [`SECTION_LIMIT`]; with `--show-output` also `successes:`.
    pub sections: Vec<(String, String)>,
    /// The section being read: in a `failures:` / `successes:` block.
    section: Option<Section>,
    /// Bytes of `sections` so far.
    section_bytes: usize,
    /// When the current chunk of output was read.
    now: Option<Instant>,
    /// Serial tests whose `test NAME ... ` line was read, and when.
    start_seen: Vec<(String, Instant)>,
    /// A result read off the end of foreign text (`child textok`), kept
    /// until the next libtest line: a later exact result of the same test
    /// (the child's text merely ended in `ok`) replaces it.
    tentative: Option<(String, TestResult)>,
    /// The current unterminated line.
    partial: Vec<u8>,
}

/// Append `line` to a section's `text` while it fits in [`SECTION_LIMIT`];
/// the first line that does not is replaced by a note that it was cut.
fn keep_line(text: &mut String, line: &str) {
    if text.ends_with(SECTION_CUT) {
        return;
    }
    if text.len() + line.len() + 1 + SECTION_CUT.len() <= SECTION_LIMIT {
        text.push_str(line);
        text.push('\n');
    } else {
        text.push_str(SECTION_CUT);
    }
}

/// Where libtest's end-of-run block is being read.
#[derive(Debug)]
enum Section {
    /// After `failures:` / `successes:`, before a test's header.
    Block,
    /// In `---- NAME stdout ----`: its name and text so far.
    Test(String, String),
}

impl OutputState {
    fn line(&mut self, raw: &[u8]) {
        let line = String::from_utf8_lossy(raw)
            .trim_end_matches('\r')
            .to_string();
        if self.section_line(&line) {
            // Part of the failures block: a test's own output, never a result.
        } else if let Some(c) = parse_result_line(&line) {
            self.commit_tentative();
            self.counts.get_or_insert_with(Default::default).add(&c);
        } else if line.starts_with("running ") && line.ends_with(" tests")
            || line == "running 1 test"
        {
            self.running_at.get_or_insert(self.now());
        } else if let Some((name, rest)) = split_test_line(&line) {
            // `test NAME ... RESULT`, or (serial) `test NAME ... ` followed
            // by a child's text: the result then ends this line or a later one.
            self.commit_tentative();
            if let Some(result) = result_word(rest) {
                self.finish(name, result);
            } else {
                if !self.started.iter().any(|n| n == name) {
                    self.started.push(name.to_string());
                }
                if !self.start_seen.iter().any(|(n, _)| n == name)
                    && self.start_seen.len() < MAX_RESULTS
                {
                    let now = self.now();
                    self.start_seen.push((name.to_string(), now));
                }
                self.tentative = trailing_result(rest).map(|r| (name.to_string(), r));
            }
        } else if let Some(pending) = self.started.last().cloned() {
            // A serial test's result after foreign lines; any other line is
            // not libtest's and names no test (no result is made up).
            if let Some(result) = result_word(&line) {
                self.tentative = None;
                self.finish(&pending, result);
            } else if let Some(result) = trailing_result(&line) {
                self.tentative = Some((pending, result));
            }
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    /// When the chunk being fed was read.
    fn now(&self) -> Instant {
        self.now.unwrap_or_else(Instant::now)
    }

    /// libtest's block after the tests (`failures:`, then per test
    /// `---- NAME stdout ----` and its captured output, then `failures:` and
    /// the names): true when `line` belongs to it (and was kept).
    fn section_line(&mut self, line: &str) -> bool {
        if line == "failures:" || line == "successes:" {
            self.close_section();
            self.section = Some(Section::Block);
            return true;
        }
        let Some(section) = &mut self.section else {
            return false;
        };
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|l| l.strip_suffix(" stdout ----"))
            .filter(|n| self.finished.contains(*n))
        {
            self.close_section();
            self.section = Some(Section::Test(name.to_string(), String::new()));
            return true;
        }
        match section {
            Section::Test(_, text) => {
                keep_line(text, line);
                true
            }
            // The names list after the sections, up to `test result:`; a
            // result line means the `failures:` was some test's own output.
            Section::Block
                if parse_result_line(line).is_some()
                    || parse_test_line(line).is_some_and(|(_, r)| r.is_some()) =>
            {
                self.section = None;
                false
            }
            Section::Block => true,
        }
    }

    /// The section being read is complete: kept, or past the attempt's
    /// budget replaced by the note that it was cut.
    fn close_section(&mut self) {
        if let Some(Section::Test(name, text)) = self.section.take() {
            if self.sections.len() < MAX_SECTIONS {
                let mut text = text.trim_end_matches('\n').to_string();
                if self.section_bytes + text.len() > SECTIONS_TOTAL {
                    text = SECTION_CUT.to_string();
                }
                self.section_bytes += text.len();
                self.sections.push((name, text));
            }
        }
    }

    fn commit_tentative(&mut self) {
        if let Some((name, result)) = self.tentative.take() {
            self.finish(&name, result);
        }
    }

    /// `name` finished with `result`: recorded, and its window closed (or,
    /// serial output whose start was not seen, opened from the previous
    /// test's end: a test that started and ended within one clock tick
    /// shares that tick with its neighbours, so a leak started then is not
    /// judged by its window alone).
    fn finish(&mut self, name: &str, result: TestResult) {
        self.started.retain(|n| n != name);
        self.finished.insert(name.to_string());
        let started = self
            .start_seen
            .iter()
            .rposition(|(n, _)| n == name)
            .map(|i| self.start_seen.swap_remove(i).1);
        if self.results.len() < MAX_RESULTS {
            self.results.push(ResultLine {
                name: name.to_string(),
                result,
                at: self.now(),
                started,
            });
        }
        let now = reap_probe::boottime_ticks();
        if let Some(w) = self
            .windows
            .iter_mut()
            .rev()
            .find(|w| w.name == name && w.end_ticks.is_none())
        {
            w.end_ticks = Some(now);
        } else if let Some(prev) = self.windows.last().and_then(|w| w.end_ticks) {
            self.windows.push(TestWindow {
                name: name.to_string(),
                start_ticks: prev,
                end_ticks: Some(now),
            });
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.feed_at(bytes, Instant::now());
    }

    /// [`OutputState::feed`] with the time the bytes were read.
    fn feed_at(&mut self, mut bytes: &[u8], now: Instant) {
        self.now = Some(now);
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&bytes[..nl]);
            self.line(&line);
            bytes = &bytes[nl + 1..];
        }
        self.partial.extend_from_slice(bytes);
        // Serial libtest prints `test NAME ... ` and flushes before running
        // the test: seeing it unterminated opens the test's window now.
        if self.partial.starts_with(b"test ") {
            let partial = String::from_utf8_lossy(&self.partial).into_owned();
            if let Some((name, None)) = parse_test_line(partial.trim_end()) {
                if !self.start_seen.iter().any(|(n, _)| n == name)
                    && self.start_seen.len() < MAX_RESULTS
                {
                    self.start_seen.push((name.to_string(), now));
                }
                if !self
                    .windows
                    .iter()
                    .any(|w| w.name == name && w.end_ticks.is_none())
                {
                    self.windows.push(TestWindow {
                        name: name.to_string(),
                        start_ticks: reap_probe::boottime_ticks(),
                        end_ticks: None,
                    });
                }
            }
        }
        if self.partial.len() > 64 * 1024 {
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
        }
    }

    /// Tests that started and have not finished, as far as the output shows:
    /// a pending `test NAME ... ` (serial), or a name still unterminated.
    pub fn unfinished(&self) -> Vec<String> {
        let mut v = self.started.clone();
        let partial = String::from_utf8_lossy(&self.partial);
        if let Some((name, None)) = parse_test_line(partial.trim_end()) {
            if !v.iter().any(|n| n == name) {
                v.push(name.to_string());
            }
        }
        v.retain(|n| !self.finished.contains(n));
        v
    }
}

/// `test foo::bar ... ok` → (`foo::bar`, `ok`); `test foo ... ` → (`foo`, ``);
/// `test foo ... child text` → (`foo`, `child text`): the name and whatever
/// follows ` ... ` (a result, or a child's output that landed in between).
pub fn split_test_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("test ")?;
    let (name, result) = rest.split_once(" ...")?;
    if name.is_empty() || name.contains(' ') && !name.contains(" - ") {
        return None;
    }
    Some((name, result.strip_prefix(' ').unwrap_or(result)))
}

/// `test foo ... ok` → (`foo`, `Some(Ok)`), with the result as
/// [`result_word`] reads it (`None` when the line holds no result).
pub fn parse_test_line(line: &str) -> Option<(&str, Option<TestResult>)> {
    let (name, rest) = split_test_line(line)?;
    Some((name, result_word(rest)))
}

/// libtest's result of one test, exactly: `ok`, `FAILED`, `ignored`,
/// `ignored, REASON`, `bench: ...` (and `--report-time`'s ` <0.001s>`,
/// `--ensure-time`'s `FAILED (time limit exceeded)`) → `ok`, `FAILED`,
/// `ignored`, `bench`. Anything else is not a result.
pub fn result_word(text: &str) -> Option<TestResult> {
    let t = text.trim();
    let t = match t.rsplit_once(" <") {
        Some((head, time)) if time.ends_with("s>") => head,
        _ => t,
    };
    match t {
        "ok" => Some(TestResult::Ok),
        "FAILED" | "FAILED (time limit exceeded)" => Some(TestResult::Failed),
        "ignored" => Some(TestResult::Ignored),
        _ if t.starts_with("ignored, ") => Some(TestResult::Ignored),
        _ if t.starts_with("bench: ") => Some(TestResult::Bench),
        _ => None,
    }
}

/// A result at the end of foreign text (serial libtest's `ok` after a
/// child's output with no newline: `child textok`).
fn trailing_result(text: &str) -> Option<TestResult> {
    let t = text.trim_end();
    ["ok", "FAILED"]
        .into_iter()
        .find(|w| t.len() > w.len() && t.ends_with(w))
        .and_then(result_word)
}

/// libtest's summary of a binary:
/// `test result: FAILED. 3 passed; 1 failed; 2 ignored; 0 measured; 4 filtered out; finished in 0.01s`.
pub fn parse_result_line(line: &str) -> Option<reap_report::TestCounts> {
    let rest = line.strip_prefix("test result: ")?;
    let (_, counts) = rest.split_once(". ")?;
    let mut c = reap_report::TestCounts::default();
    let mut seen = 0;
    for part in counts.split(';') {
        let part = part.trim();
        let Some((n, what)) = part.split_once(' ') else {
            continue;
        };
        let Ok(n) = n.parse::<usize>() else {
            continue;
        };
        let slot = match what {
            "passed" => &mut c.passed,
            "failed" => &mut c.failed,
            "ignored" => &mut c.ignored,
            "measured" => &mut c.measured,
            "filtered out" => &mut c.filtered_out,
            _ => continue,
        };
        *slot = n;
        seen += 1;
    }
    (seen >= 3).then_some(c)
}

/// The problem line when the per-test results do not add up to libtest's
/// own `test result:` counts (a result line cargo-reap could not read).
/// Nothing to compare without counts or results, or past [`MAX_RESULTS`].
pub fn results_disagree(
    results: &[TestResult],
    counts: Option<&reap_report::TestCounts>,
) -> Option<String> {
    let c = counts?;
    if results.is_empty() || results.len() >= MAX_RESULTS {
        return None;
    }
    let n = |w: TestResult| results.iter().filter(|r| **r == w).count();
    let read = (
        n(TestResult::Ok),
        n(TestResult::Failed),
        n(TestResult::Ignored),
        n(TestResult::Bench),
    );
    let said = (c.passed, c.failed, c.ignored, c.measured);
    (read != said).then(|| {
        format!(
            "per-test results read from its output ({} ok, {} failed, {} ignored, {} measured) do not add up to libtest's counts ({} passed, {} failed, {} ignored, {} measured): a result line was not read",
            read.0, read.1, read.2, read.3, said.0, said.1, said.2, said.3
        )
    })
}

/// Why a suite's log stopped being written (a full disk, say). Shared by
/// every attempt and re-run of the suite: once a write failed, the log is
/// left as it is (no gap in the middle of it) while the output is still read,
/// tracked and discarded, so the suite runs on and keeps its verdict.
#[derive(Debug, Clone, Default)]
pub struct LogFailure(Arc<Mutex<Option<String>>>);

impl LogFailure {
    /// The reason, once a write failed.
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Write `bytes` to `log` unless an earlier write failed; a failure is
    /// recorded (the first one wins). Returns whether the bytes were written.
    pub fn write(&self, log: &mut impl Write, bytes: &[u8]) -> bool {
        let mut failed = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if failed.is_some() {
            return false;
        }
        match log.write_all(bytes) {
            Ok(()) => true,
            Err(e) => {
                *failed = Some(io_reason(&e));
                false
            }
        }
    }

    /// The suite's problem line, once a write failed.
    pub fn problem(&self) -> Option<String> {
        self.get().map(|r| format!("output log truncated: {r}"))
    }
}

/// A suite's log file and how many bytes it holds (every attempt and re-run
/// appends to it; the capture limit applies to the whole file).
pub struct SuiteLog {
    pub file: File,
    pub logged: Arc<AtomicU64>,
    /// Set once a write to the log failed (a full disk): the suite runs on.
    pub failure: LogFailure,
}

impl SuiteLog {
    /// A new, empty log at `path`; `what` names it in the error.
    pub fn create(
        path: &std::path::Path,
        what: &'static str,
    ) -> Result<SuiteLog, crate::error::RunError> {
        Ok(SuiteLog {
            file: File::create(path).map_err(|source| crate::error::RunError::Io {
                what,
                path: path.to_path_buf(),
                source,
            })?,
            logged: Arc::new(AtomicU64::new(0)),
            failure: LogFailure::default(),
        })
    }

    /// Head what follows in the log (an attempt, a re-run) with `what`.
    /// A log that cannot be written (full disk) is a problem of the suite,
    /// not a reason to stop running it.
    pub fn head(&self, what: &str) {
        let header = format!("===== cargo-reap: {what} =====\n");
        self.failure.write(&mut &self.file, header.as_bytes());
    }

    /// The suite's problem when its log could not be written in full.
    pub fn problem(&self) -> Option<String> {
        self.failure.problem()
    }
}

/// An I/O error in words, without the `(os error N)` suffix.
pub fn io_reason(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The output line that makes a capture panic under
/// `CARGO_REAP_TEST_PANIC=capture` (debug builds; see [`crate::fatal`]).
const PANIC_MARK: &[u8] = b"cargo-reap-test: panic now";

/// Where a streamed suite's output is copied as it comes (`--no-capture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    Stdout,
    Stderr,
}

impl Echo {
    fn write(self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Echo::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(bytes).and_then(|()| out.flush())
            }
            Echo::Stderr => io::stderr().lock().write_all(bytes),
        }
    }
}

/// A running capture thread.
pub struct Capture {
    state: Arc<Mutex<OutputState>>,
    done: mpsc::Receiver<io::Result<u64>>,
    thread: Option<JoinHandle<()>>,
    log_path: PathBuf,
    logged: Arc<AtomicU64>,
}

/// What the capture produced.
#[derive(Debug)]
pub struct Captured {
    pub bytes: u64,
    pub truncated: bool,
    pub tail: Vec<String>,
    /// Test windows (serial runs only).
    pub windows: Vec<TestWindow>,
    /// Per-test results from libtest's output.
    pub results: Vec<ResultLine>,
    /// libtest's `test result:` lines, summed.
    pub counts: Option<reap_report::TestCounts>,
    /// When libtest's `running N tests` line was read.
    pub running_at: Option<Instant>,
    /// Each test's section of libtest's `failures:` block (bounded).
    pub sections: Vec<(String, String)>,
    /// Tests started and not finished when the output ended (serial runs).
    pub unfinished: Vec<String>,
    /// False when the pipe was still held open after the suite was reaped
    /// (only possible for a process that escaped process-group containment).
    pub complete: bool,
}

impl Capture {
    /// Start draining `pipe` into `log` (and, with `stream`, to stdout as it
    /// comes: `--no-capture`).
    /// `logged` counts the bytes already in this log (shared by every attempt
    /// and re-run of a suite), so [`LOG_LIMIT`] bounds the whole file.
    pub fn start(
        pipe: OwnedFd,
        mut log: File,
        log_path: PathBuf,
        logged: Arc<AtomicU64>,
        failure: LogFailure,
        echo: Option<Echo>,
    ) -> Capture {
        let state = Arc::new(Mutex::new(OutputState::default()));
        let (tx, done) = mpsc::channel();
        let st = Arc::clone(&state);
        let counter = Arc::clone(&logged);
        // Debug builds only: the end-to-end test of a panic while a suite runs.
        let panic_armed = crate::fatal::armed("capture");
        let log_path_shown = log_path.clone();
        let mut echo = echo;
        let thread = std::thread::spawn(move || {
            let mut pipe = File::from(pipe);
            let mut buf = vec![0u8; 64 * 1024];
            let mut total: u64 = 0;
            let result = loop {
                let n = match pipe.read(&mut buf) {
                    Ok(0) => break Ok(total),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => break Err(e),
                };
                if panic_armed && buf[..n].windows(PANIC_MARK.len()).any(|w| w == PANIC_MARK) {
                    crate::fatal::inject("capture");
                }
                total += n as u64;
                if let Some(to) = echo {
                    if let Err(e) = to.write(&buf[..n]) {
                        // The log and the verdict do not depend on the terminal.
                        eprintln!("cargo-reap: warning: suite output is no longer streamed ({e}); it is still in {}", log_path_shown.display());
                        echo = None;
                    }
                }
                st.lock().unwrap_or_else(|p| p.into_inner()).feed(&buf[..n]);
                let written = logged.load(Ordering::SeqCst);
                if written < LOG_LIMIT {
                    let take = (LOG_LIMIT - written).min(n as u64) as usize;
                    if failure.write(&mut log, &buf[..take])
                        && logged.fetch_add(take as u64, Ordering::SeqCst) + take as u64
                            == LOG_LIMIT
                    {
                        let note = format!(
                            "\n[cargo-reap: log truncated at {} MiB; the rest of the output was read and discarded]\n",
                            LOG_LIMIT >> 20
                        );
                        failure.write(&mut log, note.as_bytes());
                    }
                }
            };
            // The receiver may be gone if the runner gave up waiting; nothing to tell then.
            if tx.send(result).is_err() {
                tracing::debug!("capture finished after its reader stopped waiting");
            }
        });
        Capture {
            state,
            done,
            thread: Some(thread),
            log_path,
            logged: counter,
        }
    }

    /// Tests that started and did not finish, per the output so far.
    pub fn unfinished_tests(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unfinished()
    }

    /// Tests whose result line was printed so far.
    pub fn finished_tests(&self) -> HashSet<String> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .finished
            .clone()
    }

    /// Wait for the pipe to close (every holder gone), at most `timeout`.
    pub fn finish(mut self, timeout: Duration) -> Result<Captured, crate::error::RunError> {
        let (bytes, complete) = match self.done.recv_timeout(timeout) {
            Ok(Ok(total)) => (total, true),
            Ok(Err(e)) => {
                return Err(crate::error::RunError::Io {
                    what: "capturing output to",
                    path: self.log_path.clone(),
                    source: e,
                })
            }
            Err(_) => (0, false),
        };
        if complete {
            if let Some(t) = self.thread.take() {
                if t.join().is_err() {
                    eprintln!("cargo-reap: warning: the output capture thread panicked");
                }
            }
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.commit_tentative();
        st.close_section();
        let mut tail: Vec<String> = st.tail.iter().cloned().collect();
        if !st.partial.is_empty() {
            tail.push(String::from_utf8_lossy(&st.partial).into_owned());
        }
        Ok(Captured {
            bytes,
            truncated: bytes > 0 && self.logged.load(Ordering::SeqCst) >= LOG_LIMIT,
            tail,
            windows: st.windows.clone(),
            results: st.results.clone(),
            counts: st.counts,
            running_at: st.running_at,
            sections: std::mem::take(&mut st.sections),
            unfinished: st.unfinished(),
            complete,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libtest_lines() {
        assert_eq!(
            parse_test_line("test a::b ... ok"),
            Some(("a::b", Some(TestResult::Ok)))
        );
        assert_eq!(
            parse_test_line("test a ... FAILED"),
            Some(("a", Some(TestResult::Failed)))
        );
        assert_eq!(parse_test_line("test a ... "), Some(("a", None)));
        assert_eq!(
            parse_test_line("test a ... ignored, slow"),
            Some(("a", Some(TestResult::Ignored)))
        );
        assert_eq!(
            parse_test_line("test a ... ok <0.003s>"),
            Some(("a", Some(TestResult::Ok)))
        );
        assert_eq!(parse_test_line("test a ... test output"), Some(("a", None)));
        assert_eq!(parse_test_line("test result: ok. 1 passed"), None);
        assert_eq!(parse_test_line("running 3 tests"), None);
    }

    #[test]
    fn result_lines_are_counted() {
        let c = parse_result_line(
            "test result: FAILED. 3 passed; 1 failed; 2 ignored; 0 measured; 4 filtered out; finished in 0.01s",
        )
        .unwrap();
        assert_eq!(
            (c.passed, c.failed, c.ignored, c.filtered_out),
            (3, 1, 2, 4)
        );
        assert!(parse_result_line("test result: whatever").is_none());
        assert!(parse_result_line("test foo ... ok").is_none());
    }

    #[test]
    fn serial_output_opens_and_closes_test_windows() {
        let mut s = OutputState::default();
        s.feed(b"running 2 tests\ntest one ... ");
        assert_eq!(s.windows.len(), 1);
        assert_eq!(s.windows[0].name, "one");
        assert!(s.windows[0].end_ticks.is_none());
        let start = s.windows[0].start_ticks;
        assert!(s.windows[0].contains(start));
        s.feed(b"ok\ntest two ... ok\n");
        let w = &s.windows[0];
        assert!(w.end_ticks.is_some());
        assert!(!w.contains(w.end_ticks.unwrap() + 2));
        assert!(!w.contains(start.saturating_sub(2)) || start < 2);
    }

    #[test]
    fn child_output_between_name_and_result_changes_no_result() {
        let mut s = OutputState::default();
        s.feed(b"running 6 tests\ntest a ... child line\nok\n");
        s.feed(b"test b ... test output from a child\nFAILED\n");
        s.feed(b"test c ... no newlineok\ntest d ... look\nFAILED\n");
        s.feed(b"test e ... test x ... ok\ntest f ... ok then\nignored, why\n");
        s.feed(b"noise ok\n\ntest result: FAILED. 3 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out\n");
        let got: Vec<(&str, &str)> = s
            .results
            .iter()
            .map(|r| (r.name.as_str(), r.result.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", "ok"),
                ("b", "FAILED"),
                ("c", "ok"),
                ("d", "FAILED"),
                ("e", "ok"),
                ("f", "ignored")
            ]
        );
        assert!(s.unfinished().is_empty());
    }

    #[test]
    fn results_must_add_up_to_the_counts() {
        let mut s = OutputState::default();
        s.feed(b"test a ... ok\ntest b ... FAILED\ntest c ... ignored\n");
        s.feed(b"test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out\n");
        let mut words: Vec<TestResult> = s.results.iter().map(|r| r.result).collect();
        assert_eq!(results_disagree(&words, s.counts.as_ref()), None);
        words.pop();
        assert!(results_disagree(&words, s.counts.as_ref())
            .is_some_and(|p| p.contains("0 ignored") && p.contains("1 ignored")));
        assert_eq!(results_disagree(&[], s.counts.as_ref()), None);
        assert_eq!(results_disagree(&words, None), None);
    }

    #[test]
    fn a_short_test_shares_its_neighbours_tick() {
        let mut s = OutputState::default();
        s.feed(b"test one ... ");
        s.feed(b"ok\ntest two ... ok\n");
        // `two` arrived whole: its window runs from `one`'s end to its own.
        assert_eq!(s.windows.len(), 2);
        let t = s.windows[1].end_ticks.unwrap();
        let spanning = s.windows.iter().filter(|w| w.contains(t)).count();
        assert_eq!(spanning, 2, "{:?}", s.windows);
    }

    #[test]
    fn keeps_each_failing_tests_section_and_when_results_were_read() {
        let mut s = OutputState::default();
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(40);
        s.feed_at(b"\nrunning 3 tests\ntest a ... ok\n", t0);
        s.feed_at(
            b"test b ... FAILED\ntest c ... FAILED\n\nfailures:\n\n",
            later,
        );
        s.feed(b"---- b stdout ----\nprinted by b\ntest x ... ok\nthread 'b' panicked at t.rs:1:1:\nboom\n\n");
        s.feed(b"---- c stdout ----\nError: \"no\"\n\n\nfailures:\n    b\n    c\n\n");
        s.feed(b"test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out\n");
        assert_eq!(s.running_at, Some(t0));
        assert_eq!(
            s.results.iter().map(|r| r.at).collect::<Vec<_>>(),
            [t0, later, later]
        );
        assert_eq!(
            s.sections,
            [
                (
                    "b".to_string(),
                    "printed by b\ntest x ... ok\nthread 'b' panicked at t.rs:1:1:\nboom"
                        .to_string()
                ),
                ("c".to_string(), "Error: \"no\"".to_string())
            ]
        );
        // A `test x ... ok` printed by a test is its output, not a result.
        assert_eq!(s.results.len(), 3);
        // A test that prints `failures:` while others run hides no result.
        let mut t = OutputState::default();
        t.feed(b"running 2 tests\nfailures:\ntest a ... ok\ntest b ... ok\n");
        assert_eq!(t.results.len(), 2);
        assert!(t.sections.is_empty());
        assert_eq!(s.counts.map(|c| c.failed), Some(2));
    }

    #[test]
    fn a_long_section_is_cut_with_a_note() {
        let mut s = OutputState::default();
        s.feed(b"test big ... FAILED\n\nfailures:\n\n---- big stdout ----\n");
        let line = "x".repeat(1000) + "\n";
        for _ in 0..100 {
            s.feed(line.as_bytes());
        }
        s.feed(b"\nfailures:\n    big\n\n");
        let (name, text) = &s.sections[0];
        assert_eq!(name, "big");
        assert!(text.len() <= SECTION_LIMIT, "{}", text.len());
        assert!(text.ends_with(SECTION_CUT), "{}", &text[text.len() - 80..]);
        assert!(text.starts_with(&line));
    }

    #[test]
    fn a_serial_tests_start_is_when_its_name_was_read() {
        let mut s = OutputState::default();
        let t0 = Instant::now();
        s.feed_at(b"running 1 test\ntest slow ... ", t0);
        s.feed_at(b"ok\n", t0 + Duration::from_millis(500));
        assert_eq!(s.results[0].started, Some(t0));
    }

    #[test]
    fn tracks_unfinished_tests() {
        let mut s = OutputState::default();
        s.feed(b"running 2 tests\ntest one ... ok\ntest two ... ");
        assert_eq!(s.unfinished(), vec!["two".to_string()]);
        s.feed(b"ok\n");
        assert!(s.unfinished().is_empty());
        assert!(s.finished.contains("two"));
    }
}
