//! The stale sweep: leftovers of dead earlier runs — cgroup leaves
//! (`cargo-reap.<run-id>.*`, empty or populated), run directories
//! (`$TMPDIR/cargo-reap-<uid>/<run-id>`) and processes carrying a
//! `CARGO_REAP_SUITE` tag — whose runner is gone. Every `cargo reap test`
//! sweeps at start (a `cargo reap run` at most once per
//! [`RUNNER_SWEEP_INTERVAL`] per user) and says what it found; `cargo reap
//! clean [--dry-run]` does it on demand. What the sweep cannot remove is
//! reported and skipped: it goes on.
//!
//! A run id is `<unix-ms hex>-<runner pid>-<pid namespace inode hex>-<runner
//! start time hex>` (the start time in clock ticks since boot, field 22 of
//! `/proc/PID/stat`). The runner is alive while a process with that pid and
//! exactly that start time exists and is not a zombie: nothing else can match
//! the pair, whatever the runner's name (a symlink `reap`, a packaging wrapper
//! `.cargo-reap-wrapped`) and however it died. Runs of another pid namespace
//! (a container sharing the cgroup tree or /tmp) are never judged: their pids
//! mean nothing here. An id without a start time (older versions) is judged
//! dead only when its pid does not exist at all.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reap_probe::ScanOptions;
use rustix::fs::{Mode, OFlags};
use rustix::process::Signal;

use crate::containment::cgroup::{find_cgroup2_mount, remove_when_empty, Cgroup2Mount};
use crate::error::ContainError;
use crate::sys::{self, ProcId};

/// What the sweep found (and, unless dry, removed).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// Leaf directories of dead runs, with how many processes were inside.
    pub cgroups: Vec<(PathBuf, usize)>,
    /// Tagged processes of dead runs: (pid, tag, command).
    pub processes: Vec<(i32, String, String)>,
    /// Run directories (`$TMPDIR/cargo-reap-<uid>/<run-id>`) of dead runs.
    pub tmp_dirs: Vec<PathBuf>,
    /// What could not be removed or killed, one sentence each; the sweep went on.
    pub problems: Vec<String>,
}

impl Sweep {
    pub fn is_empty(&self) -> bool {
        self.cgroups.is_empty()
            && self.processes.is_empty()
            && self.tmp_dirs.is_empty()
            && self.problems.is_empty()
    }

    /// One line per item, for the terminal.
    pub fn lines(&self, dry_run: bool) -> Vec<String> {
        let verb = if dry_run { "would remove" } else { "removed" };
        let kverb = if dry_run { "would kill" } else { "killed" };
        let mut v: Vec<String> = self
            .cgroups
            .iter()
            .map(|(d, n)| format!("{verb} cgroup {} ({n} process(es) inside)", d.display()))
            .collect();
        v.extend(
            self.tmp_dirs
                .iter()
                .map(|d| format!("{verb} temporary directory {}", d.display())),
        );
        v.extend(
            self.processes
                .iter()
                .map(|(pid, tag, cmd)| format!("{kverb} pid {pid} [{tag}] {cmd}")),
        );
        v.extend(self.problems.iter().map(|p| format!("problem: {p}")));
        v
    }
}

/// A parsed run id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunId {
    /// Start, ms since the epoch.
    pub ms: u64,
    /// The runner's pid in its pid namespace.
    pub pid: i32,
    /// That namespace's inode (`/proc/PID/ns/pid`); absent in ids of versions
    /// before 0.1 that did not record it.
    pub pid_ns: Option<u64>,
    /// The runner's start time (clock ticks since boot); absent in ids of
    /// earlier versions.
    pub start: Option<u64>,
}

/// Parse `<hex ms>-<pid>[-<hex pid ns>[-<hex start time>]]`.
pub fn parse_run_id(run_id: &str) -> Option<RunId> {
    let mut parts = run_id.split('-');
    let ms = u64::from_str_radix(parts.next()?, 16).ok()?;
    let pid = parts.next()?.parse().ok()?;
    let mut hex = || -> Option<Option<u64>> {
        match parts.next() {
            Some(h) => Some(Some(u64::from_str_radix(h, 16).ok()?)),
            None => Some(None),
        }
    };
    let pid_ns = hex()?;
    let start = hex()?;
    if parts.next().is_some() || (pid_ns.is_none() && start.is_some()) {
        return None;
    }
    Some(RunId {
        ms,
        pid,
        pid_ns,
        start,
    })
}

