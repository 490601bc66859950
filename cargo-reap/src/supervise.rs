//! Supervision of one suite: each attempt runs in a fresh containment under a
//! timeout; on expiry SIGTERM → grace → SIGKILL for the whole tree; a hang is
//! retried; after the binary exits, survivors are collected (leaks) and reaped.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reap_probe::ProcessInfo;
use rustix::pipe::{pipe_with, PipeFlags};
use rustix::process::Signal;

use crate::capture::{Capture, Echo};
use crate::containment::{Containment, GuardKey, Isolation};
use crate::discover::Suite;
use crate::error::RunError;
use crate::sys::{self, OwnedChild};
use reap_report::{Attempt, Leak, SuiteReport, SuiteStatus, TestOutcome};

/// Environment variable telling a suite which trial of `--loop` it runs in.
pub const TRIAL_VAR: &str = "CARGO_REAP_TRIAL";

/// How long to wait for a suite's output pipe to close once all of its
/// processes are gone.
const PIPE_CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How long `--list` may take when naming the tests in flight of a hang.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

pub use crate::options::Limits;

/// Supervision settings shared by every suite of a run.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Output goes straight to cargo-reap's stdout and stderr (`cargo reap
    /// run`): no log, no per-test tracking.
    pub no_capture: bool,
    /// Output is captured (log, per-test tracking) and also copied to stdout
    /// as it comes (`--no-capture` / `-- --nocapture` of `cargo reap test`).
    pub stream: bool,
    /// The target runner (`runner... BINARY ARGS`), from cargo's configuration.
    pub runner: Vec<String>,
    /// The binary understands libtest's `--list` (not so for `cargo reap run`).
    pub listable: bool,
    pub test_args: Vec<String>,
    pub attribute: crate::attribute::AttributeOptions,
}

/// Everything a suite run needs from the run.
pub struct RunContext<'a> {
    pub isolation: &'a Isolation,
    pub run_id: &'a str,
    pub options: &'a SuiteOptions,
    pub log_dir: &'a Path,
    /// Where the suites' private TMPDIRs are made.
    pub tmp_root: &'a Path,
    pub lifeline: &'a crate::lifeline::Lifeline,
    /// 1-based trial number (`--loop`); 1 without it.
    pub trial: u32,
}

impl RunContext<'_> {
    fn guard(&self, key: Option<GuardKey>, watch: bool) -> Result<(), RunError> {
        let r = match (key, watch) {
            (Some(GuardKey::Cgroup(d)), true) => self.lifeline.watch_cgroup(&d),
            (Some(GuardKey::Cgroup(d)), false) => self.lifeline.forget_cgroup(&d),
            (Some(GuardKey::Pgid(g)), true) => self.lifeline.watch_pgid(g),
            (Some(GuardKey::Pgid(g)), false) => self.lifeline.forget_pgid(g),
            (None, _) => Ok(()),
        };
        Ok(r?)
    }
}

impl RunContext<'_> {
    /// Spawn `cmd` as the root of `cont` and take charge of it.
    ///
    /// A containment whose guard key is known before the spawn (a cgroup
    /// leaf) is registered with the lifeline guard first, so a runner killed
    /// at any point after the spawn still has the suite killed; one known only
    /// by its root (a process group) right after. The containment learns the
    /// root's pid before anything else can fail (dropped on an error path, a
    /// process-group containment kills its group).
    fn spawn_in(
        &self,
        mut cont: Box<dyn Containment>,
        mut cmd: Command,
        suite: &Suite,
    ) -> Result<(Registered<'_>, OwnedChild), RunError> {
        cont.prepare(&mut cmd)?;
        let early_key = cont.guard_key();
        self.guard(early_key.clone(), true)?;
        let spawned = cmd.spawn();
        drop(cmd);
        let child = match spawned {
            Ok(c) => c,
            Err(source) => {
                cont.close()?;
                self.guard(early_key, false)?;
                return Err(RunError::Spawn {
                    binary: suite.binary.clone(),
                    source,
                });
            }
        };
        cont.set_root(child.id() as i32);
        let cont = Registered {
            cont: Some(cont),
            ctx: self,
        };
        let root = OwnedChild::adopt(&child)?;
        if early_key.is_none() {
            self.guard(cont.guard_key(), true)?;
        }
        Ok((cont, root))
    }

    fn tag(&self, suite: &Suite) -> String {
        format!("{}/{}", self.run_id, suite.id)
    }
}

/// A containment registered with the lifeline guard. Closed, it is
/// unregistered; dropped on an error path (the run goes on with the next
/// suite), its members are killed by the containment's own drop and then it
/// is unregistered too, so the guard never acts later on a process group id
/// the kernel may have handed to someone else since.
pub struct Registered<'a> {
    /// `None` once closed or dropped.
    cont: Option<Box<dyn Containment>>,
    ctx: &'a RunContext<'a>,
}

impl Registered<'_> {
    /// Close the containment (it must be empty), then unregister it.
    fn close(mut self) -> Result<(), RunError> {
        let Some(cont) = self.cont.take() else {
            return Ok(());
        };
        let key = cont.guard_key();
        cont.close()?;
        self.ctx.guard(key, false)
    }
}

impl std::ops::Deref for Registered<'_> {
    type Target = dyn Containment;

    fn deref(&self) -> &Self::Target {
        self.cont
            .as_deref()
            .expect("a containment is only taken by close or drop")
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if let Some(cont) = self.cont.take() {
            let key = cont.guard_key();
            drop(cont); // kills whatever is left of the suite
            if let Err(e) = self.ctx.guard(key, false) {
                eprintln!(
                    "cargo-reap: warning: unregistering a containment from the lifeline guard: {e}"
                );
            }
        }
    }
}

