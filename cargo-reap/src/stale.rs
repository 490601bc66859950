//! The stale sweep: leftovers of dead earlier runs — cgroup leaves
//! (`cargo-reap.<run-id>.*`, empty or populated) and processes carrying a
//! `CARGO_REAP_SUITE` tag — whose runner is gone. Every run sweeps at start and
//! says what it found; `cargo reap clean [--dry-run]` does it on demand.
//!
//! A run id is `<unix-ms hex>-<runner pid>-<pid namespace inode hex>`; the
//! runner is alive when that pid is a cargo-reap process that started no later
//! than the run did. Runs of another pid namespace (a container sharing the
//! cgroup tree or /tmp) are never judged: their pids mean nothing here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reap_probe::ScanOptions;
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
    /// TMPDIR roots (`$TMPDIR/cargo-reap-<run-id>`) of dead runs.
    pub tmp_dirs: Vec<PathBuf>,
}

impl Sweep {
    pub fn is_empty(&self) -> bool {
        self.cgroups.is_empty() && self.processes.is_empty() && self.tmp_dirs.is_empty()
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
}

/// Parse `<hex ms>-<pid>[-<hex pid ns>]`.
pub fn parse_run_id(run_id: &str) -> Option<RunId> {
    let mut parts = run_id.split('-');
    let ms = u64::from_str_radix(parts.next()?, 16).ok()?;
    let pid = parts.next()?.parse().ok()?;
    let pid_ns = match parts.next() {
        Some(ns) => Some(u64::from_str_radix(ns, 16).ok()?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(RunId { ms, pid, pid_ns })
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

/// Is the runner of `run_id` still alive (or not ours to judge)?
fn runner_alive(run_id: &str, me: Judge) -> bool {
    let Some(RunId { ms, pid, pid_ns }) = parse_run_id(run_id) else {
        // Not ours to judge: leave it alone.
        return true;
    };
    if pid_ns.is_some_and(|ns| ns != me.pid_ns) {
        // Another pid namespace: its pid is not a pid here.
        return true;
    }
    if pid == me.pid {
        return true;
    }
    match reap_probe::snapshot(pid, ScanOptions::default()) {
        Ok(p) => {
            if !p.comm.starts_with("cargo-reap") {
                return false;
            }
            // A cargo-reap started after the run did is not its runner (pid reuse).
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_millis() as u64;
            let started_ms = now_ms.saturating_sub(p.age_ms);
            started_ms <= ms + 5_000
        }
        Err(reap_probe::ProbeError::Gone(_)) => false,
        // Cannot tell (permissions, a read that failed): never sweep what may be alive.
        Err(e) => {
            tracing::debug!("stale sweep: cannot judge runner {pid}: {e}");
            true
        }
    }
}

/// The run id in a leaf name `cargo-reap.<run-id>.<rest>`.
fn run_id_of_leaf(name: &str) -> Option<&str> {
    name.strip_prefix("cargo-reap.")?.split('.').next()
}

fn find_leaves(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if !ft.is_dir() {
            continue;
        }
        let name = e.file_name();
        if name.to_string_lossy().starts_with("cargo-reap.") {
            out.push(e.path());
        } else if depth > 0 {
            find_leaves(&e.path(), depth - 1, out);
        }
    }
}

/// How hard to look for tagged processes of dead runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read every process's environment (`cargo reap clean`).
    Everything,
    /// Only when a dead run left a mark: a cgroup leaf or its private TMPDIR
    /// root, which exists from before a run's first suite starts until after
    /// its last process is gone (a normal end removes it). The start of every
    /// run uses this, so its cost does not grow with unrelated processes.
    WhenMarked,
}

/// Find (and unless `dry_run`, remove) leftovers of dead runs.
pub fn sweep(dry_run: bool, scope: Scope) -> Result<Sweep, ContainError> {
    let me = Judge {
        pid: std::process::id() as i32,
        pid_ns: own_pid_namespace().map_err(|e| ContainError::Sys {
            what: "reading /proc/self/ns/pid",
            source: e,
        })?,
    };
    let mut found = Sweep::default();
    let mut verdicts: BTreeMap<String, bool> = BTreeMap::new();
    let mut alive = |run: &str| {
        *verdicts
            .entry(run.to_string())
            .or_insert_with(|| runner_alive(run, me))
    };

    // Cgroup leaves anywhere under the cgroup2 mount (a dead run may have
    // lived in another cgroup than ours).
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| ContainError::Sys {
            what: "reading /proc/self/mountinfo",
            source: e,
        })?;
    if let Some(Cgroup2Mount { mount_point, .. }) = find_cgroup2_mount(&mountinfo) {
        let mut leaves = Vec::new();
        find_leaves(&mount_point, 8, &mut leaves);
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
            // A dead run's guard may be removing the same leaf right now:
            // a leaf that vanishes under us is done, not an error.
            let procs = match std::fs::read_to_string(leaf.join("cgroup.procs")) {
                Ok(t) => t.lines().count(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(ContainError::cgroup_io(
                        "reading",
                        leaf.join("cgroup.procs"),
                        e,
                    ))
                }
            };
            if !dry_run {
                if procs > 0 {
                    match std::fs::write(leaf.join("cgroup.kill"), "1") {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => {
                            return Err(ContainError::cgroup_io(
                                "writing",
                                leaf.join("cgroup.kill"),
                                e,
                            ))
                        }
                    }
                }
                remove_when_empty(&leaf)?;
            }
            found.cgroups.push((leaf, procs));
        }
    }

