//! Process-group containment, for machines without a writable cgroup v2.
//!
//! The suite's binary leads its own process group; the runner is the child
//! subreaper (orphans reparent to it, not to PID 1); every process carries
//! `CARGO_REAP_SUITE=<run-id>/<suite-id>` in its environment. A suite's
//! processes are the union of: the root and its descendants, members of its
//! process group or of a session it created, processes carrying its tag,
//! orphans reparented to the runner while this suite was the only one running,
//! and every descendant of those. All of them are below the runner (the child
//! subreaper), so they are looked for in the runner's own tree, walked from
//! `/proc/PID/task/TID/children`: the cost grows with the suites' processes,
//! not with the machine's. What the tree cannot show (a tagged process
//! something outside it started) is found by the end-of-trial sweep
//! ([`unattributed`]), the one scan of the machine per trial.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
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

/// The orphan rule's view of a run: how many of its suites run now, and
/// when the last stretch of concurrency ended. One per run (its
/// [`ProcessGroupFactory`] or [`super::cgroup::CgroupParent`] makes it),
/// shared by every containment made from it; suites of both modes count.
#[derive(Debug, Default)]
pub struct Concurrency {
    /// Suites running now. When exactly one runs, an untagged orphan
    /// reparented to the runner can only be its.
    active: AtomicUsize,
    /// Boot-time ticks at which the last stretch of concurrency (two or
    /// more suites at once) ended. An orphan born before it may belong to
    /// any suite of that stretch, so no suite claims it by the orphan rule:
    /// the end-of-trial sweep reports it as unattributed instead.
    ended: AtomicU64,
}

impl Concurrency {
    /// At most one suite runs now.
    fn sole(&self) -> bool {
        self.active.load(Ordering::SeqCst) <= 1
    }

    /// An orphan born before this may belong to any suite of the last
    /// stretch of concurrency.
    fn ended(&self) -> u64 {
        self.ended.load(Ordering::SeqCst)
    }
}

pub struct ProcessGroupFactory {
    run: Arc<Concurrency>,
}

impl ProcessGroupFactory {
    pub fn new(_run_id: &str) -> Result<ProcessGroupFactory, ContainError> {
        sys::become_subreaper()?;
        Ok(ProcessGroupFactory {
            run: Arc::default(),
        })
    }

    pub fn create(&self, tag: &str) -> ProcessGroupContainment {
        ProcessGroupContainment {
            counted: Active::new(&self.run),
            closed: false,
            sel: Selector::new(tag, &self.run),
        }
    }
}

pub struct ProcessGroupContainment {
    sel: Selector,
    counted: Active,
    /// `close()` ran; otherwise an error path dropped it and Drop kills.
    closed: bool,
}

/// A suite counted in its run's [`Concurrency`] from its first `prepare`
/// (i.e. before its first fork) until it is dropped. Suites of both modes
/// count: an orphan reparented to the runner is claimed by the orphan rule
/// only while one suite runs.
pub(crate) struct Active {
    counted: std::sync::atomic::AtomicBool,
    run: Arc<Concurrency>,
}

impl Active {
    pub(crate) fn new(run: &Arc<Concurrency>) -> Active {
        Active {
            counted: Default::default(),
            run: Arc::clone(run),
        }
    }

    /// Count the suite (once).
    pub(crate) fn mark(&self) {
        if !self.counted.swap(true, Ordering::SeqCst) {
            self.run.active.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if *self.counted.get_mut() && self.run.active.fetch_sub(1, Ordering::SeqCst) >= 2 {
            self.run
                .ended
                .store(reap_probe::boottime_ticks() + 1, Ordering::SeqCst);
        }
    }
}

/// How a suite's processes are recognised (shared with the resource sampler).
#[derive(Debug, Clone)]
pub struct Selector {
    tag: String,
    root: Option<i32>,
    runner: i32,
    run: Arc<Concurrency>,
    /// Boot-time ticks when the containment was made: no member can be older,
    /// so older processes need only their `stat` read, not their environment.
    since: u64,
}

impl Selector {
    /// The selector of a suite tagged `tag` of the run `run`, made now
    /// (before its spawn).
    pub fn new(tag: &str, run: &Arc<Concurrency>) -> Selector {
        Selector {
            tag: tag.to_string(),
            root: None,
            runner: std::process::id() as i32,
            run: Arc::clone(run),
            // One tick of margin: start times have clock-tick resolution.
            since: reap_probe::boottime_ticks().saturating_sub(1),
        }
    }

