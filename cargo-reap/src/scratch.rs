//! Where cargo-reap writes on the machine: one directory per user,
//! `$TMPDIR/cargo-reap-<uid>` (mode 0700, checked to be a real directory of
//! ours before use), and in it one directory per run, `<run-id>/`, holding
//! the suites' private TMPDIRs (`<trial>.<suite>`) and the scratch files of
//! `cargo reap run` (`run/`). Nothing goes to a shared, predictable path that
//! another user (or another run) could own or pre-create; no parent of a
//! missing `$TMPDIR` is ever created.
//!
//! Why not `$XDG_RUNTIME_DIR`: the suites' TMPDIRs belong on the filesystem
//! the user chose for temporary files (the runtime directory is a small
//! tmpfs, and unset under sudo, cron and most CI runners), and one place per
//! user keeps a dead run's leftovers visible to the next sweep by that user.

use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags, CWD};
use rustix::io::Errno;

use crate::error::RunError;

/// The temporary directory: `$TMPDIR` when it names an existing directory by
/// an absolute path, else `/tmp`, with a note saying why (never created).
pub fn temp_dir() -> (PathBuf, Option<String>) {
    let Some(env) = std::env::var_os("TMPDIR").filter(|v| !v.is_empty()) else {
        return (PathBuf::from("/tmp"), None);
    };
    let dir = PathBuf::from(&env);
    let why = if !dir.is_absolute() {
        "is not an absolute path".to_string()
    } else {
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => return (dir, None),
            Ok(_) => "is not a directory".to_string(),
            Err(e) => format!("cannot be used ({e})"),
        }
    };
    (
        PathBuf::from("/tmp"),
        Some(format!(
            "TMPDIR={} {why}; cargo-reap does not create it and uses /tmp instead (create it, or unset TMPDIR)",
            dir.display()
        )),
    )
}

/// This user's directory, `<temp>/cargo-reap-<euid>` (the path only; see
/// [`user_dir`] to create or check it), and the note of [`temp_dir`].
pub fn user_dir_path() -> (PathBuf, Option<String>) {
    let (tmp, note) = temp_dir();
    (
        tmp.join(format!(
            "cargo-reap-{}",
            rustix::process::geteuid().as_raw()
        )),
        note,
    )
}

/// Why an existing user directory is not ours to use, if it is not.
fn check_ours(dir: &Path, fd: &OwnedFd) -> Result<(), RunError> {
    let st = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)
        .map_err(|e| io_err("checking cargo-reap's directory", dir, e.into()))?;
    let me = rustix::process::geteuid().as_raw();
    if st.stx_uid != me {
        return Err(io_err(
            "refusing to use",
            dir,
            std::io::Error::other(format!(
                "it is owned by uid {}, not by you (uid {me}); remove it or set TMPDIR to a directory of yours",
                st.stx_uid
            )),
        ));
    }
    if u32::from(st.stx_mode) & 0o077 != 0 {
        // Ours, but open to others: close it.
        rustix::fs::fchmod(fd, Mode::from_raw_mode(0o700))
            .map_err(|e| io_err("making private (0700)", dir, e.into()))?;
    }
    Ok(())
}

fn io_err(what: &'static str, path: &Path, source: std::io::Error) -> RunError {
    RunError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Open this user's directory (`<temp>/cargo-reap-<euid>`), creating it 0700
/// when missing; refuse one that is a symbolic link, not a directory, or
/// another user's. Returns its descriptor and path, and the note of [`temp_dir`].
pub fn user_dir() -> Result<(OwnedFd, PathBuf, Option<String>), RunError> {
    let (dir, note) = user_dir_path();
    match rustix::fs::mkdirat(CWD, &dir, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(io_err("creating cargo-reap's directory", &dir, e.into())),
    }
    let fd = rustix::fs::openat(
        CWD,
        &dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        let why = match e {
            Errno::LOOP | Errno::NOTDIR => std::io::Error::other(
                "it is a symbolic link or not a directory; remove it or set TMPDIR to a directory of yours",
            ),
            e => e.into(),
        };
        io_err("refusing to use", &dir, why)
    })?;
    check_ours(&dir, &fd)?;
    Ok((fd, dir, note))
}

/// A run's own directory, `<user dir>/<run-id>` (0700). Removed (with
/// [`crate::tmpdir::remove_tree`]) by [`RunDir::remove`], or when dropped on an
/// error path.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    removed: bool,
}

impl RunDir {
    /// Create the directory of run `run_id`; also returns the note of [`temp_dir`].
    pub fn create(run_id: &str) -> Result<(RunDir, Vec<String>), RunError> {
        let (base, base_path, note) = user_dir()?;
        let path = base_path.join(run_id);
        rustix::fs::mkdirat(&base, run_id, Mode::from_raw_mode(0o700))
            .map_err(|e| io_err("creating the run's directory", &path, e.into()))?;
        let notes = note.into_iter().chain(socket_room(&path)).collect();
        Ok((
            RunDir {
                path,
                removed: false,
            },
            notes,
        ))
    }

