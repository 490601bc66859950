//! The flags people type (issue 11): `cargo reap test` takes `cargo test`'s
//! flags with `cargo test`'s meaning. Each test runs the built binary on
//! `fixtures/flags` and, where practical, the same command with plain
//! `cargo test`, and compares what ran (test names and results, binaries,
//! runner calls, where the output went).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn manifest() -> String {
    fixture_manifest_of("flags").display().to_string()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// A finished `cargo reap test` run with its stdout.
struct Ran {
    run: Run,
    stdout: String,
}

/// `cargo-reap test --manifest-path fixtures/flags/Cargo.toml ARGS --json …`
/// in `cwd` (the repository when `None`), with `env`; checks from outside
/// that nothing of the run survived.
fn reap_flags(cwd: Option<&Path>, env: &[(&str, &str)], args: &[&str]) -> Ran {
    let scratch = Scratch::new("flags");
    let json = scratch.0.join("report.json");
    let m = manifest();
    let mut full = vec!["test", "--manifest-path", m.as_str()];
    full.extend_from_slice(args);
    let mut cmd = reap_command(&[], &full, &json);
    cmd.current_dir(cwd.map_or_else(repo, Path::to_path_buf));
    cmd.envs(env.iter().copied());
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run cargo-reap");
    Ran {
        run: finished_run(status, String::from_utf8_lossy(&stderr).into_owned(), &json),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
    }
}

/// cargo-reap's stderr says `needle`.
fn said(run: &Run, needle: &str) {
    assert!(
        run.stderr.contains(needle),
        "expected {needle:?} in stderr:\n{}",
        run.stderr
    );
}

/// Plain `cargo test --manifest-path fixtures/flags/Cargo.toml ARGS`.
fn cargo_test(cwd: Option<&Path>, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(cargo())
        .args(["test", "--manifest-path", &manifest()])
        .args(args)
        .current_dir(cwd.map_or_else(repo, Path::to_path_buf))
        .envs(env.iter().copied())
        .env_remove("CARGO_REAP_SUITE")
        .output()
        .expect("run cargo test")
}

/// libtest's `test NAME ... RESULT` lines: (name, result).
fn libtest_results(stdout: &str) -> BTreeSet<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("test ")?;
            let (name, result) = rest.split_once(" ... ")?;
            Some((name.to_string(), result.trim().to_string()))
        })
        .collect()
}

/// The JSON report's per-suite tests of `id`: (name, result).
fn reported_tests(run: &Run, id: &str) -> BTreeSet<(String, String)> {
    let suites = run.suites();
    let s = suites
        .get(id)
        .unwrap_or_else(|| panic!("no suite {id}; stderr:\n{}", run.stderr));
    test_results(s).into_iter().collect()
}

fn host_triple() -> String {
    let out = Command::new("rustc").arg("-vV").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap()
        .trim()
        .to_string()
}

/// The TESTNAME filter (`cargo reap test NAME`) and test binary arguments
/// select the same tests, with the same results, as `cargo test` does.
#[test]
fn testname_filter_selects_what_cargo_test_selects() {
    for sel in [
        &["alpha"][..],
        &["alpha_one"],
        &["beta"],
        &["--", "--exact", "alpha_one"],
        &["alpha", "--", "--ignored"],
        &["alpha", "--", "--include-ignored"],
        &["--", "--skip", "alpha"],
    ] {
        let mut args = vec!["--test", "alpha"];
        args.extend_from_slice(sel);
        let ours = reap_flags(None, &[], &args);
        assert_eq!(ours.run.code, 0, "{sel:?}: {}", ours.run.stderr);
        let theirs = cargo_test(None, &[], &args);
        assert!(theirs.status.success(), "cargo test {sel:?}");
        let expected = libtest_results(&String::from_utf8_lossy(&theirs.stdout));
        assert!(!expected.is_empty(), "{sel:?}: cargo test ran no test");
        assert_eq!(
            reported_tests(&ours.run, "flags-fixture::alpha"),
            expected,
            "{sel:?}: the JSON's tests differ from cargo test's"
        );
    }
}

/// Names of the test binaries a `cargo test` run started (its `Running
/// tests/alpha.rs (target/...)` lines): their file stems.
fn cargo_ran_binaries(stderr: &str) -> BTreeSet<String> {
    stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Running "))
        .filter_map(|l| {
            let path = l.rsplit_once(" (")?.1.trim_end_matches(')');
            let stem = Path::new(path).file_name()?.to_string_lossy().into_owned();
            Some(
                stem.rsplit_once('-')
                    .map_or(stem.clone(), |(n, _)| n.to_string()),
            )
        })
        .collect()
}

