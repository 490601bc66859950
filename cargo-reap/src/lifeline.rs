//! The lifeline: if cargo-reap dies at any moment (SIGKILL, OOM killer, CI
//! cancel), every process of every running suite dies within a second.
//!
//! Three processes share the work:
//!
//! - the **guardian** ([`split_off_runner`]): the process the user started.
//!   Before any thread exists it forks the guard, then the runner, and stays
//!   above them as the child subreaper, receiving every orphan when the
//!   runner dies (an untagged setsid daemon, the build) and killing them.
//!   It reaps the guard after the runner has ended, on every path.
//! - the **guard**: a fork of the guardian (named `reap-guard`, its own
//!   process group, interrupts ignored, stdout `/dev/null`, no descriptor but
//!   its stdin, stdout and stderr). It holds the read end of a pipe, its
//!   stdin, whose only write end is the runner's (close-on-exec, so no suite
//!   can inherit it and keep it open). The runner tells it the run's tag,
//!   then each containment as it is made ([`Instruction`]); when the pipe
//!   reads EOF without a clean `end`, the guard kills them all:
//!   `cgroup.kill` and remove each leaf, SIGKILL each process group, and
//!   SIGKILL every process carrying the run's tag, in rounds until none is
//!   left. It is forked, not executed: no second start of this binary (its
//!   dynamic linking and startup) on the path of every run.
//! - the **runner**: the other fork, which does the run and holds the
//!   pipe's write end ([`Lifeline`]).
//!
//! Where no fork from a single-threaded guardian is possible, the guard is
//! cargo-reap executed again as the hidden subcommand [`GUARD_SUBCOMMAND`],
//! a child of the runner running the same loop ([`guard_main`]): when a
//! suite killed the guard and the (multi-threaded) runner replaces it, and
//! when the runner has no guardian (the split failed, already announced).
//! Started any other way (no pipe on stdin, or a first line that is not the
//! tag), it refuses and does nothing. PR_SET_PDEATHSIG is not used: it fires
//! per thread, is cleared on fork and races with spawn.
//!
//! The guard only knows what it is told; the guardian reaches what nobody
//! told it about. If the guardian dies, the runner stops at once (it watches
//! a pipe of the guardian's) and the guard still sees the runner's end.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use rustix::pipe::{pipe_with, PipeFlags};

use crate::containment::layers::{self, ChildStep, Layer};
use crate::error::ContainError;
use crate::sys::{ExitInfo, OwnedChild};

/// The hidden subcommand that runs a replacement guard (`cargo-reap
/// __guard`, never shown by `--help`).
pub const GUARD_SUBCOMMAND: &str = "__guard";

/// Set in an executed guard's environment, so that it can be recognised
/// from outside: the guardian spares it (`is_spawned_guard`) and tests find
/// it. A mark only: no process reads it to decide what program to be. (The
/// forked guard's environment is the guardian's: the guardian knows its
/// pid; observers know it by its name, [`GUARD_NAME`].)
pub const GUARD_MARK: &str = "CARGO_REAP_INTERNAL_GUARD";

/// The forked guard's name (`comm`, PR_SET_NAME), so that `ps` tells it
/// apart from the guardian it was forked from.
pub const GUARD_NAME: &str = "reap-guard";

/// One line of the pipe protocol, runner → guard.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Instruction {
    /// `tag RUN_ID/`: the prefix of the run's tag. Always the first line.
    Tag(String),
    /// `cgroup PATH` / `-cgroup PATH`: a leaf to kill and remove, or no more.
    WatchCgroup(PathBuf),
    ForgetCgroup(PathBuf),
    /// `pgid N` / `-pgid N`: a process group to kill, or no more.
    WatchPgid(i32),
    ForgetPgid(i32),
    /// `end`: the runner ends cleanly; nothing follows.
    End,
}

impl Instruction {
    /// The line that carries it (without the newline).
    fn line(&self) -> String {
        match self {
            Instruction::Tag(t) => format!("tag {t}"),
            Instruction::WatchCgroup(p) => format!("cgroup {}", p.display()),
            Instruction::ForgetCgroup(p) => format!("-cgroup {}", p.display()),
            Instruction::WatchPgid(g) => format!("pgid {g}"),
            Instruction::ForgetPgid(g) => format!("-pgid {g}"),
            Instruction::End => "end".to_string(),
        }
    }

    /// The instruction a line carries, if any.
    fn parse(line: &str) -> Option<Instruction> {
        if line == "end" {
            return Some(Instruction::End);
        }
        let (verb, arg) = line.split_once(' ')?;
        Some(match verb {
            "tag" => Instruction::Tag(arg.to_string()),
            "cgroup" => Instruction::WatchCgroup(PathBuf::from(arg)),
            "-cgroup" => Instruction::ForgetCgroup(PathBuf::from(arg)),
            "pgid" => Instruction::WatchPgid(arg.parse().ok()?),
            "-pgid" => Instruction::ForgetPgid(arg.parse().ok()?),
            _ => return None,
        })
    }
}

/// The containments a guard is to kill if the runner dies: what the runner
/// has told it, kept on both sides of the pipe (the runner's copy is told
/// to a replacement guard).
#[derive(Debug, Default)]
struct Registry {
    cgroups: BTreeSet<PathBuf>,
    pgids: BTreeSet<i32>,
}

impl Registry {
    /// Apply a (un)registration; other instructions change nothing.
    fn apply(&mut self, i: &Instruction) {
        match i {
            Instruction::WatchCgroup(p) => {
                self.cgroups.insert(p.clone());
            }
            Instruction::ForgetCgroup(p) => {
                self.cgroups.remove(p);
            }
            Instruction::WatchPgid(g) => {
                self.pgids.insert(*g);
            }
            Instruction::ForgetPgid(g) => {
                self.pgids.remove(g);
            }
            Instruction::Tag(_) | Instruction::End => {}
        }
    }

