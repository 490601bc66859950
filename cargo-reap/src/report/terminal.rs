//! Terminal output: a line per suite as it finishes, the tail of a failed
//! suite's output, the leak attribution table and the summary line.

use std::time::Duration;

use reap_report::{
    AttributionMethod, AttributionReport, Leak, Report, SuiteReport, SuiteStatus, NOT_LIBTEST,
};

use crate::duration::short;

/// Append formatted text to a String (infallible, unlike `write!`).
macro_rules! put {
    ($dst:expr, $($arg:tt)*) => { $dst.push_str(&format!($($arg)*)) };
}
macro_rules! putln {
    ($dst:expr, $($arg:tt)*) => {{ $dst.push_str(&format!($($arg)*)); $dst.push('\n'); }};
}

static COLORS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// `--color always|never` decides before anything is printed.
pub fn set_colors(on: bool) {
    if COLORS.set(on).is_err() {
        tracing::debug!("colors were decided before --color was applied");
    }
}

/// Whether stderr gets ANSI colors: `CLICOLOR_FORCE` (not `0`) forces them,
/// `NO_COLOR` (non-empty) forbids them, else only on a terminal that is not dumb.
pub fn colors() -> bool {
    *COLORS.get_or_init(|| {
        let var = |k| std::env::var(k).ok().filter(|v| !v.is_empty());
        if var("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
            return true;
        }
        if var("NO_COLOR").is_some() {
            return false;
        }
        use std::io::IsTerminal;
        std::io::stderr().is_terminal() && var("TERM").as_deref() != Some("dumb")
    })
}

