//! Run-level resilience and input validation, end to end (issue 10): the real
//! binary on `fixtures/sabotage`'s `sabotage-harness` suites.
//!
//! - One suite never costs the run its report: a suite that cannot be
//!   started, a log disk that fills up, a report path removed during the run.
//! - Reports are written atomically (temp file + rename).
//! - The exit code the summary prints is the exit code returned.
//! - No panic on any input; a panic is exit 2 and still kills everything.
//! - A `harness = false` binary that is not libtest gets no invented test names.
//!
//! Each test also checks from outside that nothing survived (the run's tag,
//! its cgroup leaves, and every fixture process by its `sleep 385x`). One
//! test at a time (a lock): the outside scans must not see another test's
//! live processes. They need root, as CI has.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use common::*;
use serde::Deserialize;
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time; the stray check at the end of each.
struct Guarded {
    _lock: MutexGuard<'static, ()>,
    since: u64,
}

impl Guarded {
    fn start() -> Guarded {
        require_root();
        Guarded {
            _lock: SERIAL.lock().unwrap_or_else(|p| p.into_inner()),
            since: reap_probe::boottime_ticks().saturating_sub(1),
        }
    }

    /// No fixture process of this package (`sleep 385x`) is alive.
    fn assert_clean(&self, what: &str) {
        assert_no_strays(what, self.since, |s, _| {
            s.cmdline.len() == 2 && s.cmdline[0] == "sleep" && s.cmdline[1].starts_with("385")
        });
    }
}

/// The sabotage-harness entries of `fixtures/sabotage/expected.toml`, with the
/// keys only these tests read.
#[derive(Debug, Deserialize)]
struct Suite {
    id: String,
    status: String,
    attempts: usize,
    leaks: usize,
    #[serde(default)]
    leak_tests: Vec<String>,
    #[serde(default)]
    problems: Vec<String>,
    #[serde(default)]
    leak_attribution: Option<String>,
}

fn expected(targets: &[&str]) -> Vec<Suite> {
    #[derive(Deserialize)]
    struct File {
        suite: Vec<Suite>,
    }
    let text = std::fs::read_to_string(repo().join("fixtures/sabotage/expected.toml")).unwrap();
    let all = toml::from_str::<File>(&text).unwrap().suite;
    let ids: Vec<String> = targets
        .iter()
        .map(|t| format!("sabotage-harness::{t}"))
        .collect();
    let picked: Vec<Suite> = all.into_iter().filter(|s| ids.contains(&s.id)).collect();
    assert_eq!(picked.len(), targets.len(), "expected.toml has every suite");
    picked
}

/// `--manifest-path … -p sabotage-harness --test T …` plus `extra`.
fn harness_args(targets: &[&str], extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "test".into(),
        "--manifest-path".into(),
        fixture_manifest_of("sabotage").display().to_string(),
        "-p".into(),
        "sabotage-harness".into(),
        "--timeout".into(),
        "30s".into(),
        "--grace".into(),
        "1s".into(),
    ];
    for t in targets {
        v.push("--test".into());
        v.push(t.to_string());
    }
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The exit code printed on the summary line (`…, exit N)`), if any.
fn printed_exit(stderr: &str) -> Option<i32> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("cargo-reap: ") && l.contains("(isolation: "))?;
    let n = line.rsplit_once("exit ")?.1.trim_end_matches(')');
    Some(n.parse().unwrap())
}

/// The summary line was printed and says the exit code the process returned;
/// the run ended cleanly with its lifeline guard (no stale registration of a
/// suite's containment made the guard act after the run).
fn assert_summary_matches(run: &Run) {
    assert!(
        !run.stderr.contains("without a clean end"),
        "the guard had nothing left to kill; stderr:\n{}",
        run.stderr
    );
    assert_eq!(
        printed_exit(&run.stderr),
        Some(run.code),
        "the summary prints the exit code returned; stderr:\n{}",
        run.stderr
    );
}

