//! The steps that put a child where it belongs before it runs, each named
//! and written once, composed per spawn site (in the spirit of watchexec's
//! process-wrap: one concern per layer, the caller picks the list).
//!
//! | site | layers |
//! |---|---|
//! | a suite's root, process group ([`super::pgroup`]) | [`Layer::Tag`], [`Layer::OwnProcessGroup`], [`Layer::UnblockSignals`], [`Layer::CloexecInheritedFds`] |
//! | a suite's root, cgroup ([`super::cgroup`]) | the same, born in its leaf (`clone3(CLONE_INTO_CGROUP)`, [`super::spawn`]); where the kernel cannot, then [`Layer::JoinCgroup`] |
//! | the lifeline guard | [`Layer::Untagged`], [`Layer::OwnProcessGroup`], [`Layer::UnblockSignals`] |
//! | the build (cargo) | [`Layer::UnblockSignals`] |
//!
//! A layer applies to std's `Command` (the guard, the build) or to our
//! [`Spawn`](super::spawn::Spawn) (every suite process) alike ([`Layered`]). The environment is
//! set in the parent; the other layers are [`ChildStep`]s, run in the order
//! listed in the forked child before it executes (std's `pre_exec` hooks,
//! or our spawner's child): each makes only async-signal-safe system calls
//! on memory prepared before the fork. The cgroup join, where used, comes
//! last, so the child is in its leaf before `exec` and so before its first
//! instruction.

use std::ffi::{CStr, CString};
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::fs::{Mode, OFlags};

/// One step applied to a command before it is spawned.
#[derive(Debug, Clone, Copy)]
pub enum Layer<'a> {
    /// `CARGO_REAP_SUITE=<value>` in the child's environment
    /// ([`reap_probe::TAG_VAR`]): every descendant that keeps its
    /// environment can be found by it.
    Tag(&'a str),
    /// No `CARGO_REAP_SUITE` in the child's environment (a helper of the
    /// runner, never taken for a suite's process).
    Untagged,
    /// The child leads a new process group (`setpgid(0, 0)`): out of the
    /// terminal's foreground group, and signalled as one.
    OwnProcessGroup,
    /// An empty signal mask. The runner blocks SIGINT, SIGTERM and SIGHUP
    /// (it reads them from a signalfd), and a mask survives fork and exec:
    /// without this a child could not be stopped by SIGTERM.
    UnblockSignals,
    /// Every inherited descriptor above stderr close-on-exec, so the child
    /// gets only stdin, stdout and stderr — not a pipe of whatever started
    /// cargo-reap (a CI log pipe a leaked process could keep open), not a
    /// stray fd. close_range(2) with CLOSE_RANGE_CLOEXEC (Linux 5.11); on
    /// older kernels the descriptors stay inherited, as with cargo test.
    CloexecInheritedFds,
    /// Write `0` into this `cgroup.procs` path (prepared before the fork):
    /// the child moves itself into the cgroup before it executes. A failure
    /// fails the spawn. Only where the child cannot be born in its leaf
    /// (`clone3(CLONE_INTO_CGROUP)` refused: [`super::spawn`]).
    JoinCgroup(&'a CStr),
}

/// What a child does itself between the fork and the exec, for a layer:
/// owned, so a [`Spawn`](super::spawn::Spawn) can carry it; each written once, in
/// [`ChildStep::run_in_child`], for both std's `pre_exec` and our spawner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildStep {
    OwnProcessGroup,
    UnblockSignals,
    CloexecInheritedFds,
    JoinCgroup(CString),
}

