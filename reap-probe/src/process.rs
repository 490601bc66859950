//! Snapshots of single processes.
//!
//! # Pid reuse
//!
//! Every snapshot is taken through one [`procfs::process::Process`], which holds an `O_PATH` file
//! descriptor on the `/proc/PID` directory, and every file is opened relative to that descriptor
//! (`openat`). The kernel ties that directory to the process it was opened for, not to the number:
//! once that process is reaped, opening files relative to it fails (ENOENT / ESRCH), even if the
//! pid has been handed to a new process in the meantime. So all fields of one [`ProcessInfo`]
//! describe one process, and a process that disappears mid-read is reported as
//! [`ProbeError::Gone`].

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use procfs::process::{Process, Stat};
use procfs::FromRead;

use crate::{clock, ProbeError, ProcessInfo, ScanOptions, TAG_VAR};

/// Path of `/proc/PID/NAME`, for error messages only.
pub(crate) fn proc_path(pid: i32, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{name}"))
}

/// Open `/proc/PID` (as a directory handle) or report the process as gone.
pub(crate) fn open(pid: i32) -> Result<Process, ProbeError> {
    if pid <= 0 {
        return Err(ProbeError::Gone(pid));
    }
    Process::new(pid).map_err(|e| ProbeError::from_procfs(pid, proc_path(pid, ""), e))
}

/// Read a whole file of the process, relative to its /proc directory handle.
pub(crate) fn read_relative(
    proc: &Process,
    name: &str,
    capacity: usize,
) -> Result<Vec<u8>, ProbeError> {
    let pid = proc.pid();
    let file = proc
        .open_relative(name)
        .map_err(|e| ProbeError::from_procfs(pid, proc_path(pid, name), e))?;
    let mut buf = Vec::with_capacity(capacity);
    read_all(file, &mut buf).map_err(|e| ProbeError::from_io(pid, proc_path(pid, name), e))?;
    Ok(buf)
}

/// The target of a symbolic link of the process (`exe`, `ns/net`, ...), lossily decoded.
///
/// Opened relative to the process's directory handle like every other read (`O_PATH |
/// O_NOFOLLOW`, then `readlinkat` on the empty path), so it is pid-reuse safe too.
pub(crate) fn readlink_relative(proc: &Process, name: &str) -> Result<String, ProbeError> {
    use rustix::fs::OFlags;
    let pid = proc.pid();
    let link = proc
        .open_relative_flags(name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC)
        .map_err(|e| ProbeError::from_procfs(pid, proc_path(pid, name), e))?;
    let target = rustix::fs::readlinkat(&link, "", Vec::new())
        .map_err(|e| ProbeError::from_io(pid, proc_path(pid, name), e.into()))?;
    Ok(target.to_string_lossy().into_owned())
}

/// Read `file` to the end into `out`.
///
/// Unlike `File::read_to_end`, this makes no `statx` and `lseek` calls to guess the size (which
/// is always 0 in /proc): that saves two of the six syscalls per file, thousands per scan.
fn read_all(mut file: File, out: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 4096];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Snapshot the process behind an open /proc directory handle.
pub(crate) fn snapshot_process(
    proc: &Process,
    opts: ScanOptions,
) -> Result<ProcessInfo, ProbeError> {
    let info = snapshot_filtered(proc, opts, 0)?;
    Ok(info.expect("every start time is >= 0"))
}

