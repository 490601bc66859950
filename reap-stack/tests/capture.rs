//! Capture the stacks of live processes this test spawns (a Rust test blocked on a channel,
//! `sleep`), and check from /proc that each is left running and untraced.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Not a test on its own: the process `capture_*` tests spawn. It blocks forever in a
/// channel receive on its libtest thread (named after it), a second thread in a sleep.
#[test]
#[ignore = "spawned by the other tests"]
fn blocked_in_recv() {
    // Run by hand with --include-ignored, it returns: only a spawned copy blocks.
    if std::env::var_os("REAP_STACK_BLOCKER").is_none() {
        return;
    }
    let (_tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sleeper".into())
        .spawn(|| loop {
            std::thread::sleep(Duration::from_secs(3600));
        })
        .expect("spawn");
    println!("ready");
    rx.recv().expect("never"); // BLOCKS HERE
}

/// The line of this file marked `// BLOCKS HERE`.
fn blocking_line() -> usize {
    include_str!("capture.rs")
        .lines()
        .position(|l| l.ends_with("// BLOCKS HERE"))
        .expect("marked line")
        + 1
}

/// Kills and reaps the child on every path.
struct Reaped(Child);
impl Drop for Reaped {
    fn drop(&mut self) {
        self.0.kill().expect("kill");
        self.0.wait().expect("wait");
    }
}

fn spawn_blocker() -> Reaped {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "blocked_in_recv",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("REAP_STACK_BLOCKER", "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the blocker");
    let out = child.stdout.take().expect("stdout");
    let child = Reaped(child);
    let mut lines = std::io::BufReader::new(out).lines();
    // libtest prints `running 1 test`, then `test blocked_in_recv ... ` and the test `ready`.
    loop {
        let line = lines.next().expect("the blocker ended").expect("read");
        if line.ends_with("ready") {
            break;
        }
    }
    child
}

/// Every thread of `pid`: (TracerPid, state letter).
fn tracer_and_state(pid: u32) -> Vec<(String, String)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .map(|e| {
            let status =
                std::fs::read_to_string(e.expect("entry").path().join("status")).expect("status");
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .expect("field")
                    .trim()
                    .to_string()
            };
            (field("TracerPid:"), field("State:")[..1].to_string())
        })
        .collect()
}

fn wait_blocked(pid: u32) {
    // The main thread reaches its recv right after printing `ready`.
    for _ in 0..200 {
        if tracer_and_state(pid).iter().all(|(_, s)| s == "S") {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_rust_test_blocked_in_recv_is_named_with_its_file_and_line() {
    let child = spawn_blocker();
    let pid = child.0.id();
    wait_blocked(pid);
    let stacks = reap_stack::capture(pid as i32, &reap_stack::Limits::new(Duration::from_secs(5)));
    assert_eq!(stacks.error, None, "{stacks:#?}");
    let test = stacks
        .threads
        .iter()
        .find(|t| t.name == "blocked_in_recv")
        .unwrap_or_else(|| panic!("no thread named after the test: {stacks:#?}"));
    let headline = reap_stack::headline(test, None).expect("a headline");
    assert!(
        headline.starts_with("capture::blocked_in_recv  ")
            && headline.contains(&format!("reap-stack/tests/capture.rs:{}", blocking_line()))
            && headline.contains("← std::sync::mpsc::Receiver<T>::recv"),
        "{headline}\n{:#?}",
        test.frames
    );
    let sleeper = stacks
        .threads
        .iter()
        .find(|t| t.name == "sleeper")
        .expect("sleeper");
    assert!(
        sleeper.frames.iter().any(|f| f
            .function
            .as_deref()
            .is_some_and(|n| n.starts_with("std::thread::") && n.ends_with("sleep"))),
        "{sleeper:#?}"
    );
    // Let go: untraced, and asleep (not stopped) in every thread.
    for (tracer, state) in tracer_and_state(pid) {
        assert_eq!((tracer.as_str(), state.as_str()), ("0", "S"));
    }
}

#[test]
fn a_c_program_without_debuginfo_shows_its_symbols() {
    let child = Reaped(Command::new("sleep").arg("600").spawn().expect("sleep"));
    let pid = child.0.id();
    wait_blocked(pid);
    let stacks = reap_stack::capture(pid as i32, &reap_stack::Limits::new(Duration::from_secs(5)));
    let main = &stacks.threads[0];
    let names: Vec<&str> = main
        .frames
        .iter()
        .filter_map(|f| f.function.as_deref())
        .collect();
    assert!(
        names.iter().any(|n| n.contains("nanosleep")),
        "{names:?} {stacks:#?}"
    );
    assert_eq!(
        main.frames[0]
            .module
            .as_deref()
            .map(|m| m.starts_with("libc")),
        Some(true)
    );
    for (tracer, state) in tracer_and_state(pid) {
        assert_eq!((tracer.as_str(), state.as_str()), ("0", "S"));
    }
}

#[test]
fn a_process_that_is_gone_is_an_error_not_a_panic() {
    let mut child = Command::new("true").spawn().expect("true");
    let pid = child.id() as i32;
    child.wait().expect("wait");
    let stacks = reap_stack::capture(pid, &reap_stack::Limits::new(Duration::from_secs(1)));
    assert!(stacks.error.is_some(), "{stacks:#?}");
    assert!(stacks.threads.is_empty());
}
