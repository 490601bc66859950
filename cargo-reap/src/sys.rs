//! Small, safe wrappers over the process syscalls the engine needs: pidfds
//! (identity-checked signalling, event-driven exit waits), zombie reaping, and
//! the child-subreaper bit.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{
    pidfd_open, pidfd_send_signal, waitid, waitpid, Pid, PidfdFlags, Signal, WaitId, WaitIdOptions,
    WaitOptions,
};

use crate::error::ContainError;

/// Pids whose exit status belongs to a specific waiter (suite roots, the
/// lifeline guard, helpers): the zombie sweep leaves them alone, and the
/// orphan rule never takes them for a suite's orphans.
///
/// A process-global on purpose: the children of a process are one
/// process-wide set (any thread's `waitpid(-1)` reaps any of them, and
/// orphans of every suite reparent to the one runner), so which of them have
/// an owner is a fact about the process, kept where every child is adopted
/// and reaped ([`OwnedChild`]) rather than in a value some caller could
/// forget to share.
static CLAIMED: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn claimed() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    // A poisoned set is still a valid set of pids.
    CLAIMED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Is `pid` a child of ours whose exit a specific waiter owns (a suite root,
/// the lifeline guard)?
pub fn is_claimed(pid: i32) -> bool {
    claimed().contains(&pid)
}

/// Unit tests that spawn children hold this: a process-group containment
/// counts unclaimed children of the runner (here: the test binary) started
/// during its suite as the suite's orphans, so it would kill and reap the
/// children of a test running beside it.
#[cfg(test)]
pub(crate) fn child_spawning_test() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A child process we spawned and will reap ourselves through its pidfd.
pub struct OwnedChild {
    pid: i32,
    pidfd: OwnedFd,
}

/// Why a wait for a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Exited,
    TimedOut,
    Interrupted,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl OwnedChild {
    /// Take ownership of a just-spawned child (std's `Child` is not used for
    /// waiting: we wait on the pidfd, with timeouts, without polling).
    pub fn adopt(child: &std::process::Child) -> Result<OwnedChild, ContainError> {
        Self::adopt_pid(child.id() as i32)
    }

    /// [`OwnedChild::adopt`] for a child forked without `std` (by pid).
    pub fn adopt_pid(pid: i32) -> Result<OwnedChild, ContainError> {
        // The child cannot be reaped by anyone but us, so its pid is stable here.
        let pidfd = pidfd_open(to_pid(pid), PidfdFlags::empty())
            .map_err(|e| ContainError::sys("pidfd_open on a new child", e))?;
        Ok(Self::adopt_pidfd(pid, pidfd))
    }

    /// [`OwnedChild::adopt_pid`] with a pidfd already open on the child.
    pub fn adopt_pidfd(pid: i32, pidfd: OwnedFd) -> OwnedChild {
        claimed().insert(pid);
        OwnedChild { pid, pidfd }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Wait until the child exits or `timeout` passes. True when it exited.
    pub fn wait_exit(&self, timeout: Option<Duration>) -> Result<bool, ContainError> {
        wait_readable(&[self.pidfd.as_fd()], timeout).map(|ready| ready.len() == 1)
    }

    /// Wait until the child exits, `timeout` passes, or `interrupt` becomes readable.
    pub fn wait_exit_or(
        &self,
        timeout: Duration,
        interrupt: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<Wake, ContainError> {
        let mut fds = vec![self.pidfd.as_fd()];
        fds.extend(interrupt);
        let ready = wait_readable(&fds, Some(timeout))?;
        Ok(if ready.contains(&0) {
            Wake::Exited
        } else if ready.contains(&1) {
            Wake::Interrupted
        } else {
            Wake::TimedOut
        })
    }

    /// Reap the (exited) child and return its status. Blocks if it has not exited.
    pub fn reap(self) -> Result<ExitInfo, ContainError> {
        let status = loop {
            match waitid(WaitId::PidFd(self.pidfd.as_fd()), WaitIdOptions::EXITED) {
                Ok(Some(s)) => break s,
                Ok(None) => continue,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(ContainError::sys("waitid on a child", e)),
            }
        };
        claimed().remove(&self.pid);
        Ok(ExitInfo {
            code: status.exit_status(),
            signal: status.terminating_signal(),
        })
    }

    /// Signal the child through its pidfd (no pid-reuse race).
    pub fn signal(&self, sig: Signal) -> Result<(), ContainError> {
        match pidfd_send_signal(&self.pidfd, sig) {
            Ok(()) | Err(Errno::SRCH) => Ok(()),
            Err(e) => Err(ContainError::sys("pidfd_send_signal", e)),
        }
    }
}

/// Start a child with `clone`, which returns its pid and pidfd in the
/// parent, and own it: it is claimed before any other thread can look for
/// unclaimed zombies (the claim set stays locked across the clone), so a
/// child that exits at once is never reaped by a sweep in its place.
pub fn spawn_claimed(
    clone: impl FnOnce() -> std::io::Result<(i32, OwnedFd)>,
) -> std::io::Result<OwnedChild> {
    let mut set = claimed();
    let (pid, pidfd) = clone()?;
    set.insert(pid);
    Ok(OwnedChild { pid, pidfd })
}

/// Kill and reap the child on every path: a guard for spawned helpers.
impl Drop for OwnedChild {
    fn drop(&mut self) {
        if claimed().contains(&self.pid) {
            if let Err(e) = pidfd_send_signal(&self.pidfd, Signal::KILL) {
                if e != Errno::SRCH {
                    tracing::warn!(pid = self.pid, "could not kill child on drop: {e}");
                }
            }
            loop {
                match waitid(WaitId::PidFd(self.pidfd.as_fd()), WaitIdOptions::EXITED) {
                    Err(Errno::INTR) | Ok(None) => continue,
                    Ok(Some(_)) => break,
                    Err(e) => {
                        eprintln!(
                            "cargo-reap: warning: could not reap child {}: {e}",
                            self.pid
                        );
                        break;
                    }
                }
            }
            claimed().remove(&self.pid);
        }
    }
}

pub fn to_pid(pid: i32) -> Pid {
    Pid::from_raw(pid).expect("pids handed to sys:: are positive")
}

/// A process identified by pid and start time (stat field 22), so a reused pid
/// is never signalled.
#[derive(Debug, Clone, Copy)]
pub struct ProcId {
    pub pid: i32,
    pub start_time: Option<u64>,
}

impl From<&reap_probe::ProcessInfo> for ProcId {
    fn from(p: &reap_probe::ProcessInfo) -> Self {
        ProcId {
            pid: p.pid,
            start_time: Some(p.start_time),
        }
    }
}

/// Open pidfds for processes, skipping those already gone or whose pid now
/// names another process.
pub fn open_pidfds(procs: &[ProcId]) -> Result<Vec<(i32, OwnedFd)>, ContainError> {
    let mut out = Vec::with_capacity(procs.len());
    for p in procs {
        if p.pid <= 0 {
            continue;
        }
        let fd = match pidfd_open(to_pid(p.pid), PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(Errno::SRCH) => continue,
            Err(e) => return Err(ContainError::sys("pidfd_open", e)),
        };
        if let Some(expected) = p.start_time {
            // The pidfd pins whatever process has this pid now; check it is ours.
            match reap_probe::start_time(p.pid) {
                Ok(t) if t == expected => {}
                Ok(_) | Err(reap_probe::ProbeError::Gone(_)) => continue,
                Err(e) => return Err(ContainError::Probe(e)),
            }
        }
        out.push((p.pid, fd));
    }
    Ok(out)
}

/// Send `sig` through each pidfd; returns how many were signalled.
pub fn signal_pidfds(fds: &[(i32, OwnedFd)], sig: Signal) -> Result<usize, ContainError> {
    let sent = signal_pidfds_each(fds, sig)?;
    match sent.refused.first() {
        None => Ok(sent.count),
        Some(&(_, e)) => Err(ContainError::sys("pidfd_send_signal", e)),
    }
}

/// What [`signal_pidfds_each`] did.
#[derive(Debug, Default)]
pub struct Sent {
    /// Processes signalled.
    pub count: usize,
    /// Processes we may not signal (EPERM: another user's, e.g. a root
    /// process started through sudo or a setuid helper), with the error.
    pub refused: Vec<(i32, Errno)>,
}

/// Send `sig` through each pidfd. A process we may not signal (EPERM) is
/// listed, not an error: one such process must not stop the others' kill.
pub fn signal_pidfds_each(fds: &[(i32, OwnedFd)], sig: Signal) -> Result<Sent, ContainError> {
    let mut sent = Sent::default();
    for (pid, fd) in fds {
        match pidfd_send_signal(fd, sig) {
            Ok(()) => sent.count += 1,
            Err(Errno::SRCH) => {}
            Err(Errno::PERM) => sent.refused.push((*pid, Errno::PERM)),
            Err(e) => return Err(ContainError::sys("pidfd_send_signal", e)),
        }
    }
    Ok(sent)
}

/// Processes found that could not be signalled (EPERM), by pid and start
/// time: reported once, by the suite that found them, then left out of every
/// later listing (a later kill round, another suite, the end-of-trial sweep).
///
/// Run-wide memory, still a process-global: the end-of-trial sweep
/// (`pgroup::unattributed`) and the kill of survivors (`pgroup::kill_listed`)
/// are called without a run value that could carry it. It belongs beside
/// the run's `pgroup::Concurrency` once they are.
static UNKILLABLE: Mutex<BTreeSet<(i32, u64)>> = Mutex::new(BTreeSet::new());

/// Remember that this process cannot be signalled by us.
pub fn note_unkillable(pid: i32, start_time: u64) {
    UNKILLABLE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert((pid, start_time));
}

/// Was this process found unkillable before (same pid and start time)?
pub fn is_known_unkillable(pid: i32, start_time: u64) -> bool {
    UNKILLABLE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&(pid, start_time))
}

/// Wait until every pidfd reports exit or `timeout` passes. True when all exited.
pub fn wait_pidfds(fds: &[(i32, OwnedFd)], timeout: Duration) -> Result<bool, ContainError> {
    wait_pidfds_or(fds, timeout, None)
}

/// [`wait_pidfds`], also ending (false) as soon as `cancel` is readable.
pub fn wait_pidfds_or(
    fds: &[(i32, OwnedFd)],
    timeout: Duration,
    cancel: Option<BorrowedFd<'_>>,
) -> Result<bool, ContainError> {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<_> = fds.iter().map(|(_, fd)| fd.as_fd()).collect();
    while !pending.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut all = pending.clone();
        all.extend(cancel);
        let ready = wait_readable(&all, Some(left))?;
        if ready.is_empty() || (cancel.is_some() && ready.contains(&pending.len())) {
            return Ok(false);
        }
        let mut i = 0;
        pending.retain(|_| {
            let keep = !ready.contains(&i);
            i += 1;
            keep
        });
    }
    Ok(true)
}

/// poll(2) for readability; returns the indexes that are ready (empty on timeout).
pub fn wait_readable(
    fds: &[std::os::fd::BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> Result<Vec<usize>, ContainError> {
    wait_events(fds, PollFlags::IN, timeout)
}

/// poll(2) for `events` on every fd; returns the indexes with any event.
pub fn wait_events(
    fds: &[std::os::fd::BorrowedFd<'_>],
    events: PollFlags,
    timeout: Option<Duration>,
) -> Result<Vec<usize>, ContainError> {
    let each: Vec<(BorrowedFd<'_>, PollFlags)> = fds.iter().map(|fd| (*fd, events)).collect();
    wait_any(&each, timeout)
}

/// poll(2) for each fd's own events; returns the indexes with any event.
pub fn wait_any(
    fds: &[(BorrowedFd<'_>, PollFlags)],
    timeout: Option<Duration>,
) -> Result<Vec<usize>, ContainError> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let mut pfds: Vec<PollFd<'_>> = fds.iter().map(|(fd, ev)| PollFd::new(fd, *ev)).collect();
        let ts = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            }
        });
        match poll(&mut pfds, ts.as_ref()) {
            Ok(0) => return Ok(Vec::new()),
            Ok(_) => {
                return Ok(pfds
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| !p.revents().is_empty())
                    .map(|(i, _)| i)
                    .collect())
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(ContainError::sys("poll", e)),
        }
    }
}

/// Reap the given pids if they are zombie children of ours (orphans that were
/// reparented to us as subreaper). Pids that are not our children are skipped.
pub fn reap_if_our_zombies(pids: impl IntoIterator<Item = i32>) -> Result<usize, ContainError> {
    let mut n = 0;
    // Held throughout: a child spawned meanwhile is claimed before it can be
    // looked at here ([`spawn_claimed`]).
    let claimed_now = claimed();
    for pid in pids {
        if pid <= 0 || claimed_now.contains(&pid) {
            continue;
        }
        match waitpid(Some(to_pid(pid)), WaitOptions::NOHANG) {
            Ok(Some(_)) => n += 1,
            Ok(None) | Err(Errno::CHILD) => {}
            Err(e) => return Err(ContainError::sys("waitpid", e)),
        }
    }
    Ok(n)
}

/// Reap every exited child of ours that no waiter has claimed. When nothing is
/// claimed (the end of a run), `waitpid(-1, WNOHANG)` does it without looking
/// at other processes; otherwise a /proc scan finds the unclaimed zombies.
pub fn reap_unclaimed_zombies() -> Result<usize, ContainError> {
    if !claimed().is_empty() {
        return sweep_zombie_children();
    }
    let mut n = 0;
    loop {
        // Any child (wait4(-1)): rustix's `waitpid(None)` is wait4(0), only
        // the children in our own process group — never a suite's orphan.
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some(_)) => n += 1,
            Ok(None) | Err(Errno::CHILD) => return Ok(n),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(ContainError::sys("waitpid", e)),
        }
    }
}

