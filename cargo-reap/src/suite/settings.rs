//! The values a run hands its suites: time limits, how output is handled,
//! how leaks are attributed. Imports nothing of the crate, so the modules
//! that fill them in (flags, configuration, discovery) do not import the
//! machinery that runs suites.

use std::time::Duration;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// Time limits of a suite (command line, configuration, defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Duration,
    pub grace: Duration,
    pub hang_retries: u32,
    pub settle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(300),
            grace: Duration::from_secs(5),
            hang_retries: 1,
            settle: Duration::from_millis(100),
        }
    }
}

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
}

/// `--attribute`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttributeMode {
    /// Re-run the tests of leaking suites alone, within the budget
    #[default]
    Auto,
    /// Re-run every test of leaking suites alone, whatever it costs
    Rerun,
    /// No attribution
    Off,
}

#[derive(Debug, Clone)]
pub struct AttributeOptions {
    pub mode: AttributeMode,
    pub max_tests: usize,
    pub max_time: Duration,
}
