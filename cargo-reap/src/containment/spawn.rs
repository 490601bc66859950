//! Starting a contained process ourselves: `clone3(CLONE_INTO_CGROUP |
//! CLONE_PIDFD)` + `execve`, so a suite is born in its cgroup leaf (no write
//! to `cgroup.procs`, no wait for an RCU grace period) and we hold a pidfd
//! from its first instant. std's `Command` cannot pass either flag.
//!
//! [`Spawn`] is a command of ours (program, arguments, environment changes,
//! working directory, stdio, the child-side [`layers`](super::layers) steps
//! and, in cgroup mode, the leaf to be born in). Everything the child needs
//! is prepared before the clone — argv and envp as C strings, the candidate
//! paths of the program, the working directory, the stdio plan — so the
//! child makes only async-signal-safe system calls: `dup2`, `chdir`, the
//! layers' steps, `execve`. An error there (errno and which step) comes back
//! over a close-on-exec pipe; the parent then reaps the child and returns it.
//! On every path what was spawned is killed and reaped ([`OwnedChild`]).
//!
//! On x86-64 the clone is the one `posix_spawn` makes (`vfork`): the child
//! shares the runner's memory on a stack of its own until its `execve`, so
//! no page table is copied and the runner takes no copy-on-write faults
//! after; elsewhere, or where the kernel refuses those flags, a plain fork.
//!
//! Without a cgroup (process-group mode) the same spawner runs with
//! `CLONE_PIDFD` only, and falls back to `fork` + `pidfd_open` where the
//! kernel or a seccomp filter refuses `clone3`.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::pipe::{pipe_with, PipeFlags};

use super::layers::{ChildStep, Layered};
use crate::sys::{self, OwnedChild};

/// `CLONE_INTO_CGROUP` (Linux 5.7). libc 0.2.191 declares it as a `c_int`
/// that overflows (deprecated for that reason), so it is spelled here.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Where one of the child's standard descriptors comes from.
#[derive(Debug)]
pub enum Stdio {
    /// The runner's own.
    Inherit,
    /// `/dev/null`.
    Null,
    /// This descriptor (a pipe's write end, a file), moved into the child.
    Fd(OwnedFd),
}

/// A command to start contained: see the module documentation.
#[derive(Debug)]
pub struct Spawn {
    program: OsString,
    args: Vec<OsString>,
    /// Changes to the runner's environment: `None` removes the variable.
    env: BTreeMap<OsString, Option<OsString>>,
    cwd: Option<PathBuf>,
    stdio: [Stdio; 3],
    steps: Vec<ChildStep>,
    /// The cgroup leaf (an open directory) to be born in.
    cgroup: Option<Arc<OwnedFd>>,
}

/// The child-side step that failed, reported with its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Stage {
    Stdio = 1,
    Chdir = 2,
    Signals = 3,
    Step = 4,
    Exec = 5,
}

impl Stage {
    fn describe(v: u32) -> &'static str {
        match v {
            1 => "setting up its stdin, stdout and stderr",
            2 => "entering its working directory",
            3 => "resetting its signal handling",
            4 => "joining its containment",
            _ => "executing it",
        }
    }
}

impl Spawn {
    pub fn new(program: impl AsRef<OsStr>) -> Spawn {
        Spawn {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            stdio: [Stdio::Inherit, Stdio::Inherit, Stdio::Inherit],
            steps: Vec::new(),
            cgroup: None,
        }
    }

