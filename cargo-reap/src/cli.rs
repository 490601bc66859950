//! Command-line interface (clap): parsing, and turning the flags into
//! values ([`crate::options`]) and cargo's flags into cargo's argument lists.
//! Nothing here runs anything; the engine never sees a clap type.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use reap_report::exit::HELP as EXIT_CODES;

use crate::duration::{parse_duration, parse_timeout};
use crate::options::{
    check_range, AttributeMode, CargoInvocation, Color, FailOn, IsolationMode, LoopOptions,
    PartialLimits, Partition, ReapOptions, RunOptions, TestOptions, WatchOptions,
    MAX_ATTRIBUTE_TESTS, MAX_HANG_RETRIES, MAX_JOBS, MAX_LOOP, MAX_PIDS, MAX_TAIL_LINES,
};

/// A whole number within `LO..=HI` (a clap value parser).
pub fn bounded<T: TryFrom<u64>, const LO: u64, const HI: u64>(s: &str) -> Result<T, String> {
    let v: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number from {LO} to {HI}"))?;
    check_range(v, LO, HI)?;
    T::try_from(v).map_err(|_| format!("{v} does not fit on this platform"))
}

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
    /// `--stacks` adds where each of its threads is blocked (it stops each
    /// thread for a moment: ptrace).
    #[command(disable_help_flag = true)]
    Probe(ProbeArgs),
    /// Merge the `--json` reports of CI shards (`--partition`) and of several
    /// runs of one selection into one: the leak table and summary line, one
    /// `--json`, one `--junit`, the exit code of the whole. Reads files
    /// only; runs nothing.
    #[command(after_help = crate::merge::HELP)]
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The reports (`cargo reap test --json`), in order: several runs of one
    /// shard become its trials in this order
    #[arg(required = true, value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,
    /// Write the merged report (schema version 1) to this path
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write the merged JUnit XML report to this path
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the merged report as one self-contained HTML page (of a single
    /// report: re-renders it)
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Merge reports of different selections (other suites or test
    /// arguments) or of different `--partition` schemes anyway
    #[arg(long)]
    pub allow_mixed: bool,
    /// As the runs had it: also fail on files left in a suite's TMPDIR (`--fail-on tmp`)
    #[arg(long, value_name = "WHAT", value_enum)]
    pub fail_on: Vec<FailOn>,
}

impl MergeArgs {
    /// `cargo reap merge`'s flags as values.
    pub fn options(&self) -> crate::merge::MergeOptions {
        crate::merge::MergeOptions {
            reports: self.reports.clone(),
            json: self.json.clone(),
            junit: self.junit.clone(),
            html: self.html.clone(),
            allow_mixed: self.allow_mixed,
            fail_on_tmp: self.fail_on.contains(&FailOn::Tmp),
        }
    }
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// `PID [--tree] [--json] [--width N] [CONTEXT]`, as `reap-probe` takes them, and `--stacks`
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

    #[command(flatten)]
    pub watch: WatchArgs,

    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `cargo reap run --watch`: a sustained observation of a long-running command.
#[derive(Debug, Args)]
#[command(next_help_heading = "Watch options (cargo reap run)")]
pub struct WatchArgs {
    /// Run the command this long, sampling its containment (processes,
    /// orphans, threads, memory, open fds, watched directories), then stop
    /// it (SIGTERM, the grace, SIGKILL) and judge each series' trend; takes
    /// the place of --timeout
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub watch: Option<Duration>,
    /// With --watch: time between two samples [default: a hundredth of the watch, 100ms to 10s]
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub sample_every: Option<Duration>,
    /// With --watch: the most growth per hour allowed, e.g.
    /// `processes=0,memory=10MiB/h,fds=1/min,threads=none` [default:
    /// processes=0,orphans=0,memory=64MiB/h,fds=100/h]
    #[arg(long, value_name = "SERIES=RATE,...", value_parser = check_max_growth)]
    pub max_growth: Option<String>,
    /// With --watch: also count the files in DIR at every sample (repeatable;
    /// never following symlinks nor crossing mounts)
    #[arg(long, value_name = "DIR")]
    pub watch_dir: Vec<PathBuf>,
}

fn check_max_growth(s: &str) -> Result<String, String> {
    reap_report::trend::MaxGrowth::default().with(s)?;
    Ok(s.to_string())
}

impl WatchArgs {
    /// The watch, if asked for; its flags without it are a usage error.
    fn options(&self, reap: &ReapOptions) -> Result<Option<WatchOptions>, String> {
        let Some(duration) = self.watch else {
            if self.sample_every.is_some()
                || self.max_growth.is_some()
                || !self.watch_dir.is_empty()
            {
                return Err(
                    "--sample-every, --max-growth and --watch-dir go with --watch DURATION".into(),
                );
            }
            return Ok(None);
        };
        if reap.limits.timeout.is_some() {
            return Err("--watch DURATION takes the place of --timeout: give one of them".into());
        }
        if reap.looping.looping() {
            return Err("--watch does not go with --loop or --loop-duration".into());
        }
        if self.sample_every.is_some_and(|e| e > duration) {
            return Err("--sample-every must not be longer than --watch".into());
        }
        Ok(Some(WatchOptions {
            duration,
            sample_every: self.sample_every,
            max_growth: self.max_growth.clone(),
            dirs: self.watch_dir.clone(),
        }))
    }
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
    pub color: Option<Color>,
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

#[derive(Debug, Args)]
#[command(next_help_heading = "Reap options")]
pub struct ReapArgs {
    /// Containment for each suite
    #[arg(long, value_enum, default_value_t = IsolationMode::Auto)]
    pub isolation: IsolationMode,
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
    /// Test-level attribution of leaks: re-run a leaking suite's tests in halving groups [default: auto]
    #[arg(long, value_enum)]
    pub attribute: Option<AttributeMode>,
    /// With `--attribute auto`: at most this many re-runs (of one test or a group) per leaking suite [default: 40]
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
    #[arg(long, value_name = "KIND:M/N", value_parser = Partition::parse)]
    pub partition: Option<Partition>,
    /// Also fail on files a suite leaves in its private TMPDIR (`--fail-on tmp`);
    /// they are always reported and removed
    #[arg(long, value_name = "WHAT", value_enum)]
    pub fail_on: Vec<FailOn>,
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
    /// Write the report as one self-contained HTML page (summary, leaks,
    /// failures, hangs, charts) to this path
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
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
    /// Where this run's cgroup is not writable (a normal user, a CI job),
    /// run again inside a delegated systemd scope (`systemd-run --scope -p
    /// Delegate=yes`) for cgroup isolation; announced, and a fallback to
    /// process groups where systemd cannot delegate
    #[arg(long)]
    pub systemd_scope: bool,
    /// At a hang-kill, do not capture where each thread of the suite is
    /// blocked (its stacks, taken before the SIGTERM)
    #[arg(long)]
    pub no_stacks: bool,
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

impl ReapArgs {
    /// The flags as values; what can be checked before the build is checked.
    pub fn options(&self) -> Result<ReapOptions, String> {
        let o = ReapOptions {
            isolation: self.isolation,
            limits: PartialLimits {
                timeout: self.timeout,
                grace: self.grace,
                hang_retries: self.hang_retries,
                settle: self.settle,
            },
            attribute: self.attribute,
            attribute_max_tests: self.attribute_max_tests,
            attribute_max_time: self.attribute_max_time,
            jobs: self.jobs,
            looping: LoopOptions {
                count: self.loop_count,
                duration: self.loop_duration,
                until_leak: self.until_leak,
                until_failure: self.until_failure,
            },
            partition: self.partition,
            fail_on: self.fail_on.clone(),
            max_pids: self.max_pids,
            junit: self.junit.clone(),
            json: self.json.clone(),
            html: self.html.clone(),
            no_capture: self.no_capture,
            fail_fast: self.fail_fast && !self.no_fail_fast,
            quiet: self.quiet,
            verbose: self.verbose,
            tail_lines: self.tail_lines,
            systemd_scope: self.systemd_scope,
            no_stacks: self.no_stacks,
            watch: None,
        };
        o.validate()?;
        Ok(o)
    }
}

impl TestArgs {
    /// `cargo reap test`'s flags as values, checked before the build.
    pub fn options(&self) -> Result<TestOptions, String> {
        Ok(TestOptions {
            cargo: self.cargo.invocation()?,
            reap: self.reap.options()?,
            test_args: self.test_binary_args(),
            unused_with_no_run: self.unused_with_no_run(),
        })
    }

    /// What every test binary gets: the TESTNAME filter, the user's arguments
    /// after `--`, then `--color WHEN` and (`--no-capture`) `--nocapture` unless
    /// the user already gave them after `--`.
    pub fn test_binary_args(&self) -> Vec<String> {
        let mut v: Vec<String> = self.testname.iter().cloned().collect();
        v.extend(self.test_args.iter().cloned());
        let given = |flag: &str| {
            self.test_args
                .iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        };
        if let Some(c) = self.cargo.color {
            if !given("--color") {
                v.push(format!("--color={}", c.as_str()));
            }
        }
        if self.reap.no_capture && !given("--nocapture") && !given("--no-capture") {
            v.push("--nocapture".into());
        }
        v
    }

    /// The flags `--no-run` does not use, by name.
    fn unused_with_no_run(&self) -> Vec<&'static str> {
        if !self.cargo.no_run {
            return Vec::new();
        }
        let r = &self.reap;
        [
            (self.testname.is_some(), "TESTNAME"),
            (!self.test_args.is_empty(), "-- ARGS"),
            (r.json.is_some(), "--json"),
            (r.junit.is_some(), "--junit"),
            (r.html.is_some(), "--html"),
            (
                r.loop_count.is_some() || r.loop_duration.is_some(),
                "--loop",
            ),
            (r.no_capture, "--no-capture"),
            (r.fail_fast, "--fail-fast"),
            (r.partition.is_some(), "--partition"),
        ]
        .iter()
        .filter_map(|(given, name)| given.then_some(*name))
        .collect()
    }
}

impl RunArgs {
    /// `cargo reap run`'s flags as values.
    pub fn options(&self) -> Result<RunOptions, String> {
        let Some((program, rest)) = self.command.split_first() else {
            return Err("cargo reap run needs a command: cargo reap run -- CMD [ARGS]".into());
        };
        let mut reap = self.reap.options()?;
        reap.watch = self.watch.options(&reap)?;
        Ok(RunOptions {
            reap,
            program: program.clone(),
            args: rest.to_vec(),
        })
    }
}

/// What `--message-format` asks of the build: the value given to cargo (its
/// JSON messages are what discovery reads) and whether the user wants those
/// JSON messages on stdout too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFormat {
    pub cargo: String,
    pub echo_json: bool,
}

/// `--message-format` values (repeated or comma-separated, as cargo takes them).
/// `human` (the default): cargo renders diagnostics as usual; `short`: cargo
/// renders them short; `json...`: cargo's JSON messages are copied to stdout.
pub fn message_format(values: &[String]) -> Result<MessageFormat, String> {
    let parts: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    for p in &parts {
        if !matches!(
            *p,
            "human"
                | "short"
                | "json"
                | "json-diagnostic-short"
                | "json-diagnostic-rendered-ansi"
                | "json-render-diagnostics"
        ) {
            return Err(format!(
                "--message-format {p}: expected human, short, json, json-diagnostic-short, json-diagnostic-rendered-ansi or json-render-diagnostics"
            ));
        }
    }
    let json = parts.iter().any(|p| p.starts_with("json"));
    let plain = parts.iter().find(|p| !p.starts_with("json"));
    match (json, plain) {
        (true, Some(p)) => Err(format!(
            "--message-format {p} cannot be combined with the json formats (as with cargo)"
        )),
        (true, None) => {
            let mut cargo: Vec<&str> = parts.clone();
            if !cargo.contains(&"json") {
                cargo.insert(0, "json");
            }
            Ok(MessageFormat {
                cargo: cargo.join(","),
                echo_json: true,
            })
        }
        (false, Some(&"short")) if !parts.contains(&"human") => Ok(MessageFormat {
            cargo: "json-diagnostic-short,json-render-diagnostics".into(),
            echo_json: false,
        }),
        (false, Some(_)) if parts.contains(&"short") => {
            Err("--message-format human and short exclude each other".into())
        }
        (false, _) => Ok(MessageFormat {
            cargo: "json-render-diagnostics".into(),
            echo_json: false,
        }),
    }
}

impl CargoArgs {
    /// The flags as cargo's argument lists (see [`CargoInvocation`]).
    pub fn invocation(&self) -> Result<CargoInvocation, String> {
        let format = message_format(&self.message_format)?;
        Ok(CargoInvocation {
            build: self.build_args(&format.cargo),
            common: self.common_flags(),
            doc_flags: self.doc_flags(),
            echo_json: format.echo_json,
            manifest_path: self.manifest_path.clone(),
            target_dir: self.target_dir.clone(),
            target: self.target.clone(),
            config: self.config.clone(),
            features: self.features.clone(),
            doc_only: self.doc,
            selects_targets: self.selects_targets(),
            no_run: self.no_run,
            color: self.color,
        })
    }

    /// Options shared by `cargo metadata` and `cargo test`.
    fn common_flags(&self) -> Vec<String> {
        let mut v = Vec::new();
        for c in &self.config {
            v.push("--config".into());
            v.push(c.clone());
        }
        for z in &self.unstable {
            v.push("-Z".into());
            v.push(z.clone());
        }
        for (on, flag) in [
            (self.locked, "--locked"),
            (self.frozen, "--frozen"),
            (self.offline, "--offline"),
        ] {
            if on {
                v.push(flag.into());
            }
        }
        v
    }

    /// The `cargo test --no-run` argument list for the user's selection flags.
    fn build_args(&self, message_format: &str) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "test".into(),
            "--no-run".into(),
            format!("--message-format={message_format}"),
        ];
        let mut push_all = |flag: &str, vals: &[String]| {
            for x in vals {
                v.push(flag.into());
                v.push(x.clone());
            }
        };
        push_all("--package", &self.package);
        push_all("--exclude", &self.exclude);
        push_all("--bin", &self.bin);
        push_all("--test", &self.test);
        push_all("--features", &self.features);
        for (on, flag) in [
            (self.workspace, "--workspace"),
            (self.lib, "--lib"),
            (self.bins, "--bins"),
            (self.tests, "--tests"),
            (self.examples, "--examples"),
            (self.benches, "--benches"),
            (self.all_targets, "--all-targets"),
            (self.all_features, "--all-features"),
            (self.no_default_features, "--no-default-features"),
            (self.release, "--release"),
        ] {
            if on {
                v.push(flag.into());
            }
        }
        for (val, flag) in [
            (self.profile.clone(), "--profile"),
            (
                self.target_dir.as_ref().map(|p| p.display().to_string()),
                "--target-dir",
            ),
            (
                self.manifest_path.as_ref().map(|p| p.display().to_string()),
                "--manifest-path",
            ),
            (self.build_jobs.clone(), "--jobs"),
            (self.target.clone(), "--target"),
            (self.color.map(|c| c.as_str().to_string()), "--color"),
        ] {
            if let Some(val) = val {
                v.push(flag.into());
                v.push(val);
            }
        }
        v.extend(self.common_flags());
        v
    }

    /// The build's argument list without its package and target selection,
    /// without `--no-run`, `--message-format` and features (a doctest run
    /// gets only the features of its package).
    fn doc_flags(&self) -> Vec<String> {
        const WITH_VALUE: [&str; 7] = [
            "--features",
            "--package",
            "--exclude",
            "--bin",
            "--test",
            "--example",
            "--bench",
        ];
        const ALONE: [&str; 10] = [
            "test",
            "--no-run",
            "--workspace",
            "--lib",
            "--bins",
            "--tests",
            "--examples",
            "--benches",
            "--all-targets",
            "--doc",
        ];
        let mut v = Vec::new();
        let mut it = self.build_args("").into_iter();
        while let Some(x) = it.next() {
            if WITH_VALUE.contains(&x.as_str()) || x == "--message-format" {
                it.next();
            } else if !ALONE.contains(&x.as_str()) && !x.starts_with("--message-format=") {
                v.push(x);
            }
        }
        v
    }

    /// Does the selection name targets? Then `cargo test` runs no doctests
    /// (`--lib` alone, `--test NAME`, `--all-targets`, ...: checked against
    /// cargo 1.95), and `--doc` may not be combined with it.
    fn selects_targets(&self) -> bool {
        self.lib
            || self.bins
            || self.tests
            || self.examples
            || self.benches
            || self.all_targets
            || !self.bin.is_empty()
            || !self.test.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_args(a: &CargoArgs) -> Vec<String> {
        a.invocation().unwrap().build
    }

    #[test]
    fn passes_selection_flags_through() {
        let a = CargoArgs {
            package: vec!["a".into(), "b".into()],
            test: vec!["t".into()],
            release: true,
            build_jobs: Some("3".into()),
            locked: true,
            ..Default::default()
        };
        let v = build_args(&a).join(" ");
        assert_eq!(
            v,
            "test --no-run --message-format=json-render-diagnostics --package a --package b \
             --test t --release --jobs 3 --locked"
        );
    }

    #[test]
    fn message_formats_as_cargo_takes_them() {
        let f = |v: &[&str]| message_format(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(f(&[]).unwrap().cargo, "json-render-diagnostics");
        assert_eq!(f(&["human"]).unwrap().cargo, "json-render-diagnostics");
        let short = f(&["short"]).unwrap();
        assert_eq!(short.cargo, "json-diagnostic-short,json-render-diagnostics");
        assert!(!short.echo_json);
        let json = f(&["json-diagnostic-short"]).unwrap();
        assert_eq!(json.cargo, "json,json-diagnostic-short");
        assert!(json.echo_json);
        assert!(f(&["json,short"]).is_err());
        assert!(f(&["human", "short"]).is_err());
        assert!(f(&["jsn"]).is_err());
    }

    #[test]
    fn passes_config_target_color_and_unstable_flags() {
        let a = CargoArgs {
            target: Some("x86_64-unknown-linux-gnu".into()),
            color: Some(Color::Never),
            config: vec!["build.jobs=1".into()],
            unstable: vec!["unstable-options".into()],
            message_format: vec!["short".into()],
            ..Default::default()
        };
        assert_eq!(
            build_args(&a).join(" "),
            "test --no-run --message-format=json-diagnostic-short,json-render-diagnostics \
             --target x86_64-unknown-linux-gnu --color never --config build.jobs=1 -Z unstable-options"
        );
    }

    #[test]
    fn doctest_command_keeps_build_flags_and_drops_selection() {
        let a = CargoArgs {
            package: vec!["a".into()],
            workspace: true,
            exclude: vec!["b".into()],
            features: vec!["f".into()],
            release: true,
            locked: true,
            doc: true,
            ..Default::default()
        };
        let inv = a.invocation().unwrap();
        assert_eq!(
            inv.doc_args("path+file:///w/a#0.1.0", &["f".into()])
                .join(" "),
            "test --doc --package path+file:///w/a#0.1.0 --features f --release --locked --"
        );
        assert_eq!(
            inv.doc_args("s", &[]).join(" "),
            "test --doc --package s --release --locked --"
        );
    }

    #[test]
    fn target_selection_excludes_doctests() {
        assert!(!CargoArgs::default().selects_targets());
        assert!(!CargoArgs {
            doc: true,
            package: vec!["p".into()],
            ..Default::default()
        }
        .selects_targets());
        for a in [
            CargoArgs {
                lib: true,
                ..Default::default()
            },
            CargoArgs {
                test: vec!["t".into()],
                ..Default::default()
            },
            CargoArgs {
                all_targets: true,
                ..Default::default()
            },
        ] {
            assert!(a.selects_targets());
        }
    }
}
