//! The lifeline: if cargo-reap dies at any moment (SIGKILL, OOM killer, CI
//! cancel), every process of every running suite dies within a second.
//!
//! A small guard process (cargo-reap re-executed as the hidden subcommand
//! [`GUARD_SUBCOMMAND`]) holds the read end of a pipe, its stdin, whose only
//! write end is the runner's (close-on-exec, so no suite can inherit it and
//! keep it open). The runner tells it the run's tag, then each containment as
//! it is made (`Instruction`); when the pipe reads EOF without a clean
//! `end`, the guard kills them all: `cgroup.kill` and remove each leaf,
//! SIGKILL each process group, and SIGKILL every process carrying the run's
//! tag, in rounds until none is left. Started any other way (no pipe on
//! stdin, or a first line that is not the tag), it refuses and does nothing.
//! PR_SET_PDEATHSIG is not used: it fires per thread, is cleared on fork and
//! races with spawn.
//!
//! The guard only knows what it is told. Above the runner sits the
//! **guardian** ([`split_off_runner`]): the process the user started, the
//! child subreaper above the runner's tree, which receives every orphan when
//! the runner dies (an untagged setsid daemon, the build) and kills them.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use rustix::pipe::{pipe_with, PipeFlags};

use crate::containment::layers::{self, Layer};
use crate::error::ContainError;
use crate::sys::{ExitInfo, OwnedChild};

/// The hidden subcommand that runs the guard (`cargo-reap __guard`, never
/// shown by `--help`).
pub const GUARD_SUBCOMMAND: &str = "__guard";

/// Set in the guard's environment, so that it can be recognised from
/// outside: the guardian spares it (`is_guard`) and tests find it. A mark
/// only: no process reads it to decide what program to be.
pub const GUARD_MARK: &str = "CARGO_REAP_INTERNAL_GUARD";

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
    /// `end`: the runner ends cleanly.
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
    /// `None` once the guard is reaped.
    guard: Option<OwnedChild>,
    registry: Registry,
}

/// How long a clean `close` waits for the guard (it has nothing to kill).
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

/// Start a guard process for run `run_id`; returns the write end of its
/// pipe (its only one, close-on-exec) and the guard, already told the tag.
fn spawn_guard(run_id: &str) -> Result<(File, OwnedChild), ContainError> {
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
    let tag = Instruction::Tag(format!("{run_id}/"));
    writer
        .write_all(format!("{}\n", tag.line()).as_bytes())
        .map_err(telling)?;
    Ok((writer, guard))
}