/// The targets of the suites in a report.
fn reap_ran_targets(run: &Run) -> BTreeSet<String> {
    run.suites()
        .values()
        .map(|s| s["target"].as_str().unwrap().replace('-', "_"))
        .collect()
}

/// Every suite runs by default and with `--no-fail-fast` (what `cargo test
/// --no-fail-fast` runs); `--fail-fast` starts no suite after a failure,
/// like `cargo test`'s default.
#[test]
fn no_fail_fast_is_the_default_and_fail_fast_stops() {
    let theirs = cargo_test(None, &[], &["--no-fail-fast"]);
    let all = cargo_ran_binaries(&String::from_utf8_lossy(&theirs.stderr));
    assert_eq!(all.len(), 4, "cargo test --no-fail-fast ran {all:?}");
    for flags in [&["--jobs", "1"][..], &["--jobs", "1", "--no-fail-fast"]] {
        let ours = reap_flags(None, &[], flags);
        assert_eq!(ours.run.code, 100, "{flags:?}: {}", ours.run.stderr);
        assert_eq!(reap_ran_targets(&ours.run), all, "{flags:?}");
    }
    // cargo test's default stops after `fails` failed: `speaks` never ran.
    let theirs = cargo_test(None, &[], &[]);
    let ran = cargo_ran_binaries(&String::from_utf8_lossy(&theirs.stderr));
    assert!(ran.contains("fails") && !ran.contains("speaks"), "{ran:?}");
    let ours = reap_flags(None, &[], &["--jobs", "1", "--fail-fast"]);
    assert_eq!(ours.run.code, 100, "{}", ours.run.stderr);
    let ran = reap_ran_targets(&ours.run);
    assert!(ran.contains("fails") && !ran.contains("speaks"), "{ran:?}");
    assert!(
        ours.run
            .stderr
            // speaks and the doctests, which cargo runs last.
            .contains("--fail-fast: 2 of 5 suites not run"),
        "{}",
        ours.run.stderr
    );
    // What a serial run made ahead for the next suite (its leaf, checked by
    // finished_run; its log; its TMPDIR) is undone when that suite never runs.
    let logs = logs_beside(ours.run.suites()["flags-fixture::fails"]);
    assert!(
        logs.iter().all(|l| !l.contains("speaks")),
        "no log of a suite that never ran: {logs:?}"
    );
    let run_id = ours.run.report()["run_id"].as_str().unwrap().to_string();
    assert!(
        !std::env::temp_dir()
            .join("cargo-reap-0")
            .join(run_id)
            .exists(),
        "the TMPDIR root is removed"
    );
}

/// `--no-run` builds the same executables `cargo test --no-run` names and
/// runs none of them.
#[test]
fn no_run_builds_and_runs_nothing() {
    let theirs = cargo_test(None, &[], &["--no-run"]);
    assert!(theirs.status.success());
    let executables = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("Executable "))
            .map(|l| {
                let path = l.rsplit_once(" (").unwrap().1.trim_end_matches(')');
                Path::new(path)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    };
    let expected = executables(&String::from_utf8_lossy(&theirs.stderr));
    assert_eq!(expected.len(), 4, "{expected:?}");
    let ours = reap_flags(None, &[], &["--no-run"]);
    assert_eq!(ours.run.code, 0, "{}", ours.run.stderr);
    assert_eq!(executables(&ours.run.stderr), expected);
    assert!(
        !ours.run.stderr.contains("PASS") && !ours.run.stderr.contains("cargo-reap: run "),
        "a suite ran: {}",
        ours.run.stderr
    );
    // What cannot apply is said in one line (the helper passes --json).
    assert!(
        ours.run
            .stderr
            .contains("--no-run runs no suite, so these are not used: --json"),
        "{}",
        ours.run.stderr
    );
}

/// The runner's log: one line per call, `<tag or untagged> BINARY ARGS`.
fn runner_calls(log: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut it = l.split_whitespace();
            let tag = it.next().unwrap().to_string();
            let bin = Path::new(it.next().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (tag, bin)
        })
        .collect()
}

