//! The `reap-probe` binary, run against processes these tests spawn.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use serde_json::Value;

/// A `sh` script whose every process ends when its stdin reaches EOF. Drop closes stdin and
/// reaps the shell, which has reaped its own children in `wait`: nothing is left behind on any
/// path, and no signal is needed.
struct Script {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Script {
    fn start(script: &str, tag: &str) -> Script {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .env("CARGO_REAP_SUITE", tag)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Script { child, stdout }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The next line the script printed.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read");
        line.trim_end().to_owned()
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Prints `ready` once running, then waits for EOF on stdin.
const IDLE: &str = "echo ready; read x";
/// Two children, announced as `leaf PID`, both waiting for EOF on the script's stdin.
const TREE: &str = "exec 3<&0
read x <&3 & echo leaf $!
read x <&3 & echo leaf $!
wait";

fn probe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reap-probe"))
        .args(args)
        .env_remove("COLUMNS")
        .output()
        .expect("run reap-probe")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["abc"],
        &["0"],
        &["1", "2"],
        &["1", "--frobnicate"],
    ] {
        let out = probe(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains("usage: reap-probe PID"),
            "{args:?}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn help_exits_0() {
    let out = probe(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("usage: reap-probe PID"));
}

#[test]
fn missing_process_exits_1() {
    let pid = i32::MAX.to_string(); // above any pid_max
    for args in [&[pid.as_str()][..], &[pid.as_str(), "--tree", "--json"]] {
        let out = probe(args);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            text(&out.stderr).trim(),
            format!("reap-probe: no process with pid {pid}")
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn json_forensics() {
    let mut sh = Script::start(IDLE, "cli/json");
    assert_eq!(sh.line(), "ready");
    let out = probe(&[&sh.pid().to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let p = &v["process"];
    assert_eq!(p["pid"], sh.pid());
    assert_eq!(p["ppid"], std::process::id());
    assert_eq!(p["comm"], "sh");
    assert_eq!(p["cmdline"], serde_json::json!(["sh", "-c", IDLE]));
    assert_eq!(p["tag"], "cli/json");
    assert!(p["cgroup"].is_string());
    assert!(v["exe"].as_str().is_some_and(|e| e.ends_with("sh")), "{v}");
    assert_eq!(v["threads"][0]["tid"], sh.pid());
    // stdin and stdout are our pipes: one read end, one write end.
    assert_eq!(v["fds"][0]["kind"]["type"], "pipe");
    assert_eq!(v["fds"][0]["kind"]["read"], true);
    assert_eq!(v["fds"][1]["kind"]["write"], true);
    assert!(v["fd_summary"]["pipes"].as_u64().unwrap() >= 2);
    assert_eq!(v["findings"], serde_json::json!([]));
    let back: reap_probe::Forensics = serde_json::from_value(v).expect("a Forensics");
    assert_eq!(back.process.pid, sh.pid());
}

#[test]
fn text_report() {
    let mut sh = Script::start(IDLE, "cli/text");
    assert_eq!(sh.line(), "ready");
    blocked_in(sh.pid(), "read(fd=0)");
    let out = probe(&[&sh.pid().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let header = format!("pid {} (sh) S sleeping, age ", sh.pid());
    assert!(stdout.starts_with(&header), "{stdout}");
    assert!(stdout
        .lines()
        .next()
        .unwrap()
        .ends_with(": sh -c echo ready; read x"));
    assert!(stdout.contains("\n  tag      cli/text\n"), "{stdout}");
    assert!(stdout.contains("\n  syscall  read(fd=0)\n"), "{stdout}");
    assert!(
        stdout.contains("\n  SIGTERM  default (terminates)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\n           0   pipe "), "{stdout}");
    assert!(stdout.ends_with("\n  findings none\n"), "{stdout}");
}

/// Wait until `pid` sleeps in `syscall`. Nothing but /proc says when a process has reached its
/// blocking call, so this polls (at most 10 s).
fn blocked_in(pid: i32, syscall: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let f = reap_probe::forensics(pid, &Default::default()).expect("forensics");
        if f.process.state == 'S' && f.syscall.as_deref() == Some(syscall) && f.wchan.is_some() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{pid} never blocked in {syscall}: {f:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Kills and reaps a child on every path.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn wedged_cat_with_context() {
    use std::os::fd::OwnedFd;
    // `cat` reading a pipe whose write end is its own stdout: EOF never comes.
    let (read, write): (OwnedFd, OwnedFd) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let inode = rustix::fs::fstat(&read).unwrap().st_ino;
    let cat = {
        let mut cmd = Command::new("cat");
        cmd.stdin(Stdio::from(read))
            .stdout(Stdio::from(write))
            .stderr(Stdio::null());
        Killed(cmd.spawn().unwrap())
    };
    let pid = cat.0.id() as i32;
    blocked_in(pid, "read(fd=0)");

    let out = probe(&[
        &pid.to_string(),
        "--runner-pipe",
        &inode.to_string(),
        "--reaper",
        &std::process::id().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
        "\n    holds-both-pipe-ends: holds both ends of pipe {inode} (fd 0 read, fd 1 write): a \
         read on it can never see EOF; it is blocked right now reading fd 0\n"
    )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
        "\n    holds-runner-pipe: holds the write end of the runner's output pipe {inode} (fd 1)"
    )),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n    orphaned: its parent exited and it was reparented to the runner"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("\n           0   pipe {inode} read\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("\n           1   pipe {inode} write\n")),
        "{stdout}"
    );

    let out = probe(&[&pid.to_string(), "--json", "--suite-sid", "1"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rules: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["holds-both-pipe-ends", "escaped-session"]);
}

#[test]
fn tree_as_json_and_text() {
    let mut sh = Script::start(TREE, "cli/tree");
    let mut leaves: Vec<i32> = (0..2)
        .map(|_| sh.line().strip_prefix("leaf ").unwrap().parse().unwrap())
        .collect();
    leaves.sort_unstable();
    let pid = sh.pid().to_string();

    let out = probe(&[&pid, "--tree", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let list = v.as_array().expect("a list");
    let pids: Vec<i64> = list
        .iter()
        .map(|f| f["process"]["pid"].as_i64().unwrap())
        .collect();
    let mut expected = vec![sh.pid() as i64];
    expected.extend(leaves.iter().map(|&p| p as i64));
    assert_eq!(pids, expected, "parent first, then children in pid order");
    assert!(list[1..].iter().all(|f| f["process"]["tag"] == "cli/tree"
        && f["process"]["ppid"] == sh.pid()
        && f["findings"] == serde_json::json!([])));

    let out = probe(&[&pid, "--tree", "--width", "30"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let headers: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("pid "))
        .collect();
    assert_eq!(headers.len(), 3, "{stdout}");
    assert!(
        headers[0].starts_with(&format!("pid {pid} (sh)")),
        "{stdout}"
    );
    for (line, leaf) in headers[1..].iter().zip(&leaves) {
        assert!(
            line.starts_with(&format!("    pid {leaf} (sh)")),
            "{stdout}"
        );
    }
    assert!(headers.iter().all(|l| l.chars().count() <= 30), "{stdout}");
    assert_eq!(stdout.matches("\n\n    pid ").count(), 2, "{stdout}");
}

#[test]
fn tree_of_a_daemon_compares_with_the_root() {
    // The root's group and session stand for the suite's.
    let mut sh = Script::start(
        "exec 3<&0; setsid sh -c 'read x <&3' & echo daemon $!; wait",
        "cli/daemon",
    );
    let daemon: i32 = sh.line().strip_prefix("daemon ").unwrap().parse().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // setsid may still be on its way to setsid(2): wait for the new session.
    while reap_probe::snapshot(daemon, Default::default())
        .unwrap()
        .sid
        != daemon
    {
        assert!(
            std::time::Instant::now() < deadline,
            "never got its session"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let out = probe(&[&sh.pid().to_string(), "--tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "\n        escaped-session: in session {daemon}, not the suite's "
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "\n        escaped-group: in process group {daemon}, not the suite's "
        )),
        "{stdout}"
    );
}
