//! The lifeline's three processes, seen from outside during a `cargo reap
//! run` whose command blocks until told: the guardian (the process started),
//! the runner and the lifeline guard, which the guardian forks — its child,
//! the runner's sibling, never an exec of cargo-reap — with only the
//! descriptors it needs. And after a run, normal or with its runner killed,
//! none of them is left.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;

/// A `cargo reap run` whose command (`sh`, and a `sleep` it started) has
/// written its pid into the fifo `ready` and waits for a line on the fifo
/// `go`.
struct Blocked {
    guardian: Child,
    /// Every process of the run carries `REAP_FIXTURE_MARK=<marker>`.
    marker: String,
    go: PathBuf,
    /// The `go` fifo, once the line is written.
    released: Option<File>,
    /// The command's stderr (and cargo-reap's), read to the end by a thread
    /// (`None` once joined).
    stderr: Option<std::thread::JoinHandle<String>>,
    _scratch: Scratch,
}

impl Blocked {
    fn start(isolation: &str) -> Blocked {
        let scratch = Scratch::new("lifeline");
        let ready = scratch.0.join("ready");
        let go = scratch.0.join("go");
        for fifo in [&ready, &go] {
            let made = Command::new("mkfifo").arg(fifo).status().unwrap();
            assert!(made.success(), "mkfifo {}", fifo.display());
        }
        // Open before the command can write: a fifo's writer waits for a
        // reader. Non-blocking, so that a cargo-reap that fails early is
        // seen (its exit) instead of a read waiting forever.
        let mut ready_r = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc_o_nonblock())
            .open(&ready)
            .unwrap();
        let marker = format!("lifeline-{}-{}", std::process::id(), scratch.0.display());
        let mut guardian = Command::new(REAP)
            .args(["run", "--isolation", isolation, "--", "sh", "-c"])
            // Its output elsewhere: the end of our stderr pipe is cargo-reap's.
            // Ready once `sleep` has exec'd: while it execs, its environ
            // (the run's mark) reads empty.
            .arg("exec >/dev/null 2>&1; sleep 3879 & until read -r c < /proc/$!/comm && [ \"$c\" = sleep ]; do :; done; echo $$ > \"$1\"; read line < \"$2\"; kill $!; wait")
            .arg("sh")
            .arg(&ready)
            .arg(&go)
            .env("REAP_FIXTURE_MARK", &marker)
            .env_remove("CARGO_REAP_SUITE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = guardian.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            pipe.read_to_string(&mut s).unwrap();
            s
        });
        let run = Blocked {
            guardian,
            marker,
            go,
            released: None,
            stderr: Some(stderr),
            _scratch: scratch,
        };
        wait_readable_or_exit(&ready_r, &run.guardian);
        // Readable: now read it whole, blocking until the command closes it.
        rustix::fs::fcntl_setfl(&ready_r, rustix::fs::OFlags::empty()).unwrap();
        let mut line = String::new();
        ready_r.read_to_string(&mut line).unwrap();
        assert!(
            line.trim().parse::<i32>().is_ok(),
            "the command wrote its pid: {line:?}"
        );
        run
    }

    fn guardian_pid(&self) -> i32 {
        self.guardian.id() as i32
    }

    /// Let the command end.
    fn release(&mut self) {
        // Read-write: opening never waits for the reader (the command opens
        // its end when it gets there, and finds the line). Kept open until
        // the run ends: a fifo's data is dropped with its last opener.
        let mut go = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.go)
            .unwrap();
        go.write_all(b"go\n").unwrap();
        self.released = Some(go);
    }

    /// Wait for the guardian's exit: its code and everything it printed.
    fn finish(&mut self) -> (Option<i32>, String) {
        let status = self.guardian.wait().unwrap();
        let stderr = self.stderr.take().expect("finished once");
        (status.code(), stderr.join().unwrap())
    }
}

/// A test that failed midway: stop the run as a user would, by killing the
/// process they started (the runner then stops at once and kills its
/// command), and wait for it.
impl Drop for Blocked {
    fn drop(&mut self) {
        if matches!(self.guardian.try_wait(), Ok(None)) {
            if let Err(e) = self.guardian.kill() {
                eprintln!("kill the guardian: {e}");
            }
            if let Err(e) = self.guardian.wait() {
                eprintln!("wait for the guardian: {e}");
            }
        }
    }
}

fn libc_o_nonblock() -> i32 {
    rustix::fs::OFlags::NONBLOCK.bits() as i32
}

/// Wait (on events: poll) until `fifo` has data or the guardian exited
/// (which fails the test); at most two minutes (a loaded machine).
fn wait_readable_or_exit(fifo: &File, guardian: &Child) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_child(guardian),
        rustix::process::PidfdFlags::empty(),
    )
    .unwrap();
    let fifo = fifo.as_fd();
    let mut fds = [
        PollFd::new(&fifo, PollFlags::IN),
        PollFd::new(&pidfd, PollFlags::IN),
    ];
    let limit = Timespec {
        tv_sec: 120,
        tv_nsec: 0,
    };
    let n = loop {
        match poll(&mut fds, Some(&limit)) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other.unwrap(),
        }
    };
    assert!(n > 0, "the command did not start within two minutes");
    assert!(
        fds[1].revents().is_empty(),
        "cargo-reap exited before its command was ready"
    );
}

