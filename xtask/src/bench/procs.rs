//! Processes the benchmark starts: timed commands (each in its own process
//! group), CPU sampling of the runner, the 5,000 unrelated sleepers, and the
//! cleanup that ends all of them on every path (return, error, panic through
//! `Drop`; SIGINT/SIGTERM/SIGHUP through a handler and a cleanup thread;
//! SIGKILL of the benchmark through the sleepers' PR_SET_PDEATHSIG).

use std::collections::HashMap;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
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
    /// Every 20 ms, the CPU ticks of `pid` and of its children running the same executable
    /// (each process's latest reading counts after it exits), until stopped or `pid` is gone.
    fn start(pid: i32, t0: Instant) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // None (a zombie already, or not readable): only the process itself is counted.
            let exe = reap_probe::exe(pid).ok().flatten();
            let mut latest: HashMap<i32, u64> = HashMap::new();
            let mut series = Vec::new();
            while !flag.load(SeqCst) {
                let (Ok(own), Ok(children)) =
                    (reap_probe::cpu_ticks(pid), reap_probe::children(pid))
                else {
                    break; // the runner exited
                };
                latest.insert(pid, own);
                for c in children {
                    if exe.is_some() && reap_probe::exe(c).ok().flatten() == exe {
                        if let Ok(t) = reap_probe::cpu_ticks(c) {
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
        let secs = |ticks: u64| reap_probe::ticks_to_ms(ticks) as f64 / 1000.0;
        let total = series.last().map(|s| s.1).unwrap_or(0);
        let at = |frac: f64| {
            let t = wall.mul_f64(frac);
            series.iter().find(|s| s.0 >= t).copied()
        };
        let steady_fraction = match (at(0.25), at(0.90)) {
            (Some(a), Some(b)) if b.0 > a.0 + Duration::from_millis(500) => {
                Some(secs(b.1 - a.1) / (b.0 - a.0).as_secs_f64())
            }
            _ => None,
        };
        RunnerCpu {
            total: Duration::from_secs_f64(secs(total)),
            steady_fraction,
        }
    }
}

/// Every live process, with the [`reap_probe::TAG_VAR`] of its environment where readable.
pub fn scan_processes() -> Result<Vec<reap_probe::ProcessInfo>> {
    let tag = reap_probe::ScanOptions {
        environ_tag: true,
        cgroup: false,
    };
    reap_probe::scan(tag).context("scanning /proc")
}

/// Number of processes on the machine.
pub fn process_count() -> Result<usize> {
    Ok(reap_probe::scan(reap_probe::ScanOptions::default())
        .context("scanning /proc")?
        .len())
}

/// A cgroup filesystem mounted in the benchmark's mount namespace.
pub struct CgroupMount {
    /// cgroup2 (else a v1 hierarchy).
    pub v2: bool,
    /// Where it is mounted.
    pub mount: PathBuf,
    /// The directory of the hierarchy mounted there (`/` normally).
    pub root: String,
}

/// The cgroup mounts of `/proc/self/mountinfo`, in its order (none if it cannot be read).
pub fn cgroup_mounts() -> Vec<CgroupMount> {
    let mountinfo = match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => text,
        Err(e) => {
            eprintln!("xtask bench: warning: cannot read /proc/self/mountinfo: {e}");
            return Vec::new();
        }
    };
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let v2 = match post.split_whitespace().next()? {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            let f: Vec<&str> = pre.split_whitespace().collect();
            Some(CgroupMount {
                v2,
                mount: PathBuf::from(f.get(4)?),
                root: f.get(3)?.to_string(),
            })
        })
        .collect()
}

/// The benchmark's own cgroup v2 path (`/user.slice/...`), if it can tell.
pub fn own_cgroup() -> Option<String> {
    let opts = reap_probe::ScanOptions {
        environ_tag: false,
        cgroup: true,
    };
    reap_probe::snapshot(std::process::id() as i32, opts)
        .ok()?
        .cgroup
}

/// The benchmark's cgroup v2 directory, as cargo-reap finds it.
pub fn own_cgroup_dir() -> Option<PathBuf> {
    let v2 = cgroup_mounts().into_iter().find(|m| m.v2)?;
    let own = own_cgroup()?;
    let rel = own.strip_prefix(v2.root.trim_end_matches('/'))?;
    Some(v2.mount.join(rel.trim_start_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_command_reports_status_and_wall_time() {
        let s = timed(command("true").arg("x"), false).unwrap();
        assert!(s.status.success());
        assert!(s.wall < Duration::from_secs(10));
    }
}
