//! Running a set of suites: `--jobs N` at once, each in its own containment
//! (so survivors are still attributed exactly), a line per suite as it ends.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;

use crate::discover::Suite;
use crate::report::schema::SuiteReport;
use crate::report::terminal;
use crate::suite::{self, RunContext};

/// `--partition slice:M/N | hash:M/N`: which share of the suites this
/// machine runs (the CI matrix is the distributed engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub by_hash: bool,
    /// 1-based.
    pub m: u32,
    pub n: u32,
}

impl Partition {
    pub fn parse(s: &str) -> Result<Partition, String> {
        let err =
            || format!("`{s}` is not a partition; use slice:M/N or hash:M/N with 1 <= M <= N");
        let (kind, mn) = s.split_once(':').ok_or_else(err)?;
        let (m, n) = mn.split_once('/').ok_or_else(err)?;
        let (m, n): (u32, u32) = (m.parse().map_err(|_| err())?, n.parse().map_err(|_| err())?);
        let by_hash = match kind {
            "hash" => true,
            "slice" => false,
            _ => return Err(err()),
        };
        if m == 0 || n == 0 || m > n {
            return Err(err());
        }
        Ok(Partition { by_hash, m, n })
    }

    /// Keep the suites of this share (suites sorted by id).
    pub fn select(&self, suites: Vec<Suite>) -> Vec<Suite> {
        suites
            .into_iter()
            .enumerate()
            .filter(|(i, s)| {
                let k = if self.by_hash {
                    fnv1a(s.id.as_bytes())
                } else {
                    *i as u64
                };
                k % u64::from(self.n) == u64::from(self.m - 1)
            })
            .map(|(_, s)| s)
            .collect()
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.by_hash { "hash" } else { "slice" };
        write!(f, "{kind}:{}/{}", self.m, self.n)
    }
}

/// FNV-1a: a hash that is the same on every machine and every release.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How suites are run and shown.
pub struct ScheduleOptions {
    pub jobs: usize,
    pub tail_lines: usize,
    /// Print a line per suite (off in `--loop`, which prints per trial).
    pub per_suite_lines: bool,
    /// Only suites that did not pass cleanly get their line.
    pub only_problems: bool,
    /// `--fail-fast`: no suite starts once one failed, crashed, hung or errored.
    pub fail_fast: bool,
    /// An interactive progress bar may be drawn (not while output is streamed).
    pub progress_bar: bool,
}

/// Run every suite (stopping early on an interrupt); reports in suite order.
/// A suite that cannot be judged is a report with status `error`: it never
/// stops the other suites.
pub fn run_suites(
    ctx: &RunContext<'_>,
    suites: &[Suite],
    opts: &ScheduleOptions,
) -> Vec<SuiteReport> {
    let queue: Mutex<VecDeque<usize>> = Mutex::new((0..suites.len()).collect());
    let results: Mutex<Vec<Option<SuiteReport>>> = Mutex::new(vec![None; suites.len()]);
    let workers = opts.jobs.clamp(1, suites.len().max(1));
    let progress = Progress::new(suites.len(), opts.per_suite_lines && opts.progress_bar);
    let failed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                if crate::interrupt::get().is_some_and(|i| i.signal().is_some()) {
                    return;
                }
                if opts.fail_fast && failed.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Some(i) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else {
                    return;
                };
                progress.started(&suites[i].id);
                let r = suite::run_suite(ctx, &suites[i], i);
                progress.finished(&suites[i].id);
                use crate::report::schema::SuiteStatus;
                if matches!(
                    r.status,
                    SuiteStatus::Fail | SuiteStatus::Crash | SuiteStatus::Hang | SuiteStatus::Error
                ) {
                    failed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                let clean = r.status == crate::report::schema::SuiteStatus::Pass
                    && r.leaks.is_empty()
                    && r.problems.is_empty();
                if opts.per_suite_lines && !(opts.only_problems && clean) {
                    progress.print(&suite_block(&r, opts.tail_lines));
                }
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    progress.done();
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// The suite's line and details, as one block.
fn suite_block(r: &SuiteReport, tail_lines: usize) -> String {
    let tail = tail_of(r, tail_lines);
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
    running: Mutex<Vec<String>>,
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
            running: Mutex::new(Vec::new()),
        }
    }

    fn started(&self, id: &str) {
        if let Some(bar) = &self.bar {
            let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
            r.push(id.to_string());
            bar.set_message(format!("running: {}", r.join(", ")));
        }
    }

    fn finished(&self, id: &str) {
        if let Some(bar) = &self.bar {
            let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
            r.retain(|x| x != id);
            bar.set_message(format!("running: {}", r.join(", ")));
            bar.inc(1);
        }
    }

    fn print(&self, block: &str) {
        let write = || {
            if let Err(e) = std::io::stderr().lock().write_all(block.as_bytes()) {
                tracing::debug!("stderr unavailable: {e}");
            }
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn suite(id: &str) -> Suite {
        crate::discover::test_suite(id, "p", id, "test")
    }

    #[test]
    fn partitions_cover_every_suite_exactly_once() {
        let ids: Vec<String> = (0..23).map(|i| format!("p::s{i}")).collect();
        for kind in ["slice", "hash"] {
            let mut seen: Vec<String> = Vec::new();
            for m in 1..=4 {
                let p = Partition::parse(&format!("{kind}:{m}/4")).unwrap();
                let part = p.select(ids.iter().map(|i| suite(i)).collect());
                seen.extend(part.into_iter().map(|s| s.id));
            }
            seen.sort();
            let mut all = ids.clone();
            all.sort();
            assert_eq!(seen, all, "{kind}");
        }
    }

    #[test]
    fn rejects_bad_partitions() {
        for bad in ["slice:0/3", "slice:4/3", "hash:1", "mod:1/2", "slice:a/b"] {
            assert!(Partition::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Partition::parse("hash:2/5").unwrap().to_string(),
            "hash:2/5"
        );
    }
}
