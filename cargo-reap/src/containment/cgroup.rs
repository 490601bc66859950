//! cgroup v2 containment: one fresh leaf per suite attempt, under the runner's
//! own cgroup. The child is born in its leaf (`clone3(CLONE_INTO_CGROUP)`,
//! [`super::spawn`]); where the kernel cannot, it moves itself there before
//! it executes (an async-signal-safe `open` + `write("0")` of a path prepared
//! beforehand, [`SpawnPath::Move`]). Either way it is inside before its first
//! instruction. Killing is `cgroup.kill`; emptiness is watched through
//! `cgroup.events` (poll, no sleeping).

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reap_probe::{ProcessInfo, ScanOptions};
use rustix::event::PollFlags;
use rustix::process::Signal;

use super::layers;
use super::pgroup::{Active, Concurrency, Selector};
use super::spawn::{self, Cloned, Spawn};
use super::{Containment, IsolationKind};
use crate::error::ContainError;
use crate::sys::{self, ProcId};

/// How long `cgroup.kill` may take to empty a leaf before we call it stuck.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// The runner's own cgroup directory, under which leaves are created.
#[derive(Debug)]
pub struct CgroupParent {
    dir: PathBuf,
    run_id: String,
    /// `pids.max` for every leaf (`--max-pids`), when the controller is on.
    max_pids: Option<u64>,
    /// The suites of the run running now (the orphan rule).
    run: Arc<Concurrency>,
    /// How a suite gets into its leaf, as the probe found.
    spawn_path: SpawnPath,
}

/// How a suite's root gets into its leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnPath {
    /// Born there: `clone3(CLONE_INTO_CGROUP)` (Linux 5.7): no write to
    /// `cgroup.procs`, no wait for an RCU grace period.
    Born,
    /// Moved there by itself before it executes (`write("0")` into the
    /// leaf's `cgroup.procs`): why `clone3` was not used.
    Move(String),
}

/// The environment switch that forces [`SpawnPath::Move`] (`move`), to test
/// and measure the fallback on a kernel that has `clone3`.
pub const SPAWN_VAR: &str = "CARGO_REAP_SPAWN";

impl SpawnPath {
    /// What the isolation line says about it (empty when born in the leaf).
    pub fn note(&self) -> String {
        match self {
            SpawnPath::Born => String::new(),
            SpawnPath::Move(why) => format!(
                "; each suite moves itself into its leaf before exec ({why}): a move after an idle spell (the first of a run, one after a suite that ran long, each `cargo reap run` call) waits out an RCU grace period, 10-20 ms; {}",
                if why.starts_with(SPAWN_VAR) {
                    format!("without {SPAWN_VAR}, suites are spawned straight into their leaves")
                } else {
                    "Linux 5.7 or newer without a seccomp filter on clone3 spawns straight into the leaf".into()
                }
            ),
        }
    }
}

/// A cgroup2 mount: where it is mounted and which cgroup is its root.
#[derive(Debug, PartialEq, Eq)]
pub struct Cgroup2Mount {
    pub mount_point: PathBuf,
    pub root: String,
}

