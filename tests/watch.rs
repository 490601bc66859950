//! `cargo reap run --watch` (issue 16), end to end on `fixtures/watch`: the
//! built binary watches a long-running program for a few seconds, sampling
//! every few tens of ms; its exit code, stderr and JSON report are checked,
//! and from outside that nothing it started survives. The fixtures' rates
//! are exact by construction (a cycle at every multiple of the period), so
//! the measured slope is compared with the true one; every tolerance is
//! wide enough for a loaded 2-core machine, and no test waits on a sleep.

mod common;

use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use common::*;
use serde_json::Value;

/// One watch at a time: each test checks from outside that nothing of its
/// fixture survived, which another running watch would confuse (and the
/// rates are measured more truly on a machine not shared with another watch).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// `cargo-reap run --watch WATCH --sample-every EVERY [EXTRA] -- FIXTURE ARGS`,
/// then, from outside, no fixture process started since is alive.
fn watch(watch: &str, every: &str, extra: &[&str], fixture: &str, args: &[&str]) -> Run {
    require_root();
    let bin = watch_fixture_bin(fixture);
    let since = reap_probe::boottime_ticks().saturating_sub(1);
    let mut all = vec![
        "run",
        "--watch",
        watch,
        "--sample-every",
        every,
        "--grace",
        "2s",
    ];
    all.extend_from_slice(extra);
    all.push("--");
    all.push(&bin);
    all.extend_from_slice(args);
    // `reap` checks the run's tag and cgroup leaves are gone.
    let run = reap(&[], &all);
    assert_no_strays(fixture, since, |s, _| {
        s.cmdline.first().is_some_and(|a| a == "watch-orphan")
            || ["leaker", "grower", "flat", "dies"].contains(&s.comm.as_str())
    });
    run
}

fn trend<'a>(run: &'a Run, series: &str) -> &'a Value {
    run.report()["watch"]["trends"]
        .as_array()
        .unwrap_or_else(|| panic!("no trends; stderr:\n{}", run.stderr))
        .iter()
        .find(|t| t["series"] == series || (series == "dir" && t["series"].get("dir").is_some()))
        .unwrap_or_else(|| panic!("no {series} trend; stderr:\n{}", run.stderr))
}

fn verdict(run: &Run, series: &str) -> String {
    trend(run, series)["verdict"].as_str().unwrap().to_string()
}

#[test]
fn an_orphan_per_cycle_is_measured_at_its_rate_and_fails() {
    let _one = serial();
    // One orphan every 200 ms: 18 000 an hour.
    let run = watch("4s", "20ms", &[], "leaker", &["200"]);
    assert_eq!(run.code, 104, "stderr:\n{}", run.stderr);
    let truth = 3600.0 / 0.2;
    for series in ["processes", "orphans"] {
        let t = trend(&run, series);
        let slope = t["slope_per_hour"].as_f64().unwrap();
        assert!(
            (slope - truth).abs() / truth <= 0.2,
            "{series}: {slope}/h measured, {truth}/h true; stderr:\n{}",
            run.stderr
        );
        assert_eq!(t["verdict"], "too-fast");
    }
    let sentence = trend(&run, "processes")["sentence"].as_str().unwrap();
    assert!(
        sentence.starts_with("processes: +")
            && sentence.contains("orphans of 'watch-orphan --orphan'"),
        "{sentence}"
    );
    assert!(
        run.stderr.contains("TOO FAST  processes: +"),
        "{}",
        run.stderr
    );
    let w = &run.report()["watch"];
    assert!(w.get("died_at_ms").is_none(), "it lived: {w}");
    let samples = w["timeline"]["processes"].as_array().unwrap().len();
    // 4 s at 20 ms: 201 slots; a loaded machine may start the sampler late.
    assert!((150..=202).contains(&samples), "{samples} samples");
    // The orphans outlived the stopped command: leaks, every one reaped.
    let suite = &run.report()["suites"][0];
    assert_eq!(suite["status"], "pass");
    assert_eq!(suite["attempts"][0]["watch_ended"], true);
    let leaks = suite["leaks"].as_array().unwrap();
    assert!(leaks.len() >= 10, "{} leaks", leaks.len());
    assert!(leaks.iter().all(|l| l["reaped"] == true));
    assert!(leaks
        .iter()
        .all(|l| l["cmdline"][0] == "watch-orphan" && l["findings"][0] == "orphaned"));
}

#[test]
fn a_flat_service_passes_and_ci_gets_plain_progress_lines() {
    let _one = serial();
    // A short-lived child every 30 ms: the process count jitters, no trend.
    let run = watch("3s", "20ms", &[], "flat", &["30"]);
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    for series in ["processes", "orphans", "memory", "open-fds"] {
        assert_eq!(verdict(&run, series), "flat", "{series}: {}", run.stderr);
    }
    assert!(run.stderr.contains("ok  processes: flat"), "{}", run.stderr);
    assert!(run.report()["suites"][0]["leaks"]
        .as_array()
        .unwrap()
        .is_empty());
    // Not a terminal: a plain line per tenth of the watch, never redrawn.
    assert!(
        run.stderr.contains("cargo-reap: watch 50% ("),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains('\r'), "{}", run.stderr);
}

