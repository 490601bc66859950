//! A hung attempt's stacks as the terminal shows them: the thread of each in-flight test
//! first, with its frames (std and libc runs folded), then one headline per other thread.

use std::path::Path;

use reap_report::Attempt;
use reap_stack::ThreadStack;

/// At most this many lines of stacks per hung attempt on the terminal.
pub const STACK_LINES: usize = 60;

/// Does thread `t` run the test `test`? libtest names a test's thread after it; the kernel
/// keeps 15 bytes of the name.
fn runs(t: &ThreadStack, test: &str) -> bool {
    t.name == test || (t.name.len() >= 15 && test.starts_with(&t.name))
}

/// The lines for attempt `a`'s stacks (empty when none were captured).
pub fn hang_lines(a: &Attempt, root: Option<&Path>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, p) in a.stacks.iter().enumerate() {
        let mut threads: Vec<&ThreadStack> = p.threads.iter().collect();
        let in_flight = |t: &ThreadStack| k == 0 && a.tests_in_flight.iter().any(|n| runs(t, n));
        threads.sort_by_key(|t| !in_flight(t));
        out.push(reap_stack::title(p));
        for t in threads {
            if in_flight(t) {
                out.extend(
                    reap_stack::render_thread(t, root)
                        .into_iter()
                        .map(|l| format!("  {l}")),
                );
                continue;
            }
            let head = reap_stack::headline(t, root)
                .or_else(|| t.error.clone())
                .unwrap_or_else(|| "(no frames)".into());
            out.push(format!("  thread '{}' ({}): {head}", t.name, t.state));
        }
    }
    out
}