/// Find the first cgroup2 mount in a `/proc/self/mountinfo` text.
pub fn find_cgroup2_mount(mountinfo: &str) -> Option<Cgroup2Mount> {
    mountinfo.lines().find_map(|line| {
        let (pre, post) = line.split_once(" - ")?;
        if post.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let f: Vec<&str> = pre.split_whitespace().collect();
        Some(Cgroup2Mount {
            root: unescape_mountinfo(f.get(3)?),
            mount_point: PathBuf::from(unescape_mountinfo(f.get(4)?)),
        })
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub(crate) fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup v2 path of a process from its `/proc/PID/cgroup` text (`0::/path`).
pub fn own_cgroup_v2(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(|p| p.trim_end().to_string()))
}

/// Map a cgroup path to a directory under the mount, if the mount shows it.
pub fn cgroup_dir(mount: &Cgroup2Mount, cgroup: &str) -> Option<PathBuf> {
    if cgroup.ends_with(" (deleted)") {
        return None;
    }
    let root = mount.root.trim_end_matches('/');
    let rel = cgroup.strip_prefix(root)?;
    if !(rel.is_empty() || rel.starts_with('/')) {
        return None;
    }
    Some(mount.mount_point.join(rel.trim_start_matches('/')))
}

/// The directory of this process's own cgroup v2, under the cgroup2 mount
/// this mount namespace sees.
///
/// Found once per process (and inherited by the runner, forked after the
/// guardian asked): the scope check before the run and the run's setup
/// both need it, and each reading parses the whole mount table. Nothing of
/// ours moves the process; the probe proves the directory usable.
pub fn own_dir() -> Result<PathBuf, ContainError> {
    static OWN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(dir) = OWN.get() {
        return Ok(dir.clone());
    }
    let dir = find_own_dir()?;
    Ok(OWN.get_or_init(|| dir).clone())
}

fn find_own_dir() -> Result<PathBuf, ContainError> {
    let mountinfo = read(Path::new("/proc/self/mountinfo"))?;
    let mount = find_cgroup2_mount(&mountinfo).ok_or(ContainError::NoCgroup2Mount)?;
    let own = own_cgroup_v2(&read(Path::new("/proc/self/cgroup"))?)
        .ok_or_else(|| ContainError::OwnCgroup("no `0::` line".into()))?;
    cgroup_dir(&mount, &own).ok_or_else(|| {
        ContainError::OwnCgroup(format!(
            "cgroup {own} is not visible under the cgroup2 mount at {} (root {})",
            mount.mount_point.display(),
            mount.root
        ))
    })
}

/// Start a child the way a suite's root will get into `leaf` — born there
/// (`cgroup` given: `clone3(CLONE_INTO_CGROUP)`, vfork-style where the
/// kernel allows: [`spawn::exit_at_once_in`]) or by the move (`procs`, its
/// `cgroup.procs`) — that exits with 0, or with the errno of the failed
/// move; wait for it. The moving child makes only raw system calls on memory
/// prepared before the clone (async-signal-safe, as a forked child of a
/// threaded process must). No exec of a program.
fn probe_child(cgroup: Option<&OwnedFd>, procs: &std::ffi::CStr) -> io::Result<()> {
    let step = layers::ChildStep::JoinCgroup(procs.to_owned());
    let child = sys::spawn_claimed(|| {
        if let Some(fd) = cgroup {
            return spawn::exit_at_once_in(fd.as_raw_fd());
        }
        // SAFETY: the child makes the move's raw system calls and `_exit`s;
        // it never returns.
        match unsafe { spawn::clone_pidfd(None) }? {
            Cloned::Child => {
                let errno = step
                    .run_in_child()
                    .err()
                    .and_then(|e| e.raw_os_error())
                    .unwrap_or(0);
                // SAFETY: _exit is async-signal-safe; nothing of the parent's runs here.
                unsafe { libc::_exit(errno) }
            }
            Cloned::Parent { pid, pidfd } => Ok((pid, pidfd)),
        }
    })?;
    match child.reap().map_err(|e| io::Error::other(e.to_string()))? {
        sys::ExitInfo { code: Some(0), .. } => Ok(()),
        sys::ExitInfo {
            code: Some(errno), ..
        } => Err(io::Error::from_raw_os_error(errno)),
        other => Err(io::Error::other(format!(
            "the probe child ended as {other:?}"
        ))),
    }
}

/// Why `clone3(CLONE_INTO_CGROUP)` was refused, for the fallback line.
fn refusal(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => {
            "ENOSYS: no clone3 (Linux < 5.3), or a seccomp filter refuses it".into()
        }
        Some(libc::E2BIG) => "E2BIG: no CLONE_INTO_CGROUP (Linux < 5.7)".into(),
        Some(libc::EINVAL) => "EINVAL: no CLONE_INTO_CGROUP (Linux < 5.7)".into(),
        Some(libc::EPERM) => {
            "EPERM: a seccomp filter, or the cgroup's permissions, refuse it".into()
        }
        _ => e.to_string(),
    }
}

fn read(path: &Path) -> Result<String, ContainError> {
    fs::read_to_string(path).map_err(|e| ContainError::cgroup_io("reading", path, e))
}

impl CgroupParent {
    /// Locate the runner's cgroup and prove that a leaf can be created and
    /// joined there (by doing it), rather than trusting permission bits.
    ///
    /// `force_move`: the suites move into their leaves even where `clone3`
    /// could place them ([`SPAWN_VAR`]`=move`).
    pub fn detect(run_id: &str, force_move: bool) -> Result<CgroupParent, ContainError> {
        let dir = own_dir()?;
        let mut parent = CgroupParent {
            dir,
            run_id: run_id.to_string(),
            max_pids: None,
            run: Arc::default(),
            spawn_path: SpawnPath::Born,
        };
        parent.spawn_path = parent.probe(force_move)?;
        Ok(parent)
    }

    /// How the run's suites get into their leaves.
    pub fn spawn_path(&self) -> &SpawnPath {
        &self.spawn_path
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Cap every leaf's processes at `n` (`pids.max`): enables the pids
    /// controller for the leaves when the parent offers it. Err says why not.
    pub fn limit_pids(&mut self, n: u64) -> Result<(), String> {
        let controllers = std::fs::read_to_string(self.dir.join("cgroup.controllers"))
            .map_err(|e| format!("reading cgroup.controllers: {e}"))?;
        if !controllers.split_whitespace().any(|c| c == "pids") {
            return Err(format!(
                "the pids controller is not available in {} (on hybrid hosts it is bound to cgroup v1)",
                self.dir.display()
            ));
        }
        let subtree = self.dir.join("cgroup.subtree_control");
        let on = std::fs::read_to_string(&subtree)
            .map_err(|e| format!("reading {}: {e}", subtree.display()))?;
        if !on.split_whitespace().any(|c| c == "pids") {
            std::fs::write(&subtree, "+pids")
                .map_err(|e| format!("enabling pids in {}: {e}", subtree.display()))?;
        }
        self.max_pids = Some(n);
        Ok(())
    }

    /// Create a trial leaf, start a no-op process inside it as the suites
    /// will be (born there; where the kernel refuses, moved), remove the
    /// leaf. Returns how the suites will get into their leaves.
    ///
    /// The process is a bare clone that `_exit`s: no exec of a program
    /// (that cost a whole start of cargo-reap).
    fn probe(&self, force_move: bool) -> Result<SpawnPath, ContainError> {
        let leaf = self.create_leaf("", "probe")?;
        if !leaf.dir.join("cgroup.kill").exists() {
            return Err(ContainError::cgroup_io(
                "kernel lacks cgroup.kill (Linux >= 5.14 needed) in",
                leaf.dir.clone(),
                io::Error::from(io::ErrorKind::Unsupported),
            ));
        }
        let born = if force_move {
            Err(format!("{SPAWN_VAR}=move"))
        } else {
            probe_child(Some(&leaf.dir_fd), &leaf.procs_c)
                .map_err(|e| format!("clone3(CLONE_INTO_CGROUP) refused: {}", refusal(&e)))
        };
        let path = match born {
            Ok(()) => SpawnPath::Born,
            Err(why) => {
                probe_child(None, &leaf.procs_c).map_err(|e| {
                    ContainError::cgroup_io("cannot move a process into", leaf.dir.clone(), e)
                })?;
                SpawnPath::Move(why)
            }
        };
        Box::new(leaf).close()?;
        Ok(path)
    }

    /// Create a fresh leaf for one suite attempt.
    pub fn create_leaf(&self, tag: &str, name: &str) -> Result<CgroupContainment, ContainError> {
        // The run id carries the runner's pid: a later run can tell a stale leaf.
        let dir = self
            .dir
            .join(format!("cargo-reap.{}.{}", self.run_id, name));
        fs::create_dir(&dir)
            .map_err(|e| ContainError::cgroup_io("cannot create cgroup", &dir, e))?;
        let procs_c = CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
            .expect("cgroup paths have no NUL bytes");
        let dir_fd = match rustix::fs::open(
            &dir,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) {
            Ok(fd) => Arc::new(fd),
            Err(e) => {
                if let Err(rm) = fs::remove_dir(&dir) {
                    eprintln!("cargo-reap: warning: removing {}: {rm}", dir.display());
                }
                return Err(ContainError::cgroup_io("opening", &dir, e.into()));
            }
        };
        if let Some(n) = self.max_pids {
            let path = dir.join("pids.max");
            if let Err(e) = fs::write(&path, n.to_string()) {
                // Do not leave the fresh leaf behind on this error path.
                if let Err(rm) = fs::remove_dir(&dir) {
                    eprintln!("cargo-reap: warning: removing {}: {rm}", dir.display());
                }
                return Err(ContainError::cgroup_io("writing", path, e));
            }
        }
        Ok(CgroupContainment {
            dir,
            dir_fd,
            born: self.spawn_path == SpawnPath::Born,
            procs_c,
            tag: tag.to_string(),
            sel: Selector::new(tag, &self.run),
            counted: Active::new(&self.run),
            closed: false,
        })
    }
}

/// One leaf cgroup holding one suite attempt.
///
/// Its members are the leaf's (and its child cgroups') processes **and**
/// whatever the process-group rules find ([`Selector`]): the root's
/// descendants, its group and session, the tag, and orphans reparented to
/// the runner while this suite ran alone. A root suite can write a pid into
/// any `cgroup.procs` and so leave its leaf; it cannot leave the runner's
/// tree (the runner is the child subreaper), so it is still found.
pub struct CgroupContainment {
    dir: PathBuf,
    /// The leaf, open: what a suite's root is born in (`CLONE_INTO_CGROUP`).
    dir_fd: Arc<OwnedFd>,
    /// Born in the leaf ([`SpawnPath::Born`]), else moved into it.
    born: bool,
    procs_c: CString,
    tag: String,
    sel: Selector,
    counted: Active,
    closed: bool,
}

impl std::fmt::Debug for CgroupContainment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CgroupContainment")
            .field("dir", &self.dir)
            .field("tag", &self.tag)
            .finish()
    }
}

