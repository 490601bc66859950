//! End-to-end tests: run the real `cargo-reap` binary on the fixture workspace
//! (`fixtures/leaky`), compare its JSON report with the expectations written
//! once in `fixtures/leaky/expected.toml`, and check from outside — by scanning
//! /proc for the run's tag and the cgroup tree for its leaves — that nothing
//! the run started survived.
//!
//! They need root (cgroup writes, mount namespaces), as CI has.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

#[test]
fn every_fixture_suite_in_cgroup_mode() {
    require_root();
    // Suites in parallel: attribution must match the serial run's (same expectations).
    full_fixture_run("cgroup", "2");
}

#[test]
fn every_fixture_suite_in_process_group_mode() {
    require_root();
    full_fixture_run("process-group", "1");
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

/// Containers: cargo-reap in its own pid namespace whose session leader
/// lives outside it, so getsid() and /proc report session 0 (a CI container
/// started from a host shell). Both modes work and findings stay exact.
#[test]
fn pid_namespace_with_session_leader_outside() {
    require_root();
    let base = manifest_args();
    for isolation in ["cgroup", "process-group"] {
        let run = reap(
            &[
                "unshare",
                "--pid",
                "--fork",
                "--mount-proc",
                "sh",
                "-c",
                "\"$0\" \"$@\"",
            ],
            &args(
                &base,
                &[
                    "test",
                    "--isolation",
                    isolation,
                    "-p",
                    "leaky",
                    "--test",
                    "daemon",
                    "--test",
                    "own_pgroup",
                    "--test",
                    "hangs_once",
                ],
            ),
        );
        assert_eq!(run.report()["isolation"], isolation, "{}", run.stderr);
        let expected = expected_for(&["leaky::daemon", "leaky::own_pgroup", "leaky::hangs_once"]);
        check_against_expected(&run, &expected);
        assert_eq!(run.code, expected_exit(&expected), "{}", run.stderr);
    }
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
        "doctests are a suite too",
        "--doc",
        "--isolation",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}: {help}");
    }
}

