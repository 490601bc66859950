//! End-to-end tests for suites that leave their containment or attack the
//! runner's own helpers (`fixtures/sabotage`, package `sabotage-escape`):
//! a process that left the cgroup leaf, an untagged setsid daemon when the
//! runner is SIGKILLed, a build killed with the runner, a leak the runner
//! may not signal, a killed lifeline guard, a second interrupt within the
//! grace, a frozen suite. Everything is verified from outside (/proc,
//! pidfds, the cgroup tree), and nothing may survive any case.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn manifest() -> String {
    fixture_manifest_of("sabotage").display().to_string()
}

/// `cargo-reap test -p sabotage-escape --test NAME` with `extra` flags.
fn run_suite(name: &str, extra: &[&str]) -> Run {
    run_suite_under(&[], name, extra)
}

/// [`run_suite`] through `wrapper` (e.g. `env VAR=VALUE`).
fn run_suite_under(wrapper: &[&str], name: &str, extra: &[&str]) -> Run {
    let m = manifest();
    let mut args = vec![
        "test",
        "--manifest-path",
        &m,
        "-p",
        "sabotage-escape",
        "--test",
        name,
    ];
    args.extend_from_slice(extra);
    reap(wrapper, &args)
}

fn leaks_of(run: &Run) -> Vec<Value> {
    run.report()["suites"][0]["leaks"]
        .as_array()
        .unwrap()
        .clone()
}

/// Tests that look for strays by the same marker (`sleep 3851`, `sleep
/// 3852`) from their own start time would count each other's live processes
/// as leftovers: they hold this lock for their whole run.
fn same_marker() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn is_sleep(s: &Stray, secs: &str) -> bool {
    s.cmdline.len() == 2 && s.cmdline[0].ends_with("sleep") && s.cmdline[1] == secs
}

/// A root suite moves its child into the root cgroup of the cgroup2 mount;
/// the child double-forks, calls setsid and clears its environment. The
/// run fails with the leak in the table (exit 103) and nothing survives, in
/// both modes.
#[test]
fn a_process_that_left_the_cgroup_leaf_is_a_leak() {
    let _marker = same_marker();
    require_root();
    for isolation in ["cgroup", "process-group"] {
        let since = reap_probe::boottime_ticks();
        let run = run_suite("leave_cgroup", &["--isolation", isolation]);
        assert_no_strays(&format!("{isolation}: leave_cgroup"), since, |s, _| {
            is_sleep(s, "3851")
        });
        assert_eq!(run.code, 103, "{isolation}: {}", run.stderr);
        let leaks = leaks_of(&run);
        assert_eq!(leaks.len(), 1, "{isolation}: {leaks:#?}");
        assert_eq!(leaks[0]["cmdline"][1], "3851", "{isolation}");
        assert_eq!(leaks[0]["reaped"], true, "{isolation}");
        assert!(
            run.stderr.contains("LEAKED PROCESSES") && run.stderr.contains("sleep 3851"),
            "{isolation}: {}",
            run.stderr
        );
    }
}

/// The same escape while another suite runs beside it (`--jobs 2`): the
/// orphan may belong to either, so it is reported unattributed (or claimed
/// by leave_cgroup when it ran alone at that moment); the run fails with 103
/// either way and nothing survives.
#[test]
fn a_process_that_left_the_leaf_beside_another_suite_still_fails_the_run() {
    let _marker = same_marker();
    require_root();
    let since = reap_probe::boottime_ticks();
    let run = run_suite(
        "leave_cgroup",
        &[
            "--test",
            "term_ignored",
            "--timeout",
            "3s",
            "--hang-retries",
            "0",
            "--jobs",
            "2",
        ],
    );
    assert_no_strays("leave_cgroup beside term_ignored", since, |s, _| {
        is_sleep(s, "3851")
    });
    // term_ignored hangs (102 ranks above 103); the leak is still counted.
    assert_eq!(run.code, 102, "{}", run.stderr);
    assert_eq!(
        run.report()["summary"]["leaked_processes"],
        1,
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("sleep 3851"), "{}", run.stderr);
}

