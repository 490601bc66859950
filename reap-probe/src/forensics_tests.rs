//! Forensics tests against real processes (and sockets) that each test creates and always ends.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};

use rustix::event::{poll, PollFd, PollFlags};

use crate::fds::{classify, parse_fdinfo_access};
use crate::forensics::{normalize_wchan, status_mask};
use crate::net::{parse_addr, parse_inet, parse_unix, tcp_state_name};
use crate::testutil::{wait_for_forensics, wait_for_state, Guard, Orphan};
use crate::*;

fn me() -> i32 {
    std::process::id() as i32
}

fn none() -> FindingContext {
    FindingContext::default()
}

/// A pipe whose ends are closed in every child we do not hand them to (tests run in parallel).
fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe")
}

fn inode_of(fd: impl AsFd) -> u64 {
    rustix::fs::fstat(fd).expect("fstat").st_ino
}

/// The finding of `rule`, or a panic showing all of them.
fn finding(f: &Forensics, rule: Rule) -> &Finding {
    f.findings
        .iter()
        .find(|x| x.rule == rule)
        .unwrap_or_else(|| panic!("no {rule} finding in {:#?}", f.findings))
}

fn fd_kind(f: &Forensics, fd: i32) -> &FdKind {
    &f.fds
        .iter()
        .find(|x| x.fd == fd)
        .unwrap_or_else(|| panic!("no fd {fd} in {:#?}", f.fds))
        .kind
}

/// Block until `fd` reports one of `events` (an event, not a sleep), at most 10 s.
fn wait_readable(fd: impl AsFd, events: PollFlags) {
    let mut fds = [PollFd::new(&fd, events)];
    let timeout = rustix::event::Timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    let n = poll(&mut fds, Some(&timeout)).expect("poll");
    assert_eq!(n, 1, "no {events:?} within 10 s");
}

/// `cat` reading from a pipe whose write end it holds itself: it can never see EOF.
fn wedged_cat() -> (Guard, u64) {
    let (read, write) = pipe();
    let inode = inode_of(&read);
    let child = {
        // The Command owns our copies of both ends; dropping it closes them, so that only the
        // child holds the pipe.
        let mut cmd = Command::new("cat");
        cmd.stdin(Stdio::from(read))
            .stdout(Stdio::from(write))
            .stderr(Stdio::null());
        cmd.spawn().expect("spawn cat")
    };
    (Guard::adopt(child), inode)
}

#[test]
fn cat_holding_both_pipe_ends_is_blocked_in_read() {
    let (cat, inode) = wedged_cat();
    let f = wait_for_forensics(cat.pid(), &none(), "blocked in read(fd=0)", |f| {
        f.process.state == 'S' && f.syscall.as_deref() == Some("read(fd=0)") && f.wchan.is_some()
    });

    assert_eq!(f.process.pid, cat.pid());
    assert_eq!(f.process.comm, "cat");
    assert!(
        f.exe.as_deref().is_some_and(|e| e.ends_with("/cat")),
        "{f:?}"
    );
    assert!(
        f.wchan.as_deref().is_some_and(|w| w.contains("pipe_read")),
        "{:?}",
        f.wchan
    );
    assert_eq!(
        fd_kind(&f, 0),
        &FdKind::Pipe {
            inode,
            read: true,
            write: false
        }
    );
    assert_eq!(
        fd_kind(&f, 1),
        &FdKind::Pipe {
            inode,
            read: false,
            write: true
        }
    );
    assert_eq!(
        fd_kind(&f, 2),
        &FdKind::File {
            path: "/dev/null".into()
        }
    );
    // Descriptors 3 and up are whatever our own parent let us inherit.
    assert_eq!(f.fd_summary, FdSummary::of(&f.fds));
    assert!(f.fd_summary.pipes >= 2 && f.fd_summary.files >= 1);
    assert_eq!(f.threads.len(), 1);
    assert_eq!(f.threads[0].tid, cat.pid());
    assert_eq!(f.threads[0].comm, "cat");
    assert_eq!(f.threads[0].state, 'S');
    assert!(f.unreadable.is_empty(), "{:?}", f.unreadable);

    let both = finding(&f, Rule::HoldsBothPipeEnds);
    assert_eq!(
        both.message,
        format!(
            "holds both ends of pipe {inode} (fd 0 read, fd 1 write): a read on it can never \
             see EOF; it is blocked right now reading fd 0"
        )
    );
    assert!(!f.has(Rule::HoldsRunnerPipe), "no runner pipes given");
    // Spawned by us, in our group and session, with default signal handling.
    let rules: Vec<&str> = f.findings.iter().map(|x| x.rule.as_str()).collect();
    assert_eq!(rules, ["holds-both-pipe-ends"]);

    // The same observation, judged against a runner that captures output through that pipe.
    let ctx = FindingContext {
        runner_pipe_inodes: vec![1, inode],
        ..none()
    };
    let again = evaluate(&f, &ctx);
    let runner = again
        .iter()
        .find(|x| x.rule == Rule::HoldsRunnerPipe)
        .expect("holds-runner-pipe");
    assert!(
        runner.message.starts_with(&format!(
            "holds the write end of the runner's output pipe {inode} (fd 1)"
        )),
        "{}",
        runner.message
    );
    assert_eq!(forensics(cat.pid(), &ctx).unwrap().findings, again);
}

