//! One run of a suite's binary in a fresh containment: spawn → wait →
//! on exit (survivors are leaks) | on hang (look, then TERM → grace → KILL)
//! → close (the output read to its end, the containment removed).

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reap_probe::{FindingContext, ProcessInfo};
use rustix::pipe::{pipe_with, PipeFlags};
use rustix::process::Signal;

use crate::containment::Containment;
use crate::discover::Suite;
use crate::error::{ContainError, RunError};
use crate::interrupt::Interrupts;
use crate::sys::{self, ExitInfo, OwnedChild, Wake};
use reap_report::{Attempt, TestCounts};

use super::capture::{Capture, Echo, LogFailure, ResultLine, SuiteLog, TestWindow};
use super::command::{suite_command, Output};
use super::context::{Registered, RunContext};
use super::examine::{
    examine, leak_of, mark_not_killed, not_killed_problems, pipe_holders, test_thread_names,
    thread_tests, unseen_by, Examined,
};
use super::listing::list_tests;

/// How long to wait for a suite's output pipe to close once all of its
/// processes are gone.
const PIPE_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Columns the process tree stored with a hang (`attempts[].tree`) is laid
/// out for: the report's width, whatever the terminal's.
pub const TREE_WIDTH: usize = 100;

/// The finding of a hang process whose cgroup is frozen (cargo-reap's own,
/// not a reap-probe rule).
const FROZEN: &str = "frozen";
/// What a frozen suite's hang forensics say first.
const FROZEN_NOTE: &str = "frozen: its cgroup is frozen (cgroup.freeze = 1): it runs nothing and acts on no signal but SIGKILL until thawed (cargo-reap thaws it before the SIGTERM)";

/// One run of a test binary: which leaf, which arguments, how it is headed in the log.
pub struct AttemptSpec<'a> {
    pub leaf: String,
    pub number: u32,
    pub args: &'a [String],
    pub header: String,
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
    pub windows: Vec<TestWindow>,
    /// Per-test results from the output.
    pub results: Vec<ResultLine>,
    /// libtest's `test result:` counts.
    pub counts: Option<TestCounts>,
    /// When the binary was spawned.
    pub spawned: Instant,
    /// When libtest's `running N tests` line was read.
    pub running_at: Option<Instant>,
    /// Each test's section of libtest's `failures:` block (its captured
    /// output, panic message, backtrace).
    pub sections: Vec<(String, String)>,
}

/// Run the test binary once in a fresh containment (`made`: one made ahead
/// for this attempt, else one is made now); returns the attempt and the
/// processes that survived it (already killed and reaped).
pub fn run_attempt(
    ctx: &RunContext<'_>,
    suite: &Suite,
    spec: &AttemptSpec<'_>,
    log: Option<&SuiteLog>,
    log_path: &Path,
    made: Option<Box<dyn Containment>>,
) -> Result<AttemptOutcome, RunError> {
    let (running, root) = Running::spawn(ctx, suite, spec, log, log_path, made)?;
    let mut tally = Tally::new(spec.number);
    let mut wake = running.wait(&root, &mut tally.out.attempt)?;
    if wake == Wake::TimedOut && ctx.options.watch.is_some() {
        // The watch's end, not a hang: the command is stopped, then judged as
        // one that exited (its children get the settle, the rest are leaks).
        tally.out.attempt.watch_ended = true;
        wake = super::sample::stop_watched(&root, suite.limits.grace, ctx.interrupts)?;
    }
    let woke = Instant::now();
    let exited = wake == Wake::Exited;
    if exited {
        running.on_exit(root, &mut tally)?;
    } else {
        running.on_hang(root, wake, &mut tally)?;
    }
    let out = running.close(tally)?;
    if exited {
        // The collection's own cost, to the microsecond (the benchmark reads
        // it: `RUST_LOG=cargo_reap::timing=debug`).
        tracing::debug!(
            target: "cargo_reap::timing",
            "{} attempt {}: collected in {} us after its binary exited",
            suite.id,
            spec.number,
            woke.elapsed().as_micros()
        );
    }
    Ok(out)
}

/// What an attempt found so far, filled phase by phase.
struct Tally {
    out: AttemptOutcome,
    /// Processes examined: any left as our zombies is reaped at the close.
    seen_pids: Vec<i32>,
}