#[test]
fn memory_growth_is_caught_and_processes_stay_flat() {
    let _one = serial();
    // 1 MiB every 40 ms: 25 MiB/s, far beyond the default 64 MiB/h.
    let run = watch("3s", "20ms", &[], "grower", &["40"]);
    assert_eq!(run.code, 104, "stderr:\n{}", run.stderr);
    let t = trend(&run, "memory");
    assert_eq!(t["verdict"], "too-fast", "{}", run.stderr);
    let truth = 25.0 * 1048576.0 * 3600.0;
    let slope = t["slope_per_hour"].as_f64().unwrap();
    assert!(
        (slope - truth).abs() / truth <= 0.2,
        "memory: {slope}/h measured, {truth}/h true"
    );
    assert_eq!(verdict(&run, "processes"), "flat");
    // Allowed growth: reported, not failing.
    let run = watch(
        "2s",
        "20ms",
        &["--max-growth", "memory=none"],
        "grower",
        &["40"],
    );
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    assert_eq!(verdict(&run, "memory"), "growing");
}

#[test]
fn a_service_that_dies_is_reported_with_its_time_of_death() {
    let _one = serial();
    // It exits with status 0 after 1 s of a 30 s watch: still a failure.
    let run = watch("30s", "20ms", &[], "dies", &["1000", "0"]);
    assert_eq!(run.code, 105, "stderr:\n{}", run.stderr);
    let w = &run.report()["watch"];
    let died = w["died_at_ms"].as_u64().unwrap();
    assert!((1000..10_000).contains(&died), "died at {died} ms");
    assert_eq!(w["died_with"], 0);
    assert!(
        run.stderr.contains("DIED the command died at 1"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("exit status 0"), "{}", run.stderr);
    // A non-zero status is named too.
    let run = watch("30s", "20ms", &[], "dies", &["300", "3"]);
    assert_eq!(run.code, 105, "stderr:\n{}", run.stderr);
    assert_eq!(run.report()["watch"]["died_with"], 3);
}

#[test]
fn watched_directories_are_counted() {
    let _one = serial();
    require_root();
    let scratch = Scratch::new("dirs");
    let dir = scratch.0.join("telemetry");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/a"), b"").unwrap();
    let d = dir.display().to_string();
    let script = format!("i=0; while :; do i=$((i+1)); : > {d}/f$i; sleep 0.1; done");
    let run = reap(
        &[],
        &[
            "run",
            "--watch",
            "2s",
            "--sample-every",
            "20ms",
            "--watch-dir",
            &d,
            "--max-growth",
            "files=0",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    assert_eq!(run.code, 104, "stderr:\n{}", run.stderr);
    let t = trend(&run, "dir");
    assert_eq!(t["verdict"], "too-fast", "{}", run.stderr);
    let files = run.report()["watch"]["timeline"]["dirs"][0]["files"]
        .as_array()
        .unwrap()
        .clone();
    assert!(files[0].as_u64().unwrap() <= 2);
    assert!(files.last().unwrap().as_u64().unwrap() >= 10, "{files:?}");
}

#[test]
fn watch_flags_are_checked_before_anything_runs() {
    for (args, says) in [
        (
            vec!["run", "--sample-every", "1s", "--", "true"],
            "go with --watch",
        ),
        (
            vec!["run", "--watch", "1s", "--timeout", "5s", "--", "true"],
            "takes the place of --timeout",
        ),
        (
            vec![
                "run",
                "--watch",
                "1s",
                "--max-growth",
                "cpu=1",
                "--",
                "true",
            ],
            "not a series",
        ),
        (
            vec!["run", "--watch", "1s", "--sample-every", "2s", "--", "true"],
            "not be longer",
        ),
    ] {
        let out = Command::new(REAP).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn every_suite_attempt_keeps_its_timeline_in_each_trial() {
    let _one = serial();
    require_root();
    let m = fixture_manifest_of("watch").display().to_string();
    let run = reap(
        &[],
        &[
            "test",
            "--manifest-path",
            &m,
            "--test",
            "busy",
            "--loop",
            "2",
        ],
    );
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    let trials = run.report()["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2);
    for trial in trials {
        let t = &trial["suites"][0]["attempts"][0]["timeline"];
        assert_eq!(t["interval_ms"], 100, "{t}");
        let processes: Vec<u64> = t["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        // The suite runs ~0.7 s: its children came and went.
        assert!(processes.len() >= 3, "{processes:?}");
        assert!(processes.iter().any(|&p| p >= 2), "{processes:?}");
        for series in ["orphans", "threads", "memory_bytes", "open_fds"] {
            assert_eq!(t[series].as_array().unwrap().len(), processes.len());
        }
        let peak = trial["suites"][0]["attempts"][0]["peak_processes"]
            .as_u64()
            .unwrap();
        assert_eq!(peak, *processes.iter().max().unwrap());
    }
}