    pub fn arg(&mut self, a: impl AsRef<OsStr>) -> &mut Spawn {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Spawn {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(&mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> &mut Spawn {
        self.env
            .insert(k.as_ref().to_owned(), Some(v.as_ref().to_owned()));
        self
    }

    pub fn env_remove(&mut self, k: impl AsRef<OsStr>) -> &mut Spawn {
        self.env.insert(k.as_ref().to_owned(), None);
        self
    }

    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Spawn {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    pub fn stdin(&mut self, s: Stdio) -> &mut Spawn {
        self.stdio[0] = s;
        self
    }

    pub fn stdout(&mut self, s: Stdio) -> &mut Spawn {
        self.stdio[1] = s;
        self
    }

    pub fn stderr(&mut self, s: Stdio) -> &mut Spawn {
        self.stdio[2] = s;
        self
    }

    /// A child-side step ([`super::layers`]), run in the order added.
    pub(crate) fn step(&mut self, step: ChildStep) -> &mut Spawn {
        self.steps.push(step);
        self
    }

    /// Be born in this cgroup (`CLONE_INTO_CGROUP`; `leaf` an open directory of it).
    pub(crate) fn born_in(&mut self, leaf: Arc<OwnedFd>) -> &mut Spawn {
        self.cgroup = Some(leaf);
        self
    }

    /// The child-side steps, in order (for tests of a containment's plan).
    #[cfg(test)]
    pub(crate) fn steps(&self) -> &[ChildStep] {
        &self.steps
    }

    /// Is the child to be born in a cgroup?
    #[cfg(test)]
    pub(crate) fn is_born_in_cgroup(&self) -> bool {
        self.cgroup.is_some()
    }

    /// The program, for error messages.
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// Start the process. Returns once it executes the program (or failed
    /// to: then it has been reaped, and the error says which step failed).
    pub fn spawn(self) -> io::Result<OwnedChild> {
        let plan = Plan::of(&self)?;
        let (report_r, report_w) = pipe_with(PipeFlags::CLOEXEC)?;
        let child = sys::spawn_claimed(|| {
            let cgroup = self.cgroup.as_deref().map(AsRawFd::as_raw_fd);
            // SAFETY: the child runs `child_main` only, which makes raw
            // system calls on memory prepared before the clone (and, sharing
            // it, writes nothing of it), then execs or `_exit`s.
            if let Some(spawned) = unsafe { vfork::spawn(&plan, report_w.as_raw_fd(), cgroup) } {
                return spawned;
            }
            // SAFETY: as above; the child never returns here.
            match unsafe { clone_pidfd(cgroup) }? {
                Cloned::Child => unsafe { plan.child_main(report_w.as_raw_fd()) },
                Cloned::Parent { pid, pidfd } => Ok((pid, pidfd)),
            }
        })?;
        drop(report_w);
        drop(plan);
        match read_report(report_r)? {
            None => Ok(child),
            Some((stage, errno)) => {
                // It `_exit`ed: collect it (kill + wait on drop otherwise).
                child.reap().map_err(|e| io::Error::other(e.to_string()))?;
                let err = io::Error::from_raw_os_error(errno);
                if stage == Stage::Exec as u32 {
                    Err(err)
                } else {
                    Err(io::Error::new(
                        err.kind(),
                        format!("{}: {err}", Stage::describe(stage)),
                    ))
                }
            }
        }
        // `self` (the moved-in descriptors) drops here, after the child has its copies.
    }
}

impl Layered for Spawn {
    fn set_env(&mut self, key: &str, value: &str) {
        self.env(key, value);
    }

    fn remove_env(&mut self, key: &str) {
        self.env_remove(key);
    }

    fn child_step(&mut self, step: ChildStep) {
        self.step(step);
    }
}

/// What `clone3` returned, on each side.
pub(crate) enum Cloned {
    Child,
    Parent { pid: i32, pidfd: OwnedFd },
}

/// Why `clone3` could not place a child in a cgroup: the kernel lacks the
/// system call (ENOSYS, Linux < 5.3) or the flag (E2BIG or EINVAL, < 5.7),
/// or a seccomp filter refuses it (ENOSYS or EPERM, as container runtimes do).
pub(crate) fn clone3_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL | libc::EPERM)
    )
}

/// `clone3(CLONE_PIDFD [| CLONE_INTO_CGROUP])`, a fork with a pidfd, born in
/// `cgroup` when given. Without a cgroup, a kernel or filter that refuses
/// `clone3` gets `fork` + `pidfd_open` instead (the pid cannot be reused
/// before we reap it: the child is ours).
///
/// # Safety
/// As `fork` in a threaded process: on [`Cloned::Child`] the caller may
/// only make async-signal-safe calls, then exec or `_exit`.
pub(crate) unsafe fn clone_pidfd(cgroup: Option<RawFd>) -> io::Result<Cloned> {
    let mut pidfd: libc::c_int = -1;
    // SAFETY: all-zero is a valid clone_args (no flags, no pointers).
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = libc::CLONE_PIDFD as u64;
    args.pidfd = std::ptr::addr_of_mut!(pidfd) as u64;
    args.exit_signal = libc::SIGCHLD as u64;
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: clone3 with a valid clone_args of the size we pass, no stack
    // (fork semantics: the child continues on a copy of this stack).
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of_mut!(args),
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match r {
        0 => Ok(Cloned::Child),
        pid if pid > 0 => Ok(Cloned::Parent {
            pid: pid as i32,
            // SAFETY: the kernel stored a fresh pidfd (close-on-exec) we now own.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
        _ => {
            let e = io::Error::last_os_error();
            if cgroup.is_some() || !clone3_unsupported(&e) {
                return Err(e);
            }
            // SAFETY: as this function's own contract.
            unsafe { fork_then_pidfd() }
        }
    }
}

/// A child born in `cgroup` that exits with 0 at once (the probe of how
/// suites will get into their leaves): vfork-style where the kernel allows
/// it, so that no copy of the runner's page tables is made for a child that
/// runs nothing; else [`clone_pidfd`]. Its pid and pidfd.
pub(crate) fn exit_at_once_in(cgroup: RawFd) -> io::Result<(i32, OwnedFd)> {
    if let Some(cloned) = vfork::exit_at_once(Some(cgroup)) {
        return cloned;
    }
    // SAFETY: the child only `_exit`s.
    match unsafe { clone_pidfd(Some(cgroup)) }? {
        // SAFETY: _exit is async-signal-safe.
        Cloned::Child => unsafe { libc::_exit(0) },
        Cloned::Parent { pid, pidfd } => Ok((pid, pidfd)),
    }
}

/// The spawn as `posix_spawn` does it: `clone3(CLONE_VM | CLONE_VFORK)`,
/// the child on a stack of its own, sharing the runner's memory until its
/// `execve` — no copy of the runner's page tables, no copy-on-write faults
/// in the runner afterwards (a plain fork's cost grows with the runner's
/// memory). x86-64 only (the child's entry is three instructions of
/// assembly); elsewhere, and where the kernel refuses it, [`clone_pidfd`].
#[cfg(target_arch = "x86_64")]
mod vfork {
    use std::ffi::c_void;
    use std::io;
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};

    use super::{Plan, CLONE_INTO_CGROUP};

    /// `CLONE_CLEAR_SIGHAND` (Linux 5.5; libc's constant overflows a `c_int`).
    const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
    /// The child's stack: `child_main` and the system calls it makes.
    const STACK: usize = 64 * 1024;

    /// What the spawned program's child gets.
    struct Args<'a> {
        plan: &'a Plan,
        report: RawFd,
        /// The runner's signal mask, restored in the child once its
        /// handlers are reset.
        mask: libc::sigset_t,
    }

    extern "C" fn child(args: *const c_void) -> ! {
        // SAFETY: `args` is the `Args` that `spawn` passes, in the parent's
        // frame, which waits (CLONE_VFORK) until this child execs or exits.
        let args = unsafe { &*args.cast::<Args<'_>>() };
        // SAFETY: async-signal-safe; the handlers are the defaults already
        // (CLONE_CLEAR_SIGHAND), so unblocking runs none of the runner's.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &args.mask, std::ptr::null_mut());
            args.plan.child_main(args.report)
        }
    }

    extern "C" fn exit_zero(_: *const c_void) -> ! {
        // SAFETY: a raw exit of this child alone (its own thread group).
        unsafe { libc::_exit(0) }
    }

    /// `Some` with the child (or the error of a step before it could run),
    /// `None` where this kernel refuses the flags (then fork instead).
    ///
    /// # Safety
    /// `plan` and `report` as for [`Plan::child_main`].
    pub(super) unsafe fn spawn(
        plan: &Plan,
        report: RawFd,
        cgroup: Option<RawFd>,
    ) -> Option<io::Result<(i32, OwnedFd)>> {
        let mut args = Args {
            plan,
            report,
            mask: unsafe { std::mem::zeroed() },
        };
        let mask = std::ptr::addr_of_mut!(args.mask);
        // SAFETY: `child` reads `args` (alive until the clone returns here)
        // and runs `child_main` (the caller's contract).
        unsafe { clone_vm(cgroup, child, std::ptr::addr_of!(args).cast(), mask) }
    }

    /// A child (born in `cgroup` when given) that exits with 0 at once, its
    /// pid and pidfd; `None` where the kernel refuses the flags.
    pub(super) fn exit_at_once(cgroup: Option<RawFd>) -> Option<io::Result<(i32, OwnedFd)>> {
        let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `exit_zero` touches no memory.
        unsafe { clone_vm(cgroup, exit_zero, std::ptr::null(), &mut mask) }
    }

    /// `clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_CLEAR_SIGHAND
    /// [| CLONE_INTO_CGROUP])`, the child running `entry(arg)` on a stack of
    /// its own, every signal blocked across the clone (the runner's mask
    /// stored in `*mask` for the child, restored here after).
    ///
    /// # Safety
    /// `entry` must never return, and may only make raw system calls on
    /// memory prepared before the clone (it shares ours) until it execs or
    /// `_exit`s.
    unsafe fn clone_vm(
        cgroup: Option<RawFd>,
        entry: extern "C" fn(*const c_void) -> !,
        arg: *const c_void,
        mask: *mut libc::sigset_t,
    ) -> Option<io::Result<(i32, OwnedFd)>> {
        let mut stack = vec![0u8; STACK];
        // 16-byte aligned top: `call` then leaves the entry ABI-aligned.
        let top = (stack.as_mut_ptr() as usize + STACK) & !15;
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        // No signal handler may run in the child while it shares our
        // memory: everything blocked across the clone, restored after.
        // SAFETY: plain sigset operations on our own values.
        unsafe {
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, mask);
        }
        let mut pidfd: libc::c_int = -1;
        // SAFETY: all-zero is a valid clone_args.
        let mut ca: libc::clone_args = unsafe { std::mem::zeroed() };
        ca.flags = libc::CLONE_PIDFD as u64
            | libc::CLONE_VM as u64
            | libc::CLONE_VFORK as u64
            | CLONE_CLEAR_SIGHAND;
        ca.pidfd = std::ptr::addr_of_mut!(pidfd) as u64;
        ca.exit_signal = libc::SIGCHLD as u64;
        ca.stack = stack.as_mut_ptr() as u64;
        ca.stack_size = (top - stack.as_mut_ptr() as usize) as u64;
        if let Some(fd) = cgroup {
            ca.flags |= CLONE_INTO_CGROUP;
            ca.cgroup = fd as u64;
        }
        let ret: i64;
        // SAFETY: clone3 with a valid clone_args. In the child (rax = 0) the
        // kernel has switched to the new stack: it calls `entry`, which
        // never returns; the parent resumes at 2: once the child has
        // exec'd or exited. rcx and r11 are clobbered by `syscall`.
        unsafe {
            std::arch::asm!(
                "syscall",
                "test rax, rax",
                "jnz 2f",
                "xor ebp, ebp",
                "mov rdi, r12",
                "call r13",
                "ud2",
                "2:",
                inlateout("rax") libc::SYS_clone3 => ret,
                in("rdi") std::ptr::addr_of_mut!(ca),
                in("rsi") std::mem::size_of::<libc::clone_args>(),
                in("r12") arg,
                in("r13") entry as usize,
                lateout("rcx") _,
                lateout("r11") _,
            );
            libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut());
        }
        drop(stack);
        match ret {
            pid if pid > 0 => Some(Ok((
                pid as i32,
                // SAFETY: the kernel stored a fresh pidfd (close-on-exec) we now own.
                unsafe { OwnedFd::from_raw_fd(pidfd) },
            ))),
            // Flags this kernel or a filter refuses: the fork path decides.
            e if super::clone3_unsupported(&io::Error::from_raw_os_error(-e as i32)) => None,
            e => Some(Err(io::Error::from_raw_os_error(-e as i32))),
        }
    }
}

