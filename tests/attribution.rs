//! Test-level attribution by group testing (issue 17), end to end on
//! `fixtures/attribution`: four suites of 200 tests in which 1, 2 and 4 tests
//! leak, and one whose leak needs two tests run together. The built binary
//! runs them under the default `--attribute auto` budget, in both isolation
//! modes; its JSON report must name every leak's test (the pair as the pair),
//! with a number of re-runs near k·log2(n), and nothing may survive (the
//! run's tag and the fixture's `sleep 39xx` looked for from outside).

mod common;

use common::*;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct Expected {
    suite: Vec<ExpectedSuite>,
}

#[derive(Debug, Deserialize)]
struct ExpectedSuite {
    target: String,
    leak: Vec<ExpectedLeak>,
}

#[derive(Debug, Deserialize)]
struct ExpectedLeak {
    sleep: String,
    tests: Vec<String>,
}

/// Tests per suite of the fixture.
const TESTS: usize = 200;

fn expected() -> Vec<ExpectedSuite> {
    let path = repo().join("fixtures/attribution/expected.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    toml::from_str::<Expected>(&text).unwrap().suite
}

/// The bound asserted on re-runs: ceil(log2 n) + 1 per leaking test (a path
/// of halvings and a confirmation), and three times that for an interaction
/// (the halving path to a test that does not reproduce it alone, then a
/// binary search for each of the two tests and its check).
fn rerun_bound(suite: &ExpectedSuite) -> usize {
    let per_path = TESTS.next_power_of_two().trailing_zeros() as usize + 1;
    suite
        .leak
        .iter()
        .map(|l| {
            if l.tests.len() == 1 {
                per_path
            } else {
                3 * per_path
            }
        })
        .sum()
}

/// The fixture's leaked `sleep` processes, by argument.
fn is_fixture_sleep(args: &[String]) -> bool {
    args.first().is_some_and(|a| a == "sleep")
        && args
            .get(1)
            .is_some_and(|s| s.len() == 4 && s.starts_with("39"))
}

fn run_all(isolation: &str) {
    let expected = expected();
    let manifest = fixture_manifest_of("attribution").display().to_string();
    let mut args = vec![
        "test",
        "--manifest-path",
        manifest.as_str(),
        "-p",
        "attribution-fixture",
        "--isolation",
        isolation,
    ];
    for s in &expected {
        args.extend(["--test", s.target.as_str()]);
    }
    // Parallel test threads, so the suites' own runs attribute nothing by
    // their serial output: every attribution here is the re-runs'.
    args.extend(["--", "--test-threads", "4"]);
    let since = reap_probe::boottime_ticks();
    let run = reap(&[], &args);
    assert_no_strays(&format!("{isolation}: attribution"), since, |s, _| {
        is_fixture_sleep(&s.cmdline)
    });
    assert_eq!(run.code, 103, "leaks fail the run: {}", run.stderr);
    let suites = run.suites();
    assert_eq!(suites.len(), expected.len(), "{}", run.stderr);
    for e in &expected {
        let id = format!("attribution-fixture::{}", e.target);
        let s = suites
            .get(&id)
            .unwrap_or_else(|| panic!("{id} not in the report"));
        check_suite(&format!("{isolation}: {id}"), e, s);
    }
}

fn check_suite(ctx: &str, e: &ExpectedSuite, s: &Value) {
    assert_eq!(s["status"], "pass", "{ctx}: {s}");
    let leaks = s["leaks"].as_array().unwrap();
    assert_eq!(leaks.len(), e.leak.len(), "{ctx}: {leaks:#?}");
    let a = &s["attribution"];
    for want in &e.leak {
        let leak = leaks
            .iter()
            .find(|l| l["cmdline"][1] == want.sleep.as_str())
            .unwrap_or_else(|| panic!("{ctx}: no leak `sleep {}`", want.sleep));
        if let [only] = &want.tests[..] {
            assert_eq!(leak["test"], only.as_str(), "{ctx}: {leak}");
            continue;
        }
        assert!(leak["test"].is_null(), "{ctx}: {leak}");
        let why = leak["attribution"].as_str().unwrap();
        assert!(why.contains("ran together"), "{ctx}: {why}");
        let together = a["interactions"]
            .as_array()
            .unwrap_or_else(|| panic!("{ctx}: no interactions: {a}"))
            .iter()
            .find(|i| i["pids"].as_array().unwrap().contains(&leak["pid"]))
            .unwrap_or_else(|| panic!("{ctx}: no interaction names the leak: {a}"));
        let tests: Vec<&str> = together["tests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(tests, want.tests, "{ctx}: the pair, as the pair: {a}");
    }
    assert_eq!(a["method"], "rerun", "{ctx}: {a}");
    assert_eq!(a["tests_listed"], TESTS, "{ctx}: {a}");
    assert_eq!(a["leaks_attributed"], e.leak.len(), "{ctx}: {a}");
    assert_eq!(a["budget_exhausted"], false, "{ctx}: {a}");
    let reruns = a["reruns"].as_u64().unwrap() as usize;
    let bound = rerun_bound(e);
    eprintln!(
        "{ctx}: {reruns} re-runs (bound {bound}) in {} ms",
        a["duration_ms"]
    );
    assert!(
        (1..=bound).contains(&reruns),
        "{ctx}: {reruns} re-runs, more than {bound}: {a}"
    );
}

#[test]
fn every_leak_among_200_tests_is_attributed_by_group_reruns_cgroup() {
    require_root();
    run_all("cgroup");
}

#[test]
fn every_leak_among_200_tests_is_attributed_by_group_reruns_process_group() {
    run_all("process-group");
}
