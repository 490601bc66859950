//! Rules that turn what /proc says about a process into findings in plain words.
//!
//! One function per [`Rule`] (each returns the messages of what it found), and [`evaluate`],
//! which applies them in the order of [`Rule::ALL`].

use std::collections::BTreeMap;
use std::fmt;

use crate::fds::FdKind;
use crate::syscall::reading_fd;
use crate::{Forensics, ProcessInfo};

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
    /// The rule that found it (serialized as its kebab-case id, [`Rule::as_str`]).
    pub rule: Rule,
    /// One line in plain words, naming the descriptors, addresses, pids involved.
    pub message: String,
}

/// A finding rule. Serialized as its kebab-case id ([`Rule::as_str`]), the id the README's rule
/// table, the JSON reports and allow lists use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// `holds-both-pipe-ends`
    HoldsBothPipeEnds,
    /// `holds-runner-pipe`
    HoldsRunnerPipe,
    /// `unread-socket-data`
    UnreadSocketData,
    /// `close-wait`
    CloseWait,
    /// `listening`
    Listening,
    /// `orphaned`
    Orphaned,
    /// `escaped-group`
    EscapedGroup,
    /// `escaped-session`
    EscapedSession,
    /// `stopped`
    Stopped,
    /// `zombie`
    Zombie,
    /// `main-thread-exited`
    MainThreadExited,
    /// `uninterruptible`
    Uninterruptible,
    /// `ignores-sigterm`
    IgnoresSigterm,
    /// `catches-sigterm`
    CatchesSigterm,
}

impl Rule {
    /// Every rule, in the order [`evaluate`] applies them (and the README lists them).
    pub const ALL: [Rule; 14] = [
        Rule::HoldsBothPipeEnds,
        Rule::HoldsRunnerPipe,
        Rule::UnreadSocketData,
        Rule::CloseWait,
        Rule::Listening,
        Rule::Orphaned,
        Rule::EscapedGroup,
        Rule::EscapedSession,
        Rule::Stopped,
        Rule::Zombie,
        Rule::MainThreadExited,
        Rule::Uninterruptible,
        Rule::IgnoresSigterm,
        Rule::CatchesSigterm,
    ];

