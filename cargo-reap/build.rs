//! `cargo reap --version` names the git commit when cargo-reap is built from a checkout.
//!
//! Sets `CARGO_REAP_VERSION` to `VERSION (git COMMIT)` when the workspace root above this package
//! holds a `.git` and `git` answers, else to `VERSION` alone: a packaged crate (crates.io,
//! `cargo package`'s verify build) has `.cargo_vcs_info.json` and no `.git` above it. This script
//! never fails the build: without git the version has no commit, and a checkout whose git does
//! not answer gets a warning saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_else(|_| "unknown".into());
    let full = match commit() {
        Some(commit) => format!("{version} (git {commit})"),
        None => version,
    };
    println!("cargo::rustc-env=CARGO_REAP_VERSION={full}");
}

/// The checkout's short commit, or None (no checkout, or git did not answer: warned).
fn commit() -> Option<String> {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    if manifest_dir.join(".cargo_vcs_info.json").exists() {
        return None; // a packaged crate: whatever repository lies above it is not its source
    }
    let root = manifest_dir.parent()?;
    // `.git` is a directory in a clone, a file in a worktree.
    if !root.join(".git").exists() {
        return None;
    }
    let commit = match git(root, &["rev-parse", "--short=12", "HEAD"]) {
        Ok(commit) => commit,
        Err(why) => {
            println!("cargo::warning=cargo reap --version will name no git commit: {why}");
            return None;
        }
    };
    // Rebuild when HEAD moves: HEAD itself, the branch it names, packed refs.
    let mut watched = vec!["HEAD".to_string()];
    if let Ok(branch) = git(root, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    watched.push("packed-refs".into());
    for name in watched {
        if let Ok(path) = git(root, &["rev-parse", "--git-path", &name]) {
            let path = root.join(path); // relative paths are relative to root
            if path.exists() {
                println!("cargo::rerun-if-changed={}", path.display());
            }
        }
    }
    Some(commit)
}

/// `git -C root ARGS`'s trimmed output, or why not.
fn git(root: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|e| format!("git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