/// Run one suite to completion (all attempts) and reap everything it left.
///
/// Never fails the run: an error while running or judging the suite makes
/// its report `error` with a problem naming the error, keeping what was
/// already known (attempts, leaks). The suite's processes are killed on that
/// path too: a containment dropped without `close` kills its members.
pub fn run_suite(ctx: &RunContext<'_>, suite: &Suite, index: usize) -> SuiteReport {
    let started = Instant::now();
    let mut report = SuiteReport {
        id: suite.id.clone(),
        package: suite.package.clone(),
        target: suite.target.clone(),
        kind: suite.kind.to_string(),
        binary: suite.binary.display().to_string(),
        status: SuiteStatus::Error,
        duration_ms: 0,
        log: None,
        attempts: Vec::new(),
        leaks: Vec::new(),
        attribution: None,
        tests: Vec::new(),
        counts: None,
        tmp: None,
        problems: Vec::new(),
    };
    if let Err(e) = judge_suite(ctx, suite, index, &mut report) {
        report.status = SuiteStatus::Error;
        // The error itself: status `error` already says the suite was not judged.
        report.problems.push(crate::error::chain(&e));
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// The work of [`run_suite`], filling `report` as it goes.
fn judge_suite(
    ctx: &RunContext<'_>,
    suite: &Suite,
    index: usize,
    report: &mut SuiteReport,
) -> Result<(), RunError> {
    let log_path = if ctx.trial > 1 {
        ctx.log_dir
            .join(format!("{}.trial-{}.log", suite.slug(), ctx.trial))
    } else {
        ctx.log_dir.join(format!("{}.log", suite.slug()))
    };
    // A private TMPDIR: what the suite leaves there is reported and removed.
    let tmp_dir = ctx.tmp_root.join(format!("{}.{}", ctx.trial, suite.slug()));
    crate::scratch::create_suite_dir(&tmp_dir)?;
    let log = if ctx.options.no_capture {
        None
    } else {
        let log = SuiteLog {
            file: File::create(&log_path).map_err(|source| RunError::Io {
                what: "creating log",
                path: log_path.clone(),
                source,
            })?,
            logged: Arc::new(AtomicU64::new(0)),
            failure: Default::default(),
        };
        report.log = Some(log_path.display().to_string());
        Some(log)
    };
    let max = suite.limits.hang_retries.saturating_add(1);
    for number in 1..=max {
        let spec = AttemptSpec {
            leaf: format!("{}.{index}.{number}.{}", ctx.trial, suite.slug()),
            number,
            args: &ctx.options.test_args,
            header: format!("attempt {number}"),
        };
        let out = run_attempt(ctx, suite, &spec, log.as_ref(), &log_path)?;
        // First guess at the test: with one test thread, the one whose run
        // (per its output) is the only one spanning the process's start.
        // (Parallel libtest prints `test NAME ... ` only at completion.)
        let serial = serial_tests(&ctx.options.test_args);
        report.problems.extend(out.problems);
        for e in &out.survivors {
            let mut leak = leak_of(e, number, true);
            mark_not_killed(&mut leak, &out.not_killed);
            let mut spans = out.windows.iter().filter(|w| w.contains(e.info.start_time));
            if let (true, Some(w), None) = (serial, spans.next(), spans.next()) {
                leak.test = Some(w.name.clone());
                leak.attribution = Some(crate::attribute::BY_WINDOW.into());
            }
            report.leaks.push(leak);
        }
        let attempt = out.attempt;
        report.tests = out
            .results
            .into_iter()
            .map(|(name, result)| TestOutcome { name, result })
            .collect();
        report.counts = out.counts;
        report.problems.extend(crate::capture::results_disagree(
            &report
                .tests
                .iter()
                .map(|t| t.result.as_str())
                .collect::<Vec<_>>(),
            report.counts.as_ref(),
        ));
        let retry = attempt.timed_out && !attempt.interrupted;
        report.attempts.push(attempt);
        if !retry {
            break;
        }
    }
    // The verdict of the attempts; the log problem (if any) is a note on it.
    report.status = classify(&report.attempts);
    let ignored: HashSet<&str> = report
        .tests
        .iter()
        .filter(|t| t.result == "ignored")
        .map(|t| t.name.as_str())
        .collect();
    let attribution = crate::attribute::attribute(
        ctx,
        suite,
        index,
        &ctx.options.attribute,
        &mut report.leaks,
        &ignored,
        log.as_ref(),
        &log_path,
    );
    if let Some(log) = &log {
        report.problems.extend(log.problem());
    }
    report.attribution = attribution?;
    // Every process of the suite is gone: what is in its TMPDIR was left behind.
    // Never an error: a deleted or replaced TMPDIR, a mount left in it or an
    // entry that cannot be removed is a problem of this suite, not of the run.
    let cleaned = crate::tmpdir::collect_and_remove(&tmp_dir);
    report.tmp = cleaned.left;
    report.problems.extend(cleaned.problems);
    Ok(())
}

/// A leak the kill could not end: not reaped, and why.
fn mark_not_killed(leak: &mut Leak, not_killed: &[(ProcessInfo, String)]) {
    if let Some((_, why)) = not_killed.iter().find(|(p, _)| p.pid == leak.pid) {
        leak.reaped = false;
        leak.kill_error = Some(why.clone());
    }
}

/// The problem line of processes a kill could not end.
fn not_killed_problems(not_killed: &[(ProcessInfo, String)]) -> Vec<String> {
    not_killed
        .iter()
        .map(|(p, why)| {
            format!(
                "pid {} ({}) {why} (it runs as another user: root through sudo or a setuid program?); it is still running: end it yourself",
                p.pid,
                if p.cmdline.is_empty() {
                    p.comm.clone()
                } else {
                    p.cmdline.join(" ")
                }
            )
        })
        .collect()
}

/// A suite's status from its attempts.
pub fn classify(attempts: &[Attempt]) -> SuiteStatus {
    let Some(last) = attempts.last() else {
        return SuiteStatus::Fail;
    };
    // Stopped by our own interrupt handling: not a crash, not a pass.
    if last.interrupted {
        return SuiteStatus::Fail;
    }
    let single = if last.timed_out {
        SuiteStatus::Hang
    } else if last.signal.is_some() {
        SuiteStatus::Crash
    } else if last.exit_code != Some(0) {
        SuiteStatus::Fail
    } else {
        SuiteStatus::Pass
    };
    if single == SuiteStatus::Pass && attempts.iter().any(|a| a.timed_out) {
        SuiteStatus::FlakyHang
    } else {
        single
    }
}

/// A process of a suite, with what reap-probe saw of it before it was killed.
#[derive(Debug, Clone)]
pub struct Examined {
    pub info: ProcessInfo,
    /// None when it exited between the listing and the look.
    pub forensics: Option<reap_probe::Forensics>,
}

/// How often a running suite's processes and memory are measured.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Peaks of a suite attempt's resource use.
struct Peaks {
    processes: usize,
    memory_bytes: u64,
    source: &'static str,
}

/// A thread that measures a running suite every [`SAMPLE_EVERY`] until
/// stopped (stopping is an event: the channel, not a flag polled).
struct ResourceSampler {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<Peaks>,
}

impl ResourceSampler {
    fn start(sampler: crate::containment::Sampler) -> ResourceSampler {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut peaks = Peaks {
                processes: 0,
                memory_bytes: 0,
                source: sampler.memory_source(),
            };
            loop {
                match sampler.sample() {
                    Ok(s) => {
                        peaks.processes = peaks.processes.max(s.processes);
                        peaks.memory_bytes = peaks.memory_bytes.max(s.memory_bytes);
                    }
                    Err(e) => {
                        eprintln!("cargo-reap: warning: resource sampling stopped: {e}");
                        return peaks;
                    }
                }
                match stopped.recv_timeout(SAMPLE_EVERY) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                    _ => return peaks,
                }
            }
        });
        ResourceSampler { stop, thread }
    }

    fn stop(self) -> Peaks {
        // The thread may have ended on its own (an error it reported).
        if self.stop.send(()).is_err() {
            tracing::debug!("resource sampler already stopped");
        }
        self.thread.join().unwrap_or(Peaks {
            processes: 0,
            memory_bytes: 0,
            source: "none (sampler panicked)",
        })
    }
}