    fn len(&self) -> usize {
        self.cgroups.len() + self.pgids.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lines that register everything, for a new guard.
    fn replay(&self) -> String {
        let cgroups = self.cgroups.iter().cloned().map(Instruction::WatchCgroup);
        let pgids = self.pgids.iter().copied().map(Instruction::WatchPgid);
        cgroups.chain(pgids).map(|i| i.line() + "\n").collect()
    }
}

/// The guard the guardian forked, as its runner receives it
/// ([`Role::Runner`]) and hands it to [`Lifeline::start`]: the pipe's only
/// write end, and a pidfd on the guard — a sibling, which the runner cannot
/// wait for, only watch end (its pid cannot be reused meanwhile: only the
/// guardian reaps it, after the runner has ended).
pub struct ForkedGuard {
    writer: File,
    pid: i32,
    pidfd: OwnedFd,
}

/// The runner's side of the lifeline.
///
/// Dropped without [`Lifeline::close`] (an error path of the runner), it
/// closes the pipe without `end`: the guard kills everything still
/// registered, and the runner waits for it to finish before going on.
///
/// A guard that dies while the runner lives (a suite killed it) is noticed at
/// the next write to its pipe (EPIPE): the runner announces it, starts a new
/// guard, tells it every containment still registered, and keeps a notice
/// for the suite that was running ([`Lifeline::take_notices`]).
pub struct Lifeline {
    run_id: String,
    state: Mutex<GuardState>,
    /// Guard replacements not yet reported with a suite.
    notices: Mutex<Vec<String>>,
}

/// The current guard and what it has been told.
struct GuardState {
    /// `None` once the pipe is closed.
    writer: Option<File>,
    /// `None` once the guard is let go (ended, or left to its guardian).
    guard: Option<Guard>,
    registry: Registry,
}

/// The process that holds the pipe's read end.
enum Guard {
    /// Forked by the guardian: the runner's sibling, watched through its
    /// pidfd and reaped by the guardian.
    Forked { pid: i32, pidfd: OwnedFd },
    /// `cargo-reap __guard`, started by this runner: its child.
    Spawned(OwnedChild),
}

impl Guard {
    fn pid(&self) -> i32 {
        match self {
            Guard::Forked { pid, .. } => *pid,
            Guard::Spawned(c) => c.pid(),
        }
    }

    /// Wait until it exits or `patience` passes; true when it exited.
    fn wait_exit(&self, patience: Option<Duration>) -> Result<bool, ContainError> {
        match self {
            Guard::Forked { pidfd, .. } => {
                crate::sys::wait_readable(&[pidfd.as_fd()], patience).map(|ready| ready.len() == 1)
            }
            Guard::Spawned(c) => c.wait_exit(patience),
        }
    }

    fn kill(&self) -> Result<(), ContainError> {
        match self {
            Guard::Forked { pidfd, .. } => {
                match rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::KILL) {
                    Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
                    Err(e) => Err(ContainError::sys("pidfd_send_signal", e)),
                }
            }
            Guard::Spawned(c) => c.signal(rustix::process::Signal::KILL),
        }
    }

    /// Wait for its end and say how it ended: our child is reaped; the
    /// forked guard is its guardian's to reap, and its status is read from
    /// its zombie (`None` when unreadable).
    fn ended(self) -> Result<Option<ExitInfo>, ContainError> {
        match self {
            Guard::Forked { pid, pidfd } => {
                crate::sys::wait_readable(&[pidfd.as_fd()], None)?;
                Ok(zombie_exit(pid))
            }
            Guard::Spawned(c) => c.reap().map(Some),
        }
    }
}

/// How the zombie `pid` ended ([`reap_probe::zombie_status`]). `None` when
/// it cannot be told — it is no zombie (reaped already: a guardian killed
/// before it, and the pid maybe reused) or unreadable: the notice then says
/// only that it ended.
fn zombie_exit(pid: i32) -> Option<ExitInfo> {
    let status = match reap_probe::zombie_status(pid) {
        Ok(s) => s?,
        Err(e) => {
            tracing::debug!("how the lifeline guard (pid {pid}) ended: {e}");
            return None;
        }
    };
    Some(match status & 0x7f {
        0 => ExitInfo {
            code: Some((status >> 8) & 0xff),
            signal: None,
        },
        sig => ExitInfo {
            code: None,
            signal: Some(sig),
        },
    })
}

/// "exited (Some(0))", "was killed by signal 9", in words.
fn how_it_ended(exit: Option<ExitInfo>) -> String {
    match exit {
        Some(ExitInfo {
            signal: Some(sig), ..
        }) => format!("was killed by signal {sig}"),
        Some(ExitInfo { code, .. }) => format!("exited ({code:?})"),
        None => "ended".to_string(),
    }
}

/// How long a clean `close` waits for a guard this runner started (it has
/// nothing to kill).
const CLOSE_PATIENCE: Duration = Duration::from_secs(10);
/// How long an error path waits for the guard to kill what was registered
/// (removing a cgroup leaf may take up to 10 s on its own).
const ABORT_PATIENCE: Duration = Duration::from_secs(30);

fn telling(source: std::io::Error) -> ContainError {
    ContainError::Sys {
        what: "telling the lifeline guard",
        source,
    }
}

/// Tell a new guard the run's tag: always its first line.
fn tell_tag(writer: &mut File, run_id: &str) -> std::io::Result<()> {
    let tag = Instruction::Tag(format!("{run_id}/"));
    writer.write_all(format!("{}\n", tag.line()).as_bytes())
}

