//! The run's options as values: what the command line (`cli`) and the
//! configuration (`config`) resolve into, validated before the build. No
//! parsing of the command line happens here and nothing here does I/O: the
//! engine takes these values and nothing of clap's.
//!
//! The enums derive clap's `ValueEnum` so that `--help` lists their variants
//! from one place; they are plain values everywhere else.

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// Bounds of the counts (the README's Reap flags table says them too).
pub const MAX_HANG_RETRIES: u64 = 100;
pub const MAX_JOBS: u64 = 1024;
pub const MAX_LOOP: u64 = 1_000_000;
pub const MAX_ATTRIBUTE_TESTS: u64 = 1_000_000;
/// The kernel's own limit on pids (`PID_MAX_LIMIT`).
pub const MAX_PIDS: u64 = 4_194_304;
pub const MAX_TAIL_LINES: u64 = 100_000;

/// Is `v` within `lo..=hi`? The error says the bounds.
pub fn check_range(v: u64, lo: u64, hi: u64) -> Result<(), String> {
    if v < lo || v > hi {
        return Err(format!("{v} is out of range: from {lo} to {hi}"));
    }
    Ok(())
}

/// How each suite is contained (`--isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum IsolationMode {
    /// cgroup v2 when a leaf can really be created and joined here, else process group (announced)
    #[default]
    Auto,
    /// A fresh cgroup v2 leaf per suite; an error where that cannot work
    Cgroup,
    /// Own process group + child subreaper + environment tag
    ProcessGroup,
}

/// `--color`: as cargo's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Color {
    pub fn as_str(self) -> &'static str {
        match self {
            Color::Auto => "auto",
            Color::Always => "always",
            Color::Never => "never",
        }
    }
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

/// `--fail-on WHAT`: what else fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Files a suite leaves in its private TMPDIR
    Tmp,
}

/// Time limits of one suite (flags over its configuration over the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Duration,
    pub grace: Duration,
    /// How many times a hung suite is run again.
    pub hang_retries: u32,
    /// How long a suite's children may take to exit on their own after it.
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

/// Limits some of which are set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartialLimits {
    pub timeout: Option<Duration>,
    pub grace: Option<Duration>,
    pub hang_retries: Option<u32>,
    pub settle: Option<Duration>,
}

