//! Time `scan` with many processes on the machine.
//!
//! `cargo run --release -p reap-probe --example scan_bench -- [EXTRA_PROCESSES] [ROUNDS]`
//!
//! Starts EXTRA_PROCESSES (default 5000) idle processes: one `sh` forks them as subshells that
//! block reading its stdin. Closing that pipe at the end makes every one of them exit, the shell
//! reaps them and exits, and we reap the shell: nothing is left behind, even if this program is
//! killed, and no signal is sent.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reap_probe::{scan, ProcessTable, ScanOptions, TAG_VAR};

fn main() {
    let mut args = std::env::args().skip(1);
    let extra: usize = args
        .next()
        .map_or(5000, |a| a.parse().expect("EXTRA_PROCESSES"));
    let rounds: usize = args.next().map_or(10, |a| a.parse().expect("ROUNDS"));

    let baseline = time_scans(ScanOptions::ALL, rounds);
    println!(
        "baseline: scan +environ+cgroup, {} processes: median {:?}",
        baseline.1,
        baseline.0[baseline.0.len() / 2]
    );

    let script = format!(
        "exec 3<&0; i=0; while [ $i -lt {extra} ]; do read x <&3 & i=$((i+1)); done; echo started; wait"
    );
    let mut sh = Command::new("sh")
        .args(["-c", &script])
        .env(TAG_VAR, "bench/idle")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let t = Instant::now();
    let mut line = String::new();
    BufReader::new(sh.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "started");
    // Forked is not settled: wait until every child has reached its blocking `read`, so the
    // measurement does not compete with 5000 runnable processes.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let table = ProcessTable::scan(ScanOptions::default()).expect("scan");
        let busy = table
            .descendants(sh.id() as i32)
            .iter()
            .filter(|&&pid| table.get(pid).is_some_and(|p| p.state != 'S'))
            .count();
        if busy == 0 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("started {extra} processes in {:?}", t.elapsed());

    let configs = [
        ("stat+cmdline", ScanOptions::default()),
        (
            "+environ",
            ScanOptions {
                environ_tag: true,
                cgroup: false,
            },
        ),
        ("+environ+cgroup", ScanOptions::ALL),
    ];
    for (name, opts) in configs {
        let (times, count) = time_scans(opts, rounds);
        println!(
            "scan {name:<16} {count} processes: min {:?}  median {:?}  max {:?}  ({:.1} us/process)",
            times[0],
            times[times.len() / 2],
            times[times.len() - 1],
            times[times.len() / 2].as_secs_f64() * 1e6 / count as f64
        );
    }

    // The common case for cargo-reap: the machine's processes are older than the suite.
    let since = reap_probe::boottime_ticks();
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let procs = reap_probe::scan_since(ScanOptions::ALL, since).expect("scan_since");
        times.push(t.elapsed());
        assert!(
            procs.len() < 100,
            "only processes started during the benchmark"
        );
    }
    times.sort();
    println!(
        "scan_since(now, +environ+cgroup): min {:?}  median {:?}  max {:?}",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );

    let procs = scan(ScanOptions::ALL).expect("scan");
    let tagged = procs
        .iter()
        .filter(|p| p.tag.as_deref() == Some("bench/idle"))
        .count();
    let t = Instant::now();
    let table = ProcessTable::new(procs);
    let descendants = table.descendants(sh.id() as i32).len();
    println!(
        "table + descendants: {:?} ({descendants} descendants of the shell, {tagged} tagged)",
        t.elapsed()
    );

    drop(sh.stdin.take());
    let t = Instant::now();
    let status = sh.wait().expect("wait");
    println!("all exited and reaped in {:?} ({status})", t.elapsed());
}

/// `rounds` timings of `scan(opts)`, sorted, and the number of processes last seen.
fn time_scans(opts: ScanOptions, rounds: usize) -> (Vec<Duration>, usize) {
    let mut times = Vec::with_capacity(rounds);
    let mut count = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        count = scan(opts).expect("scan").len();
        times.push(t.elapsed());
    }
    times.sort();
    (times, count)
}
