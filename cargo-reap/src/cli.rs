//! Command-line interface (clap). Parsing only: the engine lives in [`crate::engine`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::duration::{parse_duration, parse_timeout};

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

/// A whole number within `LO..=HI` (a clap value parser).
pub fn bounded<T: TryFrom<u64>, const LO: u64, const HI: u64>(s: &str) -> Result<T, String> {
    let v: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number from {LO} to {HI}"))?;
    check_range(v, LO, HI)?;
    T::try_from(v).map_err(|_| format!("{v} does not fit on this platform"))
}

const EXIT_CODES: &str = "\
EXIT CODES:
    0    every suite passed and nothing leaked
    100  a suite failed or crashed, or could not be judged (status error)
    101  the build failed
    102  a suite hung (every attempt timed out)
    103  processes leaked, and that was the only problem
    4    no tests to run: a filter matched no test of any suite
    2    usage or configuration error; also internal errors (a panic, a report
         that could not be written, cargo-reap's own cleanup failing)
    130  interrupted by SIGINT (143 SIGTERM, 129 SIGHUP); the report is partial
  When several apply, the first in the order 101, 100, 102, 103, 4 wins.
  `cargo reap run`: the command's own exit code, unless it hung (102),
  leaked (103) or could not be judged (100).
  The summary line ends with the exit code returned.";

/// Find, attribute and reap the processes your tests leave behind.
#[derive(Debug, Parser)]
#[command(name = "cargo-reap", bin_name = "cargo reap", version = env!("CARGO_REAP_VERSION"), about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the test binaries and run each one (a suite) in its own containment
    /// under a timeout; report and reap every process that outlives its suite.
    ///
    /// Each package's doctests are a suite too (`PKG::doctest/LIB`), run as
    /// `cargo test --doc` would: by default, or alone with `--doc`.
    #[command(after_help = EXIT_CODES)]
    Test(Box<TestArgs>),
    /// Remove leftovers of dead earlier runs: cgroup leaves (`cargo-reap.*`)
    /// and processes tagged `CARGO_REAP_SUITE` whose runner is gone.
    /// Every `cargo reap test` does this at start.
    Clean(CleanArgs),
    /// Run any command with the same containment, timeout, hang retry,
    /// survivor count and forensics, exit codes and reports: a pytest run, a
    /// shell script, or a test binary as a cargo target runner
    /// (`CARGO_TARGET_<TRIPLE>_RUNNER="cargo-reap run --"`).
    #[command(after_help = EXIT_CODES)]
    Run(Box<RunArgs>),
    /// Explain why process PID is still alive (read-only): reap-probe's
    /// forensics, `--tree` for its descendants too, `--json`. The same as the
    /// `reap-probe` binary; `cargo reap probe --help` lists its flags.
    #[command(disable_help_flag = true)]
    Probe(ProbeArgs),
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// `PID [--tree] [--json] [--width N] [CONTEXT]`, as `reap-probe` takes them
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub reap: ReapArgs,

    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Only list what would be removed
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Only run tests whose name contains TESTNAME (libtest's filter, as
    /// `cargo test TESTNAME`; passed to every test binary)
    #[arg(value_name = "TESTNAME")]
    pub testname: Option<String>,

    #[command(flatten)]
    pub cargo: CargoArgs,

    #[command(flatten)]
    pub reap: ReapArgs,

    /// Arguments passed to every test binary (libtest filters, `--ignored`,
    /// `--test-threads N`, ...), as with `cargo test -- ARGS`.
    #[arg(last = true, value_name = "TEST_ARGS")]
    pub test_args: Vec<String>,
}

/// Selection and build flags, passed through to `cargo test --no-run`.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Package and target selection (as cargo test)")]
pub struct CargoArgs {
    /// Package(s) to test
    #[arg(short = 'p', long = "package", value_name = "SPEC")]
    pub package: Vec<String>,
    /// Test all packages in the workspace
    #[arg(long)]
    pub workspace: bool,
    /// Exclude packages from the test
    #[arg(long, value_name = "SPEC")]
    pub exclude: Vec<String>,
    /// Test only this package's library unit tests
    #[arg(long)]
    pub lib: bool,
    /// Test all binaries
    #[arg(long)]
    pub bins: bool,
    /// Test only the specified binary
    #[arg(long, value_name = "NAME")]
    pub bin: Vec<String>,
    /// Test all integration tests
    #[arg(long)]
    pub tests: bool,
    /// Test only the specified integration test target
    #[arg(long = "test", value_name = "NAME")]
    pub test: Vec<String>,
    /// Test all examples
    #[arg(long)]
    pub examples: bool,
    /// Test all benches
    #[arg(long)]
    pub benches: bool,
    /// Test all targets (doctests excluded)
    #[arg(long)]
    pub all_targets: bool,
    /// Test only the libraries' documentation (doctests)
    #[arg(long)]
    pub doc: bool,
    /// Space or comma separated list of features to activate
    #[arg(short = 'F', long, value_name = "FEATURES")]
    pub features: Vec<String>,
    /// Activate all available features
    #[arg(long)]
    pub all_features: bool,
    /// Do not activate the `default` feature
    #[arg(long)]
    pub no_default_features: bool,
    /// Build artifacts in release mode, with optimizations
    #[arg(long, short = 'r')]
    pub release: bool,
    /// Build artifacts with the specified profile
    #[arg(long, value_name = "PROFILE-NAME")]
    pub profile: Option<String>,
    /// Directory for all generated artifacts
    #[arg(long, value_name = "DIRECTORY")]
    pub target_dir: Option<PathBuf>,
    /// Path to Cargo.toml
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Assert that `Cargo.lock` will remain unchanged
    #[arg(long)]
    pub locked: bool,
    /// Equivalent to specifying both --locked and --offline
    #[arg(long)]
    pub frozen: bool,
    /// Run without accessing the network
    #[arg(long)]
    pub offline: bool,
    /// Number of parallel build jobs (cargo's `-j`)
    #[arg(short = 'j', long = "build-jobs", value_name = "N")]
    pub build_jobs: Option<String>,
    /// Build for the target triple; cargo's target runner for it
    /// (`CARGO_TARGET_<TRIPLE>_RUNNER`, `[target.<triple>].runner`,
    /// `[target.'cfg(..)'].runner`) runs each suite, inside its containment
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
    /// Compile, but don't run tests (lists the test executables)
    #[arg(long)]
    pub no_run: bool,
    /// Coloring of cargo's build output, of cargo-reap's own lines and of the
    /// test binaries' output (`--color` to libtest)
    #[arg(long, value_name = "WHEN", value_enum)]
    pub color: Option<ColorArg>,
    /// Cargo's build output: human, short, json (cargo's JSON messages on
    /// stdout), or json-diagnostic-short / json-diagnostic-rendered-ansi /
    /// json-render-diagnostics (with json, comma-separated)
    #[arg(long, value_name = "FMT")]
    pub message_format: Vec<String>,
    /// Override a cargo configuration value (`KEY=VALUE` or a TOML file),
    /// for the build and for the target runner
    #[arg(long, value_name = "KEY=VALUE|PATH")]
    pub config: Vec<String>,
    /// Unstable (nightly-only) flags to cargo, passed through
    #[arg(short = 'Z', value_name = "FLAG")]
    pub unstable: Vec<String>,
}

/// `--color`: as cargo's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

impl ColorArg {
    pub fn as_str(self) -> &'static str {
        match self {
            ColorArg::Auto => "auto",
            ColorArg::Always => "always",
            ColorArg::Never => "never",
        }
    }
}

