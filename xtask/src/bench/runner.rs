//! Runner mode: `cargo-reap run -- BINARY` as cargo's target runner (or
//! nextest's wrapper script) starts once per test binary. Measured side by
//! side with the bare binary: [`CALLS`] calls in a row per sample, as cargo
//! makes them, and the per-call cost compared.

use std::fmt::Write;
use std::time::Instant;

use anyhow::{bail, Result};

use super::gen::Workspace;
use super::procs::{self, Sample};
use super::stats::{self, median, paired};
use super::{alternate, walls, Ctx, Job, Mode, Settings};

/// Calls in a row per sample.
pub const CALLS: usize = 20;

/// Per-call wall times (s), one entry per repetition, paired by index.
pub struct RunnerMode {
    pub binary: String,
    pub bare: Vec<f64>,
    /// Indexed like [`Mode::BOTH`].
    pub reap: [Vec<f64>; 2],
}

impl RunnerMode {
    /// Median of the per-repetition differences: the cost of one call (s).
    pub fn overhead(&self, k: usize) -> f64 {
        median(&paired(&self.reap[k], &self.bare, |x, y| x - y))
    }
}

/// [`CALLS`] runs of `cmd()` in a row; the wall time of one call.
fn calls(name: &str, mut cmd: impl FnMut() -> std::process::Command) -> Result<Sample> {
    let t0 = Instant::now();
    let mut last = None;
    for _ in 0..CALLS {
        let s = procs::timed(&mut cmd(), false)?;
        if !s.status.success() {
            bail!("{name}: {}", s.status);
        }
        last = Some(s);
    }
    let Some(mut s) = last else {
        bail!("{name}: no call")
    };
    s.wall = t0.elapsed() / CALLS as u32;
    Ok(s)
}

pub fn phase(ctx: &Ctx, s: &Settings, a: &Workspace) -> Result<RunnerMode> {
    let b = &a.binaries[0];
    // As cargo runs a test binary: in its package, with its manifest dir set.
    let bare = || {
        let mut c = procs::command(&b.path);
        c.current_dir(&a.dir).env("CARGO_MANIFEST_DIR", &a.dir);
        c
    };
    let reap = move |mode: Mode| {
        let mut c = procs::command(&ctx.reap);
        c.args(["run", "--isolation", mode.arg(), "--"])
            .arg(&b.path)
            .current_dir(&a.dir)
            .env("CARGO_MANIFEST_DIR", &a.dir);
        c
    };
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
    let res = alternate("runner", s.reps, true, &mut jobs)?;
    Ok(RunnerMode {
        binary: b.target.clone(),
        bare: walls(&res[0]),
        reap: [walls(&res[1]), walls(&res[2])],
    })
}

/// The goal: under 5 ms per call in cgroup mode.
pub fn target(r: &RunnerMode) -> (String, String, bool) {
    let cg = r.overhead(0);
    (
        "`cargo-reap run` as a target runner: overhead per call (median) < 5 ms, cgroup mode"
            .into(),
        format!(
            "{} per call (bare binary {}, cargo-reap run {}); process-group mode {}",
            stats::ms(cg),
            stats::ms(median(&r.bare)),
            stats::ms(median(&r.reap[0])),
            stats::ms(r.overhead(1))
        ),
        cg < 0.005,
    )
}

/// `### Runner mode`: per call, bare and in both modes.
pub fn section(s: &mut String, r: &RunnerMode, reps: usize) {
    let _ = writeln!(
        s,
        "\n### Runner mode: `cargo-reap run -- BINARY` per call\n\n\
         The test binary `{}` of workspace (a), {CALLS} calls in a row per sample (as cargo runs \
         binaries through a target runner), bare and as `cargo-reap run --isolation MODE -- BINARY`; \
         per call, median (min–max) of {reps} repetitions; overhead: median of the per-repetition differences.\n",
        r.binary
    );
    let _ = writeln!(
        s,
        "| mode | bare binary | cargo-reap run | overhead per call |\n|---|---|---|---|"
    );
    for (k, mode) in Mode::BOTH.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            mode.arg(),
            stats::spread_ms(&r.bare),
            stats::spread_ms(&r.reap[k]),
            stats::ms(r.overhead(k))
        );
    }
}
