//! The values a run hands its suites: how output is handled, how leaks are
//! attributed (time limits and the attribution mode are [`crate::options`]
//! values). Imports nothing of the crate but those, so the engine that
//! fills them in does not import the machinery that runs suites.

use std::time::Duration;

pub use crate::options::{AttributeMode, Limits};

/// Supervision settings shared by every suite of a run.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Output goes straight to cargo-reap's stdout and stderr (`cargo reap
    /// run`): no log, no per-test tracking.
    pub no_capture: bool,
    /// Output is captured (log, per-test tracking) and also copied to stdout
    /// as it comes (`--no-capture` / `-- --nocapture` of `cargo reap test`).
    pub stream: bool,
    /// The target runner (`runner... BINARY ARGS`), from cargo's configuration.
    pub runner: Vec<String>,
    /// The binary understands libtest's `--list` (not so for `cargo reap run`).
    pub listable: bool,
    pub test_args: Vec<String>,
    pub attribute: AttributeOptions,
    /// At a hang-kill, capture the stacks of the suite's threads before the
    /// SIGTERM (`--no-stacks` / `stacks = false` turn it off).
    pub stacks: bool,
    /// What is sampled while a suite runs, how often.
    pub sampling: SampleSettings,
    /// `cargo reap run --watch DURATION`: the command is watched this long,
    /// then stopped (in place of the timeout; it is not a hang).
    pub watch: Option<Duration>,
}

/// What to sample while a suite runs, how often.
#[derive(Debug, Clone)]
pub struct SampleSettings {
    pub every: Duration,
    /// `--watch`: its duration (what a live view counts toward); zero without.
    pub watch: Duration,
    /// `watch-dirs`: directories whose files are counted at each sample.
    pub dirs: Vec<std::path::PathBuf>,
}

/// How often a suite attempt is sampled without `--watch`.
pub const SUITE_SAMPLE_EVERY: Duration = Duration::from_millis(100);

impl Default for SampleSettings {
    fn default() -> Self {
        SampleSettings {
            every: SUITE_SAMPLE_EVERY,
            watch: Duration::ZERO,
            dirs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AttributeOptions {
    pub mode: AttributeMode,
    pub max_tests: usize,
    pub max_time: Duration,
}
