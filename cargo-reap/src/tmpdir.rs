//! Each suite runs with a private TMPDIR (also TMP and TEMP). Files it leaves
//! there — the file-shaped cousin of a process leak — are reported (count,
//! bytes, a few names) and removed. `--fail-on tmp` makes them fail the run.
//!
//! Every removal cargo-reap does (a suite's TMPDIR, a run's directory, the
//! stale sweep's dead runs) goes through [`remove_tree`], which has the
//! guarantees of `rm -r --one-file-system` and more: it walks with
//! descriptors (`openat`/`unlinkat` relative to the directory just opened),
//! never follows a symbolic link (a link is removed, never what it points
//! to), and never enters or unmounts a mount point: a mount found inside
//! (compared by mount id, so a bind mount of the same filesystem counts too)
//! is reported and left alone. What it cannot remove is reported and
//! skipped; the walk goes on.

use std::collections::BTreeSet;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Statx, StatxAttributes, StatxFlags, CWD};
use rustix::io::Errno;

use reap_report::TmpLeftovers;

/// How many paths are named in the report.
const EXAMPLES: usize = 5;
/// Deeper directory trees are left in place (each level holds a descriptor).
const MAX_DEPTH: usize = 256;

/// What a suite's TMPDIR held: the files removed, and sentences for the
/// suite's `problems` (a deleted or replaced TMPDIR, a mount left in it, an
/// entry that could not be removed).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cleaned {
    /// None when nothing was removed.
    pub left: Option<TmpLeftovers>,
    pub problems: Vec<String>,
}

/// Report what is in a suite's TMPDIR `dir`, then remove it; never fails: what
/// went wrong is in [`Cleaned::problems`].
pub fn collect_and_remove(dir: &Path) -> Cleaned {
    let r = remove_tree(dir);
    let mut problems = Vec::new();
    match &r.top {
        Top::Directory | Top::File => {}
        Top::Missing => problems.push(format!(
            "TMPDIR was deleted by the suite (nothing to collect): {}",
            dir.display()
        )),
        Top::Symlink(target) => problems.push(format!(
            "TMPDIR was replaced by a symlink (removed; what it points to was neither listed nor touched): {} -> {}",
            dir.display(),
            target.display()
        )),
    }
    problems.extend(r.findings.iter().map(|f| f.sentence("TMPDIR")));
    Cleaned {
        left: (r.files > 0).then_some(TmpLeftovers {
            files: r.files,
            bytes: r.bytes,
            examples: r.examples,
        }),
        problems,
    }
}

/// What the path given to [`remove_tree`] turned out to be.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Top {
    /// A directory (walked and, unless findings say otherwise, removed).
    #[default]
    Directory,
    /// Nothing there.
    Missing,
    /// A symbolic link (to this target): the link was removed, the target left alone.
    Symlink(PathBuf),
    /// Another kind of file: removed.
    File,
}

/// Something [`remove_tree`] did not remove, or had to do to remove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A mount point: neither entered nor unmounted.
    Mount(PathBuf),
    /// Could not be removed (left in place).
    NotRemoved { path: PathBuf, error: String },
    /// A directory of ours without owner write/search permission, made
    /// writable (`u+rwx`) so that its entries could be removed.
    MadeWritable(PathBuf),
    /// A directory more than [`MAX_DEPTH`] levels down: left in place.
    TooDeep(PathBuf),
}

impl Finding {
    /// One sentence; `place` names what was being removed ("TMPDIR", a path).
    pub fn sentence(&self, place: &str) -> String {
        match self {
            Finding::Mount(p) => format!(
                "mount left in {place}: {} (neither entered nor unmounted; unmount it, then run `cargo reap clean`)",
                p.display()
            ),
            Finding::NotRemoved { path, error } => format!(
                "could not remove {} from {place}: {error} (left in place)",
                path.display()
            ),
            Finding::MadeWritable(p) => format!(
                "read-only directory in {place} made writable to remove it: {}",
                p.display()
            ),
            Finding::TooDeep(p) => format!(
                "directory tree in {place} deeper than {MAX_DEPTH} levels left in place: {}",
                p.display()
            ),
        }
    }
}

