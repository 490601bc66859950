//! The Rust library directory cargo puts on a test binary's dynamic library
//! path (`<sysroot>/lib/rustlib/<target>/lib`): a proc-macro crate's test
//! binary, or one built with `-C prefer-dynamic`, links libstd from there.
//!
//! cargo does not ask rustc for it on every build: it keeps rustc's answers
//! in `<target-dir>/.rustc_info.json`, refreshed whenever rustc changes, and
//! joins the sysroot found there with the target's name. Read after the
//! build, that file holds the answers of the very rustc this build used, so
//! cargo-reap takes the directory from it the same way (a file read instead
//! of starting rustc, ~15–20 ms of CPU beside the build). Without a usable
//! file (`CARGO_CACHE_RUSTC_INFO=0`, a format this code does not know) rustc
//! is asked, as before (`rustc --print target-libdir`).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The library directory for the test binaries of `target` (the host's
/// without `--target`), after a build whose target directory is `target_dir`.
pub fn test_lib_dirs(target: Option<&str>, target_dir: &Path) -> Vec<PathBuf> {
    let cache = target_dir.join(".rustc_info.json");
    let found = std::fs::read_to_string(&cache)
        .map_err(|e| format!("{}: {e}", cache.display()))
        .and_then(|text| from_rustc_info(&text, target, &|p: &Path| p.is_dir()));
    match found {
        Ok(dir) => vec![dir],
        Err(why) => {
            tracing::debug!(
                "rustc's library directory not from cargo's cache ({why}): asking rustc"
            );
            asked_of_rustc(target)
        }
    }
}

/// The directory from the text of cargo's `.rustc_info.json`: the sysroot
/// (the one line of rustc's answers that is an absolute path with a
/// `lib/rustlib` directory in it) joined with `lib/rustlib/<target>/lib`, as
/// cargo does; the target's name is `--target`'s (a target specification
/// file's stem) or the host of rustc's `-vV` answer. An error says why the
/// file cannot answer (then rustc is asked).
pub fn from_rustc_info(
    text: &str,
    target: Option<&str>,
    is_dir: &dyn Fn(&Path) -> bool,
) -> Result<PathBuf, String> {
    let info: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let outputs = info
        .get("outputs")
        .and_then(Value::as_object)
        .ok_or("no `outputs` object")?;
    let lines: Vec<&str> = outputs
        .values()
        .filter(|o| o.get("success").and_then(Value::as_bool) == Some(true))
        .filter_map(|o| o.get("stdout").and_then(Value::as_str))
        .flat_map(str::lines)
        .collect();
    let name = match target {
        Some(t) if t.ends_with(".json") => Path::new(t)
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| format!("no name in the target file {t}"))?,
        Some(t) => t,
        None => lines
            .iter()
            .find_map(|l| l.strip_prefix("host: "))
            .map(str::trim)
            .ok_or("no `host:` line (rustc -vV)")?,
    };
    let mut sysroots: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with('/') && is_dir(&Path::new(l).join("lib/rustlib")))
        .collect();
    sysroots.sort_unstable();
    sysroots.dedup();
    let sysroot = match sysroots.as_slice() {
        [one] => *one,
        [] => return Err("no sysroot among rustc's answers".into()),
        several => return Err(format!("several sysroots: {}", several.join(", "))),
    };
    let dir = Path::new(sysroot)
        .join("lib/rustlib")
        .join(name)
        .join("lib");
    if is_dir(&dir) {
        Ok(dir)
    } else {
        Err(format!("{} is not a directory", dir.display()))
    }
}