/// `--target TRIPLE` with `CARGO_TARGET_<TRIPLE>_RUNNER`: each suite runs
/// as `runner BINARY ARGS`, inside its containment (the runner sees the
/// suite's tag), for the same binary `cargo test --target` hands its runner.
#[test]
fn target_runner_from_the_environment_runs_each_suite_contained() {
    let scratch = Scratch::new("runner-env");
    let log = scratch.0.join("runner.log");
    let host = host_triple();
    let var = format!(
        "CARGO_TARGET_{}_RUNNER",
        host.to_uppercase().replace(['-', '.'], "_")
    );
    let runner = repo().join("fixtures/flags/runner.sh");
    let env = [
        (var.as_str(), runner.to_str().unwrap()),
        ("FLAGS_RUNNER_LOG", log.to_str().unwrap()),
    ];
    let args = ["--target", host.as_str(), "--test", "alpha"];
    let theirs = cargo_test(None, &env, &args);
    assert!(theirs.status.success());
    let cargo_calls = runner_calls(&log);
    std::fs::remove_file(&log).unwrap();
    assert_eq!(cargo_calls.len(), 1, "{cargo_calls:?}");
    let ours = reap_flags(None, &env, &args);
    assert_eq!(ours.run.code, 0, "{}", ours.run.stderr);
    let calls = runner_calls(&log);
    let run_id = ours.run.report()["run_id"].as_str().unwrap();
    // The suite itself (first call); attribution may list it too, contained.
    assert!(!calls.is_empty(), "the runner was not called");
    for (tag, bin) in &calls {
        assert_eq!(tag, &format!("{run_id}/flags-fixture::alpha"));
        assert_eq!(bin, &cargo_calls[0].1, "the same binary as cargo test's");
    }
    let binary = ours.run.suites()["flags-fixture::alpha"]["binary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        binary.contains(&format!("/{host}/debug/")),
        "built for --target: {binary}"
    );
}

/// The runner from `--config 'target.'cfg(unix)'.runner=[…]'` and from a
/// `.cargo/config.toml` of the current directory (`cfg(..)` key, relative
/// path resolved against the directory holding `.cargo`), as cargo finds it.
#[test]
fn target_runner_from_config_and_cfg_tables() {
    let scratch = Scratch::new("runner-cfg");
    let log = scratch.0.join("runner.log");
    let runner = repo().join("fixtures/flags/runner.sh");
    let env = [("FLAGS_RUNNER_LOG", log.to_str().unwrap())];
    let config = format!("target.'cfg(unix)'.runner=['{}']", runner.display());
    both_use_the_runner(
        None,
        &env,
        &["--config", config.as_str(), "--test", "alpha"],
        &log,
    );

    // .cargo/config.toml in the current directory, runner relative to it.
    let dir = scratch.0.join("ws");
    std::fs::create_dir_all(dir.join(".cargo")).unwrap();
    std::fs::create_dir_all(dir.join("tools")).unwrap();
    std::fs::copy(&runner, dir.join("tools/record.sh")).unwrap();
    std::fs::write(
        dir.join(".cargo/config.toml"),
        "[target.'cfg(target_os = \"linux\")']\nrunner = \"tools/record.sh\"\n",
    )
    .unwrap();
    both_use_the_runner(Some(&dir), &env, &["--test", "alpha"], &log);
}

/// `cargo test ARGS` calls the runner once; `cargo reap test ARGS` calls it
/// for the suite, inside the run's containment (the suite's tag).
fn both_use_the_runner(cwd: Option<&Path>, env: &[(&str, &str)], args: &[&str], log: &Path) {
    let theirs = cargo_test(cwd, env, args);
    assert!(theirs.status.success());
    assert_eq!(runner_calls(log).len(), 1, "cargo test used the runner");
    std::fs::remove_file(log).unwrap();
    let ours = reap_flags(cwd, env, args);
    assert_eq!(ours.run.code, 0, "{}", ours.run.stderr);
    let run_id = ours.run.report()["run_id"].as_str().unwrap().to_string();
    let calls = runner_calls(log);
    assert!(
        !calls.is_empty() && calls.iter().all(|(t, _)| t.starts_with(&run_id)),
        "{calls:?}"
    );
    std::fs::remove_file(log).unwrap();
}

