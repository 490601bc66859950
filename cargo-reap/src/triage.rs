//! `cargo reap probe PID [--tree] --stacks [--json]`: reap-probe's read-only forensics, then
//! where every thread of the process (with `--tree`, of its descendants too) is blocked.
//!
//! The stacks are captured here, not in reap-probe: reap-probe never stops a process, and
//! capturing stops each thread for the moment its registers and stack are read.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// The capture budget of one probe.
const PROBE_BUDGET: Duration = Duration::from_secs(2);
/// Processes captured at most with `--tree`.
const PROBE_PROCESSES: usize = 16;

/// Run the probe subcommand; returns its exit code.
pub fn probe(args: &[OsString]) -> i32 {
    if !args.iter().any(|a| a == "--stacks") {
        return reap_probe::cli::main(args);
    }
    let rest: Vec<OsString> = args.iter().filter(|a| *a != "--stacks").cloned().collect();
    let json = rest.iter().any(|a| a == "--json");
    let tree = rest.iter().any(|a| a == "--tree");
    let Some(pid) = rest
        .iter()
        .find_map(|a| a.to_str().and_then(|s| s.parse::<i32>().ok()))
    else {
        eprintln!("cargo-reap: probe --stacks needs a PID");
        return reap_report::exit::USAGE;
    };
    if !json {
        let code = reap_probe::cli::main(&rest);
        if code != 0 {
            return code;
        }
        println!();
    }
    let pids = if tree { tree_of(pid) } else { vec![pid] };
    let stacks = reap_stack::capture_all(
        &pids,
        PROBE_PROCESSES,
        &reap_stack::Limits::new(PROBE_BUDGET),
    );
    if json {
        return match serde_json::to_string_pretty(&stacks) {
            Ok(s) => {
                println!("{s}");
                0
            }
            Err(e) => {
                eprintln!("cargo-reap: probe: cannot encode the stacks: {e}");
                1
            }
        };
    }
    let root = std::env::current_dir().ok();
    for line in render(&stacks, root.as_deref()) {
        println!("{line}");
    }
    if stacks.iter().any(|p| p.error.is_some() && p.pid == pid) {
        1
    } else {
        0
    }
}

/// `pid` and its descendants, parents before children.
fn tree_of(pid: i32) -> Vec<i32> {
    let all = match reap_probe::scan(reap_probe::ScanOptions::default()) {
        Ok(all) => all,
        Err(e) => {
            eprintln!("cargo-reap: probe: cannot list the processes ({e}): only pid {pid}");
            return vec![pid];
        }
    };
    let mut out = vec![pid];
    let mut k = 0;
    while k < out.len() {
        let parent = out[k];
        out.extend(all.iter().filter(|p| p.ppid == parent).map(|p| p.pid));
        k += 1;
    }
    out
}

/// The stacks of each process as text: a title per process, then its threads.
pub fn render(stacks: &[reap_stack::ProcessStacks], root: Option<&Path>) -> Vec<String> {
    let mut out = Vec::new();
    for p in stacks {
        out.push(reap_stack::title(p));
        for t in &p.threads {
            out.extend(
                reap_stack::render_thread(t, root)
                    .into_iter()
                    .map(|l| format!("  {l}")),
            );
        }
    }
    out
}
