//! Open file descriptors of a process: `/proc/PID/fd/*` links, `/proc/PID/fdinfo/*` access modes.

use std::fs::File;

use procfs::process::Process;
use rustix::fs::{AtFlags, FileType, OFlags, StatxFlags};

use crate::process::{proc_path, read_relative, still_there};
use crate::ProbeError;

/// One open file descriptor.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FdInfo {
    /// The descriptor number in the process.
    pub fd: i32,
    /// What it refers to.
    pub kind: FdKind,
}

/// What a file descriptor refers to.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum FdKind {
    /// A file, directory or device (the link target; `... (deleted)` if unlinked).
    File {
        /// Where `/proc/PID/fd/N` points.
        path: String,
    },
    /// An anonymous pipe (`pipe:[INODE]`). The direction is the descriptor's access mode
    /// (`O_ACCMODE` of the `flags` in `/proc/PID/fdinfo/N`): `pipe()` gives one read-only and
    /// one write-only end; reopening `/proc/PID/fd/N` read-write gives both at once.
    Pipe {
        /// The pipe's inode: two descriptors with the same inode are the same pipe.
        inode: u64,
        /// Open for reading.
        read: bool,
        /// Open for writing.
        write: bool,
    },
    /// A named pipe (FIFO) in the filesystem. Same semantics as [`FdKind::Pipe`]; opened
    /// read-write (`exec 3<>fifo`) a single descriptor holds both ends.
    Fifo {
        /// Where `/proc/PID/fd/N` points.
        path: String,
        /// The FIFO's inode.
        inode: u64,
        /// Open for reading.
        read: bool,
        /// Open for writing.
        write: bool,
    },
    /// A socket (`socket:[INODE]`), with what the kernel's socket tables of the process's network
    /// namespace say about it. All details are `None` for a socket that is in none of the tables
    /// read (netlink, packet, raw, ...).
    Socket {
        /// The socket's inode.
        inode: u64,
        /// `tcp`, `tcp6`, `udp`, `udp6`, `unix-stream`, `unix-dgram`, `unix-seqpacket`.
        proto: Option<String>,
        /// `ESTABLISHED`, `LISTEN`, `CLOSE-WAIT`, ... (TCP, as `ss` names them); `UNCONN` or
        /// `ESTABLISHED` (UDP); `LISTEN`, `CONNECTED`, `UNCONNECTED`, ... (Unix).
        state: Option<String>,
        /// Local address, `127.0.0.1:8080` or `[::1]:8080`; a Unix socket's path (`@` for the
        /// abstract namespace).
        local: Option<String>,
        /// Peer address; `None` when not connected, and for Unix sockets.
        remote: Option<String>,
        /// The `rx_queue` column: bytes received and not read yet. TCP counts the peer's FIN as
        /// one more once it arrived, until the process reads the end of the stream (see
        /// [`unread_bytes`](crate::unread_bytes)); UDP counts buffer memory, not payload; a
        /// listening TCP socket, connections not accepted yet. `None` for Unix sockets
        /// (`/proc/net/unix` has no queues).
        rx_queue: Option<u64>,
        /// The `tx_queue` column: bytes sent and not acknowledged by the peer yet (TCP), or not
        /// sent yet (UDP).
        tx_queue: Option<u64>,
    },
    /// An anonymous inode: `eventfd`, `eventpoll`, `signalfd`, `pidfd`, `timerfd`, `inotify`, ...
    Anon {
        /// Its kind, without brackets.
        what: String,
    },
    /// A `memfd_create` file.
    Memfd {
        /// The name given to `memfd_create`.
        name: String,
    },
    /// Anything else (a namespace, a BPF object, ...): the raw link target.
    Other {
        /// Where `/proc/PID/fd/N` points.
        target: String,
    },
}

/// How many descriptors of each kind a process has open.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FdSummary {
    /// All of them.
    pub total: usize,
    /// [`FdKind::File`].
    pub files: usize,
    /// [`FdKind::Pipe`] and [`FdKind::Fifo`].
    pub pipes: usize,
    /// [`FdKind::Socket`].
    pub sockets: usize,
    /// [`FdKind::Anon`].
    pub anon: usize,
    /// [`FdKind::Memfd`].
    pub memfd: usize,
    /// [`FdKind::Other`].
    pub other: usize,
}

impl FdSummary {
    /// Count `fds` by kind.
    pub fn of(fds: &[FdInfo]) -> FdSummary {
        let mut s = FdSummary {
            total: fds.len(),
            ..FdSummary::default()
        };
        for fd in fds {
            match fd.kind {
                FdKind::File { .. } => s.files += 1,
                FdKind::Pipe { .. } | FdKind::Fifo { .. } => s.pipes += 1,
                FdKind::Socket { .. } => s.sockets += 1,
                FdKind::Anon { .. } => s.anon += 1,
                FdKind::Memfd { .. } => s.memfd += 1,
                FdKind::Other { .. } => s.other += 1,
            }
        }
        s
    }
}

impl FdKind {
    /// The pipe (or FIFO) inode and direction, if this is one.
    pub fn pipe_end(&self) -> Option<(u64, bool, bool)> {
        match *self {
            FdKind::Pipe { inode, read, write }
            | FdKind::Fifo {
                inode, read, write, ..
            } => Some((inode, read, write)),
            _ => None,
        }
    }
}

