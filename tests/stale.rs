//! The stale sweep, end to end. Its own test binary: cargo runs test binaries
//! one after another, so no concurrent cargo-reap run of the other end-to-end
//! tests can sweep this test's fake leftovers first.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

/// This user's directory of run directories (root's: the tests run as root).
fn user_dir() -> PathBuf {
    std::env::temp_dir().join("cargo-reap-0")
}

/// Removes the fake leaf on every path (after its processes are gone).
struct LeafGuard(PathBuf);

impl Drop for LeafGuard {
    fn drop(&mut self) {
        if self.0.exists() {
            if let Err(e) = std::fs::write(self.0.join("cgroup.kill"), "1") {
                eprintln!("cgroup.kill {}: {e}", self.0.display());
            }
            wait_until(
                "the fake leaf to empty",
                std::time::Duration::from_secs(5),
                || std::fs::remove_dir(&self.0).is_ok(),
            );
        }
    }
}

/// Leftovers of a dead run (a populated leaf, a tagged process) are listed by
/// `clean --dry-run`, left alone by it, and removed by the next run, which says so.
/// A run's start looks for tagged processes only when a dead run left a mark
/// (leaf or TMPDIR root); runs of other pid namespaces are never touched.
#[test]
fn stale_leftovers_of_dead_runs_are_swept_and_named() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    require_root();
    let ns = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
    let base = manifest_args();
    // Leftovers of earlier tests' killed runs would be swept below and spoil
    // the "nothing swept" check: clear them first.
    let out = Command::new(REAP).arg("clean").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A dead run that left only a tagged process and no mark (no leaf, no
    // TMPDIR root): a run's start does not read every environment for it...
    let unmarked_run = format!("1-99999996-{ns:x}");
    let unmarked = Guarded(
        Command::new("sleep")
            .arg("3796")
            .env("CARGO_REAP_SUITE", format!("{unmarked_run}/fake::suite"))
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    wait_until(
        "the unmarked leftover to exec",
        std::time::Duration::from_secs(5),
        || !tagged(&unmarked_run).is_empty(),
    );
    let run = reap(
        &[],
        &args(&base, &["test", "-p", "leaky", "--test", "clean"]),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("stale sweep"), "{}", run.stderr);
    assert!(
        !tagged(&unmarked_run).is_empty(),
        "left for a thorough sweep"
    );
    // ...but once its TMPDIR root is there (a runner that died mid-run leaves
    // it), the next run finds and kills it.
    let mark = user_dir().join(&unmarked_run);
    std::fs::create_dir_all(&mark).unwrap();
    let run = reap(
        &[],
        &args(&base, &["test", "-p", "leaky", "--test", "clean"]),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for what in [
        format!(
            "stale sweep: removed temporary directory {}",
            mark.display()
        ),
        format!("stale sweep: killed pid {}", unmarked.0.id()),
    ] {
        assert!(run.stderr.contains(&what), "{what}: {}", run.stderr);
    }
    assert!(!mark.exists());
    assert_killed_by_the_sweep(unmarked);

    // pid 99999998 cannot exist (pid_max <= 2^22).
    let dead_run = format!("1-99999998-{ns:x}");
    let dead_run = dead_run.as_str();
    let leaf = cgroup2_root().join(format!("cargo-reap.{dead_run}.0.1.fake"));
    std::fs::create_dir(&leaf).unwrap();
    let _leaf_guard = LeafGuard(leaf.clone());
    // A run of another pid namespace (a container sharing the cgroup tree):
    // its pid means nothing here, so it is never swept.
    let foreign = cgroup2_root().join(format!("cargo-reap.1-99999997-{:x}.0.1.foreign", ns + 1));
    std::fs::create_dir(&foreign).unwrap();
    let _foreign_guard = LeafGuard(foreign.clone());
    // The scratch directory of a dead `cargo reap run`.
    let dead_run_dir = user_dir().join(format!("1-99999995-{ns:x}"));
    let scratch = dead_run_dir.join("run");
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(scratch.join("suite.list"), "x: test\n").unwrap();
    let in_leaf = Guarded(
        Command::new("sleep")
            .arg("3797")
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    std::fs::write(leaf.join("cgroup.procs"), in_leaf.0.id().to_string()).unwrap();
    let tagged_child = Guarded(
        Command::new("sleep")
            .arg("3798")
            .env("CARGO_REAP_SUITE", format!("{dead_run}/fake::suite"))
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    wait_until(
        "the tagged leftover to exec",
        std::time::Duration::from_secs(5),
        || !tagged(dead_run).is_empty(),
    );

    let out = Command::new(REAP)
        .args(["clean", "--dry-run"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "would remove temporary directory {}",
            dead_run_dir.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("would remove cgroup {}", leaf.display())),
        "{text}"
    );
    assert!(text.contains("(1 process(es) inside)"), "{text}");
    assert!(
        text.contains(&format!("would kill pid {}", tagged_child.0.id())),
        "{text}"
    );
    assert!(leaf.exists(), "--dry-run removes nothing");
    assert!(
        !text.contains("foreign"),
        "another namespace's run is not listed: {text}"
    );

    let run = reap(
        &[],
        &args(&base, &["test", "-p", "leaky", "--test", "clean"]),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("stale sweep: removed cgroup {}", leaf.display())),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("stale sweep: killed pid {}", tagged_child.0.id())),
        "{}",
        run.stderr
    );
    assert!(!leaf.exists());
    assert!(
        !dead_run_dir.exists(),
        "a dead run's directory (with its scratch files) is removed"
    );
    assert!(!run.stderr.contains("foreign"), "{}", run.stderr);
    assert!(foreign.exists(), "another namespace's leaf is left alone");
    // Both leftovers were killed: their exit is the event that proves it.
    for g in [in_leaf, tagged_child] {
        assert_killed_by_the_sweep(g);
    }
}

/// The leftover died of SIGKILL (the sweep's); reaped here, so its guard
/// has nothing left to do.
fn assert_killed_by_the_sweep(mut g: Guarded) {
    let status = g.0.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed by the sweep"
    );
    std::mem::forget(g);
}
