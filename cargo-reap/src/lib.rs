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
pub mod fatal;
pub mod interrupt;
pub mod libdir;
pub mod lifeline;
pub mod merge;
pub mod options;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod scratch;
pub mod stale;
pub mod suite;
pub mod sys;
pub mod tmpdir;
pub mod triage;

use std::ffi::OsString;

use clap::Parser;
use reap_report::exit;

/// Parse the command line and run; returns the process exit code.
pub fn main_entry(mut args: Vec<OsString>) -> i32 {
    // `cargo reap test` runs `cargo-reap reap test`.
    if args.get(1).is_some_and(|a| a == "reap") {
        args.remove(1);
    }
    if let Some(code) = internal_program(&args) {
        return code;
    }
    // Before any thread: a panic anywhere is an internal error (exit 2).
    fatal::install();
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_tracing(verbose(&cli.command));
    let job = match Job::of(cli.command) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("cargo-reap: error: {e}");
            return exit::USAGE;
        }
    };
    // Where this run's cgroup is not writable and a delegated systemd scope
    // was asked for: this process becomes `systemd-run`, which runs
    // cargo-reap again inside the scope (this call then never returns).
    match &job {
        Job::Test(o) => engine::systemd_scope(&o.reap, Some(&o.cargo), &args),
        Job::Run(o) => engine::systemd_scope(&o.reap, None, &args),
        Job::Probe(_) | Job::Clean { .. } | Job::Merge(_) => {}
    }
    match become_guardian(&job) {
        Ok(guard) => run(job, guard),
        Err(code) => code,
    }
}

/// What the user asked for, its flags resolved into options.
enum Job {
    Probe(Vec<OsString>),
    Clean { dry_run: bool },
    Merge(merge::MergeOptions),
    Test(Box<options::TestOptions>),
    Run(Box<options::RunOptions>),
}

impl Job {
    fn of(command: cli::Command) -> Result<Job, String> {
        Ok(match command {
            cli::Command::Probe(a) => Job::Probe(a.args),
            cli::Command::Clean(a) => Job::Clean { dry_run: a.dry_run },
            cli::Command::Merge(a) => Job::Merge(a.options()),
            cli::Command::Test(a) => Job::Test(Box::new(a.options()?)),
            cli::Command::Run(a) => Job::Run(Box::new(a.options()?)),
        })
    }
}

/// The hidden subcommand: the other program of this binary, which a run
/// starts from its own executable — a lifeline guard where none can be
/// forked (see [`lifeline`]). Chosen by the first argument
/// only, never by the environment (a variable a suite inherits cannot turn
/// a user's `cargo reap` into one of them); not in `--help`. `None`: the
/// user's command line.
fn internal_program(args: &[OsString]) -> Option<i32> {
    let name = args.get(1)?;
    if name == lifeline::GUARD_SUBCOMMAND {
        Some(lifeline::guard_main(&args[2..]))
    } else {
        None
    }
}

/// The user's command line, or the exit code after clap's message (usage
/// error, `--help`, `--version`).
fn parse(args: &[OsString]) -> Result<cli::Cli, i32> {
    match cli::Cli::try_parse_from(args) {
        Ok(c) => Ok(c),
        Err(e) if e.kind() == clap::error::ErrorKind::UnknownArgument => {
            eprintln!("cargo-reap: error: {}", cli::unknown_flag(&e, args));
            Err(exit::USAGE)
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
            Err(code)
        }
    }
}

fn verbose(command: &cli::Command) -> bool {
    match command {
        cli::Command::Test(a) => a.reap.verbose,
        cli::Command::Run(a) => a.reap.verbose,
        cli::Command::Clean(_) | cli::Command::Probe(_) | cli::Command::Merge(_) => false,
    }
}

/// `test` and `run`: this process becomes the guardian above the runner
/// (see [`lifeline::split_off_runner`]); the runner goes on below (`Ok`,
/// with the lifeline guard the guardian forked for it), its interrupts
/// handled from here on, the end of the guardian one of them. `Err(exit
/// code)` in the guardian, once the runner has ended (or in the runner when
/// its interrupts cannot be handled). `Ok(None)`: no guardian (the run
/// starts its guard itself), or a command that needs none.
fn become_guardian(job: &Job) -> Result<Option<lifeline::ForkedGuard>, i32> {
    if !matches!(job, Job::Test(_) | Job::Run(_)) {
        return Ok(None);
    }
    match lifeline::split_off_runner() {
        Ok(lifeline::Role::Guardian(code)) => Err(code),
        Ok(lifeline::Role::Runner { guardian, guard }) => {
            match interrupt::install_watching(Some(guardian)) {
                Ok(_) => Ok(Some(guard)),
                Err(e) => {
                    eprintln!("cargo-reap: error: {}", error::chain(&e));
                    Err(exit::USAGE)
                }
            }
        }
        Err(e) => {
            eprintln!(
                "cargo-reap: warning: no guardian above the runner ({}): if cargo-reap is killed, an untagged daemon of a suite may survive",
                error::chain(&e)
            );
            Ok(None)
        }
    }
}

/// Run the user's command (`test` and `run` with the lifeline guard forked
/// for them, if any); returns the exit code.
fn run(job: Job, guard: Option<lifeline::ForkedGuard>) -> i32 {
    let ran = match job {
        Job::Probe(args) => return triage::probe(&args),
        Job::Clean { dry_run } => return clean(dry_run),
        Job::Merge(o) => return merge::run(&o),
        Job::Run(o) => engine::run_command(&o, guard),
        Job::Test(o) => engine::run_test(&o, guard),
    };
    match ran {
        Ok(outcome) => outcome.exit_code,
        Err(e) => {
            eprintln!("cargo-reap: error: {}", error::chain(&e));
            match e {
                error::EngineError::Build(error::BuildError::Failed(_)) => exit::BUILD_FAILED,
                _ => exit::USAGE,
            }
        }
    }
}

/// `cargo reap clean`: sweep every leftover of earlier runs.
fn clean(dry_run: bool) -> i32 {
    match stale::sweep(dry_run, stale::Scope::Everything) {
        Ok(found) => {
            if found.is_empty() {
                eprintln!("cargo-reap: clean: no leftovers of earlier runs");
            }
            for line in found.lines(dry_run) {
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
