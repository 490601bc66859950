//! Read-only observation of processes through /proc, for `cargo-reap`.
//!
//! This crate only *looks*: it never sends signals, never writes to /proc, never changes
//! anything. It answers "which processes exist, how are they related, and which test suite do
//! they belong to" so that the caller can decide what to reap.
//!
//! - [`snapshot`] one process, [`scan`] them all, into [`ProcessInfo`] values;
//! - [`read_tag`] and [`start_time`] are cheap single-purpose probes (attribution to a suite via
//!   the [`TAG_VAR`] environment variable, and pid-reuse detection);
//! - [`ProcessTable`] indexes a scan by parent and renders subtrees;
//! - [`cpu_ticks`], [`children`] and [`exe`] are cheap probes for a sampler of one process;
//! - [`forensics`] and [`forensics_tree`] explain why a (leaked, wedged) process is still alive:
//!   wait channel, syscall, threads, signal dispositions, every descriptor with pipe directions
//!   and socket states, addresses and queues, and [`Finding`]s in words by the rules of
//!   [`Rule`] (see [`FindingContext`] for what the caller adds).
//!
//! All snapshots are pid-reuse safe: see [`snapshot`] for how.

// Linux only, said at compile time rather than as a wall of unresolved imports.
#[cfg(not(target_os = "linux"))]
compile_error!("reap-probe supports Linux only: it reads processes through procfs (cargo-reap also needs pidfd, cgroup v2 and the child subreaper)");

// `cli` names this crate `reap_probe`, as the binary does.
extern crate self as reap_probe;

/// The `reap-probe` command line (also `cargo reap probe`): not a stable API.
#[doc(hidden)]
pub mod cli;
mod clock;
mod epoch;
mod error;
mod fds;
mod findings;
mod forensics;
mod net;
mod process;
mod report;
mod scan;
mod subtree;
mod syscall;
mod tree;
mod usage;

pub use clock::{boottime_ms, boottime_ticks, ticks_to_ms};
pub use epoch::{Born, Epoch};
pub use error::ProbeError;
pub use fds::{FdInfo, FdKind, FdSummary};
pub use findings::{
    evaluate, unread_bytes, Finding, FindingContext, Rule, UnknownRule, SIGTERM_BIT,
};
pub use forensics::{forensics, forensics_tree};
pub use process::{read_tag, snapshot, start_time, zombie_status};
pub use report::render_forensics_tree;
pub use scan::{scan, scan_born_since, scan_since};
pub use subtree::{own_children, subtree, Subtree};
pub use tree::{format_age, ProcessTable};
pub use usage::{children, cpu_ticks, cpus, exe};

/// Environment variable that tags a process with the test suite that (transitively) spawned it.
///
/// cargo-reap sets it on each test binary; children inherit it unless they scrub their
/// environment. Its value is read from `/proc/PID/environ`, i.e. the environment the process was
/// *started* with (later `setenv` calls inside the process are invisible).
pub const TAG_VAR: &str = "CARGO_REAP_SUITE";

/// What the kernel says about one process at one moment.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id (thread-group id).
    pub pid: i32,
    /// Parent process id (0 for the roots, pid 1 and kthreadd).
    pub ppid: i32,
    /// Process group id.
    pub pgid: i32,
    /// Session id.
    pub sid: i32,
    /// State letter from `/proc/PID/stat`: `R` running, `S` sleeping, `D` uninterruptible,
    /// `T` stopped, `t` traced, `Z` zombie, `X` dead, `I` idle kernel thread, ...
    pub state: char,
    /// Command name (`comm`, at most 15 bytes, lossy UTF-8).
    pub comm: String,
    /// Arguments from `/proc/PID/cmdline`, each lossily decoded as UTF-8. Empty for kernel
    /// threads and zombies (and exiting processes), whose memory is gone.
    pub cmdline: Vec<String>,
    /// Start time, field 22 of `/proc/PID/stat`: clock ticks since boot. Together with `pid` it
    /// identifies the process across pid reuse (see [`start_time`]).
    pub start_time: u64,
    /// Age in milliseconds at the time of the snapshot (`CLOCK_BOOTTIME` now minus start time;
    /// accurate to one clock tick, normally 10 ms).
    pub age_ms: u64,
    /// Number of threads.
    pub threads: i64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// Value of [`TAG_VAR`] in the process's initial environment. Only read with
    /// [`ScanOptions::environ_tag`]; `None` when not requested, not set, or not readable
    /// (another user's process, kernel thread, zombie).
    pub tag: Option<String>,
    /// The cgroup v2 path (the `0::` line of `/proc/PID/cgroup`), e.g. `/user.slice/...`. Only
    /// read with [`ScanOptions::cgroup`]; `None` when not requested or on a v1-only system.
    pub cgroup: Option<String>,
}

