//! Real child processes for the tests, each owned by a guard that ends and reaps it on every path.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{snapshot, ProcessInfo, ScanOptions, TAG_VAR};

/// Owns a spawned child. Drop closes the child's stdin (EOF for every process reading that pipe),
/// kills the child if `kill_on_drop`, and always waits for it, so no test leaves a process or a
/// zombie behind even when an assertion fails.
pub(crate) struct Guard {
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
    kill_on_drop: bool,
}

impl Guard {
    /// Spawn `cmd` with stdin piped (so it can be given EOF) and stdout discarded; Drop kills it.
    pub(crate) fn spawn(mut cmd: Command) -> Guard {
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn test child");
        Guard {
            child,
            stdout: None,
            kill_on_drop: true,
        }
    }

    /// `sleep 30` with the tag set to `tag`, or with the tag variable removed.
    ///
    /// Note that `spawn` may return while the child is still inside `execve` (the kernel lets a
    /// vfork parent go as soon as the old memory is released): comm, cmdline and environment can
    /// still be the parent's. Use [`wait_for_state`] or [`Guard::idle`] before inspecting those.
    pub(crate) fn sleep(tag: Option<&str>) -> Guard {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        set_tag(&mut cmd, tag);
        Guard::spawn(cmd)
    }

    /// `sh -c 'echo ready; read x' ARGS...`, returned once it has printed `ready`, so its exec is
    /// complete. It blocks reading stdin until Drop closes the pipe (and kills it).
    pub(crate) fn idle(tag: Option<&str>, args: &[&OsStr]) -> Guard {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo ready; read x"]).args(args);
        set_tag(&mut cmd, tag);
        Guard::ready(cmd)
    }

    /// `sh -c SCRIPT` (untagged), returned once it has printed `ready`. Drop kills it.
    pub(crate) fn sh_ready(script: &str) -> Guard {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        set_tag(&mut cmd, None);
        Guard::ready(cmd)
    }

    /// Spawn `cmd` with stdin and stdout piped and return once it has printed the line `ready`
    /// (the event that says its setup is done). Drop kills it.
    pub(crate) fn ready(mut cmd: Command) -> Guard {
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn test child");
        let mut guard = Guard::adopt(child);
        let mut stdout = BufReader::new(guard.child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read ready line");
        assert_eq!(line, "ready\n");
        guard.stdout = Some(stdout);
        guard
    }

    /// Take ownership of a child spawned elsewhere: Drop kills and reaps it.
    pub(crate) fn adopt(child: Child) -> Guard {
        Guard {
            child,
            stdout: None,
            kill_on_drop: true,
        }
    }

    /// Run a `sh` script that builds a process tree whose leaves all read the script's stdin.
    ///
    /// The script must `exec 3<&0` and start leaves as `read x <&3 &` (a non-interactive shell
    /// points an asynchronous command's stdin at /dev/null unless redirected; a builtin runs in a
    /// forked subshell, so a leaf's pid is final and complete as soon as `$!` is known), announce
    /// pids on stdout as `LABEL PID` lines, and end with `wait`. Closing the pipe (Drop) ends every
    /// leaf, every shell reaps its children in `wait` and exits, and we reap the top shell:
    /// nothing is orphaned and nothing needs a signal. This also holds if the test process dies.
    pub(crate) fn tree(script: &str, tag: &str) -> Guard {
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env(TAG_VAR, tag)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let mut guard = Guard {
            child,
            stdout: None,
            kill_on_drop: false,
        };
        guard.stdout = guard.child.stdout.take().map(BufReader::new);
        guard
    }

    /// Read `n` announced `LABEL PID` lines, grouped by label (pids in announcement order).
    pub(crate) fn read_pids(&mut self, n: usize) -> HashMap<String, Vec<i32>> {
        let stdout = self.stdout.as_mut().expect("tree guard has stdout");
        let mut out: HashMap<String, Vec<i32>> = HashMap::new();
        for _ in 0..n {
            let mut line = String::new();
            assert_ne!(stdout.read_line(&mut line).expect("read"), 0, "early EOF");
            let (label, pid) = line.trim().split_once(' ').expect("LABEL PID line");
            out.entry(label.to_owned())
                .or_default()
                .push(pid.parse().expect("pid"));
        }
        out
    }

    /// Pid of the child.
    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Kill and reap the child now; returns its pid, which is free for reuse from now on.
    pub(crate) fn kill_and_wait(mut self) -> i32 {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
        self.pid()
    }

    /// Kill the child and wait until it is a zombie, without reaping it (Drop reaps it).
    pub(crate) fn kill_leave_zombie(&mut self) {
        use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
        self.child.kill().expect("kill");
        let pid = Pid::from_raw(self.pid()).expect("pid");
        waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        )
        .expect("waitid");
    }
}

