//! Processes the benchmark starts: timed commands (each in its own process
//! group), CPU sampling of the runner, the 5,000 unrelated sleepers, and the
//! cleanup that ends all of them on every path (return, error, panic through
//! `Drop`; SIGINT/SIGTERM/SIGHUP through a handler and a cleanup thread;
//! SIGKILL of the benchmark through the sleepers' PR_SET_PDEATHSIG).

use std::collections::HashMap;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::{killpg, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

/// The argument of every sleeper (`sleep 100000`): how the leftover check
/// recognises them.
pub const SLEEPER_ARG: &str = "100000";

/// Process group of the command being measured (0: none). Every measured
/// command leads its own group, so one `killpg` reaches it.
static CURRENT_PGID: AtomicI32 = AtomicI32::new(0);
/// Process group of the sleepers (0: none alive).
static SLEEPER_PGID: AtomicI32 = AtomicI32::new(0);

/// Write end of the self-pipe the signal handler writes the signal number to.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: nix::libc::c_int) {
    let fd = SIGNAL_PIPE.load(SeqCst);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is on our stack.
        unsafe {
            nix::libc::write(fd, (&b as *const u8).cast(), 1);
        }
    }
}

/// Catch SIGINT, SIGTERM and SIGHUP: a handler writes the signal to a pipe
/// that a dedicated thread reads; that thread kills and reaps the sleepers,
/// stops the measured command and exits. A handler (not a blocked mask and
/// `sigwait`) because children inherit the mask but not the handler: every
/// command the benchmark starts gets the default dispositions.
pub fn install_signal_cleanup() -> Result<()> {
    use std::io::Read;
    use std::os::fd::IntoRawFd;
    let (mut reader, writer) = std::os::unix::net::UnixStream::pair().context("socketpair")?;
    // Lives as long as the process: the handler may fire at any time.
    SIGNAL_PIPE.store(writer.into_raw_fd(), SeqCst);
    std::thread::Builder::new()
        .name("bench-signals".into())
        .spawn(move || {
            let mut b = [0u8; 1];
            if reader.read_exact(&mut b).is_err() {
                return;
            }
            let sig = Signal::try_from(i32::from(b[0])).unwrap_or(Signal::SIGTERM);
            eprintln!("\nxtask bench: {sig}: ending everything the benchmark started");
            let n = kill_sleepers();
            if n > 0 {
                eprintln!("xtask bench: killed and reaped {n} sleepers");
            }
            stop_current(sig);
            std::process::exit(128 + sig as i32);
        })
        .context("starting the signal thread")?;
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only loads an atomic and calls write(2).
        unsafe { sigaction(sig, &action) }.with_context(|| format!("sigaction({sig})"))?;
    }
    Ok(())
}

/// Forward `sig` to the measured command's group (cargo-reap reaps its suites
/// on SIGINT/SIGTERM), give it 15 s, then SIGKILL what is left of the group.
fn stop_current(sig: Signal) {
    let pgid = CURRENT_PGID.load(SeqCst);
    if pgid <= 0 {
        return;
    }
    let group = Pid::from_raw(pgid);
    if killpg(group, sig).is_err() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if killpg(group, None).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = killpg(group, Signal::SIGKILL);
}

/// SIGKILL the sleepers' group and reap every member; returns how many were
/// reaped. Idempotent, safe from any thread.
pub fn kill_sleepers() -> usize {
    let pgid = SLEEPER_PGID.swap(0, SeqCst);
    if pgid <= 0 {
        return 0;
    }
    if let Err(e) = killpg(Pid::from_raw(pgid), Signal::SIGKILL) {
        eprintln!("xtask bench: warning: kill(-{pgid}, SIGKILL): {e}");
    }
    let mut reaped = 0;
    loop {
        match waitpid(Pid::from_raw(-pgid), None) {
            Ok(_) => reaped += 1,
            Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) => break,
            Err(e) => {
                eprintln!("xtask bench: warning: waitpid(-{pgid}): {e}");
                break;
            }
        }
    }
    reaped
}

/// Idle `sleep 100000` processes in one process group of their own, children
/// of the benchmark: unrelated to any suite. Dropping the guard kills and
/// reaps them all.
pub struct Sleepers {
    pub count: usize,
    pub started_in: Duration,
}

impl Sleepers {
    pub fn start(n: usize) -> Result<Sleepers> {
        let t = Instant::now();
        let parent = nix::unistd::getpid();
        // From here on, an early return drops the guard: what started dies.
        let mut guard = Sleepers {
            count: 0,
            started_in: Duration::ZERO,
        };
        let mut pgid = 0;
        for _ in 0..n {
            let mut cmd = Command::new("sleep");
            cmd.arg(SLEEPER_ARG)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(pgid);
            // SAFETY: prctl and getppid are raw, async-signal-safe syscalls;
            // nothing is allocated between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    // If the benchmark is SIGKILLed, the kernel kills the sleepers.
                    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                        .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
                    if nix::unistd::getppid() != parent {
                        return Err(io::Error::from_raw_os_error(Errno::ESRCH as i32));
                    }
                    Ok(())
                });
            }
            let child = cmd.spawn().context("starting a sleeper")?;
            if pgid == 0 {
                pgid = child.id() as i32;
                SLEEPER_PGID.store(pgid, SeqCst);
            }
            guard.count += 1;
        }
        guard.started_in = t.elapsed();
        Ok(guard)
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        kill_sleepers();
    }
}

