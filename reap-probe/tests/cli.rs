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
fn json_snapshot() {
    let mut sh = Script::start(IDLE, "cli/json");
    assert_eq!(sh.line(), "ready");
    let out = probe(&[&sh.pid().to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["pid"], sh.pid());
    assert_eq!(v["ppid"], std::process::id());
    assert_eq!(v["comm"], "sh");
    assert_eq!(v["cmdline"], serde_json::json!(["sh", "-c", IDLE]));
    assert_eq!(v["tag"], "cli/json");
    assert!(v["cgroup"].is_string());
}

#[test]
fn text_snapshot() {
    let mut sh = Script::start(IDLE, "cli/text");
    assert_eq!(sh.line(), "ready");
    let out = probe(&[&sh.pid().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("pid         {}\n", sh.pid())),
        "{stdout}"
    );
    assert!(stdout.contains("comm        \"sh\"\n"), "{stdout}");
    assert!(stdout.contains("tag         cli/text\n"), "{stdout}");
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
    assert_eq!(v["process"]["pid"], sh.pid());
    let descendants: Vec<i64> = v["descendants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(
        descendants,
        leaves.iter().map(|&p| p as i64).collect::<Vec<_>>()
    );
    assert!(v["descendants"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["tag"] == "cli/tree" && d["ppid"] == sh.pid()));

    let out = probe(&[&pid, "--tree", "--width", "30"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let tree: Vec<&str> = stdout
        .split("\n\n")
        .nth(1)
        .expect("tree part")
        .lines()
        .collect();
    assert_eq!(tree.len(), 3, "{stdout}");
    assert!(tree[0].starts_with(&format!("{pid} ")), "{stdout}");
    for (line, leaf) in tree[1..].iter().zip(&leaves) {
        assert!(line.starts_with(&format!("  {leaf} ")), "{stdout}");
    }
    assert!(tree.iter().all(|l| l.chars().count() <= 30), "{stdout}");
}