impl Tally {
    fn new(number: u32) -> Tally {
        Tally {
            out: AttemptOutcome {
                attempt: Attempt {
                    number,
                    ..Attempt::default()
                },
                survivors: Vec::new(),
                not_killed: Vec::new(),
                problems: Vec::new(),
                windows: Vec::new(),
                results: Vec::new(),
                counts: None,
                spawned: Instant::now(),
                running_at: None,
                sections: Vec::new(),
            },
            seen_pids: Vec::new(),
        }
    }

    /// The test binary ended (`started`: when it was spawned).
    fn ended(&mut self, started: Instant, exit: ExitInfo) {
        let attempt = &mut self.out.attempt;
        attempt.duration_ms = started.elapsed().as_millis() as u64;
        attempt.exit_code = exit.code;
        attempt.signal = exit.signal;
    }
}

/// The read end of a capture pipe, with what its capture writes to.
struct Reader {
    pipe: OwnedFd,
    log: File,
    logged: Arc<AtomicU64>,
    failure: LogFailure,
    echo: Option<Echo>,
}

/// An attempt's capture pipes, made before its spawn.
struct Pipes {
    /// The write ends, for the suite.
    output: Output,
    readers: Vec<Reader>,
    /// Each pipe's inode (reap-probe's holds-runner-pipe finding; the
    /// holders of a pipe left open).
    inodes: Vec<u64>,
}

impl Pipes {
    /// One pipe for both streams (interleaved as on a terminal), or with
    /// `echo` one each, copied to our stdout and stderr as they come. Both
    /// ends of each pipe close-on-exec (dup2 onto fds 1 and 2 in the child
    /// clears it there only).
    fn open(suite_log: &SuiteLog, log_path: &Path, echo: bool) -> Result<Pipes, RunError> {
        let sinks: &[Option<Echo>] = if echo {
            &[Some(Echo::Stdout), Some(Echo::Stderr)]
        } else {
            &[None]
        };
        let (mut readers, mut inodes, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        for sink in sinks {
            let (r, w) =
                pipe_with(PipeFlags::CLOEXEC).map_err(|e| ContainError::sys("pipe2", e))?;
            let log = suite_log.file.try_clone().map_err(|source| RunError::Io {
                what: "duplicating log handle",
                path: log_path.to_path_buf(),
                source,
            })?;
            inodes.push(
                rustix::fs::fstat(&r)
                    .map_err(|e| ContainError::sys("fstat on the capture pipe", e))?
                    .st_ino as u64,
            );
            ends.push(w);
            readers.push(Reader {
                pipe: r,
                log,
                logged: Arc::clone(&suite_log.logged),
                failure: suite_log.failure.clone(),
                echo: *sink,
            });
        }
        let stdout = ends.remove(0);
        let stderr = match ends.pop() {
            Some(w) => w,
            None => stdout.try_clone().map_err(|source| RunError::Io {
                what: "duplicating pipe for",
                path: log_path.to_path_buf(),
                source,
            })?,
        };
        Ok(Pipes {
            output: Output::Capture { stdout, stderr },
            readers,
            inodes,
        })
    }
}

/// An attempt whose test binary was spawned: its containment, the captures
/// of its output, what reap-probe needs to judge its processes.
struct Running<'c> {
    ctx: &'c RunContext<'c>,
    suite: &'c Suite,
    spec: &'c AttemptSpec<'c>,
    cont: Registered<'c>,
    /// The first (stdout, or both merged) is the one libtest's
    /// `test NAME ... ok` lines are tracked on.
    captures: Vec<Capture>,
    inodes: Vec<u64>,
    started: Instant,
    root_pid: i32,
    fctx: FindingContext,
    interrupts: Option<&'c Interrupts>,
}

