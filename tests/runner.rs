//! `cargo reap run` as a per-binary (cargo's target runner) or per-test
//! (nextest's wrapper script) containment: nextest's `[scripts.wrapper]`
//! configuration end to end, the isolation line once per session, and the
//! stale sweep of runner mode at most once per interval.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// cargo-nextest, where installed (`$PATH`, or cargo's bin directory).
fn nextest() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("cargo-nextest"))
        .find(|p| p.is_file())
}

/// nextest's wrapper script configuration that runs every test inside
/// `cargo-reap run` (the README's recipe, with this build's binary).
fn nextest_config(dir: &Path) -> PathBuf {
    let path = dir.join("nextest.toml");
    std::fs::write(
        &path,
        format!(
            r#"experimental = ["wrapper-scripts"]

[scripts.wrapper.reap]
command = ['{REAP}', 'run', '--timeout', '20s', '--']

[[profile.default.scripts]]
filter = 'all()'
run-wrapper = 'reap'
"#
        ),
    )
    .unwrap();
    path
}

/// Under `cargo nextest run` with cargo-reap as the wrapper script, each test
/// runs in its own containment: the test that leaves a daemon fails with
/// cargo-reap's 103 and its leak table, the clean tests pass, and nothing
/// of the fixture survives (seen from outside, in /proc).
#[test]
fn nextest_wrapper_script_gives_each_test_the_leak_gate() {
    require_root();
    let Some(nextest) = nextest() else {
        eprintln!(
            "SKIPPED: cargo-nextest is not installed here; this test runs nextest with cargo-reap as its wrapper script where it is"
        );
        return;
    };
    let scratch = Scratch::new("nextest");
    let config = nextest_config(&scratch.0);
    let marker = format!("nextest-{}", std::process::id());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(nextest)
        .args(["nextest", "run", "--manifest-path"])
        .arg(fixture_manifest())
        .args(CLEAN_AND_DAEMON)
        .arg("--config-file")
        .arg(&config)
        .env("CARGO", cargo)
        .env("REAP_FIXTURE_MARK", &marker)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(100), "nextest fails: {all}");
    let fail_line = all
        .lines()
        .find(|l| l.contains("FAIL") && l.contains("double_forked_daemon"))
        .unwrap_or_else(|| panic!("the leaking test fails: {all}"));
    assert!(fail_line.contains("leaky::daemon"), "{fail_line}");
    assert!(
        all.contains("test failed with exit code 103"),
        "cargo-reap's leak exit code is the test's result: {all}"
    );
    assert!(all.contains("LEAKED PROCESSES"), "{all}");
    for clean in ["no_children_at_all", "shell_pipeline_is_waited"] {
        assert!(
            all.lines().any(|l| l.contains("PASS") && l.contains(clean)),
            "{clean} passes: {all}"
        );
    }
    assert!(
        marked(&marker).is_empty(),
        "nothing of the fixture survived: {:?}",
        marked(&marker)
    );
}

/// cargo running several test binaries through `cargo-reap run` is one
/// session: the isolation line is said once, not once per binary.
#[test]
fn the_isolation_line_is_said_once_per_cargo_session() {
    require_root();
    let marker = format!("session-{}", std::process::id());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let runner = format!(
        "target.'cfg(all())'.runner = ['{REAP}', 'run', '--isolation', 'process-group', '--']"
    );
    let session = || {
        Command::new(&cargo)
            .args(["test", "--manifest-path"])
            .arg(fixture_manifest())
            .args([
                "-p",
                "leaky",
                "--test",
                "clean",
                "--test",
                "failing",
                "--test",
                "crash",
                "--no-fail-fast",
                "--config",
                &runner,
            ])
            .env("REAP_FIXTURE_MARK", &marker)
            .output()
            .unwrap()
    };
    for _ in 0..2 {
        let out = session();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let binaries = stderr.matches("Running tests/").count();
        assert_eq!(binaries, 3, "three test binaries ran: {stderr}");
        let lines = stderr
            .matches("cargo-reap: isolation: process group")
            .count();
        assert_eq!(lines, 1, "once per cargo invocation: {stderr}");
    }
    assert!(marked(&marker).is_empty(), "nothing survived");
}

/// A directory holding `cargo-reap-<uid>`: a `TMPDIR` of this test's own, so
/// that the stamp of the last sweep is this test's alone.
fn own_tmpdir(scratch: &Scratch) -> PathBuf {
    let tmp = scratch.0.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    tmp
}

/// `cargo reap run` sweeps the leftovers of dead runs at most once per 10 s
/// per user (a target runner starts once per test binary): the first run
/// sweeps, one right after it does not, and once the stamp is older than the
/// interval the next one sweeps again.
#[test]
fn runner_mode_sweeps_dead_runs_at_most_once_per_interval() {
    use std::os::unix::fs::MetadataExt;
    require_root();
    let scratch = Scratch::new("runner-sweep");
    let tmp = own_tmpdir(&scratch);
    let user_dir = tmp.join(format!(
        "cargo-reap-{}",
        rustix::process::geteuid().as_raw()
    ));
    let ns = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
    // pids of 99999990.. cannot exist (pid_max <= 2^22): dead runs.
    let dead = |n: u32| {
        let dir = user_dir.join(format!("1-9999999{n}-{ns:x}"));
        std::fs::create_dir_all(dir.join("run")).unwrap();
        dir
    };
    let run = || {
        let out = Command::new(REAP)
            .args(["run", "--", "true"])
            .env("TMPDIR", &tmp)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = dead(1);
    let stderr = run();
    assert!(!first.exists(), "the first run sweeps: {stderr}");
    assert!(
        stderr.contains("stale sweep: removed temporary directory"),
        "{stderr}"
    );

    let second = dead(2);
    let stderr = run();
    assert!(second.exists(), "within the interval, no sweep: {stderr}");
    assert!(!stderr.contains("stale sweep"), "{stderr}");

    // The last sweep a minute ago: due again.
    let stamp = user_dir.join("last-sweep");
    let minute_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&stamp)
        .unwrap()
        .set_modified(minute_ago)
        .unwrap();
    let stderr = run();
    assert!(!second.exists(), "past the interval, the sweep: {stderr}");
}