    /// The rule's id: `holds-both-pipe-ends`, `orphaned`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::HoldsBothPipeEnds => "holds-both-pipe-ends",
            Rule::HoldsRunnerPipe => "holds-runner-pipe",
            Rule::UnreadSocketData => "unread-socket-data",
            Rule::CloseWait => "close-wait",
            Rule::Listening => "listening",
            Rule::Orphaned => "orphaned",
            Rule::EscapedGroup => "escaped-group",
            Rule::EscapedSession => "escaped-session",
            Rule::Stopped => "stopped",
            Rule::Zombie => "zombie",
            Rule::MainThreadExited => "main-thread-exited",
            Rule::Uninterruptible => "uninterruptible",
            Rule::IgnoresSigterm => "ignores-sigterm",
            Rule::CatchesSigterm => "catches-sigterm",
        }
    }

    /// What the rule means, in one line of plain words. Documented in the README.
    pub const fn explanation(self) -> &'static str {
        match self {
            Rule::HoldsBothPipeEnds => {
                "has the read end and the write end of the same pipe open: a read on it can \
                 never see EOF, because the process itself keeps a writer alive"
            }
            Rule::HoldsRunnerPipe => {
                "holds a write end of the runner's output-capture pipe: the runner sees no EOF \
                 on the suite's output while this process lives"
            }
            Rule::UnreadSocketData => "a socket has received bytes that the process never read",
            Rule::CloseWait => {
                "a TCP connection is in CLOSE-WAIT: the peer closed it, this process never \
                 closed its end"
            }
            Rule::Listening => {
                "a TCP socket is listening: its port stays taken while the process lives"
            }
            Rule::Orphaned => {
                "its parent exited: it was reparented to pid 1 or to the runner (the child \
                 subreaper)"
            }
            Rule::EscapedGroup => {
                "it is in another process group than the suite's, so a signal to the suite's \
                 group misses it"
            }
            Rule::EscapedSession => {
                "it is in another session than the suite's (setsid, as daemons and double \
                 forks do)"
            }
            Rule::Stopped => {
                "it is stopped (SIGSTOP, job control, or a tracer): it acts on nothing but \
                 SIGKILL and SIGCONT"
            }
            Rule::Zombie => {
                "it has exited but its parent has not reaped it: only the parent's wait (or \
                 exit) removes it"
            }
            Rule::MainThreadExited => {
                "its main thread exited while other threads run on: /proc shows it as a zombie \
                 (state Z), yet it is alive; cgroup.kill misses it, a SIGKILL to its pid ends it"
            }
            Rule::Uninterruptible => {
                "it (or a thread) sleeps uninterruptibly in the kernel (state D): no signal, not \
                 even SIGKILL, acts until that call returns"
            }
            Rule::IgnoresSigterm => {
                "SIGTERM is ignored (SigIgn, inherited across exec): only SIGKILL ends it"
            }
            Rule::CatchesSigterm => {
                "SIGTERM is caught by a handler (SigCgt): what SIGTERM does is up to the program"
            }
        }
    }

    /// The messages of what this rule finds in `seen` (none: the rule does not apply).
    fn check(self, seen: &Observed<'_>, ctx: &FindingContext) -> Vec<String> {
        let (f, p) = (seen.forensics, &seen.forensics.process);
        match self {
            Rule::HoldsBothPipeEnds => holds_both_pipe_ends(seen),
            Rule::HoldsRunnerPipe => holds_runner_pipe(seen, ctx),
            Rule::UnreadSocketData => unread_socket_data(seen),
            Rule::CloseWait => close_wait(seen),
            Rule::Listening => listening(seen),
            Rule::Orphaned => orphaned(p, ctx).into_iter().collect(),
            Rule::EscapedGroup => escaped_group(p, ctx).into_iter().collect(),
            Rule::EscapedSession => escaped_session(p, ctx).into_iter().collect(),
            Rule::Stopped => stopped(p).into_iter().collect(),
            Rule::Zombie => zombie(p).into_iter().collect(),
            Rule::MainThreadExited => main_thread_exited(p).into_iter().collect(),
            Rule::Uninterruptible => uninterruptible(f).into_iter().collect(),
            Rule::IgnoresSigterm => ignores_sigterm(f).into_iter().collect(),
            Rule::CatchesSigterm => catches_sigterm(f).into_iter().collect(),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule id that names no [`Rule`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown finding rule `{0}`")]
pub struct UnknownRule(pub String);

impl std::str::FromStr for Rule {
    type Err = UnknownRule;

    fn from_str(id: &str) -> Result<Rule, UnknownRule> {
        Rule::ALL
            .into_iter()
            .find(|rule| rule.as_str() == id)
            .ok_or_else(|| UnknownRule(id.to_owned()))
    }
}

impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Rule, D::Error> {
        let id = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        id.parse().map_err(serde::de::Error::custom)
    }
}

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

/// Apply every rule to what was collected about one process, in the order of [`Rule::ALL`].
///
/// [`forensics`](crate::forensics) already does this with the context it is given; call it again
/// to judge the same observation against another context.
pub fn evaluate(f: &Forensics, ctx: &FindingContext) -> Vec<Finding> {
    let seen = Observed::of(f);
    Rule::ALL
        .into_iter()
        .flat_map(|rule| {
            rule.check(&seen, ctx)
                .into_iter()
                .map(move |message| Finding { rule, message })
        })
        .collect()
}

/// One end of a pipe the process holds: (fd, readable, writable).
type PipeEnd = (i32, bool, bool);

/// A socket descriptor of the process, as the socket rules look at it.
struct Socket<'a> {
    fd: i32,
    inode: u64,
    proto: &'a Option<String>,
    state: Option<&'a str>,
    local: &'a Option<String>,
    remote: &'a Option<String>,
    rx_queue: Option<u64>,
}

impl Socket<'_> {
    /// `tcp 127.0.0.1:80 <-> 127.0.0.1:5000`, `udp 0.0.0.0:53`, `unix`.
    fn describe(&self) -> String {
        let proto = self.proto.as_deref().unwrap_or("socket");
        match (self.local, self.remote) {
            (Some(l), Some(r)) => format!("{proto} {l} <-> {r}"),
            (Some(l), None) => format!("{proto} {l}"),
            (None, _) => proto.to_owned(),
        }
    }

    fn is_tcp(&self) -> bool {
        self.proto.as_deref().is_some_and(|p| p.starts_with("tcp"))
    }
}

/// What the rules look at, indexed once: the process's pipes by inode and its sockets.
struct Observed<'a> {
    forensics: &'a Forensics,
    /// Pipe inode -> its ends held by the process, in fd order.
    pipes: BTreeMap<u64, Vec<PipeEnd>>,
    sockets: Vec<Socket<'a>>,
}