impl<'c> Running<'c> {
    /// Spawn the test binary in a fresh containment, its output into the
    /// suite's log (when there is one).
    fn spawn(
        ctx: &'c RunContext<'c>,
        suite: &'c Suite,
        spec: &'c AttemptSpec<'c>,
        log: Option<&SuiteLog>,
        log_path: &Path,
        made: Option<Box<dyn Containment>>,
    ) -> Result<(Running<'c>, OwnedChild), RunError> {
        let cont = match made {
            Some(cont) => cont,
            None => ctx.contain(suite, &spec.leaf)?,
        };
        // Streamed (`--no-capture`): the suite's own attempts, not attribution
        // re-runs (number 0); its stdout to our stdout and its stderr to our
        // stderr, as `cargo test` leaves them, each through its own pipe.
        let echo = ctx.options.stream && spec.number > 0;
        let pipes = match log {
            Some(suite_log) => {
                suite_log.head(&format!(
                    "{} {} ({})",
                    suite.id,
                    spec.header,
                    suite.binary.display()
                ));
                Pipes::open(suite_log, log_path, echo)?
            }
            None => Pipes {
                output: Output::Inherit,
                readers: Vec::new(),
                inodes: Vec::new(),
            },
        };
        let cmd = suite_command(ctx, suite, spec.args, pipes.output);
        let started = Instant::now();
        // Consumes cmd: our copies of the pipe's write end go, only the suite holds it now.
        let (cont, root) = ctx.spawn_in(cont, cmd, suite)?;
        let captures = pipes
            .readers
            .into_iter()
            .map(|r| {
                Capture::start(
                    r.pipe,
                    r.log,
                    log_path.to_path_buf(),
                    r.logged,
                    r.failure,
                    r.echo,
                )
            })
            .collect();
        // The suite runs on its own now: the scheduler's backlog meanwhile.
        if let Some(backlog) = ctx.backlog {
            backlog.work_off();
        }
        let fctx = FindingContext {
            runner_pipe_inodes: pipes.inodes.clone(),
            suite_pgid: Some(root.pid()),
            suite_sid: Some(sys::own_session_id()),
            reaper_pid: Some(std::process::id() as i32),
        };
        let running = Running {
            ctx,
            suite,
            spec,
            cont,
            captures,
            inodes: pipes.inodes,
            started,
            root_pid: root.pid(),
            fctx,
            interrupts: Some(ctx.interrupts),
        };
        Ok((running, root))
    }

    /// Wait for the test binary to exit, for the timeout or for an
    /// interrupt, measuring the suite's resource use meanwhile.
    fn wait(&self, root: &OwnedChild, attempt: &mut Attempt) -> Result<Wake, RunError> {
        let opts = self.ctx.options;
        let timeout = opts.watch.unwrap_or(self.suite.limits.timeout);
        let deadline = Instant::now() + timeout;
        let interrupt = self.interrupts.map(|i| i.fd());
        let (wake, timeline) = super::sample::record_while(
            self.cont.sampler(),
            self.root_pid,
            self.started,
            &opts.sampling,
            self.ctx.live,
            // Until the next sample is due, or the timeout if it comes first.
            |sample_due| {
                let left = deadline.saturating_duration_since(Instant::now());
                match sample_due.filter(|due| *due < left) {
                    Some(due) => match root.wait_exit_or(due, interrupt) {
                        Ok(Wake::TimedOut) => None,
                        ended => Some(ended),
                    },
                    None => Some(root.wait_exit_or(left, interrupt)),
                }
            },
        );
        super::sample::fill_peaks(attempt, timeline);
        Ok(wake?)
    }

    /// The binary exited: its children get `settle` to exit on their own;
    /// whatever remains leaked, and is examined, then killed.
    fn on_exit(&self, root: OwnedChild, tally: &mut Tally) -> Result<(), RunError> {
        let exit = root.reap()?;
        tally.ended(self.started, exit);
        let survivors = if self.cont.wait_empty(self.suite.limits.settle, None)? {
            Vec::new()
        } else {
            self.cont.members()?
        };
        let mut survivors = examine(survivors, &self.fctx, self.root_pid)?;
        if !survivors.is_empty() {
            let killed = self.cont.kill_all()?;
            tally.out.attempt.kill_rounds = killed.rounds;
            survivors.extend(unseen_by(&survivors, &killed));
            tally.out.not_killed = killed.unkillable;
        }
        tally.seen_pids.extend(survivors.iter().map(|e| e.info.pid));
        tally.out.survivors = survivors;
        Ok(())
    }

