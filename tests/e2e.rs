//! End-to-end tests: run the real `cargo-reap` binary on the fixture workspace
//! (`fixtures/leaky`), compare its JSON report with the expectations written
//! once in `fixtures/leaky/expected.toml`, and check from outside — by scanning
//! /proc for the run's tag and the cgroup tree for its leaves — that nothing
//! the run started survived.
//!
//! They need root (cgroup writes, mount namespaces), as CI has.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;
use serde_json::Value;

const REAP: &str = env!("CARGO_BIN_EXE_cargo-reap");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn fixture_manifest() -> PathBuf {
    repo().join("fixtures/leaky/Cargo.toml")
}

#[derive(Debug, Deserialize)]
struct Expected {
    suite: Vec<ExpectedSuite>,
}

#[derive(Debug, Deserialize)]
struct ExpectedSuite {
    id: String,
    package: String,
    target: String,
    kind: String,
    status: String,
    attempts: usize,
    leaks: usize,
    leak_comms: Vec<String>,
    #[serde(default)]
    leak_states: Vec<String>,
    /// One entry per leak: the test that started it, "" when not reproducible alone.
    #[serde(default)]
    leak_tests: Vec<String>,
    /// Rule ids that must appear among the leaks' findings.
    #[serde(default)]
    leak_findings: Vec<String>,
}

fn expected() -> Vec<ExpectedSuite> {
    let text = std::fs::read_to_string(repo().join("fixtures/leaky/expected.toml")).unwrap();
    toml::from_str::<Expected>(&text).unwrap().suite
}

/// A scratch directory removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cargo-reap-e2e-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("removing {}: {e}", self.0.display());
        }
    }
}

struct Run {
    code: i32,
    stderr: String,
    report: Option<Value>,
}

impl Run {
    fn report(&self) -> &Value {
        self.report
            .as_ref()
            .unwrap_or_else(|| panic!("no JSON report; stderr:\n{}", self.stderr))
    }

    fn suites(&self) -> BTreeMap<String, &Value> {
        self.report()["suites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].as_str().unwrap().to_string(), s))
            .collect()
    }
}

/// Run `cargo-reap` with `args` (optionally through `wrapper`, e.g. unshare),
/// then assert that no process of the run and no cgroup leaf of it remains.
fn reap(wrapper: &[&str], args: &[&str]) -> Run {
    let scratch = Scratch::new("run");
    let json = scratch.0.join("report.json");
    let mut cmd = if wrapper.is_empty() {
        Command::new(REAP)
    } else {
        let mut c = Command::new(wrapper[0]);
        c.args(&wrapper[1..]).arg(REAP);
        c
    };
    // `--json PATH` goes before a `--` (after it, arguments belong to the test binaries).
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    cmd.args(&args[..split])
        .arg("--json")
        .arg(&json)
        .args(&args[split..])
        .env("REAP_FIXTURE_STATE_DIR", scratch.0.join("state"))
        .env_remove("CARGO_REAP_SUITE");
    let Output { status, stderr, .. } = cmd.output().expect("run cargo-reap");
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    let report = std::fs::read(&json)
        .ok()
        .filter(|b| !b.is_empty())
        .map(|b| serde_json::from_slice::<Value>(&b).expect("valid JSON report"));
    if let Some(r) = &report {
        assert_nothing_survived(r["run_id"].as_str().unwrap());
    }
    Run {
        code: status.code().expect("cargo-reap exited, not killed"),
        stderr,
        report,
    }
}

/// From outside: no process carries this run's tag, no cgroup leaf of it exists.
fn assert_nothing_survived(run_id: &str) {
    let prefix = format!("{run_id}/");
    let procs = reap_probe::scan(reap_probe::ScanOptions {
        environ_tag: true,
        cgroup: false,
    })
    .unwrap();
    let left: Vec<_> = procs
        .iter()
        .filter(|p| p.tag.as_deref().is_some_and(|t| t.starts_with(&prefix)))
        .map(|p| format!("{} {} {:?}", p.pid, p.state, p.cmdline))
        .collect();
    assert!(
        left.is_empty(),
        "processes of run {run_id} survived: {left:#?}"
    );
    for root in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        let leaves = find_leaves(Path::new(root), run_id, 3);
        assert!(
            leaves.is_empty(),
            "cgroup leaves of run {run_id} remain: {leaves:?}"
        );
    }
}

