//! Runner mode: `cargo-reap run -- BINARY` as cargo's target runner (or
//! nextest's wrapper script) starts once per test binary. Measured side by
//! side with the bare binary: [`CALLS`] calls in a row per sample, as cargo
//! makes them for short binaries, and [`SPACED_CALLS`] calls each after a
//! [`PAUSE`] (the pause not timed), as after a longer test binary: the first
//! move of a process into a cgroup after such an idle spell waits out an RCU
//! grace period, which a suite born in its leaf never does.

use std::fmt::Write;

use anyhow::{bail, Result};

use super::gen::Workspace;
use super::procs::{self, Sample};
use super::stats::{self, median, paired};
use super::{alternate, walls, Ctx, Job, Mode, Settings};

/// Calls in a row per sample.
pub const CALLS: usize = 20;

/// Calls per sample after an idle spell.
pub const SPACED_CALLS: usize = 5;

/// The idle spell before each of [`SPACED_CALLS`].
pub const PAUSE: std::time::Duration = std::time::Duration::from_millis(300);

/// Per-call wall times (s), one entry per repetition, paired by index.
pub struct RunnerMode {
    pub binary: String,
    pub bare: Vec<f64>,
    /// Indexed like [`Mode::BOTH`].
    pub reap: [Vec<f64>; 2],
    /// The same, each call after [`PAUSE`].
    pub spaced_bare: Vec<f64>,
    pub spaced: [Vec<f64>; 2],
}

impl RunnerMode {
    /// Median of the per-repetition differences: the cost of one call (s).
    pub fn overhead(&self, k: usize) -> f64 {
        median(&paired(&self.reap[k], &self.bare, |x, y| x - y))
    }

    /// [`RunnerMode::overhead`] after an idle spell.
    pub fn spaced_overhead(&self, k: usize) -> f64 {
        median(&paired(&self.spaced[k], &self.spaced_bare, |x, y| x - y))
    }
}

/// [`CALLS`] runs of `cmd()` in a row; the wall time of one call.
pub fn calls(name: &str, cmd: impl FnMut() -> std::process::Command) -> Result<Sample> {
    calls_after(name, cmd, CALLS, std::time::Duration::ZERO)
}

/// [`SPACED_CALLS`] runs of `cmd()`, each after [`PAUSE`]; the wall time of one call.
pub fn spaced_calls(name: &str, cmd: impl FnMut() -> std::process::Command) -> Result<Sample> {
    calls_after(name, cmd, SPACED_CALLS, PAUSE)
}

/// `n` runs of `cmd()`, each after `pause` (not timed); the mean wall time of one call.
fn calls_after(
    name: &str,
    mut cmd: impl FnMut() -> std::process::Command,
    n: usize,
    pause: std::time::Duration,
) -> Result<Sample> {
    let mut total = std::time::Duration::ZERO;
    let mut last = None;
    for _ in 0..n {
        std::thread::sleep(pause);
        let s = procs::timed(&mut cmd(), false)?;
        total += s.wall;
        if !s.status.success() {
            bail!("{name}: {}", s.status);
        }
        last = Some(s);
    }
    let Some(mut s) = last else {
        bail!("{name}: no call")
    };
    s.wall = total / n as u32;
    Ok(s)
}

/// The first test binary of `a`, as cargo runs a test binary: in its
/// package, with its manifest dir set.
pub fn bare_call(a: &Workspace) -> std::process::Command {
    let mut c = procs::command(&a.binaries[0].path);
    c.current_dir(&a.dir).env("CARGO_MANIFEST_DIR", &a.dir);
    c
}

/// The same through `reap run --isolation MODE --` (the cargo-reap binary `reap`).
pub fn reap_call(reap: &std::path::Path, mode: Mode, a: &Workspace) -> std::process::Command {
    let mut c = procs::command(reap);
    c.args(["run", "--isolation", mode.arg(), "--"])
        .arg(&a.binaries[0].path)
        .current_dir(&a.dir)
        .env("CARGO_MANIFEST_DIR", &a.dir);
    c
}

pub fn phase(ctx: &Ctx, s: &Settings, a: &Workspace) -> Result<RunnerMode> {
    let b = &a.binaries[0];
    // As cargo runs a test binary: in its package, with its manifest dir set.
    let bare = || bare_call(a);
    let reap = move |mode: Mode| reap_call(&ctx.reap, mode, a);
    let mut jobs: Vec<Job<'_>> = vec![(
        format!("bare binary x{CALLS}"),
        Box::new(move || calls("bare", bare)),
    )];
    for mode in Mode::BOTH {
        jobs.push((
            format!("cargo-reap run {} x{CALLS}", mode.arg()),
            Box::new(move || calls("cargo-reap run", || reap(mode))),
        ));
    }
    jobs.push((
        format!("bare binary x{SPACED_CALLS} spaced"),
        Box::new(move || spaced_calls("bare", bare)),
    ));
    for mode in Mode::BOTH {
        jobs.push((
            format!("cargo-reap run {} x{SPACED_CALLS} spaced", mode.arg()),
            Box::new(move || spaced_calls("cargo-reap run", || reap(mode))),
        ));
    }
    let res = alternate("runner", s.reps, true, &mut jobs)?;
    Ok(RunnerMode {
        binary: b.target.clone(),
        bare: walls(&res[0]),
        reap: [walls(&res[1]), walls(&res[2])],
        spaced_bare: walls(&res[3]),
        spaced: [walls(&res[4]), walls(&res[5])],
    })
}

/// The goal: under 5 ms per call in cgroup mode.
pub fn target(r: &RunnerMode) -> (String, String, bool) {
    let cg = r.overhead(0);
    (
        "`cargo-reap run` as a target runner: overhead per call (median) < 5 ms, cgroup mode"
            .into(),
        format!(
            "{} per call (bare binary {}, cargo-reap run {}); after an idle spell of {} ms {}; process-group mode {}",
            stats::ms(cg),
            stats::ms(median(&r.bare)),
            stats::ms(median(&r.reap[0])),
            PAUSE.as_millis(),
            stats::ms(r.spaced_overhead(0)),
            stats::ms(r.overhead(1))
        ),
        cg < 0.005,
    )
}

/// `### Runner mode`: per call, bare and in both modes, in a row and after idle spells.
pub fn section(s: &mut String, r: &RunnerMode, reps: usize) {
    let _ = writeln!(
        s,
        "\n### Runner mode: `cargo-reap run -- BINARY` per call\n\n\
         The test binary `{}` of workspace (a), bare and as `cargo-reap run --isolation MODE -- BINARY`: \
         {CALLS} calls in a row per sample (as cargo runs short binaries through a target runner), and \
         {SPACED_CALLS} calls each after an idle spell of {} ms, not timed (as after a longer binary); \
         per call, median (min–max) of {reps} repetitions; overhead: median of the per-repetition differences.\n",
        r.binary,
        PAUSE.as_millis()
    );
    let _ = writeln!(
        s,
        "| mode | bare binary | cargo-reap run | overhead per call | bare, after idle | cargo-reap run, after idle | overhead after idle |\n|---|---|---|---|---|---|---|"
    );
    for (k, mode) in Mode::BOTH.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            mode.arg(),
            stats::spread_ms(&r.bare),
            stats::spread_ms(&r.reap[k]),
            stats::ms(r.overhead(k)),
            stats::spread_ms(&r.spaced_bare),
            stats::spread_ms(&r.spaced[k]),
            stats::ms(r.spaced_overhead(k))
        );
    }
}
