//! `--html PATH`: the report as one self-contained page (inline CSS and SVG,
//! no script, nothing fetched): the run's summary and exit code, every
//! suite's status, the leak table with findings and attribution, failures
//! with their re-run commands, hang forensics (tests in flight, the process
//! tree, the folded stacks the terminal shows), and charts: each watched
//! series with its fitted trend line, each attempt's timeline, and in
//! `--loop` leaks and peaks per trial for each suite.
//!
//! Everything a suite controls (test names, command lines, paths, output)
//! is escaped ([`esc`]): a command line holding `<script>` shows as text.

use std::time::Duration;

pub use super::html_esc::esc;
use super::html_svg::{self as svg, Chart, Fit, Series, Unit, XAxis};
use super::terminal;
use crate::duration::short;
use reap_report::{
    exit, Attempt, AttributionReport, Leak, MemorySource, Report, SeriesName, SuiteReport,
    SuiteStatus, Timeline, Trend, TrendVerdict,
};

/// Append formatted text to a String.
macro_rules! put {
    ($dst:expr, $($arg:tt)*) => { $dst.push_str(&format!($($arg)*)) };
}

/// Most bytes of one failing test's output shown (the JSON has all of it).
const OUTPUT_MAX: usize = 4096;

const CSS: &str = include_str!("html.css");

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    put!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>cargo-reap report {}</title><style>{CSS}</style></head><body><main>\n",
        esc(&r.run_id)
    );
    summary(&mut out, r);
    watch_section(&mut out, r);
    suites_table(&mut out, r);
    leaks_section(&mut out, r);
    failures_section(&mut out, r);
    hangs_section(&mut out, r);
    loop_section(&mut out, r);
    timelines_section(&mut out, r);
    put!(
        out,
        "<footer>cargo-reap {} · schema version {}</footer></main></body></html>\n",
        env!("CARGO_PKG_VERSION"),
        r.version
    );
    out
}

/// The CSS class of a status (its colour).
fn status_class(s: SuiteStatus) -> &'static str {
    match s {
        SuiteStatus::Pass => "pass",
        SuiteStatus::Fail | SuiteStatus::Crash => "fail",
        SuiteStatus::Hang => "hang",
        SuiteStatus::FlakyHang => "flaky",
        SuiteStatus::Error => "error",
    }
}

fn badge(s: SuiteStatus) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        status_class(s),
        s.label()
    )
}

/// What an exit code means (README, `--help`).
pub fn exit_meaning(code: i32) -> &'static str {
    exit::meaning(code).unwrap_or(
        "not one of cargo-reap's own verdicts: the command's own exit code (cargo reap run); \
         see cargo reap --help",
    )
}