/// The outcome of [`remove_tree`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removal {
    pub top: Top,
    /// Files (anything not a directory) removed, and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// A few of them, relative to the removed path.
    pub examples: Vec<String>,
    pub findings: Vec<Finding>,
}

impl Removal {
    /// True when the path is gone (or never was there).
    pub fn complete(&self) -> bool {
        self.findings
            .iter()
            .all(|f| matches!(f, Finding::MadeWritable(_)))
    }

    /// What a user must hear about, one sentence each (`place` names what
    /// was removed): everything but a directory of ours made writable.
    pub fn problems(&self, place: &str) -> Vec<String> {
        self.findings
            .iter()
            .filter(|f| !matches!(f, Finding::MadeWritable(_)))
            .map(|f| f.sentence(place))
            .collect()
    }
}

/// Remove `path` and everything below it without following a symbolic link
/// or crossing a mount point; never fails, what it could not do is in
/// [`Removal::findings`]. A missing path is [`Top::Missing`].
pub fn remove_tree(path: &Path) -> Removal {
    let mut out = Removal::default();
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        out.findings.push(Finding::NotRemoved {
            path: path.to_path_buf(),
            error: "not a path cargo-reap removes".into(),
        });
        return out;
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let not_removed = |error: Errno| Finding::NotRemoved {
        path: path.to_path_buf(),
        error: std::io::Error::from(error).to_string(),
    };
    // Everything cargo-reap removes lies in a directory of its own (a run's,
    // the user's): a parent replaced by a symlink is not followed either.
    let pfd = match rustix::fs::openat(
        CWD,
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => {
            out.top = Top::Missing;
            return out;
        }
        Err(e) => {
            out.findings.push(not_removed(e));
            return out;
        }
    };
    let pst = match rustix::fs::statx(&pfd, "", AtFlags::EMPTY_PATH, mask()) {
        Ok(st) => st,
        Err(e) => {
            out.findings.push(not_removed(e));
            return out;
        }
    };
    let mount = MountKey::of(&pst);
    // Without mount ids (before Linux 5.8) a bind mount of the same
    // filesystem looks like any directory: ask the mount table instead.
    let listed = if mount.mnt_id.is_none() {
        match mount_points_below(parent, name) {
            Ok(m) => Some(m),
            Err(e) => {
                out.findings.push(Finding::NotRemoved {
                    path: path.to_path_buf(),
                    error: format!("cannot tell mounts apart without /proc/self/mountinfo ({e})"),
                });
                return out;
            }
        }
    } else {
        None
    };
    let mut walker = Walker {
        root: path,
        mount,
        listed,
        euid: rustix::process::geteuid(),
        out,
    };
    walker.entry(pfd.as_fd(), name, path, 0);
    walker.out
}

fn mask() -> StatxFlags {
    StatxFlags::BASIC_STATS | StatxFlags::MNT_ID
}

/// Which mount a file is on: the mount id where the kernel reports it
/// (Linux 5.8+; a bind mount of the same filesystem has its own), else the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MountKey {
    mnt_id: Option<u64>,
    dev: (u32, u32),
}

impl MountKey {
    fn of(st: &Statx) -> MountKey {
        MountKey {
            mnt_id: (st.stx_mask & StatxFlags::MNT_ID.bits() != 0).then_some(st.stx_mnt_id),
            dev: (st.stx_dev_major, st.stx_dev_minor),
        }
    }

    /// Is `st` on another mount than `self`, or the root of a mount?
    fn is_other_mount(&self, st: &Statx) -> bool {
        let theirs = MountKey::of(st);
        let mount_root = st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
            && st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
        let other_id = matches!((self.mnt_id, theirs.mnt_id), (Some(a), Some(b)) if a != b);
        mount_root || other_id || theirs.dev != self.dev
    }
}