/// How each suite is contained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum IsolationArg {
    /// cgroup v2 when a leaf can really be created and joined here, else process group (announced)
    #[default]
    Auto,
    /// A fresh cgroup v2 leaf per suite; an error where that cannot work
    Cgroup,
    /// Own process group + child subreaper + environment tag
    ProcessGroup,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Reap options")]
pub struct ReapArgs {
    /// Containment for each suite
    #[arg(long, value_enum, default_value_t = IsolationArg::Auto)]
    pub isolation: IsolationArg,
    /// Time limit per suite attempt (humantime `5m`, `90s` or bare seconds; above 0, at most 365d) [default: 300s]
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// After the timeout: SIGTERM, then SIGKILL whatever is left after this grace [default: 5s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub grace: Option<Duration>,
    /// How many times a hung (timed out) suite is run again (0-100); failures are never retried [default: 1]
    #[arg(long, value_name = "N", value_parser = bounded::<u32, 0, MAX_HANG_RETRIES>)]
    pub hang_retries: Option<u32>,
    /// After a suite's binary exits, how long its children may take to exit on their own [default: 100ms]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub settle: Option<Duration>,
    /// Test-level attribution of leaks: re-run each test of a leaking suite alone [default: auto]
    #[arg(long, value_enum)]
    pub attribute: Option<crate::suite::settings::AttributeMode>,
    /// With `--attribute auto`: at most this many tests re-run per leaking suite [default: 20]
    #[arg(long, value_name = "N", value_parser = bounded::<usize, 0, MAX_ATTRIBUTE_TESTS>)]
    pub attribute_max_tests: Option<usize>,
    /// With `--attribute auto`: stop starting re-runs of a suite after this long [default: 60s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub attribute_max_time: Option<Duration>,
    /// Suites run at once (1-1024), each in its own containment (default: available CPUs)
    #[arg(long, value_name = "N", value_parser = bounded::<usize, 1, MAX_JOBS>)]
    pub jobs: Option<usize>,
    /// Build once, then run the selected suites N times (hunting leaks that appear one run in ten)
    #[arg(long = "loop", value_name = "N", value_parser = bounded::<u32, 1, MAX_LOOP>)]
    pub loop_count: Option<u32>,
    /// Loop until this much time has passed (instead of, or as a cap on, --loop N)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub loop_duration: Option<Duration>,
    /// With --loop: stop at the first trial that leaks (its full forensics are kept)
    #[arg(long)]
    pub until_leak: bool,
    /// With --loop: stop at the first trial with a failed, crashed or hung suite
    #[arg(long)]
    pub until_failure: bool,
    /// Run only a share of the suites: `slice:M/N` (every Nth by id) or
    /// `hash:M/N` (by a stable hash of the id), M in 1..=N — for CI matrices
    #[arg(long, value_name = "KIND:M/N", value_parser = crate::schedule::Partition::parse)]
    pub partition: Option<crate::schedule::Partition>,
    /// Also fail on files a suite leaves in its private TMPDIR (`--fail-on tmp`);
    /// they are always reported and removed
    #[arg(long, value_name = "WHAT", value_parser = ["tmp"])]
    pub fail_on: Vec<String>,
    /// Cap each suite's process count (cgroup `pids.max`, where the pids
    /// controller can be enabled; announced when it cannot)
    #[arg(long, value_name = "N", value_parser = bounded::<u64, 1, MAX_PIDS>)]
    pub max_pids: Option<u64>,
    /// Write a JUnit XML report (one testsuite per suite; leaks and hangs as failing test cases)
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the machine-readable report (schema version 1) to this path
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Stream suite output to stdout as it comes (still logged and tracked per
    /// test); passes `--nocapture` to libtest, as `cargo test -- --nocapture`.
    /// Suites then run one at a time unless `--jobs N` is given
    #[arg(long, visible_alias = "nocapture")]
    pub no_capture: bool,
    /// Run every suite whatever fails (the default: a leak gate wants every
    /// suite's leaks); accepted for `cargo test` compatibility
    #[arg(long, overrides_with = "fail_fast")]
    pub no_fail_fast: bool,
    /// Start no new suite once one failed, crashed, hung or errored
    /// (`cargo test`'s default)
    #[arg(long, overrides_with = "no_fail_fast")]
    pub fail_fast: bool,
    /// Only suites with a problem get a line (the summary line is always printed)
    #[arg(short, long)]
    pub quiet: bool,
    /// More diagnostics (tracing at debug level; RUST_LOG overrides)
    #[arg(short, long)]
    pub verbose: bool,
    /// Lines of captured output shown for a failed, crashed or hung suite
    #[arg(long, value_name = "N", default_value_t = 40, value_parser = bounded::<usize, 0, MAX_TAIL_LINES>)]
    pub tail_lines: usize,
}

/// libtest's flags (`BINARY --help`) that `cargo test` only takes after
/// `--`, with whether each takes a value. (`--test`, `--quiet`, `--color`,
/// `--nocapture` are also flags of `cargo reap test`.)
const LIBTEST_FLAGS: &[(&str, bool)] = &[
    ("--exact", false),
    ("--ignored", false),
    ("--include-ignored", false),
    ("--skip", true),
    ("--test-threads", true),
    ("--show-output", false),
    ("--list", false),
    ("--format", true),
    ("--logfile", true),
    ("--force-run-in-process", false),
    ("--bench", false),
    ("--shuffle", false),
    ("--shuffle-seed", true),
    ("--report-time", false),
    ("--ensure-time", false),
    ("--exclude-should-panic", false),
];

/// The one line for a flag clap does not know: a libtest flag is shown
/// after `--` (never clap's `-- --flag` tip for a flag libtest would refuse).
pub fn unknown_flag(e: &clap::Error, args: &[std::ffi::OsString]) -> String {
    use clap::error::{ContextKind, ContextValue};
    let given = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::from("?"),
    };
    let name = given.split_once('=').map_or(given.as_str(), |(n, _)| n);
    let test = args.get(1).is_some_and(|a| a == "test");
    let libtest = LIBTEST_FLAGS.iter().find(|(f, _)| *f == name);
    if let (true, Some((flag, takes_value))) = (test, libtest) {
        // As typed: with its value when it takes one.
        let typed: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let at = typed
            .iter()
            .position(|a| a == flag || a.starts_with(&format!("{flag}=")));
        let mut shown = at.map_or_else(|| given.clone(), |i| typed[i].clone());
        if let (true, Some(i)) = (*takes_value && !shown.contains('='), at) {
            if let Some(v) = typed.get(i + 1) {
                shown = format!("{shown} {v}");
            }
        }
        return format!(
            "`{flag}` is a test binary flag: pass test binary flags after `--`: cargo reap test -- {shown}"
        );
    }
    let hint = match e.get(ContextKind::SuggestedArg) {
        Some(ContextValue::String(s)) => format!(" (did you mean `{s}`?)"),
        _ => String::new(),
    };
    format!("unknown flag `{given}`{hint}: see `cargo reap --help`")
}