impl ChildStep {
    /// Do the step, in the forked child: only async-signal-safe system
    /// calls on memory prepared before the fork.
    pub fn run_in_child(&self) -> std::io::Result<()> {
        match self {
            ChildStep::OwnProcessGroup => {
                rustix::process::setpgid(None, None)?;
            }
            ChildStep::UnblockSignals => {
                nix::sys::signal::pthread_sigmask(
                    nix::sys::signal::SigmaskHow::SIG_SETMASK,
                    Some(&nix::sys::signal::SigSet::empty()),
                    None,
                )?;
            }
            ChildStep::CloexecInheritedFds => {
                const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
                // SAFETY: one raw system call; nothing is allocated or locked.
                // Failure (ENOSYS/EINVAL on old kernels) leaves things as cargo test does.
                if unsafe {
                    libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC)
                } != 0
                {
                    // Nothing to report from a forked child; the exec proceeds.
                }
            }
            ChildStep::JoinCgroup(procs) => {
                let fd = rustix::fs::open(
                    procs.as_c_str(),
                    OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                rustix::io::write(&fd, b"0")?;
            }
        }
        Ok(())
    }
}

/// A command layers apply to: std's [`Command`] (the lifeline guard, the
/// build) or our [`Spawn`](super::spawn::Spawn) (every suite process).
pub trait Layered {
    fn set_env(&mut self, key: &str, value: &str);
    fn remove_env(&mut self, key: &str);
    /// Run `step` in the child before it executes.
    fn child_step(&mut self, step: ChildStep);
}

impl Layered for Command {
    fn set_env(&mut self, key: &str, value: &str) {
        self.env(key, value);
    }

    fn remove_env(&mut self, key: &str) {
        self.env_remove(key);
    }

    fn child_step(&mut self, step: ChildStep) {
        if step == ChildStep::OwnProcessGroup {
            // std applies it in the child before any pre_exec hook.
            self.process_group(0);
            return;
        }
        // SAFETY: run_in_child makes only async-signal-safe system calls on
        // memory prepared before the fork (the step moved into the closure).
        unsafe {
            self.pre_exec(move || step.run_in_child());
        }
    }
}