/// `text` in an SGR color (31 red, 32 green, 33 yellow, 35 magenta), when colors are on.
fn paint(text: &str, sgr: u8) -> String {
    if colors() {
        format!("\x1b[1;{sgr}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Columns laid out for when the terminal's width cannot be read (and for
/// the process tree stored with a hang).
pub const WIDTH: usize = 100;

/// Columns to lay lines out for: the terminal's width when stderr is one;
/// unbounded when it is not (a CI log keeps every panic message and note
/// whole, never cut mid-sentence).
pub fn width() -> usize {
    static W: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *W.get_or_init(|| {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return UNBOUNDED;
        }
        crate::sys::terminal_columns(2).map_or(WIDTH, |c| c.clamp(40, 1000))
    })
}

/// No clipping (with room for the arithmetic of the layouts).
const UNBOUNDED: usize = usize::MAX / 4;

/// Most characters of a leaked process's command line in the table (a
/// suite can start a process with 100 KB of arguments).
const COMMAND_MAX: usize = 500;

/// `   PASS [  0.41s] leaky::daemon  (1 leaked, reaped)`
pub fn suite_line(s: &SuiteReport) -> String {
    let interrupted = s.attempts.iter().any(|a| a.interrupted);
    let label = if interrupted {
        "INTERRUPTED"
    } else {
        s.status.label()
    };
    let color = match s.status {
        SuiteStatus::Pass if s.failing_leaks() == 0 => 32,
        SuiteStatus::Pass => 35,
        SuiteStatus::Hang | SuiteStatus::FlakyHang => 33,
        SuiteStatus::Fail | SuiteStatus::Crash | SuiteStatus::Error => 31,
    };
    let mut line = format!(
        "{} [{:>8}] {}",
        paint(&format!("{label:>10}"), color),
        short(Duration::from_millis(s.duration_ms)),
        clip(&s.id, width() - 22)
    );
    let retries = s.attempts.len().saturating_sub(1);
    if retries > 0 {
        put!(line, "  ({} attempts)", s.attempts.len());
    }
    if !s.leaks.is_empty() {
        put!(
            line,
            "  {}",
            paint(&format!("LEAKED {}", s.leaks.len()), 35)
        );
    }
    line
}

/// Details after the suite line: in-flight tests of a hang, what it was
/// doing, notes (attribution, TMPDIR leftovers, problems), output tail.
pub fn suite_details(s: &SuiteReport, tail: &[String]) -> String {
    let mut out = String::new();
    timed_out_lines(&mut out, s);
    hang_stack_lines(&mut out, s);
    hang_tree_lines(&mut out, s);
    note_lines(&mut out, s);
    if shows_tail(s) {
        tail_lines(&mut out, s, tail);
    }
    out
}

/// Whether [`suite_details`] shows the tail of the suite's log (a suite that
/// did not pass): only then is the log read.
pub fn shows_tail(s: &SuiteReport) -> bool {
    matches!(
        s.status,
        SuiteStatus::Fail | SuiteStatus::Crash | SuiteStatus::Hang | SuiteStatus::Error
    )
}

/// A line per timed-out attempt: when, the tests in flight, what was killed.
fn timed_out_lines(out: &mut String, s: &SuiteReport) {
    for a in s.attempts.iter().filter(|a| a.timed_out) {
        putln!(
            out,
            "           attempt {} timed out after {}; in flight: {}; {} process(es) killed",
            a.number,
            short(Duration::from_millis(a.duration_ms)),
            if a.tests_in_flight.is_empty() {
                "(unknown)".to_string()
            } else {
                let named: Vec<String> = a
                    .tests_in_flight
                    .iter()
                    .map(|t| match a.in_flight_guesses.contains(t) {
                        true => format!("{t} (thread name prefix: a guess)"),
                        false => t.clone(),
                    })
                    .collect();
                clip(&named.join(", "), width())
            },
            a.hang_processes.len()
        );
    }
}

/// Where the threads of the last attempt with stacks were blocked (reap-stack).
fn hang_stack_lines(out: &mut String, s: &SuiteReport) {
    let Some(a) = s.attempts.iter().rev().find(|a| !a.stacks.is_empty()) else {
        return;
    };
    putln!(
        out,
        "           where attempt {} was blocked (its stacks before the kill):",
        a.number
    );
    let root = std::env::current_dir().ok();
    let lines = super::stacks::hang_lines(a, root.as_deref());
    boxed_lines(out, &lines, super::stacks::STACK_LINES, "attempts[].stacks");
}

/// `lines` under a `: ` rule, at most `max`, then how many more are in the JSON at `field`.
fn boxed_lines(out: &mut String, lines: &[String], max: usize, field: &str) {
    for l in lines.iter().take(max) {
        putln!(out, "           : {}", clip(l, width() - 13));
    }
    if lines.len() > max {
        putln!(
            out,
            "           : … {} more lines in the JSON report ({field})",
            lines.len() - max
        );
    }
}

/// reap-probe's tree of the last attempt that has one (at most [`TREE_LINES`]).
fn hang_tree_lines(out: &mut String, s: &SuiteReport) {
    let Some(a) = s.attempts.iter().rev().find(|a| !a.tree.is_empty()) else {
        return;
    };
    putln!(
        out,
        "           what attempt {} was doing when it was killed (reap-probe):",
        a.number
    );
    boxed_lines(out, &a.tree, TREE_LINES, "attempts[].tree");
}

/// The attribution line, the TMPDIR leftovers and each problem of the suite.
fn note_lines(out: &mut String, s: &SuiteReport) {
    if let Some(line) = s.attribution.as_ref().and_then(attribution_line) {
        putln!(out, "           {}", clip(&line, width() - 11));
    }
    if let Some(t) = &s.tmp {
        putln!(
            out,
            "           {}",
            clip(
                &format!(
                    "left {} file(s), {} bytes in its TMPDIR (removed): {}",
                    t.files,
                    t.bytes,
                    t.examples.join(", ")
                ),
                width() - 11
            )
        );
    }
    for p in &s.problems {
        putln!(out, "           problem: {}", clip(p, width() - 20));
    }
}

/// The last lines of a failed suite's output and where the whole log is.
fn tail_lines(out: &mut String, s: &SuiteReport, tail: &[String]) {
    if !tail.is_empty() {
        putln!(
            out,
            "           --- last {} lines of output ---",
            tail.len()
        );
        for l in tail {
            putln!(out, "           | {}", clip(l, width() - 13));
        }
    }
    if let Some(log) = &s.log {
        putln!(out, "           full output: {log}");
    }
}

/// The attribution line under a suite, when it adds to what the leak table
/// says (a one-test suite: the table already names the test of every leak).
pub fn attribution_line(a: &AttributionReport) -> Option<String> {
    Some(match &a.method {
        AttributionMethod::SingleTest => return None,
        AttributionMethod::Window => format!(
            "attribution: all {} leak(s) started while their test ran (serial output); no re-run needed",
            a.leaks_total
        ),
        AttributionMethod::Rerun => format!(
            "attribution: re-ran {} of {} test(s) in {} re-run(s){} in {:.2}s: {} of {} leak(s) reproduced{}{}",
            a.tests_rerun,
            a.tests_listed,
            a.reruns,
            match a.tests_skipped_ignored {
                0 => String::new(),
                n => format!(" ({n} ignored, not re-run)"),
            },
            a.duration_ms as f64 / 1000.0,
            a.leaks_attributed,
            a.leaks_total,
            match a.interactions.iter().map(|i| i.pids.len()).sum::<usize>() {
                0 => String::new(),
                n => format!(", {n} only by tests run together"),
            },
            if a.budget_exhausted { " (budget exhausted; see --attribute)" } else { "" }
        ),
        AttributionMethod::NotLibtest => format!(
            "attribution: {NOT_LIBTEST}: all {} leak(s) are the suite's (no test names)",
            a.leaks_total
        ),
        unlisted @ AttributionMethod::Unlisted(_) => format!("attribution: {unlisted}"),
    })
}

/// Cut to `width` characters, with control characters (escape sequences,
/// newlines in a leaked process's argv or a test name) shown as `?`: nothing
/// a suite controls can repaint the terminal or forge a table row.
fn clip(s: &str, width: usize) -> String {
    let clean = |c: char| if c.is_control() { '?' } else { c };
    if s.chars().count() <= width {
        s.chars().map(clean).collect()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).map(clean).collect();
        t.push('…');
        t
    }
}

/// The leak attribution table, grouped suite → test → process; empty string
/// when nothing leaked. Laid out for [`width`] columns.
pub fn leak_table(r: &Report) -> String {
    leak_table_in(r, width())
}

fn leak_table_in(r: &Report, width: usize) -> String {
    // Survivors no suite could claim get a group of their own, last.
    let orphans = orphans_group(r);
    let total: usize = r.suites.iter().chain(&orphans).map(|s| s.leaks.len()).sum();
    if total == 0 {
        return String::new();
    }
    let mut out = String::new();
    putln!(
        out,
        "\nLEAKED PROCESSES: {total} survived their suite (all killed and reaped unless marked)"
    );
    table_header(&mut out);
    let row = RowLayout {
        width,
        me: std::process::id() as i32,
    };
    for s in r
        .suites
        .iter()
        .chain(&orphans)
        .filter(|s| !s.leaks.is_empty())
    {
        suite_leak_rows(&mut out, s, &row);
    }
    putln!(
        out,
        "(PPID reaper: orphaned, reparented to cargo-reap (child subreaper); (Nx): N alike, pids from PID)"
    );
    out
}

/// The leak table's column heading.
fn table_header(out: &mut String) {
    putln!(
        out,
        "    {:>8} {:>7} {:>2} {:>7}  COMMAND",
        "PID",
        "PPID",
        "ST",
        "AGE"
    );
}

/// The leak table's rows of `leaks` (one test's, say) under its heading,
/// laid out for `width` columns, with their findings: the body of a JUnit
/// leak failure.
pub fn leak_rows(leaks: &[&Leak], width: usize) -> String {
    let mut out = String::new();
    table_header(&mut out);
    let row = RowLayout {
        width,
        me: std::process::id() as i32,
    };
    for (l, n, depth) in alike_groups(leaks) {
        process_row(&mut out, l, n, depth, &row);
        findings_lines(&mut out, l, width);
    }
    out
}

/// The process-group run's unattributed survivors as a suite of their own.
fn orphans_group(r: &Report) -> Option<SuiteReport> {
    (!r.unattributed.is_empty()).then(|| SuiteReport {
        id: "(no suite could claim them)".into(),
        package: String::new(),
        target: String::new(),
        kind: reap_report::SuiteKind::Command,
        binary: String::new(),
        status: SuiteStatus::Pass,
        duration_ms: 0,
        log: None,
        attempts: vec![],
        leaks: r.unattributed.clone(),
        attribution: None,
        tests: vec![],
        counts: None,
        tmp: None,
        problems: vec![],
    })
}

/// What every process row is laid out for: the table's width and our own
/// pid (an orphan's PPID reads `reaper`).
struct RowLayout {
    width: usize,
    me: i32,
}

/// One suite's group of the table: its heading, then each test's leaks.
fn suite_leak_rows(out: &mut String, s: &SuiteReport, row: &RowLayout) {
    let width = row.width;
    putln!(
        out,
        "{}  ({} leaked)",
        clip(&s.id, width - 14),
        s.leaks.len()
    );
    for t in leak_tests(&s.leaks) {
        let leaks: Vec<&Leak> = s.leaks.iter().filter(|l| l.test.as_deref() == t).collect();
        let why = leaks.first().and_then(|l| l.attribution.as_deref());
        match (t, why) {
            (Some(t), _) => putln!(out, "  test {}", clip(t, width - 7)),
            (None, Some(why)) => putln!(out, "  test unknown: {}", clip(why, width - 16)),
            (None, None) => putln!(out, "  test unknown (attribution off)"),
        }
        for (l, n, depth) in alike_groups(&leaks) {
            process_row(out, l, n, depth, row);
            findings_lines(out, l, width);
        }
    }
}

/// The tests of a suite's leaks in first-seen order; leaks without a test last.
pub fn leak_tests(leaks: &[Leak]) -> Vec<Option<&str>> {
    let mut tests: Vec<Option<&str>> = Vec::new();
    for l in leaks {
        let t = l.test.as_deref();
        if !tests.contains(&t) {
            tests.push(t);
        }
    }
    tests.sort_by_key(|t| t.is_none());
    tests
}

/// Parent before child, children one level deeper; identical siblings (same
/// command, state, parent) share a row: (first leak, how many, depth).
pub fn alike_groups<'a>(leaks: &[&'a Leak]) -> Vec<(&'a Leak, usize, usize)> {
    let mut groups: Vec<(&Leak, usize, usize)> = Vec::new();
    for (l, depth) in as_tree(leaks) {
        match groups.last_mut() {
            Some((g, n, d))
                if *d == depth
                    && g.cmdline == l.cmdline
                    && g.state == l.state
                    && g.ppid == l.ppid =>
            {
                *n += 1
            }
            _ => groups.push((l, 1, depth)),
        }
    }
    groups
}

