//! Phase 1, before the build: the run id, signal handling, the report
//! paths, the child subreaper, the run's scratch directory, the stale sweep
//! (in the background) and an explicitly requested isolation (checked first,
//! so that it fails before a long build).

use std::time::Instant;

use super::{emit, Source};
use crate::config::Config;
use crate::containment::{Isolation, IsolationKind};
use crate::error::EngineError;
use crate::interrupt::Interrupts;
use crate::lifeline::{ForkedGuard, Lifeline};
use crate::options::{streams, IsolationMode, ReapOptions};
use crate::report::events::{Reporter, TerminalOptions};
use crate::report::output::ReportPath;
use crate::scratch::RunDir;
use crate::stale::Sweep;
use crate::sys;

/// What the whole run shares, from its start to its report.
pub(super) struct Run<'a> {
    pub reap: &'a ReapOptions,
    /// `cargo reap run`: one command, its exit code passed through.
    pub command_mode: bool,
    /// Only suites with a problem get a line; no run line.
    pub quiet: bool,
    /// Suite output is streamed as it comes (`--no-capture`, or libtest's
    /// `--nocapture` after `--`), in `cargo reap test`.
    pub stream: bool,
    /// What a rerun hint needs after `cargo reap test` to find the same workspace.
    pub rerun_prefix: Vec<String>,
    pub started: Instant,
    pub run_id: String,
    pub interrupts: &'static Interrupts,
    pub reporter: Reporter,
    /// Where the suites' private TMPDIRs are made: the run's directory.
    pub tmp_root: std::path::PathBuf,
    /// `cargo reap run`'s scratch files (in the run's directory).
    pub command_scratch: std::path::PathBuf,
}

/// What setup started that discovery finishes: the stale sweep, the
/// isolation when it was requested explicitly, and the lifeline guard the
/// guardian forked.
pub(super) struct Pending {
    /// `None`: `cargo reap run` within [`crate::stale::RUNNER_SWEEP_INTERVAL`]
    /// of this user's last sweep.
    pub sweeper: Option<Sweeper>,
    pub chosen: Option<(Isolation, String)>,
    /// `None`: no guardian; [`Run::ready`] starts a guard.
    pub guard: Option<ForkedGuard>,
}

/// What a run needs before its first suite: the isolation (and the line that
/// says why), and the lifeline guard.
pub(super) struct Ready {
    pub isolation: Isolation,
    pub note: String,
    pub lifeline: Lifeline,
}

impl<'a> Run<'a> {
    pub fn start(
        reap: &'a ReapOptions,
        source: Source<'_>,
        test_args: &[String],
        guard: Option<ForkedGuard>,
    ) -> Result<(Run<'a>, RunDir, Pending), EngineError> {
        let started = Instant::now();
        let command_mode = matches!(source, Source::Command(_));
        let run_id = super::new_run_id()?;
        // Before any thread exists, so that every thread inherits the blocked mask.
        let interrupts = crate::interrupt::install()?;
        let stream = !command_mode && streams(reap.no_capture, test_args);
        let reporter = reporter(reap, command_mode, stream, &run_id)?;
        // Orphans of every suite reparent to us, not to PID 1, in both modes.
        // Kept in cgroup mode too: a suite that left its leaf, double-forked,
        // called setsid and cleared its environment is found only this way. The
        // cost, an orphan's getppid() is never 1, is a documented difference
        // from cargo test (README; tests/reparent.rs).
        sys::become_subreaper()?;
        // Choosing the isolation and starting the lifeline guard each start a
        // process (and the cgroup probe waits out a kernel grace period to move
        // it), so under `auto` both run while cargo builds. An explicit
        // `--isolation` is checked first: it fails fast, before a long build.
        let chosen = match reap.isolation {
            IsolationMode::Auto => None,
            _ => Some(choose(reap, &run_id)?),
        };
        let sweeper =
            if !command_mode || crate::stale::sweep_due(crate::stale::RUNNER_SWEEP_INTERVAL) {
                Some(start_sweep()?)
            } else {
                None
            };
        // The run's own directory (per user, 0700): the suites' private
        // TMPDIRs and `cargo reap run`'s scratch files. Dropped on an error
        // path, it is removed; made before the lifeline guard, so that the
        // guard has killed everything before it goes.
        let (run_dir, tmp_notes) = RunDir::create(&run_id)?;
        for note in tmp_notes {
            emit(&format!("cargo-reap: warning: {note}"));
        }
        let run = Run {
            reap,
            command_mode,
            quiet: command_mode || reap.quiet,
            stream,
            rerun_prefix: rerun_prefix(source),
            started,
            run_id,
            interrupts,
            reporter,
            tmp_root: run_dir.path().to_path_buf(),
            command_scratch: run_dir.command_scratch(),
        };
        let pending = Pending {
            sweeper,
            chosen,
            guard,
        };
        Ok((run, run_dir, pending))
    }