impl<'a> Observed<'a> {
    fn of(f: &'a Forensics) -> Observed<'a> {
        let mut pipes: BTreeMap<u64, Vec<PipeEnd>> = BTreeMap::new();
        for fd in &f.fds {
            if let Some((inode, read, write)) = fd.kind.pipe_end() {
                pipes.entry(inode).or_default().push((fd.fd, read, write));
            }
        }
        let sockets = f
            .fds
            .iter()
            .filter_map(|fd| match &fd.kind {
                FdKind::Socket {
                    inode,
                    proto,
                    state,
                    local,
                    remote,
                    rx_queue,
                    ..
                } => Some(Socket {
                    fd: fd.fd,
                    inode: *inode,
                    proto,
                    state: state.as_deref(),
                    local,
                    remote,
                    rx_queue: *rx_queue,
                }),
                _ => None,
            })
            .collect();
        Observed {
            forensics: f,
            pipes,
            sockets,
        }
    }
}

/// Blocked in a syscall: sleeping (S) or uninterruptible (D).
fn blocked(p: &ProcessInfo) -> bool {
    matches!(p.state, 'S' | 'D')
}

/// holds-both-pipe-ends: one message per pipe of which the process holds a reader and a writer.
fn holds_both_pipe_ends(seen: &Observed<'_>) -> Vec<String> {
    let f = seen.forensics;
    let reading = f.syscall.as_deref().and_then(reading_fd);
    let mut out = Vec::new();
    for (inode, ends) in &seen.pipes {
        if !(ends.iter().any(|e| e.1) && ends.iter().any(|e| e.2)) {
            continue;
        }
        let list = ends
            .iter()
            .map(|&(fd, r, w)| format!("fd {fd} {}", direction(r, w)))
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
        let blocked = blocked(&f.process);
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
        out.push(message);
    }
    out
}

/// A descriptor's access in words: `read`, `write`, `read+write`, `no access`.
pub(crate) fn direction(read: bool, write: bool) -> &'static str {
    match (read, write) {
        (true, true) => "read+write",
        (true, false) => "read",
        (false, true) => "write",
        (false, false) => "no access",
    }
}

/// holds-runner-pipe: one message per runner output pipe the process holds a write end of.
fn holds_runner_pipe(seen: &Observed<'_>, ctx: &FindingContext) -> Vec<String> {
    let mut out = Vec::new();
    for (inode, ends) in &seen.pipes {
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
        out.push(format!(
            "holds the write end of the runner's output pipe {inode} ({}): the runner sees no \
             EOF on the suite's output while it lives",
            writers.join(", ")
        ));
    }
    out
}

/// unread-socket-data: one message per socket (not listening) with bytes in its receive queue.
fn unread_socket_data(seen: &Observed<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for s in &seen.sockets {
        let Some(rx) = s.rx_queue else { continue };
        if s.state == Some("LISTEN") {
            continue; // a listener's queue counts connections: see `listening`
        }
        let bytes = unread_bytes(s.proto.as_deref(), s.state, rx);
        if bytes == 0 {
            continue;
        }
        let socket = format!(
            "fd {} ({}, {}, socket {})",
            s.fd,
            s.describe(),
            s.state.unwrap_or("?"),
            s.inode
        );
        out.push(
            if s.proto.as_deref().is_some_and(|p| p.starts_with("udp")) {
                format!("{bytes} bytes of receive buffer on {socket} hold datagrams it never read")
            } else {
                format!("{bytes} unread bytes wait on {socket}: data arrived that it never read")
            },
        );
    }
    out
}

/// close-wait: one message per TCP connection in CLOSE-WAIT.
fn close_wait(seen: &Observed<'_>) -> Vec<String> {
    seen.sockets
        .iter()
        .filter(|s| s.is_tcp() && s.state == Some("CLOSE-WAIT"))
        .map(|s| {
            format!(
                "fd {} ({}) is in CLOSE-WAIT: the peer closed the connection and this process \
                 never closed its end",
                s.fd,
                s.describe()
            )
        })
        .collect()
}

/// listening: one message per listening TCP socket.
fn listening(seen: &Observed<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for s in &seen.sockets {
        if !(s.is_tcp() && s.state == Some("LISTEN")) {
            continue;
        }
        let address = s.local.as_deref().unwrap_or("?");
        let port = address.rsplit_once(':').map_or("?", |(_, port)| port);
        let mut message = format!(
            "listens on TCP port {port} ({address}, fd {}): the port stays taken while it lives",
            s.fd
        );
        if let Some(n) = s.rx_queue.filter(|&n| n > 0) {
            message.push_str(&format!("; {n} connection(s) wait to be accepted"));
        }
        out.push(message);
    }
    out
}