/// A new run id: `<unix ms hex>-<pid>-<pid namespace inode hex>-<start time
/// hex>`. The pid, its namespace and the start time let a later run recognise
/// leftovers of a dead one, and leave alone those of live runs and of runs in
/// other pid namespaces (containers sharing the cgroup tree).
pub fn new_run_id() -> Result<String, ContainError> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let ns = own_pid_namespace().map_err(|e| ContainError::Sys {
        what: "reading /proc/self/ns/pid",
        source: e,
    })?;
    let pid = std::process::id();
    let start = own_start_time()?;
    Ok(format!("{ms:x}-{pid}-{ns:x}-{start:x}"))
}

/// Our start time (field 22 of `/proc/self/stat`, clock ticks since boot);
/// through `self`, which is right even where /proc belongs to another pid
/// namespace than ours.
fn own_start_time() -> Result<u64, ContainError> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| ContainError::Sys {
        what: "reading /proc/self/stat",
        source: e,
    })?;
    // Fields after the command name (which may hold spaces and parentheses)
    // start with field 3; the start time is field 22.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| ContainError::Sys {
            what: "reading /proc/self/stat",
            source: std::io::Error::other("no start time (field 22)"),
        })
}

/// The inode of our pid namespace.
pub fn own_pid_namespace() -> std::io::Result<u64> {
    Ok(rustix::fs::stat("/proc/self/ns/pid")?.st_ino)
}

/// Who judges liveness: our pid and pid namespace.
#[derive(Debug, Clone, Copy)]
struct Judge {
    pid: i32,
    pid_ns: u64,
}

impl Judge {
    /// This process.
    fn me() -> std::io::Result<Judge> {
        Ok(Judge {
            pid: std::process::id() as i32,
            pid_ns: own_pid_namespace()?,
        })
    }
}

/// Is the runner of `run_id` still alive (or not ours to judge)?
fn runner_alive(run_id: &str, me: Judge) -> bool {
    let Some(RunId {
        pid, pid_ns, start, ..
    }) = parse_run_id(run_id)
    else {
        // Not ours to judge: leave it alone.
        return true;
    };
    if pid_ns.is_some_and(|ns| ns != me.pid_ns) {
        // Another pid namespace: its pid is not a pid here.
        return true;
    }
    if start.is_none() && pid == me.pid {
        return true;
    }
    match reap_probe::snapshot(pid, ScanOptions::default()) {
        // Exactly the runner (pid and start time), not exited: alive. Without
        // a recorded start time, a live pid cannot be told from a reused one:
        // never judged dead.
        Ok(p) => start.is_none_or(|s| s == p.start_time) && !p.is_zombie(),
        Err(reap_probe::ProbeError::Gone(_)) => false,
        // Cannot tell (permissions, a read that failed): never sweep what may be alive.
        Err(e) => {
            tracing::debug!("stale sweep: cannot judge runner {pid}: {e}");
            true
        }
    }
}

/// How many runs' logs `cargo reap test` keeps in `target/reap/` (its own
/// included), besides those of the last [`KEEP_FRESH`]: every run leaves a
/// directory of suite logs there, and a developer's days of runs must not
/// fill the disk.
pub const KEEP_RUNS: usize = 10;

/// A run younger than this keeps its logs whatever their count (a test that
/// reads a run's log while other runs end stays safe).
pub const KEEP_FRESH: Duration = Duration::from_secs(3600);