impl ProcessInfo {
    /// True for a zombie (`Z`) or dead (`X`) process: it has exited and only waits to be reaped
    /// by its parent. It cannot be killed, only reaped.
    ///
    /// Not for a process whose main thread exited while other threads run on: /proc shows it as
    /// `Z` too (the state is the main thread's), but it is alive and SIGKILL ends it.
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X') && !self.main_thread_exited()
    }

    /// A live process whose main thread has exited (state `Z`, other threads running).
    pub fn main_thread_exited(&self) -> bool {
        main_thread_exited(self.state, self.threads)
    }
}

/// Everything observed about one process, and what it means: what [`forensics`] collects (the
/// rules of [`Rule`] judge it, [`Forensics::render`] puts it in words).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Forensics {
    /// The snapshot, with the tag and the cgroup.
    pub process: ProcessInfo,
    /// The executable (`/proc/PID/exe`; `... (deleted)` if replaced since). `None` for zombies,
    /// kernel threads, and when not permitted.
    pub exe: Option<String>,
    /// The kernel function the process sleeps in (`/proc/PID/wchan`), e.g. `anon_pipe_read`,
    /// `do_wait`, `hrtimer_nanosleep`, `do_signal_stop`. `None` when running or not readable.
    pub wchan: Option<String>,
    /// The system call it is blocked in (`/proc/PID/syscall`): `read(fd=3)`, `wait4(pid=-1)`,
    /// `epoll_wait(epfd=5)`, `clock_nanosleep`, ... or `syscall N` for others; `running` when on
    /// a CPU. `None` when not in a syscall (zombie) or not readable.
    pub syscall: Option<String>,
    /// Every thread, the main thread (tid == pid) included, in tid order.
    pub threads: Vec<ThreadInfo>,
    /// Signals ignored (`SigIgn` mask of `/proc/PID/status`; bit N-1 is signal N).
    pub sig_ignored: u64,
    /// Signals caught by a handler (`SigCgt`).
    pub sig_caught: u64,
    /// Open descriptors, ascending.
    pub fds: Vec<FdInfo>,
    /// Counts of `fds` by kind.
    pub fd_summary: FdSummary,
    /// What the rules found, in the order of [`Rule::ALL`](crate::Rule::ALL).
    pub findings: Vec<Finding>,
    /// Files of the process that exist but could not be read, with the reason (another user's
    /// process: `fd`, `syscall`, `exe` need ptrace access). Empty normally; when not, empty
    /// fields above mean "unknown", not "none".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
}

/// One thread of a process.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ThreadInfo {
    /// Thread id (the main thread's is the pid).
    pub tid: i32,
    /// Thread name (libtest names each test's thread after the test, cut to 15 bytes).
    pub comm: String,
    /// State letter, as [`ProcessInfo::state`].
    pub state: char,
    /// Kernel function the thread sleeps in, as [`Forensics::wchan`].
    pub wchan: Option<String>,
}

/// State `Z`/`X` is the main thread's: with other threads left, the process is alive.
pub(crate) fn main_thread_exited(state: char, threads: i64) -> bool {
    matches!(state, 'Z' | 'X') && threads > 1
}

/// Which optional (and comparatively costly) files to read for each process.
///
/// `stat` and `cmdline` are always read. The default reads nothing optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// Read `/proc/PID/environ` to fill [`ProcessInfo::tag`].
    pub environ_tag: bool,
    /// Read `/proc/PID/cgroup` to fill [`ProcessInfo::cgroup`].
    pub cgroup: bool,
}

impl ScanOptions {
    /// Read every optional file.
    pub const ALL: ScanOptions = ScanOptions {
        environ_tag: true,
        cgroup: true,
    };
}

#[cfg(test)]
mod forensics_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