/// Reap every zombie child of ours that no waiter has claimed. Our children
/// are read from `/proc/self/task/*/children` (each thread lists the ones it
/// forked, or that were reparented to it), not from a scan of every process.
pub fn sweep_zombie_children() -> Result<usize, ContainError> {
    let children = reap_probe::own_children()?;
    // reap_if_our_zombies skips the claimed and the live (WNOHANG).
    reap_if_our_zombies(children)
}

/// The session id of the runner as this pid namespace sees it.
///
/// `0` when the session leader lives outside our pid namespace (a container
/// started from a shell on the host, `unshare --pid`): the kernel then reports
/// 0 both here and in `/proc/PID/stat` of every process still in that session,
/// so comparisons stay meaningful. (rustix's `getsid` asserts a positive id.)
pub fn own_session_id() -> i32 {
    // SAFETY: getsid(0) has no preconditions and only reads kernel state.
    let sid = unsafe { libc::getsid(0) };
    // getsid(0) on ourselves cannot fail (ESRCH/EPERM concern other pids).
    sid.max(0)
}

/// Make this process the child subreaper: orphans of our descendants are
/// reparented to us, not to PID 1, so we can find and reap them.
pub fn become_subreaper() -> Result<(), ContainError> {
    let me = Pid::from_raw(std::process::id() as i32).expect("own pid is positive");
    rustix::process::set_child_subreaper(Some(me))
        .map_err(|e| ContainError::sys("prctl(PR_SET_CHILD_SUBREAPER)", e))
}

/// The columns of the terminal on `fd` (TIOCGWINSZ), when it is one and
/// reports a width.
pub fn terminal_columns(fd: i32) -> Option<usize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we own.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some(ws.ws_col as usize)
}