/// Remove the log directories in `reap_dir` of all but the [`KEEP_RUNS`]
/// most recent runs and those of the last [`KEEP_FRESH`]: only directories
/// named by a run id (never a symlink
/// nor anything else a user put there), never one of a run that may still
/// be alive (ours, another live run, a run of another pid namespace), each
/// removed without following a symlink or crossing a mount. Returns what
/// could not be removed, one sentence each.
pub fn prune_logs(reap_dir: &Path) -> Vec<String> {
    let me = match Judge::me() {
        Ok(me) => me,
        Err(e) => {
            return vec![format!(
                "old run logs not pruned: reading /proc/self/ns/pid: {e}"
            )]
        }
    };
    let entries = match std::fs::read_dir(reap_dir) {
        Ok(e) => e,
        Err(e) => {
            return vec![format!(
                "old run logs not pruned: listing {}: {e}",
                reap_dir.display()
            )]
        }
    };
    let mut runs: Vec<(u64, String)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            Some((parse_run_id(&name)?.ms, name))
        })
        .collect();
    runs.sort_unstable_by(|a, b| b.cmp(a));
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(u64::MAX, |d| d.as_millis() as u64);
    let fresh = |ms: u64| now_ms.saturating_sub(ms) < KEEP_FRESH.as_millis() as u64;
    let mut problems = Vec::new();
    for (ms, name) in runs.into_iter().skip(KEEP_RUNS) {
        if fresh(ms) || runner_alive(&name, me) {
            continue;
        }
        let removal = crate::tmpdir::remove_tree(&reap_dir.join(&name));
        problems.extend(removal.problems(&reap_dir.display().to_string()));
    }
    problems
}

/// The run id in a leaf name `cargo-reap.<run-id>.<rest>`.
fn run_id_of_leaf(name: &str) -> Option<&str> {
    name.strip_prefix("cargo-reap.")?.split('.').next()
}

/// Leaves `cargo-reap.*` under `dir`, `depth` levels down at most. A leaf of
/// another user is left out unless we are root (not ours to sweep: that
/// user's own sweep does it); a delegated subtree of ours may lie below
/// directories of root, so those are still looked into.
fn find_leaves(dir: &Path, depth: u32, euid: u32, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_dir() {
            continue;
        }
        let name = e.file_name();
        if name.to_string_lossy().starts_with("cargo-reap.") {
            if euid == 0 || meta.uid() == euid {
                out.push(e.path());
            }
        } else if depth > 0 {
            find_leaves(&e.path(), depth - 1, euid, out);
        }
    }
}

/// How hard to look for tagged processes of dead runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read every process's environment (`cargo reap clean`).
    Everything,
    /// Only when a dead run left a mark: a cgroup leaf or its run directory,
    /// which exists from before a run's first suite starts until after its
    /// last process is gone (a normal end removes it). The sweep at the
    /// start of a run uses this, so its cost does not grow with unrelated
    /// processes.
    WhenMarked,
}

/// How often `cargo reap run` sweeps: at most once per this interval per
/// user. A target runner or nextest wrapper starts once per test binary (or
/// test); the leftovers of a dead run (whose guardian, runner and guard were
/// all SIGKILLed at once) need not be looked for every few milliseconds.
/// `cargo reap test` and `cargo reap clean` sweep every time.
pub const RUNNER_SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// The name of the stamp, in the user directory, whose modification time is
/// the last sweep's start.
const SWEEP_STAMP: &str = "last-sweep";

/// Open (`O_CREAT`, plus `extra`) the stamp `name` in this user's directory,
/// through the directory's checked descriptor ([`crate::scratch::user_dir`]:
/// ours, not a link) and never through a link of that name.
fn open_stamp(name: &str, extra: OFlags) -> std::io::Result<std::os::fd::OwnedFd> {
    let (dir, _, _) =
        crate::scratch::user_dir().map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(rustix::fs::openat(
        &dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | extra,
        Mode::from_raw_mode(0o600),
    )?)
}

/// Is a sweep due (no sweep by this user within `interval`)? When it is,
/// the stamp is renewed now, so that runs starting meanwhile skip theirs.
/// A stamp that cannot be read or written makes the sweep due: never
/// skipped on an error.
pub fn sweep_due(interval: Duration) -> bool {
    let (dir, _) = crate::scratch::user_dir_path();
    let fresh = std::fs::symlink_metadata(dir.join(SWEEP_STAMP))
        .ok()
        .filter(|m| m.is_file() && m.uid() == rustix::process::geteuid().as_raw())
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < interval);
    // Fresh only counts in a user directory that is ours (the stamp is
    // renewed through its checked descriptor below).
    if fresh && crate::scratch::user_dir().is_ok() {
        return false;
    }
    if let Err(e) = open_stamp(SWEEP_STAMP, OFlags::TRUNC) {
        // Not ours, or not creatable: this run sweeps (and says what is
        // wrong with the directory when it makes its own), the next tries again.
        tracing::debug!("stale sweep stamp in {}: {e}", dir.display());
    }
    true
}

