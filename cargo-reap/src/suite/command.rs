//! The one command line of a suite's binary, for every use of it: listing
//! its tests, running them (an attempt), re-running one test alone
//! (attribution). The caller says which by the arguments it adds, and where
//! the output goes.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use crate::discover::Suite;

use super::context::RunContext;

/// Environment variable telling a suite which trial of `--loop` it runs in.
pub const TRIAL_VAR: &str = "CARGO_REAP_TRIAL";

/// Where a suite command's stdout and stderr go.
pub enum Output {
    /// cargo-reap's own (`cargo reap run`: straight through).
    Inherit,
    /// The write ends of the capture pipes (one pipe for both, or one each).
    Capture { stdout: OwnedFd, stderr: OwnedFd },
    /// A test listing: stdout to `file`, stderr discarded.
    Listing(File),
}

/// Is `suite` a package's doctests (run through cargo and rustdoc)?
pub fn is_doctest(suite: &Suite) -> bool {
    suite.kind == crate::discover::SuiteKind::Doctest
}

/// The suite's binary (behind the target runner, when one is configured)
/// with cargo's test environment, its private TMPDIR, no stdin, then
/// `args` (libtest's: the user's, a listing's or a re-run's).
pub fn suite_command(
    ctx: &RunContext<'_>,
    suite: &Suite,
    args: &[String],
    output: Output,
) -> Command {
    // A doctest suite is cargo itself, which passes the target runner to
    // rustdoc on its own.
    let runner = if is_doctest(suite) {
        None
    } else {
        ctx.options.runner.split_first()
    };
    let mut cmd = match runner {
        Some((runner, runner_args)) => {
            let mut c = Command::new(runner);
            c.args(runner_args).arg(&suite.binary);
            c
        }
        None => Command::new(&suite.binary),
    };
    cmd.args(&suite.args);
    let tmp = ctx.tmp_dir(suite);
    cmd.current_dir(&suite.cwd)
        .envs(suite.env.iter().map(|(k, v)| (k, v)))
        .env(TRIAL_VAR, ctx.trial.to_string())
        .envs(["TMPDIR", "TMP", "TEMP"].map(|k| (k, &tmp)))
        .stdin(Stdio::null())
        .args(args);
    match output {
        Output::Inherit => {}
        Output::Capture { stdout, stderr } => {
            cmd.stdout(Stdio::from(stdout)).stderr(Stdio::from(stderr));
        }
        Output::Listing(file) => {
            cmd.stdout(Stdio::from(file)).stderr(Stdio::null());
        }
    }
    cmd
}