/// Every suite of `expected` is in the report as expected.
fn check(run: &Run, expected: &[Suite]) {
    let suites = run.suites();
    for e in expected {
        let s = suites
            .get(&e.id)
            .unwrap_or_else(|| panic!("{} missing; stderr:\n{}", e.id, run.stderr));
        let ctx = format!("suite {}: {s:#}", e.id);
        assert_eq!(s["status"], e.status.as_str(), "{ctx}");
        assert_eq!(s["attempts"].as_array().unwrap().len(), e.attempts, "{ctx}");
        let leaks = s["leaks"].as_array().unwrap();
        assert_eq!(leaks.len(), e.leaks, "{ctx}");
        let mut tests: Vec<&str> = leaks
            .iter()
            .map(|l| l["test"].as_str().unwrap_or(""))
            .collect();
        tests.sort();
        if !e.leak_tests.is_empty() {
            assert_eq!(tests, e.leak_tests, "{ctx}");
        }
        if let Some(why) = &e.leak_attribution {
            for l in leaks {
                let a = l["attribution"].as_str().unwrap_or("");
                assert!(a.contains(why.as_str()), "{ctx}: attribution {a:?}");
            }
        }
        let problems: Vec<&str> = s["problems"]
            .as_array()
            .map(|p| p.iter().map(|x| x.as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(problems.len(), e.problems.len(), "{ctx}");
        for (p, want) in problems.iter().zip(&e.problems) {
            assert!(p.contains(want.as_str()), "{ctx}: problem {p:?}");
            // The terminal shows it under the suite.
            assert!(
                run.stderr
                    .contains(&format!("problem: {}", &p[..p.len().min(40)])),
                "{ctx}: stderr:\n{}",
                run.stderr
            );
        }
    }
}

/// The leak table names the leak of `leaks_sleep` (`sleep 3850`).
fn assert_leak_table_shows_sleep_3850(run: &Run) {
    assert!(
        run.stderr.contains("LEAKED PROCESSES") && run.stderr.contains("sleep 3850"),
        "the leak table is printed with the other suite's leak; stderr:\n{}",
        run.stderr
    );
}

#[test]
fn a_suite_that_cannot_be_started_is_an_error_and_the_run_reports_the_rest() {
    let g = Guarded::start();
    let targets = ["cleans_target", "victim", "leaks_sleep"];
    // --jobs 1: suites start in id order, cleans_target first.
    let run = reap(&[], &strs(&harness_args(&targets, &["--jobs", "1"])));
    check(&run, &expected(&targets));
    assert_eq!(
        run.code, 100,
        "an error suite fails the run; {}",
        run.stderr
    );
    assert_eq!(run.report()["exit_code"], 100);
    assert_eq!(run.report()["summary"]["errored"], 1);
    assert!(run.stderr.contains("ERROR"), "{}", run.stderr);
    assert_leak_table_shows_sleep_3850(&run);
    assert_summary_matches(&run);
    g.assert_clean("suite that cannot be started");
}

#[test]
fn a_full_log_disk_truncates_the_log_and_the_run_goes_on() {
    let g = Guarded::start();
    // A 256 KiB tmpfs over the fixture's log directory, in a private mount
    // namespace: log_flood's 4 MiB of output fills it.
    let reap_dir = repo().join("fixtures/sabotage/target/reap");
    std::fs::create_dir_all(&reap_dir).unwrap();
    let setup = format!("mount -t tmpfs -o size=256k tmpfs '{}'", reap_dir.display());
    let targets = ["leaks_sleep", "log_flood"];
    let run = reap_after_in_mount_ns(&setup, &strs(&harness_args(&targets, &["--jobs", "1"])));
    check(&run, &expected(&targets));
    assert_eq!(run.code, 103, "only the leak fails the run; {}", run.stderr);
    assert_leak_table_shows_sleep_3850(&run);
    assert_summary_matches(&run);
    g.assert_clean("full log disk");
}

#[test]
fn a_report_that_cannot_be_written_at_the_end_still_gets_the_summary_and_exit_2() {
    let g = Guarded::start();
    // The JUnit report goes to the directory wipes_report_dir removes (as a
    // test running `cargo clean` removes target/reap/ in the README's CI example).
    let scratch = Scratch::new("report-dir");
    let state = scratch.0.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let junit = state.join("junit.xml");
    let targets = ["wipes_report_dir", "leaks_sleep"];
    let args = harness_args(
        &targets,
        &["--jobs", "1", "--junit", junit.to_str().unwrap()],
    );
    let out = Command::new(REAP)
        .args(&args)
        .arg("--json")
        .arg(scratch.0.join("report.json"))
        .env("REAP_FIXTURE_STATE_DIR", &state)
        .env_remove("CARGO_REAP_SUITE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().unwrap();
    assert!(
        stderr.contains("could not write the JUnit report to"),
        "the failure is said; stderr:\n{stderr}"
    );
    assert_eq!(
        code, 2,
        "a report asked for and not written: exit 2; {stderr}"
    );
    assert_eq!(printed_exit(&stderr), Some(code), "{stderr}");
    assert!(stderr.contains("sleep 3850"), "leak table: {stderr}");
    // The JSON report (another directory) was written, with the final code.
    let json: Value =
        serde_json::from_slice(&std::fs::read(scratch.0.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["exit_code"], 2);
    assert_eq!(json["suites"].as_array().unwrap().len(), 2);
    assert_nothing_survived(json["run_id"].as_str().unwrap());
    g.assert_clean("report directory removed");
}

/// The files of `dir` (names).
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn reports_replace_an_old_one_atomically() {
    use std::os::unix::fs::MetadataExt;
    let g = Guarded::start();
    let scratch = Scratch::new("atomic");
    let json = scratch.0.join("report.json");
    std::fs::write(&json, "old report\n").unwrap();
    let old_inode = std::fs::metadata(&json).unwrap().ino();
    // A run whose suite hangs: while it runs, the old report is intact.
    let (mut child, run_id) = start_hanging_run("auto", &json);
    assert_eq!(
        std::fs::read_to_string(&json).unwrap(),
        "old report\n",
        "while the run goes on, the old report is untouched"
    );
    // End the run (SIGTERM: a partial report, exit 143).
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["run_id"], run_id.as_str());
    assert_eq!(report["exit_code"], 143);
    assert_ne!(
        std::fs::metadata(&json).unwrap().ino(),
        old_inode,
        "a new file was renamed over the old one"
    );
    assert_eq!(listing(&scratch.0), ["report.json"], "no temp file is left");
    assert_nothing_survived(&run_id);
    g.assert_clean("atomic report");
}

/// Run cargo-reap with `args` (no fixture run is expected to start).
fn reap_bad_input(args: &[&str], cwd: Option<&Path>) -> (i32, String) {
    let mut cmd = Command::new(REAP);
    cmd.args(args).env_remove("CARGO_REAP_SUITE");
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_usage_error(what: &str, (code, stderr): (i32, String), says: &str) {
    assert_eq!(code, 2, "{what}: exit 2; stderr:\n{stderr}");
    assert!(
        stderr.contains(says),
        "{what}: says {says:?}; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{what}: no panic; stderr:\n{stderr}"
    );
}

#[test]
fn overflowing_and_nonsensical_inputs_are_usage_errors() {
    let g = Guarded::start();
    let manifest = fixture_manifest_of("sabotage").display().to_string();
    let base = [
        "test",
        "--manifest-path",
        &manifest,
        "-p",
        "sabotage-harness",
        "--test",
        "victim",
    ];
    for (flag, value, says) in [
        (
            "--timeout",
            "18446744073709551615",
            "too long: at most 1 year",
        ),
        ("--timeout", "1e19", "too long: at most 1 year"),
        ("--timeout", "0", "a timeout must be greater than zero"),
        ("--grace", "1e30", "too long: at most 1 year"),
        ("--settle", "99999999999999999999999y", "not a duration"),
        ("--loop-duration", "400d", "too long: at most 1 year"),
        ("--attribute-max-time", "inf", "not a non-negative number"),
        (
            "--hang-retries",
            "4294967295",
            "out of range: from 0 to 100",
        ),
        (
            "--jobs",
            "18446744073709551616",
            "not a whole number from 1 to 1024",
        ),
        ("--loop", "0", "out of range: from 1 to 1000000"),
        ("--max-pids", "0", "out of range: from 1 to 4194304"),
        (
            "--tail-lines",
            "99999999999",
            "out of range: from 0 to 100000",
        ),
        (
            "--attribute-max-tests",
            "1000001",
            "out of range: from 0 to 1000000",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend([flag, value]);
        assert_usage_error(
            &format!("{flag} {value}"),
            reap_bad_input(&args, None),
            says,
        );
    }
    g.assert_clean("bad input");
}

#[test]
fn the_same_path_for_json_and_junit_is_a_usage_error() {
    let g = Guarded::start();
    let scratch = Scratch::new("same-path");
    std::fs::create_dir_all(scratch.0.join("sub")).unwrap();
    let base = harness_args(&["victim"], &[]);
    let d = scratch.0.display().to_string();
    std::os::unix::fs::symlink(scratch.0.join("r.json"), scratch.0.join("link")).unwrap();
    for (json, junit) in [
        (format!("{d}/r.json"), format!("{d}/r.json")),
        (format!("{d}/r.json"), format!("{d}/./r.json")),
        (format!("{d}/r.json"), format!("{d}/sub/../r.json")),
        // A relative spelling, from the scratch directory.
        ("r.json".to_string(), format!("{d}/r.json")),
        // A symlink to the same file (once it exists).
        (format!("{d}/r.json"), format!("{d}/link")),
    ] {
        if json.ends_with("r.json") && junit.ends_with("link") {
            std::fs::write(scratch.0.join("r.json"), "old").unwrap();
        }
        let mut args = strs(&base);
        args.extend(["--json", &json, "--junit", &junit]);
        assert_usage_error(
            &format!("--json {json} --junit {junit}"),
            reap_bad_input(&args, Some(&scratch.0)),
            "name the same file",
        );
    }
    // Nothing was written or truncated.
    assert_eq!(
        std::fs::read_to_string(scratch.0.join("r.json")).unwrap(),
        "old"
    );
    g.assert_clean("same report path");
}

#[test]
fn configuration_values_that_overflow_are_errors() {
    let g = Guarded::start();
    let scratch = Scratch::new("config");
    let ws = scratch.0.join("ws");
    std::fs::create_dir_all(ws.join("src")).unwrap();
    std::fs::write(ws.join("src/lib.rs"), "#[test]\nfn t() {}\n").unwrap();
    for (key, value, says) in [
        ("settle", "\"1e30\"", "`settle`: `1e30` is too long"),
        (
            "timeout",
            "\"0s\"",
            "`timeout`: `0s`: a timeout must be greater than zero",
        ),
        (
            "hang-retries",
            "4294967295",
            "`hang-retries`: 4294967295 is out of range",
        ),
        ("jobs", "0", "`jobs`: 0 is out of range: from 1 to 1024"),
    ] {
        std::fs::write(
            ws.join("Cargo.toml"),
            format!(
                "[package]\nname = \"reap-config-bounds\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
                 [workspace]\n[workspace.metadata.reap]\n{key} = {value}\n"
            ),
        )
        .unwrap();
        let manifest = ws.join("Cargo.toml");
        let target = scratch.0.join("target");
        assert_usage_error(
            &format!("{key} = {value}"),
            reap_bad_input(
                &[
                    "test",
                    "--manifest-path",
                    manifest.to_str().unwrap(),
                    "--target-dir",
                    target.to_str().unwrap(),
                ],
                None,
            ),
            says,
        );
    }
    g.assert_clean("bad configuration");
}

#[test]
fn a_binary_that_is_not_libtest_gets_no_invented_test_names() {
    let g = Guarded::start();
    let targets = ["not_libtest", "ignores_exact"];
    let run = reap(&[], &strs(&harness_args(&targets, &[])));
    check(&run, &expected(&targets));
    for id in [
        "sabotage-harness::not_libtest",
        "sabotage-harness::ignores_exact",
    ] {
        let s = run.suites()[id];
        assert_eq!(s["attribution"]["method"], "not-libtest", "{s:#}");
        for l in s["leaks"].as_array().unwrap() {
            assert!(l["test"].is_null(), "no invented test name: {l:#}");
        }
    }
    assert!(
        run.stderr.contains("attribution: not a libtest binary"),
        "{}",
        run.stderr
    );
    assert_eq!(run.code, 103, "{}", run.stderr);
    assert_summary_matches(&run);
    g.assert_clean("not libtest");
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the panic is injected in debug builds of cargo-reap only"
)]
fn a_panic_in_the_runner_is_exit_2_and_kills_the_running_suite() {
    let g = Guarded::start();
    // A debug runner panics in its capture thread when the suite prints the
    // marker, while the suite and its child `sleep 3853` are alive.
    let out = Command::new(REAP)
        .args(harness_args(&["panics_runner"], &[]))
        .env("CARGO_REAP_TEST_PANIC", "capture")
        .env_remove("CARGO_REAP_SUITE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "not 101 (build failed); {stderr}"
    );
    assert!(
        stderr.contains("cargo-reap: internal error") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    let run_id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("cargo-reap: run "))
        .and_then(|l| l.split(':').next())
        .expect("the run started")
        .to_string();
    // The guard held our stderr until it had killed everything: by now
    // nothing of the run is left.
    assert_nothing_survived(&run_id);
    g.assert_clean("panic");
}