/// `cargo install cargo-reap` gives the triage CLI too: `cargo reap probe PID`
/// runs reap-probe's command line (same flags, same JSON, same exit codes).
#[test]
fn probe_subcommand_is_reap_probe() {
    let mut sleeper = Command::new("sleep").arg("3863").spawn().unwrap();
    let pid = sleeper.id().to_string();
    let out = Command::new(REAP)
        .args(["reap", "probe", &pid, "--json"])
        .output();
    let killed = sleeper.kill();
    let waited = sleeper.wait();
    let out = out.expect("run cargo-reap reap probe");
    killed.expect("kill the sleeper");
    waited.expect("wait for the sleeper");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let json: Value = serde_json::from_str(&stdout).expect("probe --json prints JSON");
    assert_eq!(
        json["process"]["pid"].as_u64(),
        Some(u64::from(sleeper.id()))
    );
    assert_eq!(
        json["process"]["cmdline"],
        serde_json::json!(["sleep", "3863"])
    );
    // reap-probe's own usage error and help, not clap's.
    let usage = Command::new(REAP).args(["reap", "probe"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("usage: reap-probe PID"));
    let help = Command::new(REAP)
        .args(["reap", "probe", "--help"])
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--tree"));
}

/// Built from a checkout, `--version` names the commit (cargo-reap/build.rs);
/// from a packaged crate it is the version alone (the package verify in .ci/run
/// builds that one).
#[test]
fn version_names_the_commit_of_the_checkout() {
    let out = Command::new(REAP)
        .args(["reap", "--version"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    // A tree without git history (an unpacked archive), or a git that will
    // not answer (no git, a checkout of another owner: "dubious ownership"),
    // gets the version alone, as build.rs does.
    let git = Command::new("git")
        .arg("-C")
        .arg(repo())
        .args(["rev-parse", "--short=12", "HEAD"])
        .output();
    let expected = match git {
        Ok(g) if g.status.success() && repo().join(".git").exists() => format!(
            "cargo-reap {} (git {})",
            env!("CARGO_PKG_VERSION"),
            String::from_utf8_lossy(&g.stdout).trim()
        ),
        _ => format!("cargo-reap {}", env!("CARGO_PKG_VERSION")),
    };
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
}

/// The lifeline guard and the cgroup probe are hidden subcommands of the
/// binary, not environment switches: the variables that once chose them,
/// inherited by a user's `cargo reap` (from a suite's environment, say),
/// leave it the CLI; `--help` does not list them; and a hand-typed
/// `cargo reap __guard` refuses without the runner's pipe on stdin, or when
/// the pipe does not start with the run's tag, and kills nothing.
#[test]
fn internal_programs_are_hidden_subcommands_not_environment_switches() {
    use std::io::Write;
    use std::process::Stdio;
    for var in ["CARGO_REAP_INTERNAL_GUARD", "CARGO_REAP_INTERNAL_PROBE"] {
        let out = Command::new(REAP)
            .args(["reap", "--version"])
            .env(var, "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "with {var}: {out:?}");
        assert!(stdout.starts_with("cargo-reap "), "with {var}: {stdout:?}");
    }
    let help = Command::new(REAP)
        .args(["reap", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("clean"), "{help}");
    assert!(
        !help.contains("__"),
        "internal subcommands in --help: {help}"
    );

    // No pipe on stdin.
    let out = Command::new(REAP)
        .args(["reap", "__guard"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is internal"), "{stderr}");

    // A pipe that names a live process group without the run's tag first:
    // refused, and the group lives on.
    let mut sleeper = Command::new("sleep");
    std::os::unix::process::CommandExt::process_group(&mut sleeper, 0);
    let mut sleeper = sleeper.arg("3871").spawn().unwrap();
    let mut guard = Command::new(REAP)
        .arg("__guard")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = guard.stdin.take().unwrap();
    let wrote = writeln!(pipe, "pgid {}", sleeper.id());
    drop(pipe);
    let out = guard.wait_with_output().unwrap();
    // Ended by our SIGTERM, not by a SIGKILL of the guard before it.
    let term = rustix::process::kill_process(
        rustix::process::Pid::from_child(&sleeper),
        rustix::process::Signal::TERM,
    );
    let status = sleeper.wait().unwrap();
    term.unwrap();
    wrote.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is internal"), "{stderr}");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15),
        "a refused guard killed process group {}",
        sleeper.id()
    );
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
            // The runner, not the guardian above it (whose death the runner
            // handles itself, alive).
            kill_runner(&run_id);
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
        // Where the interrupted suite was: its threads' stacks, the test
        // binary first, as after a hang-kill.
        let stacks = attempt["stacks"]
            .as_array()
            .unwrap_or_else(|| panic!("{sig:?}: no stacks of the interrupted suite: {attempt:#}"));
        assert!(
            stacks[0]["command"]
                .as_str()
                .is_some_and(|c| c.starts_with("always_hangs")),
            "{sig:?}: the test binary first: {:#}",
            stacks[0]
        );
        assert!(
            stacks[0]["threads"].as_array().is_some_and(|t| t
                .iter()
                .any(|t| t["frames"].as_array().is_some_and(|f| !f.is_empty()))),
            "{sig:?}: a thread with frames: {:#}",
            stacks[0]
        );
        assert_nothing_survived(&run_id);
    }
}

/// SIGTERM to cargo-reap alone (a CI timeout's `kill PID`) while cargo
/// builds: passed on to cargo, so the build stops and the run ends at once
/// with exit 143 and no suite run. The build script blocks the build until
/// cargo, its parent, is gone.
#[test]
fn sigterm_during_the_build_reaches_cargo() {
    use std::io::BufRead;
    require_root();
    let scratch = Scratch::new("buildterm");
    let manifest = scratch_workspace(&scratch, "", &[("t", "#[test]\nfn t() {}\n")]);
    std::fs::write(scratch.0.join("build.rs"), BLOCKING_BUILD_RS).unwrap();
    let target = scratch.0.join("target");
    let mut child = Command::new(REAP)
        .args(["test", "--manifest-path", &manifest, "--target-dir"])
        .arg(&target)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let building = line.contains("Compiling cfgdemo");
        seen.push(line);
        if building {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("Compiling cfgdemo")),
        "cargo starts building: {seen:?}"
    );
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    let stderr = rest.join("\n");
    assert_eq!(status.code(), Some(143), "{seen:?}\n{stderr}");
    assert!(stderr.contains("SIGTERM: stopping"), "{stderr}");
    assert!(!stderr.contains("PASS"), "no suite ran: {stderr}");
    // The build script notices cargo is gone within its 20 ms beat.
    wait_until(
        "the build script to end",
        std::time::Duration::from_secs(30),
        || running_under(&target).is_empty(),
    );
}

/// Live processes whose executable lies under `dir`.
fn running_under(dir: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap() {
        let e = e.unwrap();
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // Unreadable: gone meanwhile, or a kernel thread.
        if let Ok(exe) = std::fs::read_link(e.path().join("exe")) {
            if exe.starts_with(dir) {
                out.push(pid);
            }
        }
    }
    out
}

#[test]
fn bad_input_gets_a_clear_message_and_exit_2() {
    let manifest = fixture_manifest().display().to_string();
    // (arguments, environment, what the message must say)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                "test",
                "--manifest-path",
                &manifest,
                "-p",
                "no-such-package",
            ],
            vec![],
            "did not match any packages",
        ),
        (
            vec!["test", "--manifest-path", "/nonexistent/Cargo.toml"],
            vec![],
            "does not exist",
        ),
        (
            vec!["test", "--manifest-path", &manifest],
            vec![("CARGO", "/nonexistent/cargo")],
            "is cargo installed",
        ),
        (
            vec![
                "test",
                "--manifest-path",
                &manifest,
                "--json",
                "/nonexistent/dir/r.json",
            ],
            vec![],
            "cannot write the report",
        ),
        (vec!["test", "--grace", "soon"], vec![], "not a duration"),
        (vec!["test", "--isolation", "jail"], vec![], "invalid value"),
    ];
    for (argv, env, needle) in cases {
        let out = Command::new(REAP).args(&argv).envs(env).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{argv:?}: wanted {needle:?} in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{argv:?}: {stderr}");
    }
}

/// `--loop N`: one line per trial, a per-suite rate table whose leak counts
/// match the fixtures' known rates, the headline, every trial in the JSON.
#[test]
fn loop_mode_counts_leaky_trials_at_the_fixtures_rates() {
    require_root();
    let trials = 7u32;
    let n = trials.to_string();
    let base = manifest_args();
    let selection = ["leaky::sometimes", "leaky::clean"];
    let run = reap(
        &[],
        &args(
            &base,
            &[
                "test",
                "-p",
                "leaky",
                "--test",
                "sometimes",
                "--test",
                "clean",
                "--loop",
                &n,
            ],
        ),
    );
    let r = run.report();
    assert_eq!(r["trials"].as_array().unwrap().len(), trials as usize);
    let rates = r["loop_summary"]["suites"].as_array().unwrap();
    let mut leak_free = trials;
    for e in expected_for(&selection) {
        // Trials 1, k+1, 2k+1, ... leak (every trial without leak_every_nth_trial).
        let every = e.leak_every_nth_trial.unwrap_or(1);
        let leaky_trials = if e.leaks == 0 {
            0
        } else {
            trials.div_ceil(every)
        };
        if leaky_trials > 0 {
            leak_free = trials - leaky_trials;
        }
        let s = rates.iter().find(|s| s["id"] == e.id.as_str()).unwrap();
        assert_eq!(s["trials"], trials, "{}", e.id);
        assert_eq!(s["trials_with_leaks"], leaky_trials, "{}", e.id);
        assert_eq!(s["max_survivors"], e.leaks as u64, "{}", e.id);
        assert_eq!(s["pass"], trials, "{}", e.id);
    }
    assert_eq!(r["loop_summary"]["leak_free_trials"], leak_free);
    assert!(
        run.stderr
            .contains(&format!("leak-free trials: {leak_free}/{trials}")),
        "{}",
        run.stderr
    );
    for k in 1..=trials {
        assert!(
            run.stderr.contains(&format!("trial {k}/{trials}: ")),
            "{}",
            run.stderr
        );
    }
    assert_eq!(run.code, 103, "leaks were the only problem");
    // Each trial's suites saw their trial number.
    for (i, t) in r["trials"].as_array().unwrap().iter().enumerate() {
        assert_eq!(t["number"], i as u64 + 1);
    }
}

#[test]
fn until_leak_stops_at_the_first_leaking_trial_and_keeps_its_forensics() {
    require_root();
    let base = manifest_args();
    let run = reap(
        &[],
        &args(
            &base,
            &[
                "test",
                "-p",
                "leaky",
                "--test",
                "daemon",
                "--loop",
                "5",
                "--until-leak",
            ],
        ),
    );
    let r = run.report();
    assert_eq!(r["trials"].as_array().unwrap().len(), 1, "{}", run.stderr);
    let leak = &r["suites"][0]["leaks"][0];
    assert_eq!(leak["test"], "double_forked_daemon");
    assert!(leak["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "escaped-session"));
    assert_eq!(run.code, 103);
}

/// `--junit PATH`: well-formed XML, one testsuite per suite, leaks and hangs
/// failing (or flaky on) the tests they belong to, per-test results from
/// libtest (tests/junit.rs checks the rest against the JUnit XSD).
#[test]
fn junit_report_shows_leaks_and_hangs_as_failures() {
    require_root();
    let scratch = Scratch::new("junit");
    let xml_path = scratch.0.join("junit.xml");
    let xml_arg = xml_path.display().to_string();
    let base = manifest_args();
    let run = reap(
        &[],
        &args(
            &base,
            &[
                "test",
                "-p",
                "leaky",
                "--test",
                "daemon",
                "--test",
                "failing",
                "--test",
                "hangs_once",
                "--test",
                "always_hangs",
                "--junit",
                &xml_arg,
            ],
        ),
    );
    // Reruns and flaky runs (hangs_once, always_hangs) too.
    validate_junit(&xml_path);
    let xml = std::fs::read_to_string(&xml_path).unwrap();
    // Well-formed, and collect (element, attributes) of interest.
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut suites: Vec<String> = Vec::new();
    let mut cases: Vec<(String, String)> = Vec::new(); // (suite, case)
    let mut failures: Vec<(String, String)> = Vec::new(); // (case, message)
    let mut flaky: Vec<String> = Vec::new();
    let mut current_suite = String::new();
    let mut current_case = String::new();
    loop {
        use quick_xml::events::Event;
        let ev = reader.read_event().expect("well-formed JUnit XML");
        let attr = |e: &quick_xml::events::BytesStart, k: &str| {
            e.attributes()
                .flatten()
                .find(|a| a.key.as_ref() == k.as_bytes())
                .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                .unwrap_or_default()
        };
        match ev {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testsuite" => {
                    current_suite = attr(&e, "name");
                    suites.push(current_suite.clone());
                }
                b"testcase" => {
                    current_case = attr(&e, "name");
                    cases.push((current_suite.clone(), current_case.clone()));
                }
                b"failure" => failures.push((
                    format!("{current_suite}/{current_case}"),
                    attr(&e, "message"),
                )),
                b"flakyFailure" | b"rerunFailure" => {
                    flaky.push(format!("{current_suite}/{current_case}"))
                }
                _ => {}
            },
            _ => {}
        }
    }
    suites.sort();
    assert_eq!(
        suites,
        [
            "leaky::always_hangs",
            "leaky::daemon",
            "leaky::failing",
            "leaky::hangs_once"
        ],
        "one testsuite per suite"
    );
    let failed = |case: &str| failures.iter().any(|(c, _)| c == case);
    // The leak fails the test it is attributed to; no synthetic
    // `cargo-reap::leaks` case (passing or failing) for attributed leaks.
    assert!(failed("leaky::daemon/double_forked_daemon"), "{failures:?}");
    assert!(
        !cases.iter().any(|(_, c)| c == "cargo-reap::leaks"),
        "{cases:?}"
    );
    // The hung test is the failing case (in flight at the kill).
    let hung: Vec<&(String, String)> = failures
        .iter()
        .filter(|(c, _)| c.starts_with("leaky::always_hangs/"))
        .collect();
    assert!(
        !hung.is_empty() && hung.iter().all(|(c, _)| !c.ends_with("cargo-reap::hang")),
        "{failures:?}"
    );
    assert!(failed("leaky::failing/fails_an_assert"), "{failures:?}");
    assert!(!failed("leaky::failing/passes"));
    // A hang then a pass: the test itself carries the flaky run.
    assert!(
        flaky
            .iter()
            .any(|c| c.starts_with("leaky::hangs_once/") && !c.ends_with("cargo-reap::hang")),
        "{flaky:?}"
    );
    assert!(
        !failures
            .iter()
            .any(|(c, _)| c.starts_with("leaky::hangs_once/")),
        "a flaky hang is not a failure"
    );
    assert!(cases.contains(&("leaky::daemon".into(), "double_forked_daemon".into())));
    assert_eq!(run.code, 100);
}

/// `cargo reap run --` as a cargo target runner: plain `cargo test` gets the
/// leak gate (the test binary "fails" with 103, and the table is printed).
#[test]
fn run_works_as_a_cargo_target_runner_for_plain_cargo_test() {
    require_root();
    let marker = format!("runner-{}", std::process::id());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let runner =
        format!("target.'cfg(all())'.runner = ['{REAP}', 'run', '--timeout', '20s', '--']");
    let out = Command::new(cargo)
        .args(["test", "--manifest-path"])
        .arg(fixture_manifest())
        .args(CLEAN_AND_DAEMON)
        .args(["--config", &runner])
        .env("REAP_FIXTURE_MARK", &marker)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "cargo test fails: {stderr}");
    assert!(stderr.contains("LEAKED PROCESSES"), "{stderr}");
    assert!(
        stderr.contains("leaky::daemon"),
        "the suite id from cargo's environment: {stderr}"
    );
    assert!(
        stderr.contains("double_forked_daemon"),
        "attributed to its test: {stderr}"
    );
    assert!(stderr.contains("exit status: 103"), "{stderr}");
    assert!(
        !stderr.contains("leaky::clean"),
        "a clean suite stays quiet: {stderr}"
    );
    assert!(
        marked(&marker).is_empty(),
        "nothing of the fixture survived"
    );
}

