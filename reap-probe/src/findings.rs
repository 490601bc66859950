//! Rules that turn what /proc says about a process into findings in plain words.

use std::collections::BTreeMap;

use crate::fds::FdKind;
use crate::syscall::reading_fd;
use crate::Forensics;

/// Context the caller knows that /proc does not: lets findings compare against the suite.
#[derive(Debug, Clone, Default)]
pub struct FindingContext {
    /// Inodes of the runner's own output-capture pipes (holds-runner-pipe).
    pub runner_pipe_inodes: Vec<u64>,
    /// The suite's process group (its root pid) and session, for escaped-group / escaped-session.
    pub suite_pgid: Option<i32>,
    /// The suite's session (see [`FindingContext::suite_pgid`]).
    pub suite_sid: Option<i32>,
    /// The subreaper's pid (the runner); ppid == this or 1 means orphaned.
    pub reaper_pid: Option<i32>,
}

/// One thing about a process that explains why it is still alive or cannot be ended.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Finding {
    /// The rule's id, one of [`RULES`].
    pub rule: String,
    /// One line in plain words, naming the descriptors, addresses, pids involved.
    pub message: String,
}

/// Every rule: (id, one-line plain-words explanation). Documented in the README.
pub const RULES: &[(&str, &str)] = &[
    (
        "holds-both-pipe-ends",
        "has the read end and the write end of the same pipe open: a read on it can never see \
         EOF, because the process itself keeps a writer alive",
    ),
    (
        "holds-runner-pipe",
        "holds a write end of the runner's output-capture pipe: the runner sees no EOF on the \
         suite's output while this process lives",
    ),
    (
        "unread-socket-data",
        "a socket has received bytes that the process never read",
    ),
    (
        "close-wait",
        "a TCP connection is in CLOSE-WAIT: the peer closed it, this process never closed its end",
    ),
    (
        "listening",
        "a TCP socket is listening: its port stays taken while the process lives",
    ),
    (
        "orphaned",
        "its parent exited: it was reparented to pid 1 or to the runner (the child subreaper)",
    ),
    (
        "escaped-group",
        "it is in another process group than the suite's, so a signal to the suite's group misses it",
    ),
    (
        "escaped-session",
        "it is in another session than the suite's (setsid, as daemons and double forks do)",
    ),
    (
        "stopped",
        "it is stopped (SIGSTOP, job control, or a tracer): it acts on nothing but SIGKILL and \
         SIGCONT",
    ),
    (
        "zombie",
        "it has exited but its parent has not reaped it: only the parent's wait (or exit) removes it",
    ),
    (
        "main-thread-exited",
        "its main thread exited while other threads run on: /proc shows it as a zombie (state \
         Z), yet it is alive; cgroup.kill misses it, a SIGKILL to its pid ends it",
    ),
    (
        "uninterruptible",
        "it (or a thread) sleeps uninterruptibly in the kernel (state D): no signal, not even \
         SIGKILL, acts until that call returns",
    ),
    (
        "ignores-sigterm",
        "SIGTERM is ignored (SigIgn, inherited across exec): only SIGKILL ends it",
    ),
    (
        "catches-sigterm",
        "SIGTERM is caught by a handler (SigCgt): what SIGTERM does is up to the program",
    ),
];

/// TCP states in which the peer's FIN has arrived.
const FIN_RECEIVED: [&str; 4] = ["CLOSE-WAIT", "LAST-ACK", "CLOSING", "TIME-WAIT"];

/// Bytes of data in a socket's receive queue (`rx_queue` column).
///
/// For TCP the column is `rcv_nxt - copied_seq`, sequence numbers, and the peer's FIN takes one:
/// once it has arrived, and until the process reads the end of the stream, the column is one
/// more than the data bytes.
pub fn unread_bytes(proto: Option<&str>, state: Option<&str>, rx_queue: u64) -> u64 {
    let tcp = proto.is_some_and(|p| p.starts_with("tcp"));
    if tcp && state.is_some_and(|s| FIN_RECEIVED.contains(&s)) {
        rx_queue.saturating_sub(1)
    } else {
        rx_queue
    }
}

/// SIGTERM's bit in the `SigIgn` / `SigCgt` masks of `/proc/PID/status` (signal 15, bit 14).
pub const SIGTERM_BIT: u64 = 1 << 14;

