//! Typed errors of the engine. The CLI edge turns them into messages and exit codes.

use std::path::PathBuf;

/// Failures of containment and process control.
#[derive(Debug, thiserror::Error)]
pub enum ContainError {
    #[error("no cgroup2 filesystem is mounted (looked in /proc/self/mountinfo)")]
    NoCgroup2Mount,
    #[error("cannot read this process's cgroup v2 path from /proc/self/cgroup: {0}")]
    OwnCgroup(String),
    #[error("{what} {path}: {source}")]
    CgroupIo {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroup {path} did not empty within {secs}s after cgroup.kill (a process stuck in uninterruptible sleep?)")]
    CgroupStuck { path: PathBuf, secs: u64 },
    #[error("processes of the suite survive after {rounds} rounds of SIGKILL: pids {pids:?}")]
    Unkillable { rounds: u32, pids: Vec<i32> },
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Probe(#[from] reap_probe::ProbeError),
}

impl ContainError {
    pub fn sys(what: &'static str, errno: rustix::io::Errno) -> Self {
        ContainError::Sys {
            what,
            source: errno.into(),
        }
    }

    pub fn cgroup_io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ContainError::CgroupIo {
            what,
            path: path.into(),
            source,
        }
    }
}

/// Failures of build and discovery.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("could not run `{cargo}` (is cargo installed? set CARGO or PATH): {source}")]
    Spawn {
        cargo: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading cargo's JSON messages: {0}")]
    Messages(#[source] std::io::Error),
    #[error("the build failed ({0})")]
    Failed(String),
    /// cargo refused before building anything (unknown package, bad flag, bad manifest).
    #[error("cargo refused the selection ({0}); see its message above")]
    Refused(String),
    #[error("cargo metadata (is cargo installed and the manifest path right?): {0}")]
    Metadata(#[from] cargo_metadata::Error),
    #[error(transparent)]
    Contain(#[from] ContainError),
}

/// Failures while running a suite (its report becomes `error`; a failure
/// of the run as a whole where no suite is concerned).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The binary's tests could not be listed.
    #[error("its tests could not be listed: {0}")]
    Listing(String),
    /// The binary does not speak libtest's `--list` / `--exact`.
    #[error("not a libtest binary: {0}")]
    NotLibtest(String),
    #[error(transparent)]
    Contain(#[from] ContainError),
    #[error("could not start test binary {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a whole `cargo reap test` run could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Bad flags or configuration (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The isolation requested cannot work here (exit 2).
    #[error("--isolation cgroup cannot work here: {0}")]
    Isolation(#[source] ContainError),
    /// The build failed (exit 101).
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Contain(#[from] ContainError),
}

/// An error and its causes in one line (`a: b: c`), skipping a cause whose
/// text the message already contains.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}