    // Private TMPDIR roots (`$TMPDIR/cargo-reap-<run>`) and `cargo reap run`
    // scratch directories (`$TMPDIR/cargo-reap/<run>`) of dead runs.
    let tmp = std::env::temp_dir();
    for (dir, prefix) in [(tmp.clone(), "cargo-reap-"), (tmp.join("cargo-reap"), "")] {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ContainError::Sys {
                    what: "listing the temporary directory for dead runs' leftovers",
                    source: e,
                })
            }
        };
        for e in entries {
            let e = e.map_err(|source| ContainError::Sys {
                what: "listing the temporary directory for dead runs' leftovers",
                source,
            })?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(run) = name.strip_prefix(prefix) else {
                continue;
            };
            if parse_run_id(run).is_none() || alive(run) {
                continue;
            }
            if !dry_run {
                match std::fs::remove_dir_all(e.path()) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(err) => {
                        return Err(ContainError::Sys {
                            what: "removing a dead run's temporary directory",
                            source: err,
                        })
                    }
                }
            }
            found.tmp_dirs.push(e.path());
        }
    }

    // Tagged processes of dead runs.
    let marked = !found.cgroups.is_empty() || !found.tmp_dirs.is_empty();
    if scope == Scope::WhenMarked && !marked {
        return Ok(found);
    }
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
        if alive(run) {
            continue;
        }
        victims.push(ProcId {
            pid: p.pid,
            start_time: Some(p.start_time),
        });
        found
            .processes
            .push((p.pid, tag.clone(), p.cmdline.join(" ")));
    }
    if !dry_run && !victims.is_empty() {
        let fds = sys::open_pidfds(&victims)?;
        sys::signal_pidfds(&fds, Signal::KILL)?;
        sys::wait_pidfds(&fds, Duration::from_secs(5))?;
        sys::reap_if_our_zombies(victims.iter().map(|v| v.pid))?;
    }
    Ok(found)
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
                pid_ns: None
            })
        );
        assert_eq!(
            parse_run_id("1a2078da5bb-9948-effffffc"),
            Some(RunId {
                ms: 0x1a2078da5bb,
                pid: 9948,
                pid_ns: Some(0xeffffffc)
            })
        );
        assert_eq!(parse_run_id("garbage"), None);
        assert_eq!(parse_run_id("1-2-3-4"), None);
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
        // pid_max is at most 2^22: this pid cannot exist.
        assert!(!runner_alive(&format!("1-99999999-{ns:x}"), me));
        assert!(!runner_alive("1-99999999", me));
        // A run of another pid namespace is not ours to judge.
        assert!(runner_alive(&format!("1-99999999-{:x}", ns + 1), me));
        // An unparsable id is left alone.
        assert!(runner_alive("not-an-id", me));
    }
}