/// Elsewhere: always the fork path.
#[cfg(not(target_arch = "x86_64"))]
mod vfork {
    use std::io;
    use std::os::fd::{OwnedFd, RawFd};

    use super::Plan;

    pub(super) unsafe fn spawn(
        _plan: &Plan,
        _report: RawFd,
        _cgroup: Option<RawFd>,
    ) -> Option<io::Result<(i32, OwnedFd)>> {
        None
    }
    pub(super) fn exit_at_once(_cgroup: Option<RawFd>) -> Option<io::Result<(i32, OwnedFd)>> {
        None
    }
}

/// `fork` + `pidfd_open`, for kernels or filters without `clone3`.
unsafe fn fork_then_pidfd() -> io::Result<Cloned> {
    // SAFETY: the caller's contract (async-signal-safe child).
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Cloned::Child),
        pid => match rustix::process::pidfd_open(
            sys::to_pid(pid),
            rustix::process::PidfdFlags::empty(),
        ) {
            Ok(pidfd) => Ok(Cloned::Parent { pid, pidfd }),
            Err(e) => {
                // Never leave it behind: kill and reap by pid (ours, unreaped).
                // SAFETY: plain system calls on our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
                Err(e.into())
            }
        },
    }
}

/// Read the child's report: `None` when the pipe closed without one (the
/// exec succeeded), else `(stage, errno)`.
fn read_report(r: OwnedFd) -> io::Result<Option<(u32, i32)>> {
    let mut buf = [0u8; 8];
    let mut got = 0;
    let mut file = File::from(r);
    while got < buf.len() {
        match io::Read::read(&mut file, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    match got {
        0 => Ok(None),
        8 => Ok(Some((
            u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]),
            i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]),
        ))),
        n => Err(io::Error::other(format!(
            "a partial report ({n} bytes) from a child that failed to start"
        ))),
    }
}