/// Mount points at or below `parent/name` in `/proc/self/mountinfo`, as
/// paths relative to `parent/name` ("" for itself).
fn mount_points_below(parent: &Path, name: &OsStr) -> std::io::Result<BTreeSet<PathBuf>> {
    let top = std::fs::canonicalize(parent)?.join(name);
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(table
        .lines()
        .filter_map(|line| line.split_whitespace().nth(4))
        .map(|p| PathBuf::from(crate::containment::cgroup::unescape_mountinfo(p)))
        .filter_map(|p| p.strip_prefix(&top).ok().map(Path::to_path_buf))
        .collect())
}

struct Walker<'a> {
    root: &'a Path,
    mount: MountKey,
    /// The mount table's mount points below the top (relative to it), where
    /// statx gives no mount id.
    listed: Option<BTreeSet<PathBuf>>,
    euid: rustix::process::Uid,
    out: Removal,
}

impl Walker<'_> {
    fn listed_mount(&self, path: &Path) -> bool {
        let rel = path.strip_prefix(self.root).unwrap_or(path);
        self.listed.as_ref().is_some_and(|m| m.contains(rel))
    }

    fn not_removed(&mut self, path: &Path, error: Errno) {
        self.out.findings.push(Finding::NotRemoved {
            path: path.to_path_buf(),
            error: std::io::Error::from(error).to_string(),
        });
    }

    /// Remove `name` in `dir` (shown as `path`), `depth` levels below the top.
    fn entry(&mut self, dir: BorrowedFd<'_>, name: &OsStr, path: &Path, depth: usize) {
        let top = depth == 0;
        let st = match rustix::fs::statx(
            dir,
            name,
            AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
            mask(),
        ) {
            Ok(st) => st,
            Err(Errno::NOENT) => {
                if top {
                    self.out.top = Top::Missing;
                }
                return;
            }
            Err(e) => return self.not_removed(path, e),
        };
        if self.mount.is_other_mount(&st) || self.listed_mount(path) {
            self.out.findings.push(Finding::Mount(path.to_path_buf()));
            return;
        }
        let kind = FileType::from_raw_mode(st.stx_mode.into());
        if kind == FileType::Directory {
            return self.directory(dir, name, path, &st, depth);
        }
        if top && kind == FileType::Symlink {
            let target = match rustix::fs::readlinkat(dir, name, Vec::new()) {
                Ok(t) => PathBuf::from(OsStr::from_bytes(t.as_bytes())),
                Err(e) => return self.not_removed(path, e),
            };
            self.out.top = Top::Symlink(target);
            if let Err(e) = unlink(dir, name, AtFlags::empty()) {
                self.not_removed(path, e);
            }
            return;
        }
        if top {
            self.out.top = Top::File;
        }
        match unlink(dir, name, AtFlags::empty()) {
            Ok(()) => {
                self.out.files += 1;
                self.out.bytes += st.stx_size;
                if self.out.examples.len() < EXAMPLES {
                    let rel = path.strip_prefix(self.root).unwrap_or(path);
                    let shown = if rel.as_os_str().is_empty() {
                        path
                    } else {
                        rel
                    };
                    self.out.examples.push(shown.display().to_string());
                }
            }
            Err(e) => self.not_removed(path, e),
        }
    }

    fn directory(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        st: &Statx,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            self.out.findings.push(Finding::TooDeep(path.to_path_buf()));
            return;
        }
        // A directory of ours we may not read, search or write (a test's
        // `chmod 0555`): give the owner its rights back. Only owner bits are
        // added, so even a directory swapped in meanwhile gains nothing for
        // anyone else. Root needs no permission bits.
        let mode = u32::from(st.stx_mode) & 0o7777;
        if !self.euid.is_root() && st.stx_uid == self.euid.as_raw() && mode & 0o700 != 0o700 {
            match rustix::fs::chmodat(
                dir,
                name,
                Mode::from_raw_mode(mode | 0o700),
                AtFlags::empty(),
            ) {
                Ok(()) => self
                    .out
                    .findings
                    .push(Finding::MadeWritable(path.to_path_buf())),
                Err(e) => return self.not_removed(path, e),
            }
        }
        let fd = match rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return,
            Err(e) => return self.not_removed(path, e),
        };
        // What was opened is what was examined (not a mount or a swapped entry).
        match rustix::fs::statx(&fd, "", AtFlags::EMPTY_PATH, mask()) {
            Ok(now) if now.stx_ino == st.stx_ino && !self.mount.is_other_mount(&now) => {}
            Ok(_) => {
                self.out.findings.push(Finding::NotRemoved {
                    path: path.to_path_buf(),
                    error: "it changed while being removed".into(),
                });
                return;
            }
            Err(e) => return self.not_removed(path, e),
        }
        let names = match names_in(&fd) {
            Ok(n) => n,
            Err(e) => return self.not_removed(path, e),
        };
        let before = self.out.findings.len();
        for n in &names {
            let n = OsStr::from_bytes(n.as_bytes());
            self.entry(fd.as_fd(), n, &path.join(n), depth + 1);
        }
        drop(fd);
        match unlink(dir, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            // What is left inside was reported already.
            Err(Errno::NOTEMPTY | Errno::EXIST | Errno::BUSY)
                if self.out.findings[before..]
                    .iter()
                    .any(|f| !matches!(f, Finding::MadeWritable(_))) => {}
            Err(e) => self.not_removed(path, e),
        }
    }
}