    /// A hang (or an interrupt): look before killing, end the suite, then
    /// name the tests that were in flight.
    fn on_hang(&self, root: OwnedChild, wake: Wake, tally: &mut Tally) -> Result<(), RunError> {
        tally.out.attempt.timed_out = wake == Wake::TimedOut;
        tally.out.attempt.interrupted = wake == Wake::Interrupted;
        let threads = test_thread_names(root.pid());
        let (unfinished, finished) = self
            .captures
            .first()
            .map(|c| (c.unfinished_tests(), c.finished_tests()))
            .unwrap_or_default();
        let hung = self.look_at_hang(tally)?;
        // A hang, or a Ctrl-C (often of a run that seems stuck): where each
        // thread is, before the SIGTERM. Not after a second Ctrl-C (or the
        // guardian's end): then every moment counts.
        let hard = self.interrupts.is_some_and(|i| i.hard());
        if self.ctx.options.stacks && (wake == Wake::TimedOut || !hard) {
            self.capture_stacks(&hung, tally)?;
        }
        self.end_hang(&hung, tally)?;
        super::stacks::release_stragglers(&mut tally.out.problems);
        // The root is dead now (every member is); collect its status.
        root.signal(Signal::KILL)?;
        let exit = root.reap()?;
        tally.ended(self.started, exit);
        (
            tally.out.attempt.tests_in_flight,
            tally.out.attempt.in_flight_guesses,
        ) = in_flight(
            self.ctx,
            self.suite,
            &self.spec.leaf,
            unfinished,
            &threads,
            &finished,
        );
        Ok(())
    }

    /// The hung suite as the kill will find it: its processes examined
    /// (`hang_processes`), its tree rendered, a frozen cgroup named.
    fn look_at_hang(&self, tally: &mut Tally) -> Result<Vec<Examined>, RunError> {
        let number = self.spec.number;
        let frozen = self.cont.frozen()?;
        let hung = examine(self.cont.members()?, &self.fctx, self.root_pid)?;
        tally.seen_pids.extend(hung.iter().map(|e| e.info.pid));
        let attempt = &mut tally.out.attempt;
        attempt.hang_processes = hung.iter().map(|e| leak_of(e, number, true)).collect();
        let seen: Vec<reap_probe::Forensics> =
            hung.iter().filter_map(|e| e.forensics.clone()).collect();
        attempt.tree = frozen_lines(&frozen);
        attempt.tree.extend(
            reap_probe::render_forensics_tree(&seen, TREE_WIDTH)
                .lines()
                .map(str::to_string),
        );
        if !frozen.is_empty() {
            for l in &mut attempt.hang_processes {
                l.findings.push(FROZEN.into());
                l.notes.push(FROZEN_NOTE.into());
            }
        }
        Ok(hung)
    }

    /// Where each thread of the hung suite is blocked, before the SIGTERM (not for a frozen
    /// suite: its threads cannot stop for the tracer).
    fn capture_stacks(&self, hung: &[Examined], tally: &mut Tally) -> Result<(), RunError> {
        let pids: Vec<i32> = hung.iter().map(|e| e.info.pid).collect();
        tally.out.attempt.stacks = if self.cont.frozen()?.is_empty() {
            super::stacks::capture_hang(self.root_pid, &pids)
        } else {
            super::stacks::frozen_skip(self.root_pid)
        };
        Ok(())
    }

    /// SIGTERM to the whole suite, the grace, then SIGKILL for what is left.
    fn end_hang(&self, hung: &[Examined], tally: &mut Tally) -> Result<(), RunError> {
        // Thaws a frozen suite first (in cgroup mode): TERM would wait for it.
        self.cont.signal_all(Signal::TERM)?;
        let grace = if self.interrupts.is_some_and(|i| i.hard()) {
            Duration::ZERO
        } else {
            self.suite.limits.grace
        };
        // A second interrupt ends the grace at once.
        if self
            .cont
            .wait_empty(grace, self.interrupts.map(|i| i.hard_fd()))?
        {
            return Ok(());
        }
        let killed = self.cont.kill_all()?;
        let attempt = &mut tally.out.attempt;
        attempt.kill_rounds = killed.rounds;
        attempt.hang_processes.extend(
            unseen_by(hung, &killed)
                .iter()
                .map(|e| leak_of(e, self.spec.number, true)),
        );
        for l in &mut attempt.hang_processes {
            mark_not_killed(l, &killed.unkillable);
        }
        tally
            .out
            .problems
            .extend(not_killed_problems(&killed.unkillable));
        Ok(())
    }