/// Start a guard process for run `run_id` from our own executable (`cargo-reap
/// __guard`); returns the write end of its pipe (its only one, close-on-exec)
/// and the guard, already told the tag.
fn spawn_guard(run_id: &str) -> Result<(File, Guard), ContainError> {
    let (r, w) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| ContainError::sys("pipe2", e))?;
    let exe = std::env::current_exe().map_err(|e| ContainError::Sys {
        what: "locating our own executable",
        source: e,
    })?;
    let mut cmd = Command::new(exe);
    cmd.arg(GUARD_SUBCOMMAND)
        .env(GUARD_MARK, "1")
        .stdin(Stdio::from(r))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // Out of the terminal's foreground group: Ctrl-C is the runner's to handle.
    layers::apply(
        &mut cmd,
        &[
            Layer::Untagged,
            Layer::OwnProcessGroup,
            Layer::UnblockSignals,
        ],
    );
    let child = cmd.spawn().map_err(|e| ContainError::Sys {
        what: "starting the lifeline guard",
        source: e,
    })?;
    drop(cmd); // the read end now lives only in the guard
    let guard = OwnedChild::adopt(&child)?;
    drop(child);
    let mut writer = File::from(w);
    tell_tag(&mut writer, run_id).map_err(telling)?;
    Ok((writer, Guard::Spawned(guard)))
}

impl Lifeline {
    /// The lifeline of run `run_id`: with the guard its guardian forked
    /// (told the tag here), or without one (no guardian) a guard started
    /// from our executable.
    pub fn start(run_id: &str, forked: Option<ForkedGuard>) -> Result<Lifeline, ContainError> {
        let (writer, guard) = match forked {
            Some(ForkedGuard {
                mut writer,
                pid,
                pidfd,
            }) => match tell_tag(&mut writer, run_id) {
                Ok(()) => (writer, Guard::Forked { pid, pidfd }),
                Err(e) => {
                    eprintln!("cargo-reap: warning: the lifeline guard forked by the guardian (pid {pid}) cannot be told the run ({e}); starting one from cargo-reap's executable instead");
                    spawn_guard(run_id)?
                }
            },
            None => spawn_guard(run_id)?,
        };
        Ok(Lifeline {
            run_id: run_id.to_string(),
            state: Mutex::new(GuardState {
                writer: Some(writer),
                guard: Some(guard),
                registry: Registry::default(),
            }),
            notices: Mutex::new(Vec::new()),
        })
    }

    /// The guard's pid (tests, diagnostics).
    pub fn guard_pid(&self) -> Option<i32> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.guard.as_ref().map(Guard::pid)
    }

    fn send(&self, instruction: Instruction) -> Result<(), ContainError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.registry.apply(&instruction);
        let Some(w) = st.writer.as_mut() else {
            return Err(telling(std::io::Error::other(
                "the lifeline is already closed",
            )));
        };
        // One write of less than PIPE_BUF bytes: atomic.
        match w.write_all(format!("{}\n", instruction.line()).as_bytes()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                let notice = self.replace_guard(&mut st)?;
                if instruction == Instruction::End {
                    if let Some(w) = st.writer.as_mut() {
                        w.write_all(b"end\n").map_err(telling)?;
                    }
                }
                eprintln!("cargo-reap: warning: {notice}");
                self.notices
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(notice);
                Ok(())
            }
            Err(e) => Err(telling(e)),
        }
    }

    /// The guard is gone (its pipe has no reader): wait for its end, start
    /// a new one from our executable (this runner has threads: no fork of
    /// ordinary code here) and tell it every containment still registered
    /// (the line that failed is already applied to them). Returns what
    /// happened, in words.
    fn replace_guard(&self, st: &mut GuardState) -> Result<String, ContainError> {
        let old = st.guard.take();
        let old_pid = old.as_ref().map_or(0, Guard::pid);
        // No reader left: the guard has exited, or is exiting.
        let how = match old {
            Some(g) => {
                g.wait_exit(Some(CLOSE_PATIENCE))?;
                how_it_ended(g.ended()?)
            }
            None => "was gone".to_string(),
        };
        let (mut writer, guard) = spawn_guard(&self.run_id)?;
        writer
            .write_all(st.registry.replay().as_bytes())
            .map_err(telling)?;
        let new_pid = guard.pid();
        st.writer = Some(writer);
        st.guard = Some(guard);
        Ok(format!(
            "the lifeline guard (pid {old_pid}) {how} while this suite ran; a new guard (pid {new_pid}) was started and told the {} containment(s) still running",
            st.registry.len()
        ))
    }

    /// Guard replacements since the last call, one sentence each.
    pub fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut *self.notices.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn watch_cgroup(&self, dir: &Path) -> Result<(), ContainError> {
        self.send(Instruction::WatchCgroup(dir.to_path_buf()))
    }

    pub fn forget_cgroup(&self, dir: &Path) -> Result<(), ContainError> {
        self.send(Instruction::ForgetCgroup(dir.to_path_buf()))
    }

    pub fn watch_pgid(&self, pgid: i32) -> Result<(), ContainError> {
        self.send(Instruction::WatchPgid(pgid))
    }

    pub fn forget_pgid(&self, pgid: i32) -> Result<(), ContainError> {
        self.send(Instruction::ForgetPgid(pgid))
    }

    /// A clean end: the guard exits without killing.
    pub fn close(mut self) -> Result<(), ContainError> {
        self.send(Instruction::End)?;
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(Guard::Forked { .. }) = st.guard {
            // Not waited for: after `end` the guard has nothing to kill and
            // exits by itself; nothing this runner does next depends on its
            // exit (it holds no containment, file or lock of the run); and
            // its guardian waits for it and reaps it once this runner has
            // ended, so the end a user waits for — the guardian's exit —
            // still comes after the guard's.
            drop(st.writer.take());
            drop(st.guard.take());
            return Ok(());
        }
        // A guard this runner started is its child: reaped here.
        self.finish(CLOSE_PATIENCE)
    }

    /// Close the pipe, wait (at most `patience`) for the guard to exit, and
    /// collect its end; past `patience` it is killed.
    fn finish(&mut self, patience: Duration) -> Result<(), ContainError> {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        drop(st.writer.take());
        let Some(guard) = st.guard.take() else {
            return Ok(());
        };
        if !guard.wait_exit(Some(patience))? {
            eprintln!(
                "cargo-reap: warning: the lifeline guard did not exit within {}; killing it",
                humantime::format_duration(patience)
            );
            guard.kill()?;
        }
        match guard.ended()? {
            // Unknown (a forked guard's status unreadable): nothing to say.
            Some(ExitInfo {
                code: Some(0),
                signal: None,
            })
            | None => {}
            other => eprintln!(
                "cargo-reap: warning: the lifeline guard {}",
                how_it_ended(other)
            ),
        }
        Ok(())
    }
}