impl Lifeline {
    /// Start the guard for run `run_id`.
    pub fn start(run_id: &str) -> Result<Lifeline, ContainError> {
        let (writer, guard) = spawn_guard(run_id)?;
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
        st.guard.as_ref().map(OwnedChild::pid)
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

    /// The guard is gone (its pipe has no reader): reap it, start a new
    /// one and tell it every containment still registered (the line that
    /// failed is already applied to them). Returns what happened, in words.
    fn replace_guard(&self, st: &mut GuardState) -> Result<String, ContainError> {
        let old = st.guard.take();
        let old_pid = old.as_ref().map_or(0, OwnedChild::pid);
        // No reader left: the guard has exited, or is exiting.
        let how = match old {
            Some(g) => {
                g.wait_exit(Some(CLOSE_PATIENCE))?;
                match g.reap()? {
                    ExitInfo {
                        signal: Some(sig), ..
                    } => format!("was killed by signal {sig}"),
                    ExitInfo { code, .. } => format!("exited ({code:?})"),
                }
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

    /// A clean end: the guard exits without killing; wait for it.
    pub fn close(mut self) -> Result<(), ContainError> {
        self.send(Instruction::End)?;
        self.finish(CLOSE_PATIENCE)
    }

    /// Close the pipe, wait (at most `patience`) for the guard to exit, and
    /// reap it; past `patience` it is killed.
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
            guard.signal(rustix::process::Signal::KILL)?;
        }
        let exit = guard.reap()?;
        if exit.code != Some(0) {
            eprintln!("cargo-reap: warning: the lifeline guard ended with {exit:?}");
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

/// The guard process (`cargo-reap __guard`): read registrations from the
/// runner's pipe until EOF; then, unless the runner ended cleanly, kill
/// everything registered. Without that pipe on stdin, or when its first line
/// is not the run's tag, it refuses (exit 2) and touches nothing: typed by
/// hand, it does no harm.
pub fn guard_main(args: &[std::ffi::OsString]) -> i32 {
    if let Err(why) = check_guard_contract(args) {
        eprintln!(
            "cargo-reap: error: `{GUARD_SUBCOMMAND}` is internal (the lifeline guard a run starts for itself) and refuses to run here: {why}"
        );
        return reap_report::exit::USAGE;
    }
    ignore_interrupts();
    let mut lines = BufReader::new(std::io::stdin().lock()).lines();
    let tag = match lines.next() {
        Some(Ok(line)) => match Instruction::parse(&line) {
            Some(Instruction::Tag(t)) => Some(t),
            _ => {
                eprintln!("cargo-reap: error: `{GUARD_SUBCOMMAND}` is internal and refuses to run here: its first instruction is not the run's tag but {line:?}");
                return reap_report::exit::USAGE;
            }
        },
        // The runner ended before it told anything: nothing is registered.
        Some(Err(_)) | None => None,
    };
    let (registry, clean) = read_registrations(lines);
    if clean && registry.is_empty() {
        return 0;
    }
    let killed = kill_everything(&registry, tag.as_deref());
    eprintln!(
        "cargo-reap guard: the runner ended without a clean end; killed {killed} process(es) of {} (cgroups: {}, process groups: {})",
        tag.as_deref().unwrap_or("the run"),
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

/// Apply the runner's instructions until EOF; true with them when it ended
/// with `end` (a clean end).
fn read_registrations(lines: impl Iterator<Item = std::io::Result<String>>) -> (Registry, bool) {
    let mut registry = Registry::default();
    let mut clean = false;
    for line in lines {
        let Ok(line) = line else { break };
        match Instruction::parse(&line) {
            Some(Instruction::End) => clean = true,
            Some(i) => registry.apply(&i),
            None => eprintln!("cargo-reap guard: unknown instruction {line:?}"),
        }
    }
    (registry, clean)
}

/// Kill everything registered and everything tagged with the run; returns
/// how many processes (a process group counts as one).
fn kill_everything(registry: &Registry, tag: Option<&str>) -> usize {
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
    if let Some(prefix) = tag {
        killed += kill_tagged(prefix);
    }
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
    /// The runner: go on with the run.
    Runner(crate::interrupt::GuardianPipe),
    /// The guardian, after the runner ended: exit with this code.
    Guardian(i32),
}

/// Split this process in two, before anything else runs (no other thread
/// exists yet): the child goes on as the runner; this process — the one a
/// user, a shell or CI started and waits for — becomes its **guardian**,
/// the child subreaper above the runner's whole tree. Returns
/// [`Role::Runner`] in the runner (with the pipe that tells it when the
/// guardian is gone: hand it to [`crate::interrupt::install_watching`]),
/// [`Role::Guardian`] with the exit code in the guardian once the runner
/// has ended.
///
/// Why: while the runner lives, every process a suite forks is its
/// descendant (it is the child subreaper: orphans reparent to it), however
/// it escaped (cgroup, group, session, tag). When the runner dies, those
/// orphans reparent to the nearest subreaper above it — the guardian — not to
/// PID 1, so the guardian reaches every process the runner could, including
/// an untagged setsid daemon and the build (cargo, rustc, build scripts).
/// The lifeline guard (a child of the runner, below) still kills what is
/// registered — cgroup leaves, process groups, the tag — and removes leaves.
///
/// The guardian passes on SIGINT, SIGTERM and SIGHUP that a process sent to
/// it (a Ctrl-C at the terminal reaches both: the runner stays in its process
/// group), exits with the runner's exit code, and when the runner was killed
/// by a signal, SIGKILLs every descendant left (the guard excepted: it is
/// cleaning up) and exits with 128 + that signal. If the guardian is killed,
/// the runner sees EOF on a pipe and stops at once.
pub fn split_off_runner() -> Result<Role, ContainError> {
    use nix::sys::signal::{SigSet, Signal as NixSignal};
    crate::sys::become_subreaper()?;
    let mut set = SigSet::empty();
    for s in [NixSignal::SIGINT, NixSignal::SIGTERM, NixSignal::SIGHUP] {
        set.add(s);
    }
    // Blocked before the fork: the runner inherits the mask and reads them
    // from its own signalfd; nothing is lost in between.
    set.thread_block().map_err(|e| ContainError::Sys {
        what: "blocking SIGINT/SIGTERM/SIGHUP",
        source: e.into(),
    })?;
    let (r, w) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| ContainError::sys("pipe2", e))?;
    let guardian = std::process::id() as i32;
    // SAFETY: no other thread exists yet (called first thing in main), so
    // the child may go on running arbitrary code.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(ContainError::Sys {
            what: "forking the runner",
            source: e.into(),
        }),
        Ok(nix::unistd::ForkResult::Child) => {
            drop(w);
            Ok(Role::Runner(crate::interrupt::GuardianPipe {
                fd: r,
                pid: guardian,
            }))
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(r);
            let code = guardian_main(child.as_raw(), &set);
            drop(w);
            Ok(Role::Guardian(code))
        }
    }
}

/// The guardian: pass signals on, wait for the runner, clean up after a
/// runner killed by a signal. Returns the exit code.
fn guardian_main(runner: i32, set: &nix::sys::signal::SigSet) -> i32 {
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
            let killed = kill_descendants();
            eprintln!(
                "cargo-reap: the runner (pid {runner}) was killed by signal {sig}; its guardian killed {killed} process(es) it left"
            );
            wait_for_guards(ABORT_PATIENCE);
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
    loop {
        match rustix::process::waitpid(
            Some(crate::sys::to_pid(runner)),
            rustix::process::WaitOptions::empty(),
        ) {
            Ok(Some((_, st))) => {
                return match st.terminating_signal() {
                    Some(sig) => crate::interrupt::exit_code(sig),
                    None => st.exit_status().unwrap_or(reap_report::exit::USAGE),
                }
            }
            Err(rustix::io::Errno::INTR) | Ok(None) => continue,
            Err(e) => {
                eprintln!("cargo-reap: error: waiting for the runner: {e}");
                return reap_report::exit::USAGE;
            }
        }
    }
}

/// Is this process a lifeline guard (it cleans up by itself)?
fn is_guard(pid: i32) -> bool {
    let needle = format!("{GUARD_MARK}=");
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
        env.split(|b| *b == 0)
            .any(|kv| kv.starts_with(needle.as_bytes()))
    })
}

/// SIGKILL, in rounds, every descendant of this process (the guardian)
/// except lifeline guards; reap them. Returns how many were killed.
fn kill_descendants() -> usize {
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
            if is_guard(pid) {
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

/// Wait (at most `patience`) for the lifeline guards among our children to
/// finish their own cleanup (leaves removed) and reap them.
fn wait_for_guards(patience: Duration) {
    let me = std::process::id() as i32;
    let kids = match std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("cargo-reap: guardian: cannot list its children to wait for the lifeline guard: {e}");
            return;
        }
    };
    let guards: Vec<crate::sys::ProcId> = kids
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .filter(|p| is_guard(*p))
        .map(|pid| crate::sys::ProcId {
            pid,
            start_time: None,
        })
        .collect();
    let waited =
        crate::sys::open_pidfds(&guards).and_then(|fds| crate::sys::wait_pidfds(&fds, patience));
    if let Err(e) = waited {
        eprintln!("cargo-reap: guardian: waiting for the lifeline guard: {e}");
    }
    if let Err(e) = crate::sys::reap_unclaimed_zombies() {
        eprintln!("cargo-reap: guardian: reaping: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
