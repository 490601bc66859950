//! The processes below one process, from `/proc/PID/task/TID/children`: what a child
//! subreaper needs to find its descendants without reading every process on the machine.

use std::collections::{HashSet, VecDeque};

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{openat, Dir, Mode, OFlags, CWD};
use rustix::io::Errno;

use crate::process::proc_path;
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
    children_of(&proc_path(pid, "task"), pid)
}

/// This process's own children (of every one of its threads: each lists those it forked or that
/// were reparented to it), through `/proc/self`, which is right even where `/proc` belongs to
/// another pid namespace than ours. A thread that ended while they were read is left out (its
/// children moved to another thread or a subreaper).
pub fn own_children() -> Result<Vec<i32>, ProbeError> {
    Ok(children_of(Path::new("/proc/self/task"), std::process::id() as i32)?.0)
}

/// The children listed in `task_dir/TID/children` for every thread `TID`, read with one open
/// and one read per thread, relative to the open task directory (the runner reads its own after
/// every suite).
fn children_of(task_dir: &Path, pid: i32) -> Result<(Vec<i32>, bool), ProbeError> {
    let io = |path: &Path, e: rustix::io::Errno| {
        ProbeError::from_io(pid, path.to_path_buf(), std::io::Error::from(e))
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dir = openat(CWD, task_dir, flags, Mode::empty()).map_err(|e| io(task_dir, e))?;
    let mut out = Vec::new();
    let mut whole = true;
    let mut buf = Vec::new();
    for entry in Dir::read_from(&dir).map_err(|e| io(task_dir, e))? {
        let entry = entry.map_err(|e| io(task_dir, e))?;
        let Some(tid) = entry
            .file_name()
            .to_str()
            .ok()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let file = format!("{tid}/children");
        match read_at(&dir, &file, &mut buf) {
            Ok(()) => {}
            // The thread ended meanwhile: its children moved.
            Err(Errno::NOENT | Errno::SRCH) => {
                whole = false;
                continue;
            }
            Err(e) => return Err(io(&task_dir.join(&file), e)),
        }
        let text = std::str::from_utf8(&buf).map_err(|_| ProbeError::Parse {
            path: task_dir.join(&file),
            message: "not UTF-8".into(),
        })?;
        for word in text.split_ascii_whitespace() {
            out.push(word.parse().map_err(|_| ProbeError::Parse {
                path: task_dir.join(&file),
                message: format!("not a pid: {word:?}"),
            })?);
        }
    }
    Ok((out, whole))
}

/// The whole of `dir/name` into `buf` (emptied first).
fn read_at(dir: &OwnedFd, name: &str, buf: &mut Vec<u8>) -> Result<(), Errno> {
    let fd = openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        match rustix::io::read(&fd, &mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
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

    /// Children forked by two different threads are both listed (each thread lists its own);
    /// a process that is gone has no children to list: `Gone`.
    #[test]
    fn own_children_of_every_thread() {
        use std::sync::mpsc;
        let mut here = Command::new("sleep").arg("3792").spawn().unwrap();
        let (pid_tx, pid_rx) = mpsc::channel();
        let (listed_tx, listed_rx) = mpsc::channel::<()>();
        // The other thread stays alive until the list is read: its child is its own.
        let other = std::thread::spawn(move || {
            let mut c = Command::new("sleep").arg("3792").spawn().unwrap();
            pid_tx.send(c.id() as i32).unwrap();
            listed_rx.recv().unwrap();
            c.kill().unwrap();
            c.wait().unwrap();
        });
        let there = pid_rx.recv().unwrap();
        let listed = own_children();
        listed_tx.send(()).unwrap();
        other.join().unwrap();
        here.kill().unwrap();
        here.wait().unwrap();
        let mut gone = Command::new("true").spawn().unwrap();
        let gone_pid = gone.id() as i32;
        gone.wait().unwrap();
        let of_gone = thread_children(gone_pid);
        let listed = listed.unwrap();
        assert!(listed.contains(&(here.id() as i32)), "{listed:?}");
        assert!(listed.contains(&there), "{listed:?}");
        assert!(
            matches!(of_gone, Err(ProbeError::Gone(p)) if p == gone_pid),
            "{of_gone:?}"
        );
    }
}
