//! cargo-reap: run each test binary of a Cargo workspace in its own containment
//! (cgroup v2 leaf, or process group + subreaper + tag), under a timeout with a
//! hang retry; find every process that outlives its suite, reap it, and fail
//! the run with a leak attribution table.
//!
//! `main.rs` only calls [`main_entry`].

// Linux only, said at compile time rather than as a wall of unresolved imports.
#[cfg(not(target_os = "linux"))]
compile_error!("cargo-reap supports Linux only: it needs procfs, pidfd, cgroup v2 and the child subreaper (prctl PR_SET_CHILD_SUBREAPER)");

pub mod cli;
pub mod config;
pub mod containment;
pub mod discover;
pub mod duration;
pub mod engine;
pub mod error;
pub mod exit;
pub mod fatal;
pub mod interrupt;
pub mod lifeline;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod scratch;
pub mod stale;
pub mod suite;
pub mod sys;
pub mod tmpdir;

use std::ffi::OsString;

use clap::Parser;

/// Parse the command line and run; returns the process exit code.
pub fn main_entry(mut args: Vec<OsString>) -> i32 {
    // The cgroup probe runs us inside a trial leaf: prove we got in, and leave.
    if std::env::var_os(containment::cgroup::PROBE_ENV).is_some() {
        return exit::SUCCESS;
    }
    // The lifeline guard of a running cargo-reap.
    if std::env::var_os(lifeline::GUARD_ENV).is_some() {
        return lifeline::guard_main();
    }
    // Before any thread: a panic anywhere is an internal error (exit 2).
    fatal::install();
    // `cargo reap test` runs `cargo-reap reap test`.
    if args.get(1).is_some_and(|a| a == "reap") {
        args.remove(1);
    }
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) if e.kind() == clap::error::ErrorKind::UnknownArgument => {
            eprintln!("cargo-reap: error: {}", cli::unknown_flag(&e, &args));
            return exit::USAGE;
        }
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            };
            if let Err(io) = e.print() {
                eprintln!("cargo-reap: {io}");
            }
            return code;
        }
    };
    let verbose = match &cli.command {
        cli::Command::Test(a) => a.reap.verbose,
        cli::Command::Run(a) => a.reap.verbose,
        cli::Command::Clean(_) | cli::Command::Probe(_) => false,
    };
    init_tracing(verbose);
    // `test` and `run`: this process becomes the guardian above the runner
    // (see lifeline::split_off_runner); the runner goes on below.
    if matches!(cli.command, cli::Command::Test(_) | cli::Command::Run(_)) {
        match lifeline::split_off_runner() {
            Ok(None) => {}
            Ok(Some(code)) => return code,
            Err(e) => eprintln!(
                "cargo-reap: warning: no guardian above the runner ({}): if cargo-reap is killed, an untagged daemon of a suite may survive",
                error::chain(&e)
            ),
        }
    }
    match cli.command {
        cli::Command::Probe(args) => reap_probe::cli::main(&args.args),
        cli::Command::Clean(args) => match stale::sweep(args.dry_run, stale::Scope::Everything) {
            Ok(found) => {
                if found.is_empty() {
                    eprintln!("cargo-reap: clean: no leftovers of earlier runs");
                }
                for line in found.lines(args.dry_run) {
                    eprintln!("cargo-reap: clean: {line}");
                }
                // Everything else was done; what is left is named above.
                if found.problems.is_empty() {
                    exit::SUCCESS
                } else {
                    exit::CLEAN_INCOMPLETE
                }
            }
            Err(e) => {
                eprintln!("cargo-reap: error: {}", error::chain(&e));
                exit::USAGE
            }
        },
        cli::Command::Run(args) => match engine::run_command(&args) {
            Ok(outcome) => outcome.exit_code,
            Err(e) => {
                eprintln!("cargo-reap: error: {}", error::chain(&e));
                exit::USAGE
            }
        },
        cli::Command::Test(args) => match engine::run_test(&args) {
            Ok(outcome) => outcome.exit_code,
            Err(e) => {
                eprintln!("cargo-reap: error: {}", error::chain(&e));
                match e {
                    error::EngineError::Build(error::BuildError::Failed(_)) => exit::BUILD_FAILED,
                    _ => exit::USAGE,
                }
            }
        },
    }
}

fn init_tracing(verbose: bool) {
    let default = if verbose { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    if let Err(e) = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
    {
        eprintln!("cargo-reap: warning: diagnostics unavailable: {e}");
    }
}