fn unlink(dir: BorrowedFd<'_>, name: &OsStr, flags: AtFlags) -> Result<(), Errno> {
    rustix::fs::unlinkat(dir, name, flags)
}

/// Every name in the directory but `.` and `..`, read before any is removed.
fn names_in(fd: &OwnedFd) -> Result<Vec<CString>, Errno> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(fd)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "cargo-reap-tmpdir-test-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn counts_names_and_removes() {
        let dir = scratch("counts");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.log"), b"12345").unwrap();
        std::fs::write(dir.join("sub/b.bin"), b"123").unwrap();
        let c = collect_and_remove(&dir);
        let t = c.left.unwrap();
        assert_eq!((t.files, t.bytes), (2, 8));
        assert!(t.examples.contains(&"a.log".to_string()));
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert!(!dir.exists());

        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(
            collect_and_remove(&dir),
            Cleaned::default(),
            "an empty TMPDIR reports nothing"
        );
    }

    #[test]
    fn a_symlink_is_removed_never_followed() {
        let outside = scratch("outside");
        std::fs::write(outside.join("keep"), b"x").unwrap();
        let dir = scratch("links");
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
        let r = remove_tree(&dir);
        assert_eq!((r.top.clone(), r.files), (Top::Directory, 1), "{r:?}");
        assert!(outside.join("keep").exists());
        assert!(!dir.exists());

        // The TMPDIR itself replaced by a link: reported, the target untouched.
        std::os::unix::fs::symlink(&outside, &dir).unwrap();
        let c = collect_and_remove(&dir);
        assert_eq!(c.left, None);
        assert!(c.problems[0].contains("replaced by a symlink"), "{c:?}");
        assert!(outside.join("keep").exists());
        assert!(std::fs::symlink_metadata(&dir).is_err(), "the link is gone");
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn the_mount_table_fallback_finds_mount_points_below_a_path() {
        let below = mount_points_below(Path::new("/"), OsStr::new("proc")).unwrap();
        assert!(below.contains(Path::new("")), "/proc is a mount: {below:?}");
        let below = mount_points_below(Path::new("/"), OsStr::new("sys")).unwrap();
        assert!(
            below.iter().any(|p| p.starts_with("fs/cgroup")),
            "{below:?}"
        );
    }

    #[test]
    fn a_parent_replaced_by_a_symlink_is_not_followed() {
        let outside = scratch("outside-parent");
        std::fs::create_dir(outside.join("x")).unwrap();
        std::fs::write(outside.join("x/keep"), b"x").unwrap();
        let link = scratch("parent-link");
        std::fs::remove_dir(&link).unwrap();
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let r = remove_tree(&link.join("x"));
        assert!(!r.complete(), "{r:?}");
        assert!(outside.join("x/keep").exists());
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn a_missing_tmpdir_is_a_problem_not_an_error() {
        let dir = scratch("missing");
        std::fs::remove_dir(&dir).unwrap();
        let c = collect_and_remove(&dir);
        assert_eq!(c.left, None);
        assert!(c.problems[0].contains("deleted by the suite"), "{c:?}");
    }
}