/// `cargo reap run -- CMD` for any command: leaks, hangs and failures get the
/// same exit codes and reports as suites.
#[test]
fn run_wraps_any_command_with_the_same_gate() {
    require_root();
    let scratch = Scratch::new("run");
    let json = scratch.0.join("r.json").display().to_string();
    // The shell exits only once its child runs `sleep` (comm changes at
    // exec; `read` is a builtin): otherwise the report could catch the
    // child between fork and exec, still `sh`.
    let leaky = reap(
        &[],
        &[
            "run",
            "--",
            "sh",
            "-c",
            "sleep 3790 & p=$!; until read c </proc/$p/comm && [ \"$c\" = sleep ]; do :; done",
        ],
    );
    assert_eq!(leaky.code, 103, "{}", leaky.stderr);
    let s = &leaky.report()["suites"][0];
    assert_eq!(s["id"], "run::sh");
    assert_eq!(
        s["leaks"][0]["cmdline"],
        serde_json::json!(["sleep", "3790"])
    );

    let hung = reap(
        &[],
        &[
            "run",
            "--timeout",
            "1s",
            "--grace",
            "1s",
            "--",
            "sh",
            "-c",
            "sleep 3791",
        ],
    );
    assert_eq!(hung.code, 102, "{}", hung.stderr);
    assert_eq!(hung.report()["suites"][0]["status"], "hang");

    // Nothing leaked, nothing hung: the command's own exit code passes through.
    let failed = reap(&[], &["run", "--", "sh", "-c", "exit 3"]);
    assert_eq!(failed.code, 3, "{}", failed.stderr);
    assert_eq!(failed.report()["suites"][0]["attempts"][0]["exit_code"], 3);

    let missing = Command::new(REAP)
        .args(["run", "--json", &json, "--", "no-such-program-xyz"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot run `no-such-program-xyz`"));
}

/// A suite that moves itself into a child cgroup of its leaf (as a nested
/// cargo-reap does) and leaks from there: the leak is still counted,
/// reported and killed, and the leaf is removed with its child.
#[test]
fn leaks_from_a_child_cgroup_of_the_leaf_are_counted() {
    require_root();
    let script = "mnt=$(grep ' - cgroup2 ' /proc/self/mountinfo | head -n1 | cut -d' ' -f5); \
        cg=$(sed -n 's/^0:://p' /proc/self/cgroup); \
        mkdir \"$mnt$cg/child\" && echo $$ >\"$mnt$cg/child/cgroup.procs\" || exit 9; \
        sleep 3793 & p=$!; \
        until read c </proc/$p/comm && [ \"$c\" = sleep ]; do :; done";
    let run = reap(
        &[],
        &["run", "--isolation", "cgroup", "--", "sh", "-c", script],
    );
    assert_eq!(run.code, 103, "{}", run.stderr);
    let leaks = &run.report()["suites"][0]["leaks"];
    assert_eq!(leaks.as_array().unwrap().len(), 1, "{leaks:#}");
    assert_eq!(leaks[0]["cmdline"], serde_json::json!(["sleep", "3793"]));
}

/// A throwaway workspace: one package `cfgdemo` with the given Cargo.toml
/// tail and integration tests.
fn scratch_workspace(scratch: &Scratch, toml_tail: &str, tests: &[(&str, &str)]) -> String {
    let dir = &scratch.0;
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"cfgdemo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ntest = false\ndoctest = false\n\n[workspace]\n{toml_tail}"
        ),
    )
    .unwrap();
    for (name, body) in tests {
        std::fs::write(dir.join("tests").join(format!("{name}.rs")), body).unwrap();
    }
    dir.join("Cargo.toml").display().to_string()
}