fn find_leaves(dir: &Path, run_id: &str, depth: u32) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        if e.file_name().to_string_lossy().contains(run_id) {
            out.push(p);
        } else if depth > 0 {
            out.extend(find_leaves(&p, run_id, depth - 1));
        }
    }
    out
}

fn manifest_args() -> Vec<String> {
    vec![
        "--manifest-path".into(),
        fixture_manifest().display().to_string(),
        "--timeout".into(),
        "3s".into(),
        "--grace".into(),
        "1s".into(),
    ]
}

fn args<'a>(base: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = extra.to_vec();
    v.extend(base.iter().map(String::as_str));
    v
}

/// Compare a report with the expectations for every suite in `expected`.
fn check_against_expected(run: &Run, expected: &[ExpectedSuite]) {
    let suites = run.suites();
    for e in expected {
        let s = suites.get(&e.id).unwrap_or_else(|| {
            panic!(
                "suite {} missing from report; stderr:\n{}",
                e.id, run.stderr
            )
        });
        let ctx = format!("suite {}", e.id);
        assert_eq!(s["package"], e.package.as_str(), "{ctx}");
        assert_eq!(s["target"], e.target.as_str(), "{ctx}");
        assert_eq!(s["kind"], e.kind.as_str(), "{ctx}");
        assert_eq!(s["status"], e.status.as_str(), "{ctx}: {s:#}");
        assert_eq!(s["attempts"].as_array().unwrap().len(), e.attempts, "{ctx}");
        let leaks = s["leaks"].as_array().unwrap();
        assert_eq!(leaks.len(), e.leaks, "{ctx}: {leaks:#?}");
        let mut comms: Vec<&str> = leaks.iter().map(|l| l["comm"].as_str().unwrap()).collect();
        comms.sort();
        assert_eq!(comms, e.leak_comms, "{ctx}");
        for st in &e.leak_states {
            assert!(
                leaks.iter().any(|l| l["state"] == st.as_str()),
                "{ctx}: no leak in state {st}: {leaks:#?}"
            );
        }
        let mut tests: Vec<&str> = leaks
            .iter()
            .map(|l| l["test"].as_str().unwrap_or(""))
            .collect();
        tests.sort();
        assert_eq!(
            tests, e.leak_tests,
            "{ctx}: the test that started each leak"
        );
        for l in leaks.iter().filter(|l| l["test"].is_null()) {
            let why = l["attribution"].as_str().unwrap_or("");
            assert!(
                why.contains("not reproduced when run alone"),
                "{ctx}: {why}"
            );
        }
        for rule in &e.leak_findings {
            assert!(
                leaks.iter().any(|l| l["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f == rule.as_str())),
                "{ctx}: no leak has finding {rule}: {leaks:#?}"
            );
        }
        for l in leaks {
            assert_eq!(l["reaped"], true, "{ctx}");
            assert!(l["fds"].is_object(), "{ctx}: leak.fds summary");
            for field in ["pid", "ppid", "pgid", "sid", "age_ms", "attempt"] {
                assert!(
                    l[field].is_u64() || l[field].is_i64(),
                    "{ctx}: leak.{field} missing"
                );
            }
            assert!(!l["cmdline"].as_array().unwrap().is_empty(), "{ctx}");
        }
        for a in s["attempts"].as_array().unwrap() {
            for field in [
                "exit_code",
                "signal",
                "timed_out",
                "duration_ms",
                "tests_in_flight",
            ] {
                assert!(a.get(field).is_some(), "{ctx}: attempt.{field} missing");
            }
        }
        if e.status == "hang" || e.status == "flaky-hang" {
            let first = &s["attempts"][0];
            assert_eq!(first["timed_out"], true, "{ctx}");
            assert!(
                !first["tests_in_flight"].as_array().unwrap().is_empty(),
                "{ctx}: a hung attempt names the tests in flight: {first:#}"
            );
            // Hang triage: what every process was blocked on, before the kill.
            let tree = first["tree"].as_array().unwrap();
            assert!(
                tree.iter().any(|l| l.as_str().unwrap().contains("wchan")),
                "{ctx}: the hang's tree says what it was blocked on: {tree:#?}"
            );
            assert!(
                !first["hang_processes"].as_array().unwrap().is_empty(),
                "{ctx}"
            );
        }
    }
}

fn check_summary(run: &Run, expected: &[ExpectedSuite]) {
    let sum = &run.report()["summary"];
    let count = |st: &str| expected.iter().filter(|e| e.status == st).count() as u64;
    assert_eq!(sum["suites"], expected.len() as u64);
    assert_eq!(sum["passed"], count("pass"));
    assert_eq!(sum["failed"], count("fail"));
    assert_eq!(sum["crashed"], count("crash"));
    assert_eq!(sum["hung"], count("hang"));
    assert_eq!(sum["flaky"], count("flaky-hang"));
    let leaked: usize = expected.iter().map(|e| e.leaks).sum();
    assert_eq!(sum["leaked_processes"], leaked as u64);
    assert_eq!(
        sum["suites_with_leaks"],
        expected.iter().filter(|e| e.leaks > 0).count() as u64
    );
}

/// The exit code the documented precedence gives for these expectations.
fn expected_exit(expected: &[ExpectedSuite]) -> i32 {
    let has = |st: &str| expected.iter().any(|e| e.status == st);
    if has("fail") || has("crash") {
        100
    } else if has("hang") {
        102
    } else if expected.iter().any(|e| e.leaks > 0) {
        103
    } else {
        0
    }
}

fn full_fixture_run(isolation: &str) {
    let base = manifest_args();
    let run = reap(
        &[],
        &args(
            &base,
            &["reap", "test", "--workspace", "--isolation", isolation],
        ),
    );
    let expected = expected();
    assert_eq!(run.report()["version"], 1);
    assert_eq!(run.report()["isolation"], isolation);
    check_against_expected(&run, &expected);
    check_summary(&run, &expected);
    assert_eq!(
        run.code,
        expected_exit(&expected),
        "stderr:\n{}",
        run.stderr
    );
    assert_eq!(run.report()["exit_code"], run.code);
    // The terminal report ends with the leak table and the summary line.
    assert!(run.stderr.contains("LEAKED PROCESSES"), "{}", run.stderr);
    assert!(run.stderr.contains("sleep 3601"), "{}", run.stderr);
}

#[test]
fn every_fixture_suite_in_cgroup_mode() {
    require_root();
    full_fixture_run("cgroup");
}

#[test]
fn every_fixture_suite_in_process_group_mode() {
    require_root();
    full_fixture_run("process-group");
}

/// The expectations of the suites a `--test NAME` selection picks.
fn expected_for(ids: &[&str]) -> Vec<ExpectedSuite> {
    expected()
        .into_iter()
        .filter(|e| ids.contains(&e.id.as_str()))
        .collect()
}

/// Run in a private mount namespace where /sys/fs/cgroup is replaced by
/// `setup` (a shell snippet), to exercise the layouts other hosts have.
fn reap_in_mount_ns(setup: &str, reap_args: &[&str]) -> Run {
    let script = format!("set -e; umount -l /sys/fs/cgroup; {setup}; exec \"$0\" \"$@\"");
    reap(
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ],
        reap_args,
    )
}

#[test]
fn pure_cgroup_v2_layout_at_sys_fs_cgroup() {
    require_root();
    let base = manifest_args();
    let run = reap_in_mount_ns(
        "mount -t cgroup2 cgroup2 /sys/fs/cgroup",
        &args(
            &base,
            &[
                "test", "-p", "leaky", "--test", "daemon", "--test", "stopped",
            ],
        ),
    );
    assert_eq!(run.report()["isolation"], "cgroup", "{}", run.stderr);
    assert!(
        run.stderr
            .contains("isolation: cgroup v2 (leaves under /sys/fs/cgroup"),
        "{}",
        run.stderr
    );
    let expected = expected_for(&["leaky::daemon", "leaky::stopped"]);
    check_against_expected(&run, &expected);
    assert_eq!(run.code, 103, "leaks only: {}", run.stderr);
}

#[test]
fn read_only_cgroup_falls_back_to_process_group_and_says_why() {
    require_root();
    let base = manifest_args();
    let selection = ["-p", "leaky", "--test", "own_pgroup", "--test", "crash"];
    let mut a = vec!["test"];
    a.extend(selection);
    let run = reap_in_mount_ns(
        "mount -t cgroup2 -o ro cgroup2 /sys/fs/cgroup",
        &args(&base, &a),
    );
    assert_eq!(run.report()["isolation"], "process-group", "{}", run.stderr);
    let note = run.report()["isolation_note"].as_str().unwrap();
    assert!(note.contains("cgroup v2 unavailable"), "{note}");
    assert!(
        note.contains("Read-only file system"),
        "the reason is named: {note}"
    );
    let expected = expected_for(&["leaky::own_pgroup", "leaky::crash"]);
    check_against_expected(&run, &expected);
    assert_eq!(run.code, 100);

    // Asking for cgroup where it cannot work is an error naming the reason.
    let mut a = vec!["test", "--isolation", "cgroup"];
    a.extend(selection);
    let run = reap_in_mount_ns(
        "mount -t cgroup2 -o ro cgroup2 /sys/fs/cgroup",
        &args(&base, &a),
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--isolation cgroup cannot work here"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Read-only file system"),
        "{}",
        run.stderr
    );
}

