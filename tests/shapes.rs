//! Every target shape cargo can build tests for gets its own suite id, log
//! and TMPDIR; doctests run as suites, counted like `cargo test` counts them,
//! with their leaks caught and reaped. On `fixtures/shapes`: a lib and a bin
//! both named `shapes`, an example and a bench with tests, two members with an
//! integration test named `common_name`, a proc-macro crate, a build script,
//! and `shapes-doc`, whose doctests pass, fail and leak (`sleep 3971`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

fn shapes_manifest() -> String {
    fixture_manifest_of("shapes").display().to_string()
}

fn shapes_args<'a>(manifest: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["test", "--manifest-path", manifest, "--timeout", "120s"];
    v.extend(extra);
    v
}

/// The test executables `cargo test --no-run` reports for `selection`
/// (compiler artifacts built in test mode), as (package name, target name,
/// target kind) from cargo itself.
fn cargo_test_executables(manifest: &str, selection: &[&str]) -> Vec<(String, String, String)> {
    let out = Command::new(env!("CARGO"))
        .args([
            "test",
            "--no-run",
            "--message-format=json",
            "--manifest-path",
        ])
        .arg(manifest)
        .args(selection)
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo");
    assert!(out.status.success(), "cargo test --no-run failed");
    let mut v = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let m: Value = serde_json::from_str(line).expect("cargo JSON message");
        if m["reason"] == "compiler-artifact"
            && m["profile"]["test"] == true
            && m["executable"].is_string()
        {
            // `path+file:///…/shapes-other#0.1.0` or `…#name@0.1.0`
            let id = m["package_id"].as_str().unwrap();
            let tail = id.rsplit('#').next().unwrap();
            let pkg = match tail.split_once('@') {
                Some((name, _)) => name.to_string(),
                None => id
                    .rsplit('#')
                    .nth(1)
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
            };
            v.push((
                pkg,
                m["target"]["name"].as_str().unwrap().to_string(),
                m["target"]["kind"][0].as_str().unwrap().to_string(),
            ));
        }
    }
    v
}

#[test]
fn every_target_shape_is_its_own_suite() {
    require_root();
    let manifest = shapes_manifest();
    let selection = ["--workspace", "--all-targets"];
    let mut a = shapes_args(&manifest, &selection);
    a.extend(["--", "--nocapture"]);
    let run = reap(&[], &a);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.report();
    let suites = report["suites"].as_array().unwrap();

    // The scheme (README, "A suite"), one id per shape.
    let ids: BTreeSet<&str> = suites.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), suites.len(), "ids are not distinct: {ids:?}");
    let want: BTreeSet<&str> = [
        "shapes",
        "shapes::bin/shapes",
        "shapes::example/demo",
        "shapes::bench/speed",
        "shapes::common_name",
        "shapes-other",
        "shapes-other::common_name",
        "shapes-macro",
        "shapes-doc",
    ]
    .into();
    assert_eq!(ids, want);

    // One suite per test executable cargo itself builds for the selection.
    let built = cargo_test_executables(&manifest, &selection);
    assert_eq!(built.len(), suites.len(), "cargo built {built:?}");
    for (pkg, target, kind) in &built {
        assert!(
            suites.iter().any(|s| s["package"] == pkg.as_str()
                && s["target"] == target.as_str()
                && s["kind"] == kind.as_str()),
            "no suite for cargo's {kind} `{target}` of {pkg}"
        );
    }

    // Every suite passed and ran its one test; each has its own log, and
    // each test saw its own private TMPDIR (printed with --nocapture).
    let mut logs = BTreeSet::new();
    let mut tmpdirs: BTreeMap<String, String> = BTreeMap::new();
    for s in suites {
        let id = s["id"].as_str().unwrap();
        assert_eq!(s["status"], "pass", "{id}: {s:#}");
        assert_eq!(s["tests"].as_array().unwrap().len(), 1, "{id}: {s:#}");
        let log = s["log"].as_str().expect("a log path");
        assert!(logs.insert(log.to_string()), "{id}: log {log} shared");
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            text.contains(&format!("===== cargo-reap: {id} attempt 1 ")),
            "{id}: {log} is not its log:\n{text}"
        );
        let seen: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("TMPDIR="))
            .collect();
        assert_eq!(seen.len(), 1, "{id}: TMPDIR lines in {log}:\n{text}");
        assert!(
            seen[0].contains(report["run_id"].as_str().unwrap()),
            "{id}: TMPDIR {} is not the run's",
            seen[0]
        );
        if let Some(other) = tmpdirs.insert(seen[0].to_string(), id.to_string()) {
            panic!("{id} and {other} shared the TMPDIR {}", seen[0]);
        }
    }
}

/// The number of tests `cargo test` runs for `selection`: the sum of its
/// `running N tests` lines (unit, integration and doctests alike). Run from
/// the test, not contained: the strays of `shapes-doc`'s leaking doctest are
/// killed here, found from outside.
fn cargo_test_count(manifest: &str, selection: &[&str]) -> usize {
    let since = reap_probe::boottime_ticks();
    let out = Command::new(env!("CARGO"))
        .args(["test", "--no-fail-fast", "--manifest-path"])
        .arg(manifest)
        .args(selection)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo test");
    let strays = strays_since(since, is_doctest_leak);
    kill_strays(&strays);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let n = l.strip_prefix("running ")?.split_whitespace().next()?;
            n.parse::<usize>().ok()
        })
        .sum()
}