/// orphaned: reparented to pid 1 or to the runner (the child subreaper).
fn orphaned(p: &ProcessInfo, ctx: &FindingContext) -> Option<String> {
    if p.pid != 1 && p.ppid == 1 {
        Some("its parent exited and it was reparented to pid 1 (init)".to_owned())
    } else if ctx.reaper_pid.is_some_and(|r| r == p.ppid && r != p.pid) {
        Some(format!(
            "its parent exited and it was reparented to the runner (pid {}, the child \
             subreaper)",
            p.ppid
        ))
    } else {
        None
    }
}

/// escaped-group: in another process group than the suite's.
fn escaped_group(p: &ProcessInfo, ctx: &FindingContext) -> Option<String> {
    let g = ctx.suite_pgid.filter(|&g| g != p.pgid)?;
    Some(format!(
        "in process group {}, not the suite's {g}: it left the suite's group (setpgid or \
         setsid), so a signal to that group misses it",
        p.pgid
    ))
}

/// escaped-session: in another session than the suite's.
fn escaped_session(p: &ProcessInfo, ctx: &FindingContext) -> Option<String> {
    let s = ctx.suite_sid.filter(|&s| s != p.sid)?;
    Some(format!(
        "in session {}, not the suite's {s}: it called setsid (as daemons, double forks \
         and `setsid` do) and left the suite's session",
        p.sid
    ))
}

/// stopped: state T (job control) or t (a tracer).
fn stopped(p: &ProcessInfo) -> Option<String> {
    let message = match p.state {
        'T' => {
            "stopped (state T: SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU): it does nothing and acts \
             on no signal but SIGKILL and SIGCONT until continued"
        }
        't' => {
            "stopped by a tracer (state t, ptrace): it runs again only when the tracer resumes \
             or detaches; SIGKILL still ends it"
        }
        _ => return None,
    };
    Some(message.to_owned())
}

/// zombie: exited, not reaped (not a live process whose main thread exited).
fn zombie(p: &ProcessInfo) -> Option<String> {
    p.is_zombie().then(|| {
        format!(
            "it has exited but its parent (pid {}) has not reaped it: it cannot be killed, \
             only reaped by the parent's wait or freed when the parent exits",
            p.ppid
        )
    })
}

/// main-thread-exited: state Z, yet other threads run on.
fn main_thread_exited(p: &ProcessInfo) -> Option<String> {
    p.main_thread_exited().then(|| {
        format!(
            "its main thread exited while {} other thread(s) run on: /proc shows it as a \
             zombie (state Z), yet it is alive; cgroup.kill misses it, a SIGKILL to its pid \
             ends it",
            p.threads - 1
        )
    })
}

/// uninterruptible: the process, or one of its threads, in state D (one message for all).
fn uninterruptible(f: &Forensics) -> Option<String> {
    let p = &f.process;
    let mut parts = Vec::new();
    if p.state == 'D' {
        parts.push(format!(
            "it sleeps uninterruptibly (state D) in {}",
            f.wchan.as_deref().unwrap_or("an unknown kernel function")
        ));
    }
    for t in f
        .threads
        .iter()
        .filter(|t| t.state == 'D' && t.tid != p.pid)
    {
        parts.push(format!(
            "thread {} ({}) sleeps uninterruptibly (state D) in {}",
            t.tid,
            t.comm,
            t.wchan.as_deref().unwrap_or("an unknown kernel function")
        ));
    }
    (!parts.is_empty()).then(|| {
        format!(
            "{}: no signal, not even SIGKILL, acts until that kernel call returns",
            parts.join("; ")
        )
    })
}

/// ignores-sigterm: SIGTERM in SigIgn.
fn ignores_sigterm(f: &Forensics) -> Option<String> {
    (f.sig_ignored & SIGTERM_BIT != 0).then(|| {
        "ignores SIGTERM (SigIgn; set by itself or inherited across exec, e.g. from `trap '' \
         TERM`): SIGTERM does nothing, only SIGKILL ends it"
            .to_owned()
    })
}

/// catches-sigterm: SIGTERM in SigCgt.
fn catches_sigterm(f: &Forensics) -> Option<String> {
    (f.sig_caught & SIGTERM_BIT != 0).then(|| {
        "catches SIGTERM with its own handler (SigCgt): SIGTERM runs that handler, which may \
         or may not exit"
            .to_owned()
    })
}
