//! Process-group containment, for machines without a writable cgroup v2.
//!
//! The suite's binary leads its own process group; the runner is the child
//! subreaper (orphans reparent to it, not to PID 1); every process carries
//! `CARGO_REAP_SUITE=<run-id>/<suite-id>` in its environment. A suite's
//! processes are the union of: the root and its descendants, members of its
//! process group or of a session it created, processes carrying its tag,
//! orphans reparented to the runner while this suite was the only one running,
//! and every descendant of those.

use std::collections::{HashSet, VecDeque};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reap_probe::{ProcessInfo, ProcessTable, ScanOptions};
use rustix::io::Errno;
use rustix::process::Signal;

use super::{Containment, IsolationKind};
use crate::error::ContainError;
use crate::sys::{self, ProcId};

/// How many SIGKILL rounds before we give up on a suite that keeps forking.
const MAX_KILL_ROUNDS: u32 = 100;
/// How long one round waits for the killed processes to exit.
const ROUND_WAIT: Duration = Duration::from_secs(5);

/// Suites currently running in process-group mode. When exactly one runs, an
/// untagged orphan reparented to the runner can only be its.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

pub struct ProcessGroupFactory {
    _private: (),
}

impl ProcessGroupFactory {
    pub fn new(_run_id: &str) -> Result<ProcessGroupFactory, ContainError> {
        sys::become_subreaper()?;
        Ok(ProcessGroupFactory { _private: () })
    }

    pub fn create(&self, tag: &str) -> ProcessGroupContainment {
        ProcessGroupContainment {
            tag: tag.to_string(),
            root: None,
            runner: std::process::id() as i32,
            // One tick of margin: start times have clock-tick resolution.
            since: reap_probe::boottime_ticks().saturating_sub(1),
        }
    }
}

pub struct ProcessGroupContainment {
    tag: String,
    root: Option<i32>,
    runner: i32,
    /// Boot-time ticks when the containment was made: no member can be older,
    /// so older processes need only their `stat` read, not their environment.
    since: u64,
}

impl ProcessGroupContainment {
    /// Select the suite's processes from a snapshot of the whole machine.
    pub fn select(&self, table: &ProcessTable, sole_suite: bool) -> Vec<ProcessInfo> {
        let mut seeds: VecDeque<i32> = VecDeque::new();
        for p in table.processes() {
            if p.pid == self.runner {
                continue;
            }
            let tagged = p.tag.as_deref() == Some(self.tag.as_str());
            let grouped = self
                .root
                .is_some_and(|r| p.pid == r || p.pgid == r || p.sid == r);
            // Reparented to us while this suite was the only one running —
            // not one of our own children (suite roots, the lifeline guard).
            let orphan = sole_suite
                && p.ppid == self.runner
                && p.start_time >= self.since
                && !crate::sys::is_claimed(p.pid);
            if tagged || grouped || orphan {
                seeds.push_back(p.pid);
            }
        }
        let mut seen: HashSet<i32> = HashSet::new();
        while let Some(pid) = seeds.pop_front() {
            if pid == self.runner || !seen.insert(pid) {
                continue;
            }
            seeds.extend(table.children(pid).iter().copied());
        }
        let mut out: Vec<ProcessInfo> = seen
            .into_iter()
            .filter_map(|pid| table.get(pid))
            .filter(|p| p.state != 'Z')
            .cloned()
            .collect();
        out.sort_by_key(|p| p.pid);
        out
    }

    fn ids(members: &[ProcessInfo]) -> Vec<ProcId> {
        members
            .iter()
            .map(|p| ProcId {
                pid: p.pid,
                start_time: Some(p.start_time),
            })
            .collect()
    }
}

impl Containment for ProcessGroupContainment {
    fn kind(&self) -> IsolationKind {
        IsolationKind::ProcessGroup
    }

    fn prepare(&self, cmd: &mut Command) -> Result<(), ContainError> {
        cmd.env(reap_probe::TAG_VAR, &self.tag).process_group(0);
        sys::unblock_signals_in_child(cmd);
        Ok(())
    }

    fn set_root(&mut self, pid: i32) {
        if self.root.is_none() {
            ACTIVE.fetch_add(1, Ordering::SeqCst);
        }
        self.root = Some(pid);
    }

    fn guard_key(&self) -> Option<super::GuardKey> {
        self.root.map(super::GuardKey::Pgid)
    }

    fn members(&self) -> Result<Vec<ProcessInfo>, ContainError> {
        let opts = ScanOptions {
            environ_tag: true,
            cgroup: false,
        };
        let table = ProcessTable::new(reap_probe::scan_since(opts, self.since)?);
        Ok(self.select(&table, ACTIVE.load(Ordering::SeqCst) <= 1))
    }

    fn signal_all(&self, sig: Signal) -> Result<usize, ContainError> {
        if let Some(root) = self.root {
            // The group first: it also reaches members forked since the scan.
            match rustix::process::kill_process_group(sys::to_pid(root), sig) {
                Ok(()) | Err(Errno::SRCH) => {}
                Err(e) => return Err(ContainError::sys("kill(-pgid)", e)),
            }
        }
        let members = self.members()?;
        sys::signal_pidfds(&sys::open_pidfds(&Self::ids(&members))?, sig)
    }

    fn wait_empty(&self, timeout: Duration) -> Result<bool, ContainError> {
        let deadline = Instant::now() + timeout;
        loop {
            let members = self.members()?;
            if members.is_empty() {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let fds = sys::open_pidfds(&Self::ids(&members))?;
            if !sys::wait_pidfds(&fds, left)? {
                return Ok(false);
            }
            // All exited; members may have forked meanwhile: look again.
            sys::reap_if_our_zombies(members.iter().map(|p| p.pid))?;
        }
    }

    fn kill_all(&self) -> Result<u32, ContainError> {
        let mut rounds = 0;
        loop {
            let members = self.members()?;
            if members.is_empty() {
                return Ok(rounds);
            }
            if rounds >= MAX_KILL_ROUNDS {
                return Err(ContainError::Unkillable {
                    rounds,
                    pids: members.iter().map(|p| p.pid).collect(),
                });
            }
            rounds += 1;
            let fds = sys::open_pidfds(&Self::ids(&members))?;
            sys::signal_pidfds(&fds, Signal::KILL)?;
            sys::wait_pidfds(&fds, ROUND_WAIT)?;
            sys::reap_if_our_zombies(members.iter().map(|p| p.pid))?;
        }
    }

    fn close(self: Box<Self>) -> Result<(), ContainError> {
        Ok(())
    }
}

impl Drop for ProcessGroupContainment {
    fn drop(&mut self) {
        if self.root.is_some() {
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