/// Apply `layers` to `cmd`, in order.
pub fn apply(cmd: &mut impl Layered, layers: &[Layer<'_>]) {
    for layer in layers {
        layer.apply(cmd);
    }
}

/// The layers of a suite's root: tagged, its own process group, an empty
/// signal mask, no inherited descriptors beyond stdio, and, given the leaf's
/// `cgroup.procs`, the move into it last. (In cgroup mode a root is born in
/// its leaf instead, `clone3(CLONE_INTO_CGROUP)`; the move is the fallback
/// where the kernel cannot: [`super::spawn`].)
pub fn suite<'a>(tag: &'a str, cgroup_procs: Option<&'a CStr>) -> Vec<Layer<'a>> {
    let mut layers = vec![
        Layer::Tag(tag),
        Layer::OwnProcessGroup,
        Layer::UnblockSignals,
        Layer::CloexecInheritedFds,
    ];
    layers.extend(cgroup_procs.map(Layer::JoinCgroup));
    layers
}

impl Layer<'_> {
    /// Apply this one layer to `cmd`.
    pub fn apply(&self, cmd: &mut impl Layered) {
        match *self {
            Layer::Tag(value) => cmd.set_env(reap_probe::TAG_VAR, value),
            Layer::Untagged => cmd.remove_env(reap_probe::TAG_VAR),
            Layer::OwnProcessGroup => cmd.child_step(ChildStep::OwnProcessGroup),
            Layer::UnblockSignals => cmd.child_step(ChildStep::UnblockSignals),
            Layer::CloexecInheritedFds => cmd.child_step(ChildStep::CloexecInheritedFds),
            Layer::JoinCgroup(procs) => cmd.child_step(ChildStep::JoinCgroup(procs.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::spawn::Spawn;
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// Each layer of a suite's root shows in the spawned child, from its
    /// first look: tag, own process group, empty signal mask, no descriptor
    /// beyond stdio, inside the cgroup — spawned by std with the move into
    /// the leaf, by our spawner born in the leaf (`clone3`), and by our
    /// spawner with the move (the fallback). Needs root (CI runs as root).
    #[test]
    // std's child is reaped through its pidfd (`OwnedChild`), which clippy cannot see.
    #[allow(clippy::zombie_processes)]
    fn a_suite_root_starts_with_every_layer_applied() {
        let _serial = crate::sys::child_spawning_test();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mount = super::super::cgroup::find_cgroup2_mount(&mountinfo).expect("a cgroup2 mount");
        /// Removes the leaf on every path (after the child is reaped).
        struct Leaf(std::path::PathBuf);
        impl Drop for Leaf {
            fn drop(&mut self) {
                if let Err(e) = std::fs::remove_dir(&self.0) {
                    eprintln!("removing {}: {e}", self.0.display());
                }
            }
        }
        let leaf = Leaf(
            mount
                .mount_point
                .join(format!("cargo-reap-unit-layers-{}", std::process::id())),
        );
        std::fs::create_dir(&leaf.0).unwrap();
        let procs = CString::new(leaf.0.join("cgroup.procs").as_os_str().as_bytes()).unwrap();
        let dir = std::sync::Arc::new(
            rustix::fs::open(
                &leaf.0,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .unwrap(),
        );
        // An inheritable descriptor the child must not get.
        let (_r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::empty()).unwrap();
        let pipe = format!("pipe:[{}]", rustix::fs::fstat(&w).unwrap().st_ino);
        let tag = format!("unit-{}/layers", std::process::id());
        for how in ["std, moved", "clone3, born in the leaf", "clone3, moved"] {
            let root = match how {
                "std, moved" => {
                    let mut cmd = Command::new("sleep");
                    cmd.arg("3873");
                    apply(&mut cmd, &suite(&tag, Some(&procs)));
                    let child = cmd.spawn().unwrap();
                    crate::sys::OwnedChild::adopt(&child).unwrap()
                }
                "clone3, born in the leaf" => {
                    let mut cmd = Spawn::new("sleep");
                    cmd.arg("3873");
                    apply(&mut cmd, &suite(&tag, None));
                    cmd.born_in(std::sync::Arc::clone(&dir));
                    cmd.spawn().unwrap()
                }
                _ => {
                    let mut cmd = Spawn::new("sleep");
                    cmd.arg("3873");
                    apply(&mut cmd, &suite(&tag, Some(&procs)));
                    cmd.spawn().unwrap()
                }
            };
            assert_every_layer(root.pid(), &tag, &pipe, how);
            assert_eq!(
                super::super::cgroup::procs_in_tree(&leaf.0).unwrap(),
                Some(vec![root.pid()]),
                "{how}"
            );
            drop(root); // killed and reaped
        }
    }

    fn assert_every_layer(pid: i32, tag: &str, pipe: &str, how: &str) {
        let opts = reap_probe::ScanOptions {
            environ_tag: true,
            cgroup: false,
        };
        let p = reap_probe::snapshot(pid, opts).unwrap();
        assert_eq!(p.tag.as_deref(), Some(tag), "{how}");
        assert_eq!(p.pgid, pid, "{how}: leads its own process group");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let mask = |field: &str| {
            let line = status.lines().find(|l| l.starts_with(field)).unwrap();
            u64::from_str_radix(line.trim_start_matches(field).trim(), 16).unwrap()
        };
        assert_eq!(mask("SigBlk:"), 0, "{how}: signals blocked");
        // The runner ignores SIGPIPE (Rust's runtime); the child must not.
        assert_eq!(
            mask("SigIgn:") & (1 << (libc::SIGPIPE - 1)),
            0,
            "{how}: SIGPIPE ignored"
        );
        // (Only this pipe is looked for: the child may open files of its
        // own meanwhile, a locale archive say.)
        let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .map(|target| target.to_string_lossy().into_owned())
            .collect();
        assert!(
            !fds.iter().any(|f| f == pipe),
            "{how}: {pipe} inherited: {fds:?}"
        );
    }
}
