//! Phase 2: the suites. `cargo reap test` builds (while `cargo metadata`,
//! the isolation choice and the lifeline guard start beside it), reads the
//! configuration and lists the suites with their limits; `cargo reap run`
//! has one suite, its command. Then the stale sweep is joined and the
//! partition applied.

use std::path::PathBuf;

use super::setup::{Pending, Ready, Run};
use super::{emit, Source};
use crate::config::Config;
use crate::discover::{self, Suite};
use crate::error::{BuildError, EngineError};
use crate::lifeline::ForkedGuard;
use crate::options::{CargoInvocation, Limits, Partition};
use reap_report::Selection;

/// The suites to run, and what they run with.
pub(super) struct Found {
    pub suites: Vec<Suite>,
    /// Where the suites' logs go.
    pub log_dir: PathBuf,
    pub config: Config,
    pub ready: Ready,
    /// What was selected before the partition (set by [`discover`]).
    pub selection: Option<Selection>,
}

/// Suites, or a run that ends before any trial.
// One value per run, moved once: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Discovered {
    Suites(Found),
    /// The build failed, the run was interrupted, or an empty partition.
    Early {
        ready: Ready,
        build_failed: bool,
        /// Unknown when the build failed or was interrupted.
        selection: Option<Selection>,
    },
}

pub(super) fn discover(
    run: &Run<'_>,
    source: Source<'_>,
    pending: Pending,
    test_args: &[String],
) -> Result<Discovered, EngineError> {
    let Pending {
        sweeper,
        chosen,
        guard,
    } = pending;
    let mut found = match source {
        Source::Cargo(cargo) => match from_cargo(run, cargo, chosen, guard)? {
            Discovered::Suites(f) => f,
            early => return Ok(early),
        },
        Source::Command(program) => from_command(run, program, chosen, guard)?,
    };
    if let Some(sweeper) = sweeper {
        said_sweep(sweeper);
    }
    super::phase(run, "stale sweep joined");
    found.selection = Some(selection(&found.suites, test_args, run.reap.partition));
    if let Some(p) = run.reap.partition {
        let before = found.suites.len();
        found.suites = p.select(std::mem::take(&mut found.suites), |s| &s.id);
        emit(&format!(
            "cargo-reap: partition {p}: {} of {before} suites",
            found.suites.len()
        ));
    }
    for line in found.config.old_suite_keys(&found.suites) {
        emit(&format!("cargo-reap: warning: {line}"));
    }
    // More CI machines than suites: an empty share passes.
    let empty_share = found.suites.is_empty() && run.reap.partition.is_some();
    if run.interrupts.signal().is_some() || empty_share {
        return Ok(Discovered::Early {
            ready: found.ready,
            build_failed: false,
            selection: found.selection,
        });
    }
    if found.suites.is_empty() {
        return Err(EngineError::Usage(
            "no test binaries or doctests were selected".into(),
        ));
    }
    Ok(Discovered::Suites(found))
}