/// Set the tag variable, or remove it: the test binary itself may run under cargo-reap, tagged.
fn set_tag(cmd: &mut Command, tag: Option<&str>) {
    match tag {
        Some(tag) => cmd.env(TAG_VAR, tag),
        None => cmd.env_remove(TAG_VAR),
    };
}

impl Drop for Guard {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        if self.kill_on_drop {
            if let Err(e) = self.child.kill() {
                eprintln!("test guard: kill {}: {e}", self.child.id());
            }
        }
        if let Err(e) = self.child.wait() {
            eprintln!("test guard: wait {}: {e}", self.child.id());
        }
    }
}

/// Poll `pid` until its state is `want`, for at most 10 s.
///
/// Used only where no event exists to wait for: nothing tells us when a freshly exec'd `sleep`
/// has reached its blocking syscall, except /proc itself.
pub(crate) fn wait_for_state(pid: i32, want: char) -> ProcessInfo {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = snapshot(pid, ScanOptions::ALL).expect("snapshot while polling");
        if info.state == want {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} never reached state {want}: {info:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Poll the forensics of `pid` until `done` holds, for at most 10 s.
///
/// Same excuse as [`wait_for_state`]: nothing but /proc tells when a process has reached its
/// blocking syscall.
pub(crate) fn wait_for_forensics(
    pid: i32,
    ctx: &crate::FindingContext,
    what: &str,
    done: impl Fn(&crate::Forensics) -> bool,
) -> crate::Forensics {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let f = crate::forensics(pid, ctx).expect("forensics while polling");
        if done(&f) {
            return f;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} never got to: {what}: {f:#?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A process that is not our child (its parent exited), ended through a pipe and waited for
/// through a pidfd.
///
/// It must block reading from a pipe whose only write end is `stdin`: Drop closes that pipe
/// (EOF ends the process) and polls the pidfd until the process has exited, which its new parent
/// (init or a subreaper) then reaps. Should it not exit within 10 s, it is killed through the
/// pidfd, which can never hit a reused pid.
pub(crate) struct Orphan {
    pub(crate) pid: i32,
    pidfd: std::os::fd::OwnedFd,
    stdin: Option<std::process::ChildStdin>,
}

impl Orphan {
    /// Take over process `pid`, which must be alive now, with the write end `stdin` of the pipe
    /// it reads.
    pub(crate) fn new(pid: i32, stdin: std::process::ChildStdin) -> Orphan {
        use rustix::process::{pidfd_open, Pid, PidfdFlags};
        let pidfd =
            pidfd_open(Pid::from_raw(pid).expect("pid"), PidfdFlags::empty()).expect("pidfd_open");
        Orphan {
            pid,
            pidfd,
            stdin: Some(stdin),
        }
    }
}

impl Drop for Orphan {
    fn drop(&mut self) {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        use rustix::process::{pidfd_send_signal, Signal};
        drop(self.stdin.take());
        let wait = |secs: i64| {
            let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
            let timeout = Timespec {
                tv_sec: secs,
                tv_nsec: 0,
            };
            matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0)
        };
        if !wait(10) {
            if let Err(e) = pidfd_send_signal(&self.pidfd, Signal::KILL) {
                eprintln!("test guard: SIGKILL via pidfd: {e}");
            }
            wait(10);
        }
    }
}