/// Of the processes a kill found, those not already examined.
fn unseen(seen: &[Examined], killed: Vec<ProcessInfo>) -> Vec<Examined> {
    killed
        .into_iter()
        .filter(|k| {
            !seen
                .iter()
                .any(|e| e.info.pid == k.pid && e.info.start_time == k.start_time)
        })
        .map(|info| Examined {
            info,
            forensics: None,
        })
        .collect()
}

/// Forensics of every member, parents before children, before anything is killed.
fn examine(
    members: Vec<ProcessInfo>,
    fctx: &reap_probe::FindingContext,
    root: i32,
) -> Result<Vec<Examined>, RunError> {
    let mut out = Vec::with_capacity(members.len());
    let mut members = members;
    members.sort_by_key(|p| (p.start_time, p.pid));
    for info in members {
        let forensics = match reap_probe::forensics(info.pid, fctx) {
            Ok(mut f) => {
                if info.pid == root {
                    // The test binary is our own child, not an orphan, and
                    // its stdout is our capture pipe by design.
                    f.findings.retain(|x| {
                        x.rule != reap_probe::Rule::Orphaned
                            && x.rule != reap_probe::Rule::HoldsRunnerPipe
                    });
                }
                Some(f)
            }
            Err(reap_probe::ProbeError::Gone(_)) => None,
            Err(e) => return Err(crate::error::ContainError::Probe(e).into()),
        };
        out.push(Examined { info, forensics });
    }
    Ok(out)
}

/// The report entry of an examined process.
pub fn leak_of(e: &Examined, attempt: u32, reaped: bool) -> Leak {
    let p = &e.info;
    let f = e.forensics.as_ref();
    Leak {
        findings: f
            .map(|f| f.findings.iter().map(|x| x.rule.to_string()).collect())
            .unwrap_or_default(),
        notes: f
            .map(|f| f.findings.iter().map(|x| x.message.clone()).collect())
            .unwrap_or_default(),
        fds: f.map(|f| f.fd_summary),
        wchan: f.and_then(|f| f.wchan.clone()),
        syscall: f.and_then(|f| f.syscall.clone()),
        allowed: None,
        kill_error: None,
        pid: p.pid,
        ppid: p.ppid,
        pgid: p.pgid,
        sid: p.sid,
        state: p.state,
        comm: p.comm.clone(),
        cmdline: p.cmdline.clone(),
        age_ms: p.age_ms,
        attempt,
        reaped,
        test: None,
        attribution: None,
    }
}

