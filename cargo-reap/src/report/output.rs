//! Writing `--json` / `--junit` / `--html` atomically: the report is written to a temp
//! file in the same directory, synced, then renamed over the path, so a
//! reader sees the old file or the complete new one, never a truncated one.
//! The path is checked before the build (a temp file is created there and
//! removed), so a bad path fails fast and an old report stays untouched.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A report's destination, checked writable.
#[derive(Debug)]
pub struct ReportPath {
    pub path: PathBuf,
    /// `.<file name>.cargo-reap-<run id>.tmp` next to it.
    tmp: PathBuf,
}

impl ReportPath {
    /// Check that a report can be written to `path` (by creating and
    /// removing its temp file); nothing at `path` itself is touched.
    pub fn check(path: &Path, run_id: &str) -> Result<ReportPath, String> {
        let name = path
            .file_name()
            .ok_or_else(|| format!("{} names no file", path.display()))?;
        if path.is_dir() {
            return Err(format!("{} is a directory", path.display()));
        }
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".cargo-reap-{run_id}.tmp"));
        let tmp = path.with_file_name(tmp_name);
        let out = ReportPath {
            path: path.to_path_buf(),
            tmp,
        };
        out.create_tmp()
            .map_err(|e| format!("{}: {}", out.tmp.display(), e))?;
        out.remove_tmp()
            .map_err(|e| format!("{}: {}", out.tmp.display(), e))?;
        Ok(out)
    }

    fn create_tmp(&self) -> std::io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.tmp)
    }

    fn remove_tmp(&self) -> std::io::Result<()> {
        std::fs::remove_file(&self.tmp)
    }

    /// Write `bytes` to the temp file, sync it, rename it over the path and
    /// sync the directory. On failure the temp file is removed and the old
    /// report (if any) is left as it was.
    pub fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let written = self.create_tmp().and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&self.tmp, &self.path)
        });
        if let Err(e) = written {
            if let Err(rm) = self.remove_tmp() {
                if rm.kind() != std::io::ErrorKind::NotFound {
                    eprintln!("cargo-reap: warning: removing {}: {rm}", self.tmp.display());
                }
            }
            return Err(e);
        }
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }
}

/// Refuse two report flags that name one file (`("--json", path)`, ...):
/// the second write would replace the first report.
pub fn distinct(flags: &[(&str, Option<&Path>)]) -> Result<(), String> {
    let given: Vec<(&str, &Path)> = flags
        .iter()
        .filter_map(|(f, p)| Some((*f, (*p)?)))
        .collect();
    for (i, (fa, a)) in given.iter().enumerate() {
        if let Some((fb, b)) = given[i + 1..].iter().find(|(_, b)| same_file(a, b)) {
            return Err(format!(
                "{fa} {} and {fb} {} name the same file: give each report its own path",
                a.display(),
                b.display()
            ));
        }
    }
    Ok(())
}

/// Do `a` and `b` name the same file (`x`, `./x`, `d/../x`, a symlink to it)?
/// An existing file is compared by device and inode; else by the resolved
/// directory and the file name.
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        return ma.dev() == mb.dev() && ma.ino() == mb.ino();
    }
    let resolved = |p: &Path| -> Option<PathBuf> {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        Some(dir.canonicalize().ok()?.join(p.file_name()?))
    };
    match (resolved(a), resolved(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_one_file_under_two_spellings() {
        let dir = std::env::temp_dir().join(format!("cargo-reap-same-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let a = dir.join("r.json");
        assert!(same_file(&a, &dir.join("sub/../r.json")));
        assert!(!same_file(&a, &dir.join("r.xml")));
        std::fs::write(&a, "x").unwrap();
        std::os::unix::fs::symlink(&a, dir.join("link")).unwrap();
        assert!(same_file(&a, &dir.join("link")));
        assert!(same_file(&dir.join("sub/../r.json"), &dir.join("./r.json")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_two_report_flags_naming_one_file() {
        let (a, b) = (Path::new("r.json"), Path::new("./r.json"));
        assert!(
            distinct(&[("--json", Some(a)), ("--junit", None), ("--html", Some(b))])
                .unwrap_err()
                .starts_with("--json r.json and --html ./r.json name the same file")
        );
        assert!(distinct(&[("--json", Some(a)), ("--html", Some(Path::new("r.html")))]).is_ok());
    }

    #[test]
    fn replaces_a_report_atomically() {
        let dir = std::env::temp_dir().join(format!("cargo-reap-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        std::fs::write(&path, "old").unwrap();
        let out = ReportPath::check(&path, "run").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        out.write(b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