/// `       PID    PPID ST     AGE  COMMAND` of `n` alike processes at `depth`.
fn process_row(out: &mut String, l: &Leak, n: usize, depth: usize, row: &RowLayout) {
    let cmd = command_cell(l, n, depth);
    let ppid = if l.ppid == row.me {
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
        "    {:>8} {:>7} {:>2} {:>7}  ",
        pid,
        ppid,
        l.state,
        short(Duration::from_millis(l.age_ms)),
    );
    // A command line is data, not prose: even in a CI log it is
    // cut at COMMAND_MAX (the JSON report keeps every argument).
    let room = row
        .width
        .saturating_sub(prefix.chars().count())
        .clamp(20, COMMAND_MAX);
    putln!(out, "{prefix}{}", clip(&cmd, room));
}

/// The COMMAND cell: markers (allowed, not reaped), the tree branch, the
/// count of alike processes, the command line (or `[comm]` without one).
fn command_cell(l: &Leak, n: usize, depth: usize) -> String {
    let mut cmd = if l.cmdline.is_empty() {
        format!("[{}]", l.comm)
    } else {
        l.cmdline.join(" ")
    };
    if n > 1 {
        cmd = format!("({n}x) {cmd}");
    }
    if depth > 0 {
        cmd = format!("{}└ {cmd}", "  ".repeat(depth - 1));
    }
    match &l.kill_error {
        Some(why) => cmd = format!("(NOT REAPED: {why}) {cmd}"),
        None if !l.reaped => cmd = format!("(NOT REAPED) {cmd}"),
        None => {}
    }
    if l.allowed.is_some() {
        cmd = format!("(allowed) {cmd}");
    }
    cmd
}

