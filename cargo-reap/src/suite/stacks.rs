//! At a hang-kill, before the SIGTERM: where every thread of the hung suite is blocked
//! (reap-stack), the test binary first, bounded in processes, threads and time.

use std::time::Duration;

use reap_stack::{Limits, ProcessStacks};

/// The most the capture of one hung attempt may add to the hang-kill.
pub const BUDGET: Duration = Duration::from_secs(2);
/// Processes of a hung suite captured at most (the test binary first).
pub const MAX_PROCESSES: usize = 16;

/// The stacks of `pids` (the suite's processes, parents before children), `root` (the test
/// binary) first.
pub fn capture_hang(root: i32, pids: &[i32]) -> Vec<ProcessStacks> {
    let mut order = vec![root];
    order.extend(pids.iter().copied().filter(|p| *p != root));
    reap_stack::capture_all(&order, MAX_PROCESSES, &Limits::new(BUDGET))
}

/// How long a thread the capture could not let go may take to stop or exit once its process
/// was killed.
const STRAGGLER_WAIT: Duration = Duration::from_secs(2);

/// After the kill, before the reap: threads a capture seized but could not detach (they never
/// stopped) are waited for and let go or reaped (a traced thread that exited holds its process
/// until its tracer reaps it). What is still traced is a problem of the attempt.
pub fn release_stragglers(problems: &mut Vec<String>) {
    for left in reap_stack::release_stragglers(STRAGGLER_WAIT) {
        problems.push(format!("the stack capture could not let go of {left}"));
    }
}

/// The note of a hung suite whose stacks were not captured because its cgroup is frozen
/// (a frozen thread cannot stop for the tracer until thawed).
pub fn frozen_skip(root: i32) -> Vec<ProcessStacks> {
    vec![ProcessStacks {
        pid: root,
        command: String::new(),
        threads: Vec::new(),
        skipped: Vec::new(),
        error: Some("not captured: its cgroup is frozen".into()),
        capture_us: 0,
        stopped_us: 0,
    }]
}