const LEAKS_3796: &str = r#"
#[test]
fn starts_the_shared_helper() {
    let c = std::process::Command::new("sleep").arg("3796").spawn().unwrap();
    std::mem::forget(c);
}
"#;
const HANGS: &str = r#"
#[test]
fn hangs() {
    loop { std::thread::park(); }
}
"#;

/// `[workspace.metadata.reap]`: limits, per-suite overrides, the allow list;
/// flags override it; bad keys are errors naming the key and the file.
#[test]
fn configuration_in_cargo_toml_with_flags_overriding_it() {
    require_root();
    let scratch = Scratch::new("config");
    let manifest = scratch_workspace(
        &scratch,
        r#"
[workspace.metadata.reap]
timeout = "30s"
grace = "1s"

[workspace.metadata.reap.suite."cfgdemo::hang"]
timeout = "1s"
hang-retries = 0

[[workspace.metadata.reap.allow]]
command = "^sleep 3796$"
reason = "a helper the suite shares on purpose"
"#,
        &[("allowed", LEAKS_3796), ("hang", HANGS)],
    );
    let run = reap(&[], &["test", "--manifest-path", &manifest]);
    let suites = run.suites();
    let allowed = suites["cfgdemo::allowed"];
    assert_eq!(
        allowed["leaks"][0]["allowed"],
        "a helper the suite shares on purpose"
    );
    assert_eq!(
        allowed["leaks"][0]["reaped"], true,
        "allowed survivors are still reaped"
    );
    assert_eq!(run.report()["summary"]["allowed_processes"], 1);
    assert_eq!(run.report()["summary"]["leaked_processes"], 0);
    let hang = suites["cfgdemo::hang"];
    assert_eq!(hang["status"], "hang");
    assert_eq!(
        hang["attempts"].as_array().unwrap().len(),
        1,
        "hang-retries = 0 from the suite table"
    );
    assert_eq!(
        run.code, 102,
        "the hang, not the allowed leak: {}",
        run.stderr
    );

    // A flag overrides the configuration.
    let run = reap(
        &[],
        &[
            "test",
            "--manifest-path",
            &manifest,
            "--hang-retries",
            "1",
            "--test",
            "hang",
        ],
    );
    assert_eq!(
        run.suites()["cfgdemo::hang"]["attempts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Unknown keys and bad values name the key and the file.
    for (tail, needle) in [
        ("[workspace.metadata.reap]\ntimout = \"3s\"\n", "timout"),
        ("[workspace.metadata.reap]\ngrace = \"soon\"\n", "`grace`"),
        (
            "[[workspace.metadata.reap.allow]]\ncommand = \"x\"\n",
            "reason",
        ),
    ] {
        let bad = Scratch::new("badconfig");
        let manifest = scratch_workspace(&bad, tail, &[("allowed", LEAKS_3796)]);
        let out = Command::new(REAP)
            .args(["test", "--manifest-path", &manifest])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "{needle}: {stderr}");
        assert!(stderr.contains(&manifest), "names the file: {stderr}");
    }
}

/// A program that makes a unix socket below its TMPDIR as Chromium does at start
/// (`$TMPDIR/org.chromium.Chromium.XXXXXX/SingletonSocket`, 45 bytes below it): the
/// suite's private TMPDIR must leave room for it in `sun_path`'s 108 bytes. (With the
/// TMPDIR named after the suite, `…/<run-id>/1.run__python3`, the bind failed with
/// "AF_UNIX path too long", and Chromium died of SIGTRAP under `cargo reap run`.)
#[test]
fn a_unix_socket_below_the_private_tmpdir_fits() {
    require_root();
    let bind = "import os, socket\n\
        d = os.path.join(os.environ['TMPDIR'], 'org.chromium.Chromium.AbCdEf')\n\
        os.mkdir(d)\n\
        s = socket.socket(socket.AF_UNIX)\n\
        s.bind(os.path.join(d, 'SingletonSocket'))\n\
        s.close()\n";
    let run = reap(&[], &["run", "--", "python3", "-c", bind]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !run.stderr.contains("TMPDIRs"),
        "no warning about the TMPDIR's length under /tmp: {}",
        run.stderr
    );
}

const LEAVES_A_TEMP_FILE: &str = r#"
#[test]
fn writes_telemetry() {
    std::fs::write(std::env::temp_dir().join("telemetry-0001.json"), b"{}").unwrap();
}
"#;

/// Each suite gets a private TMPDIR; files left there are reported and removed,
/// and fail the run only with `--fail-on tmp`.
#[test]
fn files_left_in_the_private_tmpdir_are_reported_and_removed() {
    require_root();
    let scratch = Scratch::new("tmpdir");
    let manifest = scratch_workspace(&scratch, "", &[("telemetry", LEAVES_A_TEMP_FILE)]);
    let run = reap(&[], &["test", "--manifest-path", &manifest]);
    let s = run.suites()["cfgdemo::telemetry"].clone();
    assert_eq!(s["tmp"]["files"], 1, "{s:#}");
    assert_eq!(s["tmp"]["bytes"], 2);
    assert_eq!(s["tmp"]["examples"][0], "telemetry-0001.json");
    assert!(
        run.stderr
            .contains("left 1 file(s), 2 bytes in its TMPDIR (removed)"),
        "{}",
        run.stderr
    );
    assert_eq!(run.code, 0, "reported, not failing by default");
    assert!(tmp_root_gone(&run), "the TMPDIR root is removed");
    let strict = reap(
        &[],
        &["test", "--manifest-path", &manifest, "--fail-on", "tmp"],
    );
    assert_eq!(strict.code, 103, "{}", strict.stderr);
}

/// The run's TMPDIR root (root's scratch directory under the system's temp).
fn tmp_root(run_id: &str) -> std::path::PathBuf {
    std::env::temp_dir().join("cargo-reap-0").join(run_id)
}

fn tmp_root_gone(run: &Run) -> bool {
    !tmp_root(run.report()["run_id"].as_str().unwrap()).exists()
}

/// A suite's TMPDIR is collected once the next suite has been spawned (off
/// the path from one suite to the next): each suite still gets its own
/// leftovers, the last one too, serial or parallel, in cgroup or process-group
/// mode; and a run interrupted while a later suite runs still collects and
/// reports the earlier one's.
#[test]
fn every_suites_tmpdir_is_collected_the_last_and_after_an_interrupt_too() {
    require_root();
    let scratch = Scratch::new("tmpdirs");
    let manifest = scratch_workspace(
        &scratch,
        "",
        &[
            ("a_left", LEAVES_A_TEMP_FILE),
            ("b_clean", "#[test]\nfn t() {}\n"),
            ("c_left", LEAVES_A_TEMP_FILE),
            ("d_hangs", HANGS),
            ("e_never", "#[test]\nfn t() {}\n"),
        ],
    );
    let selection = ["--test", "a_left", "--test", "b_clean", "--test", "c_left"];
    for (isolation, jobs) in [("cgroup", "1"), ("cgroup", "2"), ("process-group", "1")] {
        let args = [
            &[
                "test",
                "--manifest-path",
                &manifest,
                "--isolation",
                isolation,
                "--jobs",
                jobs,
            ][..],
            &selection[..],
        ]
        .concat();
        let run = reap(&[], &args);
        assert_eq!(run.code, 0, "{isolation} --jobs {jobs}: {}", run.stderr);
        let suites = run.suites();
        for (id, files) in [("a_left", 1), ("b_clean", 0), ("c_left", 1)] {
            let s = &suites[&format!("cfgdemo::{id}")];
            assert_eq!(
                s["tmp"]["files"].as_u64().unwrap_or(0),
                files,
                "{isolation} --jobs {jobs}: {id}: {s:#}"
            );
            let line = format!("cfgdemo::{id}");
            assert!(
                run.stderr.lines().any(|l| l.contains(&line)),
                "{isolation} --jobs {jobs}: a line for {id}: {}",
                run.stderr
            );
        }
        assert!(
            tmp_root_gone(&run),
            "{isolation} --jobs {jobs}: the TMPDIR root is removed"
        );
    }

    // Interrupted while the second suite runs: the first one's file is
    // collected and reported all the same; what was made ahead for the third
    // (its leaf, log and TMPDIR) is undone.
    let json = scratch.0.join("interrupted.json");
    let mut child = common::reap_command(
        &[],
        &[
            "test",
            "--manifest-path",
            &manifest,
            "--jobs",
            "1",
            "--test",
            "a_left",
            "--test",
            "d_hangs",
            "--test",
            "e_never",
        ],
        &json,
    )
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let run_id = common::announced_run_id(&mut child);
    common::wait_until(
        "d_hangs running",
        std::time::Duration::from_secs(60),
        || {
            common::tagged(&run_id).iter().any(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.starts_with("d_hangs"))
            })
        },
    );
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let first = &report["suites"][0];
    assert_eq!(first["id"], "cfgdemo::a_left", "{report:#}");
    assert_eq!(first["tmp"]["files"], 1, "{first:#}");
    assert_eq!(report["suites"][1]["attempts"][0]["interrupted"], true);
    assert_eq!(report["suites"].as_array().unwrap().len(), 2, "{report:#}");
    let logs = logs_beside(first);
    assert!(
        logs.iter().all(|l| !l.contains("e_never")),
        "no log of the suite that never ran: {logs:?}"
    );
    assert_nothing_survived(&run_id);
    assert!(
        !tmp_root(&run_id).exists(),
        "the TMPDIR root is removed after the interrupt"
    );
}

