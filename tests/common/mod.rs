//! Helpers shared by the end-to-end tests: run the real binary, read its
//! report, compare with a fixture's expectations, check from outside that
//! nothing survived.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;
use serde_json::Value;

pub const REAP: &str = env!("CARGO_BIN_EXE_cargo-reap");

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn fixture_manifest() -> PathBuf {
    fixture_manifest_of("leaky")
}

/// `fixtures/<name>/Cargo.toml`
pub fn fixture_manifest_of(name: &str) -> PathBuf {
    repo().join(format!("fixtures/{name}/Cargo.toml"))
}

#[derive(Debug, Deserialize)]
pub struct Expected {
    pub suite: Vec<ExpectedSuite>,
}

#[derive(Debug, Deserialize)]
pub struct ExpectedSuite {
    pub id: String,
    pub package: String,
    pub target: String,
    pub kind: String,
    pub status: String,
    pub attempts: usize,
    pub leaks: usize,
    pub leak_comms: Vec<String>,
    #[serde(default)]
    pub leak_states: Vec<String>,
    /// One entry per leak: the test that started it, "" when not reproducible alone.
    #[serde(default)]
    pub leak_tests: Vec<String>,
    /// Rule ids that must appear among the leaks' findings.
    #[serde(default)]
    pub leak_findings: Vec<String>,
    /// Leaks only in trials 1, N+1, 2N+1, ... of `--loop`.
    #[serde(default)]
    pub leak_every_nth_trial: Option<u32>,
}

pub fn expected() -> Vec<ExpectedSuite> {
    expected_of("leaky")
}

/// The expectations in `fixtures/<name>/expected.toml`.
pub fn expected_of(name: &str) -> Vec<ExpectedSuite> {
    let text =
        std::fs::read_to_string(repo().join(format!("fixtures/{name}/expected.toml"))).unwrap();
    toml::from_str::<Expected>(&text).unwrap().suite
}

/// A scratch directory removed at the end of the test.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
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

pub struct Run {
    pub code: i32,
    pub stderr: String,
    pub report: Option<Value>,
}

impl Run {
    pub fn report(&self) -> &Value {
        self.report
            .as_ref()
            .unwrap_or_else(|| panic!("no JSON report; stderr:\n{}", self.stderr))
    }

