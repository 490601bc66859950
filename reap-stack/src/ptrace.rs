//! Stopping threads with `PTRACE_SEIZE` + `PTRACE_INTERRUPT` and letting them go again.
//!
//! [`Seized`] is the guard: every thread it seized is detached in its `Drop`, on every path
//! (an error midway, a panic while unwinding). If the tracer itself dies mid-capture, the
//! kernel detaches its tracees and resumes them (`exit_ptrace`): nothing is left traced then
//! either.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Threads seized that never stopped, so could not be detached (tids): still traced by this
/// process. Process-global because tracing is: once such a thread exits it stays a zombie until
/// a thread of the tracer waits for it, and its process cannot be reaped before that; see
/// [`release_stragglers`].
static STRAGGLERS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

fn stragglers() -> std::sync::MutexGuard<'static, Vec<i32>> {
    // A poisoned list is still a valid list of tids.
    STRAGGLERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Let go of the threads a capture could not detach (they never stopped): wait up to `wait`
/// for each to stop (then detach it) or exit (then reap it). Call it after the processes were
/// killed, before waiting for them: a traced thread that exited holds its process until its
/// tracer reaps it. Returns what is still traced, one sentence each.
pub fn release_stragglers(wait: Duration) -> Vec<String> {
    let tids = std::mem::take(&mut *stragglers());
    let deadline = Instant::now() + wait;
    let mut left = Vec::new();
    for tid in tids {
        let mut guard = Seized {
            threads: vec![(tid, Stop::Pending)],
        };
        match guard.wait_stopped(tid, deadline) {
            Ok(_) => {
                if let Some(f) = guard.release().into_iter().next() {
                    left.push(f);
                }
            }
            Err(e) => {
                guard.threads.clear();
                stragglers().push(tid);
                left.push(format!("thread {tid}: {e}; still traced"));
            }
        }
    }
    left
}

/// How long the threads still to stop get, all together, before they are detached.
const LAST_STOP_WAIT: Duration = Duration::from_millis(100);

/// How a seized thread is stopped, as far as we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Interrupted, its stop not reported yet.
    Pending,
    /// In a ptrace-stop; `Some(sig)`: a signal-delivery-stop, whose signal is passed on at
    /// the detach (else the tracee would lose it).
    Stopped(Option<Signal>),
    /// Gone (exited while we looked): nothing to detach.
    Gone,
}

/// The threads of one process that we seized.
pub struct Seized {
    threads: Vec<(i32, Stop)>,
}

/// Why a thread could not be seized.
pub fn seize_error(e: Errno) -> String {
    match e {
        Errno::EPERM => "the kernel refused to trace it (EPERM: another user's process without \
                         CAP_SYS_PTRACE, Yama ptrace_scope 2 or 3, or a tracer already attached)"
            .into(),
        Errno::ESRCH => "it exited".into(),
        e => format!("PTRACE_SEIZE failed: {e}"),
    }
}

impl Default for Seized {
    fn default() -> Seized {
        Seized::new()
    }
}

impl Seized {
    pub fn new() -> Seized {
        Seized {
            threads: Vec::new(),
        }
    }

    /// Seize `tid` and ask it to stop. On error it is not ours (nothing to undo).
    pub fn seize(&mut self, tid: i32) -> Result<(), String> {
        let pid = Pid::from_raw(tid);
        ptrace::seize(pid, ptrace::Options::empty()).map_err(seize_error)?;
        // From here the guard owns it: a failed interrupt still needs the detach.
        self.threads.push((tid, Stop::Pending));
        if let Err(e) = ptrace::interrupt(pid) {
            return Err(format!("PTRACE_INTERRUPT failed: {e}"));
        }
        Ok(())
    }

