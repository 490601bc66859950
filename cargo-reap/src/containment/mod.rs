//! Containment: where a suite's processes live, so that every one of them can be
//! found and killed, however it escaped (double fork, `setsid`, own process group).
//!
//! One small interface, [`Containment`], with two implementations:
//! - [`cgroup::CgroupContainment`]: a fresh cgroup v2 leaf per suite attempt; the
//!   child is born in it ([`spawn`]: `clone3(CLONE_INTO_CGROUP)`), or where the
//!   kernel cannot, moves itself there before it executes.
//! - [`pgroup::ProcessGroupContainment`]: own process group + the runner as child
//!   subreaper + an environment tag; survivors are found by scanning `/proc`.
//!
//! [`Isolation`] picks one per run (`--isolation auto|cgroup|process-group`).
//! [`layers`] names, once each, the steps every spawned child goes through
//! before it runs (tag, process group, signal mask, descriptors, cgroup join);
//! [`spawn`] starts a suite's process with them ([`spawn::Spawn`], our own
//! command: std's cannot be born in a cgroup).

pub mod cgroup;
pub mod delegation;
pub mod layers;
pub mod pgroup;
pub mod spawn;

use std::os::fd::BorrowedFd;
use std::time::Duration;

use reap_probe::ProcessInfo;
use rustix::process::Signal;

use crate::error::ContainError;

pub use reap_report::IsolationKind;

/// One suite attempt's containment.
pub trait Containment: Send {
    fn kind(&self) -> IsolationKind;

    /// Configure `cmd` so that the spawned process is contained from its first
    /// instruction ([`layers::suite`]: tag, own process group, empty signal
    /// mask, no inherited descriptors; in cgroup mode born in the leaf, or
    /// the move into it last).
    fn prepare(&self, cmd: &mut spawn::Spawn) -> Result<(), ContainError>;

    /// Tell the containment the pid of the spawned test binary.
    fn set_root(&mut self, pid: i32);

    /// Every live (non-zombie) process of the suite, as snapshots.
    fn members(&self) -> Result<Vec<ProcessInfo>, ContainError>;

    /// Send `sig` to every member once. Returns how many were signalled.
    fn signal_all(&self, sig: Signal) -> Result<usize, ContainError>;

    /// Wait, without polling, until no live member remains, `timeout` passes
    /// or `cancel` becomes readable (a second interrupt: no more grace).
    /// Returns true when empty.
    fn wait_empty(
        &self,
        timeout: Duration,
        cancel: Option<BorrowedFd<'_>>,
    ) -> Result<bool, ContainError>;

    /// SIGKILL everything until nothing is left (except processes we may not
    /// signal: listed in [`Killed::unkillable`]).
    fn kill_all(&self) -> Result<Killed, ContainError>;

    /// Frozen cgroups of the suite (`cgroup.freeze` = 1, e.g. a test froze
    /// its own cgroup): its processes run nothing and act on no signal but
    /// SIGKILL until thawed. Empty where there are no cgroups.
    fn frozen(&self) -> Result<Vec<std::path::PathBuf>, ContainError> {
        Ok(Vec::new())
    }

    /// A handle that measures the suite's processes and memory from another thread.
    fn sampler(&self) -> Sampler;

    /// What the lifeline guard must kill if the runner dies (after `set_root`).
    fn guard_key(&self) -> Option<GuardKey>;

    /// Remove the containment (the cgroup leaf). Must be empty.
    fn close(self: Box<Self>) -> Result<(), ContainError>;
}

/// Measures a running suite from another thread (`suite::sample`): its
/// live processes, and the cgroup's `memory.current` where the memory
/// controller is on.
pub enum Sampler {
    Cgroup(std::path::PathBuf),
    ProcessGroup(pgroup::Selector),
}