/// `--config KEY=VALUE` reaches the build (and cargo metadata): with
/// `build.target-dir` the suites are built, and logged, there.
#[test]
fn config_overrides_reach_the_build() {
    let scratch = Scratch::new("config");
    let tdir = scratch.0.join("tdir");
    let config = format!("build.target-dir='{}'", tdir.display());
    let ours = reap_flags(None, &[], &["--config", &config, "--test", "alpha"]);
    assert_eq!(ours.run.code, 0, "{}", ours.run.stderr);
    let suites = ours.run.suites();
    let s = suites["flags-fixture::alpha"];
    let binary = PathBuf::from(s["binary"].as_str().unwrap());
    assert!(binary.starts_with(&tdir), "{}", binary.display());
    assert!(PathBuf::from(s["log"].as_str().unwrap()).starts_with(tdir.join("reap")));
}

/// `--color always`: cargo's output, cargo-reap's lines and libtest's
/// results in the log are colored; `--color never`: nothing is.
#[test]
fn color_reaches_cargo_cargo_reap_and_libtest() {
    let log_of = |run: &Run| {
        let suites = run.suites();
        std::fs::read_to_string(suites["flags-fixture::alpha"]["log"].as_str().unwrap()).unwrap()
    };
    let ours = reap_flags(None, &[], &["--color", "always", "--test", "alpha"]);
    assert_eq!(ours.run.code, 0, "{}", ours.run.stderr);
    said(&ours.run, "\x1b[1m\x1b[92m    Finished");
    said(&ours.run, "\x1b[1;32m      PASS");
    assert!(
        log_of(&ours.run).contains("\x1b[32mok"),
        "libtest colored its results"
    );
    let ours = reap_flags(
        None,
        &[("CLICOLOR_FORCE", "1")],
        &["--color", "never", "--test", "alpha"],
    );
    assert_eq!(ours.run.code, 0, "{}", ours.run.stderr);
    assert!(!ours.run.stderr.contains('\x1b'), "{:?}", ours.run.stderr);
    assert!(!log_of(&ours.run).contains('\x1b'));
}

/// `--message-format short|json|human` renders the build's diagnostics as
/// `cargo test` does with the same flag (the fixture has one warning).
#[test]
fn message_format_renders_the_build_like_cargo_test() {
    let warning_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("flags_mark_never_used"))
            .map(str::to_string)
            .collect()
    };
    for format in ["short", "human"] {
        let theirs = cargo_test(None, &[], &["--no-run", "--message-format", format]);
        let expected = warning_lines(&String::from_utf8_lossy(&theirs.stderr));
        assert!(!expected.is_empty(), "{format}: cargo showed no warning");
        let ours = reap_flags(None, &[], &["--no-run", "--message-format", format]);
        assert_eq!(ours.run.code, 0, "{}", ours.run.stderr);
        assert_eq!(warning_lines(&ours.run.stderr), expected, "{format}");
    }
    // json: cargo's messages on stdout, the warning among them.
    let theirs = cargo_test(None, &[], &["--no-run", "--message-format", "json"]);
    let reasons = |stdout: &str| -> BTreeSet<String> {
        stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| {
                m["reason"] == "compiler-message"
                    && m["message"]["message"]
                        .as_str()
                        .is_some_and(|t| t.contains("flags_mark_never_used"))
            })
            .map(|m| m["message"]["rendered"].as_str().unwrap().to_string())
            .collect()
    };
    let expected = reasons(&String::from_utf8_lossy(&theirs.stdout));
    assert!(!expected.is_empty());
    let ours = reap_flags(None, &[], &["--no-run", "--message-format", "json"]);
    assert_eq!(ours.run.code, 0, "{}", ours.run.stderr);
    assert_eq!(reasons(&ours.stdout), expected);
    let bad = reap_flags(None, &[], &["--message-format", "jsn"]);
    assert_eq!(bad.run.code, 2);
    assert!(
        bad.run.stderr.contains("--message-format jsn"),
        "{}",
        bad.run.stderr
    );
}