impl Drop for Lifeline {
    fn drop(&mut self) {
        let live = self
            .state
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .guard
            .is_some();
        if live {
            // An error path skipped close(): EOF without `end` makes the guard
            // kill every containment still registered. Let it finish.
            if let Err(e) = self.finish(ABORT_PATIENCE) {
                eprintln!("cargo-reap: warning: ending the lifeline guard: {e}");
            }
        }
    }
}

/// The executed guard (`cargo-reap __guard`, a replacement or a runner
/// without guardian): checks that it was started by a run, then does the
/// guard's work ([`guard_loop`]). Without the runner's pipe on stdin, or
/// when its first line is not the run's tag, it refuses (exit 2) and
/// touches nothing: typed by hand, it does no harm.
pub fn guard_main(args: &[std::ffi::OsString]) -> i32 {
    if let Err(why) = check_guard_contract(args) {
        eprintln!(
            "cargo-reap: error: `{GUARD_SUBCOMMAND}` is internal (the lifeline guard a run starts for itself) and refuses to run here: {why}"
        );
        return reap_report::exit::USAGE;
    }
    ignore_interrupts();
    guard_loop()
}

/// The forked guard, in the child of [`fork_guard`] (forked from the
/// single-threaded guardian, so ordinary code may run): set itself up as
/// [`spawn_guard`]'s layers and [`guard_main`] would — its own process
/// group, interrupts ignored, an empty signal mask, the pipe's read
/// end as stdin, stdout `/dev/null`, no other descriptor — then do the
/// guard's work. Returns its exit code.
fn forked_guard(pipe: OwnedFd) -> i32 {
    // Out of the terminal's foreground group: Ctrl-C is the runner's to handle.
    if let Err(e) = ChildStep::OwnProcessGroup.run_in_child() {
        eprintln!("cargo-reap guard: cannot leave the terminal's process group: {e}");
    }
    // Ignored before the mask (inherited from the guardian, which blocks
    // them) is emptied: one already pending is discarded, not delivered.
    ignore_interrupts();
    if let Err(e) = ChildStep::UnblockSignals.run_in_child() {
        eprintln!("cargo-reap guard: cannot empty its signal mask: {e}");
    }
    if let Err(e) = guard_fds(pipe) {
        // Its pipe is closed with it: the runner's first write fails with
        // EPIPE and it starts a guard from the executable instead.
        eprintln!("cargo-reap guard: cannot set up its descriptors: {e}");
        return reap_report::exit::USAGE;
    }
    guard_loop()
}

/// [`GUARD_NAME`], as prctl(PR_SET_NAME) takes it.
const GUARD_NAME_C: &std::ffi::CStr = c"reap-guard";

/// This thread's name (PR_GET_NAME: at most 15 bytes and a NUL).
fn thread_name() -> [u8; 16] {
    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes, NUL included, into it.
    if unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) } != 0 {
        eprintln!(
            "cargo-reap: warning: cannot read the process name: {}",
            std::io::Error::last_os_error()
        );
    }
    name
}

/// Name this thread (PR_SET_NAME; `name` NUL-terminated, truncated to 15
/// bytes by the kernel).
fn set_thread_name(name: &[u8]) {
    // SAFETY: `name` holds a NUL (a CStr's bytes with it, or a buffer of
    // PR_GET_NAME); the kernel reads at most 16 bytes.
    if unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) } != 0 {
        eprintln!(
            "cargo-reap: warning: cannot name the process {:?}: {}",
            String::from_utf8_lossy(name.split(|b| *b == 0).next().unwrap_or_default()),
            std::io::Error::last_os_error()
        );
    }
}