/// Everything the child uses, built before the clone.
struct Plan {
    /// Paths to try, in order (the program, or each `PATH` entry joined with it).
    candidates: Vec<CString>,
    /// Owners of the strings `argv` and `envp` point into.
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    cwd: Option<CString>,
    /// `(source, target)` for fds 0, 1, 2: `dup2(source, target)`, or
    /// clear close-on-exec when equal.
    dups: Vec<(RawFd, RawFd)>,
    /// Descriptors opened for the plan (`/dev/null`, copies above 2), kept
    /// open until the child has its own.
    _held: Vec<OwnedFd>,
    steps: Vec<ChildStep>,
}

fn cstring(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "nul byte found in provided data",
        )
    })
}

impl Plan {
    fn of(s: &Spawn) -> io::Result<Plan> {
        let mut strings = Vec::new();
        let mut argv = Vec::new();
        for a in std::iter::once(&s.program).chain(&s.args) {
            let c = cstring(a.as_bytes())?;
            argv.push(c.as_ptr());
            strings.push(c);
        }
        argv.push(std::ptr::null());
        let mut envp = Vec::new();
        let env = environment(&s.env);
        for (k, v) in &env {
            let mut kv = k.clone().into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            let c = cstring(&kv)?;
            envp.push(c.as_ptr());
            strings.push(c);
        }
        envp.push(std::ptr::null());
        let (dups, held) = stdio_plan(&s.stdio)?;
        Ok(Plan {
            candidates: candidates(&s.program, env.get(OsStr::new("PATH")))?,
            _strings: strings,
            argv,
            envp,
            cwd: s
                .cwd
                .as_ref()
                .map(|d| cstring(d.as_os_str().as_bytes()))
                .transpose()?,
            dups,
            _held: held,
            steps: s.steps.clone(),
        })
    }