/// Leaks in tree order (a leak whose parent is another leak follows it,
/// one level deeper), roots and siblings by pid.
fn as_tree<'a>(leaks: &[&'a Leak]) -> Vec<(&'a Leak, usize)> {
    let pids: std::collections::HashSet<i32> = leaks.iter().map(|l| l.pid).collect();
    let mut sorted: Vec<&Leak> = leaks.to_vec();
    sorted.sort_by_key(|l| l.pid);
    let mut out = Vec::with_capacity(leaks.len());
    fn visit<'a>(l: &'a Leak, depth: usize, all: &[&'a Leak], out: &mut Vec<(&'a Leak, usize)>) {
        out.push((l, depth));
        for c in all.iter().filter(|c| c.ppid == l.pid && c.pid != l.pid) {
            visit(c, depth + 1, all, out);
        }
    }
    for root in sorted.iter().filter(|l| !pids.contains(&l.ppid)) {
        visit(root, 0, &sorted, &mut out);
    }
    out
}

/// Findings under a process row: the rule ids, then the specific ones in words.
fn findings_lines(out: &mut String, l: &Leak, width: usize) {
    const INDENT: &str = "                              ";
    if let Some(why) = &l.allowed {
        putln!(
            out,
            "{INDENT}{}",
            clip(&format!("allowed: {why}"), width - INDENT.len())
        );
    }
    if !l.findings.is_empty() {
        putln!(
            out,
            "{INDENT}{}",
            clip(
                &format!("findings: {}", l.findings.join(", ")),
                width - INDENT.len()
            )
        );
    }
    // The generic ones (orphaned, escaped-*) are clear from their ids.
    for (rule, note) in l.findings.iter().zip(&l.notes) {
        if !matches!(
            rule.as_str(),
            "orphaned" | "escaped-group" | "escaped-session"
        ) {
            putln!(out, "{INDENT}- {}", clip(note, width - INDENT.len() - 2));
        }
    }
    if let Some(sc) = l.syscall.as_deref().filter(|s| *s != "running") {
        let wchan = l
            .wchan
            .as_deref()
            .map(|w| format!(" in {w}"))
            .unwrap_or_default();
        putln!(
            out,
            "{INDENT}blocked: {}",
            clip(&format!("{sc}{wchan}"), width - INDENT.len() - 9)
        );
    }
}

