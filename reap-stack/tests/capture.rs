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
    spawn_test("blocked_in_recv")
}

/// This test binary running only `test` (ignored, so `--ignored`), once it printed `ready`.
fn spawn_test(test: &str) -> Reaped {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([
            test,
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

/// Untraced and not stopped, in every thread (running again, or back in its system call).
fn assert_let_go(pid: u32) {
    for (tracer, state) in tracer_and_state(pid) {
        assert_eq!(tracer, "0", "still traced");
        assert!(state != "t" && state != "T", "left stopped: {state}");
    }
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
    assert_let_go(pid);
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
    assert_let_go(pid);
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

/// Not a test on its own: its thread is stuck in `vfork` (uninterruptible: state D) until the
/// child, which pauses, is killed.
#[test]
#[ignore = "spawned by the other tests"]
fn stuck_in_vfork() {
    if std::env::var_os("REAP_STACK_BLOCKER").is_none() {
        return;
    }
    println!("ready");
    // clone(CLONE_VFORK) without CLONE_VM: a fork whose parent waits, uninterruptibly, until
    // the child execs or exits. SAFETY: the child (a copy, as after fork) only calls pause(2)
    // and _exit(2), both async-signal-safe.
    unsafe {
        let flags = (nix::libc::CLONE_VFORK | nix::libc::SIGCHLD) as nix::libc::c_long;
        if nix::libc::syscall(nix::libc::SYS_clone, flags, 0, 0, 0, 0) == 0 {
            nix::libc::pause();
            nix::libc::_exit(0);
        }
    }
}

/// A thread that cannot stop for the tracer (uninterruptible, in vfork) is left alone: it is
/// reported, the other threads are captured, and nothing stays traced.
#[test]
fn a_thread_in_uninterruptible_sleep_is_reported_and_left_alone() {
    let child = spawn_test("stuck_in_vfork");
    let pid = child.0.id();
    wait_until_state(pid, "stuck_in_vfork", "D");
    let stacks = reap_stack::capture(
        pid as i32,
        &reap_stack::Limits::new(Duration::from_secs(10)),
    );
    let stuck = stacks
        .threads
        .iter()
        .find(|t| t.name == "stuck_in_vfork")
        .expect("thread");
    assert!(
        stuck
            .error
            .as_deref()
            .is_some_and(|e| e.contains("not stopped: in state D")),
        "{stacks:#?}"
    );
    assert!(
        !stacks.threads[0].frames.is_empty(),
        "the main thread: {stacks:#?}"
    );
    assert!(stacks.skipped.is_empty(), "{stacks:#?}");
    assert!(reap_stack::release_stragglers(Duration::ZERO).is_empty());
    // The vfork child first, so that the parent's thread can go; Reaped ends the parent.
    for c in children_of(pid) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the vfork child");
    }
    assert_let_go(pid);
}

/// The children of every thread of `pid`.
fn children_of(pid: u32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Wait until the thread named `name` of `pid` is in state `state`.
fn wait_until_state(pid: u32, name: &str, state: &str) {
    for _ in 0..1000 {
        let found = std::fs::read_dir(format!("/proc/{pid}/task"))
            .expect("task dir")
            .filter_map(|e| e.ok())
            .any(|e| {
                let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
                comm.trim() == name
                    && status
                        .lines()
                        .any(|l| l.starts_with("State:") && l[6..].trim().starts_with(state))
            });
        if found {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let states: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("status")).ok())
        .map(|s| s.lines().take(3).collect::<Vec<_>>().join(" "))
        .collect();
    panic!("thread {name} of {pid} never reached state {state}: {states:?}");
}

/// Not a test on its own: a tracer that dies mid-capture. It seizes and stops every thread of
/// the process `REAP_STACK_TRACEE` names, as a capture does, says `stopped`, and waits for its
/// stdin to close; the test kills it with SIGKILL before that.
#[test]
#[ignore = "spawned by the other tests"]
fn tracer_killed_mid_capture() {
    let Some(tracee) = std::env::var_os("REAP_STACK_TRACEE") else {
        return;
    };
    let tracee: i32 = tracee.to_str().and_then(|t| t.parse().ok()).expect("pid");
    let mut seized = reap_stack::Seized::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for tid in children_of_task_dir(tracee) {
        seized.seize(tid).expect("seize");
        assert!(seized.wait_stopped(tid, deadline).expect("stop"), "exited");
    }
    println!("stopped");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut rest).expect("stdin");
}

/// The thread ids of `pid`.
fn children_of_task_dir(pid: i32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .map(|e| {
            e.expect("entry")
                .file_name()
                .to_str()
                .expect("tid")
                .parse()
                .expect("tid")
        })
        .collect()
}

/// cargo-reap killed mid-capture (SIGKILL while every thread of a suite's process is seized
/// and stopped): the kernel detaches its tracees and lets them run; nothing stays traced or
/// stopped, and the process can be captured again.
#[test]
fn a_tracer_killed_mid_capture_leaves_its_tracee_running() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { nix::libc::geteuid() } != 0 {
        eprintln!("skipped: the tracer is the blocker's sibling, which needs root to trace it");
        return;
    }
    let blocker = spawn_blocker();
    let pid = blocker.0.id();
    wait_blocked(pid);
    let tracer = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "tracer_killed_mid_capture",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("REAP_STACK_TRACEE", pid.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the tracer");
    let mut tracer = Reaped(tracer);
    let out = tracer.0.stdout.take().expect("stdout");
    let stopped = std::io::BufRead::lines(std::io::BufReader::new(out))
        .map(|l| l.expect("read"))
        .any(|l| l.ends_with("stopped"));
    assert!(stopped, "the tracer ended before stopping the blocker");
    // Mid-capture, seen from outside: every thread stopped and traced by a thread of the
    // tracer (`TracerPid` names the tracing thread: libtest's thread of the test).
    let tracer_pid = tracer.0.id();
    for (by, state) in tracer_and_state(pid) {
        let of_tracer = std::path::Path::new(&format!("/proc/{tracer_pid}/task/{by}")).exists();
        assert!(of_tracer && state == "t", "traced by {by}, state {state}");
    }
    tracer.0.kill().expect("SIGKILL the tracer");
    let status = tracer.0.wait().expect("wait for the tracer");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert_let_go(pid);
    let again = reap_stack::capture(pid as i32, &reap_stack::Limits::new(Duration::from_secs(5)));
    assert!(again.error.is_none(), "{again:#?}");
    assert_let_go(pid);
}