/// `RUST_LOG=cargo_reap::timing=debug` times each attempt's collection (its
/// binary's exit → survivors collected, output read, containment removed) to
/// the microsecond: one line per attempt, which the benchmark reads.
#[test]
fn the_collection_of_each_attempt_is_timed_on_request() {
    require_root();
    let scratch = Scratch::new("timing");
    let manifest = scratch_workspace(
        &scratch,
        "",
        &[
            ("one", "#[test]\nfn t() {}\n"),
            ("two", "#[test]\nfn t() {}\n"),
        ],
    );
    let json = scratch.0.join("r.json");
    let out = common::reap_command(&[], &["test", "--manifest-path", &manifest], &json)
        .env("RUST_LOG", "cargo_reap::timing=debug")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for id in ["cfgdemo::one", "cfgdemo::two"] {
        let us: Vec<u64> = stderr
            .lines()
            .filter(|l| l.contains(&format!("{id} attempt 1: collected in ")))
            .filter_map(|l| {
                l.split("collected in ")
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        assert_eq!(us.len(), 1, "one timing line for {id}: {stderr}");
    }
}

/// `--partition slice:M/N` and `hash:M/N` split the suites across machines:
/// every suite runs in exactly one share.
#[test]
fn partitions_split_suites_across_machines() {
    require_root();
    let base = manifest_args();
    let selection = [
        "test",
        "-p",
        "leaky",
        "--test",
        "clean",
        "--test",
        "daemon",
        "--test",
        "own_pgroup",
        "--test",
        "ignores_term",
        "--lib",
    ];
    for kind in ["slice", "hash"] {
        let mut seen: Vec<String> = Vec::new();
        for m in 1..=2 {
            let part = format!("{kind}:{m}/2");
            let mut a = args(&base, &selection);
            a.extend(["--partition", part.as_str()]);
            let run = reap(&[], &a);
            assert!(
                run.stderr.contains(&format!("partition {part}:")),
                "{}",
                run.stderr
            );
            seen.extend(run.suites().keys().cloned());
        }
        seen.sort();
        assert_eq!(
            seen,
            [
                "leaky",
                "leaky::clean",
                "leaky::daemon",
                "leaky::ignores_term",
                "leaky::own_pgroup"
            ],
            "{kind}"
        );
    }
}

/// Plain lines when stderr is not a terminal; `CLICOLOR_FORCE` forces colors,
/// `NO_COLOR` wins over a terminal; `-q` shows only suites with a problem.
#[test]
fn colors_and_quiet_follow_the_conventions() {
    require_root();
    let manifest = fixture_manifest().display().to_string();
    let run = |env: &[(&str, &str)], extra: &[&str]| {
        let out = Command::new(REAP)
            .args([
                "test",
                "--manifest-path",
                &manifest,
                "-p",
                "leaky",
                "--test",
                "clean",
                "--test",
                "daemon",
            ])
            .args(extra)
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let plain = run(&[], &[]);
    assert!(
        !plain.contains("\x1b["),
        "not a terminal: plain lines: {plain}"
    );
    assert!(plain.contains("leaky::clean"), "{plain}");
    let forced = run(&[("CLICOLOR_FORCE", "1")], &[]);
    assert!(forced.contains("\x1b[1;32m"), "{forced}");
    let quiet = run(&[], &["-q"]);
    assert!(
        !quiet.contains("leaky::clean"),
        "-q hides clean suites: {quiet}"
    );
    assert!(quiet.contains("leaky::daemon"), "{quiet}");
}

/// Processes of `run_id` started in trial `trial` (their CARGO_REAP_TRIAL).
fn of_trial(run_id: &str, trial: u32) -> Vec<i32> {
    let want = format!("CARGO_REAP_TRIAL={trial}");
    tagged(run_id)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == want.as_bytes()))
        })
        .collect()
}

