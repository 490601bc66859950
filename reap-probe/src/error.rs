//! The error type of every fallible probe operation.

use std::io;
use std::path::PathBuf;

use procfs::ProcError;

/// Why a probe could not observe a process (or the process table).
///
/// [`ProbeError::Gone`] is the normal, expected outcome of racing with a process that exits; the
/// other variants mean something is actually wrong (or not permitted) and are worth reporting.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The process does not exist: it never did, it exited and was reaped while being read, or its
    /// pid now belongs to a different process.
    #[error("process {0} does not exist (any more)")]
    Gone(i32),

    /// The kernel refused to let us read a file (for example under a `hidepid` mount of /proc).
    #[error("permission denied reading {}", path.display())]
    PermissionDenied {
        /// The /proc file or directory that could not be read.
        path: PathBuf,
    },

    /// Any other I/O failure, including failure to list /proc itself.
    #[error("I/O error reading {}: {source}", path.display())]
    Io {
        /// The /proc file or directory being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A /proc file had contents this crate does not understand.
    #[error("cannot parse {}: {message}", path.display())]
    Parse {
        /// The /proc file being parsed.
        path: PathBuf,
        /// What was wrong with it.
        message: String,
    },
}

impl ProbeError {
    /// True for [`ProbeError::Gone`]: the process simply is not there (any more).
    pub fn is_gone(&self) -> bool {
        matches!(self, ProbeError::Gone(_))
    }

    /// Classify an I/O error that happened while reading `path` of process `pid`.
    ///
    /// ENOENT and ESRCH both mean the process went away (files of a reaped process vanish from its
    /// still-open /proc directory, and some reads report ESRCH instead).
    pub(crate) fn from_io(pid: i32, path: PathBuf, err: io::Error) -> Self {
        const ESRCH: i32 = 3;
        match err.kind() {
            io::ErrorKind::NotFound => ProbeError::Gone(pid),
            _ if err.raw_os_error() == Some(ESRCH) => ProbeError::Gone(pid),
            io::ErrorKind::PermissionDenied => ProbeError::PermissionDenied { path },
            _ => ProbeError::Io { path, source: err },
        }
    }

    /// Classify an error from the `procfs` crate while reading `path` of process `pid`.
    pub(crate) fn from_procfs(pid: i32, path: PathBuf, err: ProcError) -> Self {
        match err {
            ProcError::NotFound(_) => ProbeError::Gone(pid),
            ProcError::PermissionDenied(p) => ProbeError::PermissionDenied {
                path: p.unwrap_or(path),
            },
            ProcError::Io(source, p) => Self::from_io(pid, p.unwrap_or(path), source),
            ProcError::Incomplete(p) => ProbeError::Parse {
                path: p.unwrap_or(path),
                message: "incomplete contents".to_owned(),
            },
            ProcError::Other(message) => ProbeError::Parse { path, message },
            ProcError::InternalError(e) => ProbeError::Parse {
                path,
                message: e.to_string(),
            },
        }
    }
}
