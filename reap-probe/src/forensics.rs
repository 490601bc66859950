//! Leak forensics: everything /proc says about why a process is still alive, and findings in
//! words.
//!
//! [`forensics`] reads, for one process: the snapshot ([`ProcessInfo`]), `exe`, `wchan`,
//! `syscall`, every thread (`task/TID/stat`, `task/TID/wchan`), the signal masks in `status`,
//! and every open descriptor (`fd/N`, `fdinfo/N` for pipe directions), joining sockets with the
//! socket tables of the process's network namespace. Then the rules of [`Rule`](crate::Rule)
//! turn that into [`Finding`]s.
//!
//! Like [`snapshot`](crate::snapshot), every file is opened relative to one handle on the
//! `/proc/PID` directory, so a process that is reaped meanwhile (and its pid reused) is reported
//! as [`ProbeError::Gone`], never mixed with another process. Nothing is ever written or
//! signalled.

use procfs::process::{Process, Stat};
use procfs::FromRead;

use crate::fds::{read_fds, FdKind, FdSummary};
use crate::findings::{evaluate, FindingContext, Rule};
use crate::net::NetCache;
use crate::process::{open, read_relative, readlink_relative, snapshot_process, still_there};
use crate::{syscall, Forensics, ProbeError, ProcessInfo, ProcessTable, ScanOptions, ThreadInfo};

/// Forensics of one process: everything /proc says about why it is still alive, with findings
/// judged against `ctx`.
///
/// Errors: [`ProbeError::Gone`] if the process does not exist or is reaped while being read;
/// [`ProbeError::PermissionDenied`] if even its `stat` is hidden. Other files that cannot be read
/// leave their fields empty and are listed in [`Forensics::unreadable`].
pub fn forensics(pid: i32, ctx: &FindingContext) -> Result<Forensics, ProbeError> {
    let proc = open(pid)?;
    collect(&proc, ctx, &mut NetCache::default())
}

/// Forensics of pid and all its descendants (from a ProcessTable), parent before child.
///
/// Depth-first: each process is directly followed by its subtree, siblings in pid order (the
/// order of [`ProcessTable::render_tree`]). The socket tables of each network namespace are read
/// once for the whole tree.
///
/// Processes that exited since `table` was scanned are left out, and so is one whose pid now
/// belongs to a different process (its start time differs). One that cannot be inspected at all
/// is listed with the table's snapshot, the error in [`Forensics::unreadable`], and the findings
/// that need nothing else (state, parent, group, session). Empty if `root` is not in the table or
/// is gone.
pub fn forensics_tree(table: &ProcessTable, root: i32, ctx: &FindingContext) -> Vec<Forensics> {
    let mut out = Vec::new();
    let mut cache = NetCache::default();
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        let Some(listed) = table.get(pid) else {
            continue;
        };
        if !seen.insert(pid) {
            continue; // a cycle in an inconsistent snapshot
        }
        match open(pid).and_then(|proc| collect(&proc, ctx, &mut cache)) {
            Ok(f) if f.process.start_time == listed.start_time => out.push(f),
            Ok(_) | Err(ProbeError::Gone(_)) => {}
            Err(e) => out.push(Forensics::from_snapshot(listed.clone(), e.to_string(), ctx)),
        }
        // Reversed, so the smallest pid is visited first.
        stack.extend(table.children(pid).iter().rev());
    }
    out
}

impl Forensics {
    /// What can be said from a snapshot alone, for a process whose files cannot be read.
    fn from_snapshot(process: ProcessInfo, why: String, ctx: &FindingContext) -> Forensics {
        let mut f = Forensics {
            process,
            exe: None,
            wchan: None,
            syscall: None,
            threads: Vec::new(),
            sig_ignored: 0,
            sig_caught: 0,
            fds: Vec::new(),
            fd_summary: FdSummary::default(),
            findings: Vec::new(),
            unreadable: vec![why],
        };
        f.findings = evaluate(&f, ctx);
        f
    }

    /// True if `rule` found something.
    pub fn has(&self, rule: Rule) -> bool {
        self.findings.iter().any(|f| f.rule == rule)
    }
}

