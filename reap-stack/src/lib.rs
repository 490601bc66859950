//! Where is every thread of a live process blocked? Capture, unwind and symbolize the stack
//! of each thread, and let the process go exactly as it was.
//!
//! For each thread: `PTRACE_SEIZE` + `PTRACE_INTERRUPT`, wait for its stop, read its registers
//! and stack (`process_vm_readv`), unwind with framehop (`.eh_frame`, `.debug_frame`, frame
//! pointers), detach. Every seized thread is detached by a guard on every path; if the tracer
//! dies mid-capture the kernel detaches them. Symbols come from DWARF (file, line, inlined
//! calls) or, without debuginfo, the ELF symbol table.
//!
//! Permission: tracing needs `CAP_SYS_PTRACE` over the target or the same uid, and Yama's
//! `kernel.yama.ptrace_scope`: 0 and 1 allow a tracer that is the target's ancestor (a test
//! runner over its suites); 2 only a tracer with `CAP_SYS_PTRACE`; 3 nobody. A refusal is a
//! [`ProcessStacks::error`] (a skip the caller reports), never a panic.

#[cfg(not(target_os = "linux"))]
compile_error!("reap-stack supports Linux only: it stops threads with ptrace, reads procfs");
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("reap-stack unwinds x86-64 and AArch64 only (framehop's architectures)");

mod fold;
mod modules;
mod ptrace;
mod symbols;
mod unwind;

use std::time::{Duration, Instant};

pub use fold::{headline, render_thread, Category};
pub use ptrace::{release_stragglers, Seized};
pub use symbols::demangle;

// The data types of a capture are the report contract's (they go into the JSON report as
// `attempts[].stacks`): defined in reap-report, so that reading a report needs no unwinder.
pub use reap_report::{Frame, ProcessStacks, ThreadStack};

/// `pid 42 (name), stacks captured in 3.1 ms (threads stopped 0.4 ms)`, then why it was not
/// captured and what was skipped.
pub fn title(p: &ProcessStacks) -> String {
    let mut title = format!(
        "pid {} ({}), stacks captured in {:.1} ms (threads stopped {:.1} ms)",
        p.pid,
        p.command,
        p.capture_us as f64 / 1000.0,
        p.stopped_us as f64 / 1000.0
    );
    if let Some(e) = &p.error {
        title.push_str(&format!(": {e}"));
    }
    for s in &p.skipped {
        title.push_str(&format!("; skipped {s}"));
    }
    title
}

/// How much a capture may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Threads captured per process at most.
    pub max_threads: usize,
    /// Frames unwound per thread at most.
    pub max_frames: usize,
    /// When to stop: threads not reached by then are skipped.
    pub deadline: Instant,
    /// How long a process's threads may take to stop, all together.
    pub stop_wait: Duration,
}