    /// Every process of the attempt is gone: reap our zombies among them,
    /// read the output to its end, remove the containment.
    fn close(mut self, mut tally: Tally) -> Result<AttemptOutcome, RunError> {
        sys::reap_if_our_zombies(std::mem::take(&mut tally.seen_pids))?;
        tally.out.spawned = self.started;
        let captures = std::mem::take(&mut self.captures);
        for (k, (capture, inode)) in captures.into_iter().zip(&self.inodes).enumerate() {
            let captured = capture.finish(PIPE_CLOSE_WAIT)?;
            let out = &mut tally.out;
            out.attempt.output_bytes += captured.bytes;
            if k == 0 {
                // libtest's per-test and result lines are on stdout.
                out.windows = captured.windows;
                out.results = captured.results;
                out.counts = captured.counts;
                out.running_at = captured.running_at;
                out.sections = captured.sections;
                let a = &mut out.attempt;
                if a.signal.is_some() && !a.timed_out && !a.interrupted {
                    // A crash: the test that had started (serial output) and
                    // not finished when the binary died, else the slot model's.
                    a.tests_in_flight = captured.unfinished;
                    // (Only a binary that printed libtest's `running N tests`.)
                    if a.tests_in_flight.is_empty() && out.running_at.is_some() {
                        a.tests_in_flight = self.crash_in_flight(&out.results);
                    }
                }
            }
            if !captured.complete {
                self.claim_pipe_holders(*inode, &mut tally)?;
            }
        }
        let out = &mut tally.out;
        out.problems.extend(not_killed_problems(&out.not_killed));
        self.cont.close()?;
        // A lifeline guard found dead (and replaced) while this suite ran.
        tally.out.problems.extend(self.ctx.lifeline.take_notices());
        Ok(tally.out)
    }

    /// The tests a parallel run had in flight when its binary died (its
    /// output names a test only at its end): from a listing of its tests
    /// and libtest's slot model. None for attribution re-runs (one test)
    /// or a binary that cannot list its tests.
    fn crash_in_flight(&self, results: &[ResultLine]) -> Vec<String> {
        if self.spec.number == 0 || !self.ctx.options.listable {
            return Vec::new();
        }
        let threads = super::timing::Threads::of(&self.ctx.options.test_args, &self.suite.env);
        match list_tests(self.ctx, self.suite, &format!("{}.list", self.spec.leaf)) {
            Ok(listed) => super::timing::in_flight_at_death(listed, results, threads),
            Err(e) => {
                eprintln!(
                    "cargo-reap: warning: {}: could not list its tests to name the ones in flight at its crash: {e}",
                    self.suite.id
                );
                Vec::new()
            }
        }
    }

    /// Every member is gone, yet a process holds the suite's output pipe
    /// (inode `inode`): it got it from the suite, so it is the suite's leak,
    /// examined and killed.
    fn claim_pipe_holders(&self, inode: u64, tally: &mut Tally) -> Result<(), RunError> {
        let holders = pipe_holders(inode)?;
        if holders.is_empty() {
            tally.out.problems.push(
                "its output pipe stayed open after every process of the suite was gone, held by no process cargo-reap can see".into(),
            );
            return Ok(());
        }
        let mut held = examine(holders, &self.fctx, self.root_pid)?;
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
                tally.out.not_killed.push((
                    h.info.clone(),
                    format!(
                        "could not be killed: {}",
                        crate::containment::pgroup::errno_name(e)
                    ),
                ));
            }
        }
        tally.out.survivors.extend(held);
        Ok(())
    }
}

fn frozen_lines(frozen: &[PathBuf]) -> Vec<String> {
    frozen
        .iter()
        .map(|cg| format!("frozen: cgroup {} has cgroup.freeze = 1 (the suite froze itself?): its processes run nothing until thawed", cg.display()))
        .collect()
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