/// The forked guard's descriptors: `pipe` as stdin (where the executed
/// guard reads it too), `/dev/null` as stdout, stderr kept, every other
/// descriptor inherited from the guardian closed.
fn guard_fds(pipe: OwnedFd) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let null = File::options().write(true).open("/dev/null")?;
    for (from, to) in [(pipe.as_raw_fd(), 0), (null.as_raw_fd(), 1)] {
        // SAFETY: dup2 onto a standard descriptor, which std owns for the
        // whole process: replacing what it refers to closes nothing of ours.
        if unsafe { libc::dup2(from, to) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    drop((pipe, null));
    // SAFETY: one raw system call. Nothing of this process uses a
    // descriptor above stderr from here on (the guard opens its own).
    if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The guard's work, for both kinds of guard: read registrations from the
/// runner's pipe (stdin) until `end` or EOF; then, unless the runner ended
/// cleanly, kill everything registered and everything tagged. Returns the
/// exit code.
fn guard_loop() -> i32 {
    let mut lines = BufReader::new(std::io::stdin().lock()).lines();
    let tag = match lines.next() {
        Some(Ok(line)) => match Instruction::parse(&line) {
            Some(Instruction::Tag(t)) => t,
            _ => {
                eprintln!("cargo-reap: error: `{GUARD_SUBCOMMAND}` is internal and refuses to run here: its first instruction is not the run's tag but {line:?}");
                return reap_report::exit::USAGE;
            }
        },
        // The runner ended before it started a run (an early error,
        // `--no-run`): nothing was registered, nothing carries a tag.
        Some(Err(_)) | None => return 0,
    };
    let (registry, clean) = read_registrations(lines);
    if clean && registry.is_empty() {
        return 0;
    }
    let killed = kill_everything(&registry, &tag);
    eprintln!(
        "cargo-reap guard: the runner ended without a clean end; killed {killed} process(es) of {tag} (cgroups: {}, process groups: {})",
        registry.cgroups.len(),
        registry.pgids.len()
    );
    0
}

/// The guard's contract: no arguments, and stdin a pipe (the runner's).
fn check_guard_contract(args: &[std::ffi::OsString]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("it takes no arguments (got {extra:?})"));
    }
    let stat = rustix::fs::fstat(std::io::stdin())
        .map_err(|e| format!("cannot examine its stdin: {e}"))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Fifo {
        return Err("its stdin is not the pipe of a cargo-reap run".into());
    }
    Ok(())
}

/// The guard outlives whatever stops the runner: it ignores the interrupts
/// (and SIGPIPE) and ends only at the EOF of its pipe.
fn ignore_interrupts() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: setting SIG_IGN installs no handler code.
        if let Err(e) = unsafe { signal(s, SigHandler::SigIgn) } {
            eprintln!("cargo-reap guard: cannot ignore {s}: {e}");
        }
    }
}

/// Apply the runner's instructions until `end` or EOF; true with them when
/// it ended with `end` (a clean end).
fn read_registrations(lines: impl Iterator<Item = std::io::Result<String>>) -> (Registry, bool) {
    let mut registry = Registry::default();
    let mut clean = false;
    for line in lines {
        let Ok(line) = line else { break };
        match Instruction::parse(&line) {
            // Nothing follows `end`: no need to wait for the EOF.
            Some(Instruction::End) => {
                clean = true;
                break;
            }
            Some(i) => registry.apply(&i),
            None => eprintln!("cargo-reap guard: unknown instruction {line:?}"),
        }
    }
    (registry, clean)
}

/// Kill everything registered and everything tagged with the run; returns
/// how many processes (a process group counts as one).
fn kill_everything(registry: &Registry, tag: &str) -> usize {
    let mut killed = 0;
    for dir in &registry.cgroups {
        killed += kill_leaf(dir);
    }
    for &g in &registry.pgids {
        if let Some(pid) = rustix::process::Pid::from_raw(g) {
            // ESRCH: the group is already gone.
            if rustix::process::kill_process_group(pid, rustix::process::Signal::KILL).is_ok() {
                killed += 1;
            }
        }
    }
    killed += kill_tagged(tag);
    // Remove the leaves once the kernel has emptied them.
    for dir in &registry.cgroups {
        if let Err(e) = crate::containment::cgroup::remove_when_empty(dir) {
            eprintln!("cargo-reap guard: {e}");
        }
    }
    killed
}

/// `cgroup.kill` a leaf, then SIGKILL what is still listed; returns how many
/// processes it held.
fn kill_leaf(dir: &Path) -> usize {
    // Only for the count in the message: an unreadable list counts as empty.
    let held = match crate::containment::cgroup::procs_in_tree(dir) {
        Ok(Some(procs)) => procs.len(),
        Ok(None) | Err(_) => 0,
    };
    if let Err(e) = std::fs::write(dir.join("cgroup.kill"), "1") {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("cargo-reap guard: cgroup.kill in {}: {e}", dir.display());
        }
    }
    // cgroup.kill skips a process whose main thread exited while other
    // threads run on: signal what is still listed, identity-checked.
    if let Err(e) = crate::containment::cgroup::kill_listed_members(dir) {
        eprintln!(
            "cargo-reap guard: killing what is left in {}: {e}",
            dir.display()
        );
    }
    held
}

/// SIGKILL every process whose tag starts with `prefix`, in rounds (each
/// waits for the exits) until none is left; returns how many were killed.
fn kill_tagged(prefix: &str) -> usize {
    use crate::sys::{open_pidfds, signal_pidfds, wait_pidfds, ProcId};
    let mut killed = 0;
    for _round in 0..20 {
        let opts = reap_probe::ScanOptions {
            environ_tag: true,
            cgroup: false,
        };
        let procs = match reap_probe::scan(opts) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("cargo-reap guard: scanning /proc: {e}");
                break;
            }
        };
        // By pidfd, identity-checked: never a recycled pid.
        let tagged: Vec<ProcId> = procs
            .iter()
            .filter(|p| !p.is_zombie() && p.tag.as_deref().is_some_and(|t| t.starts_with(prefix)))
            .map(ProcId::from)
            .collect();
        if tagged.is_empty() {
            break;
        }
        // Then wait for their exits (not a rescan racing the kill).
        let round = open_pidfds(&tagged).and_then(|fds| {
            let n = signal_pidfds(&fds, rustix::process::Signal::KILL)?;
            wait_pidfds(&fds, Duration::from_secs(1))?;
            Ok(n)
        });
        match round {
            Ok(n) => killed += n,
            Err(e) => eprintln!("cargo-reap guard: killing tagged processes: {e}"),
        }
    }
    killed
}

/// Which of the two processes [`split_off_runner`] returns in.
pub enum Role {
    /// The runner: go on with the run, with the pipe that tells it when the
    /// guardian is gone and the guard the guardian forked for it.
    Runner {
        guardian: crate::interrupt::GuardianPipe,
        guard: ForkedGuard,
    },
    /// The guardian, after the runner ended: exit with this code.
    Guardian(i32),
}

