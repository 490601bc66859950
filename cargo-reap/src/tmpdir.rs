//! Each suite runs with a private TMPDIR (also TMP and TEMP). Files it leaves
//! there — the file-shaped cousin of a process leak — are reported (count,
//! bytes, a few names) and removed. `--fail-on tmp` makes them fail the run.

use std::path::Path;

use crate::error::RunError;
use crate::report::schema::TmpLeftovers;

/// How many paths are named in the report.
const EXAMPLES: usize = 5;

/// Report what is in `dir`, then remove it. None when it was empty.
pub fn collect_and_remove(dir: &Path) -> Result<Option<TmpLeftovers>, RunError> {
    let mut found = TmpLeftovers {
        files: 0,
        bytes: 0,
        examples: Vec::new(),
    };
    walk(dir, dir, &mut found)?;
    std::fs::remove_dir_all(dir).map_err(|source| RunError::Io {
        what: "removing the suite's TMPDIR",
        path: dir.to_path_buf(),
        source,
    })?;
    Ok((found.files > 0).then_some(found))
}

fn walk(root: &Path, dir: &Path, found: &mut TmpLeftovers) -> Result<(), RunError> {
    let io = |source| RunError::Io {
        what: "reading the suite's TMPDIR",
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let meta = entry.metadata().map_err(io)?; // does not follow symlinks
        let path = entry.path();
        if meta.is_dir() {
            walk(root, &path, found)?;
            continue;
        }
        found.files += 1;
        found.bytes += meta.len();
        if found.examples.len() < EXAMPLES {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            found.examples.push(rel.display().to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_names_and_removes() {
        let dir =
            std::env::temp_dir().join(format!("cargo-reap-tmpdir-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.log"), b"12345").unwrap();
        std::fs::write(dir.join("sub/b.bin"), b"123").unwrap();
        let t = collect_and_remove(&dir).unwrap().unwrap();
        assert_eq!((t.files, t.bytes), (2, 8));
        assert!(t.examples.contains(&"a.log".to_string()));
        assert!(!dir.exists());

        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(
            collect_and_remove(&dir).unwrap(),
            None,
            "an empty TMPDIR reports nothing"
        );
    }
}
