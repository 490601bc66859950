//! Hang triage (issue 15): at a hang-kill, before the SIGTERM, cargo-reap captures where every
//! thread of the hung suite is blocked. On `fixtures/hangs`: five tests blocked in an mpsc
//! receive, a mutex another thread holds, `Child::wait` on `sleep 3600`, a read of a pipe the
//! test holds the write end of, an executor's `block_on` of a future never woken; the report must name each test function at the line marked
//! `// BLOCKS: <test>` in its source, in the JSON (`attempts[].stacks`) and on the terminal,
//! in both isolation modes and in release builds (line tables only). `cargo reap probe PID
//! --stacks` does the same for a live process. From outside: nothing is left stopped or
//! traced by the capture.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// The tests of `fixtures/hangs/hangs/tests/<file>.rs` and the line each is marked to block on.
fn marked_lines(file: &str) -> BTreeMap<String, u32> {
    marks(file, "// BLOCKS: ")
}

/// The lines marked `<mark><test>` in `fixtures/hangs/hangs/tests/<file>.rs`, by test.
fn marks(file: &str, mark: &str) -> BTreeMap<String, u32> {
    let path = repo().join(format!("fixtures/hangs/hangs/tests/{file}.rs"));
    let text = std::fs::read_to_string(&path).expect("read the fixture");
    let marks: BTreeMap<String, u32> = text
        .lines()
        .enumerate()
        .filter_map(|(k, l)| {
            let test = l.split(mark).nth(1)?.trim();
            let ident = test.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            ident.then(|| (test.to_string(), k as u32 + 1))
        })
        .collect();
    assert!(
        !marks.is_empty() || mark != "// BLOCKS: ",
        "no BLOCKS marks in {}",
        path.display()
    );
    marks
}

fn hangs_manifest() -> String {
    fixture_manifest_of("hangs").display().to_string()
}

/// The stacks of the suite's hung attempt in the JSON report.
fn attempt_stacks<'a>(run: &'a Run, suite: &str) -> &'a Vec<Value> {
    let suites = run.suites();
    let s = suites
        .get(suite)
        .unwrap_or_else(|| panic!("no suite {suite}: {}", run.stderr));
    assert_eq!(s["status"], "hang", "{}", run.stderr);
    s["attempts"][0]["stacks"]
        .as_array()
        .unwrap_or_else(|| panic!("no stacks in the report: {}", run.stderr))
}

/// Each marked test has a thread in the test binary (the first process) named after it
/// whose frames hold `blocked::<test>` at the marked line, and the terminal shows the
/// headline `blocked::<test>  hangs/tests/blocked.rs:<line>  ← <callee>`.
fn assert_each_test_named(run: &Run, file: &str) {
    let stacks = attempt_stacks(run, &format!("hangs::{file}"));
    let binary = &stacks[0];
    assert!(
        binary["command"].as_str().unwrap().starts_with(file),
        "the test binary comes first: {binary:#}"
    );
    let headlines = marks(file, "// HEADLINE: ");
    for (test, line) in marked_lines(file) {
        let comm: String = test.chars().take(15).collect();
        let thread = binary["threads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == comm.as_str())
            .unwrap_or_else(|| panic!("no thread named {comm}: {binary:#}"));
        // Debug builds name it by its path; line tables alone (release) by its bare name.
        let function = format!("{file}::{test}");
        let named =
            |f: &Value| f["function"] == function.as_str() || f["function"] == test.as_str();
        let found = thread["frames"].as_array().unwrap().iter().any(|f| {
            named(f)
                && f["line"] == line
                && f["file"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&format!("hangs/tests/{file}.rs")))
        });
        assert!(found, "{function} at line {line} not in {thread:#}");
        // The headline: `<function>  <path>/hangs/tests/<file>.rs:<line>  ← <callee>` (the
        // path relative to cargo-reap's working directory when under it); where the test
        // blocks in code of its own file (an executor), that code's line.
        let own = headlines.get(&test);
        let at = format!("hangs/tests/{file}.rs:{}  ← ", own.unwrap_or(&line));
        let headline = run.stderr.lines().find(|l| {
            let names_the_test = l
                .split("  ")
                .any(|w| w.trim_start() == function || w.trim_start() == test);
            l.contains(&at) && (own.is_some() || names_the_test)
        });
        assert!(
            headline.is_some(),
            "no headline `{function}  …{at}` on the terminal:\n{}",
            run.stderr
        );
    }
}