/// Split this process in three, before anything else runs (no other thread
/// exists yet): a forked lifeline guard, and a child that goes on as the
/// runner; this process — the one a user, a shell or CI started and waits
/// for — becomes their **guardian**, the child subreaper above the runner's
/// whole tree. Returns [`Role::Runner`] in the runner (with the pipe that
/// tells it when the guardian is gone: hand it to
/// [`crate::interrupt::install_watching`]; and the guard: hand it to
/// [`Lifeline::start`]), [`Role::Guardian`] with the exit code in the
/// guardian once the runner has ended and the guard has been reaped.
///
/// Why: while the runner lives, every process a suite forks is its
/// descendant (it is the child subreaper: orphans reparent to it), however
/// it escaped (cgroup, group, session, tag). When the runner dies, those
/// orphans reparent to the nearest subreaper above it — the guardian — not to
/// PID 1, so the guardian reaches every process the runner could, including
/// an untagged setsid daemon and the build (cargo, rustc, build scripts).
/// The lifeline guard (the runner's sibling) still kills what is
/// registered — cgroup leaves, process groups, the tag — and removes leaves.
///
/// The guard is forked first: the runner is handed its pid, and a failed
/// fork is known before a runner exists.
///
/// The guardian passes on SIGINT, SIGTERM and SIGHUP that a process sent to
/// it (a Ctrl-C at the terminal reaches both: the runner stays in its process
/// group), exits with the runner's exit code, and when the runner was killed
/// by a signal, SIGKILLs every descendant left (the guards excepted: they
/// are cleaning up) and exits with 128 + that signal. If the guardian is
/// killed, the runner sees EOF on a pipe and stops at once.
pub fn split_off_runner() -> Result<Role, ContainError> {
    use nix::sys::signal::{SigSet, Signal as NixSignal};
    crate::sys::become_subreaper()?;
    let mut set = SigSet::empty();
    for s in [NixSignal::SIGINT, NixSignal::SIGTERM, NixSignal::SIGHUP] {
        set.add(s);
    }
    // Blocked before the forks: the runner inherits the mask and reads them
    // from its own signalfd; nothing is lost in between.
    set.thread_block().map_err(|e| ContainError::Sys {
        what: "blocking SIGINT/SIGTERM/SIGHUP",
        source: e.into(),
    })?;
    let (guard_pid, writer, guard_pidfd) = fork_guard()?;
    let (r, w) = match pipe_with(PipeFlags::CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            // The guard sees EOF before any tag and exits; it is killed
            // and reaped as its handle is dropped.
            drop(writer);
            drop(OwnedChild::adopt_pidfd(guard_pid, guard_pidfd));
            return Err(ContainError::sys("pipe2", e));
        }
    };
    let guardian = std::process::id() as i32;
    // SAFETY: no other thread exists yet (called first thing in main), so
    // the child may go on running arbitrary code.
    match unsafe { nix::unistd::fork() } {
        Err(e) => {
            drop(writer);
            drop(OwnedChild::adopt_pidfd(guard_pid, guard_pidfd));
            Err(ContainError::Sys {
                what: "forking the runner",
                source: e.into(),
            })
        }
        Ok(nix::unistd::ForkResult::Child) => {
            drop(w);
            Ok(Role::Runner {
                guardian: crate::interrupt::GuardianPipe {
                    fd: r,
                    pid: guardian,
                },
                guard: ForkedGuard {
                    writer: File::from(writer),
                    pid: guard_pid,
                    pidfd: guard_pidfd,
                },
            })
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(r);
            // From now on the runner holds the pipe's only write end.
            drop(writer);
            // Killed and reaped on every path from here (`end_guards`, or
            // dropped on a panic).
            let guard = OwnedChild::adopt_pidfd(guard_pid, guard_pidfd);
            let code = guardian_main(child.as_raw(), guard_pid, &set);
            end_guards(guard);
            drop(w);
            Ok(Role::Guardian(code))
        }
    }
}

/// Fork the lifeline guard from the (single-threaded) guardian: returns its
/// pid, the write end of its pipe (close-on-exec) and a pidfd on it. The
/// child never returns: it runs [`forked_guard`] and exits.
fn fork_guard() -> Result<(i32, OwnedFd, OwnedFd), ContainError> {
    let (r, w) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| ContainError::sys("pipe2", e))?;
    // Named from its birth (a name is inherited by fork), so that no observer
    // ever sees it by the guardian's name: ours for the moment of the fork.
    let ours = thread_name();
    set_thread_name(GUARD_NAME_C.to_bytes_with_nul());
    // SAFETY: no other thread exists yet (called first thing in main), so
    // the child may go on running arbitrary code.
    let forked = unsafe { nix::unistd::fork() };
    if !matches!(forked, Ok(nix::unistd::ForkResult::Child)) {
        set_thread_name(&ours);
    }
    match forked {
        Err(e) => Err(ContainError::Sys {
            what: "forking the lifeline guard",
            source: e.into(),
        }),
        Ok(nix::unistd::ForkResult::Child) => {
            // The guard must not hold a write end: it waits for the EOF.
            drop(w);
            std::process::exit(forked_guard(r))
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(r);
            let pid = child.as_raw();
            // Also here, against the race with the child's own setpgid: out
            // of the terminal's foreground group before the runner exists.
            // EACCES/ESRCH: the child did it first, or has already exited.
            let pgid = rustix::process::Pid::from_raw(pid);
            if let Err(e) = rustix::process::setpgid(pgid, pgid) {
                if !matches!(e, rustix::io::Errno::ACCESS | rustix::io::Errno::SRCH) {
                    eprintln!("cargo-reap: warning: the lifeline guard (pid {pid}) stays in the terminal's process group: setpgid: {e}");
                }
            }
            // Only we may reap it, and we have not: the pid is stable.
            match rustix::process::pidfd_open(
                crate::sys::to_pid(pid),
                rustix::process::PidfdFlags::empty(),
            ) {
                Ok(pidfd) => Ok((pid, w, pidfd)),
                Err(e) => {
                    drop(w);
                    if let Err(w) = reap_blocking(pid) {
                        eprintln!(
                            "cargo-reap: warning: reaping the lifeline guard (pid {pid}): {w}"
                        );
                    }
                    Err(ContainError::sys("pidfd_open on the lifeline guard", e))
                }
            }
        }
    }
}