/// Soak: many trials of leaking suites; after each trial, from outside, none
/// of its processes remain; the runner's open descriptors stay constant and
/// its memory flat. `SOAK_TRIALS` (default 12) sets the length; the release
/// check runs `SOAK_TRIALS=200 cargo test -p cargo-reap --test e2e soak -- --ignored`
/// (see README, Reliability).
#[test]
fn soak_no_survivors_flat_memory_and_descriptors() {
    soak(
        std::env::var("SOAK_TRIALS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(12),
    );
}

#[test]
#[ignore = "long soak for release checks: SOAK_TRIALS=200"]
fn soak_long() {
    soak(
        std::env::var("SOAK_TRIALS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200),
    );
}

fn soak(trials: u32) {
    use std::io::BufRead;
    require_root();
    let n = trials.to_string();
    let scratch = Scratch::new("soak");
    let json = scratch.0.join("report.json");
    let mut child = Command::new(REAP)
        .args(["test", "--manifest-path"])
        .arg(fixture_manifest())
        .args([
            "-p",
            "leaky",
            "--test",
            "daemon",
            "--test",
            "many_children",
            "--test",
            "pipe_both_ends",
            "--test",
            "unread_socket",
            "--test",
            "clean",
            "--loop",
            &n,
            "--timeout",
            "20s",
            "--json",
        ])
        .arg(&json)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut run_id = String::new();
    let mut lines = 0;
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("cargo-reap: run ") {
            run_id = rest.split(':').next().unwrap().to_string();
        }
        // `trial k/N: ...` is printed once trial k is reaped: from outside,
        // none of its processes may remain.
        if let Some(k) = line
            .strip_prefix("trial ")
            .and_then(|r| r.split('/').next())
        {
            let k: u32 = k.parse().unwrap();
            assert!(
                of_trial(&run_id, k).is_empty(),
                "trial {k} left processes: {line}"
            );
            assert!(
                line.contains("LEAKED"),
                "the suites leak every trial: {line}"
            );
            lines += 1;
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(103));
    assert_eq!(lines, trials, "one line per trial");
    assert_nothing_survived(&run_id);
    // The runner's own vitals, read by it between trials (a quiet point, no
    // suite in flight), so descriptors must be exactly constant.
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let vitals: Vec<(u64, u64, u64)> = report["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let r = &t["runner"];
            (
                r["open_fds"].as_u64().unwrap(),
                r["rss_kib"].as_u64().unwrap(),
                r["threads"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(vitals.len(), trials as usize);
    let (fds1, rss1, threads1) = vitals[0];
    let rss_last = vitals.last().unwrap().1;
    eprintln!(
        "soak: {trials} trials; runner fds {fds1} -> {}, threads {threads1} -> {}, RSS {rss1} -> {rss_last} KiB",
        vitals.last().unwrap().0,
        vitals.last().unwrap().2,
    );
    assert!(
        vitals.iter().all(|v| v.0 == fds1),
        "runner descriptors change between trials: {vitals:?}"
    );
    // A joined thread can linger in /proc/self/status for a moment after
    // pthread_join returns (the kernel clears its tid before it is gone), so
    // threads are compared by their peaks (one lingering thread tolerated),
    // which a per-trial leak would climb by one per trial.
    let half = vitals.len() / 2;
    let (first, second) = (&vitals[..half.max(1)], &vitals[half..]);
    let peak =
        |v: &[(u64, u64, u64)], f: fn(&(u64, u64, u64)) -> u64| v.iter().map(f).max().unwrap();
    assert!(
        peak(second, |v| v.2) <= peak(first, |v| v.2) + 1,
        "runner threads grow: {vitals:?}"
    );
    // Memory: the report itself keeps every trial, so allow a little growth;
    // a per-trial leak of buffers or logs shows as a climb past it.
    let (rss_a, rss_b) = (peak(first, |v| v.1), peak(second, |v| v.1));
    assert!(
        rss_b <= rss_a + rss_a / 4 + 1024,
        "runner memory grows: {vitals:?}"
    );
}

/// Resource trend: each attempt's peak processes and memory are sampled; in a
/// loop, a suite whose peaks climb trial over trial is flagged.
#[test]
fn loop_mode_flags_suites_whose_peaks_grow() {
    require_root();
    let base = manifest_args();
    let run = reap(
        &[],
        &args(
            &base,
            &[
                "test", "-p", "leaky", "--test", "grows", "--test", "clean", "--loop", "3",
            ],
        ),
    );
    let rates = run.report()["loop_summary"]["suites"].as_array().unwrap();
    let grows = rates.iter().find(|s| s["id"] == "leaky::grows").unwrap();
    let peaks: Vec<u64> = grows["peak_processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    // Trial k holds 2k children besides the test binary.
    assert_eq!(peaks, [3, 5, 7], "{grows:#}");
    assert!(
        grows["growing"]
            .as_str()
            .unwrap()
            .contains("peak processes grow"),
        "{grows:#}"
    );
    let clean = rates.iter().find(|s| s["id"] == "leaky::clean").unwrap();
    assert!(clean["growing"].is_null(), "{clean:#}");
    assert!(
        run.stderr.contains("GROWING leaky::grows"),
        "{}",
        run.stderr
    );
    let attempt = &run.report()["suites"].as_array().unwrap()[1]["attempts"][0];
    assert!(
        attempt["peak_memory_bytes"].as_u64().unwrap() > 0,
        "{attempt:#}"
    );
    assert_eq!(run.code, 0);
}

/// `--max-pids N` is applied where the pids controller can be enabled, and
/// otherwise says why not — never silently ignored.
#[test]
fn max_pids_is_applied_or_announced() {
    require_root();
    let base = manifest_args();
    let run = reap(
        &[],
        &args(
            &base,
            &["test", "-p", "leaky", "--test", "clean", "--max-pids", "64"],
        ),
    );
    assert!(
        run.stderr
            .contains("each suite is limited to 64 processes (pids.max)")
            || run.stderr.contains("--max-pids 64 not applied: "),
        "{}",
        run.stderr
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}