/// Apply every rule of [`RULES`] to what was collected about one process, in the order of
/// [`RULES`].
///
/// [`forensics`](crate::forensics) already does this with the context it is given; call it again
/// to judge the same observation against another context.
pub fn evaluate(f: &Forensics, ctx: &FindingContext) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |rule: &str, message: String| {
        debug_assert!(
            RULES.iter().any(|(id, _)| *id == rule),
            "unknown rule {rule}"
        );
        out.push(Finding {
            rule: rule.to_owned(),
            message,
        });
    };
    let p = &f.process;
    let blocked = matches!(p.state, 'S' | 'D');

    // Pipes: inode -> (fd, read, write) in fd order.
    let mut pipes: BTreeMap<u64, Vec<(i32, bool, bool)>> = BTreeMap::new();
    for fd in &f.fds {
        if let Some((inode, read, write)) = fd.kind.pipe_end() {
            pipes.entry(inode).or_default().push((fd.fd, read, write));
        }
    }
    let reading = f.syscall.as_deref().and_then(reading_fd);
    for (inode, ends) in &pipes {
        if !(ends.iter().any(|e| e.1) && ends.iter().any(|e| e.2)) {
            continue;
        }
        let list = ends
            .iter()
            .map(|&(fd, r, w)| {
                let dir = match (r, w) {
                    (true, true) => "read+write",
                    (true, false) => "read",
                    (false, true) => "write",
                    (false, false) => "no access",
                };
                format!("fd {fd} {dir}")
            })
            .collect::<Vec<_>>()
            .join(", ");
        let what = match f.fds.iter().find_map(|fd| match &fd.kind {
            FdKind::Fifo { path, inode: i, .. } if i == inode => Some(path),
            _ => None,
        }) {
            Some(path) => format!("FIFO {path} (inode {inode})"),
            None => format!("pipe {inode}"),
        };
        let mut message =
            format!("holds both ends of {what} ({list}): a read on it can never see EOF");
        let read_fds: Vec<i32> = ends.iter().filter(|e| e.1).map(|e| e.0).collect();
        match reading {
            Some(fd) if blocked && read_fds.contains(&fd) => {
                message.push_str(&format!("; it is blocked right now reading fd {fd}"));
            }
            // The syscall is unknown (not readable): the wait channel still says "a pipe read".
            None if blocked && f.wchan.as_deref().is_some_and(|w| w.contains("pipe_read")) => {
                message.push_str(&format!(
                    "; it is blocked right now in {} (reading a pipe)",
                    f.wchan.as_deref().unwrap_or_default()
                ));
            }
            _ => {}
        }
        add("holds-both-pipe-ends", message);
    }

    for (inode, ends) in &pipes {
        if !ctx.runner_pipe_inodes.contains(inode) {
            continue;
        }
        let writers: Vec<String> = ends
            .iter()
            .filter(|e| e.2)
            .map(|e| format!("fd {}", e.0))
            .collect();
        if writers.is_empty() {
            continue;
        }
        add(
            "holds-runner-pipe",
            format!(
                "holds the write end of the runner's output pipe {inode} ({}): the runner sees \
                 no EOF on the suite's output while it lives",
                writers.join(", ")
            ),
        );
    }

    let sockets = f.fds.iter().filter_map(|fd| match &fd.kind {
        FdKind::Socket {
            inode,
            proto,
            state,
            local,
            remote,
            rx_queue,
            ..
        } => Some((fd.fd, *inode, proto, state, local, remote, *rx_queue)),
        _ => None,
    });
    let sockets: Vec<_> = sockets.collect();
    let describe = |proto: &Option<String>, local: &Option<String>, remote: &Option<String>| {
        let proto = proto.as_deref().unwrap_or("socket");
        match (local, remote) {
            (Some(l), Some(r)) => format!("{proto} {l} <-> {r}"),
            (Some(l), None) => format!("{proto} {l}"),
            (None, _) => proto.to_owned(),
        }
    };
    let is_tcp = |proto: &Option<String>| proto.as_deref().is_some_and(|p| p.starts_with("tcp"));
    for (fd, inode, proto, state, local, remote, rx) in &sockets {
        let Some(rx) = *rx else { continue };
        let state = state.as_deref();
        if state == Some("LISTEN") {
            continue; // a listener's queue counts connections: see `listening`
        }
        let bytes = unread_bytes(proto.as_deref(), state, rx);
        if bytes == 0 {
            continue;
        }
        let socket = format!(
            "fd {fd} ({}, {}, socket {inode})",
            describe(proto, local, remote),
            state.unwrap_or("?")
        );
        let message = if proto.as_deref().is_some_and(|p| p.starts_with("udp")) {
            format!("{bytes} bytes of receive buffer on {socket} hold datagrams it never read")
        } else {
            format!("{bytes} unread bytes wait on {socket}: data arrived that it never read")
        };
        add("unread-socket-data", message);
    }
    for (fd, _, proto, state, local, remote, _) in &sockets {
        if is_tcp(proto) && state.as_deref() == Some("CLOSE-WAIT") {
            add(
                "close-wait",
                format!(
                    "fd {fd} ({}) is in CLOSE-WAIT: the peer closed the connection and this \
                     process never closed its end",
                    describe(proto, local, remote)
                ),
            );
        }
    }
    for (fd, _, proto, state, local, _, rx) in &sockets {
        if !(is_tcp(proto) && state.as_deref() == Some("LISTEN")) {
            continue;
        }
        let address = local.as_deref().unwrap_or("?");
        let port = address.rsplit_once(':').map_or("?", |(_, port)| port);
        let mut message = format!(
            "listens on TCP port {port} ({address}, fd {fd}): the port stays taken while it lives"
        );
        if let Some(n) = rx.filter(|&n| n > 0) {
            message.push_str(&format!("; {n} connection(s) wait to be accepted"));
        }
        add("listening", message);
    }

    if p.pid != 1 && p.ppid == 1 {
        add(
            "orphaned",
            "its parent exited and it was reparented to pid 1 (init)".to_owned(),
        );
    } else if ctx.reaper_pid.is_some_and(|r| r == p.ppid && r != p.pid) {
        add(
            "orphaned",
            format!(
                "its parent exited and it was reparented to the runner (pid {}, the child \
                 subreaper)",
                p.ppid
            ),
        );
    }
    if let Some(g) = ctx.suite_pgid.filter(|&g| g != p.pgid) {
        add(
            "escaped-group",
            format!(
                "in process group {}, not the suite's {g}: it left the suite's group (setpgid or \
                 setsid), so a signal to that group misses it",
                p.pgid
            ),
        );
    }
    if let Some(s) = ctx.suite_sid.filter(|&s| s != p.sid) {
        add(
            "escaped-session",
            format!(
                "in session {}, not the suite's {s}: it called setsid (as daemons, double forks \
                 and `setsid` do) and left the suite's session",
                p.sid
            ),
        );
    }

    match p.state {
        'T' => add(
            "stopped",
            "stopped (state T: SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU): it does nothing and acts \
             on no signal but SIGKILL and SIGCONT until continued"
                .to_owned(),
        ),
        't' => add(
            "stopped",
            "stopped by a tracer (state t, ptrace): it runs again only when the tracer resumes \
             or detaches; SIGKILL still ends it"
                .to_owned(),
        ),
        'Z' | 'X' if p.main_thread_exited() => add(
            "main-thread-exited",
            format!(
                "its main thread exited while {} other thread(s) run on: /proc shows it as a \
                 zombie (state Z), yet it is alive; cgroup.kill misses it, a SIGKILL to its pid \
                 ends it",
                p.threads - 1
            ),
        ),
        'Z' | 'X' => add(
            "zombie",
            format!(
                "it has exited but its parent (pid {}) has not reaped it: it cannot be killed, \
                 only reaped by the parent's wait or freed when the parent exits",
                p.ppid
            ),
        ),
        _ => {}
    }

    let in_d: Vec<&crate::ThreadInfo> = f
        .threads
        .iter()
        .filter(|t| t.state == 'D' && t.tid != p.pid)
        .collect();
    if p.state == 'D' || !in_d.is_empty() {
        let mut parts = Vec::new();
        if p.state == 'D' {
            parts.push(format!(
                "it sleeps uninterruptibly (state D) in {}",
                f.wchan.as_deref().unwrap_or("an unknown kernel function")
            ));
        }
        for t in in_d {
            parts.push(format!(
                "thread {} ({}) sleeps uninterruptibly (state D) in {}",
                t.tid,
                t.comm,
                t.wchan.as_deref().unwrap_or("an unknown kernel function")
            ));
        }
        add(
            "uninterruptible",
            format!(
                "{}: no signal, not even SIGKILL, acts until that kernel call returns",
                parts.join("; ")
            ),
        );
    }

    if f.sig_ignored & SIGTERM_BIT != 0 {
        add(
            "ignores-sigterm",
            "ignores SIGTERM (SigIgn; set by itself or inherited across exec, e.g. from `trap '' \
             TERM`): SIGTERM does nothing, only SIGKILL ends it"
                .to_owned(),
        );
    }
    if f.sig_caught & SIGTERM_BIT != 0 {
        add(
            "catches-sigterm",
            "catches SIGTERM with its own handler (SigCgt): SIGTERM runs that handler, which may \
             or may not exit"
                .to_owned(),
        );
    }
    out
}