/// A suite's log file and how many bytes it holds (every attempt and re-run
/// appends to it; the capture limit applies to the whole file).
pub struct SuiteLog {
    pub file: File,
    pub logged: Arc<AtomicU64>,
    /// Set once a write to the log failed (a full disk): the suite runs on.
    pub failure: crate::capture::LogFailure,
}

impl SuiteLog {
    /// The suite's problem when its log could not be written in full.
    pub fn problem(&self) -> Option<String> {
        self.failure.problem()
    }
}

/// What one run of a test binary produced.
pub struct AttemptOutcome {
    pub attempt: Attempt,
    /// Processes that survived it (already killed and reaped, except those
    /// in `not_killed`).
    pub survivors: Vec<Examined>,
    /// Survivors the kill could not end (EPERM), with why: still alive.
    pub not_killed: Vec<(ProcessInfo, String)>,
    /// Problems of cargo-reap's own handling of the attempt (a leak it could
    /// not kill, its lifeline guard found killed), one sentence each.
    pub problems: Vec<String>,
    /// When each test ran, where its output shows it (serial runs).
    pub windows: Vec<crate::capture::TestWindow>,
    /// Per-test results from the output.
    pub results: Vec<(String, String)>,
    /// libtest's `test result:` counts.
    pub counts: Option<reap_report::TestCounts>,
}

/// One run of a test binary: which leaf, which arguments, how it is headed in the log.
pub struct AttemptSpec<'a> {
    pub leaf: String,
    pub number: u32,
    pub args: &'a [String],
    pub header: String,
}

/// The suite's binary (behind the target runner, when one is configured)
/// with cargo's test environment, its private TMPDIR and no stdin; the
/// caller adds the arguments.
fn suite_command(ctx: &RunContext<'_>, suite: &Suite) -> Command {
    // A doctest suite is cargo itself, which passes the target runner to
    // rustdoc on its own.
    let runner = match suite.kind.as_str() {
        "doctest" => None,
        _ => ctx.options.runner.split_first(),
    };
    let mut cmd = match runner {
        Some((runner, runner_args)) => {
            let mut c = Command::new(runner);
            c.args(runner_args).arg(&suite.binary);
            c
        }
        None => Command::new(&suite.binary),
    };
    cmd.args(&suite.args);
    let tmp = ctx.tmp_root.join(format!("{}.{}", ctx.trial, suite.slug()));
    cmd.current_dir(&suite.cwd)
        .envs(suite.env.iter().map(|(k, v)| (k, v)))
        .env(TRIAL_VAR, ctx.trial.to_string())
        .envs(["TMPDIR", "TMP", "TEMP"].map(|k| (k, &tmp)))
        .stdin(Stdio::null());
    cmd
}

