//! The forensic report in words, as `reap-probe PID` prints it.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::fds::FdKind;
use crate::findings::{direction, unread_bytes, SIGTERM_BIT};
use crate::tree::{format_age, sanitize, truncate};
use crate::{FdInfo, Forensics};

/// At most this many threads are listed one by one.
const MAX_THREADS: usize = 16;
/// At most this many descriptors are listed one by one.
const MAX_FDS: usize = 32;

impl Forensics {
    /// The report of this process: a header line (`pid 4321 (cat) S sleeping, age 3.2s: cat`),
    /// then indented lines for the parent, group and session, tag and cgroup, exe, wchan,
    /// syscall, SIGTERM disposition, threads (when more than one), the descriptor summary with
    /// the interesting descriptors (0-2, pipes, FIFOs, sockets with state, addresses and queues;
    /// at most 32, the others only counted), and the findings.
    ///
    /// `width` cuts the header line (which holds the command line) to that many columns; 0: no
    /// limit. Control characters are shown as `?`, so every line stays a line.
    pub fn render(&self, width: usize) -> String {
        let mut out = String::new();
        render_into(&mut out, self, "", width);
        out
    }
}

/// The report of every process of `list` (as from [`forensics_tree`](crate::forensics_tree),
/// parents before children), each block indented four columns deeper than its parent's, blocks
/// separated by an empty line.
///
/// A process whose parent is not in the list (the root, or one reparented since the scan) starts
/// at the left margin.
pub fn render_forensics_tree(list: &[Forensics], width: usize) -> String {
    let mut depth: HashMap<i32, usize> = HashMap::new();
    let mut out = String::new();
    for (i, f) in list.iter().enumerate() {
        let d = depth.get(&f.process.ppid).map_or(0, |d| d + 1);
        depth.insert(f.process.pid, d);
        if i > 0 {
            out.push('\n');
        }
        let indent = " ".repeat(4 * d);
        let width = if width == 0 {
            0
        } else {
            width.saturating_sub(indent.len()).max(8)
        };
        render_into(&mut out, f, &indent, width);
    }
    out
}

fn render_into(out: &mut String, f: &Forensics, indent: &str, width: usize) {
    let mut block = Block { out, indent };
    block.header(f, width);
    block.process_fields(f);
    block.threads(f);
    block.fds(f);
    block.findings(f);
    block.unreadable(f);
}

/// One process's block of the report: lines written at `indent`.
struct Block<'a> {
    out: &'a mut String,
    indent: &'a str,
}

impl Block<'_> {
    /// `  name     value`: a field, its name in a column of 9 (trailing blanks cut).
    fn field(&mut self, name: &str, value: &str) {
        let line = format!("{}  {name:<9}{value}", self.indent);
        let _ = writeln!(self.out, "{}", line.trim_end());
    }

    /// `pid 4321 (cat) S sleeping, age 3.2s: cat ...`, cut to `width`.
    fn header(&mut self, f: &Forensics, width: usize) {
        let p = &f.process;
        let command = if p.cmdline.is_empty() {
            "(no command line)".to_owned()
        } else {
            sanitize(&p.cmdline.join(" "))
        };
        let header = format!(
            "pid {} ({}) {} {}, age {}: {command}",
            p.pid,
            sanitize(&p.comm),
            p.state,
            state_name(p.state),
            format_age(p.age_ms),
        );
        let _ = writeln!(self.out, "{}{}", self.indent, truncate(&header, width));
    }

    /// parent, tag, cgroup, exe, wchan, syscall and the SIGTERM disposition.
    fn process_fields(&mut self, f: &Forensics) {
        let p = &f.process;
        self.field(
            "parent",
            &format!(
                "ppid {}, pgid {}, sid {}, {} thread(s), rss {}",
                p.ppid,
                p.pgid,
                p.sid,
                p.threads,
                format_bytes(p.rss_bytes)
            ),
        );
        if let Some(tag) = &p.tag {
            self.field("tag", &sanitize(tag));
        }
        if let Some(cgroup) = &p.cgroup {
            self.field("cgroup", &sanitize(cgroup));
        }
        self.field("exe", &dash(&f.exe));
        self.field("wchan", &dash(&f.wchan));
        self.field("syscall", &dash(&f.syscall));
        let term = match (
            f.sig_ignored & SIGTERM_BIT != 0,
            f.sig_caught & SIGTERM_BIT != 0,
        ) {
            (true, _) => "ignored",
            (false, true) => "caught by a handler",
            (false, false) => "default (terminates)",
        };
        self.field("SIGTERM", term);
    }

    /// The threads, one per line (at most [`MAX_THREADS`]), when there is more than one.
    fn threads(&mut self, f: &Forensics) {
        if f.threads.len() <= 1 {
            return;
        }
        self.field("threads", &f.threads.len().to_string());
        for t in f.threads.iter().take(MAX_THREADS) {
            let thread = format!(
                "{} {} {} {}",
                t.tid,
                sanitize(&t.comm),
                t.state,
                dash(&t.wchan)
            );
            self.field("", &thread);
        }
        if f.threads.len() > MAX_THREADS {
            self.field(
                "",
                &format!("... and {} more", f.threads.len() - MAX_THREADS),
            );
        }
    }

    /// The descriptor summary and the interesting descriptors (at most [`MAX_FDS`]).
    fn fds(&mut self, f: &Forensics) {
        if let Some(why) = f.unreadable.iter().find(|u| u.starts_with("fd:")) {
            self.field("fds", &format!("unknown ({why})"));
            return;
        }
        self.field("fds", &summary(f));
        let interesting: Vec<&FdInfo> = f
            .fds
            .iter()
            .filter(|fd| {
                fd.fd <= 2
                    || matches!(
                        fd.kind,
                        FdKind::Pipe { .. } | FdKind::Fifo { .. } | FdKind::Socket { .. }
                    )
            })
            .collect();
        for fd in interesting.iter().take(MAX_FDS) {
            self.field("", &format!("{:<3} {}", fd.fd, describe_fd(&fd.kind)));
        }
        let hidden = f.fds.len() - interesting.len().min(MAX_FDS);
        if hidden > 0 {
            self.field("", &format!("... and {hidden} more not listed"));
        }
    }

    /// `findings none`, or each finding as `rule: message`.
    fn findings(&mut self, f: &Forensics) {
        if f.findings.is_empty() {
            self.field("findings", "none");
            return;
        }
        self.field("findings", "");
        for finding in &f.findings {
            let _ = writeln!(
                self.out,
                "{}    {}: {}",
                self.indent,
                finding.rule,
                sanitize(&finding.message)
            );
        }
    }

    /// What could not be read, besides the descriptors (shown with them).
    fn unreadable(&mut self, f: &Forensics) {
        let other: Vec<&str> = f
            .unreadable
            .iter()
            .filter(|u| !u.starts_with("fd:"))
            .map(String::as_str)
            .collect();
        if !other.is_empty() {
            let _ = writeln!(
                self.out,
                "{}  unreadable {}",
                self.indent,
                sanitize(&other.join("; "))
            );
        }
    }
}