/// user+sys of every child (and waited-for descendant) reaped so far.
pub fn children_cpu() -> Result<Duration> {
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage(RUSAGE_CHILDREN)")?;
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    Ok(tv(u.user_time()) + tv(u.system_time()))
}

/// One timed run of a command.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Pid of the command (0 for a sequence of commands).
    pub pid: i32,
    pub wall: Duration,
    /// user+sys of the command and all it waited for (getrusage delta).
    pub tree_cpu: Duration,
    pub status: ExitStatus,
    pub runner: Option<RunnerCpu>,
}

/// CPU time of the runner process itself (and of helper processes running its
/// own executable, i.e. cargo-reap's lifeline guard), sampled from /proc.
#[derive(Debug, Clone)]
pub struct RunnerCpu {
    pub total: Duration,
    /// CPU/wall between 25% and 90% of the run (suites running, build done).
    pub steady_fraction: Option<f64>,
}

/// Run `cmd` in its own process group with stdin/stdout/stderr on /dev/null
/// unless set; time it. `watch_runner`: sample the CPU time of the process
/// itself and of its children that run the same executable.
pub fn timed(cmd: &mut Command, watch_runner: bool) -> Result<Sample> {
    cmd.process_group(0);
    let before = children_cpu()?;
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let pid = child.id() as i32;
    CURRENT_PGID.store(pid, SeqCst);
    let sampler = watch_runner.then(|| Sampler::start(pid, t0));
    let status = child.wait();
    let wall = t0.elapsed();
    CURRENT_PGID.store(0, SeqCst);
    let runner = sampler.map(|s| s.finish(wall));
    let status = status.context("waiting for a measured command")?;
    let tree_cpu = children_cpu()?.saturating_sub(before);
    Ok(Sample {
        pid,
        wall,
        tree_cpu,
        status,
        runner,
    })
}

/// A command with the benchmark's standard environment: output discarded,
/// stdin closed, and the variables `cargo run` set for xtask itself removed.
/// The trimmed stdout of `cmd` (built by [`command`]) when it succeeds;
/// None when it cannot start or fails (optional facts for the report).
pub fn stdout_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.stdout(Stdio::piped()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, _) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_")
            || matches!(
                k,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_DIR"
            )
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Duration, u64)>>,
}

impl Sampler {
    fn start(pid: i32, t0: Instant) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            let mut latest: HashMap<i32, u64> = HashMap::new();
            let mut series = Vec::new();
            while !flag.load(SeqCst) {
                let Some(own) = cpu_ticks(pid) else { break };
                latest.insert(pid, own);
                for c in children_of(pid) {
                    if exe.is_some() && std::fs::read_link(format!("/proc/{c}/exe")).ok() == exe {
                        if let Some(t) = cpu_ticks(c) {
                            latest.insert(c, t);
                        }
                    }
                }
                series.push((t0.elapsed(), latest.values().sum()));
                std::thread::sleep(Duration::from_millis(20));
            }
            series
        });
        Sampler { stop, thread }
    }

    fn finish(self, wall: Duration) -> RunnerCpu {
        self.stop.store(true, SeqCst);
        let series = self.thread.join().unwrap_or_default();
        let tick = Duration::from_secs(1).as_secs_f64() / clock_ticks_per_sec();
        let total = series.last().map(|s| s.1).unwrap_or(0);
        let at = |frac: f64| {
            let t = wall.mul_f64(frac);
            series.iter().find(|s| s.0 >= t).copied()
        };
        let steady_fraction = match (at(0.25), at(0.90)) {
            (Some(a), Some(b)) if b.0 > a.0 + Duration::from_millis(500) => {
                Some((b.1 - a.1) as f64 * tick / (b.0 - a.0).as_secs_f64())
            }
            _ => None,
        };
        RunnerCpu {
            total: Duration::from_secs_f64(total as f64 * tick),
            steady_fraction,
        }
    }
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After "(comm) ": state is field 3, utime 14, stime 15 (1-based).
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Children of every thread of `pid`.
fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|x| x.parse::<i32>().ok()));
        }
    }
    out
}

/// Every live process: pid, command line, environment variable `var` if set.
pub fn scan_processes(var: &str) -> Vec<(i32, Vec<String>, Option<String>)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    let prefix = format!("{var}=");
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let path = e.path();
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let tag = std::fs::read(path.join("environ")).ok().and_then(|env| {
            env.split(|b| *b == 0)
                .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
                .map(|v| String::from_utf8_lossy(v).into_owned())
        });
        out.push((pid, argv, tag));
    }
    out
}

/// Number of processes on the machine (numeric entries of /proc).
pub fn process_count() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|s| s.parse::<u32>().is_ok())
                })
                .count()
        })
        .unwrap_or(0)
}

/// The readlink of `/proc/PID/exe`, if the process lives.
pub fn exe_of(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// Is `path` inside `dir`?
pub fn is_under(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_ticks() {
        assert!(cpu_ticks(std::process::id() as i32).is_some());
    }

    #[test]
    fn timed_command_reports_status_and_wall_time() {
        let s = timed(command("true").arg("x"), false).unwrap();
        assert!(s.status.success());
        assert!(s.wall < Duration::from_secs(10));
    }
}
