//! Terminal output: a line per suite as it finishes, the tail of a failed
//! suite's output, the leak attribution table and the summary line.

use std::time::Duration;

use super::schema::{Report, SuiteReport, SuiteStatus};
use crate::duration::short;

/// Append formatted text to a String (infallible, unlike `write!`).
macro_rules! put {
    ($dst:expr, $($arg:tt)*) => { $dst.push_str(&format!($($arg)*)) };
}
macro_rules! putln {
    ($dst:expr, $($arg:tt)*) => {{ $dst.push_str(&format!($($arg)*)); $dst.push('\n'); }};
}

/// Columns the table is laid out for.
pub const WIDTH: usize = 100;

/// `   PASS [  0.41s] leaky::daemon  (1 leaked, reaped)`
pub fn suite_line(s: &SuiteReport) -> String {
    let mut line = format!(
        "{:>10} [{:>8}] {}",
        s.status.label(),
        short(Duration::from_millis(s.duration_ms)),
        s.id
    );
    let retries = s.attempts.len().saturating_sub(1);
    if retries > 0 {
        put!(line, "  ({} attempts)", s.attempts.len());
    }
    if !s.leaks.is_empty() {
        put!(line, "  LEAKED {}", s.leaks.len());
    }
    line
}

/// Details after the suite line: in-flight tests of a hang, output tail.
pub fn suite_details(s: &SuiteReport, tail: &[String]) -> String {
    let mut out = String::new();
    for a in s.attempts.iter().filter(|a| a.timed_out) {
        putln!(
            out,
            "           attempt {} timed out after {}; in flight: {}; {} process(es) killed",
            a.number,
            short(Duration::from_millis(a.duration_ms)),
            if a.tests_in_flight.is_empty() {
                "(unknown)".to_string()
            } else {
                a.tests_in_flight.join(", ")
            },
            a.hang_processes.len()
        );
    }
    let show_tail = matches!(
        s.status,
        SuiteStatus::Fail | SuiteStatus::Crash | SuiteStatus::Hang
    );
    if show_tail && !tail.is_empty() {
        putln!(
            out,
            "           --- last {} lines of output ---",
            tail.len()
        );
        for l in tail {
            putln!(out, "           | {}", clip(l, WIDTH - 13));
        }
    }
    if show_tail {
        if let Some(log) = &s.log {
            putln!(out, "           full output: {log}");
        }
    }
    out
}

fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The leak attribution table; empty string when nothing leaked.
pub fn leak_table(r: &Report) -> String {
    let rows: Vec<_> = r
        .suites
        .iter()
        .flat_map(|s| s.leaks.iter().map(move |l| (s, l)))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let suite_w = rows
        .iter()
        .map(|(s, _)| s.id.len())
        .max()
        .unwrap_or(5)
        .clamp(5, 32);
    let mut out = String::new();
    putln!(
        out,
        "\nLEAKED PROCESSES: {} survived their suite (all killed and reaped unless marked)",
        rows.len()
    );
    let header = format!(
        "{:<suite_w$} {:>8} {:>7} {:>2} {:>7}  COMMAND",
        "SUITE", "PID", "PPID", "ST", "AGE"
    );
    putln!(out, "{header}");
    // Identical processes of one suite (same command, state, parent) share a row.
    let mut groups: Vec<(&SuiteReport, &crate::report::schema::Leak, usize)> = Vec::new();
    for (s, l) in rows {
        match groups.last_mut() {
            Some((gs, gl, n))
                if gs.id == s.id
                    && gl.cmdline == l.cmdline
                    && gl.state == l.state
                    && gl.ppid == l.ppid =>
            {
                *n += 1
            }
            _ => groups.push((s, l, 1)),
        }
    }
    for (s, l, n) in groups {
        let mut cmd = if l.cmdline.is_empty() {
            format!("[{}]", l.comm)
        } else {
            l.cmdline.join(" ")
        };
        if n > 1 {
            cmd = format!("({n}x) {cmd}");
        }
        if !l.reaped {
            cmd = format!("(NOT REAPED) {cmd}");
        }
        let ppid = if l.ppid == std::process::id() as i32 {
            "reaper".to_string()
        } else {
            l.ppid.to_string()
        };
        let pid = if n > 1 {
            format!("{}+", l.pid)
        } else {
            l.pid.to_string()
        };
        let prefix = format!(
            "{:<suite_w$} {:>8} {:>7} {:>2} {:>7}  ",
            clip(&s.id, suite_w),
            pid,
            ppid,
            l.state,
            short(Duration::from_millis(l.age_ms)),
        );
        let room = WIDTH.saturating_sub(prefix.chars().count()).max(20);
        putln!(out, "{prefix}{}", clip(&cmd, room));
    }
    putln!(
        out,
        "(PPID `reaper`: orphaned, reparented to cargo-reap as child subreaper; `(Nx)`: N such processes, pids from PID)"
    );
    out
}

/// `12 suites: 8 passed, 1 failed, ...; 31 processes leaked from 6 suites`
pub fn summary_line(r: &Report) -> String {
    let s = &r.summary;
    let mut parts = vec![format!("{} passed", s.passed)];
    for (n, what) in [
        (s.failed, "failed"),
        (s.crashed, "crashed"),
        (s.hung, "hung"),
        (s.flaky, "flaky-hang"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let leaks = if s.leaked_processes == 0 {
        "no leaked processes".to_string()
    } else {
        format!(
            "{} leaked process{} from {} suite{}",
            s.leaked_processes,
            if s.leaked_processes == 1 { "" } else { "es" },
            s.suites_with_leaks,
            if s.suites_with_leaks == 1 { "" } else { "s" }
        )
    };
    format!(
        "cargo-reap: {} suite{} in {}: {}; {} (isolation: {}, exit {})",
        s.suites,
        if s.suites == 1 { "" } else { "s" },
        short(Duration::from_millis(r.duration_ms)),
        parts.join(", "),
        leaks,
        r.isolation,
        r.exit_code
    )
}