/// The value, sanitized, or `-`.
fn dash(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "-".to_owned(), sanitize)
}

/// `5 open: 1 file, 2 pipes, 1 socket, 1 anon` (kinds with a zero count left out).
fn summary(f: &Forensics) -> String {
    let s = &f.fd_summary;
    let mut parts = Vec::new();
    for (n, one, many) in [
        (s.files, "file", "files"),
        (s.pipes, "pipe", "pipes"),
        (s.sockets, "socket", "sockets"),
        (s.anon, "anon", "anon"),
        (s.memfd, "memfd", "memfds"),
        (s.other, "other", "other"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {}", if n == 1 { one } else { many }));
        }
    }
    if parts.is_empty() {
        return "none open".to_owned();
    }
    format!("{} open: {}", s.total, parts.join(", "))
}

/// One descriptor in words: `pipe 437089 read`, `tcp 127.0.0.1:8080 LISTEN`, `/dev/null`.
fn describe_fd(kind: &FdKind) -> String {
    match kind {
        FdKind::File { path } => sanitize(path),
        FdKind::Pipe { inode, read, write } => {
            format!("pipe {inode} {}", direction(*read, *write))
        }
        FdKind::Fifo {
            path,
            inode,
            read,
            write,
        } => format!(
            "fifo {} (inode {inode}) {}",
            sanitize(path),
            direction(*read, *write)
        ),
        FdKind::Socket {
            inode,
            proto,
            state,
            local,
            remote,
            rx_queue,
            tx_queue,
        } => {
            let Some(proto) = proto else {
                return format!("socket {inode} (not in the tcp, udp or unix tables)");
            };
            let mut s = proto.clone();
            if let Some(local) = local {
                s.push(' ');
                s.push_str(&sanitize(local));
            }
            if let Some(remote) = remote {
                s.push_str(" <-> ");
                s.push_str(remote);
            }
            if let Some(state) = state {
                s.push(' ');
                s.push_str(state);
            }
            match (state.as_deref(), rx_queue, tx_queue) {
                (Some("LISTEN"), rx, _) if proto.starts_with("tcp") => {
                    if let Some(rx) = rx.filter(|&n| n > 0) {
                        let _ = write!(s, ", {rx} connection(s) waiting to be accepted");
                    }
                }
                (_, Some(rx), Some(tx)) => {
                    let bytes = unread_bytes(Some(proto), state.as_deref(), *rx);
                    if bytes == *rx {
                        let _ = write!(s, ", rx {rx} tx {tx}");
                    } else {
                        let _ = write!(s, ", rx {rx} ({bytes} bytes + FIN) tx {tx}");
                    }
                }
                _ => {}
            }
            s
        }
        FdKind::Anon { what } => format!("anon {}", sanitize(what)),
        FdKind::Memfd { name } => format!("memfd {}", sanitize(name)),
        FdKind::Other { target } => sanitize(target),
    }
}

/// The state letter in words.
fn state_name(state: char) -> &'static str {
    match state {
        'R' => "running",
        'S' => "sleeping",
        'D' => "uninterruptible",
        'T' => "stopped",
        't' => "tracing stop",
        'Z' => "zombie",
        'X' => "dead",
        'I' => "idle",
        'P' => "parked",
        'W' => "waking",
        'K' => "wakekill",
        _ => "unknown state",
    }
}

/// `512 B`, `3.4 KiB`, `1.9 MiB`, `2.0 GiB`.
fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
