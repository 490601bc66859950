//! SIGINT, SIGTERM and SIGHUP: stop starting suites, TERM → grace → KILL the
//! running one, still reap survivors, write the partial report (marked
//! interrupted) and exit 130 / 143 / 129. A second SIGINT or SIGTERM skips
//! the grace, also while it is being waited out.
//!
//! The signals are blocked in every thread and read from a signalfd by one
//! thread, which then makes a wake-up pipe readable; supervision includes that
//! pipe in the same poll(2) that waits for the suite, so an interrupt is an
//! event, not something polled for.
//!
//! The state behind this ([`Interrupts`]) is the one process-global of the
//! runner's signal handling, and it is inherent: a signal is sent to the
//! process, not to a part of the run, and the thread that reads it must reach
//! the state whoever is running. [`install`] returns it as a value: pass that
//! on where you can; [`get`] is for code that cannot be handed it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use rustix::pipe::{pipe_with, PipeFlags};

use crate::error::ContainError;

pub struct Interrupts {
    wake_r: OwnedFd,
    wake_w: OwnedFd,
    /// Readable once a second SIGINT or SIGTERM arrived: no more grace.
    hard_r: OwnedFd,
    hard_w: OwnedFd,
    signal: AtomicI32,
    hard: AtomicBool,
    /// The child that gets every interrupt forwarded while it runs (cargo
    /// while it builds), by pidfd: never a recycled pid.
    forward: Mutex<Option<OwnedFd>>,
}

/// The only process-global here (see the module documentation).
static INTERRUPTS: OnceLock<Interrupts> = OnceLock::new();

/// While alive, interrupts are forwarded to the child given to
/// [`forward_to`]; dropping it stops that.
pub struct Forwarding(Option<&'static Interrupts>);

impl Drop for Forwarding {
    fn drop(&mut self) {
        if let Some(state) = self.0 {
            *state.forward.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

/// The read end of a pipe whose only write end the guardian holds (the
/// cargo-reap process that started this runner, see
/// [`crate::lifeline::split_off_runner`]), and the guardian's pid.
pub struct GuardianPipe {
    pub fd: OwnedFd,
    pub pid: i32,
}

/// Forward SIGINT / SIGTERM / SIGHUP to `child` from now on (a signal sent
/// to cargo-reap alone, e.g. by a CI timeout, must stop the build too; a
/// Ctrl-C at the terminal reaches both anyway). A signal that arrived
/// before is forwarded at once.
pub fn forward_to(
    state: &'static Interrupts,
    child: &std::process::Child,
) -> Result<Forwarding, ContainError> {
    let pid = rustix::process::Pid::from_raw(child.id() as i32)
        .ok_or_else(|| ContainError::sys("pidfd_open", rustix::io::Errno::SRCH))?;
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        .map_err(|e| ContainError::sys("pidfd_open on the build", e))?;
    let mut slot = state.forward.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(sig) = state.signal() {
        forward(&fd, sig);
    }
    *slot = Some(fd);
    Ok(Forwarding(Some(state)))
}

fn forward(fd: &OwnedFd, signo: i32) {
    let Some(sig) = rustix::process::Signal::from_named_raw(signo) else {
        return;
    };
    match rustix::process::pidfd_send_signal(fd, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(e) => eprintln!("cargo-reap: warning: cannot pass signal {signo} on to cargo: {e}"),
    }
}

/// Install the handling (idempotent). Must run before other threads start,
/// so that they inherit the blocked mask.
pub fn install() -> Result<&'static Interrupts, ContainError> {
    install_watching(None)
}

/// [`install`], and with `guardian`, treat the end of the guardian (EOF on
/// its pipe) as an interrupt that skips the grace: the process a user or CI
/// started was killed, so the run stops now (its suites killed, survivors
/// reaped, a partial report, exit 137). A later [`install`] returns the
/// same handling.
pub fn install_watching(
    guardian: Option<GuardianPipe>,
) -> Result<&'static Interrupts, ContainError> {
    if let Some(i) = INTERRUPTS.get() {
        return Ok(i);
    }
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().map_err(|e| ContainError::Sys {
        what: "blocking SIGINT/SIGTERM/SIGHUP",
        source: e.into(),
    })?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).map_err(|e| ContainError::Sys {
        what: "signalfd",
        source: e.into(),
    })?;
    let (wake_r, wake_w) =
        pipe_with(PipeFlags::CLOEXEC).map_err(|e| ContainError::sys("pipe2", e))?;
    let (hard_r, hard_w) =
        pipe_with(PipeFlags::CLOEXEC).map_err(|e| ContainError::sys("pipe2", e))?;
    let interrupts = INTERRUPTS.get_or_init(|| Interrupts {
        wake_r,
        wake_w,
        hard_r,
        hard_w,
        signal: AtomicI32::new(0),
        hard: AtomicBool::new(false),
        forward: Mutex::new(None),
    });
    // One thread for both: interrupts arrive rarely, and every run (a
    // target runner's call per test binary) pays for each thread started.
    std::thread::Builder::new()
        .name("cargo-reap-signals".into())
        .spawn(move || watch_thread(&sfd, guardian))
        .map_err(|e| ContainError::Sys {
            what: "starting the signal thread",
            source: e,
        })?;
    Ok(interrupts)
}

/// Until interrupts can no longer be handled: each signal read from `sfd`,
/// and the end of the guardian (EOF on its pipe), delivered.
fn watch_thread(sfd: &SignalFd, mut guardian: Option<GuardianPipe>) {
    use rustix::event::PollFlags;
    loop {
        let mut fds = vec![(sfd.as_fd(), PollFlags::IN)];
        fds.extend(guardian.as_ref().map(|g| (g.fd.as_fd(), PollFlags::IN)));
        let ready = match crate::sys::wait_any(&fds, None) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("cargo-reap: error: waiting for signals failed ({e}); interrupts will not be handled");
                return;
            }
        };
        if ready.contains(&1) && guardian.as_ref().is_some_and(guardian_gone) {
            guardian = None;
        }
        if ready.contains(&0) && !read_signal(sfd) {
            return;
        }
    }
}