#[test]
fn runner_pipe_held_by_a_child() {
    // The runner's side: we keep the read end, the child writes `ready` into the write end it
    // inherited as stdout and then sleeps holding it.
    let (read, write) = pipe();
    let inode = inode_of(&write);
    let child = {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo ready; exec sleep 30"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(write));
        cmd.spawn().expect("spawn sh")
    };
    let child = Guard::adopt(child);
    let mut line = String::new();
    BufReader::new(std::fs::File::from(read))
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");

    let ctx = FindingContext {
        runner_pipe_inodes: vec![inode],
        ..none()
    };
    let f = forensics(child.pid(), &ctx).unwrap();
    assert_eq!(
        fd_kind(&f, 1),
        &FdKind::Pipe {
            inode,
            read: false,
            write: true
        }
    );
    assert!(finding(&f, Rule::HoldsRunnerPipe)
        .message
        .contains(&format!("pipe {inode} (fd 1)")));
    assert!(!f.has(Rule::HoldsBothPipeEnds), "{:?}", f.findings);
}

#[test]
fn fifo_opened_read_write_holds_both_ends_in_one_fd() {
    let sleeper = Guard::sh_ready(
        "d=$(mktemp -d) && mkfifo \"$d/f\" && exec 3<>\"$d/f\" && rm -r \"$d\" && echo ready \
         && exec sleep 30",
    );
    let f = wait_for_forensics(sleeper.pid(), &none(), "sleeping in sleep", |f| {
        f.process.comm == "sleep" && f.process.state == 'S'
    });
    let FdKind::Fifo {
        path,
        inode,
        read: true,
        write: true,
    } = fd_kind(&f, 3)
    else {
        panic!("fd 3 should be a read-write FIFO: {:#?}", f.fds);
    };
    assert!(path.ends_with("/f (deleted)"), "{path}");
    assert_eq!(f.fd_summary, FdSummary::of(&f.fds));
    let both = finding(&f, Rule::HoldsBothPipeEnds);
    assert!(
        both.message.starts_with(&format!(
            "holds both ends of FIFO {path} (inode {inode}) (fd 3 read+write)"
        )),
        "{}",
        both.message
    );
    assert!(!both.message.contains("blocked"), "it sleeps, not reads");
    assert!(
        matches!(
            f.syscall.as_deref(),
            Some("clock_nanosleep" | "nanosleep" | "syscall 230" | "syscall 101")
        ),
        "{:?}",
        f.syscall
    );
}

/// Find the descriptor that is `socket` in our own forensics.
fn socket_of<'a>(f: &'a Forensics, socket: &impl AsRawFd) -> &'a FdKind {
    fd_kind(f, socket.as_raw_fd())
}

#[test]
fn tcp_sockets_of_this_process() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (server, peer) = listener.accept().unwrap();
    client.write_all(b"hello").unwrap();
    wait_readable(&server, PollFlags::IN);

    let f = forensics(me(), &none()).unwrap();
    assert_eq!(
        socket_of(&f, &listener),
        &FdKind::Socket {
            inode: inode_of(&listener),
            proto: Some("tcp".into()),
            state: Some("LISTEN".into()),
            local: Some(format!("127.0.0.1:{port}")),
            remote: None,
            rx_queue: Some(0),
            tx_queue: socket_tx(&f, &listener),
        }
    );
    assert_eq!(
        socket_of(&f, &server),
        &FdKind::Socket {
            inode: inode_of(&server),
            proto: Some("tcp".into()),
            state: Some("ESTABLISHED".into()),
            local: Some(format!("127.0.0.1:{port}")),
            remote: Some(peer.to_string()),
            rx_queue: Some(5),
            tx_queue: Some(0),
        }
    );
    let listening: Vec<&Finding> = f
        .findings
        .iter()
        .filter(|x| x.rule == Rule::Listening)
        .filter(|x| x.message.contains(&format!("fd {}", listener.as_raw_fd())))
        .collect();
    assert_eq!(listening.len(), 1, "{:#?}", f.findings);
    assert_eq!(
        listening[0].message,
        format!(
            "listens on TCP port {port} (127.0.0.1:{port}, fd {}): the port stays taken while it \
             lives",
            listener.as_raw_fd()
        )
    );
    let unread = unread_finding(&f, &server);
    assert_eq!(
        unread.message,
        format!(
            "5 unread bytes wait on fd {} (tcp 127.0.0.1:{port} <-> {peer}, ESTABLISHED, socket \
             {}): data arrived that it never read",
            server.as_raw_fd(),
            inode_of(&server)
        )
    );

    // The peer closes: this side is in CLOSE-WAIT until it closes too.
    client.shutdown(std::net::Shutdown::Write).unwrap();
    wait_readable(&server, PollFlags::RDHUP);
    let f = forensics(me(), &none()).unwrap();
    let FdKind::Socket {
        state, rx_queue, ..
    } = socket_of(&f, &server)
    else {
        unreachable!()
    };
    assert_eq!(state.as_deref(), Some("CLOSE-WAIT"));
    assert_eq!(*rx_queue, Some(6), "5 bytes and the FIN");
    let close_wait: Vec<&Finding> = f
        .findings
        .iter()
        .filter(|x| x.rule == Rule::CloseWait)
        .filter(|x| {
            x.message
                .starts_with(&format!("fd {} ", server.as_raw_fd()))
        })
        .collect();
    assert_eq!(close_wait.len(), 1, "{:#?}", f.findings);
    assert!(close_wait[0].message.contains(&format!(
        "(tcp 127.0.0.1:{port} <-> {peer}) is in CLOSE-WAIT"
    )));
    assert!(unread_finding(&f, &server)
        .message
        .starts_with("5 unread bytes wait on"));
    assert!(f.render(0).contains(&format!(
        "{:<3} tcp 127.0.0.1:{port} <-> {peer} CLOSE-WAIT, rx 6 (5 bytes + FIN) tx 0",
        server.as_raw_fd()
    )));

    let json = serde_json::to_value(&f).unwrap();
    let kinds = json["fds"].as_array().unwrap();
    let server_json = kinds
        .iter()
        .find(|x| x["fd"] == server.as_raw_fd())
        .unwrap();
    assert_eq!(server_json["kind"]["type"], "socket");
    assert_eq!(server_json["kind"]["rx_queue"], 6);
    let back: Forensics = serde_json::from_value(json).unwrap();
    assert_eq!(back, f);
}