/// Read everything about the process behind `proc`.
fn collect(
    proc: &Process,
    ctx: &FindingContext,
    net: &mut NetCache,
) -> Result<Forensics, ProbeError> {
    let process = snapshot_process(proc, ScanOptions::ALL)?;
    let mut r = OptionalReads {
        proc,
        unreadable: Vec::new(),
    };
    let exe = r.read("exe", readlink_relative(proc, "exe"))?;
    let wchan = r
        .read("wchan", read_text(proc, "wchan"))?
        .and_then(|w| normalize_wchan(&w));
    let syscall = r
        .read("syscall", read_text(proc, "syscall"))?
        .and_then(|s| syscall::describe(&s));
    let status = r.read("status", read_text(proc, "status"))?;
    let sig_ignored = status.as_deref().and_then(|s| status_mask(s, "SigIgn"));
    let sig_caught = status.as_deref().and_then(|s| status_mask(s, "SigCgt"));
    let threads = r.read("task", read_threads(proc))?.unwrap_or_default();
    let mut fds = r.read("fd", read_fds(proc))?.unwrap_or_default();
    let mut unreadable = r.unreadable;

    if fds
        .iter()
        .any(|fd| matches!(fd.kind, FdKind::Socket { .. }))
    {
        let tables = net.tables_for(proc)?;
        unreadable.extend(tables.unreadable.iter().cloned());
        for fd in &mut fds {
            if let FdKind::Socket {
                inode,
                proto,
                state,
                local,
                remote,
                rx_queue,
                tx_queue,
            } = &mut fd.kind
            {
                if let Some(entry) = tables.get(*inode) {
                    *proto = Some(entry.proto.clone());
                    state.clone_from(&entry.state);
                    local.clone_from(&entry.local);
                    remote.clone_from(&entry.remote);
                    *rx_queue = entry.rx_queue;
                    *tx_queue = entry.tx_queue;
                }
            }
        }
    }

    let mut f = Forensics {
        process,
        exe,
        wchan,
        syscall,
        threads,
        sig_ignored: sig_ignored.unwrap_or(0),
        sig_caught: sig_caught.unwrap_or(0),
        fd_summary: FdSummary::of(&fds),
        fds,
        findings: Vec::new(),
        unreadable,
    };
    f.findings = evaluate(&f, ctx);
    Ok(f)
}

/// Reads of files that a process may lack or hide, collecting what could not be read.
struct OptionalReads<'a> {
    proc: &'a Process,
    unreadable: Vec<String>,
}

impl OptionalReads<'_> {
    /// The result of reading `name`, or `None` (noted in `unreadable` unless the file simply does
    /// not exist for this process, like `exe` of a zombie). Only the process being gone is an
    /// error.
    fn read<T>(
        &mut self,
        name: &str,
        result: Result<T, ProbeError>,
    ) -> Result<Option<T>, ProbeError> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(ProbeError::Gone(pid)) if !still_there(self.proc) => Err(ProbeError::Gone(pid)),
            Err(ProbeError::Gone(_)) => Ok(None),
            Err(ProbeError::PermissionDenied { .. }) => {
                self.unreadable.push(format!("{name}: permission denied"));
                Ok(None)
            }
            Err(e) => {
                self.unreadable.push(format!("{name}: {e}"));
                Ok(None)
            }
        }
    }
}

fn read_text(proc: &Process, name: &str) -> Result<String, ProbeError> {
    read_relative(proc, name, 512).map(|buf| String::from_utf8_lossy(&buf).into_owned())
}

/// `0` (running, or nothing to show) and empty mean no wait channel.
pub(crate) fn normalize_wchan(wchan: &str) -> Option<String> {
    let wchan = wchan.trim();
    (!wchan.is_empty() && wchan != "0").then(|| wchan.to_owned())
}

/// A hexadecimal mask line of `/proc/PID/status`, e.g. `SigIgn:\t0000000000001000`.
pub(crate) fn status_mask(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        u64::from_str_radix(value.trim(), 16).ok()
    })
}

/// Every thread of the process behind `proc`, in tid order. Threads that exit while being read
/// are skipped.
fn read_threads(proc: &Process) -> Result<Vec<ThreadInfo>, ProbeError> {
    use rustix::fs::OFlags;
    let pid = proc.pid();
    let path = || crate::process::proc_path(pid, "task");
    let dir = proc
        .open_relative_flags("task", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC)
        .map_err(|e| ProbeError::from_procfs(pid, path(), e))?;
    let list_error = |e: rustix::io::Errno| ProbeError::from_io(pid, path(), e.into());
    let mut tids: Vec<i32> = Vec::new();
    for entry in rustix::fs::Dir::read_from(&dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        if let Some(tid) = entry.file_name().to_str().ok().and_then(|s| s.parse().ok()) {
            tids.push(tid);
        }
    }
    tids.sort_unstable();
    let mut threads = Vec::with_capacity(tids.len());
    for tid in tids {
        let Ok(stat) = read_relative(proc, &format!("task/{tid}/stat"), 512) else {
            continue; // exited since the listing
        };
        let Ok(stat) = Stat::from_read(stat.as_slice()) else {
            continue;
        };
        let wchan = read_text(proc, &format!("task/{tid}/wchan"))
            .ok()
            .and_then(|w| normalize_wchan(&w));
        threads.push(ThreadInfo {
            tid,
            comm: stat.comm,
            state: stat.state,
            wchan,
        });
    }
    Ok(threads)
}