/// At most this many lines of a hang's process tree on the terminal.
const TREE_LINES: usize = 60;

/// `trial 3/20: 12 passed, 1 failed, 1 hung, 1 flaky; 31 leaked from 7 suites [10.2s]`
pub fn trial_line(t: &reap_report::Trial, of: Option<u32>) -> String {
    let s = &t.summary;
    let mut parts = vec![format!("{} passed", s.passed)];
    for (n, what) in [
        (s.failed, "failed"),
        (s.crashed, "crashed"),
        (s.hung, "hung"),
        (s.flaky, "flaky"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let leaks = if s.leaked_processes == 0 {
        "no leaks".to_string()
    } else {
        format!(
            "LEAKED {} from {} suite(s)",
            s.leaked_processes, s.suites_with_leaks
        )
    };
    format!(
        "trial {}{}: {}; {} [{}]",
        t.number,
        of.map(|n| format!("/{n}")).unwrap_or_default(),
        parts.join(", "),
        leaks,
        short(Duration::from_millis(t.duration_ms))
    )
}

/// The per-suite rate table of a `--loop` run and its headline.
pub fn loop_table(ls: &reap_report::LoopSummary) -> String {
    let w = ls
        .suites
        .iter()
        .map(|s| s.id.len())
        .max()
        .unwrap_or(5)
        .clamp(5, 40);
    let mut out = String::new();
    putln!(
        out,
        "\n{:<w$} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5} {:>7} {:>8}",
        "SUITE",
        "TRIALS",
        "PASS",
        "FAIL",
        "CRASH",
        "HANG",
        "FLAKY",
        "LEAKED",
        "MAX-LEAK"
    );
    for s in &ls.suites {
        putln!(
            out,
            "{:<w$} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5} {:>7} {:>8}",
            clip(&s.id, w),
            s.trials,
            s.pass,
            s.fail,
            s.crash,
            s.hang,
            s.flaky,
            s.trials_with_leaks,
            s.max_survivors
        );
    }
    putln!(
        out,
        "(LEAKED: trials in which the suite leaked; MAX-LEAK: most survivors in one trial)"
    );
    for s in ls.suites.iter().filter(|s| s.growing.is_some()) {
        let what = s.growing.as_deref().unwrap_or("");
        putln!(
            out,
            "{}",
            clip(&format!("GROWING {}: {what}", s.id), width())
        );
    }
    putln!(
        out,
        "leak-free trials: {}/{}",
        ls.leak_free_trials,
        ls.trials
    );
    out
}

/// The failing tests at the end of the run, each with the command that
/// re-runs exactly it; empty string when nothing failed.
pub fn failures_list(r: &Report) -> String {
    if r.failures.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let tests = r.failures.iter().filter(|f| f.test.is_some()).count();
    putln!(
        out,
        "\nFAILURES: {} failing test{}{}",
        tests,
        if tests == 1 { "" } else { "s" },
        match r.failures.len() - tests {
            0 => String::new(),
            n => format!(
                ", {n} suite{} failed as a whole",
                if n == 1 { "" } else { "s" }
            ),
        }
    );
    let w = width();
    for f in &r.failures {
        let what = match &f.test {
            Some(t) => format!("{}  {}", f.suite, t),
            None => format!("{}  (the suite as a whole)", f.suite),
        };
        putln!(
            out,
            "{} {}",
            paint(&format!("{:>10}", f.status.label()), 31),
            clip(&what, w.saturating_sub(11))
        );
        if let Some(cmd) = &f.rerun {
            putln!(out, "           rerun: {}", clip(cmd, w.saturating_sub(18)));
        }
    }
    out
}

/// `cargo reap run --watch`'s live status: on an interactive terminal one
/// line redrawn in place (at most 4 times a second); elsewhere (a CI log,
/// `CI` set, a dumb terminal) a plain line at every tenth of the watch.
#[derive(Debug, Default)]
pub struct LiveLine {
    /// Decided at the first sample.
    interactive: Option<bool>,
    last_drawn: Option<std::time::Instant>,
    /// A line is drawn and not yet cleared.
    drawn: bool,
    /// Plain lines: tenths of the watch already said.
    tenths_said: u64,
}

impl LiveLine {
    /// After a sample: the text to write, if any.
    pub fn sampled(
        &mut self,
        t: &reap_report::Timeline,
        elapsed: Duration,
        watch: Duration,
    ) -> Option<String> {
        let interactive = *self.interactive.get_or_insert_with(|| {
            use std::io::IsTerminal;
            std::io::stderr().is_terminal()
                && std::env::var_os("CI").is_none()
                && std::env::var("TERM").map_or(true, |t| t != "dumb")
        });
        if interactive {
            let now = std::time::Instant::now();
            if self
                .last_drawn
                .is_some_and(|l| now - l < Duration::from_millis(250))
            {
                return None;
            }
            self.last_drawn = Some(now);
            self.drawn = true;
            let line = format!(
                "watch {}/{}: {}",
                short(elapsed),
                short(watch),
                live_status(t)
            );
            let line = clip(&line, width().saturating_sub(1));
            return Some(format!("\r\x1b[K{line}"));
        }
        let tenth = (elapsed.as_millis() * 10 / watch.as_millis().max(1)) as u64;
        if tenth <= self.tenths_said || tenth >= 10 {
            return None;
        }
        self.tenths_said = tenth;
        Some(format!(
            "cargo-reap: watch {}% ({} of {}): {}\n",
            tenth * 10,
            short(elapsed),
            short(watch),
            live_status(t)
        ))
    }

    /// Clear a drawn line (before other output).
    pub fn clear(&mut self) -> String {
        if std::mem::take(&mut self.drawn) {
            "\r\x1b[K".into()
        } else {
            String::new()
        }
    }
}

/// `processes 14 (orphans 12), threads 15, memory 3.2 MiB, fds 21; processes +1 every 5 s so far`
fn live_status(t: &reap_report::Timeline) -> String {
    use reap_report::trend;
    let last = |v: &[u32]| v.last().copied().unwrap_or(0);
    let memory = t.memory_bytes.last().copied().unwrap_or(0);
    let mut s = format!(
        "processes {} (orphans {}), threads {}, memory {}, fds {}",
        last(&t.processes),
        last(&t.orphans),
        last(&t.threads),
        trend::value(memory as f64, true),
        last(&t.open_fds)
    );
    for d in &t.dirs {
        put!(
            s,
            ", files in {} {}",
            d.path,
            d.files.last().copied().unwrap_or(0)
        );
    }
    let values: Vec<f64> = t.processes.iter().map(|&x| f64::from(x)).collect();
    let fit = trend::judge(
        &trend::Series {
            name: reap_report::SeriesName::Processes,
            values: &values,
            start_ms: t.start_ms,
            interval_ms: t.interval_ms,
        },
        Some(0.0),
    );
    match fit.verdict {
        reap_report::TrendVerdict::TooShort => {}
        reap_report::TrendVerdict::Flat => s.push_str("; processes flat so far"),
        _ => put!(
            s,
            "; processes {} so far",
            trend::rate(fit.slope_per_hour, false)
        ),
    }
    s
}

/// The end of a watch: how long (or that it was interrupted), then each
/// series' trend, the failing ones marked.
pub fn watch_lines(w: &reap_report::WatchReport, interrupted: bool) -> String {
    use reap_report::TrendVerdict;
    let t = &w.timeline;
    let mut out = String::new();
    match (w.died_at_ms, w.died_with) {
        (Some(at), with) => putln!(
            out,
            "{} the command died at {} of the {} watch{} ({} samples every {})",
            paint("DIED", 31),
            reap_report::trend::span(at),
            short(Duration::from_millis(w.duration_ms)),
            with.map(|c| format!(", exit status {c}"))
                .unwrap_or_default(),
            t.len(),
            short(Duration::from_millis(t.interval_ms))
        ),
        (None, _) if interrupted => putln!(
            out,
            "watch interrupted after {} of {}: {} samples every {}",
            reap_report::trend::span(t.at_ms(t.len().saturating_sub(1))),
            short(Duration::from_millis(w.duration_ms)),
            t.len(),
            short(Duration::from_millis(t.interval_ms))
        ),
        (None, _) => putln!(
            out,
            "watched for {}: {} samples every {} (memory: {})",
            short(Duration::from_millis(w.duration_ms)),
            t.len(),
            short(Duration::from_millis(t.interval_ms)),
            if t.memory_source.is_unknown() {
                "none"
            } else {
                t.memory_source.as_str()
            }
        ),
    }
    for trend in &w.trends {
        let mark = match trend.verdict {
            TrendVerdict::TooFast => paint("TOO FAST", 31),
            TrendVerdict::Growing => paint("growing", 33),
            TrendVerdict::TooShort => "too short".into(),
            TrendVerdict::Flat => "ok".into(),
            TrendVerdict::Shrinking => "ok".into(),
        };
        let limit = trend
            .max_per_hour
            .filter(|_| trend.verdict == TrendVerdict::TooFast)
            .map(|m| {
                let memory = trend.series == reap_report::SeriesName::Memory;
                format!(
                    " (at most {}/h allowed)",
                    reap_report::trend::value(m, memory)
                )
            })
            .unwrap_or_default();
        putln!(out, "  {mark:>9}  {}{limit}", trend.sentence);
    }
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
        (s.errored, "could not be judged (error)"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let allowed = if s.allowed_processes > 0 {
        format!(" ({} expected by the allow list)", s.allowed_processes)
    } else {
        String::new()
    };
    let leaks = if s.leaked_processes == 0 {
        format!("no leaked processes{allowed}")
    } else {
        format!(
            "{} leaked process{} from {} suite{}",
            s.leaked_processes,
            if s.leaked_processes == 1 { "" } else { "es" },
            s.suites_with_leaks,
            if s.suites_with_leaks == 1 { "" } else { "s" }
        )
    };
    let what = match &r.loop_summary {
        Some(ls) => format!(
            "{} trial{} ({} suite runs)",
            ls.trials,
            if ls.trials == 1 { "" } else { "s" },
            s.suites
        ),
        None => format!("{} suite{}", s.suites, if s.suites == 1 { "" } else { "s" }),
    };
    format!(
        "cargo-reap: {} in {}: {}; {}{} (isolation: {}, exit {})",
        what,
        short(Duration::from_millis(r.duration_ms)),
        parts.join(", "),
        test_counts(s).map(|t| format!("{t}; ")).unwrap_or_default(),
        leaks,
        r.isolation,
        r.exit_code
    )
}

/// `tests: 10 passed, 2 failed, 3 ignored, 4 filtered out` (absent when no
/// suite printed libtest's counts).
fn test_counts(s: &reap_report::Summary) -> Option<String> {
    if s.suites_without_counts == s.suites {
        return None;
    }
    let t = &s.tests;
    let mut parts = vec![
        format!("{} passed", t.passed),
        format!("{} failed", t.failed),
    ];
    for (n, what) in [
        (t.ignored, "ignored"),
        (t.measured, "measured"),
        (t.filtered_out, "filtered out"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if s.suites_without_counts > 0 {
        parts.push(format!(
            "{} suite{} not counted",
            s.suites_without_counts,
            if s.suites_without_counts == 1 {
                ""
            } else {
                "s"
            }
        ));
    }
    Some(format!("tests: {}", parts.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reap_report::IsolationKind;
    use reap_report::Summary;

    fn leaking_timeline(n: u32) -> reap_report::Timeline {
        reap_report::Timeline {
            start_ms: 0,
            interval_ms: 100,
            processes: (1..=n).collect(),
            orphans: (0..n).collect(),
            threads: vec![1; n as usize],
            memory_bytes: vec![1 << 20; n as usize],
            open_fds: vec![3; n as usize],
            orphan_command: "sleep 60".into(),
            ..Default::default()
        }
    }

    #[test]
    fn without_a_terminal_the_watch_says_each_tenth_once() {
        let mut live = LiveLine {
            interactive: Some(false),
            ..LiveLine::default()
        };
        let watch = Duration::from_secs(10);
        let mut said = Vec::new();
        for i in 0..100u32 {
            let t = leaking_timeline(i + 1);
            if let Some(text) = live.sampled(&t, Duration::from_millis(u64::from(i) * 100), watch) {
                said.push(text);
            }
        }
        assert_eq!(said.len(), 9, "{said:#?}");
        assert!(
            said[0]
                .starts_with("cargo-reap: watch 10% (1.00s of 10.00s): processes 11 (orphans 10)"),
            "{}",
            said[0]
        );
        assert!(
            said[8].contains("processes +10 per second so far"),
            "{}",
            said[8]
        );
        assert!(said.iter().all(|l| l.ends_with('\n') && !l.contains('\r')));
        assert_eq!(live.clear(), "");
    }

    #[test]
    fn the_watch_ends_with_each_trend_and_a_death() {
        let t = leaking_timeline(50);
        let mut w = reap_report::WatchReport {
            duration_ms: 5000,
            trends: reap_report::trend::judge_timeline(&t, &Default::default()),
            timeline: t,
            died_at_ms: None,
            died_with: None,
        };
        let text = watch_lines(&w, false);
        assert!(
            text.starts_with("watched for 5.00s: 50 samples every 100ms"),
            "{text}"
        );
        assert!(text.contains("TOO FAST  processes: +10 per second (1 → 50 over 4.9s), 49 orphans of 'sleep 60' (at most 0/h allowed)"), "{text}");
        assert!(text.contains("ok  memory: flat at 1.0 MiB"), "{text}");
        assert!(watch_lines(&w, true).starts_with("watch interrupted after 4.9s of 5.00s"));
        w.died_at_ms = Some(2_592_000);
        w.died_with = Some(0);
        assert!(watch_lines(&w, false)
            .starts_with("DIED the command died at 43m12s of the 5.00s watch, exit status 0"));
    }

    fn leak(pid: i32, ppid: i32, cmd: &str, test: Option<&str>) -> Leak {
        Leak {
            pid,
            ppid,
            pgid: pid,
            sid: pid,
            state: 'S',
            comm: cmd.split(' ').next().unwrap().into(),
            cmdline: cmd.split(' ').map(str::to_string).collect(),
            age_ms: 1500,
            attempt: 1,
            reaped: true,
            kill_error: None,
            test: test.map(str::to_string),
            attribution: None,
            findings: vec!["orphaned".into(), "holds-both-pipe-ends".into()],
            notes: vec![
                "parent gone".into(),
                "holds both ends of pipe 1 (fd 0 read, fd 1 write): a read on it can never see EOF, and this note is long enough to need clipping at the table width".into(),
            ],
            fds: None,
            wchan: Some("anon_pipe_read".into()),
            syscall: Some("read(fd=0)".into()),
            allowed: None,
        }
    }

    fn report(leaks: Vec<Leak>) -> Report {
        let suite = SuiteReport {
            id: "pkg::suite".into(),
            package: "pkg".into(),
            target: "suite".into(),
            kind: reap_report::SuiteKind::Test,
            binary: "/bin/x".into(),
            status: SuiteStatus::Pass,
            duration_ms: 10,
            log: None,
            attempts: vec![],
            leaks,
            attribution: None,
            tests: vec![],
            counts: None,
            tmp: None,
            problems: vec![],
        };
        Report {
            version: 1,
            run_id: "r".into(),
            isolation: IsolationKind::Cgroup,
            isolation_note: String::new(),
            duration_ms: 10,
            exit_code: 103,
            build_failed: false,
            interrupted: None,
            summary: Summary::of(std::slice::from_ref(&suite)),
            suites: vec![suite],
            trials: vec![],
            loop_summary: None,
            unattributed: vec![],
            problems: vec![],
            failures: vec![],
            selection: None,
            merged_from: vec![],
            watch: None,
        }
    }

    #[test]
    fn table_groups_by_test_indents_children_and_fits_100_columns() {
        let r = report(vec![
            leak(10, 1, "sh -c spawn", Some("t_one")),
            leak(11, 10, "sleep 5", Some("t_one")),
            leak(12, 10, "sleep 5", Some("t_one")),
            leak(20, 1, "cat", None),
        ]);
        let t = leak_table_in(&r, WIDTH);
        assert!(t.contains("  test t_one\n"), "{t}");
        assert!(
            t.contains("└ (2x) sleep 5"),
            "children indented, identical siblings grouped: {t}"
        );
        assert!(t.contains("test unknown"), "{t}");
        assert!(
            t.contains("findings: orphaned, holds-both-pipe-ends"),
            "{t}"
        );
        assert!(t.contains("blocked: read(fd=0) in anon_pipe_read"), "{t}");
        // Known tests come before the unknown group.
        assert!(t.find("t_one").unwrap() < t.find("test unknown").unwrap());
        for line in t.lines() {
            assert!(line.chars().count() <= WIDTH, "too wide: {line:?}");
        }
    }

    #[test]
    fn control_characters_cannot_reach_the_terminal() {
        let r = report(vec![leak(
            30,
            1,
            "\u{1b}[2J\u{1b}[31mevil \nINJECTED-LINE",
            Some("t\nx"),
        )]);
        let t = leak_table(&r);
        assert!(!t.contains('\u{1b}'), "{t:?}");
        assert!(!t.lines().any(|l| l.starts_with("INJECTED-LINE")), "{t}");
        assert!(t.contains("?[2J?[31mevil ?INJECTED-LINE"), "{t}");
    }

    #[test]
    fn no_table_without_leaks() {
        assert_eq!(leak_table(&report(vec![])), "");
    }
}