/// Run the test binary once in a fresh containment; returns the attempt and
/// the processes that survived it (already killed and reaped).
pub fn run_attempt(
    ctx: &RunContext<'_>,
    suite: &Suite,
    spec: &AttemptSpec<'_>,
    log: Option<&SuiteLog>,
    log_path: &Path,
) -> Result<AttemptOutcome, RunError> {
    let number = spec.number;
    let cont = ctx.isolation.create(&ctx.tag(suite), &spec.leaf)?;

    let mut cmd = suite_command(ctx, suite);
    cmd.args(spec.args);
    // Streamed (`--no-capture`): the suite's own attempts, not attribution
    // re-runs (number 0); its stdout to our stdout and its stderr to our
    // stderr, as `cargo test` leaves them, each through its own pipe.
    let echo = ctx.options.stream && number > 0;
    let mut runner_pipes: Vec<u64> = Vec::new();
    let mut capture_pipes = Vec::new();
    if let Some(suite_log) = log {
        let mut log = &suite_log.file;
        let header = format!(
            "===== cargo-reap: {} {} ({}) =====\n",
            suite.id,
            spec.header,
            suite.binary.display()
        );
        // A log that cannot be written (full disk) is a problem of the
        // suite, not a reason to stop running it.
        suite_log.failure.write(&mut log, header.as_bytes());
        // Both ends of each pipe close-on-exec (dup2 onto fds 1 and 2 in
        // the child clears it there only).
        let sinks: &[Option<Echo>] = if echo {
            &[Some(Echo::Stdout), Some(Echo::Stderr)]
        } else {
            &[None]
        };
        let mut ends = Vec::new();
        for sink in sinks {
            let (r, w) = pipe_with(PipeFlags::CLOEXEC)
                .map_err(|e| crate::error::ContainError::sys("pipe2", e))?;
            let log = log.try_clone().map_err(|source| RunError::Io {
                what: "duplicating log handle",
                path: log_path.to_path_buf(),
                source,
            })?;
            runner_pipes.push(
                rustix::fs::fstat(&r)
                    .map_err(|e| crate::error::ContainError::sys("fstat on the capture pipe", e))?
                    .st_ino as u64,
            );
            ends.push(w);
            capture_pipes.push((
                r,
                log,
                Arc::clone(&suite_log.logged),
                suite_log.failure.clone(),
                *sink,
            ));
        }
        // One pipe for both streams (interleaved as on a terminal), or one each.
        let w = ends.remove(0);
        let w2 = match ends.pop() {
            Some(w2) => w2,
            None => w.try_clone().map_err(|source| RunError::Io {
                what: "duplicating pipe for",
                path: log_path.to_path_buf(),
                source,
            })?,
        };
        cmd.stdout(Stdio::from(w)).stderr(Stdio::from(w2));
    }
    let started = Instant::now();
    // Consumes cmd: our copies of the pipe's write end go, only the suite holds it now.
    let (cont, root) = ctx.spawn_in(cont, cmd, suite)?;
    // The first capture (stdout, or both merged) is the one libtest's
    // `test NAME ... ok` lines are tracked on.
    let captures: Vec<Capture> = capture_pipes
        .into_iter()
        .map(|(r, log, logged, failure, sink)| {
            Capture::start(r, log, log_path.to_path_buf(), logged, failure, sink)
        })
        .collect();

    let mut attempt = Attempt {
        number,
        exit_code: None,
        signal: None,
        timed_out: false,
        duration_ms: 0,
        tests_in_flight: Vec::new(),
        in_flight_guesses: Vec::new(),
        hang_processes: Vec::new(),
        kill_rounds: 0,
        output_bytes: 0,
        interrupted: false,
        tree: Vec::new(),
        peak_processes: 0,
        peak_memory_bytes: 0,
        memory_source: String::new(),
    };
    let mut leaks = Vec::new();
    let mut not_killed: Vec<(ProcessInfo, String)> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut seen_pids: Vec<i32> = Vec::new();

    let root_pid = root.pid();
    let sampling = ResourceSampler::start(cont.sampler());
    let fctx = reap_probe::FindingContext {
        runner_pipe_inodes: runner_pipes.clone(),
        suite_pgid: Some(root.pid()),
        suite_sid: Some(sys::own_session_id()),
        reaper_pid: Some(std::process::id() as i32),
    };
    let interrupts = crate::interrupt::get();
    let wake = root.wait_exit_or(suite.limits.timeout, interrupts.map(|i| i.fd()))?;
    let peaks = sampling.stop();
    attempt.peak_processes = peaks.processes;
    attempt.peak_memory_bytes = peaks.memory_bytes;
    attempt.memory_source = peaks.source.to_string();
    if wake == sys::Wake::Exited {
        let exit = root.reap()?;
        attempt.duration_ms = started.elapsed().as_millis() as u64;
        attempt.exit_code = exit.code;
        attempt.signal = exit.signal;
        // Children get `settle` to exit on their own; whatever remains leaked.
        let survivors = if cont.wait_empty(suite.limits.settle, None)? {
            Vec::new()
        } else {
            cont.members()?
        };
        let mut survivors = examine(survivors, &fctx, root_pid)?;
        if !survivors.is_empty() {
            let killed = cont.kill_all()?;
            attempt.kill_rounds = killed.rounds;
            // Forked while being killed: leaks too, seen only as they died.
            survivors.extend(unseen(&survivors, killed.processes));
            let refused: Vec<ProcessInfo> =
                killed.unkillable.iter().map(|(p, _)| p.clone()).collect();
            survivors.extend(unseen(&survivors, refused));
            not_killed = killed.unkillable;
        }
        seen_pids.extend(survivors.iter().map(|e| e.info.pid));
        leaks = survivors;
    } else {
        // Hang (or interrupt): look before killing.
        attempt.timed_out = wake == sys::Wake::TimedOut;
        attempt.interrupted = wake == sys::Wake::Interrupted;
        let threads = test_thread_names(root.pid());
        let (unfinished, finished) = captures
            .first()
            .map(|c| (c.unfinished_tests(), c.finished_tests()))
            .unwrap_or_default();
        let frozen = cont.frozen()?;
        let hung = examine(cont.members()?, &fctx, root_pid)?;
        seen_pids.extend(hung.iter().map(|e| e.info.pid));
        attempt.hang_processes = hung.iter().map(|e| leak_of(e, number, true)).collect();
        let seen: Vec<reap_probe::Forensics> =
            hung.iter().filter_map(|e| e.forensics.clone()).collect();
        attempt.tree = frozen_lines(&frozen);
        attempt.tree.extend(
            reap_probe::render_forensics_tree(&seen, crate::report::terminal::WIDTH)
                .lines()
                .map(str::to_string),
        );
        if !frozen.is_empty() {
            for l in &mut attempt.hang_processes {
                l.findings.push("frozen".into());
                l.notes.push(FROZEN_NOTE.into());
            }
        }
        // Thaws a frozen suite first (in cgroup mode): TERM would wait for it.
        cont.signal_all(Signal::TERM)?;
        let grace = if interrupts.is_some_and(|i| i.hard()) {
            Duration::ZERO
        } else {
            suite.limits.grace
        };
        // A second interrupt ends the grace at once.
        if !cont.wait_empty(grace, interrupts.map(|i| i.hard_fd()))? {
            let killed = cont.kill_all()?;
            attempt.kill_rounds = killed.rounds;
            attempt.hang_processes.extend(
                unseen(&hung, killed.processes)
                    .iter()
                    .map(|e| leak_of(e, number, true)),
            );
            let refused: Vec<ProcessInfo> =
                killed.unkillable.iter().map(|(p, _)| p.clone()).collect();
            attempt.hang_processes.extend(
                unseen(&hung, refused)
                    .iter()
                    .map(|e| leak_of(e, number, true)),
            );
            for l in &mut attempt.hang_processes {
                mark_not_killed(l, &killed.unkillable);
            }
            problems.extend(not_killed_problems(&killed.unkillable));
        }
        // The root is dead now (every member is); collect its status.
        root.signal(Signal::KILL)?;
        let exit = root.reap()?;
        attempt.duration_ms = started.elapsed().as_millis() as u64;
        attempt.exit_code = exit.code;
        attempt.signal = exit.signal;
        (attempt.tests_in_flight, attempt.in_flight_guesses) =
            in_flight(ctx, suite, &spec.leaf, unfinished, &threads, &finished);
    }
    sys::reap_if_our_zombies(seen_pids)?;

    let mut windows = Vec::new();
    let mut results = Vec::new();
    let mut counts = None;
    for (k, (capture, inode)) in captures.into_iter().zip(runner_pipes).enumerate() {
        let captured = capture.finish(PIPE_CLOSE_WAIT)?;
        attempt.output_bytes += captured.bytes;
        if k == 0 {
            // libtest's per-test and result lines are on stdout.
            windows = captured.windows;
            results = captured.results;
            counts = captured.counts;
        }
        if !captured.complete {
            // Every member is gone, yet a process holds the suite's output
            // pipe: it got it from the suite, so it is the suite's leak.
            let holders = pipe_holders(Some(inode))?;
            if holders.is_empty() {
                problems.push(
                    "its output pipe stayed open after every process of the suite was gone, held by no process cargo-reap can see".into(),
                );
            } else {
                let mut held = examine(holders, &fctx, root_pid)?;
                for e in &mut held {
                    if let Some(f) = e.forensics.as_mut() {
                        f.findings
                            .retain(|x| x.rule == reap_probe::Rule::HoldsRunnerPipe);
                    }
                }
                let refused = crate::containment::pgroup::kill_listed(
                    &held.iter().map(|e| e.info.clone()).collect::<Vec<_>>(),
                )?;
                for (pid, e) in refused {
                    if let Some(h) = held.iter().find(|h| h.info.pid == pid) {
                        not_killed.push((
                            h.info.clone(),
                            format!(
                                "could not be killed: {}",
                                crate::containment::pgroup::errno_name(e)
                            ),
                        ));
                    }
                }
                leaks.extend(held);
            }
        }
    }
    problems.extend(not_killed_problems(&not_killed));
    cont.close()?;
    // A lifeline guard found dead (and replaced) while this suite ran.
    problems.extend(ctx.lifeline.take_notices());
    Ok(AttemptOutcome {
        attempt,
        survivors: leaks,
        not_killed,
        problems,
        windows,
        results,
        counts,
    })
}