    /// Where the suites' private TMPDIRs are made.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `cargo reap run`'s scratch directory (its `--list` output files):
    /// the run's directory itself, made already (a directory of its own
    /// cost a create and a removal per call of a target runner). Its names
    /// (`*.list`, `*.log`) never meet the suites' numbered TMPDIRs.
    pub fn command_scratch(&self) -> PathBuf {
        self.path.clone()
    }

    /// Remove the run's directory; returns a warning per thing left in place.
    pub fn remove(mut self) -> Vec<String> {
        self.removed = true;
        crate::tmpdir::remove_tree(&self.path).problems(&self.path.display().to_string())
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.removed {
            let dir = RunDir {
                path: self.path.clone(),
                removed: false,
            };
            self.removed = true;
            for w in dir.remove() {
                eprintln!("cargo-reap: warning: {w}");
            }
        }
    }
}

/// Bytes a suite's TMPDIR leaves for a unix socket path below it: `sun_path` holds 107 bytes
/// and a NUL, and programs put sockets a few levels down (Chromium's
/// `org.chromium.Chromium.XXXXXX/SingletonSocket` takes 45 with its slashes; ssh-agent,
/// tmux and Python's multiprocessing less). A TMPDIR longer than 107 − this makes them fail
/// (Chromium dies of SIGTRAP at start).
pub const SOCKET_ROOM: usize = 45;

/// A suite TMPDIR's name below the run's directory counted on: `/<ordinal>` up to 999
/// suites (`.<trial>` is added after the first trial of `--loop`).
const SUITE_NAME_ROOM: usize = 4;

/// A warning when the suites' TMPDIRs under `run_dir` are too long for a unix socket below
/// them, with what to do.
fn socket_room(run_dir: &Path) -> Option<String> {
    let tmpdir = run_dir.as_os_str().len() + SUITE_NAME_ROOM;
    (tmpdir + SOCKET_ROOM > 107).then(|| {
        format!(
            "the suites' TMPDIRs ({}/N, about {tmpdir} bytes) leave less than {SOCKET_ROOM} bytes for a unix \
             socket path below them (108 at most): programs that make one there (Chromium, \
             ssh-agent, tmux) may fail; set TMPDIR to a shorter directory (e.g. /tmp) for cargo-reap",
            run_dir.display()
        )
    })
}

/// Create a suite's private TMPDIR `dir` (0700) in its run's directory. The
/// run's directory is made again if something deleted it; nothing above it is.
pub fn create_suite_dir(dir: &Path) -> Result<(), RunError> {
    let make = || std::fs::DirBuilder::new().mode(0o700).create(dir);
    let io = |source| io_err("creating the suite's TMPDIR", dir, source);
    match make() {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A suite of this run deleted the run's directory: make it again,
            // in the checked user directory (only there).
            let (base, base_path, _) = user_dir()?;
            let run = dir
                .parent()
                .filter(|run| run.parent() == Some(base_path.as_path()))
                .and_then(Path::file_name)
                .ok_or_else(|| io(e))?;
            match rustix::fs::mkdirat(&base, run, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(io(e.into())),
            }
            make().map_err(io)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_directory_is_private_and_removed() {
        let (run, _) = RunDir::create(&format!("test-{}", std::process::id())).unwrap();
        let (base, _) = user_dir_path();
        assert_eq!(run.path().parent(), Some(base.as_path()));
        use std::os::unix::fs::PermissionsExt;
        for d in [&base, &run.path().to_path_buf()] {
            let mode = std::fs::metadata(d).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", d.display());
        }
        let suite = run.path().join("1.x");
        create_suite_dir(&suite).unwrap();
        std::fs::write(suite.join("f"), b"x").unwrap();
        let path = run.path().to_path_buf();
        assert!(run.remove().is_empty());
        assert!(!path.exists());
    }

    /// The suites' TMPDIRs under the usual /tmp leave room for a socket; under a deep
    /// TMPDIR the run says so, with what to do.
    #[test]
    fn a_run_directory_too_deep_for_a_socket_is_announced() {
        let usual = Path::new("/tmp/cargo-reap-1000/1a2429f9a9f-4194303-effffffc-21507f");
        assert_eq!(socket_room(usual), None);
        let deep = Path::new(
            "/home/runner/work/_temp/cargo-reap-1001/1a2429f9a9f-4194303-effffffc-21507f",
        );
        let note = socket_room(deep).expect("a warning");
        assert!(note.contains("set TMPDIR to a shorter directory"), "{note}");
    }
}
