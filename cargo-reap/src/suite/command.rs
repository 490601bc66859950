//! The one command line of a suite's binary, for every use of it: listing
//! its tests, running them (an attempt), re-running one test alone
//! (attribution). The caller says which by the arguments it adds, and where
//! the output goes.

use std::fs::File;
use std::os::fd::OwnedFd;

use crate::containment::spawn::{Spawn, Stdio};
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
/// `args` (libtest's: the user's, a listing's or a re-run's). Started by
/// the containment's spawner ([`RunContext::spawn_in`]).
pub fn suite_command(
    ctx: &RunContext<'_>,
    suite: &Suite,
    args: &[String],
    output: Output,
) -> Spawn {
    // A doctest suite is cargo itself, which passes the target runner to
    // rustdoc on its own.
    let runner = if is_doctest(suite) {
        None
    } else {
        ctx.options.runner.split_first()
    };
    let mut cmd = match runner {
        Some((runner, runner_args)) => {
            let mut c = Spawn::new(runner);
            c.args(runner_args).arg(&suite.binary);
            c
        }
        None => Spawn::new(&suite.binary),
    };
    cmd.args(&suite.args);
    let tmp = ctx.tmp_dir(suite);
    for (k, v) in &suite.env {
        cmd.env(k, v);
    }
    for k in ["TMPDIR", "TMP", "TEMP"] {
        cmd.env(k, &tmp);
    }
    cmd.current_dir(&suite.cwd)
        .env(TRIAL_VAR, ctx.trial.to_string())
        .stdin(Stdio::Null)
        .args(args);
    match output {
        Output::Inherit => {}
        Output::Capture { stdout, stderr } => {
            cmd.stdout(Stdio::Fd(stdout)).stderr(Stdio::Fd(stderr));
        }
        Output::Listing(file) => {
            cmd.stdout(Stdio::Fd(file.into())).stderr(Stdio::Null);
        }
    }
    cmd
}