fn is_doctest_leak(s: &Stray, _env: &[u8]) -> bool {
    s.cmdline == ["sleep", "3971"]
}

#[test]
fn doctests_are_suites_counted_like_cargo_test() {
    require_root();
    let manifest = shapes_manifest();
    let selection = ["-p", "shapes", "-p", "shapes-doc", "-p", "shapes-other"];
    let since = reap_probe::boottime_ticks();
    let run = reap(&[], &shapes_args(&manifest, &selection));
    // Nothing of the leaking doctest is alive, seen from outside.
    assert_no_strays("doctests", since, is_doctest_leak);
    assert_eq!(run.code, 100, "{}", run.stderr);
    let suites = run.suites();
    for (id, target) in [
        ("shapes::doctest/shapes", "shapes"),
        ("shapes-other::doctest/other_lib", "other_lib"),
        ("shapes-doc::doctest/shapes_doc", "shapes_doc"),
    ] {
        let s = suites
            .get(id)
            .unwrap_or_else(|| panic!("no {id}: {suites:#?}"));
        assert_eq!(s["kind"], "doctest");
        assert_eq!(s["target"], target);
    }
    for (id, s) in &suites {
        if id != "shapes-doc::doctest/shapes_doc" {
            assert_eq!(s["status"], "pass", "{id}: {s:#}");
            assert!(s["leaks"].as_array().unwrap().is_empty(), "{id}: {s:#}");
        }
    }

    // The doctests: one passes, one fails, one leaks its `sleep 3971`.
    let doc = suites["shapes-doc::doctest/shapes_doc"];
    assert_eq!(doc["status"], "fail", "{doc:#}");
    let results: BTreeMap<&str, &str> = doc["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["result"].as_str().unwrap()))
        .collect();
    let result_of = |f: &str| -> &str {
        results
            .iter()
            .find(|(n, _)| n.contains(&format!(" - {f} (line ")))
            .map(|(_, r)| *r)
            .unwrap_or_else(|| panic!("no doctest of `{f}`: {results:?}"))
    };
    assert_eq!(result_of("one"), "ok");
    assert_eq!(result_of("failing"), "FAILED");
    assert_eq!(result_of("leaking"), "ok");
    let leaks = doc["leaks"].as_array().unwrap();
    assert_eq!(leaks.len(), 1, "{doc:#}");
    assert_eq!(leaks[0]["cmdline"], serde_json::json!(["sleep", "3971"]));
    assert_eq!(leaks[0]["reaped"], true);
    let test = leaks[0]["test"].as_str().unwrap_or_default();
    assert!(test.contains(" - leaking (line "), "attributed to {test:?}");

    // As many tests as `cargo test` runs on the same selection.
    let ours: usize = suites
        .values()
        .map(|s| s["tests"].as_array().unwrap().len())
        .sum();
    let cargo = cargo_test_count(&manifest, &selection);
    assert_eq!(
        ours, cargo,
        "cargo-reap ran {ours} tests, cargo test {cargo}"
    );
}

#[test]
fn doc_runs_only_doctests_and_target_selections_none() {
    require_root();
    let manifest = shapes_manifest();
    let ids = |extra: &[&str]| -> (i32, BTreeSet<String>) {
        let run = reap(&[], &shapes_args(&manifest, extra));
        let ids = match &run.report {
            Some(_) => run.suites().keys().cloned().collect(),
            None => BTreeSet::new(),
        };
        (run.code, ids)
    };
    let set = |v: &[&str]| -> BTreeSet<String> { v.iter().map(|s| s.to_string()).collect() };

    // `extra` is a feature of `shapes` only: cargo takes it for both
    // packages, so must each package's doctest suite.
    let (code, got) = ids(&[
        "--doc",
        "-p",
        "shapes",
        "-p",
        "shapes-other",
        "--features",
        "extra",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        got,
        set(&["shapes::doctest/shapes", "shapes-other::doctest/other_lib"])
    );
    // As cargo: no doctests when the selection names targets.
    for (extra, want) in [
        (
            &["-p", "shapes", "--test", "common_name"][..],
            &["shapes::common_name"][..],
        ),
        (&["-p", "shapes", "--lib"][..], &["shapes"][..]),
        (&["-p", "shapes", "--bins"][..], &["shapes::bin/shapes"][..]),
    ] {
        let (code, got) = ids(extra);
        assert_eq!(code, 0, "{extra:?}");
        assert_eq!(got, set(want), "{extra:?}");
    }
    // `--doc` with a target selection is refused, as cargo refuses it.
    let scratch = Scratch::new("doc-lib");
    let out = reap_command(
        &[],
        &shapes_args(&manifest, &["--doc", "--lib"]),
        &scratch.0.join("r.json"),
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("can't mix --doc"), "{stderr}");
}
