//! Honest counts, a readable end, and `cargo reap run` as a wrapper (issue
//! 11), end to end on `fixtures/counts`: the built binary runs, its exit
//! code, stderr and JSON report are checked from outside, and `cargo test`
//! itself is the reference for the counts.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn manifest() -> String {
    fixture_manifest_of("counts").display().to_string()
}

/// The selection the count tests use: passing, failing and ignored tests in
/// a lib and two integration suites.
const SELECTION: &[&str] = &[
    "-p",
    "counts-fixture",
    "--lib",
    "--test",
    "integ",
    "--test",
    "fails",
];

/// `cargo-reap test --manifest-path <counts> ARGS` (its report read back).
fn reap_counts(args: &[&str]) -> Run {
    let m = manifest();
    let mut all = vec!["test", "--manifest-path", m.as_str()];
    all.extend_from_slice(args);
    reap(&[], &all)
}

/// passed, failed, ignored, filtered out: summed over libtest's
/// `test result:` lines.
fn counts_of(text: &str) -> [u64; 4] {
    let mut sum = [0u64; 4];
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("test result: ") else {
            continue;
        };
        let (_, counts) = rest.split_once(". ").unwrap();
        for part in counts.split(';') {
            let part = part.trim();
            let Some((n, what)) = part.split_once(' ') else {
                continue;
            };
            let i = match what {
                "passed" => 0,
                "failed" => 1,
                "ignored" => 2,
                "filtered out" => 3,
                _ => continue,
            };
            sum[i] += n.parse::<u64>().unwrap();
        }
    }
    sum
}

/// `cargo test` on the same selection, as the reference.
fn cargo_test_counts(args: &[&str]) -> [u64; 4] {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "--no-fail-fast", "--manifest-path", &manifest()])
        .args(args)
        .env_remove("CARGO_REAP_SUITE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let counts = counts_of(&stdout);
    assert!(
        counts.iter().sum::<u64>() > 0,
        "cargo test printed no result line:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    counts
}

fn summary_tests(run: &Run) -> [u64; 4] {
    let t = &run.report()["summary"]["tests"];
    ["passed", "failed", "ignored", "filtered_out"].map(|k| {
        t[k].as_u64()
            .unwrap_or_else(|| panic!("summary.tests.{k} missing: {t:#}"))
    })
}

/// The summary line (the last line of stderr that starts `cargo-reap: ` and
/// ends with the exit code).
fn summary_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("cargo-reap: ") && l.contains(" (isolation: "))
        .unwrap_or_else(|| panic!("no summary line:\n{stderr}"))
}

/// The tests counted in the summary line and the JSON are the ones `cargo
/// test` counts on the same selection (with a filter too).
#[test]
fn test_counts_equal_cargo_tests() {
    require_root();
    for filter in [&[][..], &["--", "one_"][..]] {
        let mut args = SELECTION.to_vec();
        args.extend_from_slice(filter);
        let want = cargo_test_counts(&args);
        let run = reap_counts(&args);
        assert_eq!(summary_tests(&run), want, "{}", run.stderr);
        let line = summary_line(&run.stderr);
        let [p, f, i, fo] = want;
        assert!(
            line.contains(&format!("tests: {p} passed, {f} failed, {i} ignored")),
            "{line}"
        );
        assert_eq!(
            fo > 0,
            line.contains(&format!("{fo} filtered out")),
            "{line}"
        );
    }
}

