//! The processes below one process, from `/proc/PID/task/TID/children`: what a child
//! subreaper needs to find its descendants without reading every process on the machine.

use std::collections::{HashSet, VecDeque};

use procfs::process::Process;
use procfs::ProcError;

use crate::process::{open, proc_path};
use crate::{snapshot, ProbeError, ProcessInfo, ScanOptions};

/// The descendants of a process, read by walking the children lists of its threads.
#[derive(Debug, Clone, Default)]
pub struct Subtree {
    /// Every descendant seen (not the root), breadth-first, each once.
    pub processes: Vec<ProcessInfo>,
    /// False when the walk may have missed some: a process or thread it listed ended (or was
    /// reparented) while it was being read, so its children moved — to a subreaper above them,
    /// possibly one already walked. Walk again, or scan the machine.
    pub complete: bool,
}

/// Snapshot every descendant of `root` (children of each of its threads, then theirs, ...),
/// reading per process what [`snapshot`] reads for `opts`.
///
/// Cost: one directory listing and one read per thread of the subtree, one snapshot per process;
/// nothing else on the machine is read. A process counts as `root`'s child only while its `stat`
/// names the listing thread's process as parent, so a pid reused meanwhile is never taken in;
/// every such race, and a process whose `stat` or threads we may not read (hidepid), marks the
/// result incomplete ([`Subtree::complete`]), never silently short.
///
/// Errors: `root` itself is gone or unreadable, or a genuine I/O or parse failure.
pub fn subtree(root: i32, opts: ScanOptions) -> Result<Subtree, ProbeError> {
    let mut out = Subtree {
        processes: Vec::new(),
        complete: true,
    };
    let mut seen = HashSet::from([root]);
    let mut queue = VecDeque::from([root]);
    while let Some(parent) = queue.pop_front() {
        let kids = match thread_children(parent) {
            Ok((kids, whole)) => {
                out.complete &= whole;
                kids
            }
            // Gone meanwhile, or hidden from us (hidepid): its children are
            // not known, so neither is the whole tree.
            Err(ProbeError::Gone(_) | ProbeError::PermissionDenied { .. }) if parent != root => {
                out.complete = false;
                continue;
            }
            Err(e) => return Err(e),
        };
        for pid in kids {
            if !seen.insert(pid) {
                continue;
            }
            match snapshot(pid, opts) {
                Ok(info) if info.ppid == parent => {
                    queue.push_back(pid);
                    out.processes.push(info);
                }
                // Reparented (or its pid reused) since the listing, or gone: its
                // children may have moved anywhere above it. Hidden from us
                // (hidepid): its children are not known.
                Ok(_) | Err(ProbeError::Gone(_) | ProbeError::PermissionDenied { .. }) => {
                    out.complete = false
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(out)
}

/// The children of every thread of `pid` (`/proc/PID/task/TID/children`), and whether the list
/// is whole: false when a thread ended while they were read (its children moved to another thread
/// or a subreaper, so the list may miss them; that thread is left out).
pub(crate) fn thread_children(pid: i32) -> Result<(Vec<i32>, bool), ProbeError> {
    children_of(&open(pid)?, pid)
}

/// This process's own children (of every one of its threads: each lists those it forked or that
/// were reparented to it), through `/proc/self`, which is right even where `/proc` belongs to
/// another pid namespace than ours. A thread that ended while they were read is left out (its
/// children moved to another thread or a subreaper).
pub fn own_children() -> Result<Vec<i32>, ProbeError> {
    let me = Process::myself().map_err(|e| ProbeError::from_procfs(0, "/proc/self".into(), e))?;
    Ok(children_of(&me, me.pid)?.0)
}

fn children_of(proc: &Process, pid: i32) -> Result<(Vec<i32>, bool), ProbeError> {
    let tasks = proc
        .tasks()
        .map_err(|e| ProbeError::from_procfs(pid, proc_path(pid, "task"), e))?;
    let mut out = Vec::new();
    let mut whole = true;
    for task in tasks {
        match task.and_then(|t| t.children()) {
            Ok(children) => out.extend(children.into_iter().filter_map(|c| i32::try_from(c).ok())),
            Err(ProcError::NotFound(_)) => whole = false,
            Err(e) => return Err(ProbeError::from_procfs(pid, proc_path(pid, "task"), e)),
        }
    }
    Ok((out, whole))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    /// A grandchild under a child of this test process is found, with its parent, and
    /// nothing else on the machine is.
    #[test]
    fn finds_children_and_grandchildren_only() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 3791 & echo $!; wait"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let grandchild: i32 = line.trim().parse().unwrap();
        let me = std::process::id() as i32;
        let tree = subtree(me, ScanOptions::default());
        let kill = Command::new("kill").arg(grandchild.to_string()).status();
        let waited = child.wait();
        let tree = tree.unwrap();
        let pids: Vec<i32> = tree.processes.iter().map(|p| p.pid).collect();
        assert!(pids.contains(&(child.id() as i32)), "{pids:?}");
        assert!(pids.contains(&grandchild), "{pids:?}");
        assert!(!pids.contains(&1) && !pids.contains(&me));
        assert!(tree
            .processes
            .iter()
            .all(|p| p.ppid == me || pids.contains(&p.ppid)));
        assert!(kill.unwrap().success());
        waited.unwrap();
    }
}