/// Read what the guardian's pipe holds; true once it is gone (EOF) or can
/// no longer be watched: then the run stops at once.
fn guardian_gone(g: &GuardianPipe) -> bool {
    let mut buf = [0u8; 16];
    match rustix::io::read(&g.fd, &mut buf) {
        Ok(0) => {}
        Ok(_) | Err(rustix::io::Errno::INTR) => return false,
        // Cannot be watched any more: as if it were gone.
        Err(e) => eprintln!(
            "cargo-reap: warning: watching the guardian (pid {}): {e}",
            g.pid
        ),
    }
    eprintln!(
        "\ncargo-reap: the cargo-reap process that started this run (pid {}) is gone (killed?): stopping now — suites killed, survivors reaped, partial report",
        g.pid
    );
    deliver(Signal::SIGKILL as i32, true);
    true
}

/// Deliver the signal `sfd` holds; false when interrupts cannot be handled
/// (any more).
fn read_signal(sfd: &SignalFd) -> bool {
    match sfd.read_signal() {
        Ok(Some(info)) => deliver(info.ssi_signo as i32, false),
        Ok(None) | Err(nix::errno::Errno::EINTR) => true,
        Err(e) => {
            eprintln!(
                "cargo-reap: error: reading signals failed ({e}); interrupts will not be handled"
            );
            false
        }
    }
}

/// Record interrupt `signo` (`hard`: skip the grace at once) and wake the
/// supervisor; false when interrupts are not installed.
fn deliver(signo: i32, hard: bool) -> bool {
    let Some(state) = INTERRUPTS.get() else {
        return false;
    };
    {
        let name = Signal::try_from(signo)
            .map(|s| s.as_str())
            .unwrap_or("signal");
        let first = state
            .signal
            .compare_exchange(0, signo, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        let second = !first && (signo == libc_sigint() || signo == Signal::SIGTERM as i32);
        if (hard || second) && !state.hard.swap(true, Ordering::SeqCst) {
            // Wakes a wait for the suite to end within its grace.
            if let Err(e) = rustix::io::write(&state.hard_w, b"!") {
                eprintln!("cargo-reap: error: cannot pass the second interrupt on: {e}");
            }
        }
        if let Some(fd) = state
            .forward
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            forward(fd, signo);
        }
        // Wake the supervisor first (printing may wait for the terminal).
        // Level-triggered: the pipe stays readable from now on.
        if let Err(e) = rustix::io::write(&state.wake_w, b"!") {
            eprintln!("cargo-reap: error: cannot signal the interrupt to the supervisor: {e}");
        }
        if hard && first {
            // Announced by the caller.
        } else if first {
            eprintln!(
                "\ncargo-reap: {name}: stopping — no new suites; the running one: its stacks, then SIGTERM, then SIGKILL after the grace; survivors are still reaped (Ctrl-C again to skip the stacks and the grace)"
            );
        } else if second {
            eprintln!("\ncargo-reap: second interrupt: killing everything now");
        }
    }
    true
}

fn libc_sigint() -> i32 {
    Signal::SIGINT as i32
}

impl Interrupts {
    /// Readable once an interrupt arrived: poll it beside what you wait for.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake_r.as_fd()
    }

    /// The first interrupting signal, if any.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// A second Ctrl-C (or SIGTERM): no grace.
    pub fn hard(&self) -> bool {
        self.hard.load(Ordering::SeqCst)
    }

    /// Readable once [`Interrupts::hard`] holds: poll it beside a wait
    /// within the grace, so that it ends at once.
    pub fn hard_fd(&self) -> BorrowedFd<'_> {
        self.hard_r.as_fd()
    }
}

/// Exit code for an interrupted run: 128 + signal (130 SIGINT, 143 SIGTERM, 129 SIGHUP).
pub use reap_report::exit::for_signal as exit_code;