    /// The child: stdio, working directory, signal dispositions, the
    /// layers' steps, exec. Only async-signal-safe system calls.
    ///
    /// # Safety
    /// Only in the child of [`clone_pidfd`].
    unsafe fn child_main(&self, report: RawFd) -> ! {
        for &(src, dst) in &self.dups {
            // SAFETY: plain system calls on descriptors the plan holds open.
            let ok = unsafe {
                if src == dst {
                    libc::fcntl(src, libc::F_SETFD, 0) != -1
                } else {
                    libc::dup2(src, dst) != -1
                }
            };
            if !ok {
                fail(report, Stage::Stdio, errno());
            }
        }
        if let Some(cwd) = &self.cwd {
            // SAFETY: a C string prepared before the clone.
            if unsafe { libc::chdir(cwd.as_ptr()) } != 0 {
                fail(report, Stage::Chdir, errno());
            }
        }
        // The runner ignores SIGPIPE (Rust's runtime does); an ignored
        // signal stays ignored across exec, so restore the default, as std does.
        // SAFETY: signal(2) is async-signal-safe.
        if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) } == libc::SIG_ERR {
            fail(report, Stage::Signals, errno());
        }
        for step in &self.steps {
            if let Err(e) = step.run_in_child() {
                fail(report, Stage::Step, e.raw_os_error().unwrap_or(libc::EIO));
            }
        }
        let mut refused = false;
        for path in &self.candidates {
            // SAFETY: null-terminated arrays of C strings prepared before the clone.
            unsafe { libc::execve(path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
            // Try the next PATH entry, as execvp does; remember a refusal.
            match errno() {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => refused = true,
                e => fail(report, Stage::Exec, e),
            }
        }
        let last = if refused { libc::EACCES } else { libc::ENOENT };
        fail(report, Stage::Exec, last)
    }
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Report `(stage, errno)` to the parent and exit (child side).
fn fail(report: RawFd, stage: Stage, errno: i32) -> ! {
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
    buf[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: write and _exit are async-signal-safe; a short write cannot
    // happen for 8 bytes into an empty pipe.
    unsafe {
        libc::write(report, buf.as_ptr().cast(), buf.len());
        libc::_exit(127)
    }
}

/// The runner's environment with `changes` applied.
fn environment(changes: &BTreeMap<OsString, Option<OsString>>) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    for (k, v) in changes {
        match v {
            Some(v) => env.insert(k.clone(), v.clone()),
            None => env.remove(k),
        };
    }
    env
}

/// Where to look for `program`: itself when it names a path (has a `/`),
/// else each entry of `PATH` (the child's; the default search path without
/// one), as execvp does.
fn candidates(program: &OsStr, path: Option<&OsString>) -> io::Result<Vec<CString>> {
    if program.as_bytes().contains(&b'/') {
        return Ok(vec![cstring(program.as_bytes())?]);
    }
    let default = OsString::from("/usr/local/bin:/bin:/usr/bin");
    std::env::split_paths(path.unwrap_or(&default))
        .map(|dir| {
            let dir = if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir
            };
            cstring(dir.join(program).as_os_str().as_bytes())
        })
        .collect()
}