/// Build, and read metadata and configuration meanwhile.
fn from_cargo(
    run: &Run<'_>,
    cargo: &CargoInvocation,
    chosen: Option<(crate::containment::Isolation, String)>,
    guard: Option<ForkedGuard>,
) -> Result<Discovered, EngineError> {
    // `cargo metadata` and the containment are found while cargo builds:
    // none waits for another.
    let (meta, built, ready) = std::thread::scope(|s| {
        let meta = s.spawn(|| discover::metadata(cargo));
        let ready = s.spawn(|| run.ready(chosen, guard));
        let built = discover::build(cargo, run.interrupts);
        (meta.join(), built, ready.join())
    });
    let (meta, mut ready) = match (meta, ready) {
        (Ok(m), Ok(r)) => (m, r?),
        (Err(panic), _) | (_, Err(panic)) => std::panic::resume_unwind(panic),
    };
    run.announce(&mut ready);
    // A bad manifest path or flag: metadata says it most clearly.
    let meta = match (meta, &built) {
        (Err(e), Err(_)) => return Err(e.into()),
        (m, _) => m?,
    };
    // Bad configuration is an error before any suite runs, naming key and file.
    let config = Config::load(&meta)?;
    let built = match built {
        // Interrupted while cargo built (the signal was passed on to
        // it): a partial report with no suite, exit 128 + signal.
        Err(_) if run.interrupts.signal().is_some() => {
            return Ok(Discovered::Early {
                ready,
                build_failed: false,
                selection: None,
            })
        }
        Ok(b) => b,
        Err(BuildError::Failed(why)) => {
            emit(&format!(
                "cargo-reap: build failed ({why}); no suite was run"
            ));
            return Ok(Discovered::Early {
                ready,
                build_failed: true,
                selection: None,
            });
        }
        Err(BuildError::Refused(why)) => {
            return Err(EngineError::Usage(format!(
                "cargo refused the selection ({why}); see its message above"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    // From cargo's cache of rustc's answers, which this build brought up to date.
    let lib_dirs =
        crate::libdir::test_lib_dirs(cargo.target.as_deref(), &discover::target_dir(cargo, &meta));
    let suites = discover::suites(built, &meta, cargo, &lib_dirs, &limits_of(&config, run));
    let log_dir = discover::reap_dir(cargo, &meta).join(&run.run_id);
    Ok(Discovered::Suites(Found {
        suites,
        log_dir,
        config,
        ready,
        selection: None,
    }))
}

/// `cargo reap run`'s one suite.
fn from_command(
    run: &Run<'_>,
    program: &str,
    chosen: Option<(crate::containment::Isolation, String)>,
    guard: Option<ForkedGuard>,
) -> Result<Found, EngineError> {
    let mut ready = run.ready(chosen, guard)?;
    super::phase(run, "isolation and guard");
    run.announce(&mut ready);
    let config = run.runner_config()?;
    super::phase(run, "configuration");
    let suite = discover::command_suite(program, &limits_of(&config, run))?;
    Ok(Found {
        suites: vec![suite],
        log_dir: run.command_scratch.clone(),
        config,
        ready,
        selection: None,
    })
}

/// The selection of a run: the fingerprint of every selected suite (before
/// the partition) and of the test binaries' arguments, and the share taken.
/// Shards of one CI matrix agree on the fingerprint (`cargo reap merge`).
fn selection(suites: &[Suite], test_args: &[String], partition: Option<Partition>) -> Selection {
    Selection {
        fingerprint: fingerprint(suites.iter().map(|s| s.id.as_str()), test_args),
        suites_total: suites.len(),
        partition: partition.map(|p| p.to_string()),
    }
}

/// FNV-1a (64 bit, 16 hex digits) of the sorted suite ids, a NUL, then the
/// arguments, each followed by a newline.
fn fingerprint<'a>(ids: impl Iterator<Item = &'a str>, args: &[String]) -> String {
    let mut ids: Vec<&str> = ids.collect();
    ids.sort_unstable();
    let mut bytes = Vec::new();
    for id in ids {
        bytes.extend_from_slice(id.as_bytes());
        bytes.push(b'\n');
    }
    bytes.push(0);
    for a in args {
        bytes.extend_from_slice(a.as_bytes());
        bytes.push(b'\n');
    }
    format!("{:016x}", crate::options::fnv1a(&bytes))
}

/// A suite's limits: flags over its configuration over the defaults.
fn limits_of<'a>(config: &'a Config, run: &'a Run<'_>) -> impl Fn(&str, &str) -> Limits + 'a {
    move |id, package| config.limits_for(id, package, run.reap.limits, Limits::default())
}

/// Leftovers of a dead run do not invalidate this one: a failed sweep is
/// a loud warning, and `cargo reap clean` retries it with a full error.
fn said_sweep(sweeper: super::setup::Sweeper) {
    match sweeper.join() {
        Ok(Ok(swept)) => {
            for line in swept.lines(false) {
                emit(&format!("cargo-reap: stale sweep: {line}"));
            }
        }
        Ok(Err(e)) => emit(&format!(
            "cargo-reap: warning: stale sweep of dead runs failed: {e} (retry: cargo reap clean)"
        )),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn fingerprint_is_of_the_set_and_the_arguments() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let f = fingerprint(["p::b", "p::a"].into_iter(), &args(&["x"]));
        assert_eq!(f.len(), 16);
        assert_eq!(f, fingerprint(["p::a", "p::b"].into_iter(), &args(&["x"])));
        assert_ne!(f, fingerprint(["p::a"].into_iter(), &args(&["x"])));
        assert_ne!(f, fingerprint(["p::a", "p::b"].into_iter(), &args(&[])));
        // Ids and arguments cannot trade places.
        assert_ne!(
            fingerprint(["p::a"].into_iter(), &args(&["b"])),
            fingerprint(["p::a", "b"].into_iter(), &args(&[]))
        );
    }
}
