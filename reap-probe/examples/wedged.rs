//! Build a small wedged process tree to look at with `reap-probe PID --tree`.
//!
//! `cargo run -p reap-probe --example wedged` prints its pid, then waits for a line (or EOF) on
//! stdin. Meanwhile it is the parent of:
//!
//! - `cat` reading a pipe whose write end it holds itself (its stdout): it waits for EOF forever;
//! - `sleep` holding, as its stdin, the server side of a TCP connection to a port this program
//!   listens on; 11 bytes were sent and never read, then the client closed (CLOSE-WAIT);
//! - `setsid sh -c "trap '' TERM; exec sleep 3600"`: its own session, SIGTERM ignored.
//!
//! At the end it kills and reaps every child (the only signals it sends, to its own children).
//! Each child also gets SIGKILL from the kernel if this program dies first (`PR_SET_PDEATHSIG`),
//! so none outlives it.

use std::io::{BufRead, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reap_probe::{snapshot, ScanOptions};

/// Kills and reaps its child on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawn `cmd` so that it dies with this program.
fn spawn(mut cmd: Command) -> Guard {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(Into::into)
        });
    }
    Guard(cmd.spawn().expect("spawn"))
}

/// Wait until `pid` runs `comm` and sleeps (it has finished its exec and blocked). Nothing but
/// /proc tells when that is, so this polls.
fn settle(pid: u32, comm: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match snapshot(pid as i32, ScanOptions::default()) {
            Ok(p) if p.comm == comm && p.state == 'S' => return,
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    panic!("pid {pid} never settled as {comm}");
}

fn main() {
    let (read, write): (OwnedFd, OwnedFd) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
    let cat = {
        let mut cmd = Command::new("cat");
        cmd.stdin(Stdio::from(read))
            .stdout(Stdio::from(write))
            .stderr(Stdio::null());
        spawn(cmd)
    };

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    client.write_all(b"hello world").expect("write");
    let sleeper = {
        let mut cmd = Command::new("sleep");
        cmd.arg("3600")
            .stdin(Stdio::from(OwnedFd::from(server)))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        spawn(cmd)
    };
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");

    let daemon = {
        let mut cmd = Command::new("setsid");
        cmd.args(["sh", "-c", "trap '' TERM; exec sleep 3600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        spawn(cmd)
    };

    settle(cat.0.id(), "cat");
    settle(sleeper.0.id(), "sleep");
    settle(daemon.0.id(), "sleep");
    println!("{}", std::process::id());
    eprintln!(
        "wedged tree ready: reap-probe {} --tree; press Enter (or close stdin) to end it",
        std::process::id()
    );
    let _ = std::io::stdin().lock().read_line(&mut String::new());
    drop((cat, sleeper, daemon, client, listener));
}