    /// Wait until `tid` is in a ptrace-stop, or `deadline`. `Ok(false)`: it exited.
    ///
    /// No event tells a tracer that one tracee stopped except `SIGCHLD`, which belongs to the
    /// runner: so `waitpid(tid, __WALL | WNOHANG)`, yielding between tries (a thread stops
    /// within microseconds of the interrupt unless it is in uninterruptible sleep).
    pub fn wait_stopped(&mut self, tid: i32, deadline: Instant) -> Result<bool, String> {
        let Some(k) = self.threads.iter().position(|(t, _)| *t == tid) else {
            return Err("not seized".into());
        };
        let mut pause = Duration::from_micros(20);
        loop {
            let flags = WaitPidFlag::__WALL | WaitPidFlag::WNOHANG;
            match waitpid(Pid::from_raw(tid), Some(flags)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(WaitStatus::PtraceEvent(..)) | Ok(WaitStatus::PtraceSyscall(_)) => {
                    self.threads[k].1 = Stop::Stopped(None);
                    return Ok(true);
                }
                Ok(WaitStatus::Stopped(_, sig)) => {
                    self.threads[k].1 = Stop::Stopped(Some(sig));
                    return Ok(true);
                }
                Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) => {
                    self.threads[k].1 = Stop::Gone;
                    return Ok(false);
                }
                Ok(WaitStatus::Continued(_)) => {}
                Err(Errno::EINTR) => {}
                // Another waiter of the runner took the stop report: the state tells.
                Err(Errno::ECHILD) => {
                    if traced_stop(tid) {
                        self.threads[k].1 = Stop::Stopped(None);
                        return Ok(true);
                    }
                    if !std::path::Path::new(&format!("/proc/{tid}")).exists() {
                        self.threads[k].1 = Stop::Gone;
                        return Ok(false);
                    }
                }
                Err(e) => return Err(format!("waitpid: {e}")),
            }
            if Instant::now() >= deadline {
                return Err("it did not stop in time (uninterruptible sleep?)".into());
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }

    /// Detach every thread (also done on drop). Returns the threads that could not be
    /// detached, with why.
    pub fn release(&mut self) -> Vec<String> {
        let mut failed = Vec::new();
        // PTRACE_DETACH needs a ptrace-stop: a thread whose stop has not come yet gets one last
        // moment to land, shared by all of them.
        let deadline = Instant::now() + LAST_STOP_WAIT;
        for (tid, stop) in std::mem::take(&mut self.threads) {
            if let Err(e) = detach(tid, stop, deadline) {
                failed.push(format!("thread {tid}: {e}"));
            }
        }
        failed
    }
}

impl Drop for Seized {
    fn drop(&mut self) {
        for failure in self.release() {
            eprintln!("reap-stack: warning: could not detach {failure}");
        }
    }
}

/// Let one thread go, passing on the signal of a signal-delivery-stop.
fn detach(tid: i32, stop: Stop, deadline: Instant) -> Result<(), String> {
    let pid = Pid::from_raw(tid);
    let sig = match stop {
        Stop::Gone => return Ok(()),
        Stop::Stopped(sig) => sig,
        Stop::Pending => {
            let mut guard = Seized {
                threads: vec![(tid, Stop::Pending)],
            };
            let waited = guard.wait_stopped(tid, deadline);
            let stop = guard.threads[0].1;
            guard.threads.clear();
            match waited {
                Ok(false) => return Ok(()),
                Ok(true) => match stop {
                    Stop::Stopped(sig) => sig,
                    _ => None,
                },
                Err(e) => {
                    stragglers().push(tid);
                    return Err(format!(
                        "{e}; it stays traced until it stops, exits or the tracer exits"
                    ));
                }
            }
        }
    };
    match ptrace::detach(pid, sig) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(format!("PTRACE_DETACH: {e}")),
    }
}

/// Is `tid` in a tracing stop (`t` in /proc/TID/stat)?
fn traced_stop(tid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{tid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| s[i + 1..].trim_start().starts_with('t'))
        })
        .unwrap_or(false)
}