impl Limits {
    /// 64 threads, 128 frames, 250 ms for a process's threads to stop, `budget` from now.
    pub fn new(budget: Duration) -> Limits {
        Limits {
            max_threads: 64,
            max_frames: 128,
            deadline: Instant::now() + budget,
            stop_wait: Duration::from_millis(250),
        }
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// The threads of `pid`, the main thread first.
fn thread_ids(pid: i32) -> std::io::Result<Vec<i32>> {
    let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_by_key(|t| (*t != pid, *t));
    Ok(tids)
}

/// A thread's name, state and wait channel, read before it is stopped.
fn describe(pid: i32, tid: i32) -> ThreadStack {
    let base = format!("/proc/{pid}/task/{tid}");
    let state = read_trimmed(&format!("{base}/stat"))
        .and_then(|s| {
            s.rfind(')')
                .and_then(|i| s[i + 1..].split_whitespace().next().map(str::to_string))
        })
        .unwrap_or_default();
    let wchan = read_trimmed(&format!("{base}/wchan")).filter(|w| !w.is_empty() && w != "0");
    ThreadStack {
        tid,
        name: read_trimmed(&format!("{base}/comm")).unwrap_or_default(),
        state,
        wchan,
        frames: Vec::new(),
        error: None,
    }
}

/// Capture the stacks of every thread of `pid` (up to the limits). Never fails: what could
/// not be done is in the result's `error`, `skipped` and each thread's `error`.
pub fn capture(pid: i32, limits: &Limits) -> ProcessStacks {
    let started = Instant::now();
    let mut out = ProcessStacks {
        pid,
        command: read_trimmed(&format!("/proc/{pid}/comm")).unwrap_or_default(),
        threads: Vec::new(),
        skipped: Vec::new(),
        error: None,
        capture_us: 0,
        stopped_us: 0,
    };
    match thread_ids(pid) {
        Ok(mut tids) => {
            if tids.len() > limits.max_threads {
                out.skipped.push(format!(
                    "{} of its {} threads (over the limit of {})",
                    tids.len() - limits.max_threads,
                    tids.len(),
                    limits.max_threads
                ));
                tids.truncate(limits.max_threads);
            }
            capture_threads(pid, &tids, limits, &mut out);
        }
        Err(e) => out.error = Some(format!("cannot list its threads: {e}")),
    }
    out.capture_us = started.elapsed().as_micros() as u64;
    out
}

/// Stop all of `tids` at once (one consistent picture), unwind each, let them all go.
fn capture_threads(pid: i32, tids: &[i32], limits: &Limits, out: &mut ProcessStacks) {
    let mut threads: Vec<ThreadStack> = tids.iter().map(|&t| describe(pid, t)).collect();
    // Objects are read before any thread stops: the stop lasts only the unwinding.
    let mut unwinder = unwind::ProcessUnwinder::new(pid);
    let mut raw: Vec<Vec<unwind::RawFrame>> = vec![Vec::new(); tids.len()];
    let stop_started = Instant::now();
    let mut seized = ptrace::Seized::new();
    let mut stopped = vec![false; tids.len()];
    for (k, &tid) in tids.iter().enumerate() {
        // A thread in uninterruptible sleep would not stop before its call returns, and one
        // that does not stop cannot be detached: it is left alone.
        if matches!(threads[k].state.as_str(), "D" | "Z" | "X") {
            threads[k].error = Some(format!(
                "not stopped: in state {} (uninterruptible sleep or exiting)",
                threads[k].state
            ));
            continue;
        }
        if let Err(e) = seized.seize(tid) {
            threads[k].error = Some(e);
        }
    }
    if threads.iter().all(|t| t.error.is_some()) && !threads.is_empty() {
        out.error = threads[0].error.take();
        out.threads = Vec::new();
        return;
    }
    // One thread that cannot stop (uninterruptible sleep) costs its process at most this, not
    // the whole budget of the capture.
    let stop_deadline = limits.deadline.min(Instant::now() + limits.stop_wait);
    for (k, &tid) in tids.iter().enumerate() {
        if threads[k].error.is_some() {
            continue;
        }
        match seized.wait_stopped(tid, stop_deadline) {
            Ok(true) => stopped[k] = true,
            Ok(false) => threads[k].error = Some("it exited".into()),
            Err(e) => threads[k].error = Some(e),
        }
    }
    for (k, &tid) in tids.iter().enumerate() {
        if !stopped[k] {
            continue;
        }
        match unwinder.unwind(tid, limits.max_frames) {
            Ok((frames, cut)) => {
                raw[k] = frames;
                threads[k].error = cut;
            }
            Err(e) => threads[k].error = Some(e),
        }
    }
    for failure in seized.release() {
        out.skipped.push(format!("could not detach {failure}"));
    }
    out.stopped_us = stop_started.elapsed().as_micros() as u64;
    let mut symbolizer = symbols::Symbolizer::new(pid);
    for (t, frames) in threads.iter_mut().zip(&raw) {
        t.frames = unwinder.symbolize(&mut symbolizer, frames);
    }
    out.threads = threads;
}

/// Capture every process of `pids` in order within one budget; processes not reached in
/// time are returned with an `error` saying so.
pub fn capture_all(pids: &[i32], max_processes: usize, limits: &Limits) -> Vec<ProcessStacks> {
    let mut out = Vec::new();
    for (k, &pid) in pids.iter().enumerate() {
        if k >= max_processes || Instant::now() >= limits.deadline {
            let why = if k >= max_processes {
                format!("over the limit of {max_processes} processes")
            } else {
                "out of time".to_string()
            };
            out.push(ProcessStacks {
                pid,
                command: read_trimmed(&format!("/proc/{pid}/comm")).unwrap_or_default(),
                threads: Vec::new(),
                skipped: Vec::new(),
                error: Some(format!("not captured: {why}")),
                capture_us: 0,
                stopped_us: 0,
            });
            continue;
        }
        out.push(capture(pid, limits));
    }
    out
}
