//! The event stream of a run, and the reporter that consumes it.
//!
//! The run (engine, schedule) never calls a renderer: it sends [`Event`]s as
//! things happen and hands the finished [`Report`] over once. The
//! [`Reporter`] turns them into the terminal's lines and progress bar and
//! the `--junit` / `--json` / `--html` files, in that order (a report that cannot be
//! written makes the exit code 2, and the summary line says the final code).

use std::io::Write;
use std::sync::Mutex;

use super::output::ReportPath;
use super::terminal;
use reap_report::exit;
use reap_report::{Report, SuiteReport, SuiteStatus, Trial};

/// What happened, as it happened.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A trial starts with this many suites to run.
    TrialStarted { suites: usize },
    /// A suite's first attempt starts.
    SuiteStarted { id: &'a str },
    /// A suite was judged (its attempts, leaks and attribution are done).
    SuiteFinished { report: &'a SuiteReport },
    /// No further suite of this trial will start.
    SuitesDone,
    /// A trial ended (its unattributed leaks are collected).
    TrialFinished { trial: &'a Trial },
    /// `--watch`: a sample of the watched command was taken (`elapsed`
    /// since its start).
    Sampled {
        timeline: &'a reap_report::Timeline,
        elapsed: std::time::Duration,
        /// The watch's DURATION.
        watch: std::time::Duration,
    },
}

/// Where the run sends its events (the schedule's workers share it).
pub trait EventSink: Sync {
    fn event(&self, e: Event<'_>);
}

/// How the terminal shows the run.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminalOptions {
    /// Lines of a failed suite's log shown under it.
    pub tail_lines: usize,
    /// A line per suite (off in `--loop`, which shows a line per trial).
    pub per_suite_lines: bool,
    /// Only suites that did not pass cleanly get their line.
    pub only_problems: bool,
    /// An interactive progress bar may be drawn (not while output is streamed).
    pub progress_bar: bool,
    /// `--loop N`: trial lines say "of N".
    pub loop_count: Option<u32>,
    /// Several trials: a line per trial.
    pub looping: bool,
}

/// The consumer of a run's events: the terminal, then the report files.
pub struct Reporter {
    terminal: TerminalOptions,
    progress: Mutex<Option<Progress>>,
    junit: Option<ReportPath>,
    json: Option<ReportPath>,
    /// `--watch`: the live status line.
    live: Mutex<terminal::LiveLine>,
    html: Option<ReportPath>,
}

impl Reporter {
    pub fn new(
        terminal: TerminalOptions,
        junit: Option<ReportPath>,
        json: Option<ReportPath>,
    ) -> Reporter {
        Reporter {
            terminal,
            progress: Mutex::new(None),
            junit,
            json,
            live: Mutex::new(terminal::LiveLine::default()),
            html: None,
        }
    }

    /// Also write the `--html` page.
    pub fn with_html(mut self, html: Option<ReportPath>) -> Reporter {
        self.html = html;
        self
    }

    fn with_progress(&self, f: impl FnOnce(&mut Option<Progress>)) {
        f(&mut self.progress.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// The end of the run: the leak table (and the loop table), the report
    /// files, the failures with rerun hints, and (`summary`) the summary
    /// line with the final exit code.
    pub fn run_finished(&self, report: &mut Report, summary: bool) {
        if let Some(w) = &report.watch {
            let interrupted = report.interrupted.is_some();
            line(terminal::watch_lines(w, interrupted).trim_end());
        }
        let table = terminal::leak_table(report);
        if !table.is_empty() {
            line(table.trim_end());
        }
        if let Some(ls) = &report.loop_summary {
            line(terminal::loop_table(ls).trim_end());
        }
        if let Some(out) = &self.junit {
            let written = super::junit::render(report)
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|xml| out.write(xml.as_bytes()));
            report_written(report, "JUnit", out, written);
        }
        if let Some(out) = &self.json {
            let written = serde_json::to_vec_pretty(&*report)
                .map_err(std::io::Error::from)
                .and_then(|mut json| {
                    json.push(b'\n');
                    out.write(&json)
                });
            report_written(report, "JSON", out, written);
        }
        if let Some(out) = &self.html {
            let written = out.write(super::html::render(report).as_bytes());
            report_written(report, "HTML", out, written);
        }
        let failing = terminal::failures_list(report);
        if !failing.is_empty() {
            line(failing.trim_end());
        }
        if let Some(none) = no_tests_line(report) {
            line(&none);
        }
        if summary {
            line(&terminal::summary_line(report));
        }
    }

    fn suite_finished(&self, r: &SuiteReport) {
        let t = &self.terminal;
        let cleared = self.live.lock().unwrap_or_else(|p| p.into_inner()).clear();
        print_block(&cleared);
        let clean = r.status == SuiteStatus::Pass && r.leaks.is_empty() && r.problems.is_empty();
        self.with_progress(|p| {
            if let Some(p) = p {
                p.finished(&r.id);
            }
        });
        if t.per_suite_lines && !(t.only_problems && clean) {
            let block = suite_block(r, t.tail_lines);
            self.with_progress(|p| match p {
                Some(p) => p.print(&block),
                None => print_block(&block),
            });
        }
    }
}

impl EventSink for Reporter {
    fn event(&self, e: Event<'_>) {
        let t = &self.terminal;
        match e {
            Event::TrialStarted { suites } => self.with_progress(|p| {
                *p = Some(Progress::new(suites, t.per_suite_lines && t.progress_bar));
            }),
            Event::SuiteStarted { id } => self.with_progress(|p| {
                if let Some(p) = p {
                    p.started(id);
                }
            }),
            Event::SuiteFinished { report } => self.suite_finished(report),
            Event::SuitesDone => self.with_progress(|p| {
                if let Some(p) = p.take() {
                    p.done();
                }
            }),
            Event::Sampled {
                timeline,
                elapsed,
                watch,
            } => {
                let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(text) = live.sampled(timeline, elapsed, watch) {
                    print_block(&text);
                }
            }
            Event::TrialFinished { trial } => {
                if t.looping {
                    line(&terminal::trial_line(trial, t.loop_count));
                }
            }
        }
    }
}

/// After writing a report: a failure is said and makes the exit code 2
/// (a CI gate must not pass without the report it asked for).
fn report_written(report: &mut Report, what: &str, out: &ReportPath, written: std::io::Result<()>) {
    if let Err(e) = written {
        line(&format!(
            "cargo-reap: error: could not write the {what} report to {}: {e}",
            out.path.display()
        ));
        report.exit_code = exit::USAGE;
    }
}

/// "no tests to run", when the filter matched no test (exit 4).
fn no_tests_line(report: &Report) -> Option<String> {
    (report.exit_code == exit::NO_TESTS).then(|| {
        format!(
            "cargo-reap: error: no tests to run: the filter matched none of the {} test(s) of {} suite(s) (exit {})",
            report.summary.tests.filtered_out,
            report.summary.suites,
            exit::NO_TESTS
        )
    })
}

/// Write a line to stderr (see [`print_block`]).
pub fn line(text: &str) {
    print_block(&format!("{text}\n"));
}

/// Write to stderr at once. A closed stderr must not stop the run (the JSON
/// report and exit code still carry the result), so the error is traced.
fn print_block(block: &str) {
    if let Err(e) = std::io::stderr().lock().write_all(block.as_bytes()) {
        tracing::debug!("stderr unavailable: {e}");
    }
}

/// The suite's line and details, as one block.
fn suite_block(r: &SuiteReport, tail_lines: usize) -> String {
    let tail = if terminal::shows_tail(r) {
        tail_of(r, tail_lines)
    } else {
        Vec::new()
    };
    let mut block = terminal::suite_line(r);
    block.push('\n');
    block.push_str(&terminal::suite_details(r, &tail));
    block
}

/// A progress bar on an interactive terminal (indicatif): suites done, which
/// are running. Plain lines instead when stderr is not a terminal or `CI` is
/// set; suite lines are printed above the bar either way.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    running: Vec<String>,
}

impl Progress {
    fn new(total: usize, enabled: bool) -> Progress {
        use std::io::IsTerminal;
        let interactive = enabled
            && std::io::stderr().is_terminal()
            && std::env::var_os("CI").is_none()
            && std::env::var("TERM").map_or(true, |t| t != "dumb");
        let bar = interactive.then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {pos}/{len} suites  {wide_msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            running: Vec::new(),
        }
    }

    fn started(&mut self, id: &str) {
        if let Some(bar) = &self.bar {
            self.running.push(id.to_string());
            bar.set_message(format!("running: {}", self.running.join(", ")));
        }
    }

    fn finished(&mut self, id: &str) {
        if let Some(bar) = &self.bar {
            self.running.retain(|x| x != id);
            bar.set_message(format!("running: {}", self.running.join(", ")));
            bar.inc(1);
        }
    }

    fn print(&self, block: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| print_block(block)),
            None => print_block(block),
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The last `lines` lines of a suite's log.
pub fn tail_of(r: &SuiteReport, lines: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Some(log) = &r.log else { return Vec::new() };
    // Only the end matters and the log may be huge: read its last 256 KiB.
    let read_end = || -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(log)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(256 * 1024)))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    match read_end() {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..]
                .iter()
                .map(|s| s.to_string())
                .collect()
        }
        Err(e) => vec![format!("(could not read {log}: {e})")],
    }
}