impl PartialLimits {
    /// `self` where set, else `under`.
    pub fn over(self, under: Limits) -> Limits {
        Limits {
            timeout: self.timeout.unwrap_or(under.timeout),
            grace: self.grace.unwrap_or(under.grace),
            hang_retries: self.hang_retries.unwrap_or(under.hang_retries),
            settle: self.settle.unwrap_or(under.settle),
        }
    }
}

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

    /// Keep the items of this share (items sorted by id).
    pub fn select<T>(&self, items: Vec<T>, id: impl Fn(&T) -> &str) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(i, s)| {
                let k = if self.by_hash {
                    fnv1a(id(s).as_bytes())
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
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `--loop N`, `--loop-duration D` and when to stop early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoopOptions {
    pub count: Option<u32>,
    pub duration: Option<Duration>,
    pub until_leak: bool,
    pub until_failure: bool,
}

impl LoopOptions {
    /// Several trials were asked for.
    pub fn looping(&self) -> bool {
        self.count.is_some() || self.duration.is_some()
    }

    /// `--until-*` needs a loop; `--loop 0` runs nothing.
    pub fn validate(&self) -> Result<(), String> {
        if (self.until_leak || self.until_failure) && !self.looping() {
            return Err(
                "--until-leak and --until-failure go with --loop N or --loop-duration D".into(),
            );
        }
        if self.count == Some(0) {
            return Err("--loop must be at least 1".into());
        }
        Ok(())
    }
}

/// The options of `cargo reap test` and `cargo reap run` alike, as given on
/// the command line (the configuration fills what is not given; see
/// [`crate::config`]).
#[derive(Debug, Clone, Default)]
pub struct ReapOptions {
    pub isolation: IsolationMode,
    /// Flags over every suite's configured limits.
    pub limits: PartialLimits,
    pub attribute: Option<AttributeMode>,
    pub attribute_max_tests: Option<usize>,
    pub attribute_max_time: Option<Duration>,
    pub jobs: Option<usize>,
    pub looping: LoopOptions,
    pub partition: Option<Partition>,
    pub fail_on: Vec<FailOn>,
    pub max_pids: Option<u64>,
    pub junit: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub html: Option<PathBuf>,
    /// `--no-capture`: stream suite output (libtest's `--nocapture`).
    pub no_capture: bool,
    /// `--fail-fast` (and not `--no-fail-fast` after it).
    pub fail_fast: bool,
    pub quiet: bool,
    pub verbose: bool,
    pub tail_lines: usize,
    /// `--systemd-scope`: where the run's cgroup is not writable, run again
    /// inside a delegated systemd scope.
    pub systemd_scope: bool,
    /// `--no-stacks`: no stack capture at a hang-kill.
    pub no_stacks: bool,
    /// `cargo reap run --watch DURATION` and its flags (`None` otherwise).
    pub watch: Option<WatchOptions>,
}

/// `cargo reap run --watch DURATION [--sample-every D] [--max-growth SPEC]
/// [--watch-dir DIR]…`, as given (the configuration fills the rest).
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    pub duration: Duration,
    pub sample_every: Option<Duration>,
    /// `KEY=RATE,…`, checked (see `reap_report::trend::MaxGrowth::with`).
    pub max_growth: Option<String>,
    pub dirs: Vec<PathBuf>,
}

/// The default `--sample-every`: a hundredth of the watch (100 samples),
/// within 100 ms and 10 s.
pub fn default_sample_every(watch: Duration) -> Duration {
    (watch / 100).clamp(Duration::from_millis(100), Duration::from_secs(10))
}

impl ReapOptions {
    /// What can be checked before a long build.
    pub fn validate(&self) -> Result<(), String> {
        if self.jobs == Some(0) {
            return Err("--jobs must be at least 1".into());
        }
        self.looping.validate()
    }

    pub fn fail_on_tmp(&self) -> bool {
        self.fail_on.contains(&FailOn::Tmp)
    }
}

/// How cargo is run for `cargo reap test`: the argument lists the command
/// line turned the user's cargo flags into, and the few values discovery
/// needs beside them.
#[derive(Debug, Clone, Default)]
pub struct CargoInvocation {
    /// `test --no-run --message-format=… [the user's selection and build flags]`.
    pub build: Vec<String>,
    /// The flags `cargo metadata` shares with the build (`--config`, `-Z`,
    /// `--locked`, `--frozen`, `--offline`).
    pub common: Vec<String>,
    /// The build's flags without package/target selection, features,
    /// `--no-run` and `--message-format`: what a doctest run (`cargo test
    /// --doc --package SPEC …`) keeps.
    pub doc_flags: Vec<String>,
    /// `--message-format` asked for cargo's JSON messages on stdout.
    pub echo_json: bool,
    pub manifest_path: Option<PathBuf>,
    pub target_dir: Option<PathBuf>,
    pub target: Option<String>,
    /// `--config` values (for the target runner and `[env]`).
    pub config: Vec<String>,
    /// `--features` as given.
    pub features: Vec<String>,
    /// `--doc`: only doctests.
    pub doc_only: bool,
    /// The selection names targets (`--lib`, `--test NAME`, ...): `cargo
    /// test` then runs no doctests.
    pub selects_targets: bool,
    /// `--no-run`: build and name the executables only.
    pub no_run: bool,
    pub color: Option<Color>,
}

impl CargoInvocation {
    /// `test --doc --package SPEC [--features F] [the user's other flags] --`.
    pub fn doc_args(&self, spec: &str, features: &[String]) -> Vec<String> {
        let mut v: Vec<String> = ["test", "--doc", "--package", spec]
            .map(String::from)
            .to_vec();
        if !features.is_empty() {
            v.push("--features".into());
            v.push(features.join(","));
        }
        v.extend(self.doc_flags.iter().cloned());
        v.push("--".into());
        v
    }
}

/// `cargo reap test`, resolved.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    pub cargo: CargoInvocation,
    pub reap: ReapOptions,
    /// What every test binary gets (TESTNAME, the arguments after `--`,
    /// `--color`, `--nocapture`).
    pub test_args: Vec<String>,
    /// Flags given with `--no-run` that it does not use (named in a warning).
    pub unused_with_no_run: Vec<&'static str>,
}

/// `cargo reap run -- CMD ARGS`, resolved.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub reap: ReapOptions,
    pub program: String,
    pub args: Vec<String>,
}

/// Output is streamed: `--no-capture`, or libtest's own `--nocapture` after `--`.
pub fn streams(no_capture: bool, test_args: &[String]) -> bool {
    no_capture
        || test_args
            .iter()
            .any(|a| a == "--nocapture" || a == "--no-capture")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cover_every_suite_exactly_once() {
        let ids: Vec<String> = (0..23).map(|i| format!("p::s{i}")).collect();
        for kind in ["slice", "hash"] {
            let mut seen: Vec<String> = Vec::new();
            for m in 1..=4 {
                let p = Partition::parse(&format!("{kind}:{m}/4")).unwrap();
                let part = p.select(ids.clone(), |s| s.as_str());
                seen.extend(part);
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