    /// The isolation (chosen now unless it was already) and the lifeline
    /// guard (`guard`, forked by the guardian, told the run; without one, a
    /// guard started from our executable).
    ///
    /// The guard first: where it must be started from our executable (no
    /// guardian), that start then overlaps the cgroup probe.
    pub fn ready(
        &self,
        chosen: Option<(Isolation, String)>,
        guard: Option<ForkedGuard>,
    ) -> Result<Ready, EngineError> {
        let lifeline = Lifeline::start(&self.run_id, guard)?;
        let (isolation, note) = match chosen {
            Some(c) => c,
            None => match choose(self.reap, &self.run_id) {
                Ok(c) => c,
                Err(e) => {
                    // Nothing was registered: a clean end, not an abort.
                    if let Err(close) = lifeline.close() {
                        emit(&format!(
                            "cargo-reap: warning: closing the lifeline guard: {close}"
                        ));
                    }
                    return Err(e);
                }
            },
        };
        Ok(Ready {
            isolation,
            note,
            lifeline,
        })
    }

    /// The isolation line (and `--max-pids`) once the isolation is known.
    pub fn announce(&self, ready: &mut Ready) {
        let fell_back = ready.isolation.kind() == IsolationKind::ProcessGroup
            && self.reap.isolation == IsolationMode::Auto;
        let said = !self.quiet
            || ready.isolation.kind() != IsolationKind::Cgroup
            || ready.isolation.spawn_fallback();
        // `cargo reap run` as a target runner or nextest wrapper starts once
        // per test binary: the line (and its advice) once per session.
        let said = said && (!self.command_mode || crate::stale::first_of_session());
        if said {
            emit(&format!("cargo-reap: {}", ready.note));
        }
        if fell_back && said {
            let host = crate::containment::delegation::Host::detect();
            emit(&format!("cargo-reap: {}", host.advice()));
        }
        if let Some(n) = self.reap.max_pids {
            match ready.isolation.limit_pids(n) {
                Ok(()) => emit(&format!(
                    "cargo-reap: each suite is limited to {n} processes (pids.max)"
                )),
                Err(why) => emit(&format!(
                    "cargo-reap: warning: --max-pids {n} not applied: {why}"
                )),
            }
        }
    }

    /// The configuration of `cargo reap run` (no workspace: cargo's
    /// environment as a target runner), its warning said.
    pub fn runner_config(&self) -> Result<Config, EngineError> {
        let (config, warning) = Config::for_runner()?;
        if let Some(w) = warning {
            emit(&format!("cargo-reap: warning: {w}"));
        }
        Ok(config)
    }
}

/// The isolation of this run, and the line that says why.
fn choose(reap: &ReapOptions, run_id: &str) -> Result<(Isolation, String), EngineError> {
    let mut note = String::new();
    let isolation = Isolation::choose(reap.isolation, run_id, &mut |line| note = line).map_err(
        |e| match reap.isolation {
            IsolationMode::Cgroup => EngineError::Isolation(e),
            _ => EngineError::Contain(e),
        },
    )?;
    Ok((isolation, note))
}

/// The reporter of the run, its report paths checked. An old report stays
/// as it is until the new one is complete (temp file + rename).
fn reporter(
    reap: &ReapOptions,
    command_mode: bool,
    stream: bool,
    run_id: &str,
) -> Result<Reporter, EngineError> {
    crate::report::output::distinct(&[
        ("--json", reap.json.as_deref()),
        ("--junit", reap.junit.as_deref()),
        ("--html", reap.html.as_deref()),
    ])
    .map_err(EngineError::Usage)?;
    let check = |path: &std::path::Path| {
        ReportPath::check(path, run_id).map_err(|e| {
            EngineError::Usage(format!(
                "cannot write the report to {}: {e}",
                path.display()
            ))
        })
    };
    let json = reap.json.as_deref().map(check).transpose()?;
    let junit = reap.junit.as_deref().map(check).transpose()?;
    let html = reap.html.as_deref().map(check).transpose()?;
    let looping = reap.looping.looping();
    let terminal = TerminalOptions {
        tail_lines: reap.tail_lines,
        per_suite_lines: !looping,
        only_problems: command_mode || reap.quiet,
        // A watch draws its own live line.
        progress_bar: !stream && reap.watch.is_none(),
        loop_count: reap.looping.count,
        looping,
    };
    Ok(Reporter::new(terminal, junit, json).with_html(html))
}

/// `--manifest-path PATH` for the rerun hints of `cargo reap test`.
fn rerun_prefix(source: Source<'_>) -> Vec<String> {
    match source {
        Source::Cargo(c) => c
            .manifest_path
            .iter()
            .flat_map(|p| ["--manifest-path".to_string(), p.display().to_string()])
            .collect(),
        Source::Command(_) => Vec::new(),
    }
}

/// The thread of the stale sweep.
pub(super) type Sweeper = std::thread::JoinHandle<Result<Sweep, crate::error::ContainError>>;

/// Leftovers of dead earlier runs are swept while cargo builds, and named
/// before any suite runs.
fn start_sweep() -> Result<Sweeper, EngineError> {
    std::thread::Builder::new()
        .name("cargo-reap-sweep".into())
        .spawn(|| crate::stale::sweep(false, crate::stale::Scope::WhenMarked))
        .map_err(|e| {
            crate::error::ContainError::Sys {
                what: "starting the stale sweep",
                source: e,
            }
            .into()
        })
}