/// Headline, counters, exit code and isolation.
fn summary(out: &mut String, r: &Report) {
    let s = &r.summary;
    let verdict = if r.exit_code == 0 { "pass" } else { "fail" };
    put!(
        out,
        "<header class=\"{verdict}\"><h1>cargo-reap report</h1><p class=\"exit\">exit <b id=\"exit-code\">{}</b>: {}</p></header>\n",
        r.exit_code,
        esc(exit_meaning(r.exit_code))
    );
    out.push_str("<section id=\"summary\"><div class=\"cards\">");
    let cards = [
        ("suites", s.suites, ""),
        ("passed", s.passed, "pass"),
        ("failed", s.failed, "fail"),
        ("crashed", s.crashed, "fail"),
        ("hung", s.hung, "hang"),
        ("flaky-hang", s.flaky, "flaky"),
        ("error", s.errored, "error"),
        ("leaked processes", s.leaked_processes, "leak"),
    ];
    let trials = r.loop_summary.as_ref().map(|ls| ls.trials);
    for (what, n, class) in cards {
        let class = if n == 0 && !class.is_empty() {
            "zero"
        } else {
            class
        };
        let id = what.replace(' ', "-");
        put!(
            out,
            "<div class=\"card {class}\"><b id=\"count-{id}\">{n}</b><span>{what}</span></div>"
        );
    }
    out.push_str("</div>");
    if let Some(n) = trials {
        put!(
            out,
            "<p class=\"note\">Counted over all {n} trials (suite runs); the tables below show the last trial that leaked, else the last.</p>"
        );
    }
    out.push_str("<dl>");
    let mut facts = vec![
        ("summary", terminal::summary_line(r)),
        ("isolation", isolation(r)),
        ("duration", short(Duration::from_millis(r.duration_ms))),
        ("run id", r.run_id.clone()),
    ];
    if !r.merged_from.is_empty() {
        facts.push(("merged from", r.merged_from.join(", ")));
    }
    if let Some(sig) = r.interrupted {
        facts.push((
            "interrupted",
            format!("by signal {sig}: the report is partial"),
        ));
    }
    for (k, v) in facts {
        put!(out, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
    }
    out.push_str("</dl>");
    for p in &r.problems {
        put!(out, "<p class=\"problem\">problem: {}</p>", esc(p));
    }
    out.push_str("</section>\n");
}

/// `cgroup v2 (leaves under …)`: the note printed at start, else the mode.
fn isolation(r: &Report) -> String {
    match r.isolation_note.strip_prefix("isolation: ") {
        Some(note) => note.to_string(),
        None if r.isolation_note.is_empty() => r.isolation.to_string(),
        None => format!("{}: {}", r.isolation, r.isolation_note),
    }
}

/// Every suite: status, time, attempts, tests, leaks, peaks.
fn suites_table(out: &mut String, r: &Report) {
    if r.suites.is_empty() {
        return;
    }
    out.push_str("<section id=\"suites\"><h2>Suites</h2><table><thead><tr><th>status</th><th>suite</th><th class=\"num\">time</th><th class=\"num\">attempts</th><th class=\"num\">tests passed / failed</th><th class=\"num\">leaked</th><th class=\"num\">peak processes</th><th class=\"num\">peak memory</th></tr></thead><tbody>");
    for s in &r.suites {
        let last = s.attempts.last();
        let tests = s
            .counts
            .map(|c| format!("{} / {}", c.passed, c.failed))
            .unwrap_or_else(|| "–".into());
        let peak_p = s
            .attempts
            .iter()
            .map(|a| a.peak_processes)
            .max()
            .unwrap_or(0);
        let peak_m = s
            .attempts
            .iter()
            .map(|a| a.peak_memory_bytes)
            .max()
            .unwrap_or(0);
        put!(
            out,
            "<tr data-suite=\"{id}\" data-status=\"{}\"><td>{}</td><td class=\"id\">{id}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{tests}</td><td class=\"num{}\">{}</td><td class=\"num\">{peak_p}</td><td class=\"num\">{}</td></tr>",
            s.status.as_str(),
            badge(s.status),
            short(Duration::from_millis(s.duration_ms)),
            s.attempts.len(),
            if s.leaks.is_empty() { "" } else { " leak" },
            s.leaks.len(),
            last.map_or("–".into(), |_| svg::bytes(peak_m as f64)),
            id = esc(&s.id),
        );
    }
    out.push_str("</tbody></table></section>\n");
}

/// The leak table: per suite its survivors, their findings in words, and attribution.
fn leaks_section(out: &mut String, r: &Report) {
    let mut groups: Vec<(&str, Option<&AttributionReport>, &[Leak])> = r
        .suites
        .iter()
        .filter(|s| !s.leaks.is_empty())
        .map(|s| (s.id.as_str(), s.attribution.as_ref(), s.leaks.as_slice()))
        .collect();
    if !r.unattributed.is_empty() {
        groups.push(("(no suite could claim them)", None, &r.unattributed));
    }
    let total: usize = groups.iter().map(|g| g.2.len()).sum();
    if total == 0 {
        return;
    }
    let trial = if r.loop_summary.is_some() {
        " (the trial shown: the last that leaked)"
    } else {
        ""
    };
    put!(
        out,
        "<section id=\"leaks\"><h2>Leaked processes: <span id=\"leak-total\">{total}</span>{trial}</h2><p class=\"note\">Each survived its suite; all were killed and reaped unless marked. PPID <em>reaper</em>: orphaned, reparented to cargo-reap (child subreaper); (N×): N alike processes, pids from PID.</p><table class=\"leaks\"><thead><tr><th class=\"num\">PID</th><th class=\"num\">PPID</th><th>ST</th><th class=\"num\">age</th><th>command</th><th>findings</th></tr></thead>"
    );
    for (id, attribution, leaks) in groups {
        leak_group(out, id, attribution, leaks);
    }
    out.push_str("</table></section>\n");
}

/// One suite's rows: a heading row, then each test's processes (as a tree,
/// alike siblings in one row, as the terminal shows them).
fn leak_group(out: &mut String, id: &str, a: Option<&AttributionReport>, leaks: &[Leak]) {
    let attribution = a.and_then(terminal::attribution_line);
    put!(
        out,
        "<tbody class=\"group\"><tr class=\"suite-row\"><th colspan=\"6\">{} <span class=\"count\">({} leaked)</span>{}</th></tr>",
        esc(id),
        leaks.len(),
        attribution
            .map(|a| format!("<div class=\"attribution\">{}</div>", esc(&a)))
            .unwrap_or_default()
    );
    for test in terminal::leak_tests(leaks) {
        let leaks: Vec<&Leak> = leaks.iter().filter(|l| l.test.as_deref() == test).collect();
        let name = match (test, leaks.first().and_then(|l| l.attribution.as_ref())) {
            (Some(t), _) => format!("test {t}"),
            (None, Some(why)) => format!("test unknown: {why}"),
            (None, None) => "test unknown".into(),
        };
        put!(
            out,
            "<tr class=\"test-row\"><td colspan=\"6\">{}</td></tr>",
            esc(&name)
        );
        for (l, n, depth) in terminal::alike_groups(&leaks) {
            leak_row(out, l, n, depth);
        }
    }
    out.push_str("</tbody>");
}

fn leak_row(out: &mut String, l: &Leak, n: usize, depth: usize) {
    let ppid = if l.ppid == std::process::id() as i32 {
        "reaper".to_string()
    } else {
        l.ppid.to_string()
    };
    let mut marks = Vec::new();
    if let Some(e) = &l.kill_error {
        marks.push(format!(
            "<span class=\"badge fail\">NOT KILLED</span> {}",
            esc(e)
        ));
    } else if !l.reaped {
        marks.push("<span class=\"badge fail\">not confirmed gone</span>".to_string());
    }
    if let Some(why) = &l.allowed {
        marks.push(format!(
            "<span class=\"badge pass\">allowed</span> {}",
            esc(why)
        ));
    }
    let findings: String = l
        .findings
        .iter()
        .map(|f| format!("<span class=\"finding\">{}</span>", esc(f)))
        .collect();
    let mut notes: Vec<String> = l.notes.iter().map(|n| esc(n)).collect();
    if let Some(b) = blocked(l) {
        notes.push(format!("blocked: {}", esc(&b)));
    }
    let tree = if depth > 0 {
        format!("{}└ ", "  ".repeat(depth - 1))
    } else {
        String::new()
    };
    let alike = if n > 1 {
        format!("({n}×) ")
    } else {
        String::new()
    };
    put!(
        out,
        "<tr class=\"leak\"><td class=\"num\">{}{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"cmd\"><code>{tree}{alike}{}</code>{}</td><td>{findings}<ul class=\"notes\">{}</ul></td></tr>",
        l.pid,
        if n > 1 { "+" } else { "" },
        ppid,
        esc(&l.state.to_string()),
        short(Duration::from_millis(l.age_ms)),
        esc(&command_of(l)),
        marks.iter().map(|m| format!("<div>{m}</div>")).collect::<String>(),
        notes.iter().map(|n| format!("<li>{n}</li>")).collect::<String>()
    );
}

/// `clock_nanosleep in hrtimer_nanosleep`, as the terminal says it.
fn blocked(l: &Leak) -> Option<String> {
    match (&l.syscall, &l.wchan) {
        (Some(s), Some(w)) => Some(format!("{s} in {w}")),
        (Some(s), None) => Some(s.clone()),
        (None, Some(w)) => Some(w.clone()),
        (None, None) => None,
    }
}

/// The command line (its first 500 characters), else `[comm]`.
fn command_of(l: &Leak) -> String {
    let cmd = if l.cmdline.is_empty() {
        format!("[{}]", l.comm)
    } else {
        l.cmdline.join(" ")
    };
    match cmd.char_indices().nth(500) {
        Some((i, _)) => format!("{}…", &cmd[..i]),
        None => cmd,
    }
}

/// Failing tests and suites, each with its re-run command and output.
fn failures_section(out: &mut String, r: &Report) {
    if r.failures.is_empty() {
        return;
    }
    put!(
        out,
        "<section id=\"failures\"><h2>Failures: {}</h2><ul class=\"failures\">",
        r.failures.len()
    );
    for f in &r.failures {
        let what = match &f.test {
            Some(t) => format!("{}  {t}", f.suite),
            None => format!("{}  (the suite as a whole)", f.suite),
        };
        put!(
            out,
            "<li>{} <span class=\"id\">{}</span>",
            badge(f.status),
            esc(&what)
        );
        if let Some(cmd) = &f.rerun {
            put!(
                out,
                "<div class=\"rerun\">re-run: <code>{}</code></div>",
                esc(cmd)
            );
        }
        let output = r
            .suites
            .iter()
            .filter(|s| s.id == f.suite)
            .flat_map(|s| &s.tests)
            .find(|t| Some(&t.name) == f.test.as_ref())
            .and_then(|t| t.output.as_deref());
        if let Some(text) = output {
            put!(
                out,
                "<details><summary>output</summary><pre>{}</pre></details>",
                esc(cut(text, OUTPUT_MAX))
            );
        }
        out.push_str("</li>");
    }
    out.push_str("</ul></section>\n");
}

/// At most `max` bytes of `text`, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Each timed-out attempt: when, the tests in flight, the process tree and the stacks.
fn hangs_section(out: &mut String, r: &Report) {
    let hung: Vec<&SuiteReport> = r
        .suites
        .iter()
        .filter(|s| s.attempts.iter().any(|a| a.timed_out))
        .collect();
    if hung.is_empty() {
        return;
    }
    out.push_str("<section id=\"hangs\"><h2>Hangs</h2>");
    let root = std::env::current_dir().ok();
    for s in hung {
        put!(
            out,
            "<article class=\"hang-box\"><h3>{} <span class=\"id\">{}</span></h3>",
            badge(s.status),
            esc(&s.id)
        );
        for a in s.attempts.iter().filter(|a| a.timed_out) {
            hang_attempt(out, a, root.as_deref());
        }
        out.push_str("</article>");
    }
    out.push_str("</section>\n");
}

fn hang_attempt(out: &mut String, a: &Attempt, root: Option<&std::path::Path>) {
    let in_flight = if a.tests_in_flight.is_empty() {
        "(unknown)".to_string()
    } else {
        a.tests_in_flight
            .iter()
            .map(|t| match a.in_flight_guesses.contains(t) {
                true => format!("{t} (thread name prefix: a guess)"),
                false => t.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    put!(
        out,
        "<p>attempt {} timed out after {}; {} process(es) killed; in flight: <code class=\"in-flight\">{}</code></p>",
        a.number,
        short(Duration::from_millis(a.duration_ms)),
        a.hang_processes.len(),
        esc(&in_flight)
    );
    let stacks = super::stacks::hang_lines(a, root);
    if !stacks.is_empty() {
        put!(
            out,
            "<h4>where it was blocked (stacks before the kill; std and libc frames folded)</h4><pre class=\"stacks\">{}</pre>",
            esc(&stacks.join("\n"))
        );
    }
    if !a.tree.is_empty() {
        put!(
            out,
            "<details><summary>what it was doing when it was killed (reap-probe, {} lines)</summary><pre class=\"tree\">{}</pre></details>",
            a.tree.len(),
            esc(&a.tree.join("\n"))
        );
    }
}

/// `cargo reap run --watch`: each series with its fitted line and verdict.
fn watch_section(out: &mut String, r: &Report) {
    let Some(w) = &r.watch else { return };
    let command = r.suites.first().map(|s| s.binary.as_str()).unwrap_or("");
    put!(
        out,
        "<section id=\"watch\"><h2>Watch: {} of <code>{}</code></h2>",
        short(Duration::from_millis(w.duration_ms)),
        esc(command)
    );
    if let Some(at) = w.died_at_ms {
        put!(
            out,
            "<p class=\"problem\" id=\"died\">the command died at {}{}</p>",
            short(Duration::from_millis(at)),
            w.died_with
                .map(|c| format!(" with exit status {c}"))
                .unwrap_or_default()
        );
    }
    out.push_str("<div class=\"charts\">");
    for (name, label, unit, values) in series_of(&w.timeline) {
        let trend = w.trends.iter().find(|t| t.series == name);
        series_chart(out, &w.timeline, label, unit, values, trend);
    }
    out.push_str("</div></section>\n");
}

/// Every series of a timeline: which it is, its label, unit and values.
fn series_of(t: &Timeline) -> Vec<(SeriesName, String, Unit, Vec<f64>)> {
    let f = |v: &[u32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let mut all = vec![
        (
            SeriesName::Processes,
            "processes".to_string(),
            Unit::Count,
            f(&t.processes),
        ),
        (
            SeriesName::Orphans,
            "orphans".into(),
            Unit::Count,
            f(&t.orphans),
        ),
        (
            SeriesName::Threads,
            "threads".into(),
            Unit::Count,
            f(&t.threads),
        ),
        (
            SeriesName::Memory,
            match t.memory_source {
                MemorySource::Unknown => "memory".to_string(),
                src => format!("memory ({})", src.as_str()),
            },
            Unit::Bytes,
            t.memory_bytes.iter().map(|&x| x as f64).collect(),
        ),
        (
            SeriesName::OpenFds,
            "open fds".into(),
            Unit::Count,
            f(&t.open_fds),
        ),
    ];
    for d in &t.dirs {
        all.push((
            SeriesName::Dir(d.path.clone()),
            format!("files in {}", d.path),
            Unit::Count,
            d.files.iter().map(|&x| x as f64).collect(),
        ));
    }
    all.retain(|(_, _, _, v)| !v.is_empty());
    all
}

/// One watched series: the chart with its fitted line, the slope and the sentence.
fn series_chart(
    out: &mut String,
    t: &Timeline,
    label: String,
    unit: Unit,
    values: Vec<f64>,
    trend: Option<&Trend>,
) {
    let xs: Vec<f64> = (0..values.len()).map(|i| t.at_ms(i) as f64).collect();
    let fit = trend.map(|tr| Fit {
        x0: t.start_ms as f64,
        intercept: tr.intercept,
        slope_per_x: tr.slope_per_hour / 3_600_000.0,
    });
    let chart = Chart {
        y_label: label.clone(),
        unit,
        x_axis: XAxis::TimeMs,
        xs,
        series: vec![Series {
            label: label.clone(),
            values,
            class: "s0",
        }],
        fit,
        small: false,
    };
    let verdict = trend.map_or("", |tr| verdict_class(tr.verdict));
    put!(
        out,
        "<figure class=\"series {verdict}\"><figcaption><b>{}</b>",
        esc(&label)
    );
    if let Some(tr) = trend {
        put!(
            out,
            " <span class=\"badge {verdict}\">{}</span> <span class=\"slope\">slope {}/h</span><div class=\"sentence\">{}</div>",
            verdict_label(tr.verdict),
            esc(&signed(tr.slope_per_hour, unit)),
            esc(&tr.sentence)
        );
    }
    put!(out, "</figcaption>{}</figure>", svg::render(&chart));
}

/// `+21.3` / `-1.5 MiB`: a slope with its sign.
fn signed(v: f64, unit: Unit) -> String {
    let magnitude = match unit {
        Unit::Count => format!("{:.1}", v.abs()),
        Unit::Bytes => svg::bytes(v.abs()),
    };
    format!("{}{magnitude}", if v < 0.0 { "-" } else { "+" })
}

fn verdict_class(v: TrendVerdict) -> &'static str {
    match v {
        TrendVerdict::Flat | TrendVerdict::Shrinking => "pass",
        TrendVerdict::Growing => "flaky",
        TrendVerdict::TooFast => "fail",
        TrendVerdict::TooShort => "error",
    }
}

fn verdict_label(v: TrendVerdict) -> &'static str {
    match v {
        TrendVerdict::Flat => "flat",
        TrendVerdict::Growing => "growing",
        TrendVerdict::TooFast => "grows too fast",
        TrendVerdict::Shrinking => "shrinking",
        TrendVerdict::TooShort => "too short to judge",
    }
}

/// `--loop`: leaks per trial (all suites), then each suite's leaks and peaks per trial.
fn loop_section(out: &mut String, r: &Report) {
    let Some(ls) = &r.loop_summary else { return };
    put!(
        out,
        "<section id=\"loop\"><h2>Loop: {} trials, {} leak-free</h2>",
        ls.trials,
        ls.leak_free_trials
    );
    let xs: Vec<f64> = r.trials.iter().map(|t| t.number as f64).collect();
    let leaks: Vec<f64> = r
        .trials
        .iter()
        .map(|t| t.summary.leaked_processes as f64)
        .collect();
    if !xs.is_empty() {
        let chart = trial_chart("leaked processes", Unit::Count, &xs, leaks, false);
        put!(
            out,
            "<figure><figcaption><b>leaked processes per trial</b></figcaption>{chart}</figure>"
        );
    }
    let (charted, quiet): (Vec<_>, Vec<_>) = ls.suites.iter().partition(|s| telling(s));
    out.push_str("<div class=\"charts\">");
    for s in charted {
        loop_suite(out, r, s, &xs);
    }
    out.push_str("</div>");
    if !quiet.is_empty() {
        let ids: Vec<String> = quiet.iter().map(|s| esc(&s.id)).collect();
        put!(
            out,
            "<p class=\"note\">No leak in any trial and the same peaks in every trial (not charted): <span class=\"id\">{}</span></p>",
            ids.join(", ")
        );
    }
    out.push_str("</section>\n");
}

fn trial_chart(label: &str, unit: Unit, xs: &[f64], values: Vec<f64>, small: bool) -> String {
    svg::render(&Chart {
        y_label: label.into(),
        unit,
        x_axis: XAxis::Trials,
        xs: xs.to_vec(),
        series: vec![Series {
            label: label.into(),
            values,
            class: "s1",
        }],
        fit: None,
        small,
    })
}

/// Is a suite's loop chart worth drawing: it leaked, its peak process count
/// changed, or its peak memory moved by more than 1 MiB and a fifth?
fn telling(s: &reap_report::SuiteRates) -> bool {
    let processes_vary = s.peak_processes.windows(2).any(|w| w[0] != w[1]);
    let lo = s.peak_memory_bytes.iter().copied().min().unwrap_or(0);
    let hi = s.peak_memory_bytes.iter().copied().max().unwrap_or(0);
    let memory_moves = hi - lo > (1 << 20).max(hi / 5);
    s.trials_with_leaks > 0 || s.growing.is_some() || processes_vary || memory_moves
}

/// One suite across the trials: its rates, and leaks and peaks per trial.
fn loop_suite(out: &mut String, r: &Report, s: &reap_report::SuiteRates, xs: &[f64]) {
    let leaks: Vec<f64> = r
        .trials
        .iter()
        .map(|t| {
            t.suites
                .iter()
                .find(|x| x.id == s.id)
                .map_or(0.0, |x| x.leaks.len() as f64)
        })
        .collect();
    put!(
        out,
        "<figure class=\"loop-suite\" data-suite=\"{}\"><figcaption><b class=\"id\">{}</b> pass {} · fail {} · crash {} · hang {} · flaky {} · trials with leaks {}{}</figcaption>",
        esc(&s.id),
        esc(&s.id),
        s.pass,
        s.fail,
        s.crash,
        s.hang,
        s.flaky,
        s.trials_with_leaks,
        s.growing
            .as_deref()
            .map(|g| format!("<div class=\"problem\">{}</div>", esc(g)))
            .unwrap_or_default()
    );
    let peaks = |v: Vec<f64>| -> Option<Vec<f64>> { (v.len() == xs.len()).then_some(v) };
    let charts = [
        ("leaked", Unit::Count, peaks(leaks)),
        (
            "peak processes",
            Unit::Count,
            peaks(s.peak_processes.iter().map(|&p| p as f64).collect()),
        ),
        (
            "peak memory",
            Unit::Bytes,
            peaks(s.peak_memory_bytes.iter().map(|&p| p as f64).collect()),
        ),
    ];
    for (label, unit, values) in charts {
        if let Some(v) = values.filter(|v| !v.is_empty()) {
            out.push_str(&trial_chart(label, unit, xs, v, true));
        }
    }
    out.push_str("</figure>");
}

/// Each attempt's own timeline: processes and orphans, and memory.
fn timelines_section(out: &mut String, r: &Report) {
    let with: Vec<(&SuiteReport, &Attempt, &Timeline)> = r
        .suites
        .iter()
        .flat_map(|s| s.attempts.iter().map(move |a| (s, a)))
        .filter_map(|(s, a)| {
            a.timeline
                .as_ref()
                .filter(|t| !t.is_empty())
                .map(|t| (s, a, t))
        })
        .collect();
    if with.is_empty() {
        return;
    }
    out.push_str("<section id=\"timelines\"><h2>Attempt timelines</h2>");
    for (s, a, t) in with {
        let clean = s.status == SuiteStatus::Pass && s.leaks.is_empty();
        put!(
            out,
            "<details class=\"timeline\"{}><summary>{} <span class=\"id\">{}</span> attempt {} ({} samples every {})</summary><div class=\"charts\">",
            if clean { "" } else { " open" },
            badge(s.status),
            esc(&s.id),
            a.number,
            t.len(),
            short(Duration::from_millis(t.interval_ms))
        );
        attempt_charts(out, t);
        out.push_str("</div></details>");
    }
    out.push_str("</section>\n");
}

fn attempt_charts(out: &mut String, t: &Timeline) {
    let xs: Vec<f64> = (0..t.len()).map(|i| t.at_ms(i) as f64).collect();
    let count = |v: &[u32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let mut counts = vec![Series {
        label: "processes".into(),
        values: count(&t.processes),
        class: "s0",
    }];
    if t.orphans.len() == t.len() {
        counts.push(Series {
            label: "orphans".into(),
            values: count(&t.orphans),
            class: "s1",
        });
    }
    let mut charts = vec![Chart {
        y_label: "processes".into(),
        unit: Unit::Count,
        x_axis: XAxis::TimeMs,
        xs: xs.clone(),
        series: counts,
        fit: None,
        small: true,
    }];
    if t.memory_bytes.len() == t.len() {
        charts.push(Chart {
            y_label: "memory".into(),
            unit: Unit::Bytes,
            x_axis: XAxis::TimeMs,
            xs,
            series: vec![Series {
                label: "memory".into(),
                values: t.memory_bytes.iter().map(|&x| x as f64).collect(),
                class: "s2",
            }],
            fit: None,
            small: true,
        });
    }
    for c in &charts {
        let legend: String = c
            .series
            .iter()
            .map(|s| format!("<span class=\"key {}\">{}</span>", s.class, esc(&s.label)))
            .collect();
        put!(
            out,
            "<figure><figcaption>{legend}</figcaption>{}</figure>",
            svg::render(c)
        );
    }
}

#[cfg(test)]
#[path = "html_tests.rs"]
mod tests;