/// The session a `cargo reap run` belongs to — the nearest ancestor that is
/// not cargo-reap itself (cargo running the test binaries through the
/// target runner, nextest, a shell) — as `session-<pid>-<start time hex>`,
/// the name of its stamp in the user directory.
fn session_stamp_name() -> Option<String> {
    let own_exe = std::fs::read_link("/proc/self/exe").ok()?;
    let mut pid = rustix::process::getppid()?.as_raw_nonzero().get();
    // Our guardian (the cargo-reap the session started) is skipped.
    for _ in 0..2 {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        let p = reap_probe::snapshot(pid, ScanOptions::default()).ok()?;
        if exe.as_ref() != Some(&own_exe) {
            return Some(format!("session-{pid}-{:x}", p.start_time));
        }
        pid = p.ppid;
    }
    None
}

/// Is this the first `cargo reap run` of its session to say how it is
/// isolated? Only runs started by cargo (a target runner: cargo sets
/// `CARGO_MANIFEST_DIR`) or nextest (a wrapper script: `NEXTEST_RUN_ID`)
/// are counted per session; a command typed in a shell always says it. The
/// first creates the session's stamp (`O_EXCL`) and says it; the others
/// (cargo running 30 test binaries through the runner) stay quiet. Whenever
/// the session or its stamp cannot be told, it is said. The stamps of ended
/// sessions go with the next sweep.
pub fn first_of_session() -> bool {
    let by_a_runner = ["CARGO_MANIFEST_DIR", "NEXTEST_RUN_ID"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if !by_a_runner {
        return true;
    }
    let Some(name) = session_stamp_name() else {
        return true;
    };
    match open_stamp(&name, OFlags::EXCL) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => {
            tracing::debug!("session stamp {name}: {e}");
            true
        }
    }
}

/// `session-<pid>-<start hex>` of a session that has ended: its stamp goes.
fn session_ended(name: &str) -> bool {
    let Some((pid, start)) = name
        .strip_prefix("session-")
        .and_then(|rest| rest.split_once('-'))
    else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<i32>(), u64::from_str_radix(start, 16)) else {
        return false;
    };
    match reap_probe::snapshot(pid, ScanOptions::default()) {
        Ok(p) => p.start_time != start || p.is_zombie(),
        Err(reap_probe::ProbeError::Gone(_)) => true,
        Err(_) => false,
    }
}

/// Find (and unless `dry_run`, remove) leftovers of dead runs. What cannot
/// be removed or killed is in [`Sweep::problems`]; the sweep goes on past it.
pub fn sweep(dry_run: bool, scope: Scope) -> Result<Sweep, ContainError> {
    let me = Judge::me().map_err(|e| ContainError::Sys {
        what: "reading /proc/self/ns/pid",
        source: e,
    })?;
    let euid = rustix::process::geteuid().as_raw();
    let mut found = Sweep::default();
    let mut verdicts: BTreeMap<String, bool> = BTreeMap::new();
    let mut alive = |run: &str| {
        *verdicts
            .entry(run.to_string())
            .or_insert_with(|| runner_alive(run, me))
    };
    sweep_leaves(dry_run, euid, &mut alive, &mut found)?;
    sweep_user_dir(dry_run, euid, &mut alive, &mut found);

    // Tagged processes of dead runs.
    // (A dead run's directory that could not be removed is a mark too.)
    let marked =
        !found.cgroups.is_empty() || !found.tmp_dirs.is_empty() || !found.problems.is_empty();
    if scope == Scope::WhenMarked && !marked {
        return Ok(found);
    }
    let victims = tagged_of_dead_runs(euid, &mut alive)?;
    if dry_run {
        found
            .processes
            .extend(victims.into_iter().map(|(p, tag, cmd)| (p.pid, tag, cmd)));
        return Ok(found);
    }
    kill_victims(victims, &mut found)?;
    Ok(found)
}