/// The guardian: pass signals on, wait for the runner, clean up after a
/// runner killed by a signal (sparing the forked `guard`). Returns the exit
/// code.
fn guardian_main(runner: i32, guard: i32, set: &nix::sys::signal::SigSet) -> i32 {
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    use std::os::fd::AsFd;
    let pidfd = match rustix::process::pidfd_open(
        crate::sys::to_pid(runner),
        rustix::process::PidfdFlags::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("cargo-reap: error: pidfd_open on the runner: {e}");
            return wait_plain(runner);
        }
    };
    let sfd = match SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("cargo-reap: warning: signals sent to pid {} will not reach the runner (signalfd: {e}); send them to pid {runner}", std::process::id());
            None
        }
    };
    if let Err(e) = pass_signals_until_exit(&pidfd, sfd.as_ref()) {
        eprintln!("cargo-reap: error: waiting for the runner: {e}");
        return wait_plain(runner);
    }
    let status = loop {
        match rustix::process::waitid(
            rustix::process::WaitId::PidFd(pidfd.as_fd()),
            rustix::process::WaitIdOptions::EXITED,
        ) {
            Ok(Some(s)) => break s,
            Ok(None) | Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                eprintln!("cargo-reap: error: collecting the runner's exit: {e}");
                return reap_report::exit::USAGE;
            }
        }
    };
    match status.terminating_signal() {
        None => status.exit_status().unwrap_or(reap_report::exit::USAGE),
        Some(sig) => {
            let killed = kill_descendants(guard);
            eprintln!(
                "cargo-reap: the runner (pid {runner}) was killed by signal {sig}; its guardian killed {killed} process(es) it left"
            );
            crate::interrupt::exit_code(sig)
        }
    }
}

/// Until the runner (`pidfd`) exits: pass on to it every signal a process
/// sent to the guardian (read from `sfd`).
fn pass_signals_until_exit(
    pidfd: &std::os::fd::OwnedFd,
    sfd: Option<&nix::sys::signalfd::SignalFd>,
) -> Result<(), ContainError> {
    use rustix::event::PollFlags;
    use std::os::fd::AsFd;
    loop {
        let mut fds = vec![(pidfd.as_fd(), PollFlags::IN)];
        if let Some(s) = sfd {
            fds.push((s.as_fd(), PollFlags::IN));
        }
        if crate::sys::wait_any(&fds, None)?.contains(&0) {
            return Ok(());
        }
        let Some(s) = sfd else { continue };
        while let Ok(Some(info)) = s.read_signal() {
            // A Ctrl-C or hangup from the terminal (SI_KERNEL) reached
            // the runner too: it shares our process group.
            if info.ssi_code > 0 {
                continue;
            }
            if let Some(sig) = rustix::process::Signal::from_named_raw(info.ssi_signo as i32) {
                match rustix::process::pidfd_send_signal(pidfd, sig) {
                    Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                    Err(e) => eprintln!(
                        "cargo-reap: warning: cannot pass signal {} on to the runner: {e}",
                        info.ssi_signo
                    ),
                }
            }
        }
    }
}

/// Without a pidfd: a blocking wait for the runner.
fn wait_plain(runner: i32) -> i32 {
    match reap_blocking(runner) {
        Ok(st) => match st.terminating_signal() {
            Some(sig) => crate::interrupt::exit_code(sig),
            None => st.exit_status().unwrap_or(reap_report::exit::USAGE),
        },
        Err(e) => {
            eprintln!("cargo-reap: error: waiting for the runner: {e}");
            reap_report::exit::USAGE
        }
    }
}

