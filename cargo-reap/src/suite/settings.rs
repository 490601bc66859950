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
}

#[derive(Debug, Clone)]
pub struct AttributeOptions {
    pub mode: AttributeMode,
    pub max_tests: usize,
    pub max_time: Duration,
}