impl CgroupContainment {
    fn pids(&self) -> Result<Vec<i32>, ContainError> {
        procs_in_tree(&self.dir)?.ok_or_else(|| {
            ContainError::cgroup_io(
                "reading",
                self.dir.join("cgroup.procs"),
                io::ErrorKind::NotFound.into(),
            )
        })
    }

    fn write_file(&self, name: &str, value: &str) -> Result<(), ContainError> {
        let path = self.dir.join(name);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| ContainError::cgroup_io("opening", &path, e))?;
        f.write_all(value.as_bytes())
            .map_err(|e| ContainError::cgroup_io("writing", &path, e))
    }

    /// Members of the suite outside the leaf's tree (they left it: a root
    /// suite wrote their pid into another cgroup's `cgroup.procs`).
    fn outside(&self) -> Result<Vec<ProcessInfo>, ContainError> {
        let inside = procs_in_tree(&self.dir)?.unwrap_or_default();
        let mut found = self.sel.members()?;
        found.retain(|p| !inside.contains(&p.pid));
        Ok(found)
    }

    /// Cgroups of the leaf's tree with `cgroup.freeze` = 1.
    fn frozen_cgroups(&self) -> Result<Vec<PathBuf>, ContainError> {
        let mut out = Vec::new();
        let mut todo = vec![self.dir.clone()];
        while let Some(cg) = todo.pop() {
            let path = cg.join("cgroup.freeze");
            match fs::read_to_string(&path) {
                Ok(t) if t.trim() == "1" => out.push(cg.clone()),
                Ok(_) => {}
                // Gone meanwhile, or a kernel without the v2 freezer.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ContainError::cgroup_io("reading", path, e)),
            }
            let entries = match fs::read_dir(&cg) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ContainError::cgroup_io("listing", &cg, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| ContainError::cgroup_io("listing", &cg, e))?;
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    todo.push(entry.path());
                }
            }
        }
        Ok(out)
    }

    /// Thaw every frozen cgroup of the leaf's tree: a frozen process acts on
    /// SIGTERM only once thawed (SIGKILL and cgroup.kill work regardless).
    fn thaw(&self) -> Result<(), ContainError> {
        for cg in self.frozen_cgroups()? {
            let path = cg.join("cgroup.freeze");
            match fs::write(&path, "0") {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ContainError::cgroup_io("thawing", path, e)),
            }
        }
        Ok(())
    }

    fn remove(&mut self) -> Result<(), ContainError> {
        match fs::remove_dir(&self.dir) {
            Ok(()) => {
                self.closed = true;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(ContainError::cgroup_io(
                "cannot remove cgroup",
                &self.dir,
                e,
            )),
        }
    }
}

