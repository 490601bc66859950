//! SIGINT, SIGTERM and SIGHUP: stop starting suites, TERM → grace → KILL the
//! running one, still reap survivors, write the partial report (marked
//! interrupted) and exit 130 / 143 / 129. A second SIGINT skips the grace.
//!
//! The signals are blocked in every thread and read from a signalfd by one
//! thread, which then makes a wake-up pipe readable; supervision includes that
//! pipe in the same poll(2) that waits for the suite, so an interrupt is an
//! event, not something polled for.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use rustix::pipe::{pipe_with, PipeFlags};

use crate::error::ContainError;

pub struct Interrupts {
    wake_r: OwnedFd,
    signal: AtomicI32,
    hard: AtomicBool,
}

static INTERRUPTS: OnceLock<Interrupts> = OnceLock::new();

/// Install the handling (idempotent). Must run before other threads start,
/// so that they inherit the blocked mask.
pub fn install() -> Result<&'static Interrupts, ContainError> {
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
    let interrupts = INTERRUPTS.get_or_init(|| Interrupts {
        wake_r,
        signal: AtomicI32::new(0),
        hard: AtomicBool::new(false),
    });
    std::thread::Builder::new()
        .name("cargo-reap-signals".into())
        .spawn(move || signal_thread(sfd, wake_w))
        .map_err(|e| ContainError::Sys {
            what: "starting the signal thread",
            source: e,
        })?;
    Ok(interrupts)
}

fn signal_thread(sfd: SignalFd, wake_w: OwnedFd) {
    loop {
        let info = match sfd.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("cargo-reap: error: reading signals failed ({e}); interrupts will not be handled");
                return;
            }
        };
        let Some(state) = INTERRUPTS.get() else {
            return;
        };
        let signo = info.ssi_signo as i32;
        let name = Signal::try_from(signo)
            .map(|s| s.as_str())
            .unwrap_or("signal");
        let first = state
            .signal
            .compare_exchange(0, signo, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if !first && signo == libc_sigint() {
            state.hard.store(true, Ordering::SeqCst);
        }
        // Wake the supervisor first (printing may wait for the terminal).
        // Level-triggered: the pipe stays readable from now on.
        if let Err(e) = rustix::io::write(&wake_w, b"!") {
            eprintln!("cargo-reap: error: cannot signal the interrupt to the supervisor: {e}");
        }
        if first {
            eprintln!(
                "\ncargo-reap: {name}: stopping — no new suites; the running one gets SIGTERM, then SIGKILL after the grace; survivors are still reaped (Ctrl-C again to skip the grace)"
            );
        } else if signo == libc_sigint() {
            eprintln!("\ncargo-reap: second interrupt: killing everything now");
        }
    }
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

    /// A second Ctrl-C: no grace.
    pub fn hard(&self) -> bool {
        self.hard.load(Ordering::SeqCst)
    }
}

/// The installed interrupts, if [`install`] ran.
pub fn get() -> Option<&'static Interrupts> {
    INTERRUPTS.get()
}

/// Exit code for an interrupted run: 128 + signal (130 SIGINT, 143 SIGTERM, 129 SIGHUP).
pub fn exit_code(signal: i32) -> i32 {
    128 + signal
}
