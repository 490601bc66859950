//! `/proc/PID/syscall`: which system call a blocked process is in, in words.
//!
//! The file holds the syscall number and its six raw arguments (`0 0x3 0x7ffd... 0x1000 ...`),
//! `running` for a process on a CPU, or `-1 SP PC` for one blocked in the kernel outside a
//! syscall (a zombie, a page fault). Syscall numbers depend on the architecture; the common
//! blocking calls are named for x86-64 and AArch64, any other number is shown as `syscall N`.
//! (A 32-bit process on a 64-bit kernel reports its own ABI's numbers, which this does not name.)

/// How to show a syscall's interesting argument.
#[derive(Clone, Copy)]
enum Shape {
    /// No argument worth showing.
    Plain,
    /// First argument is a file descriptor: `read(fd=3)`.
    Fd,
    /// First argument is an epoll descriptor: `epoll_wait(epfd=5)`.
    Epfd,
    /// First argument is a number of descriptors (`poll`: in memory, `select`: highest + 1).
    Nfds,
    /// First argument is a pid as `wait4` takes it: `wait4(pid=-1)`.
    Pid,
    /// `waitid(idtype, id, ...)`.
    Waitid,
}

#[cfg(target_arch = "x86_64")]
const TABLE: &[(u64, &str, Shape)] = &[
    (0, "read", Shape::Fd),
    (1, "write", Shape::Fd),
    (7, "poll", Shape::Nfds),
    (17, "pread64", Shape::Fd),
    (19, "readv", Shape::Fd),
    (23, "select", Shape::Nfds),
    (34, "pause", Shape::Plain),
    (35, "nanosleep", Shape::Plain),
    (43, "accept", Shape::Fd),
    (45, "recvfrom", Shape::Fd),
    (47, "recvmsg", Shape::Fd),
    (61, "wait4", Shape::Pid),
    (128, "rt_sigtimedwait", Shape::Plain),
    (130, "rt_sigsuspend", Shape::Plain),
    (202, "futex", Shape::Plain),
    (230, "clock_nanosleep", Shape::Plain),
    (232, "epoll_wait", Shape::Epfd),
    (247, "waitid", Shape::Waitid),
    (270, "pselect6", Shape::Nfds),
    (271, "ppoll", Shape::Nfds),
    (281, "epoll_pwait", Shape::Epfd),
    (288, "accept4", Shape::Fd),
    (441, "epoll_pwait2", Shape::Epfd),
];

#[cfg(target_arch = "aarch64")]
const TABLE: &[(u64, &str, Shape)] = &[
    (22, "epoll_pwait", Shape::Epfd),
    (63, "read", Shape::Fd),
    (64, "write", Shape::Fd),
    (65, "readv", Shape::Fd),
    (67, "pread64", Shape::Fd),
    (72, "pselect6", Shape::Nfds),
    (73, "ppoll", Shape::Nfds),
    (95, "waitid", Shape::Waitid),
    (98, "futex", Shape::Plain),
    (101, "nanosleep", Shape::Plain),
    (115, "clock_nanosleep", Shape::Plain),
    (133, "rt_sigsuspend", Shape::Plain),
    (137, "rt_sigtimedwait", Shape::Plain),
    (202, "accept", Shape::Fd),
    (207, "recvfrom", Shape::Fd),
    (212, "recvmsg", Shape::Fd),
    (242, "accept4", Shape::Fd),
    (260, "wait4", Shape::Pid),
    (441, "epoll_pwait2", Shape::Epfd),
];

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const TABLE: &[(u64, &str, Shape)] = &[];

/// Describe the contents of `/proc/PID/syscall`: `read(fd=3)`, `wait4(pid=-1)`,
/// `clock_nanosleep`, `syscall 999`, or `running`. `None` when the process is not in a syscall
/// (`-1 ...`: a zombie, or blocked elsewhere in the kernel) or the contents do not parse.
pub(crate) fn describe(contents: &str) -> Option<String> {
    let contents = contents.trim();
    if contents == "running" {
        return Some("running".to_owned());
    }
    let mut fields = contents.split_whitespace();
    let nr: i64 = fields.next()?.parse().ok()?;
    let Ok(nr) = u64::try_from(nr) else {
        return None; // -1: not in a syscall
    };
    let arg = fields
        .next()
        .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok());
    let second = fields
        .next()
        .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok());
    let Some(&(_, name, shape)) = TABLE.iter().find(|(n, _, _)| *n == nr) else {
        return Some(format!("syscall {nr}"));
    };
    // Arguments are register values: an `int` argument is the low 32 bits, sign-extended.
    let int = |v: Option<u64>| v.map(|v| v as u32 as i32);
    Some(match (shape, int(arg)) {
        (Shape::Fd, Some(fd)) => format!("{name}(fd={fd})"),
        (Shape::Epfd, Some(fd)) => format!("{name}(epfd={fd})"),
        (Shape::Nfds, Some(n)) => format!("{name}(nfds={n})"),
        (Shape::Pid, Some(pid)) => format!("{name}(pid={pid})"),
        (Shape::Waitid, Some(idtype)) => match (idtype, int(second)) {
            (0, _) => format!("{name}(P_ALL)"),
            (1, Some(id)) => format!("{name}(P_PID {id})"),
            (2, Some(id)) => format!("{name}(P_PGID {id})"),
            (3, Some(id)) => format!("{name}(P_PIDFD fd={id})"),
            _ => name.to_owned(),
        },
        _ => name.to_owned(),
    })
}

/// The descriptor a described syscall reads from, if it is a read-like call (`read(fd=3)`,
/// `readv(fd=3)`, `pread64(fd=3)`).
pub(crate) fn reading_fd(described: &str) -> Option<i32> {
    let (name, rest) = described.split_once("(fd=")?;
    if !matches!(name, "read" | "readv" | "pread64") {
        return None;
    }
    rest.strip_suffix(')')?.parse().ok()
}