/// Classify the target of a `/proc/PID/fd/N` link. Pipes and FIFOs get their direction later.
pub(crate) fn classify(target: &str) -> FdKind {
    if let Some(rest) = target.strip_prefix("/memfd:") {
        let name = rest.strip_suffix(" (deleted)").unwrap_or(rest);
        return FdKind::Memfd {
            name: name.to_owned(),
        };
    }
    if target.starts_with('/') {
        return FdKind::File {
            path: target.to_owned(),
        };
    }
    let bracketed = |prefix: &str| -> Option<u64> {
        target
            .strip_prefix(prefix)?
            .strip_prefix('[')?
            .strip_suffix(']')?
            .parse()
            .ok()
    };
    if let Some(inode) = bracketed("pipe:") {
        return FdKind::Pipe {
            inode,
            read: false,
            write: false,
        };
    }
    if let Some(inode) = bracketed("socket:") {
        return FdKind::Socket {
            inode,
            proto: None,
            state: None,
            local: None,
            remote: None,
            rx_queue: None,
            tx_queue: None,
        };
    }
    if let Some(what) = target.strip_prefix("anon_inode:") {
        let what = what.trim_start_matches('[').trim_end_matches(']');
        return FdKind::Anon {
            what: what.to_owned(),
        };
    }
    // Newer kernels give pidfds an inode of their own (pidfs): `pidfd:[INODE]`.
    if bracketed("pidfd:").is_some() {
        return FdKind::Anon {
            what: "pidfd".to_owned(),
        };
    }
    FdKind::Other {
        target: target.to_owned(),
    }
}

/// `O_ACCMODE` of the `flags:` line (octal) of a `/proc/PID/fdinfo/N` file: (read, write).
pub(crate) fn parse_fdinfo_access(fdinfo: &[u8]) -> Option<(bool, bool)> {
    let text = String::from_utf8_lossy(fdinfo);
    let flags = text
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))?
        .trim();
    let flags = u32::from_str_radix(flags, 8).ok()?;
    match flags & 0o3 {
        0 => Some((true, false)),
        1 => Some((false, true)),
        2 => Some((true, true)),
        _ => None,
    }
}

/// Every open descriptor of the process behind `proc`, in ascending order. Sockets carry only
/// their inode; the caller joins them with the socket tables.
///
/// Descriptors closed while being read are skipped. Errors: the process is gone, or its
/// descriptors may not be read (another user's process).
pub(crate) fn read_fds(proc: &Process) -> Result<Vec<FdInfo>, ProbeError> {
    let pid = proc.pid();
    let dir: File = proc
        .open_relative_flags("fd", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC)
        .map_err(|e| ProbeError::from_procfs(pid, proc_path(pid, "fd"), e))?;
    let list_error =
        |e: rustix::io::Errno| ProbeError::from_io(pid, proc_path(pid, "fd"), e.into());
    let mut numbers: Vec<i32> = Vec::new();
    for entry in rustix::fs::Dir::read_from(&dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        if let Some(fd) = entry.file_name().to_str().ok().and_then(|s| s.parse().ok()) {
            numbers.push(fd);
        }
    }
    numbers.sort_unstable();

    let mut fds = Vec::with_capacity(numbers.len());
    for fd in numbers {
        let name = fd.to_string();
        let target = match rustix::fs::readlinkat(&dir, name.as_str(), Vec::new()) {
            Ok(target) => target,
            // Closed since the listing (or the whole process went, checked at the end).
            Err(rustix::io::Errno::NOENT) => continue,
            // Listing is allowed where following is not (ptrace access): all or nothing.
            Err(e) => return Err(ProbeError::from_io(pid, proc_path(pid, "fd"), e.into())),
        };
        let target = target.to_string_lossy().into_owned();
        let mut kind = classify(&target);
        if let FdKind::File { path } = &kind {
            if let Some(inode) = fifo_inode(&dir, &name) {
                kind = FdKind::Fifo {
                    path: path.clone(),
                    inode,
                    read: false,
                    write: false,
                };
            }
        }
        if let FdKind::Pipe { read, write, .. } | FdKind::Fifo { read, write, .. } = &mut kind {
            match read_relative(proc, &format!("fdinfo/{fd}"), 256) {
                Ok(info) => (*read, *write) = parse_fdinfo_access(&info).unwrap_or((false, false)),
                Err(_) => continue, // closed since the listing
            }
        }
        fds.push(FdInfo { fd, kind });
    }
    if !still_there(proc) {
        return Err(ProbeError::Gone(pid));
    }
    Ok(fds)
}

/// The inode of the file behind descriptor `name` if it is a FIFO.
///
/// `AT_STATX_DONT_SYNC`: use what the kernel has cached, so a file on a dead network filesystem
/// cannot hang the probe.
fn fifo_inode(dir: &File, name: &str) -> Option<u64> {
    let st = rustix::fs::statx(
        dir,
        name,
        AtFlags::STATX_DONT_SYNC,
        StatxFlags::TYPE | StatxFlags::INO,
    )
    .ok()?;
    (FileType::from_raw_mode(st.stx_mode.into()) == FileType::Fifo).then_some(st.stx_ino)
}