/// What a frozen suite's hang forensics say first.
const FROZEN_NOTE: &str = "frozen: its cgroup is frozen (cgroup.freeze = 1): it runs nothing and acts on no signal but SIGKILL until thawed (cargo-reap thaws it before the SIGTERM)";

fn frozen_lines(frozen: &[PathBuf]) -> Vec<String> {
    frozen
        .iter()
        .map(|cg| format!("frozen: cgroup {} has cgroup.freeze = 1 (the suite froze itself?): its processes run nothing until thawed", cg.display()))
        .collect()
}

/// Live processes other than the runner that hold the pipe with inode
/// `inode` (none when there is no pipe). Reads every process's descriptors:
/// only used when the pipe stayed open after the suite was gone.
fn pipe_holders(inode: Option<u64>) -> Result<Vec<ProcessInfo>, RunError> {
    let Some(inode) = inode else {
        return Ok(Vec::new());
    };
    let want = format!("pipe:[{inode}]");
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let proc_dir = Path::new("/proc");
    let entries = std::fs::read_dir(proc_dir).map_err(|source| RunError::Io {
        what: "listing",
        path: proc_dir.to_path_buf(),
        source,
    })?;
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Unreadable: gone meanwhile, or not ours to look at.
        let Ok(fds) = std::fs::read_dir(e.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == want.as_str()));
        if holds {
            match reap_probe::snapshot(pid, reap_probe::ScanOptions::default()) {
                Ok(p) if !p.is_zombie() => out.push(p),
                Ok(_) | Err(reap_probe::ProbeError::Gone(_)) => {}
                Err(e) => return Err(crate::error::ContainError::Probe(e).into()),
            }
        }
    }
    Ok(out)
}