    pub fn suites(&self) -> BTreeMap<String, &Value> {
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
pub fn reap(wrapper: &[&str], args: &[&str]) -> Run {
    let scratch = Scratch::new("run");
    let json = scratch.0.join("report.json");
    let mut cmd = reap_command(wrapper, args, &json);
    cmd.env("REAP_FIXTURE_STATE_DIR", scratch.0.join("state"));
    let Output { status, stderr, .. } = cmd.output().expect("run cargo-reap");
    finished_run(status, String::from_utf8_lossy(&stderr).into_owned(), &json)
}

/// `cargo-reap ARGS --json JSON` (through `wrapper`, e.g. unshare), with no
/// suite tag inherited from the environment.
pub fn reap_command(wrapper: &[&str], args: &[&str], json: &Path) -> Command {
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
        .arg(json)
        .args(&args[split..])
        .env_remove("CARGO_REAP_SUITE");
    cmd
}

/// A finished run: its exit, stderr and JSON report (absent when none was
/// written), after checking from outside that nothing of it survived.
pub fn finished_run(status: std::process::ExitStatus, stderr: String, json: &Path) -> Run {
    let report = std::fs::read(json)
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

/// The names of the logs next to a suite's log (`suite["log"]` of a report):
/// the run's log directory.
pub fn logs_beside(suite: &Value) -> Vec<String> {
    let log = Path::new(suite["log"].as_str().expect("the suite's log"));
    std::fs::read_dir(log.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// From outside: no process carries this run's tag, no cgroup leaf of it exists.
pub fn assert_nothing_survived(run_id: &str) {
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

pub fn find_leaves(dir: &Path, run_id: &str, depth: u32) -> Vec<PathBuf> {
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

pub fn manifest_args() -> Vec<String> {
    vec![
        "--manifest-path".into(),
        fixture_manifest().display().to_string(),
        "--timeout".into(),
        "3s".into(),
        "--grace".into(),
        "1s".into(),
    ]
}

pub fn args<'a>(base: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = extra.to_vec();
    v.extend(base.iter().map(String::as_str));
    v
}

/// Compare a report with the expectations for every suite in `expected`.
pub fn check_against_expected(run: &Run, expected: &[ExpectedSuite]) {
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

pub fn check_summary(run: &Run, expected: &[ExpectedSuite]) {
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
pub fn expected_exit(expected: &[ExpectedSuite]) -> i32 {
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

pub fn full_fixture_run(isolation: &str, jobs: &str) {
    let base = manifest_args();
    let run = reap(
        &[],
        &args(
            &base,
            &[
                "reap",
                "test",
                "--workspace",
                "--isolation",
                isolation,
                "--jobs",
                jobs,
            ],
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

/// The expectations of the suites a `--test NAME` selection picks.
pub fn expected_for(ids: &[&str]) -> Vec<ExpectedSuite> {
    expected()
        .into_iter()
        .filter(|e| ids.contains(&e.id.as_str()))
        .collect()
}

/// Run in a private mount namespace where /sys/fs/cgroup is replaced by
/// `setup` (a shell snippet), to exercise the layouts other hosts have.
pub fn reap_in_mount_ns(setup: &str, reap_args: &[&str]) -> Run {
    reap_after_in_mount_ns(&format!("umount -l /sys/fs/cgroup; {setup}"), reap_args)
}

/// `cargo-reap reap_args` in a private mount namespace after `setup` (a
/// shell snippet run there first, e.g. a mount).
pub fn reap_after_in_mount_ns(setup: &str, reap_args: &[&str]) -> Run {
    let script = format!("set -e; {setup}; exec \"$0\" \"$@\"");
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

pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the end-to-end tests need root (cgroup writes, mount namespaces); CI runs them as root"
    );
}

/// Processes carrying a tag of `run_id`.
pub fn tagged(run_id: &str) -> Vec<i32> {
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
pub fn wait_until(what: &str, limit: std::time::Duration, mut cond: impl FnMut() -> bool) {
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
pub fn start_hanging_run(isolation: &str, json: &Path) -> (std::process::Child, String) {
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
    let run_id = announced_run_id(&mut child);
    wait_until(
        "the suite's two processes",
        std::time::Duration::from_secs(20),
        || tagged(&run_id).len() >= 2,
    );
    (child, run_id)
}

/// Read a started cargo-reap's piped stderr until it announces its run; keep
/// draining it after, so that cargo-reap never blocks on it.
pub fn announced_run_id(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = std::io::BufReader::new(stderr).lines();
    let run_id = loop {
        let line = lines.next().expect("cargo-reap announces its run").unwrap();
        if let Some(rest) = line.strip_prefix("cargo-reap: run ") {
            break rest.split(':').next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    run_id
}

// ---- Helpers for tests/hostile.rs (hostile suites: processes without the tag,
// ---- runner memory under an output flood).

/// A process found from outside by [`strays_since`].
#[derive(Debug, Clone)]
pub struct Stray {
    pub pid: i32,
    pub start_time: u64,
    pub comm: String,
    pub cmdline: Vec<String>,
}

/// Processes started at or after `since` (boot-time clock ticks, as
/// `reap_probe::boottime_ticks()` returns) that look like a fixture's: `is_ours`
/// gets each one with its raw environment (empty when unreadable or cleared).
/// This does not rely on the run's tag, so it finds processes that removed it
/// or cleared their environment.
pub fn strays_since(since: u64, is_ours: impl Fn(&Stray, &[u8]) -> bool) -> Vec<Stray> {
    let opts = reap_probe::ScanOptions {
        environ_tag: false,
        cgroup: false,
    };
    let me = std::process::id() as i32;
    reap_probe::scan_since(opts, since)
        .unwrap()
        .into_iter()
        .filter(|p| p.pid != me && !p.is_zombie())
        .map(|p| Stray {
            pid: p.pid,
            start_time: p.start_time,
            comm: p.comm,
            cmdline: p.cmdline,
        })
        .filter(|s| {
            let env = std::fs::read(format!("/proc/{}/environ", s.pid)).unwrap_or_default();
            is_ours(s, &env)
        })
        .collect()
}

/// A pidfd of process `pid` started at `start_time`, opened while its start
/// time still matched (so a reused pid is never the one signalled or waited
/// for); None when it is gone.
pub fn pidfd_of(pid: i32, start_time: u64) -> Option<std::os::fd::OwnedFd> {
    use rustix::process::{pidfd_open, PidfdFlags};
    let fd = match pidfd_open(rustix::process::Pid::from_raw(pid)?, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return None,
        Err(e) => panic!("pidfd_open({pid}): {e}"),
    };
    // Gone, and the pid reused, before the pidfd was opened?
    (reap_probe::start_time(pid).ok() == Some(start_time)).then_some(fd)
}

/// Does the process of `fd` exit within `limit`? (A pidfd turns readable at
/// the process's exit.)
pub fn exits_within(fd: &std::os::fd::OwnedFd, limit: std::time::Duration) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let timeout = Timespec {
        tv_sec: limit.as_secs() as i64,
        tv_nsec: i64::from(limit.subsec_nanos()),
    };
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    poll(&mut fds, Some(&timeout)).unwrap_or_else(|e| panic!("poll: {e}")) == 1
}

/// SIGKILL `strays` (by pidfd, identity-checked) and wait for each to be
/// gone, so that a scan right after does not see a process still dying, and
/// a failed assertion leaves the machine clean.
pub fn kill_strays(strays: &[Stray]) {
    use rustix::process::{pidfd_send_signal, Signal};
    for s in strays {
        let Some(fd) = pidfd_of(s.pid, s.start_time) else {
            continue;
        };
        match pidfd_send_signal(&fd, Signal::KILL) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => panic!("SIGKILL {}: {e}", s.pid),
        }
        assert!(
            exits_within(&fd, std::time::Duration::from_secs(10)),
            "pid {} still alive 10 s after SIGKILL",
            s.pid
        );
    }
}

/// Of `strays`, those still alive after `limit` (all together), each waited
/// for on its pidfd.
fn alive_after(strays: Vec<Stray>, limit: std::time::Duration) -> Vec<Stray> {
    let deadline = std::time::Instant::now() + limit;
    strays
        .into_iter()
        .filter(|s| {
            pidfd_of(s.pid, s.start_time).is_some_and(|fd| {
                !exits_within(
                    &fd,
                    deadline.saturating_duration_since(std::time::Instant::now()),
                )
            })
        })
        .collect()
}

/// From outside, without the tag: no process matching `is_ours` started since
/// `since` is alive. Whatever is found is killed (by pid) before the assertion
/// fails, so a misbehaving runner does not leave the machine dirty.
pub fn assert_no_strays(what: &str, since: u64, is_ours: impl Fn(&Stray, &[u8]) -> bool) {
    // A process the runner killed may still be dying: wait (on its pidfd,
    // at most 500 ms in all) for each one found before calling it a survivor.
    let left = alive_after(
        strays_since(since, &is_ours),
        std::time::Duration::from_millis(500),
    );
    kill_strays(&left);
    assert!(
        left.is_empty(),
        "{what}: processes survived the run (found from outside, now killed): {:#?}",
        left.iter()
            .map(|s| format!("{} {} {:?}", s.pid, s.comm, clip_args(&s.cmdline)))
            .collect::<Vec<_>>()
    );
}

fn clip_args(args: &[String]) -> Vec<String> {
    args.iter()
        .take(6)
        .map(|a| a.chars().take(60).collect())
        .collect()
}

/// Like [`reap`], with extra environment for cargo-reap (and so for its
/// suites), and sampling the runner's peak resident set size (`VmHWM` of
/// /proc/PID/status, in KiB) every 10 ms while it runs: the last sample is
/// the peak up to a few ms before it exited. Returns the run and the peak.
pub fn reap_sampled(env: &[(&str, &str)], args: &[&str]) -> (Run, u64) {
    let scratch = Scratch::new("run");
    let json = scratch.0.join("report.json");
    let mut cmd = Command::new(REAP);
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    cmd.args(&args[..split])
        .arg("--json")
        .arg(&json)
        .args(&args[split..])
        .envs(env.iter().copied())
        .env("REAP_FIXTURE_STATE_DIR", scratch.0.join("state"))
        .env_remove("CARGO_REAP_SUITE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run cargo-reap");
    let mut stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stderr_pipe, &mut buf).unwrap();
        buf
    });
    // The runner is a child of the process started (its guardian).
    let guardian = child.id() as i32;
    let mut status_path = None;
    let mut peak_kib = 0;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if status_path.is_none() {
            status_path = find_runner(guardian).map(|runner| format!("/proc/{runner}/status"));
        }
        if let Ok(text) = std::fs::read_to_string(status_path.as_deref().unwrap_or("/nonexistent"))
        {
            if let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kib = kib;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let stderr = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    let run = finished_run(status, stderr, &json);
    (run, peak_kib)
}

/// A child of the test, killed and reaped on every path.
pub struct Guarded(pub std::process::Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Err(e) = self.0.kill() {
            eprintln!("kill {}: {e}", self.0.id());
        }
        if let Err(e) = self.0.wait() {
            eprintln!("wait {}: {e}", self.0.id());
        }
    }
}

/// The cgroup2 mount point on this machine.
pub fn cgroup2_root() -> PathBuf {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mi
        .lines()
        .find(|l| {
            l.split(" - ")
                .nth(1)
                .is_some_and(|t| t.starts_with("cgroup2 "))
        })
        .expect("a cgroup2 mount");
    PathBuf::from(line.split_whitespace().nth(4).unwrap())
}

/// A build script that blocks the build until its parent (cargo) is gone.
pub const BLOCKING_BUILD_RS: &str = r#"fn main() {
    // Checking our own parent has no event to wait on: look every 20 ms, at
    // most 10 minutes (the test fails long before).
    let parent = std::os::unix::process::parent_id();
    for _ in 0..30_000 {
        if std::os::unix::process::parent_id() != parent {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
"#;

/// The pid of the runner (the process doing the run: the child of the
/// cargo-reap a test starts, its guardian) from its run id
/// (`<ms hex>-<pid>-<ns hex>`).
pub fn runner_pid(run_id: &str) -> i32 {
    run_id.split('-').nth(1).unwrap().parse().unwrap()
}

/// The name (`comm`) of the lifeline guard the guardian forks
/// (`cargo_reap::lifeline::GUARD_NAME`).
pub const GUARD_NAME: &str = "reap-guard";

/// The children of process `pid` (its only thread's, as a guardian has one).
pub fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The name (`comm`) of process `pid`, if it is alive.
pub fn comm_of(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim_end().to_string())
}

/// The runner below `guardian` (the cargo-reap a test started): its child
/// running cargo-reap that is not the forked lifeline guard.
pub fn find_runner(guardian: i32) -> Option<i32> {
    children_of(guardian).into_iter().find(|&p| {
        std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|x| x == Path::new(REAP))
            && comm_of(p).is_some_and(|c| c != GUARD_NAME)
    })
}

/// [`find_runner`], which must find it.
pub fn runner_of(guardian: i32) -> i32 {
    find_runner(guardian).unwrap_or_else(|| {
        panic!(
            "no runner among the children {:?} of {guardian}",
            children_of(guardian)
        )
    })
}

/// SIGKILL the runner of `run_id` (not its guardian).
pub fn kill_runner(run_id: &str) {
    let pid = rustix::process::Pid::from_raw(runner_pid(run_id)).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
}

/// A suite's per-test results in the JSON report: (name, result), in order.
pub fn test_results(suite: &Value) -> Vec<(String, String)> {
    suite["tests"]
        .as_array()
        .unwrap_or_else(|| panic!("no tests in {suite}"))
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Where the JUnit schema Jenkins' xUnit plugin (and GitLab) read is:
/// `$REAP_JUNIT_XSD`, else `target/junit-xsd/junit-10.xsd`. It is not in the
/// repository: `.ci/run` takes it from pytest's source package on PyPI, which
/// ships it as `testing/example_scripts/junit-10.xsd`.
pub fn junit_xsd() -> PathBuf {
    std::env::var_os("REAP_JUNIT_XSD")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/junit-xsd/junit-10.xsd"))
}

/// `xmllint --schema junit-10.xsd FILE` passes: the JUnit file is valid
/// against the schema CI dashboards read. Without the schema the check is
/// skipped with a message, unless `REAP_REQUIRE_JUNIT_XSD` is set (`.ci/run`
/// sets it, so CI never skips it).
pub fn validate_junit(xml: &Path) {
    let xsd = junit_xsd();
    if !xsd.is_file() {
        assert!(
            std::env::var_os("REAP_REQUIRE_JUNIT_XSD").is_none(),
            "{} is missing (REAP_REQUIRE_JUNIT_XSD is set): see .ci/run",
            xsd.display()
        );
        eprintln!(
            "skipping the JUnit schema check: {} is missing (.ci/run fetches it: python3 -m pip download --no-binary :all: --no-deps pytest==8.3.3, then testing/example_scripts/junit-10.xsd of the archive)",
            xsd.display()
        );
        return;
    }
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(xml)
        .output()
        .expect("xmllint (Debian/Ubuntu: apt-get install libxml2-utils; .ci/run installs it)");
    assert!(
        out.status.success(),
        "{} is not valid against {}:\n{}",
        xml.display(),
        xsd.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The leaky fixture's clean suite and its daemon-leaving one, every test
/// run (cargo's selection flags).
pub const CLEAN_AND_DAEMON: [&str; 7] = [
    "-p",
    "leaky",
    "--test",
    "clean",
    "--test",
    "daemon",
    "--no-fail-fast",
];

/// Processes whose environment holds `REAP_FIXTURE_MARK=<marker>`.
pub fn marked(marker: &str) -> Vec<String> {
    let needle = format!("REAP_FIXTURE_MARK={marker}");
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue; // gone, a kernel thread, or a zombie
        };
        if env.split(|&b| b == 0).any(|v| v == needle.as_bytes()) {
            found.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

/// The programs of `fixtures/watch` (`fixtures/watch/target/debug/NAME`), built once per test
/// binary.
pub fn watch_fixture_bin(name: &str) -> String {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let manifest = fixture_manifest_of("watch");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--bins", "--manifest-path"])
            .arg(&manifest)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building fixtures/watch failed");
        manifest.parent().unwrap().join("target/debug")
    });
    dir.join(name).display().to_string()
}