/// Snapshot the process behind an open /proc directory handle, unless it started before
/// `min_start_time`: then `Ok(None)`, having read nothing but `stat`.
pub(crate) fn snapshot_filtered(
    proc: &Process,
    opts: ScanOptions,
    min_start_time: u64,
) -> Result<Option<ProcessInfo>, ProbeError> {
    let pid = proc.pid();
    let stat_bytes = read_relative(proc, "stat", 512)?;
    let stat = Stat::from_read(stat_bytes.as_slice())
        .map_err(|e| ProbeError::from_procfs(pid, proc_path(pid, "stat"), e))?;
    if stat.starttime < min_start_time {
        return Ok(None);
    }
    // Sample the clock right after reading the start time, so the age is as fresh as the stat.
    let now_ms = clock::boottime_ms();

    // A process whose main thread exited while others run on shows state Z and an empty
    // cmdline/environ (they are read through the main thread's memory, which it gave up):
    // read them through a live thread instead.
    let via = if crate::main_thread_exited(stat.state, stat.num_threads) {
        live_thread(proc).map(|tid| format!("task/{tid}/"))
    } else {
        None
    };
    let via = via.as_deref().unwrap_or("");
    let cmdline = match read_relative(proc, &format!("{via}cmdline"), 256) {
        Ok(buf) => parse_cmdline(&buf),
        // Only possible under a hidepid mount; there is simply nothing to show.
        Err(ProbeError::PermissionDenied { .. }) => Vec::new(),
        // The live thread ended meanwhile.
        Err(ProbeError::Gone(_)) if !via.is_empty() => Vec::new(),
        Err(e) => return Err(e),
    };
    let tag = if opts.environ_tag {
        // Never fatal: no environment (kernel thread, zombie, exiting), someone else's process,
        // or a process that went away just now all mean "no tag we can see".
        read_relative(proc, &format!("{via}environ"), 4096)
            .ok()
            .and_then(|buf| parse_tag(&buf))
    } else {
        None
    };
    let cgroup = if opts.cgroup {
        match read_relative(proc, "cgroup", 256) {
            Ok(buf) => parse_cgroup_v2(&buf),
            // No such file: a kernel without cgroups, if the process itself is still there.
            Err(ProbeError::Gone(_)) if still_there(proc) => None,
            Err(ProbeError::PermissionDenied { .. }) => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };

    let rss_pages = stat.rss;
    Ok(Some(ProcessInfo {
        pid: stat.pid,
        ppid: stat.ppid,
        pgid: stat.pgrp,
        sid: stat.session,
        state: stat.state,
        comm: stat.comm,
        cmdline,
        start_time: stat.starttime,
        age_ms: clock::age_ms(stat.starttime, now_ms),
        threads: stat.num_threads,
        rss_bytes: rss_pages.saturating_mul(procfs::page_size()),
        tag,
        cgroup,
    }))
}

/// A thread of the process other than its main thread, if one is listed.
fn live_thread(proc: &Process) -> Option<i32> {
    let pid = proc.pid();
    proc.tasks()
        .ok()?
        .flatten()
        .map(|t| t.tid)
        .find(|&tid| tid != pid)
}

/// Whether the process behind `proc` still exists (possibly as a zombie), for telling "this file
/// is missing or refused" apart from "the process is gone".
pub(crate) fn still_there(proc: &Process) -> bool {
    proc.open_relative("stat").is_ok()
}

/// Read the tag from the environment of the process behind `proc`.
///
/// An unreadable environment (permission, kernel thread, zombie, exiting process) yields
/// `Ok(None)`; only the process being gone is an error.
pub(crate) fn read_tag_of(proc: &Process) -> Result<Option<String>, ProbeError> {
    match read_relative(proc, "environ", 4096) {
        Ok(buf) => Ok(parse_tag(&buf)),
        // Opening `environ` of a process without memory (zombie, kernel thread) fails with
        // ESRCH, which looks like "gone". It is gone only if its directory is gone too.
        Err(ProbeError::Gone(pid)) if !still_there(proc) => Err(ProbeError::Gone(pid)),
        Err(_) => Ok(None),
    }
}

/// Snapshot one process.
///
/// Reads `stat` and `cmdline`, plus `environ` only with [`ScanOptions::environ_tag`] and `cgroup`
/// only with [`ScanOptions::cgroup`].
///
/// Pid reuse safety: all files are opened relative to one `O_PATH` handle on the `/proc/PID`
/// directory (held by [`procfs::process::Process`]). The kernel ties that directory to the
/// process it was opened for, not to the number: once that process is reaped, opening files
/// relative to it fails, even if the pid already belongs to a new process. So the result
/// describes one process, and one that disappears mid-read is reported as [`ProbeError::Gone`].
///
/// Errors: [`ProbeError::Gone`] if the process does not exist or disappears while being read;
/// [`ProbeError::PermissionDenied`] if its `stat` is hidden from us; other variants for genuine
/// I/O or parse failures. An unreadable environment or cgroup is not an error (`None`).
pub fn snapshot(pid: i32, opts: ScanOptions) -> Result<ProcessInfo, ProbeError> {
    snapshot_process(&open(pid)?, opts)
}

/// Read only the tag ([`TAG_VAR`] in `/proc/PID/environ`) of a process.
///
/// `Ok(None)` if the variable is not set or the environment cannot be read (another user's
/// process, kernel thread, zombie: the kernel gives no environment for those).
/// `Err(ProbeError::Gone)` if the process does not exist.
///
/// This reads the environment of whatever process has the pid *now*; pair it with
/// [`start_time`] before and after if the identity matters.
pub fn read_tag(pid: i32) -> Result<Option<String>, ProbeError> {
    read_tag_of(&open(pid)?)
}

/// Start time of a process (field 22 of `/proc/PID/stat`, clock ticks since boot).
///
/// The pair (pid, start time) identifies a process across pid reuse: if `start_time(pid)` no
/// longer returns the value recorded earlier, the original process is gone. This is the cheapest
/// probe in the crate: one file, one read, one field parsed.
pub fn start_time(pid: i32) -> Result<u64, ProbeError> {
    let (buf, path) = read_stat(pid)?;
    parse_start_time(&buf).ok_or_else(|| ProbeError::Parse {
        path,
        message: "no start time (field 22)".to_owned(),
    })
}

/// How a zombie ended: its `exit_code` (field 52 of `/proc/PID/stat`, the status as waitpid(2)
/// reports it), for a process that is not ours to reap. `Ok(None)` while the process is not a
/// zombie.
pub fn zombie_status(pid: i32) -> Result<Option<i32>, ProbeError> {
    let (buf, path) = read_stat(pid)?;
    if stat_field(&buf, 3) != Some(b"Z".as_slice()) {
        return Ok(None);
    }
    let status = stat_field(&buf, 52)
        .and_then(|f| std::str::from_utf8(f).ok()?.parse().ok())
        .ok_or_else(|| ProbeError::Parse {
            path,
            message: "no exit code (field 52)".to_owned(),
        })?;
    Ok(Some(status))
}

/// The bytes of `/proc/PID/stat`, and its path.
fn read_stat(pid: i32) -> Result<(Vec<u8>, std::path::PathBuf), ProbeError> {
    if pid <= 0 {
        return Err(ProbeError::Gone(pid));
    }
    let path = proc_path(pid, "stat");
    let mut buf = Vec::with_capacity(512);
    File::open(&path)
        .and_then(|f| read_all(f, &mut buf))
        .map_err(|e| ProbeError::from_io(pid, path.clone(), e))?;
    Ok((buf, path))
}

/// Field 22 (starttime) of a `/proc/PID/stat` line.
pub(crate) fn parse_start_time(stat: &[u8]) -> Option<u64> {
    std::str::from_utf8(stat_field(stat, 22)?)
        .ok()?
        .parse()
        .ok()
}

/// Field `n` (from 3, the state, on) of a `/proc/PID/stat` line.
///
/// `comm` (field 2) is parenthesised and may itself contain spaces and parentheses, so fields are
/// counted from the *last* `)`: the field after it is field 3 (state).
fn stat_field(stat: &[u8], n: usize) -> Option<&[u8]> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .nth(n.checked_sub(3)?)
}

/// Split `/proc/PID/cmdline` into arguments, lossily decoding each as UTF-8.
///
/// Arguments are NUL-terminated. Trailing NULs are dropped (processes that rewrite their argv,
/// like setproctitle users, leave NUL padding), interior empty arguments are kept.
pub(crate) fn parse_cmdline(buf: &[u8]) -> Vec<String> {
    let end = buf.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if end == 0 {
        return Vec::new();
    }
    buf[..end]
        .split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// The value of [`TAG_VAR`] in a `/proc/PID/environ` buffer (first occurrence, like `getenv`).
pub(crate) fn parse_tag(environ: &[u8]) -> Option<String> {
    let key = TAG_VAR.as_bytes();
    environ.split(|&b| b == 0).find_map(|entry| {
        entry
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(b"="))
            .map(|value| String::from_utf8_lossy(value).into_owned())
    })
}

/// The cgroup v2 path (the `0::` line) of a `/proc/PID/cgroup` buffer.
pub(crate) fn parse_cgroup_v2(buf: &[u8]) -> Option<String> {
    buf.split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"0::"))
        .map(|path| String::from_utf8_lossy(path).into_owned())
}