/// A suite kills the lifeline guard (the one its guardian forked): the
/// runner notices (EPIPE on its pipe), says how it ended (its zombie's
/// status: it is the guardian's to reap), starts a new guard from its
/// executable, records a problem on the suite, and the run finishes with
/// the full report.
#[test]
fn a_suite_that_kills_the_lifeline_guard_gets_a_problem_not_an_abort() {
    require_root();
    for isolation in ["cgroup", "process-group"] {
        let run = run_suite("kills_guard", &["--isolation", isolation]);
        assert_eq!(run.code, 0, "{isolation}: {}", run.stderr);
        let suite = &run.report()["suites"][0];
        assert_eq!(suite["status"], "pass", "{isolation}: {suite:#}");
        let problems = suite["problems"].as_array().expect("problems");
        assert!(
            problems.iter().any(|p| {
                let p = p.as_str().unwrap();
                p.contains("lifeline guard")
                    && p.contains("was killed by signal 9")
                    && p.contains("a new guard")
            }),
            "{isolation}: {problems:#?}"
        );
        assert!(
            run.stderr.contains("1 passed"),
            "{isolation}: the summary line: {}",
            run.stderr
        );
    }
}

/// A suite that froze its own cgroup hangs: its hang forensics say
/// "frozen", and it is thawed before the SIGTERM, so the kill does not wait
/// out a long grace.
#[test]
fn a_frozen_suite_is_reported_frozen_and_killed() {
    require_root();
    let started = Instant::now();
    let run = run_suite(
        "frozen",
        &[
            "--isolation",
            "cgroup",
            "--timeout",
            "3s",
            "--grace",
            "60s",
            "--hang-retries",
            "0",
        ],
    );
    let took = started.elapsed();
    assert_eq!(run.code, 102, "{}", run.stderr);
    let attempt = &run.report()["suites"][0]["attempts"][0];
    let tree: Vec<&str> = attempt["tree"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        tree.iter().any(|l| l.contains("frozen")),
        "hang forensics: {tree:#?}"
    );
    assert!(
        attempt["hang_processes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "frozen")),
        "{attempt:#}"
    );
    eprintln!("frozen suite: run took {took:?} (grace 60s)");
    assert!(
        took < Duration::from_secs(40),
        "the frozen suite was thawed and took its SIGTERM, not the 60 s grace: {took:?}"
    );
}

/// A second SIGINT while the runner waits out the grace of a suite that
/// ignores SIGTERM ends the wait at once (both modes).
#[test]
fn a_second_sigint_skips_the_rest_of_the_grace() {
    require_root();
    for isolation in ["cgroup", "process-group"] {
        let scratch = Scratch::new("second-int");
        let json = scratch.0.join("r.json");
        let mut child = Command::new(REAP)
            .args(["test", "--manifest-path", &manifest()])
            .args(["-p", "sabotage-escape", "--test", "term_ignored"])
            .args(["--isolation", isolation, "--no-capture"])
            .args(["--timeout", "600s", "--grace", "60s", "--json"])
            .arg(&json)
            .env_remove("CARGO_REAP_SUITE")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let mut wait_for = |needle: &str, seen: &mut Vec<String>| {
            for line in lines.by_ref() {
                let line = line.unwrap();
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return;
                }
            }
            panic!("{isolation}: no line with {needle:?}: {seen:#?}");
        };
        wait_for("term_ignored is running", &mut seen);
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
        // The runner sent SIGTERM: it now waits out the grace.
        wait_for("got SIGTERM", &mut seen);
        let second = Instant::now();
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
        let status = child.wait().unwrap();
        let took = second.elapsed();
        eprintln!("{isolation}: ended {took:?} after the second SIGINT (grace 60s)");
        assert_eq!(status.code(), Some(130), "{isolation}: {seen:#?}");
        assert!(
            took < Duration::from_secs(20),
            "{isolation}: the second SIGINT skipped the grace: {took:?}"
        );
        let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(report["interrupted"], 2);
        assert_nothing_survived(report["run_id"].as_str().unwrap());
    }
}

