//! Phase 3: what every suite runs with — the resolved options (flags over
//! configuration), the target runner, the number of suites at once — and
//! the run line that says it.

use std::path::PathBuf;

use super::discovery::Found;
use super::setup::Run;
use super::{emit, Source};
use crate::config::AllowRule;
use crate::discover::Suite;
use crate::error::{EngineError, RunError};
use crate::options::{default_sample_every, AttributeMode, Limits, WatchOptions};
use crate::schedule::ScheduleOptions;
use crate::suite::settings::SampleSettings;
use crate::suite::SuiteOptions;
use reap_report::IsolationKind;

/// The plan of the trials.
pub(super) struct Plan {
    pub options: SuiteOptions,
    pub schedule: ScheduleOptions,
    /// Leaks the configuration expects: reported, not failing.
    pub allow: Vec<AllowRule>,
    pub log_dir: PathBuf,
}

impl Plan {
    pub fn make(
        run: &Run<'_>,
        found: &Found,
        source: Source<'_>,
        test_args: &[String],
    ) -> Result<Plan, EngineError> {
        let log_dir = found.log_dir.clone();
        std::fs::create_dir_all(&log_dir).map_err(|source| RunError::Io {
            what: "creating log directory",
            path: log_dir.clone(),
            source,
        })?;
        let options = suite_options(run, found, source, test_args)?;
        let jobs = jobs(run, found);
        let plan = Plan {
            options,
            schedule: ScheduleOptions {
                jobs,
                fail_fast: run.reap.fail_fast,
            },
            allow: found.config.allow_rules().cloned().collect(),
            log_dir,
        };
        if !run.quiet {
            emit(&plan.run_line(run, &found.suites, found));
        }
        Ok(plan)
    }

    /// `run ID: N suites (jobs J, timeout T, grace G, logs in DIR)`.
    fn run_line(&self, run: &Run<'_>, suites: &[Suite], found: &Found) -> String {
        let l = &run.reap.looping;
        let limits = run
            .reap
            .limits
            .over(found.config.workspace.limits.over(Limits::default()));
        format!(
            "cargo-reap: run {}: {} suite{}{} (jobs {}, timeout {}, grace {}, logs in {})",
            run.run_id,
            suites.len(),
            if suites.len() == 1 { "" } else { "s" },
            match (l.count, l.duration) {
                (Some(n), None) => format!(" x {n} trials"),
                (None, Some(d)) => format!(" in trials for {}", humantime::format_duration(d)),
                (Some(n), Some(d)) =>
                    format!(" x {n} trials (at most {})", humantime::format_duration(d)),
                (None, None) => String::new(),
            },
            self.schedule.jobs,
            humantime::format_duration(limits.timeout),
            humantime::format_duration(limits.grace),
            self.log_dir.display()
        )
    }
}

/// What every suite gets: flags over the workspace's configuration.
fn suite_options(
    run: &Run<'_>,
    found: &Found,
    source: Source<'_>,
    test_args: &[String],
) -> Result<SuiteOptions, EngineError> {
    let reap = run.reap;
    let ws = &found.config.workspace;
    // Test binaries understand `--list` / `--exact`; an arbitrary command need not.
    let runs_libtest = found.suites.iter().all(|s| s.kind.is_libtest());
    let mode = reap
        .attribute
        .or(ws.attribute)
        .unwrap_or(AttributeMode::Auto);
    Ok(SuiteOptions {
        // `run` passes output straight through: as a target runner, output
        // belongs where cargo test puts it.
        no_capture: run.command_mode,
        stream: run.stream,
        runner: target_runner(run, source)?,
        listable: runs_libtest,
        test_args: test_args.to_vec(),
        attribute: crate::suite::AttributeOptions {
            // A command need not understand `--list` / `--exact`: only on request.
            mode: match (runs_libtest, mode) {
                (false, AttributeMode::Auto) => AttributeMode::Off,
                (_, m) => m,
            },
            max_tests: reap
                .attribute_max_tests
                .or(ws.attribute_max_tests)
                .unwrap_or(crate::suite::attribution::DEFAULT_MAX_RERUNS),
            max_time: reap
                .attribute_max_time
                .or(ws.attribute_max_time)
                .unwrap_or(std::time::Duration::from_secs(60)),
        },
        stacks: !reap.no_stacks && ws.stacks != Some(false),
        sampling: sampling(reap.watch.as_ref(), found),
        watch: reap.watch.as_ref().map(|w| w.duration),
    })
}

/// What is sampled, how often: every 100 ms for test suites; with
/// `--watch`, flags over the configuration over a hundredth of the watch.
fn sampling(watch: Option<&WatchOptions>, found: &Found) -> SampleSettings {
    let Some(w) = watch else {
        return SampleSettings::default();
    };
    let config = found.config.watch();
    SampleSettings {
        every: w
            .sample_every
            .or(config.sample_every)
            .unwrap_or_else(|| default_sample_every(w.duration))
            .min(w.duration),
        watch: w.duration,
        dirs: if w.dirs.is_empty() {
            config.dirs
        } else {
            w.dirs.clone()
        },
    }
}

/// The target runner of cargo's configuration for the suites' target.
fn target_runner(run: &Run<'_>, source: Source<'_>) -> Result<Vec<String>, EngineError> {
    let Source::Cargo(cargo) = source else {
        return Ok(Vec::new());
    };
    let runner = crate::runner::resolve(cargo.target.as_deref(), &cargo.config)
        .map_err(|e| EngineError::Usage(crate::error::chain(&e)))?;
    if crate::runner::is_cargo_reap(&runner) {
        emit(&format!("cargo-reap: the configured target runner `{}` is cargo-reap itself: not used (the suites already run in containment)", runner.join(" ")));
        return Ok(Vec::new());
    }
    if !runner.is_empty() && !run.quiet {
        emit(&format!(
            "cargo-reap: target runner (cargo configuration): each suite runs as `{} BINARY ARGS`",
            runner.join(" ")
        ));
    }
    Ok(runner)
}

/// Suites at once.
fn jobs(run: &Run<'_>, found: &Found) -> usize {
    match run.reap.jobs.or(found.config.workspace.jobs) {
        // Streamed output of suites running at once would interleave: one at
        // a time unless --jobs says otherwise (as nextest's --no-capture).
        _ if run.stream && run.reap.jobs.is_none() => 1,
        Some(n) => n,
        // Process groups can pin an untagged orphan to its suite only while
        // that suite runs alone: serial unless asked otherwise.
        None if found.ready.isolation.kind() == IsolationKind::ProcessGroup => {
            if !run.quiet && reap_probe::cpus() > 1 {
                emit(&format!("cargo-reap: process-group isolation runs one suite at a time, not {} (an orphan that clears its tag can be pinned to its suite only then); --jobs N runs N at once", reap_probe::cpus()));
            }
            1
        }
        None => reap_probe::cpus(),
    }
}