impl Sampler {
    /// The suite's processes now (none once its leaf is gone).
    pub fn members(&self) -> Result<Vec<ProcessInfo>, ContainError> {
        match self {
            Sampler::Cgroup(dir) => {
                let Some(pids) = cgroup::procs_in_tree(dir)? else {
                    return Ok(Vec::new());
                };
                let mut v = Vec::with_capacity(pids.len());
                for pid in pids {
                    match reap_probe::snapshot(pid, reap_probe::ScanOptions::default()) {
                        Ok(p) => v.push(p),
                        Err(reap_probe::ProbeError::Gone(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(v)
            }
            Sampler::ProcessGroup(sel) => sel.members(),
        }
    }

    /// `memory.current` of the leaf, when the memory controller is enabled
    /// (absent or unreadable: not enabled here — RSS is used instead).
    pub fn memory_current(&self) -> Option<u64> {
        match self {
            Sampler::Cgroup(dir) => std::fs::read_to_string(dir.join("memory.current"))
                .ok()
                .and_then(|t| t.trim().parse().ok()),
            Sampler::ProcessGroup(_) => None,
        }
    }
}

/// What [`Containment::kill_all`] did.
#[derive(Debug, Default)]
pub struct Killed {
    /// Rounds of SIGKILL it took (cgroup.kill: 1).
    pub rounds: u32,
    /// The processes it found and killed, when it enumerates them (process
    /// groups do, and so do cgroups for members outside the leaf;
    /// `cgroup.kill` kills without listing).
    pub processes: Vec<ProcessInfo>,
    /// Processes of the suite it may not signal, with why (`could not be
    /// killed: EPERM`, e.g. a root process of a non-root run): still alive.
    pub unkillable: Vec<(ProcessInfo, String)>,
}

/// A containment as the lifeline guard knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardKey {
    Cgroup(std::path::PathBuf),
    Pgid(i32),
}

/// The run-wide choice of containment, from which each suite attempt gets its own.
pub enum Isolation {
    Cgroup(cgroup::CgroupParent),
    ProcessGroup(pgroup::ProcessGroupFactory),
}

impl Isolation {
    pub fn kind(&self) -> IsolationKind {
        match self {
            Isolation::Cgroup(_) => IsolationKind::Cgroup,
            Isolation::ProcessGroup(_) => IsolationKind::ProcessGroup,
        }
    }

    /// Choose the isolation for this run. `notice` receives the one line that
    /// says which mode is used and, after a fallback, why.
    pub fn choose(
        requested: crate::options::IsolationMode,
        run_id: &str,
        notice: &mut dyn FnMut(String),
    ) -> Result<Isolation, ContainError> {
        use crate::options::IsolationMode as IsolationArg;
        // Only `move` means anything; announced in the isolation line.
        let force_move = std::env::var_os(cgroup::SPAWN_VAR).is_some_and(|v| v == "move");
        let cgroup_line = |parent: &cgroup::CgroupParent| {
            format!(
                "isolation: cgroup v2 (leaves under {}{})",
                parent.dir().display(),
                parent.spawn_path().note()
            )
        };
        match requested {
            IsolationArg::Cgroup => {
                let parent = cgroup::CgroupParent::detect(run_id, force_move)?;
                notice(cgroup_line(&parent));
                Ok(Isolation::Cgroup(parent))
            }
            IsolationArg::ProcessGroup => {
                let f = pgroup::ProcessGroupFactory::new(run_id)?;
                notice(
                    "isolation: process group + child subreaper + environment tag (requested)"
                        .into(),
                );
                Ok(Isolation::ProcessGroup(f))
            }
            IsolationArg::Auto => match cgroup::CgroupParent::detect(run_id, force_move) {
                Ok(parent) => {
                    notice(cgroup_line(&parent));
                    Ok(Isolation::Cgroup(parent))
                }
                Err(why) => {
                    let f = pgroup::ProcessGroupFactory::new(run_id)?;
                    notice(format!(
                        "isolation: process group + child subreaper + environment tag (cgroup v2 unavailable: {why})"
                    ));
                    Ok(Isolation::ProcessGroup(f))
                }
            },
        }
    }

    /// Do the suites move into their cgroup leaves (the fallback where
    /// they cannot be born there)? Announced even where the cgroup line is
    /// not (`cargo reap run`).
    pub fn spawn_fallback(&self) -> bool {
        matches!(self, Isolation::Cgroup(p) if *p.spawn_path() != cgroup::SpawnPath::Born)
    }

    /// `--max-pids N`: Err says why it cannot be applied (announced, never silent).
    pub fn limit_pids(&mut self, n: u64) -> Result<(), String> {
        match self {
            Isolation::Cgroup(p) => p.limit_pids(n),
            Isolation::ProcessGroup(_) => {
                Err("process-group isolation has no per-suite process limit".into())
            }
        }
    }

    /// A fresh containment for one suite attempt. `tag` is the suite's
    /// `CARGO_REAP_SUITE` value; `leaf` a file-name-safe unique name.
    pub fn create(&self, tag: &str, leaf: &str) -> Result<Box<dyn Containment>, ContainError> {
        match self {
            Isolation::Cgroup(p) => Ok(Box::new(p.create_leaf(tag, leaf)?)),
            Isolation::ProcessGroup(f) => Ok(Box::new(f.create(tag))),
        }
    }
}