fn hang_run(isolation: &str, extra: &[&str]) -> Run {
    require_root();
    let manifest = hangs_manifest();
    let mut a = vec![
        "test",
        "--isolation",
        isolation,
        "--manifest-path",
        &manifest,
        "--test",
        "blocked",
        "--timeout",
        "3s",
        "--grace",
        "2s",
        "--hang-retries",
        "0",
    ];
    a.extend(extra);
    // Every test runs at once, whatever the machine's core count.
    a.extend(["--", "--test-threads=5"]);
    reap(&[], &a)
}

#[test]
fn each_blocked_test_is_named_with_its_line_in_cgroup_mode() {
    let scratch = Scratch::new("junit");
    let junit = scratch.0.join("report.xml");
    let run = hang_run("cgroup", &["--junit", junit.to_str().unwrap()]);
    assert_eq!(run.code, 102, "{}", run.stderr);
    assert_each_test_named(&run, "blocked");
    // JUnit: the hang's failure body carries the stacks.
    let xml = std::fs::read_to_string(&junit).expect("the JUnit report");
    let line = marked_lines("blocked")["recv_forever"];
    let headline = format!(
        "blocked::recv_forever  {}:{line}  ← std::sync::mpsc::Receiver&lt;T&gt;::recv",
        repo()
            .join("fixtures/hangs/hangs/tests/blocked.rs")
            .display()
    );
    assert!(xml.contains(&headline), "no `{headline}` in {xml}");
    // The child the test waits for is captured too: a C program, named from its symbols.
    let stacks = attempt_stacks(&run, "hangs::blocked");
    let sleep = stacks
        .iter()
        .find(|p| p["command"] == "sleep")
        .unwrap_or_else(|| panic!("sleep not captured: {stacks:#?}"));
    let names: Vec<&str> = sleep["threads"][0]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["function"].as_str())
        .collect();
    assert!(names.iter().any(|n| n.contains("nanosleep")), "{sleep:#}");
}

#[test]
fn each_blocked_test_is_named_with_its_line_in_process_group_mode() {
    let run = hang_run("process-group", &[]);
    assert_eq!(run.code, 102, "{}", run.stderr);
    assert_each_test_named(&run, "blocked");
}

#[test]
fn each_blocked_test_is_named_with_its_line_in_a_release_build() {
    let run = hang_run("cgroup", &["--release"]);
    assert_eq!(run.code, 102, "{}", run.stderr);
    assert_each_test_named(&run, "blocked");
}

#[test]
fn no_stacks_turns_the_capture_off() {
    let run = hang_run("cgroup", &["--no-stacks"]);
    assert_eq!(run.code, 102, "{}", run.stderr);
    let suites = run.suites();
    let attempt = &suites["hangs::blocked"]["attempts"][0];
    assert!(attempt.get("stacks").is_none(), "{attempt:#}");
    assert!(
        !run.stderr.contains("its stacks before the kill"),
        "{}",
        run.stderr
    );
}

/// `(TracerPid, state letter)` of every thread of `pid` (empty once it is gone).
fn tracer_and_state(pid: i32) -> Vec<(String, String)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("status")).ok())
        .map(|status| {
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or("?")
                    .trim()
                    .to_string()
            };
            (
                field("TracerPid:"),
                field("State:").chars().take(1).collect(),
            )
        })
        .collect()
}

/// No thread of `pids` is traced or in a (tracing) stop.
fn assert_untraced_and_running(pids: &[i32]) {
    for &pid in pids {
        for (tracer, state) in tracer_and_state(pid) {
            assert_eq!(tracer, "0", "pid {pid} is still traced");
            assert!(
                state != "t" && state != "T",
                "pid {pid} is left stopped ({state})"
            );
        }
    }
}