/// Cgroup leaves of dead runs anywhere under the cgroup2 mount (a dead run
/// may have lived in another cgroup than ours): killed and removed.
fn sweep_leaves(
    dry_run: bool,
    euid: u32,
    alive: &mut impl FnMut(&str) -> bool,
    found: &mut Sweep,
) -> Result<(), ContainError> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| ContainError::Sys {
            what: "reading /proc/self/mountinfo",
            source: e,
        })?;
    let Some(Cgroup2Mount { mount_point, .. }) = find_cgroup2_mount(&mountinfo) else {
        return Ok(());
    };
    let mut leaves = Vec::new();
    find_leaves(&mount_point, 8, euid, &mut leaves);
    for leaf in leaves {
        let name = leaf
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(run) = run_id_of_leaf(&name) else {
            continue;
        };
        if alive(run) {
            continue;
        }
        match sweep_leaf(&leaf, dry_run) {
            Ok(Some(procs)) => found.cgroups.push((leaf, procs)),
            // A dead run's guard removed it under us: done.
            Ok(None) => {}
            Err(e) => found
                .problems
                .push(format!("could not remove cgroup {}: {e}", leaf.display())),
        }
    }
    Ok(())
}

/// Run directories of dead runs, in this user's directory only.
fn sweep_user_dir(
    dry_run: bool,
    euid: u32,
    alive: &mut impl FnMut(&str) -> bool,
    found: &mut Sweep,
) {
    let (user_dir, _) = crate::scratch::user_dir_path();
    match std::fs::symlink_metadata(&user_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Ok(m) if m.is_dir() && m.uid() == euid => sweep_run_dirs(&user_dir, dry_run, alive, found),
        Ok(_) => found.problems.push(format!(
            "{} is not a directory of yours: left alone",
            user_dir.display()
        )),
        Err(e) => found
            .problems
            .push(format!("cannot examine {}: {e}", user_dir.display())),
    }
}

/// A tagged process of a dead run: who, its tag, its command line.
type Victim = (ProcId, String, String);

/// Live processes tagged by a dead run, ours to kill (our own, or any as root).
fn tagged_of_dead_runs(
    euid: u32,
    alive: &mut impl FnMut(&str) -> bool,
) -> Result<Vec<Victim>, ContainError> {
    let procs = reap_probe::scan(ScanOptions {
        environ_tag: true,
        cgroup: false,
    })?;
    let mut victims = Vec::new();
    for p in procs.iter().filter(|p| !p.is_zombie()) {
        let Some(tag) = &p.tag else { continue };
        let Some(run) = tag.split('/').next() else {
            continue;
        };
        if alive(run) || !(euid == 0 || owned_by(p.pid, euid)) {
            continue;
        }
        victims.push((ProcId::from(p), tag.clone(), p.cmdline.join(" ")));
    }
    Ok(victims)
}

/// SIGKILL the victims one by one (a process we may not signal is reported,
/// the others die), wait for their exits and reap those that are ours.
fn kill_victims(victims: Vec<Victim>, found: &mut Sweep) -> Result<(), ContainError> {
    let mut signalled = Vec::new();
    for (p, tag, cmd) in victims {
        let killed = sys::open_pidfds(std::slice::from_ref(&p)).and_then(|fds| {
            sys::signal_pidfds(&fds, Signal::KILL)?;
            Ok(fds)
        });
        match killed {
            Ok(fds) => {
                signalled.extend(fds);
                found.processes.push((p.pid, tag, cmd));
            }
            Err(e) => found
                .problems
                .push(format!("could not kill pid {} [{tag}] {cmd}: {e}", p.pid)),
        }
    }
    if signalled.is_empty() {
        return Ok(());
    }
    if !sys::wait_pidfds(&signalled, Duration::from_secs(5))? {
        found.problems.push(
            "killed processes of dead runs did not all exit within 5s (uninterruptible sleep?)"
                .into(),
        );
    }
    sys::reap_if_our_zombies(signalled.iter().map(|(pid, _)| *pid))?;
    Ok(())
}

/// Does process `pid` run as `euid`? (Another user's process is not ours to
/// kill; that user's sweep does it. Unknown counts as no.)
fn owned_by(pid: i32, euid: u32) -> bool {
    std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == euid)
}

/// Kill what is in a dead run's leaf and remove it. `Ok(None)`: it vanished
/// under us (a dead run's guard may be removing it right now).
fn sweep_leaf(leaf: &Path, dry_run: bool) -> Result<Option<usize>, ContainError> {
    let procs = match std::fs::read_to_string(leaf.join("cgroup.procs")) {
        Ok(t) => t.lines().count(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ContainError::cgroup_io(
                "reading",
                leaf.join("cgroup.procs"),
                e,
            ))
        }
    };
    if dry_run {
        return Ok(Some(procs));
    }
    if procs > 0 {
        match std::fs::write(leaf.join("cgroup.kill"), "1") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ContainError::cgroup_io(
                    "writing",
                    leaf.join("cgroup.kill"),
                    e,
                ))
            }
        }
    }
    remove_when_empty(leaf)?;
    Ok(Some(procs))
}