/// `--no-capture`, `--nocapture` and `-- --nocapture` stream the suite's
/// stdout to stdout and its stderr to stderr, as `cargo test -- --nocapture`
/// does, while the per-test results are still tracked and logged.
#[test]
fn nocapture_streams_like_cargo_test_and_still_tracks_tests() {
    let theirs = cargo_test(None, &[], &["--test", "speaks", "--", "--nocapture"]);
    assert!(theirs.status.success());
    let out = String::from_utf8_lossy(&theirs.stdout);
    let err = String::from_utf8_lossy(&theirs.stderr);
    assert!(out.contains("FLAGS-MARK stdout") && !out.contains("FLAGS-MARK stderr"));
    assert!(err.contains("FLAGS-MARK stderr") && !err.contains("FLAGS-MARK stdout"));
    let expected = libtest_results(&out);
    for flags in [
        &["--no-capture"][..],
        &["--nocapture"],
        &["--", "--nocapture"],
    ] {
        let mut args = vec!["--test", "speaks"];
        args.extend_from_slice(flags);
        let ours = reap_flags(None, &[], &args);
        assert_eq!(ours.run.code, 0, "{flags:?}: {}", ours.run.stderr);
        assert!(
            ours.stdout.contains("FLAGS-MARK stdout") && !ours.stdout.contains("FLAGS-MARK stderr"),
            "{flags:?}: stdout {:?}",
            ours.stdout
        );
        assert!(
            ours.run.stderr.contains("FLAGS-MARK stderr")
                && !ours.run.stderr.contains("FLAGS-MARK stdout"),
            "{flags:?}: stderr {:?}",
            ours.run.stderr
        );
        assert_eq!(
            reported_tests(&ours.run, "flags-fixture::speaks"),
            expected,
            "{flags:?}"
        );
        let suites = ours.run.suites();
        let log = std::fs::read_to_string(suites["flags-fixture::speaks"]["log"].as_str().unwrap())
            .unwrap();
        assert!(log.contains("FLAGS-MARK stdout") && log.contains("FLAGS-MARK stderr"));
        // One suite at a time while streaming, unless --jobs says otherwise.
        assert!(ours.run.stderr.contains("(jobs 1,"), "{}", ours.run.stderr);
    }
}

/// A libtest flag before `--` is one clear line naming the right command,
/// exit 2 — not clap's `-- --flag` tip, not libtest's "Unrecognized option".
#[test]
fn libtest_flags_before_the_separator_get_one_clear_line() {
    for (args, shown) in [
        (&["--exact"][..], "cargo reap test -- --exact"),
        (
            &["--test-threads", "1"],
            "cargo reap test -- --test-threads 1",
        ),
        (&["--skip=beta"], "cargo reap test -- --skip=beta"),
        (
            &["--include-ignored"],
            "cargo reap test -- --include-ignored",
        ),
    ] {
        let mut full = vec!["test", "--manifest-path"];
        let m = manifest();
        full.push(&m);
        full.extend_from_slice(args);
        let out = Command::new(REAP).args(&full).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().collect::<Vec<_>>(),
            vec![format!(
                "cargo-reap: error: `{}` is a test binary flag: pass test binary flags after `--`: {shown}",
                args[0].split('=').next().unwrap()
            )],
            "{args:?}"
        );
    }
    // An unknown flag that is not libtest's: one line, no `-- --flag` tip.
    let out = Command::new(REAP)
        .args(["test", "--no-such-flag"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("-- --no-such-flag"), "{stderr}");
}

/// `-Z FLAG` goes to cargo: on a stable toolchain cargo refuses it exactly
/// as it refuses `cargo test -Z FLAG`.
#[test]
fn unstable_flags_pass_through_to_cargo() {
    let theirs = cargo_test(None, &[], &["-Z", "unstable-options", "--no-run"]);
    let their_err = String::from_utf8_lossy(&theirs.stderr).into_owned();
    let ours = reap_flags(None, &[], &["-Z", "unstable-options", "--test", "alpha"]);
    if theirs.status.success() {
        // A nightly toolchain: the flag is accepted by both.
        assert_eq!(ours.run.code, 0, "{}", ours.run.stderr);
        return;
    }
    let first = their_err.lines().next().unwrap();
    assert!(first.contains("-Z"), "{their_err}");
    said(&ours.run, first);
    assert_eq!(ours.run.code, 2, "{}", ours.run.stderr);
}

/// A target runner that is cargo-reap itself (`cargo-reap run --`, the
/// README's recipe for plain `cargo test`) is announced and not used: the
/// suites already run in containment, not nested in a second cargo-reap.
#[test]
fn a_cargo_reap_runner_is_not_nested() {
    let config = format!("target.'cfg(unix)'.runner=['{REAP}', 'run', '--']");
    let ours = reap_flags(None, &[], &["--config", config.as_str(), "--test", "alpha"]);
    assert_eq!(ours.run.code, 0, "{}", ours.run.stderr);
    said(&ours.run, "is cargo-reap itself: not used");
    assert_eq!(
        reported_tests(&ours.run, "flags-fixture::alpha").len(),
        4,
        "the suite ran directly, its tests tracked"
    );
}
