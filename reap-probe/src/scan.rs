//! Snapshots of every process on the machine.

use std::io;
use std::path::Path;

use crate::process::{open, snapshot_filtered};
use crate::{Born, Epoch, ProbeError, ProcessInfo, ScanOptions};

/// Snapshot every process on the machine (every thread-group leader listed in /proc), in
/// ascending pid order.
///
/// Per process this reads exactly what [`snapshot`](crate::snapshot) reads for the same options,
/// with the same pid-reuse safety. Processes that vanish mid-scan are skipped silently, and so
/// are processes whose `stat` we may not read (hidepid). Failure to list /proc itself, and any
/// unexpected I/O or parse failure on a process (for example running out of file descriptors),
/// is an error: a leak detector should not silently miss processes.
///
/// On a machine with several cores and many processes, the work is split over up to 4 threads.
/// The scan is not atomic: a process started while it runs may or may not be listed.
pub fn scan(opts: ScanOptions) -> Result<Vec<ProcessInfo>, ProbeError> {
    scan_since(opts, 0)
}

/// Like [`scan`], but only processes whose [`start_time`](ProcessInfo::start_time) is at least
/// `min_start_time` (clock ticks since boot).
///
/// Much cheaper when most processes are older: for those only `stat` is read, never `cmdline`,
/// `environ` or `cgroup`. A process leaked by a test suite necessarily started after the suite
/// did, so a caller can record [`boottime_ticks`](crate::boottime_ticks) before spawning the
/// suite and pass it here.
pub fn scan_since(opts: ScanOptions, min_start_time: u64) -> Result<Vec<ProcessInfo>, ProbeError> {
    snapshot_listed(list_pids()?, opts, min_start_time)
}

/// Like [`scan_since`]`(opts, epoch.ticks)`, but only the pids a process
/// born since the epoch can have are read at all — `born`, from
/// [`Epoch::born_since`] (the pid allocator's window where its counters prove
/// it complete, every pid otherwise). With a quiet allocator this is O(the
/// processes started since), not O(the machine): a window with fewer pids
/// than tasks alive is read pid by pid (a pid that is free, or a thread's,
/// is skipped), without listing /proc at all.
pub fn scan_born_since(
    opts: ScanOptions,
    epoch: &Epoch,
    born: &Born,
) -> Result<Vec<ProcessInfo>, ProbeError> {
    let pids = match born.window_pids() {
        Some(window) => leaders(window)?,
        None => {
            let mut pids = list_pids()?;
            pids.retain(|&pid| born.may_have(pid));
            pids
        }
    };
    snapshot_listed(pids, opts, epoch.ticks)
}

/// The pids among `pids` that are processes now (thread-group leaders, as
/// /proc lists them): a free pid has no `/proc/PID`, and a thread's id has
/// one whose `status` names another `Tgid`.
fn leaders(pids: Vec<i32>) -> Result<Vec<i32>, ProbeError> {
    let mut out = Vec::new();
    for pid in pids {
        let path = format!("/proc/{pid}/status");
        match std::fs::read_to_string(&path) {
            Ok(status) => {
                let tgid = status
                    .lines()
                    .find_map(|l| l.strip_prefix("Tgid:"))
                    .and_then(|v| v.trim().parse::<i32>().ok());
                if tgid == Some(pid) {
                    out.push(pid);
                }
            }
            Err(e) => match ProbeError::from_io(pid, path.into(), e) {
                ProbeError::Gone(_) | ProbeError::PermissionDenied { .. } => {}
                e => return Err(e),
            },
        }
    }
    Ok(out)
}

/// Snapshot `pids` (ascending), over several threads where they are many.
fn snapshot_listed(
    pids: Vec<i32>,
    opts: ScanOptions,
    min_start_time: u64,
) -> Result<Vec<ProcessInfo>, ProbeError> {
    // The work is almost all kernel time spent per process, so it splits cleanly over threads;
    // contiguous chunks keep the pid order when concatenated.
    let threads = worker_count(pids.len());
    if threads <= 1 {
        return snapshot_all(&pids, opts, min_start_time);
    }
    let chunk = pids.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = pids
            .chunks(chunk)
            .map(|pids| scope.spawn(move || snapshot_all(pids, opts, min_start_time)))
            .collect();
        let mut out = Vec::with_capacity(pids.len());
        for worker in workers {
            match worker.join() {
                Ok(part) => out.extend(part?),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(out)
    })
}

/// The numeric entries of /proc, ascending.
fn list_pids() -> Result<Vec<i32>, ProbeError> {
    let proc_dir = Path::new("/proc");
    let list_error = |source: io::Error| ProbeError::Io {
        path: proc_dir.to_path_buf(),
        source,
    };
    let mut pids: Vec<i32> = Vec::with_capacity(1024);
    for entry in std::fs::read_dir(proc_dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        // Non-numeric entries are the kernel's own files (self, sys, meminfo, ...).
        let name = entry.file_name();
        if let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

/// Below this many processes per thread, a thread costs more than it saves.
const PIDS_PER_WORKER: usize = 256;
/// More threads than this only contend in the kernel.
const MAX_WORKERS: usize = 4;

fn worker_count(pids: usize) -> usize {
    let cores = crate::cpus();
    cores.min(MAX_WORKERS).min(pids / PIDS_PER_WORKER).max(1)
}

/// Snapshot `pids` in order, skipping the ones that are gone, hidden or too old.
fn snapshot_all(
    pids: &[i32],
    opts: ScanOptions,
    min_start_time: u64,
) -> Result<Vec<ProcessInfo>, ProbeError> {
    let mut out = Vec::with_capacity(pids.len());
    for &pid in pids {
        match open(pid).and_then(|proc| snapshot_filtered(&proc, opts, min_start_time)) {
            Ok(Some(info)) => out.push(info),
            Ok(None) | Err(ProbeError::Gone(_) | ProbeError::PermissionDenied { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window read pid by pid keeps the processes and drops a thread's id
    /// and a free pid.
    #[test]
    fn a_window_read_pid_by_pid_keeps_only_processes() {
        let epoch = Epoch::now();
        let mut child = std::process::Command::new("sleep")
            .arg("3798")
            .spawn()
            .unwrap();
        let child_pid = child.id() as i32;
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            tid_tx
                .send(rustix::thread::gettid().as_raw_nonzero().get())
                .unwrap();
            done_rx.recv().unwrap();
        });
        let tid = tid_rx.recv().unwrap();
        let kept = leaders(vec![child_pid, tid, i32::MAX]);
        let scanned = scan_born_since(ScanOptions::default(), &epoch, &epoch.born_since());
        done_tx.send(()).unwrap();
        thread.join().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(kept.unwrap(), vec![child_pid]);
        let pids: Vec<i32> = scanned.unwrap().iter().map(|p| p.pid).collect();
        assert!(pids.contains(&child_pid), "{pids:?}");
        assert!(!pids.contains(&tid), "a thread is no process: {pids:?}");
    }
}