/// The tx_queue column of a socket in `f` (a listener's backlog limit, which we do not control).
fn socket_tx(f: &Forensics, socket: &impl AsRawFd) -> Option<u64> {
    match socket_of(f, socket) {
        FdKind::Socket { tx_queue, .. } => *tx_queue,
        _ => None,
    }
}

fn unread_finding<'a>(f: &'a Forensics, socket: &impl AsRawFd) -> &'a Finding {
    let needle = format!(" on fd {} (", socket.as_raw_fd());
    f.findings
        .iter()
        .find(|x| x.rule == Rule::UnreadSocketData && x.message.contains(&needle))
        .unwrap_or_else(|| panic!("no unread-socket-data for {needle}: {:#?}", f.findings))
}

#[test]
fn tcp6_addresses() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    };
    let port = listener.local_addr().unwrap().port();
    let f = forensics(me(), &none()).unwrap();
    let FdKind::Socket {
        proto,
        state,
        local,
        remote,
        ..
    } = socket_of(&f, &listener)
    else {
        unreachable!()
    };
    assert_eq!(proto.as_deref(), Some("tcp6"));
    assert_eq!(state.as_deref(), Some("LISTEN"));
    assert_eq!(local.as_deref(), Some(format!("[::1]:{port}").as_str()));
    assert_eq!(remote, &None);
    assert!(f
        .findings
        .iter()
        .any(|x| x.rule == Rule::Listening && x.message.contains(&format!("([::1]:{port}, fd "))));
}

#[test]
fn udp_datagram_never_read() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender
        .send_to(b"datagram", receiver.local_addr().unwrap())
        .unwrap();
    wait_readable(&receiver, PollFlags::IN);

    let f = forensics(me(), &none()).unwrap();
    let FdKind::Socket {
        proto,
        state,
        local,
        rx_queue,
        ..
    } = socket_of(&f, &receiver)
    else {
        unreachable!()
    };
    assert_eq!(proto.as_deref(), Some("udp"));
    assert_eq!(state.as_deref(), Some("UNCONN"));
    assert_eq!(
        local.as_deref(),
        Some(receiver.local_addr().unwrap().to_string().as_str())
    );
    // Buffer memory, not payload: at least the 8 bytes.
    assert!(rx_queue.is_some_and(|n| n >= 8), "{rx_queue:?}");
    let unread = unread_finding(&f, &receiver);
    assert!(
        unread.message.contains("hold datagrams it never read"),
        "{}",
        unread.message
    );
    assert!(!f.findings.iter().any(|x| x.rule == Rule::Listening
        && x.message.contains(&format!("fd {})", receiver.as_raw_fd()))));
}