/// Wait until the cgroup at `dir` holds no process (`populated 0` in
/// `cgroup.events`), at most `timeout`: true when it is empty (or gone).
///
/// Event-driven: kernfs flags a change of `cgroup.events` as POLLPRI |
/// POLLERR, but only relative to the last read of the open file, so the file
/// is read before every poll (a poll on a fresh, unread file returns at once).
pub fn wait_until_empty(dir: &Path, timeout: Duration) -> Result<bool, ContainError> {
    wait_until_empty_or(dir, timeout, None)
}

/// [`wait_until_empty`], also ending (false) as soon as `cancel` is readable.
pub fn wait_until_empty_or(
    dir: &Path,
    timeout: Duration,
    cancel: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<bool, ContainError> {
    let path = dir.join("cgroup.events");
    let events = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(ContainError::cgroup_io("opening", &path, e)),
    };
    let deadline = Instant::now() + timeout;
    loop {
        let mut buf = [0u8; 256];
        let n = match events.read_at(&mut buf, 0) {
            Ok(n) => n,
            // The leaf was removed under us (ENODEV on kernfs): nothing inside.
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(true),
            Err(e) => return Err(ContainError::cgroup_io("reading", &path, e)),
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        if !text.lines().any(|l| l.trim() == "populated 1") {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let mut fds = vec![(events.as_fd(), PollFlags::PRI | PollFlags::ERR)];
        fds.extend(cancel.map(|c| (c, PollFlags::IN)));
        let ready = sys::wait_any(&fds, Some(left))?;
        if ready.contains(&1) {
            return Ok(false);
        }
    }
}

/// The pids in the cgroup `dir` and in every cgroup below it (a suite may
/// make child cgroups: a nested cargo-reap does, and `cgroup.procs` lists a
/// cgroup's own members only). `None` if `dir` itself is gone; a child cgroup
/// removed meanwhile is skipped.
pub fn procs_in_tree(dir: &Path) -> Result<Option<Vec<i32>>, ContainError> {
    let mut pids = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(cg) = todo.pop() {
        let gone_ok = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
        let path = cg.join("cgroup.procs");
        match fs::read_to_string(&path) {
            Ok(text) => pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
            Err(e) if gone_ok(&e) && cg == dir => return Ok(None),
            Err(e) if gone_ok(&e) => continue,
            Err(e) => return Err(ContainError::cgroup_io("reading", path, e)),
        }
        let entries = match fs::read_dir(&cg) {
            Ok(entries) => entries,
            Err(e) if gone_ok(&e) => continue,
            Err(e) => return Err(ContainError::cgroup_io("listing", &cg, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| ContainError::cgroup_io("listing", &cg, e))?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(entry.path());
            }
        }
    }
    Ok(Some(pids))
}

/// SIGKILL, by pidfd with its start time checked, every live process still
/// listed in the cgroup `dir` or below it; returns how many were signalled.
/// Needed after `cgroup.kill`, which skips a process whose main thread has
/// exited while other threads run on (seen on Linux 6.18).
pub fn kill_listed_members(dir: &Path) -> Result<usize, ContainError> {
    let Some(pids) = procs_in_tree(dir)? else {
        return Ok(0);
    };
    let mut ids = Vec::new();
    for pid in pids {
        match reap_probe::snapshot(pid, ScanOptions::default()) {
            Ok(p) if !p.is_zombie() => ids.push(ProcId::from(&p)),
            Ok(_) | Err(reap_probe::ProbeError::Gone(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // EPERM (another user's process in a delegated leaf): cgroup.kill,
    // which needs no permission on the process, got it.
    Ok(sys::signal_pidfds_each(&sys::open_pidfds(&ids)?, Signal::KILL)?.count)
}

/// rmdir a leaf once the kernel has emptied it (after a `cgroup.kill`, which
/// is asynchronous), child cgroups first; at most 10 s.
pub fn remove_when_empty(leaf: &Path) -> Result<(), ContainError> {
    const LIMIT: Duration = Duration::from_secs(10);
    let deadline = Instant::now() + LIMIT;
    loop {
        match fs::remove_dir(leaf) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            // EBUSY: still populated (the kill is asynchronous).
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || !wait_until_empty(leaf, left)? {
                    return Err(ContainError::CgroupStuck {
                        path: leaf.to_path_buf(),
                        secs: LIMIT.as_secs(),
                    });
                }
                // Empty now; still busy means child cgroups the suite made.
                let children = match fs::read_dir(leaf) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(ContainError::cgroup_io("listing", leaf, e)),
                };
                for entry in children {
                    let entry = entry.map_err(|e| ContainError::cgroup_io("listing", leaf, e))?;
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        remove_when_empty(&entry.path())?;
                    }
                }
            }
            Err(e) => return Err(ContainError::cgroup_io("cannot remove cgroup", leaf, e)),
        }
    }
}

impl Containment for CgroupContainment {
    fn kind(&self) -> IsolationKind {
        IsolationKind::Cgroup
    }

    fn prepare(&self, cmd: &mut Spawn) -> Result<(), ContainError> {
        // Counted before the fork, as in process-group mode: the orphan rule
        // holds only while one suite runs.
        self.counted.mark();
        if self.born {
            layers::apply(cmd, &layers::suite(&self.tag, None));
            cmd.born_in(Arc::clone(&self.dir_fd));
        } else {
            layers::apply(cmd, &layers::suite(&self.tag, Some(&self.procs_c)));
        }
        Ok(())
    }

    fn set_root(&mut self, pid: i32) {
        self.sel.set_root(pid);
    }

    fn sampler(&self) -> super::Sampler {
        super::Sampler::Cgroup(self.dir.clone())
    }

    fn guard_key(&self) -> Option<super::GuardKey> {
        Some(super::GuardKey::Cgroup(self.dir.clone()))
    }

    fn members(&self) -> Result<Vec<ProcessInfo>, ContainError> {
        let opts = ScanOptions {
            environ_tag: true,
            cgroup: false,
        };
        let mut out = Vec::new();
        for pid in self.pids()? {
            match reap_probe::snapshot(pid, opts) {
                Ok(p) if !p.is_zombie() && !sys::is_known_unkillable(p.pid, p.start_time) => {
                    out.push(p)
                }
                Ok(_) | Err(reap_probe::ProbeError::Gone(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        for p in self.outside()? {
            if !out.iter().any(|o| o.pid == p.pid) {
                out.push(p);
            }
        }
        Ok(out)
    }

    fn signal_all(&self, sig: Signal) -> Result<usize, ContainError> {
        if sig != Signal::KILL {
            // A frozen process would hold the signal until thawed.
            self.thaw()?;
        }
        let mut ids: Vec<ProcId> = self
            .pids()?
            .into_iter()
            .map(|pid| ProcId {
                pid,
                start_time: None,
            })
            .collect();
        ids.extend(self.outside()?.iter().map(ProcId::from));
        Ok(sys::signal_pidfds_each(&sys::open_pidfds(&ids)?, sig)?.count)
    }

    fn wait_empty(
        &self,
        timeout: Duration,
        cancel: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<bool, ContainError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if !wait_until_empty_or(&self.dir, left, cancel)? {
                return Ok(false);
            }
            // The leaf is empty. Outside it, a suite process whose root has
            // exited is an orphan of the runner or below one; only then is
            // the whole machine scanned (a tagged process outside the
            // runner's tree is found by the end-of-trial sweep).
            if !self.sel.may_have_orphans()? || self.outside()?.is_empty() {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !super::pgroup::wait_gone(|| self.outside(), left, cancel)? {
                return Ok(false);
            }
            // Gone outside; look at the leaf again (they may have forked).
        }
    }

    fn kill_all(&self) -> Result<super::Killed, ContainError> {
        self.write_file("cgroup.kill", "1")?;
        kill_listed_members(&self.dir)?;
        if !wait_until_empty(&self.dir, KILL_TIMEOUT)? {
            return Err(ContainError::CgroupStuck {
                path: self.dir.clone(),
                secs: KILL_TIMEOUT.as_secs(),
            });
        }
        // What left the leaf: killed by pidfd, in rounds.
        let mut killed = super::pgroup::kill_in_rounds(&self.tag, || self.outside())?;
        killed.rounds += 1;
        Ok(killed)
    }

    fn frozen(&self) -> Result<Vec<PathBuf>, ContainError> {
        self.frozen_cgroups()
    }

    fn close(mut self: Box<Self>) -> Result<(), ContainError> {
        match self.remove() {
            Ok(()) => Ok(()),
            Err(_) => {
                // Busy: something is still inside, or child cgroups the
                // suite made. Kill everything, then remove them all.
                self.kill_all()?;
                remove_when_empty(&self.dir)?;
                self.closed = true;
                Ok(())
            }
        }
    }
}

impl Drop for CgroupContainment {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // An error path skipped close(): never leave the leaf or its processes.
        if let Err(e) = self.kill_all().and_then(|_| self.remove()) {
            eprintln!(
                "cargo-reap: warning: cleaning up {}: {e}",
                self.dir.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn finds_hybrid_and_pure_v2_mounts() {
        let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
            32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let m = find_cgroup2_mount(hybrid).unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(m.root, "/");
        let pure = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            find_cgroup2_mount(pure).unwrap().mount_point,
            PathBuf::from("/sys/fs/cgroup")
        );
        assert!(find_cgroup2_mount("1 2 0:1 / / rw - ext4 /dev/vda rw\n").is_none());
    }

    #[test]
    fn unescapes_mount_points() {
        assert_eq!(unescape_mountinfo(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn maps_own_cgroup_under_the_mount_root() {
        let m = Cgroup2Mount {
            mount_point: "/sys/fs/cgroup".into(),
            root: "/".into(),
        };
        assert_eq!(
            cgroup_dir(&m, "/user.slice/session-1.scope"),
            Some(PathBuf::from("/sys/fs/cgroup/user.slice/session-1.scope"))
        );
        assert_eq!(cgroup_dir(&m, "/"), Some(PathBuf::from("/sys/fs/cgroup")));
        // A container whose mount shows only its own subtree.
        let c = Cgroup2Mount {
            mount_point: "/sys/fs/cgroup".into(),
            root: "/docker/abc".into(),
        };
        assert_eq!(
            cgroup_dir(&c, "/docker/abc/x"),
            Some(PathBuf::from("/sys/fs/cgroup/x"))
        );
        assert_eq!(cgroup_dir(&c, "/docker/abcd"), None);
        assert_eq!(cgroup_dir(&c, "/other"), None);
    }

    #[test]
    fn reads_the_v2_line() {
        assert_eq!(
            own_cgroup_v2("4:memory:/x\n0::/a/b\n").as_deref(),
            Some("/a/b")
        );
        assert_eq!(own_cgroup_v2("4:memory:/x\n"), None);
    }

    /// A suite's root is born in its leaf (no move step) where the probe
    /// found `clone3(CLONE_INTO_CGROUP)` working, and moves itself there as
    /// the last step before exec where it did not. Needs root (CI runs as root).
    #[test]
    fn a_root_is_born_in_its_leaf_or_moved_there_last() {
        for path in [SpawnPath::Born, SpawnPath::Move("test".into())] {
            let parent = CgroupParent {
                dir: own_dir().unwrap(),
                run_id: format!("unit-{}", std::process::id()),
                max_pids: None,
                run: Arc::default(),
                spawn_path: path.clone(),
            };
            let leaf = parent.create_leaf("unit/plan", "plan").unwrap();
            let mut cmd = Spawn::new("true");
            leaf.prepare(&mut cmd).unwrap();
            let join = layers::ChildStep::JoinCgroup(leaf.procs_c.clone());
            match path {
                SpawnPath::Born => {
                    assert!(cmd.is_born_in_cgroup());
                    assert!(!cmd.steps().contains(&join), "{:?}", cmd.steps());
                }
                SpawnPath::Move(_) => {
                    assert!(!cmd.is_born_in_cgroup());
                    assert_eq!(cmd.steps().last(), Some(&join));
                }
            }
            Box::new(leaf).close().unwrap();
        }
    }

    /// cgroup.kill is asynchronous: removal waits on cgroup.events (read
    /// before each poll) until the kernel has emptied the leaf, and removes
    /// child cgroups a suite made, deepest first; their members count as the
    /// leaf's. Needs root (CI runs as root).
    #[test]
    fn removes_a_killed_leaf_once_the_kernel_emptied_it() {
        let _serial = crate::sys::child_spawning_test();
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mount = find_cgroup2_mount(&mountinfo).expect("a cgroup2 mount");
        let leaf = mount
            .mount_point
            .join(format!("cargo-reap-unit-{}", std::process::id()));
        let nested = leaf.join("nested");
        fs::create_dir(&leaf).unwrap();
        fs::create_dir(&nested).unwrap();
        /// Kills and reaps the children on every path (a failed assert too).
        struct Children(Vec<std::process::Child>);
        impl Drop for Children {
            fn drop(&mut self) {
                for c in &mut self.0 {
                    if let Err(e) = c.kill().and_then(|()| c.wait().map(drop)) {
                        eprintln!("cleaning up child {}: {e}", c.id());
                    }
                }
            }
        }
        let mut children = Children(Vec::new());
        for dir in [&leaf, &nested, &nested] {
            let c = Command::new("sleep").arg("3795").spawn().unwrap();
            let pid = c.id();
            children.0.push(c);
            fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
        }
        assert!(!wait_until_empty(&leaf, Duration::ZERO).unwrap());
        // Members of child cgroups count as the leaf's.
        let mut listed = procs_in_tree(&leaf).unwrap().expect("the leaf exists");
        listed.sort_unstable();
        let mut spawned: Vec<i32> = children.0.iter().map(|c| c.id() as i32).collect();
        spawned.sort_unstable();
        assert_eq!(listed, spawned);
        fs::write(leaf.join("cgroup.kill"), "1").unwrap();
        let removed = remove_when_empty(&leaf);
        for c in &mut children.0 {
            let status = c.wait().unwrap();
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(9)
            );
        }
        removed.unwrap();
        assert!(!leaf.exists());
        assert_eq!(procs_in_tree(&leaf).unwrap(), None, "gone");
        assert!(
            wait_until_empty(&leaf, Duration::ZERO).unwrap(),
            "gone is empty"
        );
    }
}