/// The executables cargo reports for `args` (a `--message-format=json`
/// build) whose profile is (`test`) or is not (`!test`) a test profile.
fn built_executables(args: &[&str], test: bool) -> Vec<PathBuf> {
    let out = Command::new(env!("CARGO"))
        .args(args)
        .args(["--manifest-path", &manifest(), "--message-format=json"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo {args:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["profile"]["test"] == test)
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .collect()
}

/// A non-root run whose suite leaves a process that runs as root (a
/// setuid-root helper that, like sudo, makes every uid root): the leak is in
/// the table marked "could not be killed: EPERM", the run fails with 103 and
/// writes its full report; the test then kills the process itself.
#[test]
fn a_leak_the_runner_may_not_signal_is_reported_not_fatal() {
    use std::os::unix::fs::PermissionsExt;
    require_root();
    const NOBODY: u32 = 65534;
    let helper = built_executables(
        &["build", "-p", "sabotage-escape", "--bin", "suid-sleep"],
        false,
    );
    let suite = built_executables(
        &[
            "test",
            "--no-run",
            "-p",
            "sabotage-escape",
            "--test",
            "root_child",
        ],
        true,
    );
    assert_eq!((helper.len(), suite.len()), (1, 1), "{helper:?} {suite:?}");
    let scratch = Scratch::new("eperm");
    let suid = scratch.0.join("suid-sleep");
    std::fs::copy(&helper[0], &suid).unwrap();
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let home = scratch.0.join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(NOBODY), Some(NOBODY)).unwrap();
    let json = home.join("r.json");
    let since = reap_probe::boottime_ticks();
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(REAP)
        .args(["run", "--isolation", "process-group", "--json"])
        .arg(&json)
        .arg("--")
        .arg(&suite[0])
        .current_dir(&home)
        .env("TMPDIR", &home)
        .env("HOME", &home)
        .env("SABOTAGE_SUID_HELPER", &suid)
        .env_remove("CARGO_PKG_NAME")
        .env_remove("CARGO_REAP_SUITE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // Whatever the verdict, the root process is ours to end.
    let root_sleeps = strays_since(since, |s, _| is_sleep(s, "3853"));
    kill_strays(&root_sleeps);
    assert_eq!(root_sleeps.len(), 1, "the helper ran: {stderr}");
    assert_eq!(out.status.code(), Some(103), "{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap())
        .unwrap_or_else(|e| panic!("a full JSON report ({e}): {stderr}"));
    assert_eq!(report["exit_code"], 103);
    let leaks = report["suites"][0]["leaks"].as_array().unwrap();
    let leak = leaks
        .iter()
        .find(|l| l["cmdline"][1] == "3853")
        .unwrap_or_else(|| panic!("the root sleep is a leak: {leaks:#?}"));
    assert_eq!(leak["reaped"], false, "{leak:#}");
    assert_eq!(leak["kill_error"], "could not be killed: EPERM", "{leak:#}");
    assert_eq!(leak["pid"], root_sleeps[0].pid);
    assert!(
        stderr.contains("could not be killed: EPERM"),
        "the table marks it: {stderr}"
    );
    assert!(
        report["suites"][0]["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains("EPERM")),
        "{report:#}"
    );
    assert_nothing_survived(report["run_id"].as_str().unwrap());
}

/// Wait at most `limit` for process `pid` (started at `start_time`) to end,
/// on its pidfd; true when it is gone.
fn gone_within(pid: i32, start_time: u64, limit: Duration) -> bool {
    pidfd_of(pid, start_time).is_none_or(|fd| exits_within(&fd, limit))
}

/// An untagged setsid daemon of a suite (process-group mode) survives no
/// SIGKILL of the runner: checked from outside on the daemon's pidfd.
#[test]
fn an_untagged_setsid_daemon_dies_with_a_sigkilled_runner() {
    let _marker = same_marker();
    require_root();
    for trial in 0..3 {
        let since = reap_probe::boottime_ticks();
        let mut child = Command::new(REAP)
            .args(["test", "--manifest-path", &manifest()])
            .args(["-p", "sabotage-escape", "--test", "setsid_daemon"])
            .args(["--isolation", "process-group", "--no-capture"])
            .args(["--timeout", "600s"])
            .env_remove("CARGO_REAP_SUITE")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut run_id = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("cargo-reap: run ") {
                run_id = Some(rest.split(':').next().unwrap().to_string());
            }
            if line.contains("daemon started") {
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        let run_id = run_id.expect("the run announced");
        let daemons = strays_since(since, |s, _| is_sleep(s, "3852"));
        assert_eq!(daemons.len(), 1, "trial {trial}: {daemons:#?}");
        let d = &daemons[0];
        let env = std::fs::read(format!("/proc/{}/environ", d.pid)).unwrap();
        assert!(env.is_empty(), "the daemon is untagged");
        kill_runner(&run_id);
        let gone = gone_within(d.pid, d.start_time, Duration::from_secs(5));
        // Whatever happened, end everything before asserting.
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
            rustix::process::Signal::KILL,
        )
        .ok();
        child.wait().unwrap();
        kill_strays(&daemons);
        assert!(
            gone,
            "trial {trial}: the untagged daemon outlived the SIGKILLed runner"
        );
        assert_no_strays(&format!("trial {trial}"), since, |s, _| is_sleep(s, "3852"));
    }
}

/// A throwaway workspace whose build script blocks until its parent (cargo)
/// is gone.
fn blocking_build(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    std::fs::write(dir.join("tests/t.rs"), "#[test]\nfn t() {}\n").unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"blockbuild\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(dir.join("build.rs"), BLOCKING_BUILD_RS).unwrap();
    dir.join("Cargo.toml").display().to_string()
}

/// Live processes whose executable lies under `dir` or that are cargo or
/// rustc working on `dir`'s package: (pid, start time).
fn build_processes(dir: &Path) -> Vec<(i32, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let under = std::fs::read_link(e.path().join("exe")).is_ok_and(|x| x.starts_with(dir));
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let names_it = String::from_utf8_lossy(&cmd).contains(&*dir.to_string_lossy());
        if under || names_it {
            if let Ok(t) = reap_probe::start_time(pid) {
                out.push((pid, t));
            }
        }
    }
    out
}

/// SIGKILL of the runner while a build script blocks: cargo, rustc and the
/// build script are gone soon after (the lifeline covers the build).
#[test]
fn sigkill_of_the_runner_during_the_build_stops_the_build() {
    require_root();
    let scratch = Scratch::new("buildkill");
    let manifest = blocking_build(&scratch.0);
    let target = scratch.0.join("target");
    let mut child = Command::new(REAP)
        .args(["test", "--manifest-path", &manifest, "--target-dir"])
        .arg(&target)
        .env_remove("CARGO_REAP_SUITE")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let building = line.contains("Compiling blockbuild");
        seen.push(line);
        if building {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    // The build script runs once it is under the target directory.
    wait_until("the build script to run", Duration::from_secs(120), || {
        build_processes(&scratch.0).iter().any(|(pid, _)| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|x| x.starts_with(&target))
        })
    });
    let before = build_processes(&scratch.0);
    assert!(
        before.len() >= 2,
        "cargo and the build script: {before:?} {seen:?}"
    );
    // The runner: the guardian's child that is not the lifeline guard.
    let runner = runner_of(child.id() as i32);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(runner).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let mut left = Vec::new();
    for (pid, start) in &before {
        if !gone_within(*pid, *start, Duration::from_secs(5)) {
            left.push(*pid);
        }
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .ok();
    child.wait().unwrap();
    for pid in &left {
        if let Some(p) = rustix::process::Pid::from_raw(*pid) {
            rustix::process::kill_process(p, rustix::process::Signal::KILL).ok();
        }
    }
    assert!(
        left.is_empty(),
        "build processes outlived the SIGKILLed runner: {left:?} of {before:?}"
    );
}

/// SIGKILL of the cargo-reap a user started (the guardian above the runner):
/// the runner sees it, stops at once (no grace), reaps everything and writes
/// its partial report (interrupted by signal 9).
#[test]
fn sigkill_of_the_guardian_stops_the_run_at_once() {
    require_root();
    for isolation in ["cgroup", "process-group"] {
        let scratch = Scratch::new("guardian");
        let json = scratch.0.join("r.json");
        let (mut child, run_id) = start_hanging_run(isolation, &json);
        let runner = runner_pid(&run_id);
        let start = reap_probe::start_time(runner).unwrap();
        assert_ne!(
            runner,
            child.id() as i32,
            "the runner is a child of the guardian"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            gone_within(runner, start, Duration::from_secs(10)),
            "{isolation}: the runner ends after its guardian's SIGKILL"
        );
        let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(report["interrupted"], 9, "{isolation}");
        assert_eq!(report["exit_code"], 137, "{isolation}");
        assert_nothing_survived(&run_id);
    }
}

/// SIGKILL of the runner at many moments of a run whose suite leaks an
/// untagged setsid daemon (process-group mode): from the build's end
/// through the suite's start, the daemon's start and its hang. After the
/// guardian exits, nothing of the run is left.
#[test]
fn sigkill_of_the_runner_at_many_moments_leaves_nothing() {
    let _marker = same_marker();
    require_root();
    for (trial, delay_ms) in [0u64, 5, 10, 20, 35, 50, 80, 120, 200, 300, 450, 700]
        .into_iter()
        .enumerate()
    {
        let since = reap_probe::boottime_ticks();
        let mut child = Command::new(REAP)
            .args(["test", "--manifest-path", &manifest()])
            .args(["-p", "sabotage-escape", "--test", "setsid_daemon"])
            .args(["--isolation", "process-group", "--timeout", "600s"])
            .env_remove("CARGO_REAP_SUITE")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let run_id = loop {
            let line = lines.next().expect("the run announced").unwrap();
            if let Some(rest) = line.strip_prefix("cargo-reap: run ") {
                break rest.split(':').next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        // A deliberate moment of the run, not a wait for a condition.
        std::thread::sleep(Duration::from_millis(delay_ms));
        kill_runner(&run_id);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(137), "trial {trial} ({delay_ms} ms)");
        assert_no_strays(&format!("trial {trial} ({delay_ms} ms)"), since, |s, _| {
            is_sleep(s, "3852")
        });
        assert!(
            tagged(&run_id).is_empty(),
            "trial {trial}: tagged processes left"
        );
    }
}

/// A suite hands its output pipe to a process outside the run (started by
/// this test, untagged, not in the run's tree): after the suite is gone the
/// pipe is still held, and its holder is reaped and reported as the suite's
/// leak, not a warning (both modes).
#[test]
fn a_stranger_holding_the_output_pipe_is_a_leak() {
    require_root();
    let catcher = built_executables(
        &["build", "-p", "sabotage-escape", "--bin", "fd-catcher"],
        false,
    );
    assert_eq!(catcher.len(), 1, "{catcher:?}");
    for isolation in ["cgroup", "process-group"] {
        let scratch = Scratch::new("stranger");
        let socket = scratch.0.join("catcher.sock");
        let mut stranger = Command::new(&catcher[0])
            .arg(&socket)
            .env_remove("CARGO_REAP_SUITE")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(stranger.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready, "ready\n");
        let env = format!("SABOTAGE_FD_CATCHER={}", socket.display());
        let run = run_suite_under(
            &["env", &env],
            "pipe_to_stranger",
            &["--isolation", isolation],
        );
        // Ours to end whatever the verdict (a no-op once the runner did).
        if let Err(e) = stranger.kill() {
            eprintln!("kill the catcher: {e}");
        }
        let status = stranger.wait().unwrap();
        assert_eq!(run.code, 103, "{isolation}: {}", run.stderr);
        let leaks = leaks_of(&run);
        assert_eq!(leaks.len(), 1, "{isolation}: {leaks:#?}");
        assert_eq!(leaks[0]["cmdline"][1], "3854", "{isolation}");
        assert_eq!(leaks[0]["pid"], stranger.id(), "{isolation}");
        assert!(
            !run.stderr.contains("held open by a process outside"),
            "{isolation}: a leak, not a warning: {}",
            run.stderr
        );
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{isolation}: the runner killed it"
        );
    }
}
