//! Looking at a suite's processes: reap-probe's forensics of each before it
//! is killed, the report entry of each, the processes that hold its output
//! pipe, and the tests its live threads name. (Its series while it runs:
//! `sample`.)

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use reap_probe::ProcessInfo;

use crate::containment::Killed;
use crate::error::RunError;
use reap_report::Leak;

/// A process of a suite, with what reap-probe saw of it before it was killed.
#[derive(Debug, Clone)]
pub struct Examined {
    pub info: ProcessInfo,
    /// None when it exited between the listing and the look.
    pub forensics: Option<reap_probe::Forensics>,
}

/// Forensics of every member, parents before children, before anything is killed.
pub fn examine(
    members: Vec<ProcessInfo>,
    fctx: &reap_probe::FindingContext,
    root: i32,
) -> Result<Vec<Examined>, RunError> {
    let mut out = Vec::with_capacity(members.len());
    let mut members = members;
    members.sort_by_key(|p| (p.start_time, p.pid));
    for info in members {
        let forensics = match reap_probe::forensics(info.pid, fctx) {
            Ok(mut f) => {
                if info.pid == root {
                    // The test binary is our own child, not an orphan, and
                    // its stdout is our capture pipe by design.
                    f.findings.retain(|x| {
                        x.rule != reap_probe::Rule::Orphaned
                            && x.rule != reap_probe::Rule::HoldsRunnerPipe
                    });
                }
                Some(f)
            }
            Err(reap_probe::ProbeError::Gone(_)) => None,
            Err(e) => return Err(crate::error::ContainError::Probe(e).into()),
        };
        out.push(Examined { info, forensics });
    }
    Ok(out)
}

/// What a kill found that `seen` does not hold, in the kill's order:
/// processes forked while it ran (seen only as they died), then those it
/// could not kill.
pub fn unseen_by(seen: &[Examined], killed: &Killed) -> Vec<Examined> {
    let is_in = |list: &[Examined], p: &ProcessInfo| {
        list.iter()
            .any(|e| e.info.pid == p.pid && e.info.start_time == p.start_time)
    };
    let mut out: Vec<Examined> = Vec::new();
    let refused = killed.unkillable.iter().map(|(p, _)| p);
    for p in killed.processes.iter().chain(refused) {
        if !is_in(seen, p) && !is_in(&out, p) {
            out.push(Examined {
                info: p.clone(),
                forensics: None,
            });
        }
    }
    out
}

/// The report entry of an examined process.
pub fn leak_of(e: &Examined, attempt: u32, reaped: bool) -> Leak {
    let p = &e.info;
    let f = e.forensics.as_ref();
    Leak {
        findings: f
            .map(|f| f.findings.iter().map(|x| x.rule.to_string()).collect())
            .unwrap_or_default(),
        notes: f
            .map(|f| f.findings.iter().map(|x| x.message.clone()).collect())
            .unwrap_or_default(),
        fds: f.map(|f| f.fd_summary),
        wchan: f.and_then(|f| f.wchan.clone()),
        syscall: f.and_then(|f| f.syscall.clone()),
        allowed: None,
        kill_error: None,
        pid: p.pid,
        ppid: p.ppid,
        pgid: p.pgid,
        sid: p.sid,
        state: p.state,
        comm: p.comm.clone(),
        cmdline: p.cmdline.clone(),
        age_ms: p.age_ms,
        attempt,
        reaped,
        test: None,
        attribution: None,
    }
}

/// A leak the kill could not end: not reaped, and why.
pub fn mark_not_killed(leak: &mut Leak, not_killed: &[(ProcessInfo, String)]) {
    if let Some((_, why)) = not_killed.iter().find(|(p, _)| p.pid == leak.pid) {
        leak.reaped = false;
        leak.kill_error = Some(why.clone());
    }
}

/// The problem line of processes a kill could not end.
pub fn not_killed_problems(not_killed: &[(ProcessInfo, String)]) -> Vec<String> {
    not_killed
        .iter()
        .map(|(p, why)| {
            format!(
                "pid {} ({}) {why} (it runs as another user: root through sudo or a setuid program?); it is still running: end it yourself",
                p.pid,
                if p.cmdline.is_empty() {
                    p.comm.clone()
                } else {
                    p.cmdline.join(" ")
                }
            )
        })
        .collect()
}