    /// The suite's root (its test binary), once spawned.
    pub fn set_root(&mut self, pid: i32) {
        self.root = Some(pid);
    }

    /// Cheap test (the runner's own children only): could a process of this
    /// suite live outside its cgroup leaf? Yes while its root lives, or when
    /// the runner has an unclaimed child started since the suite began (an
    /// orphan: the top of any suite process tree left once the root exited).
    pub fn may_have_orphans(&self) -> Result<bool, ContainError> {
        let Some(root) = self.root else {
            return Ok(true);
        };
        if rustix::process::test_kill_process(sys::to_pid(root)).is_ok()
            && reap_probe::snapshot(root, ScanOptions::default()).is_ok_and(|p| !p.is_zombie())
        {
            return Ok(true);
        }
        for pid in reap_probe::own_children()? {
            if sys::is_claimed(pid) {
                continue;
            }
            match reap_probe::start_time(pid) {
                Ok(start) if start >= self.since => return Ok(true),
                Ok(_) | Err(reap_probe::ProbeError::Gone(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(false)
    }

    /// Every live process of the suite, from the runner's own tree (see
    /// [`runner_tree`]): O(the processes of the running suites), whatever else
    /// runs on the machine.
    pub fn members(&self) -> Result<Vec<ProcessInfo>, ContainError> {
        let table = runner_tree(self.runner, self.since)?;
        Ok(self.select(&table, self.run.sole()))
    }

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
            // Never one tagged for another suite.
            let orphan = sole_suite
                && p.ppid == self.runner
                && p.start_time >= self.since.max(self.run.ended())
                && !crate::sys::is_claimed(p.pid)
                && p.tag.as_deref().is_none_or(|t| t == self.tag);
            if tagged || grouped || orphan {
                seeds.push_back(p.pid);
            }
        }
        let mut found = with_descendants(table, seeds, |pid| pid == self.runner);
        // Reported once, by the kill that found them: not members any more.
        found.retain(|p| !sys::is_known_unkillable(p.pid, p.start_time));
        found
    }
}

/// Tree walks before [`runner_tree`] gives up on them and scans the machine.
const TREE_WALKS: u32 = 3;

/// The runner's descendants (never the runner itself), as a table.
///
/// The runner is the child subreaper: every process a suite starts stays
/// below it for its whole life (an orphan is reparented to the nearest
/// subreaper above it, which is the runner or a process below it), so the
/// suite's members are all in this tree — except a process something outside
/// the tree started for it (a service manager, another user's daemon) with
/// its tag: the end-of-trial sweep ([`unattributed`]) scans the machine for
/// those, once per trial. A walk that raced with an exit or a reparenting
/// (its [`reap_probe::Subtree::complete`] is false) is repeated; after
/// [`TREE_WALKS`] such walks the machine is scanned (processes started since
/// `since`, tags read), so nothing is ever missed for a race.
fn runner_tree(runner: i32, since: u64) -> Result<ProcessTable, ContainError> {
    let opts = ScanOptions {
        environ_tag: true,
        cgroup: false,
    };
    for _ in 0..TREE_WALKS {
        let tree = reap_probe::subtree(runner, opts)?;
        if tree.complete {
            // As the scan below: nothing older than the suite is a member.
            let young = tree.processes.into_iter().filter(|p| p.start_time >= since);
            return Ok(ProcessTable::new(young.collect()));
        }
    }
    tracing::debug!("the runner's tree kept changing while walked: scanning the machine");
    Ok(ProcessTable::new(reap_probe::scan_since(opts, since)?))
}

/// SIGKILL the processes `members` lists, in rounds (each waits for the
/// exits, by pidfd, then lists again) until it lists none. A process we may
/// not signal (EPERM) is set aside in [`super::Killed::unkillable`] (and left
/// out of later listings), never an error that stops the kill of the rest.
pub(crate) fn kill_in_rounds(
    tag: &str,
    members: impl Fn() -> Result<Vec<ProcessInfo>, ContainError>,
) -> Result<super::Killed, ContainError> {
    let mut out = super::Killed::default();
    loop {
        let found = members()?;
        if found.is_empty() {
            return Ok(out);
        }
        if out.rounds >= MAX_KILL_ROUNDS {
            return Err(ContainError::Unkillable {
                rounds: out.rounds,
                pids: found.iter().map(|p| p.pid).collect(),
            });
        }
        out.rounds += 1;
        tracing::debug!(
            tag = %tag,
            round = out.rounds,
            pids = ?found.iter().map(|p| (p.pid, p.comm.as_str())).collect::<Vec<_>>(),
            "SIGKILL round"
        );
        let refused = kill_listed(&found)?;
        for m in found {
            let why = refused.iter().find(|(pid, _)| *pid == m.pid);
            if let Some((_, e)) = why {
                out.unkillable
                    .push((m, format!("could not be killed: {}", errno_name(*e))));
            } else if !out
                .processes
                .iter()
                .any(|k| k.pid == m.pid && k.start_time == m.start_time)
            {
                out.processes.push(m);
            }
        }
    }
}

/// The errno's name for a report (`EPERM`).
pub(crate) fn errno_name(e: Errno) -> String {
    if e == Errno::PERM {
        "EPERM".into()
    } else {
        format!("{e}")
    }
}

impl ProcessGroupContainment {
    fn ids(members: &[ProcessInfo]) -> Vec<ProcId> {
        members.iter().map(ProcId::from).collect()
    }
}

impl Containment for ProcessGroupContainment {
    fn kind(&self) -> IsolationKind {
        IsolationKind::ProcessGroup
    }

    fn prepare(&self, cmd: &mut super::spawn::Spawn) -> Result<(), ContainError> {
        // Counted before the fork: between fork and exec the child is an
        // untagged child of the runner, which another suite's orphan rule
        // would otherwise take for its own (and kill) while it looked sole.
        self.counted.mark();
        super::layers::apply(cmd, &super::layers::suite(&self.sel.tag, None));
        Ok(())
    }

    fn set_root(&mut self, pid: i32) {
        self.sel.set_root(pid);
    }

    fn guard_key(&self) -> Option<super::GuardKey> {
        self.sel.root.map(super::GuardKey::Pgid)
    }

    fn members(&self) -> Result<Vec<ProcessInfo>, ContainError> {
        self.sel.members()
    }

    fn sampler(&self) -> super::Sampler {
        super::Sampler::ProcessGroup(self.sel.clone())
    }

    fn signal_all(&self, sig: Signal) -> Result<usize, ContainError> {
        if let Some(root) = self.sel.root {
            // The group first: it also reaches members forked since the scan.
            match rustix::process::kill_process_group(sys::to_pid(root), sig) {
                // EPERM: no member of the group may be signalled by us; the
                // others are signalled one by one below.
                Ok(()) | Err(Errno::SRCH) | Err(Errno::PERM) => {}
                Err(e) => return Err(ContainError::sys("kill(-pgid)", e)),
            }
        }
        let members = self.members()?;
        Ok(sys::signal_pidfds_each(&sys::open_pidfds(&Self::ids(&members))?, sig)?.count)
    }

    fn wait_empty(
        &self,
        timeout: Duration,
        cancel: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<bool, ContainError> {
        wait_gone(|| self.members(), timeout, cancel)
    }

    fn kill_all(&self) -> Result<super::Killed, ContainError> {
        kill_in_rounds(&self.sel.tag, || self.members())
    }

    fn close(mut self: Box<Self>) -> Result<(), ContainError> {
        self.closed = true;
        Ok(())
    }
}

/// After the suites of a trial: processes of this run no suite could claim —
/// orphans reparented to the runner while several suites ran (untagged,
/// outside every suite's group and session) and anything still tagged with the
/// run — with all their descendants. The caller kills and reports them.
///
/// Only processes born since the trial began (`since`) can be such: their
/// pids are read, not the machine's ([`reap_probe::scan_born_since`]).
pub fn unattributed(
    run_id: &str,
    since: &reap_probe::Epoch,
) -> Result<Vec<ProcessInfo>, ContainError> {
    let runner = std::process::id() as i32;
    let prefix = format!("{run_id}/");
    let opts = ScanOptions {
        environ_tag: true,
        cgroup: false,
    };
    let born = since.born_since();
    if let reap_probe::Born::Anywhere(why) = &born {
        tracing::debug!("the end-of-trial sweep reads every process: {why}");
    }
    let table = ProcessTable::new(reap_probe::scan_born_since(opts, since, &born)?);
    let seeds: VecDeque<i32> = table
        .processes()
        .filter(|p| p.pid != runner && p.start_time >= since.ticks)
        .filter(|p| {
            (p.ppid == runner && !crate::sys::is_claimed(p.pid))
                || p.tag.as_deref().is_some_and(|t| t.starts_with(&prefix))
        })
        .map(|p| p.pid)
        .collect();
    let mut left = with_descendants(&table, seeds, |pid| {
        pid == runner || crate::sys::is_claimed(pid)
    });
    // Already reported, by the suite that found them, as not killed.
    left.retain(|p| !sys::is_known_unkillable(p.pid, p.start_time));
    Ok(left)
}

/// The live processes among `seeds` and all their descendants (except those
/// `skip` names), in pid order.
fn with_descendants(
    table: &ProcessTable,
    mut seeds: VecDeque<i32>,
    skip: impl Fn(i32) -> bool,
) -> Vec<ProcessInfo> {
    let mut seen: HashSet<i32> = HashSet::new();
    while let Some(pid) = seeds.pop_front() {
        if skip(pid) || !seen.insert(pid) {
            continue;
        }
        seeds.extend(table.children(pid).iter().copied());
    }
    let mut out: Vec<ProcessInfo> = seen
        .into_iter()
        .filter_map(|pid| table.get(pid))
        .filter(|p| !p.is_zombie())
        .cloned()
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// Wait until `members` lists nobody (waiting on the exits of those it
/// listed, by pidfd, then listing again: they may have forked), `timeout`
/// passes (false) or `cancel` is readable (false).
pub(crate) fn wait_gone(
    members: impl Fn() -> Result<Vec<ProcessInfo>, ContainError>,
    timeout: Duration,
    cancel: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<bool, ContainError> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = members()?;
        if found.is_empty() {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let fds = sys::open_pidfds(&ProcessGroupContainment::ids(&found))?;
        if !sys::wait_pidfds_or(&fds, left, cancel)? {
            return Ok(false);
        }
        // All exited; they may have forked meanwhile: look again.
        sys::reap_if_our_zombies(found.iter().map(|p| p.pid))?;
    }
}

/// Kill processes (identity-checked), wait for them, reap those that are
/// ours. Returns those we may not signal (EPERM), remembered as such so that
/// no later listing counts them again.
pub fn kill_listed(procs: &[ProcessInfo]) -> Result<Vec<(i32, Errno)>, ContainError> {
    let fds = sys::open_pidfds(&ProcessGroupContainment::ids(procs))?;
    let sent = sys::signal_pidfds_each(&fds, Signal::KILL)?;
    let waited: Vec<(i32, std::os::fd::OwnedFd)> = fds
        .into_iter()
        .filter(|(pid, _)| !sent.refused.iter().any(|(r, _)| r == pid))
        .collect();
    sys::wait_pidfds(&waited, ROUND_WAIT)?;
    sys::reap_if_our_zombies(procs.iter().map(|p| p.pid))?;
    for (pid, _) in &sent.refused {
        if let Some(p) = procs.iter().find(|p| p.pid == *pid) {
            sys::note_unkillable(p.pid, p.start_time);
        }
    }
    Ok(sent.refused)
}

impl Drop for ProcessGroupContainment {
    fn drop(&mut self) {
        if !self.closed && self.sel.root.is_some() {
            // An error path skipped close(): never leave the suite's processes.
            if let Err(e) = self.kill_all() {
                eprintln!(
                    "cargo-reap: warning: cleaning up the processes of {}: {e}",
                    self.sel.tag
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    /// An error path that drops the containment without `close()` still
    /// kills the whole suite, including a process that left its group and
    /// session.
    #[test]
    fn dropped_without_close_kills_every_member() {
        let _serial = sys::child_spawning_test();
        let factory = ProcessGroupFactory::new("unit").unwrap();
        let tag = format!("unit-{}/pgroup-drop", std::process::id());
        let mut c = factory.create(&tag);
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let mut cmd = super::super::spawn::Spawn::new("sh");
        cmd.args(["-c", "setsid sleep 3796 & echo ready; exec sleep 3797"])
            .stdout(super::super::spawn::Stdio::Fd(w));
        c.prepare(&mut cmd).unwrap();
        let root = cmd.spawn().unwrap();
        c.set_root(root.pid());
        let mut line = String::new();
        BufReader::new(std::fs::File::from(r))
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        assert!(
            c.members().unwrap().len() >= 2,
            "root and its escaped child"
        );
        drop(c);
        assert!(root.wait_exit(Some(Duration::from_secs(30))).unwrap());
        assert_eq!(root.reap().unwrap().signal, Some(9));
        let opts = ScanOptions {
            environ_tag: true,
            cgroup: false,
        };
        let left: Vec<i32> = reap_probe::scan(opts)
            .unwrap()
            .into_iter()
            .filter(|p| !p.is_zombie() && p.tag.as_deref() == Some(tag.as_str()))
            .map(|p| p.pid)
            .collect();
        assert!(left.is_empty(), "still alive: {left:?}");
    }
}
