//! The steps that put a child where it belongs before it runs, each named
//! and written once, composed per spawn site (in the spirit of watchexec's
//! process-wrap: one concern per layer, the caller picks the list).
//!
//! | site | layers |
//! |---|---|
//! | a suite's root, process group ([`super::pgroup`]) | [`Layer::Tag`], [`Layer::OwnProcessGroup`], [`Layer::UnblockSignals`], [`Layer::CloexecInheritedFds`] |
//! | a suite's root, cgroup ([`super::cgroup`]) | the same, then [`Layer::JoinCgroup`] |
//! | the lifeline guard | [`Layer::Untagged`], [`Layer::OwnProcessGroup`], [`Layer::UnblockSignals`] |
//! | the build (cargo) | [`Layer::UnblockSignals`] |
//!
//! Environment and process group are set in the parent (std applies the
//! group in the child before any `pre_exec` hook); the other layers are
//! `pre_exec` hooks, run in the order listed, in the forked child before it
//! executes: each makes only async-signal-safe system calls on memory
//! prepared before the fork. The cgroup join comes last, so the child is in
//! its leaf before `exec` and so before its first instruction.

use std::ffi::{CStr, CString};
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::fs::{Mode, OFlags};

/// One step applied to a [`Command`] before it is spawned.
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
    /// fails the spawn.
    JoinCgroup(&'a CStr),
}

/// Apply `layers` to `cmd`, in order.
pub fn apply(cmd: &mut Command, layers: &[Layer<'_>]) {
    for layer in layers {
        layer.apply(cmd);
    }
}

/// The layers of a suite's root: tagged, its own process group, an empty
/// signal mask, no inherited descriptors beyond stdio, and (cgroup mode) in
/// its leaf.
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
    pub fn apply(&self, cmd: &mut Command) {
        match *self {
            Layer::Tag(value) => {
                cmd.env(reap_probe::TAG_VAR, value);
            }
            Layer::Untagged => {
                cmd.env_remove(reap_probe::TAG_VAR);
            }
            Layer::OwnProcessGroup => {
                cmd.process_group(0);
            }
            Layer::UnblockSignals => unblock_signals(cmd),
            Layer::CloexecInheritedFds => cloexec_inherited_fds(cmd),
            Layer::JoinCgroup(procs) => join_cgroup(cmd, procs.to_owned()),
        }
    }
}

fn unblock_signals(cmd: &mut Command) {
    // SAFETY: sigemptyset and pthread_sigmask are async-signal-safe; nothing is allocated.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::signal::pthread_sigmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            )
            .map_err(std::io::Error::from)
        });
    }
}

fn cloexec_inherited_fds(cmd: &mut Command) {
    // SAFETY: one raw system call; nothing is allocated or locked.
    unsafe {
        cmd.pre_exec(|| {
            const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
            // Failure (ENOSYS/EINVAL on old kernels) leaves things as cargo test does.
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
                // Nothing to report from a forked child; the exec proceeds.
            }
            Ok(())
        });
    }
}

fn join_cgroup(cmd: &mut Command, procs: CString) {
    // SAFETY: the closure only makes raw syscalls (open, write, close) on
    // memory prepared before fork: it is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let fd = rustix::fs::open(
                procs.as_c_str(),
                OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            rustix::io::write(&fd, b"0")?;
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// Each layer of a suite's root shows in the spawned child, from its
    /// first look: tag, own process group, empty signal mask, no descriptor
    /// beyond stdio, inside the cgroup. Needs root (CI runs as root).
    #[test]
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
        // An inheritable descriptor the child must not get.
        let (_r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::empty()).unwrap();
        let tag = format!("unit-{}/layers", std::process::id());
        let mut cmd = Command::new("sleep");
        cmd.arg("3873");
        apply(&mut cmd, &suite(&tag, Some(&procs)));
        let child = cmd.spawn().unwrap();
        let root = crate::sys::OwnedChild::adopt(&child).unwrap();
        let pid = root.pid();
        let opts = reap_probe::ScanOptions {
            environ_tag: true,
            cgroup: false,
        };
        let p = reap_probe::snapshot(pid, opts).unwrap();
        assert_eq!(p.tag.as_deref(), Some(tag.as_str()));
        assert_eq!(p.pgid, pid, "leads its own process group");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let blocked = status.lines().find(|l| l.starts_with("SigBlk:")).unwrap();
        assert!(
            blocked
                .trim_start_matches("SigBlk:")
                .trim()
                .trim_start_matches('0')
                .is_empty(),
            "{blocked}"
        );
        // (Only this pipe is looked for: the child may open files of its
        // own meanwhile, a locale archive say.)
        let pipe = format!("pipe:[{}]", rustix::fs::fstat(&w).unwrap().st_ino);
        let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .map(|target| target.to_string_lossy().into_owned())
            .collect();
        assert!(!fds.contains(&pipe), "{pipe} inherited: {fds:?}");
        assert_eq!(
            super::super::cgroup::procs_in_tree(&leaf.0).unwrap(),
            Some(vec![pid])
        );
        drop(root); // killed and reaped
        drop(child);
    }
}