/// Live processes other than the runner that hold the pipe with inode
/// `inode`. Reads every process's descriptors: only used when the pipe
/// stayed open after the suite was gone.
pub fn pipe_holders(inode: u64) -> Result<Vec<ProcessInfo>, RunError> {
    let want = format!("pipe:[{inode}]");
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let proc_dir = Path::new("/proc");
    let entries = std::fs::read_dir(proc_dir).map_err(|source| RunError::Io {
        what: "listing",
        path: proc_dir.to_path_buf(),
        source,
    })?;
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Unreadable: gone meanwhile, or not ours to look at.
        let Ok(fds) = std::fs::read_dir(e.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == want.as_str()));
        if holds {
            match reap_probe::snapshot(pid, reap_probe::ScanOptions::default()) {
                Ok(p) if !p.is_zombie() => out.push(p),
                Ok(_) | Err(reap_probe::ProbeError::Gone(_)) => {}
                Err(e) => return Err(crate::error::ContainError::Probe(e).into()),
            }
        }
    }
    Ok(out)
}

/// Names of the threads of the test binary other than its main thread. libtest
/// names each test's thread after the test; the kernel keeps 15 bytes of it.
pub fn test_thread_names(pid: i32) -> Vec<String> {
    let dir = PathBuf::from(format!("/proc/{pid}/task"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for e in entries.flatten() {
        let tid = e.file_name();
        if tid.to_str() == Some(&pid.to_string()) {
            continue;
        }
        // A thread may exit while we look; that is not an error.
        if let Ok(comm) = std::fs::read_to_string(e.path().join("comm")) {
            names.push(comm.trim_end().to_string());
        }
    }
    names
}

/// The tests live threads name (`threads`: their `comm`), of `listed`:
/// exact ones, and prefix guesses. A thread whose name fits a test already
/// known to be in flight (`known`) adds nothing; tests in `finished` are
/// never named.
pub fn thread_tests(
    listed: &[String],
    threads: &[String],
    known: &[String],
    finished: &HashSet<String>,
) -> (Vec<String>, Vec<String>) {
    let (mut exact, mut guesses) = (Vec::new(), Vec::new());
    for t in threads {
        let fits: Vec<&String> = listed
            .iter()
            .filter(|n| comm_matches(n, t) && !finished.contains(*n))
            .collect();
        if fits.iter().any(|n| known.contains(n)) {
            continue;
        }
        match fits.as_slice() {
            [] => {}
            [one] => exact.push((*one).clone()),
            many => guesses.extend(many.iter().map(|n| (*n).clone())),
        }
    }
    guesses.retain(|g| !exact.contains(g));
    (exact, guesses)
}

/// Does the kernel's 15-byte `comm` of a thread come from this test name?
fn comm_matches(test: &str, comm: &str) -> bool {
    let t = test.as_bytes();
    let c = comm.as_bytes();
    !c.is_empty()
        && t.len() >= c.len()
        && &t[..c.len()] == c
        && (c.len() == 15 || t.len() == c.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_truncated_thread_names() {
        assert!(comm_matches("hangs_forever_and_ever", "hangs_forever_a"));
        assert!(comm_matches("short", "short"));
        assert!(!comm_matches("shorter", "short"));
        assert!(!comm_matches("other_test_name", "hangs_forever_a"));
    }

    #[test]
    fn finished_tests_are_not_in_flight_and_prefixes_are_guesses() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let listed = v(&[
            "shared_long_prefix_a",
            "shared_long_prefix_b",
            "shared_long_prefix_c",
            "short",
        ]);
        let threads = v(&["shared_long_pre", "shared_long_pre", "short"]);
        let finished: HashSet<String> = v(&["shared_long_prefix_a", "shared_long_prefix_b"])
            .into_iter()
            .collect();
        // Helper threads of finished `a` and `b`: only `c` is left, exactly.
        assert_eq!(
            thread_tests(&listed, &threads, &[], &finished),
            (
                v(&["shared_long_prefix_c", "shared_long_prefix_c", "short"]),
                v(&[])
            )
        );
        // Nothing finished: the prefix fits three tests, each a guess.
        let (exact, guesses) = thread_tests(&listed, &threads, &[], &HashSet::new());
        assert_eq!(exact, v(&["short"]));
        assert_eq!(guesses.len(), 6);
        // A test the output shows in flight explains its thread.
        assert_eq!(
            thread_tests(
                &listed,
                &threads,
                &v(&["shared_long_prefix_a"]),
                &HashSet::new()
            ),
            (v(&["short"]), v(&[]))
        );
    }
}