#[test]
fn no_cgroup2_mount_at_all_falls_back() {
    require_root();
    let base = manifest_args();
    let run = reap_in_mount_ns(
        "true",
        &args(&base, &["test", "-p", "leaky", "--test", "ignores_term"]),
    );
    assert_eq!(run.report()["isolation"], "process-group", "{}", run.stderr);
    assert!(
        run.stderr.contains("no cgroup2 filesystem is mounted"),
        "{}",
        run.stderr
    );
    check_against_expected(&run, &expected_for(&["leaky::ignores_term"]));
}

#[test]
fn test_binary_args_after_double_dash_reach_every_suite() {
    require_root();
    let base = manifest_args();
    // `failing` has one passing and one failing test: filter to the passing one.
    let mut a = args(&base, &["test", "-p", "leaky", "--test", "failing"]);
    a.extend(["--", "passes", "--exact"]);
    let run = reap(&[], &a);
    let s = run.suites()["leaky::failing"].clone();
    assert_eq!(s["status"], "pass", "{s:#}");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log = std::fs::read_to_string(s["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("test passes ... ok"), "{log}");
    assert!(!log.contains("fails_an_assert"), "{log}");
}

#[test]
fn build_failure_exits_101_with_the_compiler_error() {
    let scratch = Scratch::new("broken");
    std::fs::create_dir_all(scratch.0.join("src")).unwrap();
    std::fs::write(
        scratch.0.join("Cargo.toml"),
        "[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        scratch.0.join("src/lib.rs"),
        "pub fn f() -> u32 { \"not a number\" }\n",
    )
    .unwrap();
    let out = Command::new(REAP)
        .args(["test", "--manifest-path"])
        .arg(scratch.0.join("Cargo.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{stderr}");
    assert!(
        stderr.contains("error[E0308]"),
        "compiler error as cargo renders it: {stderr}"
    );
    assert!(stderr.contains("build failed"), "{stderr}");
}

#[test]
fn malformed_duration_is_a_usage_error() {
    let out = Command::new(REAP)
        .args(["reap", "test", "--timeout", "5 parsecs"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a duration"), "{stderr}");
}

#[test]
fn help_documents_exit_codes_and_doctests() {
    let out = Command::new(REAP)
        .args(["test", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "103",
        "102",
        "101",
        "100",
        "Doctests are not run",
        "--isolation",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}: {help}");
    }
}

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the end-to-end tests need root (cgroup writes, mount namespaces); CI runs them as root"
    );
}

/// Processes carrying a tag of `run_id`.
fn tagged(run_id: &str) -> Vec<i32> {
    let prefix = format!("{run_id}/");
    reap_probe::scan(reap_probe::ScanOptions {
        environ_tag: true,
        cgroup: false,
    })
    .unwrap()
    .into_iter()
    .filter(|p| p.tag.as_deref().is_some_and(|t| t.starts_with(&prefix)))
    .map(|p| p.pid)
    .collect()
}

/// Wait (bounded) for a condition that no event announces; `what` names it.
fn wait_until(what: &str, limit: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Start cargo-reap on the always-hanging suite and return it with its run id
/// once the suite's processes (test binary + its child) are running.
fn start_hanging_run(isolation: &str, json: &Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(REAP)
        .args(["test", "--isolation", isolation, "--manifest-path"])
        .arg(fixture_manifest())
        .args([
            "-p",
            "leaky",
            "--test",
            "always_hangs",
            "--timeout",
            "60s",
            "--grace",
            "1s",
        ])
        .arg("--json")
        .arg(json)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let run_id = loop {
        let line = lines.next().expect("cargo-reap announces its run").unwrap();
        if let Some(rest) = line.strip_prefix("cargo-reap: run ") {
            break rest.split(':').next().unwrap().to_string();
        }
    };
    // Keep draining stderr so cargo-reap never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    wait_until(
        "the suite's two processes",
        std::time::Duration::from_secs(20),
        || tagged(&run_id).len() >= 2,
    );
    (child, run_id)
}

/// `kill -9` of cargo-reap mid-run: the lifeline guard kills every process of
/// the running suite within a second. Repeated, in both modes.
#[test]
fn sigkill_of_the_runner_leaves_nothing_behind_within_a_second() {
    require_root();
    for (isolation, trials) in [("cgroup", 4), ("process-group", 3)] {
        for trial in 0..trials {
            let scratch = Scratch::new("lifeline");
            let (mut child, run_id) = start_hanging_run(isolation, &scratch.0.join("r.json"));
            child.kill().unwrap();
            child.wait().unwrap();
            let killed_at = std::time::Instant::now();
            wait_until(
                &format!("{isolation} trial {trial}: processes of run {run_id} to die"),
                std::time::Duration::from_secs(1),
                || tagged(&run_id).is_empty(),
            );
            let took = killed_at.elapsed();
            eprintln!("{isolation} trial {trial}: suite gone {took:?} after the runner's SIGKILL");
            for root in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
                wait_until(
                    "the guard to remove the leaf",
                    std::time::Duration::from_secs(2),
                    || find_leaves(Path::new(root), &run_id, 3).is_empty(),
                );
            }
        }
    }
}

/// SIGINT / SIGTERM / SIGHUP: the running suite is stopped (not waited out),
/// the partial report is written and marked, the exit code is 128 + signal.
#[test]
fn signals_stop_the_run_with_a_partial_report() {
    require_root();
    for (sig, code) in [
        (rustix::process::Signal::INT, 130),
        (rustix::process::Signal::TERM, 143),
        (rustix::process::Signal::HUP, 129),
    ] {
        let scratch = Scratch::new("signal");
        let json = scratch.0.join("r.json");
        let (mut child, run_id) = start_hanging_run("cgroup", &json);
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{sig:?}");
        let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(report["interrupted"], code - 128);
        assert_eq!(report["exit_code"], code);
        let attempt = &report["suites"][0]["attempts"][0];
        assert_eq!(attempt["interrupted"], true, "{attempt:#}");
        assert_eq!(
            attempt["timed_out"], false,
            "stopped by the signal, not the 60 s timeout"
        );
        assert_eq!(
            report["suites"][0]["attempts"].as_array().unwrap().len(),
            1,
            "no retry"
        );
        assert_nothing_survived(&run_id);
    }
}