/// Wait for our child `pid` to end, and reap it.
fn reap_blocking(pid: i32) -> Result<rustix::process::WaitStatus, rustix::io::Errno> {
    loop {
        match rustix::process::waitpid(
            Some(crate::sys::to_pid(pid)),
            rustix::process::WaitOptions::empty(),
        ) {
            Ok(Some((_, st))) => return Ok(st),
            Err(rustix::io::Errno::INTR) | Ok(None) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Is this process a lifeline guard the runner started from its executable
/// (it cleans up by itself)?
fn is_spawned_guard(pid: i32) -> bool {
    let needle = format!("{GUARD_MARK}=");
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
        env.split(|b| *b == 0)
            .any(|kv| kv.starts_with(needle.as_bytes()))
    })
}

/// SIGKILL, in rounds, every descendant of this process (the guardian)
/// except the lifeline guards (the forked `guard`, by pid; guards the runner
/// started, by their mark); reap them. Returns how many were killed.
fn kill_descendants(guard: i32) -> usize {
    use crate::sys::{open_pidfds, signal_pidfds_each, wait_pidfds, ProcId};
    let me = std::process::id() as i32;
    let mut killed = 0;
    let mut refused: BTreeSet<i32> = BTreeSet::new();
    for _round in 0..100 {
        let table = match reap_probe::scan(reap_probe::ScanOptions::default()) {
            Ok(t) => reap_probe::ProcessTable::new(t),
            Err(e) => {
                eprintln!("cargo-reap: guardian: scanning /proc: {e}");
                break;
            }
        };
        let mut todo: Vec<i32> = table.children(me).to_vec();
        let mut found: Vec<ProcId> = Vec::new();
        while let Some(pid) = todo.pop() {
            if pid == guard || is_spawned_guard(pid) {
                continue;
            }
            todo.extend(table.children(pid).iter().copied());
            if let Some(p) = table.get(pid) {
                if !p.is_zombie() && !refused.contains(&pid) {
                    found.push(ProcId::from(p));
                }
            }
        }
        if let Err(e) = crate::sys::reap_unclaimed_zombies() {
            eprintln!("cargo-reap: guardian: reaping: {e}");
        }
        if found.is_empty() {
            break;
        }
        let round = open_pidfds(&found).and_then(|fds| {
            let sent = signal_pidfds_each(&fds, rustix::process::Signal::KILL)?;
            wait_pidfds(&fds, Duration::from_secs(1))?;
            Ok(sent)
        });
        match round {
            Ok(sent) => {
                killed += sent.count;
                for (pid, e) in sent.refused {
                    eprintln!("cargo-reap: guardian: pid {pid} could not be killed: {e}");
                    refused.insert(pid);
                }
            }
            Err(e) => {
                eprintln!("cargo-reap: guardian: killing what the runner left: {e}");
                break;
            }
        }
    }
    killed
}

/// After the runner ended, on every path: wait (at most [`ABORT_PATIENCE`])
/// for the lifeline guards — the one the guardian forked, and any the runner
/// started from its executable, reparented here — to end by themselves (at
/// once after a clean `end`; after their cleanup when the runner died, or
/// exited without `end`); kill those still alive then; reap them all.
fn end_guards(forked: OwnedChild) {
    let spawned = spawned_guards();
    let waited = forked.wait_exit(Some(ABORT_PATIENCE)).and_then(|ended| {
        let all = ended && crate::sys::wait_pidfds(&spawned, ABORT_PATIENCE)?;
        Ok(all)
    });
    if !matches!(waited, Ok(true)) {
        match waited {
            Err(e) => eprintln!("cargo-reap: guardian: waiting for the lifeline guard: {e}"),
            Ok(_) => eprintln!(
                "cargo-reap: guardian: the lifeline guard did not end within {}; killing it",
                humantime::format_duration(ABORT_PATIENCE)
            ),
        }
        let killed = forked
            .signal(rustix::process::Signal::KILL)
            .and_then(|()| crate::sys::signal_pidfds(&spawned, rustix::process::Signal::KILL))
            .and_then(|_| crate::sys::wait_pidfds(&spawned, ABORT_PATIENCE));
        if let Err(e) = killed {
            eprintln!("cargo-reap: guardian: killing the lifeline guard: {e}");
        }
    }
    // How it ended is said already: a guard that fails says why itself, and
    // one killed while the runner lived was announced by the runner (EPIPE
    // at its next write, its `end` at the latest).
    if let Err(e) = forked.reap() {
        eprintln!("cargo-reap: guardian: reaping the lifeline guard: {e}");
    }
    drop(spawned);
    // The guards the runner started, and anything else that ended here.
    if let Err(e) = crate::sys::reap_unclaimed_zombies() {
        eprintln!("cargo-reap: guardian: reaping: {e}");
    }
}

/// Pidfds on the guards among our children that the runner started from
/// its executable (reparented here when it ended before them).
fn spawned_guards() -> Vec<(i32, OwnedFd)> {
    let kids = match reap_probe::own_children() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("cargo-reap: guardian: cannot list its children to wait for the lifeline guard: {e}");
            return Vec::new();
        }
    };
    let guards: Vec<crate::sys::ProcId> = kids
        .into_iter()
        .filter(|p| is_spawned_guard(*p))
        .map(|pid| crate::sys::ProcId {
            pid,
            start_time: None,
        })
        .collect();
    crate::sys::open_pidfds(&guards).unwrap_or_else(|e| {
        eprintln!("cargo-reap: guardian: waiting for the lifeline guard: {e}");
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name the guard gets is the one documented (and tests look for).
    #[test]
    fn the_guard_name_is_one_name() {
        assert_eq!(GUARD_NAME_C.to_str(), Ok(GUARD_NAME));
        assert!(GUARD_NAME.len() <= 15, "PR_SET_NAME keeps 15 bytes");
    }

    /// Every instruction reads back as itself, whatever its path holds (a
    /// space); the registry the runner replays to a new guard is what the
    /// old one was told, net of what was forgotten.
    #[test]
    fn instructions_round_trip_and_the_registry_replays_what_is_live() {
        let all = [
            Instruction::Tag("1a2b-42-effffffc-9/".into()),
            Instruction::WatchCgroup("/sys/fs/cgroup/a b/cargo-reap.x.1".into()),
            Instruction::ForgetCgroup("/sys/fs/cgroup/a b/cargo-reap.x.1".into()),
            Instruction::WatchPgid(4242),
            Instruction::ForgetPgid(4242),
            Instruction::End,
        ];
        for i in &all {
            assert_eq!(Instruction::parse(&i.line()).as_ref(), Some(i));
        }
        assert_eq!(Instruction::parse("pgid x"), None);
        assert_eq!(Instruction::parse("kill everything"), None);

        let mut told = Registry::default();
        for line in [
            "cgroup /c/1",
            "pgid 7",
            "cgroup /c/2",
            "-cgroup /c/1",
            "pgid 8",
        ] {
            told.apply(&Instruction::parse(line).unwrap());
        }
        let (replayed, clean) = read_registrations(told.replay().lines().map(|l| Ok(l.into())));
        assert!(!clean);
        assert_eq!(replayed.cgroups, BTreeSet::from(["/c/2".into()]));
        assert_eq!(replayed.pgids, BTreeSet::from([7, 8]));
        assert_eq!(told.len(), 3);
    }
}