#[test]
fn nothing_is_left_stopped_or_traced_after_the_capture() {
    require_root();
    let manifest = hangs_manifest();
    let scratch = Scratch::new("term");
    let json = scratch.0.join("report.json");
    let mut cmd = reap_command(
        &[],
        &[
            "test",
            "--manifest-path",
            &manifest,
            "--test",
            "term",
            "--timeout",
            "3s",
            "--grace",
            "8s",
            "--hang-retries",
            "0",
        ],
        &json,
    );
    // The grace (8 s) is when the suite is looked at; then the SIGKILL ends it.
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("run cargo-reap");
    let run_id = announced_run_id(&mut child);
    let log = repo().join(format!(
        "fixtures/hangs/target/reap/{run_id}/hangs__term.log"
    ));
    // The suite got the hang-kill's SIGTERM (after the capture) and lives on in the grace.
    wait_until("the suite's SIGTERM", Duration::from_secs(120), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("term.rs: got SIGTERM"))
    });
    let pids = tagged(&run_id);
    assert!(!pids.is_empty(), "the suite lives in its grace");
    assert_untraced_and_running(&pids);
    let status = child.wait().expect("wait for cargo-reap");
    let run = finished_run(status, String::new(), &json);
    let stacks = attempt_stacks(&run, "hangs::term");
    assert!(
        stacks[0]["threads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "outlives_sigter"),
        "{stacks:#?}"
    );
}

/// Kills and reaps the child on every path.
struct Reaped(Child);
impl Drop for Reaped {
    fn drop(&mut self) {
        self.0.kill().expect("kill");
        self.0.wait().expect("wait");
    }
}

#[test]
fn probe_stacks_names_the_blocked_test_of_a_live_process() {
    require_root();
    let manifest = hangs_manifest();
    let built = Command::new(env!("CARGO"))
        .args([
            "test",
            "--no-run",
            "--message-format=json",
            "--test",
            "blocked",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stderr(Stdio::inherit())
        .output()
        .expect("build the fixture");
    assert!(built.status.success());
    let exe = String::from_utf8_lossy(&built.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|m| m["executable"].as_str().map(str::to_string))
        .expect("the test executable");
    let child = Reaped(
        Command::new(exe)
            .args(["recv_forever", "--exact"])
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn the fixture's test"),
    );
    let pid = child.0.id() as i32;
    wait_until("the test thread blocks", Duration::from_secs(20), || {
        std::fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|d| d.count() >= 2)
            && tracer_and_state(pid).iter().all(|(_, s)| s == "S")
    });
    let line = marked_lines("blocked")["recv_forever"];
    let out = Command::new(REAP)
        .current_dir(repo().join("fixtures/hangs"))
        .args(["probe", &pid.to_string(), "--stacks"])
        .output()
        .expect("run cargo reap probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let headline = format!(
        "blocked::recv_forever  hangs/tests/blocked.rs:{line}  ← std::sync::mpsc::Receiver<T>::recv"
    );
    assert!(stdout.contains(&headline), "no `{headline}` in:\n{stdout}");
    assert!(stdout.contains("thread 'recv_forever'"), "{stdout}");
    assert_untraced_and_running(&[pid]);
    // --json: the same stacks as data.
    let out = Command::new(REAP)
        .args(["probe", &pid.to_string(), "--stacks", "--json"])
        .output()
        .expect("run cargo reap probe --json");
    let stacks: Value = serde_json::from_slice(&out.stdout).expect("JSON stacks");
    assert_eq!(stacks[0]["pid"], pid);
    assert_untraced_and_running(&[pid]);
}

/// A process the kernel will not let the prober trace (another user's, without
/// CAP_SYS_PTRACE: what Yama's ptrace_scope 2 and 3 also give): the probe says why, exits 1,
/// and leaves it as it was.
#[test]
fn a_refused_capture_is_reported_and_changes_nothing() {
    require_root();
    let child = Reaped(
        Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("spawn sleep"),
    );
    let pid = child.0.id() as i32;
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            REAP,
        ])
        .args(["probe", &pid.to_string(), "--stacks"])
        .output()
        .expect("run cargo reap probe as nobody");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("the kernel refused to trace it (EPERM: "),
        "{stdout}"
    );
    assert_untraced_and_running(&[pid]);
}