/// Names of the threads of the test binary other than its main thread. libtest
/// names each test's thread after the test; the kernel keeps 15 bytes of it.
fn test_thread_names(pid: i32) -> Vec<String> {
    let dir = PathBuf::from(format!("/proc/{pid}/task"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for e in entries.flatten() {
        let tid = e.file_name();
        if tid.to_str() == Some(&pid.to_string()) {
            continue;
        }
        // A thread may exit while we look; that is not an error.
        if let Ok(comm) = std::fs::read_to_string(e.path().join("comm")) {
            names.push(comm.trim_end().to_string());
        }
    }
    names
}

/// Tests in flight when a hang-kill fired, and which of them are guesses.
/// Exact: unfinished per the output, and a live thread whose name is a whole
/// test name or whose 15-byte prefix (the kernel's `comm`) fits one test
/// only. A thread's name does not mean its test runs: libtest's test threads
/// carry their test's name, and so may helper threads a finished test left
/// (named after it), so tests whose result line was printed are never in
/// flight. A prefix that fits several unfinished tests names each of them as
/// a guess (the second list).
fn in_flight(
    ctx: &RunContext<'_>,
    suite: &Suite,
    leaf: &str,
    mut names: Vec<String>,
    threads: &[String],
    finished: &HashSet<String>,
) -> (Vec<String>, Vec<String>) {
    let mut guesses = Vec::new();
    if !threads.is_empty() && ctx.options.listable {
        match list_tests(ctx, suite, &format!("{leaf}.list")) {
            Ok(listed) => {
                let (exact, guessed) = thread_tests(&listed, threads, &names, finished);
                names.extend(exact);
                guesses = guessed;
            }
            Err(e) => {
                tracing::warn!("{}: could not list tests: {e}", suite.id);
                eprintln!(
                    "cargo-reap: warning: {}: could not list its tests to name the ones in flight: {e}",
                    suite.id
                );
            }
        }
    }
    names.retain(|n| !finished.contains(n));
    names.sort();
    names.dedup();
    guesses.retain(|g| !names.contains(g));
    guesses.sort();
    guesses.dedup();
    names.extend(guesses.iter().cloned());
    (names, guesses)
}

/// The tests live threads name (`threads`: their `comm`), of `listed`:
/// exact ones, and prefix guesses. A thread whose name fits a test already
/// known to be in flight (`known`) adds nothing; tests in `finished` are
/// never named.
fn thread_tests(
    listed: &[String],
    threads: &[String],
    known: &[String],
    finished: &HashSet<String>,
) -> (Vec<String>, Vec<String>) {
    let (mut exact, mut guesses) = (Vec::new(), Vec::new());
    for t in threads {
        let fits: Vec<&String> = listed
            .iter()
            .filter(|n| comm_matches(n, t) && !finished.contains(*n))
            .collect();
        if fits.iter().any(|n| known.contains(n)) {
            continue;
        }
        match fits.as_slice() {
            [] => {}
            [one] => exact.push((*one).clone()),
            many => guesses.extend(many.iter().map(|n| (*n).clone())),
        }
    }
    guesses.retain(|g| !exact.contains(g));
    (exact, guesses)
}

/// Does the kernel's 15-byte `comm` of a thread come from this test name?
fn comm_matches(test: &str, comm: &str) -> bool {
    let t = test.as_bytes();
    let c = comm.as_bytes();
    !c.is_empty()
        && t.len() >= c.len()
        && &t[..c.len()] == c
        && (c.len() == 15 || t.len() == c.len())
}

/// `BINARY --list --format terse [user args]`, contained like a suite.
pub fn list_tests(
    ctx: &RunContext<'_>,
    suite: &Suite,
    leaf: &str,
) -> Result<Vec<String>, RunError> {
    let cont = ctx.isolation.create(&ctx.tag(suite), leaf)?;
    let mut cmd = suite_command(ctx, suite);
    cmd.arg("--list")
        .args(["--format", "terse"])
        .args(selection_args(&ctx.options.test_args))
        .stderr(Stdio::null());
    let tmp = tempfile_in(ctx.log_dir, &format!("{leaf}.list"))?;
    cmd.stdout(Stdio::from(tmp.try_clone().map_err(|source| {
        RunError::Io {
            what: "duplicating",
            path: ctx.log_dir.to_path_buf(),
            source,
        }
    })?));
    let (cont, owned) = ctx.spawn_in(cont, cmd, suite)?;
    // A doctest suite lists through cargo and rustdoc, which may first wait
    // for cargo's build-directory lock: its own timeout bounds that.
    let limit = if suite.kind == crate::discover::SuiteKind::Doctest {
        LIST_TIMEOUT.max(suite.limits.timeout)
    } else {
        LIST_TIMEOUT
    };
    let exited = owned.wait_exit(Some(limit))?;
    // Whatever it left (or, on timeout, everything) dies with the containment.
    let killed = cont.kill_all()?;
    for line in not_killed_problems(&killed.unkillable) {
        eprintln!(
            "cargo-reap: warning: {}: listing its tests: {line}",
            suite.id
        );
    }
    if !exited {
        owned.signal(Signal::KILL)?;
    }
    let status = owned.reap()?;
    cont.close()?;
    if !exited {
        return Err(RunError::Listing(format!(
            "`--list` did not finish within {}s",
            limit.as_secs()
        )));
    }
    if status.code != Some(0) {
        return Err(RunError::Listing(format!(
            "`--list` ended with {}",
            match (status.code, status.signal) {
                (Some(c), _) => format!("exit code {c}"),
                (None, Some(sig)) => format!("signal {sig}"),
                (None, None) => "an unknown status".into(),
            }
        )));
    }
    let text = std::fs::read_to_string(&tmp.path).map_err(|source| RunError::Io {
        what: "reading",
        path: tmp.path.clone(),
        source,
    })?;
    parse_listing(&text).map_err(RunError::NotLibtest)
}

/// Test names from `--list --format terse` (`NAME: test` per line). A name may
/// itself contain newlines (libtest-mimic allows any string): lines without
/// the suffix belong to the name the next suffixed line ends. Text after the
/// last suffixed line is not libtest's: the error quotes it (a `harness =
/// false` binary that does not understand `--list` ran instead).
pub fn parse_listing(text: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut pending: Option<String> = None;
    if text.is_empty() {
        return Ok(names);
    }
    for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
        let joined = |rest: &str, pending: &mut Option<String>| match pending.take() {
            Some(p) => format!("{p}\n{rest}"),
            None => rest.to_string(),
        };
        match line
            .strip_suffix(": test")
            .or_else(|| line.strip_suffix(": bench"))
        {
            Some(name) => names.push(joined(name, &mut pending)),
            None => pending = Some(joined(line, &mut pending)),
        }
    }
    match pending {
        None => Ok(names),
        Some(odd) => {
            let first = odd.lines().next().unwrap_or("");
            let shown: String = first.chars().take(60).collect();
            Err(format!(
                "`--list` printed `{shown}{}`",
                if shown.len() < odd.len() { "…" } else { "" }
            ))
        }
    }
}

/// Do the test binaries run one test at a time (`--test-threads 1`,
/// `--test-threads=1` or `RUST_TEST_THREADS=1`)?
pub fn serial_tests(args: &[String]) -> bool {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--test-threads" {
            return it.next().is_some_and(|v| v == "1");
        }
        if a == "--test-threads=1" {
            return true;
        }
    }
    std::env::var("RUST_TEST_THREADS").is_ok_and(|v| v == "1")
}