/// Remove the run directories of dead runs in `user_dir` (without following
/// a symlink or crossing a mount: [`crate::tmpdir::remove_tree`]).
fn sweep_run_dirs(
    user_dir: &Path,
    dry_run: bool,
    alive: &mut impl FnMut(&str) -> bool,
    found: &mut Sweep,
) {
    let entries = match std::fs::read_dir(user_dir).and_then(|d| d.collect::<Result<Vec<_>, _>>()) {
        Ok(entries) => entries,
        Err(e) => {
            found
                .problems
                .push(format!("cannot list {}: {e}", user_dir.display()));
            return;
        }
    };
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if !dry_run && session_ended(&name) {
            if let Err(err) = std::fs::remove_file(e.path()) {
                tracing::debug!("removing the stamp {}: {err}", e.path().display());
            }
            continue;
        }
        if parse_run_id(&name).is_none() || alive(&name) {
            continue;
        }
        let path = e.path();
        if dry_run {
            found.tmp_dirs.push(path);
            continue;
        }
        let removal = crate::tmpdir::remove_tree(&path);
        if removal.top == crate::tmpdir::Top::Missing {
            continue;
        }
        if removal.complete() {
            found.tmp_dirs.push(path);
            continue;
        }
        found
            .problems
            .extend(removal.problems(&path.display().to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_run_ids_and_leaf_names() {
        assert_eq!(
            parse_run_id("1a2078da5bb-9948"),
            Some(RunId {
                ms: 0x1a2078da5bb,
                pid: 9948,
                pid_ns: None,
                start: None
            })
        );
        assert_eq!(
            parse_run_id("1a2078da5bb-9948-effffffc"),
            Some(RunId {
                ms: 0x1a2078da5bb,
                pid: 9948,
                pid_ns: Some(0xeffffffc),
                start: None
            })
        );
        assert_eq!(
            parse_run_id("1a2078da5bb-9948-effffffc-1f"),
            Some(RunId {
                ms: 0x1a2078da5bb,
                pid: 9948,
                pid_ns: Some(0xeffffffc),
                start: Some(0x1f)
            })
        );
        assert_eq!(parse_run_id("garbage"), None);
        assert_eq!(parse_run_id("1-2-3-4-5"), None);
        assert_eq!(parse_run_id("1-2-3-zz"), None);
        assert_eq!(parse_run_id("1-2-zz"), None);
        assert_eq!(
            run_id_of_leaf("cargo-reap.1a2078da5bb-9948-effffffc.3.1.leaky__daemon"),
            Some("1a2078da5bb-9948-effffffc")
        );
        assert_eq!(run_id_of_leaf("other"), None);
    }

    #[test]
    fn a_run_of_a_dead_pid_is_dead_and_ours_is_alive() {
        let ns = own_pid_namespace().unwrap();
        let me = Judge {
            pid: std::process::id() as i32,
            pid_ns: ns,
        };
        assert!(runner_alive(&format!("1-{}-{ns:x}", me.pid), me));
        let run_id = new_run_id().unwrap();
        assert!(runner_alive(&run_id, me), "{run_id}");
        // Our pid with another start time: a dead run whose pid we reuse.
        let start = own_start_time().unwrap();
        assert_eq!(start, reap_probe::start_time(me.pid).unwrap());
        assert!(!runner_alive(
            &format!("1-{}-{ns:x}-{:x}", me.pid, start + 1),
            me
        ));
        // A live process that is not the runner (another start time), whatever its name.
        assert!(!runner_alive(&format!("1-1-{ns:x}-{:x}", u64::MAX), me));
        // Without a start time, a live pid is never judged dead.
        assert!(runner_alive(&format!("1-1-{ns:x}"), me));
        // pid_max is at most 2^22: this pid cannot exist.
        assert!(!runner_alive(&format!("1-99999999-{ns:x}"), me));
        assert!(!runner_alive("1-99999999", me));
        // A run of another pid namespace is not ours to judge.
        assert!(runner_alive(&format!("1-99999999-{:x}", ns + 1), me));
        // An unparsable id is left alone.
        assert!(runner_alive("not-an-id", me));
    }
}