/// The guardian's two children: (runner, guard), told apart by name.
fn runner_and_guard(guardian: i32) -> (i32, i32) {
    let kids = children_of(guardian);
    let guards: Vec<i32> = kids
        .iter()
        .copied()
        .filter(|&p| comm_of(p).as_deref() == Some(GUARD_NAME))
        .collect();
    assert_eq!(
        guards.len(),
        1,
        "one child of the guardian named {GUARD_NAME}: {kids:?}"
    );
    let runner = runner_of(guardian);
    assert_eq!(kids.len(), 2, "the runner and the guard only: {kids:?}");
    (runner, guards[0])
}

fn link(pid: i32, what: &str) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/{what}")).unwrap()
}

/// A `/proc/PID/status` field, as a hexadecimal signal set.
fn sigset(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

/// The descriptors of `pid`: (number, what it refers to). One closed while
/// listed (the runner opens /proc files as it samples) is left out.
fn fds(pid: i32) -> Vec<(i32, PathBuf)> {
    let mut out: Vec<(i32, PathBuf)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().parse().unwrap();
            std::fs::read_link(e.path()).ok().map(|l| (n, l))
        })
        .collect();
    out.sort();
    out
}

/// Process `pid` with start time `start` still exists (alive, or a zombie
/// nobody reaped).
fn exists(pid: i32, start: u64) -> bool {
    reap_probe::start_time(pid).is_ok_and(|t| t == start)
}

/// During a run, the guard is the guardian's child — not the runner's —
/// named `reap-guard`, in its own process group, ignoring the interrupts
/// with an empty signal mask. It is cargo-reap and never executed anything
/// after its fork: its command line, its environment and its auxiliary
/// vector (the addresses the kernel chose when it loaded the program, new
/// and randomized at every exec) are the guardian's byte for byte; an exec'd
/// guard has `__guard` in its command line, `CARGO_REAP_INTERNAL_GUARD` in
/// its environment and auxv addresses of its own. It holds three
/// descriptors: the pipe whose only other holder is the runner (as stdin),
/// /dev/null as stdout, the guardian's stderr. After the run, neither it
/// nor any process of the run is left.
#[test]
fn the_guard_is_forked_by_the_guardian_and_holds_only_its_pipe() {
    require_root();
    let mut run = Blocked::start("process-group");
    let guardian = run.guardian_pid();
    let (runner, guard) = runner_and_guard(guardian);
    let guard_start = reap_probe::start_time(guard).unwrap();
    let runner_start = reap_probe::start_time(runner).unwrap();
    assert!(
        !children_of(runner).contains(&guard),
        "the guard is not the runner's child"
    );

    // cargo-reap, never executed again.
    assert_eq!(
        link(guard, "exe"),
        std::fs::canonicalize(REAP).unwrap(),
        "the guard runs cargo-reap"
    );
    for what in ["cmdline", "environ", "auxv"] {
        let of_guard = std::fs::read(format!("/proc/{guard}/{what}")).unwrap();
        let of_guardian = std::fs::read(format!("/proc/{guardian}/{what}")).unwrap();
        assert!(!of_guard.is_empty(), "{what} of the guard is readable");
        assert_eq!(
            of_guard, of_guardian,
            "the guard's {what} is the guardian's: it was forked, never executed"
        );
    }
    let randomized = std::fs::read_to_string("/proc/sys/kernel/randomize_va_space").unwrap();
    assert_ne!(
        randomized.trim(),
        "0",
        "address space randomization is on, so an exec would have changed the auxv"
    );

    // Its own process group, interrupts ignored, nothing blocked.
    let stat = std::fs::read_to_string(format!("/proc/{guard}/stat")).unwrap();
    let pgid: i32 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(pgid, guard, "the guard leads its own process group");
    let ignored = sigset(guard, "SigIgn");
    for sig in [1, 2, 13, 15] {
        assert_ne!(
            ignored & (1 << (sig - 1)),
            0,
            "signal {sig} ignored: {ignored:#x}"
        );
    }
    assert_eq!(sigset(guard, "SigBlk"), 0, "an empty signal mask");

    // Its descriptors: the pipe (only the runner holds the other end), /dev/null, stderr.
    let held = fds(guard);
    let numbers: Vec<i32> = held.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [0, 1, 2], "the guard's descriptors: {held:?}");
    let pipe = &held[0].1;
    assert!(pipe.to_string_lossy().starts_with("pipe:["), "{held:?}");
    assert_eq!(held[1].1, Path::new("/dev/null"));
    assert_eq!(held[2].1, link(guardian, "fd/2"), "the guardian's stderr");
    let runner_fds = fds(runner);
    assert_eq!(
        runner_fds.iter().filter(|(_, t)| t == pipe).count(),
        1,
        "the runner holds the pipe's other end once: {runner_fds:?}"
    );
    assert!(
        fds(guardian).iter().all(|(_, t)| t != pipe),
        "the guardian closed both ends"
    );

    run.release();
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !exists(guard, guard_start) && !exists(runner, runner_start),
        "the guard and the runner are gone and reaped when the guardian exits: {stderr}"
    );
    assert_eq!(
        marked(&run.marker),
        Vec::<String>::new(),
        "no process of the run is left: {stderr}"
    );
}