/// A filter that matches no test at all: exit 4 and a message that says so.
#[test]
fn a_filter_matching_nothing_is_an_error() {
    require_root();
    let mut args = SELECTION.to_vec();
    args.extend_from_slice(&["--", "no_test_is_called_this"]);
    let run = reap_counts(&args);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(run.report()["exit_code"], 4);
    assert!(
        run.stderr
            .contains("cargo-reap: error: no tests to run: the filter matched none of"),
        "{}",
        run.stderr
    );
    assert!(summary_line(&run.stderr).ends_with("exit 4)"));
    // A filter that matches only an ignored test matched something.
    let run = reap_counts(&[
        "-p",
        "counts-fixture",
        "--test",
        "integ",
        "--",
        "one_ignored",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// The run ends with each failing test and a command that re-runs it; each
/// printed command, run as printed, runs exactly that one test.
#[test]
fn failing_tests_are_listed_with_hints_that_rerun_exactly_them() {
    require_root();
    let run = reap_counts(SELECTION);
    assert_eq!(run.code, 100, "{}", run.stderr);
    let hints: Vec<&str> = run
        .stderr
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("rerun: "))
        .collect();
    let failures = run.report()["failures"]
        .as_array()
        .unwrap_or_else(|| panic!("no failures in the report:\n{:#}", run.report()));
    let failed = summary_tests(&run)[1] as usize;
    assert_eq!(
        hints.len(),
        failed,
        "one hint per failing test:\n{}",
        run.stderr
    );
    assert_eq!(failures.len(), failed);
    // The list comes after every suite's lines, before the summary line.
    let list_at = run.stderr.find("FAILURES: ").expect("a failures list");
    assert!(run.stderr[list_at..].contains(summary_line(&run.stderr)));
    for f in failures {
        assert!(hints.contains(&f["rerun"].as_str().unwrap()), "{f:#}");
    }
    // `cargo reap` finds this cargo-reap on PATH, as a user's shell would.
    let bin_dir = Path::new(REAP).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for f in failures {
        let hint = f["rerun"].as_str().unwrap();
        let test = f["test"].as_str().unwrap();
        let out = Command::new("sh")
            .args(["-c", hint])
            .env("PATH", &path)
            .env_remove("CARGO_REAP_SUITE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(100), "{hint}:\n{stderr}");
        let line = summary_line(&stderr);
        assert!(
            line.contains("1 suite in")
                && line.contains("tests: 0 passed, 1 failed")
                && !line.contains(" ignored"),
            "`{hint}` ran more than `{test}`: {line}"
        );
        let rerun_hints: Vec<&str> = stderr
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("rerun: "))
            .collect();
        assert_eq!(rerun_hints, [hint], "{stderr}");
        assert!(stderr.contains(&format!("  {test}\n")), "{stderr}");
    }
}

/// With stderr a pipe (CI), a failed test's long panic message reaches the
/// log whole: no line is cut to a fixed width.
#[test]
fn long_lines_are_not_cut_when_stderr_is_a_pipe() {
    require_root();
    let run = reap_counts(&["-p", "counts-fixture", "--lib"]);
    assert_eq!(run.code, 100, "{}", run.stderr);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("this failure message is deliberately"))
        .unwrap_or_else(|| panic!("the panic message is not in the tail:\n{}", run.stderr));
    assert!(line.ends_with("END-OF-LONG-MESSAGE"), "cut: {line}");
    assert!(line.chars().count() > 150, "{line}");
}

/// `-q` on a passing run still prints the summary line; a one-test suite's
/// leak needs no attribution line (the table names the test), and the
/// package's allow list makes it pass.
#[test]
fn quiet_passing_run_prints_the_summary_line() {
    require_root();
    let run = reap_counts(&[
        "-q",
        "-p",
        "counts-fixture",
        "--test",
        "integ",
        "--test",
        "allowed",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = summary_line(&run.stderr);
    assert!(line.contains("2 suites in"), "{line}");
    assert!(
        line.contains("tests: 4 passed, 0 failed, 1 ignored"),
        "{line}"
    );
    assert!(line.ends_with("exit 0)"), "{line}");

    let run = reap_counts(&["-p", "counts-fixture", "--test", "allowed"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("  test starts_allowed_sleep"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("attribution: the suite has one test"),
        "{}",
        run.stderr
    );
}

/// `cargo reap run`: the command's own exit code passes through when nothing
/// leaked or hung; a leak is 103.
#[test]
fn run_passes_the_commands_exit_code_through() {
    require_root();
    for code in [0, 1, 2, 5] {
        let run = reap(&[], &["run", "--", "sh", "-c", &format!("exit {code}")]);
        assert_eq!(run.code, code, "{}", run.stderr);
        assert_eq!(run.report()["exit_code"], code);
    }
    let leaky = reap(
        &[],
        &[
            "run",
            "--",
            "sh",
            "-c",
            "sleep 3874 & p=$!; until read c </proc/$p/comm && [ \"$c\" = sleep ]; do :; done; exit 5",
        ],
    );
    assert_eq!(leaky.code, 103, "{}", leaky.stderr);
}

/// `cargo test` with cargo-reap as the target runner, in `dir`, on one suite
/// of the counts fixture: (exit code, stdout, stderr).
fn cargo_test_through_runner(suite: &str, dir: &Path) -> (i32, String, String) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let runner = format!("target.'cfg(all())'.runner=['{REAP}','run','--']");
    let out = Command::new(cargo)
        .args(["test", "--manifest-path", &manifest()])
        .args(["-p", "counts-fixture", "--test", suite, "--config", &runner])
        .current_dir(dir)
        // Only cargo may say where the package is (as for a user's run).
        .env_remove("CARGO_MANIFEST_DIR")
        .env_remove("CARGO_REAP_SUITE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// As a target runner, cargo-reap reads the package's `[package.metadata.reap]`
/// allow list: the expected survivor is reported as allowed and the run passes.
#[test]
fn runner_mode_honours_the_allow_list() {
    require_root();
    let scratch = Scratch::new("runner-allow");
    let since = reap_probe::boottime_ticks().saturating_sub(1);
    let (code, stdout, stderr) = cargo_test_through_runner("allowed", &scratch.0);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains("(allowed) sleep 3872"), "{stderr}");
    assert_no_strays("runner mode, allowed leak", since, |s, _| {
        s.cmdline == ["sleep", "3872"]
    });
}

/// As a target runner, attribution re-runs the tests, and none of their
/// output reaches the user's test output: libtest's report appears once.
#[test]
fn runner_mode_attribution_reruns_print_nothing_into_the_test_output() {
    require_root();
    let scratch = Scratch::new("runner-attr");
    let since = reap_probe::boottime_ticks().saturating_sub(1);
    let (code, stdout, stderr) = cargo_test_through_runner("leaky_two", &scratch.0);
    assert_ne!(code, 0, "cargo test fails on the runner's 103:\n{stderr}");
    assert!(stderr.contains("(exit status: 103)"), "{stderr}");
    assert!(
        stderr.contains("re-ran 2 of 2 test(s) in 2 re-run(s)"),
        "{stderr}"
    );
    assert!(stderr.contains("  test starts_sleep"), "{stderr}");
    assert_eq!(stdout.matches("running 2 tests").count(), 1, "{stdout}");
    assert_eq!(stdout.matches("test result:").count(), 1, "{stdout}");
    assert!(!stdout.contains("running 1 test"), "{stdout}");
    assert_no_strays("runner mode, leak", since, |s, _| {
        s.cmdline == ["sleep", "3871"]
    });
}

/// On a terminal, lines are laid out for its width (here a 72-column pty
/// made by script(1)): the tail of a failed test's output is clipped to it.
#[test]
fn on_a_terminal_lines_fit_its_width() {
    require_root();
    let cmd = format!(
        "stty cols 72; NO_COLOR=1 {REAP} reap test --manifest-path {} -p counts-fixture --lib",
        manifest()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("CARGO_REAP_SUITE")
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux runs the command on a pty");
    let text = String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| l.starts_with("           | "))
        .collect();
    assert!(!tail.is_empty(), "no output tail on the terminal:\n{text}");
    for l in &tail {
        assert!(l.chars().count() <= 72, "wider than the terminal: {l:?}");
    }
    let panic_line = tail
        .iter()
        .find(|l| l.contains("this failure message is deliberately"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(panic_line.ends_with('…'), "{panic_line}");
}