/// `(source, target)` pairs for fds 0, 1, 2, and the descriptors opened
/// for them (held open until the child has its copies).
type StdioPlan = (Vec<(RawFd, RawFd)>, Vec<OwnedFd>);

/// The dup2 plan for fds 0, 1, 2, and the descriptors it needs held open. A
/// source below 3 that is not its own target is copied above 2 first, so
/// no dup2 overwrites a source a later one still needs.
fn stdio_plan(stdio: &[Stdio; 3]) -> io::Result<StdioPlan> {
    let mut held = Vec::new();
    let mut dups = Vec::new();
    for (target, s) in stdio.iter().enumerate() {
        let target = target as RawFd;
        let src = match s {
            Stdio::Inherit => continue,
            Stdio::Null => {
                let null = rustix::fs::open(
                    "/dev/null",
                    rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )?;
                let fd = null.as_raw_fd();
                held.push(null);
                fd
            }
            Stdio::Fd(fd) => fd.as_raw_fd(),
        };
        let src = if src < 3 && src != target {
            let copy = rustix::io::fcntl_dupfd_cloexec(
                // SAFETY: `src` is open (held by the plan or the Spawn) for this call.
                unsafe { std::os::fd::BorrowedFd::borrow_raw(src) },
                3,
            )?;
            let fd = copy.as_raw_fd();
            held.push(copy);
            fd
        } else {
            src
        };
        dups.push((src, target));
    }
    Ok((dups, held))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A program that cannot be executed fails the spawn with its errno,
    /// and the child that tried is reaped (no zombie of ours remains).
    #[test]
    fn an_exec_failure_is_the_spawn_error_and_leaves_no_child() {
        let _serial = sys::child_spawning_test();
        let err = Spawn::new("/nonexistent/cargo-reap-unit")
            .spawn()
            .map(|c| c.pid())
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
        let err = Spawn::new("cargo-reap-unit-no-such-program-anywhere")
            .spawn()
            .map(|c| c.pid())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        let mut bad_dir = Spawn::new("true");
        bad_dir.current_dir("/nonexistent/cargo-reap-unit");
        let err = bad_dir.spawn().map(|c| c.pid()).unwrap_err();
        assert!(err.to_string().contains("working directory"), "{err}");
        let children = std::fs::read_to_string(format!(
            "/proc/self/task/{}/children",
            rustix::thread::gettid().as_raw_nonzero()
        ))
        .unwrap();
        assert_eq!(children.trim(), "", "a child left behind");
    }

    /// Arguments, environment changes, working directory and a pipe as
    /// stdout reach the program; PATH is searched; its status comes back.
    #[test]
    fn the_program_gets_its_arguments_environment_and_stdout() {
        let _serial = sys::child_spawning_test();
        let (r, w) = pipe_with(PipeFlags::CLOEXEC).unwrap();
        let mut s = Spawn::new("sh");
        s.args([
            "-c",
            "echo \"$1 $CARGO_REAP_UNIT_VAR $(pwd) ${HOME-unset}\"; exit 3",
            "sh",
            "arg",
        ])
        .env("CARGO_REAP_UNIT_VAR", "value")
        .env_remove("HOME")
        .current_dir("/")
        .stdin(Stdio::Null)
        .stdout(Stdio::Fd(w));
        let child = s.spawn().unwrap();
        let mut out = String::new();
        io::Read::read_to_string(&mut File::from(r), &mut out).unwrap();
        assert!(child.wait_exit(Some(Duration::from_secs(30))).unwrap());
        assert_eq!(child.reap().unwrap().code, Some(3));
        assert_eq!(out, "arg value / unset\n");
    }
}