/// SIGKILL of the runner (found as the guardian's child that is not the
/// guard) while its command and the command's child run: the guardian exits
/// with 137, and by then the command, its child, the runner and the guard
/// are all gone and reaped. Both isolation modes.
#[test]
fn sigkill_of_the_runner_leaves_no_guard_and_no_process_of_the_run() {
    require_root();
    for isolation in ["cgroup", "process-group"] {
        let mut run = Blocked::start(isolation);
        let guardian = run.guardian_pid();
        let (runner, guard) = runner_and_guard(guardian);
        let guard_start = reap_probe::start_time(guard).unwrap();
        let before = marked(&run.marker);
        assert!(
            before.len() >= 5,
            "{isolation}: guardian, guard, runner, sh and sleep: {before:?}"
        );
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(runner).unwrap(),
            rustix::process::Signal::KILL,
        )
        .unwrap();
        let (code, stderr) = run.finish();
        assert_eq!(code, Some(137), "{isolation}: {stderr}");
        assert!(
            !exists(guard, guard_start),
            "{isolation}: the guard is gone and reaped: {stderr}"
        );
        assert_eq!(
            marked(&run.marker),
            Vec::<String>::new(),
            "{isolation}: no process of the run is left: {stderr}"
        );
        assert!(
            stderr.contains("was killed by signal 9"),
            "{isolation}: the guardian says what happened: {stderr}"
        );
    }
}

/// A run whose runner ends cleanly leaves nothing, in both modes, and
/// nothing of the lifeline is said (the guard had nothing to kill).
#[test]
fn a_normal_run_leaves_no_guard_and_no_cargo_reap_process() {
    require_root();
    for isolation in ["cgroup", "process-group"] {
        let mut run = Blocked::start(isolation);
        let (runner, guard) = runner_and_guard(run.guardian_pid());
        let starts = [runner, guard].map(|p| (p, reap_probe::start_time(p).unwrap()));
        run.release();
        let (code, stderr) = run.finish();
        assert_eq!(code, Some(0), "{isolation}: {stderr}");
        for (pid, start) in starts {
            assert!(!exists(pid, start), "{isolation}: pid {pid} left: {stderr}");
        }
        assert_eq!(
            marked(&run.marker),
            Vec::<String>::new(),
            "{isolation}: {stderr}"
        );
        assert!(
            !stderr.contains("guard"),
            "{isolation}: nothing said of the guard: {stderr}"
        );
    }
}

/// The guardian dies first (SIGKILL), then the runner, before it could
/// react (it is stopped first, SIGSTOP): the guard, reparented away from
/// its dead guardian, still sees the runner's end without `end` and kills
/// the command and its child — the containment it was told, and the tag.
/// Both modes.
#[test]
fn the_guard_does_its_job_when_the_guardian_died_first() {
    use rustix::process::{kill_process, Pid, PidfdFlags, Signal};
    require_root();
    for isolation in ["cgroup", "process-group"] {
        let mut run = Blocked::start(isolation);
        let guardian = run.guardian_pid();
        let (runner, guard) = runner_and_guard(guardian);
        let guard_fd =
            rustix::process::pidfd_open(Pid::from_raw(guard).unwrap(), PidfdFlags::empty())
                .unwrap();
        let runner_pid = Pid::from_raw(runner).unwrap();
        kill_process(runner_pid, Signal::STOP).unwrap();
        kill_process(Pid::from_raw(guardian).unwrap(), Signal::KILL).unwrap();
        kill_process(runner_pid, Signal::KILL).unwrap();
        let (code, stderr) = run.finish();
        assert_eq!(code, None, "{isolation}: the guardian was killed");
        // The guard holds the guardian's stderr, which we read to its end:
        // it is exiting (it closes its files before its exit is complete).
        let mut fds = [rustix::event::PollFd::new(
            &guard_fd,
            rustix::event::PollFlags::IN,
        )];
        let limit = rustix::event::Timespec {
            tv_sec: 10,
            tv_nsec: 0,
        };
        let ended = rustix::event::poll(&mut fds, Some(&limit)).unwrap();
        assert_eq!(ended, 1, "{isolation}: the guard has exited");
        assert!(
            stderr.contains("the runner ended without a clean end"),
            "{isolation}: the guard acted: {stderr}"
        );
        assert_eq!(
            marked(&run.marker),
            Vec::<String>::new(),
            "{isolation}: no process of the run is left: {stderr}"
        );
    }
}
