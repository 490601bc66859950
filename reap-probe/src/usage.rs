//! Cheap probes of one process for a caller that samples it repeatedly (a CPU-time sampler):
//! the CPU time it has used, its children, its executable.
//!
//! Each opens the process's `/proc/PID` directory once and reads relative to it, like
//! [`snapshot`](crate::snapshot), so a reaped process is [`ProbeError::Gone`], never another one
//! that got its pid.

use procfs::process::Stat;
use procfs::FromRead;

use crate::process::{open, proc_path, read_relative, readlink_relative, still_there};
use crate::ProbeError;

/// CPU time the process has used so far, user + system, all its threads (`utime + stime` of
/// `/proc/PID/stat`), in clock ticks; [`ticks_to_ms`](crate::ticks_to_ms) converts.
pub fn cpu_ticks(pid: i32) -> Result<u64, ProbeError> {
    let proc = open(pid)?;
    let stat = read_relative(&proc, "stat", 512)?;
    let stat = Stat::from_read(stat.as_slice())
        .map_err(|e| ProbeError::from_procfs(pid, proc_path(pid, "stat"), e))?;
    Ok(stat.utime + stat.stime)
}

/// The children of every thread of the process (`/proc/PID/task/TID/children`), ascending.
///
/// A thread that ends while they are read is left out; the list needs a kernel with
/// `CONFIG_PROC_CHILDREN` (every common distribution's).
pub fn children(pid: i32) -> Result<Vec<i32>, ProbeError> {
    let (mut out, _whole) = crate::subtree::thread_children(pid)?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The executable of the process (`/proc/PID/exe`; `... (deleted)` if replaced since).
///
/// `Ok(None)` when it has none or it may not be read: a zombie, a kernel thread, another user's
/// process. Only the process being gone is an error.
pub fn exe(pid: i32) -> Result<Option<String>, ProbeError> {
    let proc = open(pid)?;
    match readlink_relative(&proc, "exe") {
        Ok(target) => Ok(Some(target)),
        Err(ProbeError::Gone(pid)) if !still_there(&proc) => Err(ProbeError::Gone(pid)),
        Err(ProbeError::Gone(_) | ProbeError::PermissionDenied { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The CPUs this process may use (`std::thread::available_parallelism`, at
/// least 1), read once per process: each read parses the cgroup quota files
/// and costs more than some of the scans it sizes.
pub fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS
        .get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
}