/// Of the user's test-binary arguments, those that select tests (filters,
/// `--exact`, `--skip NAME`, `--ignored`, ...), for `--list`: options about
/// how to run or report (`--test-threads N`, `--format F`, ...) are dropped.
pub fn selection_args(args: &[String]) -> Vec<String> {
    const WITH_VALUE: &[&str] = &[
        "--test-threads",
        "--logfile",
        "--color",
        "--format",
        "-Z",
        "--shuffle-seed",
    ];
    const FLAGS: &[&str] = &[
        "--nocapture",
        "--no-capture",
        "--show-output",
        "-q",
        "--quiet",
        "--shuffle",
        "--report-time",
        "--ensure-time",
        "--force-run-in-process",
        "--list",
    ];
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            it.next();
        } else if FLAGS.contains(&a.as_str())
            || WITH_VALUE.iter().any(|f| a.starts_with(&format!("{f}=")))
        {
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// A file removed when dropped.
struct TempFile {
    file: File,
    path: PathBuf,
}

impl TempFile {
    fn try_clone(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            eprintln!("cargo-reap: warning: removing {}: {e}", self.path.display());
        }
    }
}

fn tempfile_in(dir: &Path, name: &str) -> Result<TempFile, RunError> {
    let path = dir.join(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|source| RunError::Io {
            what: "creating",
            path: path.clone(),
            source,
        })?;
    Ok(TempFile { file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(timed_out: bool, code: Option<i32>, signal: Option<i32>) -> Attempt {
        Attempt {
            number: 1,
            exit_code: code,
            signal,
            timed_out,
            duration_ms: 0,
            tests_in_flight: vec![],
            in_flight_guesses: vec![],
            hang_processes: vec![],
            kill_rounds: 0,
            output_bytes: 0,
            interrupted: false,
            tree: vec![],
            peak_processes: 0,
            peak_memory_bytes: 0,
            memory_source: String::new(),
        }
    }

    #[test]
    fn classifies_attempts() {
        assert_eq!(
            classify(&[attempt(false, Some(0), None)]),
            SuiteStatus::Pass
        );
        assert_eq!(
            classify(&[attempt(false, Some(101), None)]),
            SuiteStatus::Fail
        );
        assert_eq!(
            classify(&[attempt(false, None, Some(6))]),
            SuiteStatus::Crash
        );
        assert_eq!(
            classify(&[attempt(true, None, Some(15)), attempt(true, None, Some(9))]),
            SuiteStatus::Hang
        );
        assert_eq!(
            classify(&[attempt(true, None, Some(15)), attempt(false, Some(0), None)]),
            SuiteStatus::FlakyHang
        );
        assert_eq!(
            classify(&[attempt(true, None, Some(15)), attempt(false, Some(1), None)]),
            SuiteStatus::Fail
        );
    }

    #[test]
    fn parses_listings_with_names_that_span_lines() {
        assert_eq!(
            parse_listing("a: test\nline\nbreak: test\nb::c: bench\nends with: test: test\n")
                .unwrap(),
            ["a", "line\nbreak", "b::c", "ends with: test"]
        );
        assert!(parse_listing("").unwrap().is_empty());
        let e = parse_listing("custom harness v1\nall 3 checks passed\n").unwrap_err();
        assert_eq!(e, "`--list` printed `custom harness v1…`");
    }

    #[test]
    fn recognises_serial_test_runs() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(serial_tests(&v(&["--test-threads", "1"])));
        assert!(serial_tests(&v(&["foo", "--test-threads=1"])));
        assert!(!serial_tests(&v(&["--test-threads", "2"])));
    }

    #[test]
    fn keeps_only_selection_args_for_listing() {
        let args: Vec<String> = [
            "foo",
            "--test-threads",
            "1",
            "--exact",
            "--format=json",
            "--skip",
            "bar",
            "--ignored",
            "-q",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            selection_args(&args),
            vec!["foo", "--exact", "--skip", "bar", "--ignored"]
        );
    }

    #[test]
    fn matches_truncated_thread_names() {
        assert!(comm_matches("hangs_forever_and_ever", "hangs_forever_a"));
        assert!(comm_matches("short", "short"));
        assert!(!comm_matches("shorter", "short"));
        assert!(!comm_matches("other_test_name", "hangs_forever_a"));
    }

    #[test]
    fn finished_tests_are_not_in_flight_and_prefixes_are_guesses() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let listed = v(&[
            "shared_long_prefix_a",
            "shared_long_prefix_b",
            "shared_long_prefix_c",
            "short",
        ]);
        let threads = v(&["shared_long_pre", "shared_long_pre", "short"]);
        let finished: HashSet<String> = v(&["shared_long_prefix_a", "shared_long_prefix_b"])
            .into_iter()
            .collect();
        // Helper threads of finished `a` and `b`: only `c` is left, exactly.
        assert_eq!(
            thread_tests(&listed, &threads, &[], &finished),
            (
                v(&["shared_long_prefix_c", "shared_long_prefix_c", "short"]),
                v(&[])
            )
        );
        // Nothing finished: the prefix fits three tests, each a guess.
        let (exact, guesses) = thread_tests(&listed, &threads, &[], &HashSet::new());
        assert_eq!(exact, v(&["short"]));
        assert_eq!(guesses.len(), 6);
        // A test the output shows in flight explains its thread.
        assert_eq!(
            thread_tests(
                &listed,
                &threads,
                &v(&["shared_long_prefix_a"]),
                &HashSet::new()
            ),
            (v(&["short"]), v(&[]))
        );
    }
}