/// `rustc --print target-libdir [--target T]`, run where cargo ran (our
/// directory: rustup picks the same toolchain for both).
fn asked_of_rustc(target: Option<&str>) -> Vec<PathBuf> {
    let mut args = vec!["--print", "target-libdir"];
    args.extend(target.iter().flat_map(|t| ["--target", t]));
    match crate::runner::rustc_output(None, &args) {
        Ok(text) => {
            let dir = text.trim();
            if dir.is_empty() {
                Vec::new()
            } else {
                vec![PathBuf::from(dir)]
            }
        }
        Err(e) => {
            eprintln!(
                "cargo-reap: warning: {e}: proc-macro and dylib test binaries (libstd \
                 linked dynamically) may not start; set RUSTC"
            );
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSROOT: &str = "/opt/rust/toolchains/stable";

    /// cargo's file as cargo 1.95 writes it: rustc's `-vV` and its
    /// target-info query (file names, sysroot, split-debuginfo, cfg).
    fn info(sysroot_lines: &[&str]) -> String {
        let query = format!(
            "___\nlib___.rlib\nlib___.so\n{}\noff\npacked\nunpacked\n___\ndebug_assertions\npanic=\"unwind\"\n",
            sysroot_lines.join("\n")
        );
        serde_json::json!({
            "rustc_fingerprint": 1,
            "outputs": {
                "1": {"success": true, "status": "", "code": 0,
                      "stdout": "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\n",
                      "stderr": ""},
                "2": {"success": true, "status": "", "code": 0, "stdout": query, "stderr": ""},
                "3": {"success": false, "status": "", "code": 1, "stdout": "/elsewhere\n", "stderr": ""},
            },
            "successes": {}
        })
        .to_string()
    }

    /// Directories that exist in these tests: the sysroots' `lib/rustlib`
    /// and the library directories of two targets.
    fn is_dir(p: &Path) -> bool {
        let p = p.to_str().unwrap();
        [
            "/opt/rust/toolchains/stable/lib/rustlib",
            "/opt/rust/toolchains/stable/lib/rustlib/x86_64-unknown-linux-gnu/lib",
            "/opt/rust/toolchains/stable/lib/rustlib/my-os/lib",
            "/opt/rust/toolchains/beta/lib/rustlib",
            "/elsewhere/lib/rustlib",
        ]
        .contains(&p)
    }

    #[test]
    fn the_hosts_directory_under_cargos_sysroot() {
        assert_eq!(
            from_rustc_info(&info(&[SYSROOT]), None, &is_dir).unwrap(),
            PathBuf::from(SYSROOT).join("lib/rustlib/x86_64-unknown-linux-gnu/lib")
        );
    }

    #[test]
    fn a_target_by_triple_or_by_specification_file() {
        let text = info(&[SYSROOT]);
        let dir = |t| from_rustc_info(&text, Some(t), &is_dir);
        assert_eq!(
            dir("x86_64-unknown-linux-gnu").unwrap(),
            PathBuf::from(SYSROOT).join("lib/rustlib/x86_64-unknown-linux-gnu/lib")
        );
        assert_eq!(
            dir("targets/my-os.json").unwrap(),
            PathBuf::from(SYSROOT).join("lib/rustlib/my-os/lib")
        );
        // A target whose library directory is not there: rustc is asked.
        assert!(dir("aarch64-unknown-linux-gnu")
            .unwrap_err()
            .contains("not a directory"));
    }

    #[test]
    fn anything_unclear_is_left_to_rustc() {
        let err = |text: &str| from_rustc_info(text, None, &is_dir).unwrap_err();
        assert!(err("").contains("not JSON"));
        assert!(err("{\"rustc_fingerprint\": 1}").contains("outputs"));
        // A path that is no sysroot (a failed answer's is not read at all).
        assert!(err(&info(&["/usr/lib"])).contains("no sysroot"));
        // Two sysroots (e.g. `--sysroot` in RUSTFLAGS): which one cargo
        // used for the test binaries is not known here.
        assert!(err(&info(&[SYSROOT, "/opt/rust/toolchains/beta"])).contains("several"));
        // No `-vV` answer and no --target: no name for the host.
        let no_host = serde_json::json!({"outputs": {"2": {"success": true, "stdout": format!("{SYSROOT}\n")}}});
        assert!(err(&no_host.to_string()).contains("host"));
    }
}