/// Removes a socket file on every path.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn unix_sockets() {
    let path = std::env::temp_dir().join(format!("reap-probe-test-{}.sock", me()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let _cleanup = RemoveOnDrop(path.clone());
    let client = UnixStream::connect(&path).unwrap();
    let (server, _) = listener.accept().unwrap();
    let (left, _right) = UnixStream::pair().unwrap();

    let f = forensics(me(), &none()).unwrap();
    let expect = |state: &str, local: Option<String>| FdKind::Socket {
        inode: 0,
        proto: Some("unix-stream".into()),
        state: Some(state.into()),
        local,
        remote: None,
        rx_queue: None,
        tx_queue: None,
    };
    let without_inode = |kind: &FdKind| match kind.clone() {
        FdKind::Socket {
            proto,
            state,
            local,
            remote,
            rx_queue,
            tx_queue,
            ..
        } => FdKind::Socket {
            inode: 0,
            proto,
            state,
            local,
            remote,
            rx_queue,
            tx_queue,
        },
        other => other,
    };
    let path = path.to_str().unwrap().to_owned();
    assert_eq!(
        without_inode(socket_of(&f, &listener)),
        expect("LISTEN", Some(path.clone()))
    );
    assert_eq!(
        without_inode(socket_of(&f, &server)),
        expect("CONNECTED", Some(path))
    );
    assert_eq!(
        without_inode(socket_of(&f, &client)),
        expect("CONNECTED", None)
    );
    assert_eq!(
        without_inode(socket_of(&f, &left)),
        expect("CONNECTED", None)
    );
}

#[test]
fn stopped_child() {
    use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
    let child = Guard::sleep(None);
    wait_for_state(child.pid(), 'S');
    let status = Command::new("kill")
        .args(["-STOP", &child.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The event: the child reports its stop (left waitable: Drop kills and reaps it).
    waitid(
        WaitId::Pid(Pid::from_raw(child.pid()).unwrap()),
        WaitIdOptions::STOPPED | WaitIdOptions::NOWAIT,
    )
    .unwrap();

    let f = forensics(child.pid(), &none()).unwrap();
    assert_eq!(f.process.state, 'T');
    assert_eq!(f.threads[0].state, 'T');
    assert_eq!(f.wchan.as_deref(), Some("do_signal_stop"));
    assert!(finding(&f, Rule::Stopped)
        .message
        .starts_with("stopped (state T"));
    assert!(f
        .render(0)
        .contains(&format!("pid {} (sleep) T stopped, age ", child.pid())));
}

#[test]
fn ignored_and_caught_sigterm() {
    let ignores = Guard::sh_ready("trap '' TERM; echo ready; exec sleep 30");
    let catches = Guard::sh_ready("trap 'exit 3' TERM; echo ready; read x");
    let plain = Guard::idle(None, &[]);

    let f = forensics(ignores.pid(), &none()).unwrap();
    assert_ne!(f.sig_ignored & SIGTERM_BIT, 0, "{:#x}", f.sig_ignored);
    assert!(f.has(Rule::IgnoresSigterm) && !f.has(Rule::CatchesSigterm));
    assert!(f.render(0).contains("\n  SIGTERM  ignored\n"));

    let f = forensics(catches.pid(), &none()).unwrap();
    assert_ne!(f.sig_caught & SIGTERM_BIT, 0, "{:#x}", f.sig_caught);
    assert!(f.has(Rule::CatchesSigterm) && !f.has(Rule::IgnoresSigterm));

    let f = forensics(plain.pid(), &none()).unwrap();
    assert!(!f.has(Rule::CatchesSigterm) && !f.has(Rule::IgnoresSigterm));
}

#[test]
fn escaped_session_and_group() {
    let myself = snapshot(me(), ScanOptions::default()).unwrap();
    let suite = FindingContext {
        suite_pgid: Some(myself.pgid),
        suite_sid: Some(myself.sid),
        ..none()
    };
    // Not a group leader (spawned into our group), so `setsid` calls setsid(2) and execs: the
    // pid stays the child's.
    let mut cmd = Command::new("setsid");
    cmd.args(["sh", "-c", "echo ready; exec sleep 30"]);
    let daemon = Guard::ready(cmd);
    let f = forensics(daemon.pid(), &suite).unwrap();
    assert_eq!(
        (f.process.sid, f.process.pgid),
        (daemon.pid(), daemon.pid())
    );
    assert_eq!(
        finding(&f, Rule::EscapedSession).message,
        format!(
            "in session {}, not the suite's {}: it called setsid (as daemons, double forks and \
             `setsid` do) and left the suite's session",
            daemon.pid(),
            myself.sid
        )
    );
    assert!(finding(&f, Rule::EscapedGroup)
        .message
        .starts_with(&format!(
            "in process group {}, not the suite's {}",
            daemon.pid(),
            myself.pgid
        )));
    // Without a suite to compare with, nothing has escaped.
    let f = forensics(daemon.pid(), &none()).unwrap();
    assert!(!f.has(Rule::EscapedSession) && !f.has(Rule::EscapedGroup));

    // Its own process group, same session.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo ready; read x"]);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let grouped = Guard::ready(cmd);
    let f = forensics(grouped.pid(), &suite).unwrap();
    assert!(
        f.has(Rule::EscapedGroup) && !f.has(Rule::EscapedSession),
        "{:?}",
        f.findings
    );
}

#[test]
fn orphan_reparented_away_from_its_parent() {
    // sh starts a reader of its stdin in the background, announces it, and exits.
    let mut sh = Command::new("sh")
        .args(["-c", "exec 3<&0; read x <&3 & echo $!"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = sh.stdin.take().unwrap();
    let mut line = String::new();
    BufReader::new(sh.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let orphan = Orphan::new(line.trim().parse().unwrap(), stdin);
    let sh_pid = sh.id() as i32;
    assert!(sh.wait().unwrap().success());

    // Reparenting happens in the parent's exit, before it can be reaped.
    let f = forensics(orphan.pid, &none()).unwrap();
    let ppid = f.process.ppid;
    assert_ne!(ppid, sh_pid);
    if ppid == 1 {
        assert_eq!(
            finding(&f, Rule::Orphaned).message,
            "its parent exited and it was reparented to pid 1 (init)"
        );
    } else {
        // We run under a child subreaper (cargo-reap, a service manager): it is the runner.
        assert!(!f.has(Rule::Orphaned), "{:?}", f.findings);
        let ctx = FindingContext {
            reaper_pid: Some(ppid),
            ..none()
        };
        let f = forensics(orphan.pid, &ctx).unwrap();
        assert!(finding(&f, Rule::Orphaned)
            .message
            .contains(&format!("the runner (pid {ppid}, the child subreaper)")));
    }
    // A child of ours is not an orphan unless we are declared its reaper.
    let child = Guard::idle(None, &[]);
    assert!(!forensics(child.pid(), &none()).unwrap().has(Rule::Orphaned));
    let ctx = FindingContext {
        reaper_pid: Some(me()),
        ..none()
    };
    assert!(forensics(child.pid(), &ctx).unwrap().has(Rule::Orphaned));
}

#[test]
fn zombie_forensics() {
    let mut child = Guard::idle(None, &[]);
    child.kill_leave_zombie();
    let f = forensics(child.pid(), &none()).unwrap();
    assert_eq!(f.process.state, 'Z');
    assert_eq!(f.exe, None);
    assert_eq!(f.syscall, None, "not in a syscall");
    assert!(f.fds.is_empty());
    assert_eq!(f.fd_summary, FdSummary::default());
    assert!(f.unreadable.is_empty(), "{:?}", f.unreadable);
    assert_eq!(
        finding(&f, Rule::Zombie).message,
        format!(
            "it has exited but its parent (pid {}) has not reaped it: it cannot be killed, only \
             reaped by the parent's wait or freed when the parent exits",
            me()
        )
    );
}

#[test]
fn gone_processes() {
    let pid = Guard::sleep(None).kill_and_wait();
    assert!(matches!(forensics(pid, &none()), Err(ProbeError::Gone(p)) if p == pid));
    for pid in [0, -1, i32::MAX] {
        assert!(forensics(pid, &none()).unwrap_err().is_gone());
    }
}

/// outer sh ─┬─ inner sh ── deep
///           └─ leaf
const NESTED: &str = "exec 3<&0
sh -c 'read x <&3 & echo deep $!; wait' & echo inner $!
read x <&3 & echo leaf $!
wait";

#[test]
fn tree_is_parent_before_child_depth_first() {
    let mut sh = Guard::tree(NESTED, "test/forensics-tree");
    let pids = sh.read_pids(3);
    let (inner, leaf, deep) = (pids["inner"][0], pids["leaf"][0], pids["deep"][0]);
    let table = ProcessTable::scan(ScanOptions::default()).unwrap();
    let ctx = FindingContext {
        suite_pgid: Some(table.get(sh.pid()).unwrap().pgid),
        suite_sid: Some(table.get(sh.pid()).unwrap().sid),
        ..none()
    };
    let list = forensics_tree(&table, sh.pid(), &ctx);
    let order: Vec<i32> = list.iter().map(|f| f.process.pid).collect();
    let expected = if inner < leaf {
        vec![sh.pid(), inner, deep, leaf]
    } else {
        vec![sh.pid(), leaf, inner, deep]
    };
    assert_eq!(order, expected);
    for f in &list {
        assert_eq!(f.process.tag.as_deref(), Some("test/forensics-tree"));
        assert!(f.process.cgroup.is_some());
        assert!(!f.has(Rule::EscapedGroup) && !f.has(Rule::EscapedSession));
    }
    // The leaves read the script's stdin through fd 3: the read end of our pipe only.
    let by_pid: HashMap<i32, &Forensics> = list.iter().map(|f| (f.process.pid, f)).collect();
    for pid in [leaf, deep] {
        assert!(
            matches!(
                fd_kind(by_pid[&pid], 3),
                FdKind::Pipe {
                    read: true,
                    write: false,
                    ..
                }
            ),
            "{:#?}",
            by_pid[&pid].fds
        );
        assert!(!by_pid[&pid].has(Rule::HoldsBothPipeEnds));
    }

    let text = render_forensics_tree(&list, 0);
    let headers: Vec<&str> = text.lines().filter(|l| l.contains("pid ")).collect();
    let headers: Vec<&str> = headers
        .into_iter()
        .filter(|l| l.trim_start().starts_with("pid "))
        .collect();
    assert_eq!(headers.len(), 4, "{text}");
    let depth = |pid: i32| match pid {
        p if p == sh.pid() => 0,
        p if p == deep => 2,
        _ => 1,
    };
    for (line, pid) in headers.iter().zip(&order) {
        let prefix = format!("{}pid {pid} (", " ".repeat(4 * depth(*pid)));
        assert!(
            line.starts_with(&prefix),
            "{line:?} should start {prefix:?}"
        );
    }
    assert_eq!(
        text.matches("\n\npid ").count(),
        0,
        "only the root at the margin"
    );
    assert!(render_forensics_tree(&list, 30)
        .lines()
        .filter(|l| l.trim_start().starts_with("pid "))
        .all(|l| l.chars().count() <= 30));

    assert!(forensics_tree(&table, -1, &ctx).is_empty());
}

#[test]
fn tree_skips_a_process_whose_pid_was_reused() {
    // A real snapshot, with the start time of another process: to the tree it is a reused pid.
    let child = Guard::idle(None, &[]);
    let mut info = snapshot(child.pid(), ScanOptions::default()).unwrap();
    let table = ProcessTable::new(vec![info.clone()]);
    assert_eq!(forensics_tree(&table, child.pid(), &none()).len(), 1);
    info.start_time += 1;
    let table = ProcessTable::new(vec![info]);
    assert!(forensics_tree(&table, child.pid(), &none()).is_empty());
}

#[test]
fn rules_on_states_we_cannot_cause_safely() {
    // A real observation, changed as a disk-sleeping or traced process would look.
    let child = Guard::idle(None, &[]);
    let mut f = forensics(child.pid(), &none()).unwrap();
    assert!(f.findings.is_empty(), "{:?}", f.findings);
    f.process.state = 'D';
    f.wchan = Some("nfs_wait_bit_killable".into());
    let found = evaluate(&f, &none());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].rule, Rule::Uninterruptible);
    assert!(found[0]
        .message
        .starts_with("it sleeps uninterruptibly (state D) in nfs_wait_bit_killable: no signal"));

    f.process.state = 'S';
    f.threads.push(ThreadInfo {
        tid: f.process.pid + 1,
        comm: "worker".into(),
        state: 'D',
        wchan: None,
    });
    let found = evaluate(&f, &none());
    assert!(found[0].message.starts_with(&format!(
        "thread {} (worker) sleeps uninterruptibly (state D) in an unknown kernel function",
        f.process.pid + 1
    )));

    f.threads.pop();
    f.process.state = 't';
    assert!(evaluate(&f, &none())[0]
        .message
        .starts_with("stopped by a tracer"));

    // The idle shell reads its stdin pipe; had it also a write end of that pipe, it would wait
    // forever. How sure the finding is about the read depends on what could be read.
    f.process.state = 'S';
    let Some((inode, true, false)) = fd_kind(&f, 0).pipe_end() else {
        panic!("stdin should be the read end of a pipe: {:#?}", f.fds);
    };
    f.fds.push(FdInfo {
        fd: 9,
        kind: FdKind::Pipe {
            inode,
            read: false,
            write: true,
        },
    });
    f.syscall = Some("read(fd=0)".into());
    f.wchan = Some("anon_pipe_read".into());
    let both = evaluate(&f, &none());
    assert_eq!(
        both[0].message,
        format!(
            "holds both ends of pipe {inode} (fd 0 read, fd 9 write): a read on it can never see \
             EOF; it is blocked right now reading fd 0"
        )
    );
    f.syscall = None; // not permitted to read it: the wait channel still tells
    assert!(evaluate(&f, &none())[0]
        .message
        .ends_with("; it is blocked right now in anon_pipe_read (reading a pipe)"));
    f.syscall = Some("read(fd=7)".into()); // reading some other descriptor
    assert!(evaluate(&f, &none())[0]
        .message
        .ends_with("can never see EOF"));
}

#[test]
fn every_rule_is_listed_once_and_documented() {
    let ids: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "duplicate rule ids");
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## reap-probe: triage of a live wedged process")
        .nth(1)
        .expect("README section");
    for rule in Rule::ALL {
        let (id, explanation) = (rule.as_str(), rule.explanation());
        assert!(
            section.contains(&format!("| `{id}` | {explanation} |")),
            "README rule table lacks {id}"
        );
        assert!(!explanation.contains('\n') && !explanation.contains("  "));
    }
}

/// The ids in the JSON of a finding are the kebab-case strings the rules had when they were
/// strings (the report contract): each serializes to exactly that and parses back.
#[test]
fn rule_ids_serialize_as_before() {
    let before = [
        "holds-both-pipe-ends",
        "holds-runner-pipe",
        "unread-socket-data",
        "close-wait",
        "listening",
        "orphaned",
        "escaped-group",
        "escaped-session",
        "stopped",
        "zombie",
        "main-thread-exited",
        "uninterruptible",
        "ignores-sigterm",
        "catches-sigterm",
    ];
    assert_eq!(Rule::ALL.len(), before.len());
    for (i, (rule, id)) in Rule::ALL.into_iter().zip(before).enumerate() {
        assert_eq!(rule as usize, i, "Rule::ALL is in declaration order");
        let finding = Finding {
            rule,
            message: "m".into(),
        };
        let json = serde_json::to_string(&finding).unwrap();
        assert_eq!(json, format!(r#"{{"rule":"{id}","message":"m"}}"#));
        assert_eq!(serde_json::from_str::<Finding>(&json).unwrap(), finding);
        assert_eq!(id.parse::<Rule>(), Ok(rule));
    }
    assert!(serde_json::from_str::<Finding>(r#"{"rule":"no-such-rule","message":"m"}"#).is_err());
}

// Parsers, on the exact bytes the kernel produces.

#[test]
#[cfg(target_endian = "little")]
fn parse_kernel_addresses() {
    assert_eq!(
        parse_addr("0100007F:1F90").unwrap().to_string(),
        "127.0.0.1:8080"
    );
    assert_eq!(
        parse_addr("00000000:0000").unwrap().to_string(),
        "0.0.0.0:0"
    );
    assert_eq!(
        parse_addr("00000000000000000000000001000000:1F90")
            .unwrap()
            .to_string(),
        "[::1]:8080"
    );
    assert_eq!(
        parse_addr("0000000000000000FFFF00000100007F:0050")
            .unwrap()
            .to_string(),
        "[::ffff:127.0.0.1]:80"
    );
    assert_eq!(
        parse_addr("B80D0120000000000000000001000000:01BB")
            .unwrap()
            .to_string(),
        "[2001:db8::1]:443"
    );
    assert_eq!(parse_addr("0100007F"), None);
    assert_eq!(parse_addr("7F:1F90"), None);
    assert_eq!(parse_addr("0100007G:1F90"), None);
}

#[test]
#[cfg(target_endian = "little")]
fn parse_inet_tables() {
    let tcp = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000  1000        0 43121 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 08 00000002:0000000B 00:00000000 00000000  1000        0 43122 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:D432 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   3: garbage
";
    let mut out = HashMap::new();
    parse_inet(tcp, "tcp", &mut out);
    assert_eq!(out.len(), 2, "TIME-WAIT without inode and garbage skipped");
    let listen = &out[&43121];
    assert_eq!(listen.state.as_deref(), Some("LISTEN"));
    assert_eq!(listen.local.as_deref(), Some("127.0.0.1:8080"));
    assert_eq!(listen.remote, None);
    assert_eq!((listen.rx_queue, listen.tx_queue), (Some(3), Some(0)));
    let conn = &out[&43122];
    assert_eq!(conn.state.as_deref(), Some("CLOSE-WAIT"));
    assert_eq!(conn.remote.as_deref(), Some("127.0.0.1:54321"));
    assert_eq!((conn.rx_queue, conn.tx_queue), (Some(11), Some(2)));

    let udp = b"   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 00000000:0044 00000000:0000 07 00000000:00000340 00:00000000 00000000     0        0 1234 2 0000000000000000 0
";
    let mut out = HashMap::new();
    parse_inet(udp, "udp", &mut out);
    assert_eq!(out[&1234].state.as_deref(), Some("UNCONN"));
    assert_eq!(out[&1234].local.as_deref(), Some("0.0.0.0:68"));
    assert_eq!(out[&1234].rx_queue, Some(0x340));
}

#[test]
fn tcp_state_names() {
    assert_eq!(tcp_state_name(0x01), "ESTABLISHED");
    assert_eq!(tcp_state_name(0x02), "SYN-SENT");
    assert_eq!(tcp_state_name(0x06), "TIME-WAIT");
    assert_eq!(tcp_state_name(0x07), "CLOSE");
    assert_eq!(tcp_state_name(0x08), "CLOSE-WAIT");
    assert_eq!(tcp_state_name(0x0A), "LISTEN");
    assert_eq!(tcp_state_name(0x42), "state 0x42");
}

#[test]
fn parse_unix_table() {
    let unix = b"Num       RefCount Protocol Flags    Type St Inode Path
000000003e1b2b8a: 00000002 00000000 00010000 0001 01 28123 /run/a b.sock
00000000eebcf9fb: 00000003 00000000 00000000 0001 03  1134
0000000009f95f32: 00000002 00000000 00000000 0002 01 1135 @abstract
0000000009f95f33: 00000002 00000000 00000000 0005 02 1136
broken line
";
    let mut out = HashMap::new();
    parse_unix(unix, &mut out);
    assert_eq!(out.len(), 4);
    assert_eq!(out[&28123].proto, "unix-stream");
    assert_eq!(out[&28123].state.as_deref(), Some("LISTEN"));
    assert_eq!(out[&28123].local.as_deref(), Some("/run/a b.sock"));
    assert_eq!(out[&1134].state.as_deref(), Some("CONNECTED"));
    assert_eq!(out[&1134].local, None);
    assert_eq!(out[&1135].proto, "unix-dgram");
    assert_eq!(out[&1135].state.as_deref(), Some("UNCONNECTED"));
    assert_eq!(out[&1135].local.as_deref(), Some("@abstract"));
    assert_eq!(out[&1136].proto, "unix-seqpacket");
    assert_eq!(out[&1136].state.as_deref(), Some("CONNECTING"));
    assert!(out.values().all(|s| s.rx_queue.is_none()));
}

#[test]
fn describe_syscalls() {
    use crate::syscall::{describe, reading_fd};
    assert_eq!(describe("running\n").as_deref(), Some("running"));
    assert_eq!(describe("-1 0x7ffe364e6830 0x7fce44ea2503\n"), None);
    assert_eq!(describe(""), None);
    assert_eq!(
        describe("99999 0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x0").as_deref(),
        Some("syscall 99999")
    );
    #[cfg(target_arch = "x86_64")]
    {
        let line = |nr: u32, a: &str, b: &str| {
            format!(
                "{nr} {a} {b} 0x20000 0x7fa9e5937b60 0xffffffff 0x0 0x7ffebca6b938 0x7fa9e5a202ad"
            )
        };
        assert_eq!(
            describe(&line(0, "0x3", "0x0")).as_deref(),
            Some("read(fd=3)")
        );
        assert_eq!(
            describe(&line(1, "0x1", "0x0")).as_deref(),
            Some("write(fd=1)")
        );
        assert_eq!(
            describe(&line(61, "0xffffffffffffffff", "0x0")).as_deref(),
            Some("wait4(pid=-1)")
        );
        assert_eq!(
            describe(&line(61, "0x1f90", "0x0")).as_deref(),
            Some("wait4(pid=8080)")
        );
        assert_eq!(
            describe(&line(247, "0x0", "0x0")).as_deref(),
            Some("waitid(P_ALL)")
        );
        assert_eq!(
            describe(&line(247, "0x1", "0x2a")).as_deref(),
            Some("waitid(P_PID 42)")
        );
        assert_eq!(
            describe(&line(247, "0x3", "0x5")).as_deref(),
            Some("waitid(P_PIDFD fd=5)")
        );
        assert_eq!(
            describe(&line(232, "0x5", "0x0")).as_deref(),
            Some("epoll_wait(epfd=5)")
        );
        assert_eq!(
            describe(&line(7, "0x2", "0x0")).as_deref(),
            Some("poll(nfds=2)")
        );
        assert_eq!(describe(&line(202, "0x5", "0x0")).as_deref(), Some("futex"));
        assert_eq!(
            describe(&line(230, "0x0", "0x0")).as_deref(),
            Some("clock_nanosleep")
        );
        assert_eq!(
            describe(&line(288, "0x4", "0x0")).as_deref(),
            Some("accept4(fd=4)")
        );
        assert_eq!(
            describe(&line(232 + 1000, "0x5", "0x0")).as_deref(),
            Some("syscall 1232")
        );
    }
    assert_eq!(reading_fd("read(fd=3)"), Some(3));
    assert_eq!(reading_fd("readv(fd=0)"), Some(0));
    assert_eq!(reading_fd("write(fd=3)"), None);
    assert_eq!(reading_fd("futex"), None);
}

#[test]
fn parse_status_fdinfo_wchan_and_links() {
    let status = "Name:\tsleep\nSigQ:\t0/96364\nSigPnd:\t0000000000000000\n\
                  SigBlk:\t0000000000000000\nSigIgn:\t0000000000004006\nSigCgt:\t0000000180000000\n";
    assert_eq!(status_mask(status, "SigIgn"), Some(0x4006));
    assert_eq!(status_mask(status, "SigCgt"), Some(0x1_8000_0000));
    assert_eq!(status_mask(status, "SigXyz"), None);

    assert_eq!(
        parse_fdinfo_access(b"pos:\t0\nflags:\t00\nmnt_id:\t15\n"),
        Some((true, false))
    );
    assert_eq!(
        parse_fdinfo_access(b"pos:\t0\nflags:\t01\n"),
        Some((false, true))
    );
    assert_eq!(
        parse_fdinfo_access(b"pos:\t0\nflags:\t02100002\n"),
        Some((true, true))
    );
    assert_eq!(parse_fdinfo_access(b"pos:\t0\n"), None);

    assert_eq!(normalize_wchan("0"), None);
    assert_eq!(normalize_wchan(""), None);
    assert_eq!(normalize_wchan("do_wait").as_deref(), Some("do_wait"));

    assert_eq!(
        classify("pipe:[437089]"),
        FdKind::Pipe {
            inode: 437089,
            read: false,
            write: false
        }
    );
    assert!(matches!(
        classify("socket:[12]"),
        FdKind::Socket {
            inode: 12,
            proto: None,
            ..
        }
    ));
    assert_eq!(
        classify("anon_inode:[eventfd]"),
        FdKind::Anon {
            what: "eventfd".into()
        }
    );
    assert_eq!(
        classify("anon_inode:inotify"),
        FdKind::Anon {
            what: "inotify".into()
        }
    );
    assert_eq!(
        classify("pidfd:[3121]"),
        FdKind::Anon {
            what: "pidfd".into()
        }
    );
    assert_eq!(
        classify("/memfd:my thing (deleted)"),
        FdKind::Memfd {
            name: "my thing".into()
        }
    );
    assert_eq!(
        classify("/tmp/x (deleted)"),
        FdKind::File {
            path: "/tmp/x (deleted)".into()
        }
    );
    assert_eq!(
        classify("net:[4026531833]"),
        FdKind::Other {
            target: "net:[4026531833]".into()
        }
    );
}

#[test]
fn anon_and_memfd_descriptors_of_this_process() {
    use rustix::event::{eventfd, EventfdFlags};
    use rustix::fs::{memfd_create, MemfdFlags};
    let event = eventfd(0, EventfdFlags::CLOEXEC).unwrap();
    let memfd = memfd_create("reap-probe-test", MemfdFlags::CLOEXEC).unwrap();
    let f = forensics(me(), &none()).unwrap();
    assert_eq!(
        fd_kind(&f, event.as_raw_fd()),
        &FdKind::Anon {
            what: "eventfd".into()
        }
    );
    assert_eq!(
        fd_kind(&f, memfd.as_raw_fd()),
        &FdKind::Memfd {
            name: "reap-probe-test".into()
        }
    );
    assert!(f.threads.len() > 1, "the test harness runs threads");
    assert!(f.threads.iter().any(|t| t.tid == me()));
    assert!(
        f.syscall.is_some(),
        "the main thread waits for the tests in some syscall"
    );
}
