//! Same verdicts as `cargo test` on real suites (issue 18), end to end on
//! `fixtures/verdicts`: the built binary runs and its JSON report is checked
//! against the fixture's known shape and against `cargo test` itself.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

fn manifest() -> String {
    fixture_manifest_of("verdicts").display().to_string()
}

/// `cargo-reap test --manifest-path <verdicts> -p verdicts-fixture --test SUITE ARGS`.
fn reap_suite(suite: &str, args: &[&str]) -> Run {
    let m = manifest();
    let mut all = vec![
        "test",
        "--manifest-path",
        m.as_str(),
        "-p",
        "verdicts-fixture",
        "--test",
        suite,
    ];
    all.extend_from_slice(args);
    reap(&[], &all)
}

fn suite(run: &Run) -> &Value {
    let suites = run.report()["suites"].as_array().unwrap();
    assert_eq!(suites.len(), 1, "{}", run.stderr);
    &suites[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Eight tests with a 19-byte common prefix finish, each leaving a helper
/// thread named after itself; a ninth with the same prefix hangs. The
/// kernel's 15-byte thread names all read `shared_long_pre`: only the hung
/// test is in flight, and by name, not as a guess.
#[test]
fn in_flight_names_only_the_hung_test_not_finished_ones_with_helper_threads() {
    let run = reap_suite(
        "inflight",
        &[
            "--timeout",
            "4s",
            "--hang-retries",
            "0",
            "--attribute",
            "off",
        ],
    );
    let s = suite(&run);
    assert_eq!(s["status"], "hang", "{}", run.stderr);
    let attempt = &s["attempts"][0];
    assert_eq!(
        strings(&attempt["tests_in_flight"]),
        ["shared_long_prefix_hangs"],
        "{}",
        run.stderr
    );
    assert!(
        strings(&attempt["in_flight_guesses"]).is_empty(),
        "{attempt}"
    );
}

/// `cargo test` as the reference: each test's result on the same suite,
/// with `--test-threads 1`, the children silenced (`VERDICTS_QUIET`), so
/// its output is libtest's alone.
fn cargo_test_results(suite: &str) -> BTreeMap<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "--manifest-path", &manifest()])
        .args(["-p", "verdicts-fixture", "--test", suite])
        .args(["--", "--test-threads", "1"])
        .env("VERDICTS_QUIET", "1")
        .env_remove("CARGO_REAP_SUITE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut results = BTreeMap::new();
    for line in stdout.lines() {
        if let Some((name, result)) = line
            .strip_prefix("test ")
            .and_then(|r| r.split_once(" ... "))
        {
            let word = result.split([',', ' ']).next().unwrap();
            results.insert(name.to_string(), word.to_string());
        }
    }
    assert!(results.len() >= 20, "{stdout}");
    results
}

/// Children write into the output between `test NAME ... ` and the result
/// (`--test-threads 1`): lines, text with no newline, text that looks like
/// libtest's. Every test's result is cargo test's, none is invented, and the
/// per-test results add up to libtest's own counts.
#[test]
fn child_output_between_name_and_result_changes_no_result() {
    let expected = cargo_test_results("interleave");
    let run = reap_suite("interleave", &["--", "--test-threads", "1"]);
    let s = suite(&run);
    assert_eq!(s["status"], "fail", "{}", run.stderr);
    let got: BTreeMap<String, String> = test_results(s).into_iter().collect();
    assert_eq!(got, expected, "{}", run.stderr);
    assert_eq!(s["tests"].as_array().unwrap().len(), expected.len());
    let count = |r: &str| got.values().filter(|v| *v == r).count() as u64;
    let c = &s["counts"];
    assert_eq!(c["passed"].as_u64(), Some(count("ok")), "{c}");
    assert_eq!(c["failed"].as_u64(), Some(count("FAILED")), "{c}");
    assert_eq!(c["ignored"].as_u64(), Some(count("ignored")), "{c}");
    // cargo-reap's own check of the same agreement found nothing to say.
    // (`problems` is left out of the JSON when there are none.)
    assert!(
        s["problems"].as_array().is_none_or(|p| p.is_empty()),
        "{}",
        s["problems"]
    );
}

/// A suite of six tests, three `#[ignore]`d, leaks one `sleep 3881`:
/// attribution re-runs only the three that ran, not the ignored ones, and
/// still finds the test that leaked: the first half of the three
/// (`leaves_sleep`) reproduces it in one re-run (with the ignored tests in
/// the list, their half would be re-run first: 2 re-runs of 4 tests).
#[test]
fn attribution_reruns_skip_ignored_tests() {
    let run = reap_suite("ignored_leak", &["--attribute", "rerun"]);
    let s = suite(&run);
    let leaks = s["leaks"].as_array().unwrap();
    assert_eq!(leaks.len(), 1, "{}", run.stderr);
    assert!(
        leaks[0]["cmdline"].to_string().contains("3881"),
        "{}",
        leaks[0]
    );
    assert_eq!(leaks[0]["test"], "leaves_sleep", "{}", leaks[0]);
    let a = &s["attribution"];
    assert_eq!(a["tests_listed"], 6, "{a}");
    assert_eq!(a["tests_rerun"], 1, "{a}");
    assert_eq!(a["reruns"], 1, "{a}");
    assert_eq!(a["tests_skipped_ignored"], 3, "{a}");
}
