//! What every suite of a run shares ([`RunContext`]), and a suite's
//! containment while it is registered with the lifeline guard
//! ([`Registered`]).

use std::path::{Path, PathBuf};

use crate::containment::spawn::Spawn;
use crate::containment::{Containment, GuardKey, Isolation};
use crate::discover::Suite;
use crate::error::RunError;
use crate::sys::OwnedChild;

use super::settings::SuiteOptions;

/// Work a scheduler leaves for the moment a suite has just been spawned and
/// the runner only waits for it (the previous suite's TMPDIR and report):
/// off the path from one suite to the next.
pub trait Backlog: Sync {
    fn work_off(&self);
}

/// Everything a suite run needs from the run.
#[derive(Clone, Copy)]
pub struct RunContext<'a> {
    pub isolation: &'a Isolation,
    pub run_id: &'a str,
    pub options: &'a SuiteOptions,
    pub log_dir: &'a Path,
    /// Where the suites' private TMPDIRs are made.
    pub tmp_root: &'a Path,
    pub lifeline: &'a crate::lifeline::Lifeline,
    /// 1-based trial number (`--loop`); 1 without it.
    pub trial: u32,
    /// The run's Ctrl-C / SIGTERM handling: an attempt ends early on it.
    pub interrupts: &'a crate::interrupt::Interrupts,
    /// `--watch`: where each sample goes as it is taken (the live view).
    pub live: Option<&'a dyn crate::report::events::EventSink>,
    /// Worked off after each spawn (see [`Backlog`]).
    pub backlog: Option<&'a dyn Backlog>,
}

impl RunContext<'_> {
    fn guard(&self, key: Option<GuardKey>, watch: bool) -> Result<(), RunError> {
        let r = match (key, watch) {
            (Some(GuardKey::Cgroup(d)), true) => self.lifeline.watch_cgroup(&d),
            (Some(GuardKey::Cgroup(d)), false) => self.lifeline.forget_cgroup(&d),
            (Some(GuardKey::Pgid(g)), true) => self.lifeline.watch_pgid(g),
            (Some(GuardKey::Pgid(g)), false) => self.lifeline.forget_pgid(g),
            (None, _) => Ok(()),
        };
        Ok(r?)
    }

    /// Spawn `cmd` as the root of `cont` and take charge of it.
    ///
    /// A containment whose guard key is known before the spawn (a cgroup
    /// leaf) is registered with the lifeline guard first, so a runner killed
    /// at any point after the spawn still has the suite killed; one known only
    /// by its root (a process group) right after. The containment learns the
    /// root's pid before anything else can fail (dropped on an error path, a
    /// process-group containment kills its group). The root is ours from the
    /// clone on (pidfd, claimed): killed and reaped on every path.
    pub(super) fn spawn_in(
        &self,
        mut cont: Box<dyn Containment>,
        mut cmd: Spawn,
        suite: &Suite,
    ) -> Result<(Registered<'_>, OwnedChild), RunError> {
        cont.prepare(&mut cmd)?;
        let early_key = cont.guard_key();
        self.guard(early_key.clone(), true)?;
        // Consumes cmd: our copies of the pipes' write ends go with it.
        let root = match cmd.spawn() {
            Ok(c) => c,
            Err(source) => {
                cont.close()?;
                self.guard(early_key, false)?;
                return Err(RunError::Spawn {
                    binary: suite.binary.clone(),
                    source,
                });
            }
        };
        cont.set_root(root.pid());
        let cont = Registered {
            cont: Some(cont),
            ctx: self,
        };
        if early_key.is_none() {
            self.guard(cont.guard_key(), true)?;
        }
        Ok((cont, root))
    }

    /// A fresh containment for `suite`, tagged with the run and the suite,
    /// in the leaf (or group) named `leaf`.
    pub(super) fn contain(
        &self,
        suite: &Suite,
        leaf: &str,
    ) -> Result<Box<dyn Containment>, RunError> {
        Ok(self
            .isolation
            .create(&format!("{}/{}", self.run_id, suite.id), leaf)?)
    }

    /// The suite's private TMPDIR in this trial: what it leaves there is
    /// reported and removed. Named by the suite's ordinal (`<ordinal>.<trial>`
    /// after the first trial), not after the suite: a unix socket path under it
    /// must fit in 108 bytes ([`crate::scratch::SOCKET_ROOM`]).
    pub(super) fn tmp_dir(&self, suite: &Suite) -> PathBuf {
        self.tmp_root.join(match self.trial {
            1 => suite.ordinal.to_string(),
            t => format!("{}.{t}", suite.ordinal),
        })
    }
}

/// A containment registered with the lifeline guard. Closed, it is
/// unregistered; dropped on an error path (the run goes on with the next
/// suite), its members are killed by the containment's own drop and then it
/// is unregistered too, so the guard never acts later on a process group id
/// the kernel may have handed to someone else since.
pub struct Registered<'a> {
    /// `None` once closed or dropped.
    cont: Option<Box<dyn Containment>>,
    ctx: &'a RunContext<'a>,
}

impl Registered<'_> {
    /// Close the containment (it must be empty), then unregister it.
    pub fn close(mut self) -> Result<(), RunError> {
        let Some(cont) = self.cont.take() else {
            return Ok(());
        };
        let key = cont.guard_key();
        cont.close()?;
        self.ctx.guard(key, false)
    }
}

impl std::ops::Deref for Registered<'_> {
    type Target = dyn Containment;

    fn deref(&self) -> &Self::Target {
        self.cont
            .as_deref()
            .expect("a containment is only taken by close or drop")
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if let Some(cont) = self.cont.take() {
            let key = cont.guard_key();
            drop(cont); // kills whatever is left of the suite
            if let Err(e) = self.ctx.guard(key, false) {
                eprintln!(
                    "cargo-reap: warning: unregistering a containment from the lifeline guard: {e}"
                );
            }
        }
    }
}
