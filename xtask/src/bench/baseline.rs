//! `--baseline PATH`: another cargo-reap binary (an earlier commit's) against
//! this one, side by side in one run with the same harness: on workspace (a),
//! `cargo test` and both binaries with `--jobs 1` and with their default
//! jobs; then runner mode, one test binary of (a) called [`CALLS`] times in a
//! row, bare and through each binary's `cargo-reap run` in both isolation
//! modes. Every repetition runs every variant, in a rotating order.

use std::fmt::Write;
use std::path::Path;

use anyhow::Result;

use super::gen::Workspace;
use super::runner::{bare_call, calls, reap_call, spaced_calls, CALLS, PAUSE, SPACED_CALLS};
use super::stats::{self, median, paired};
use super::{alternate, walls, Ctx, Job, Mode, Settings, SERIAL};

/// Run the comparison; returns its tables (Markdown).
pub fn phase(ctx: &Ctx, s: &Settings, a: &Workspace, before: &Path) -> Result<String> {
    let bins = [("before", before), ("after", ctx.reap.as_path())];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Before / after, side by side\n\nbefore: `{}`; after: `{}`; {} repetitions after a warm-up, rotating order; medians (min–max); ratios: medians of the per-repetition ratios.\n",
        before.display(),
        ctx.reap.display(),
        s.reps
    );
    serial_and_parallel(ctx, s, a, &bins, &mut out)?;
    runner_mode(s, a, &bins, &mut out)?;
    Ok(out)
}

fn serial_and_parallel(
    ctx: &Ctx,
    s: &Settings,
    a: &Workspace,
    bins: &[(&str, &Path); 2],
    out: &mut String,
) -> Result<()> {
    let mut jobs: Vec<Job<'_>> = vec![(
        "a cargo test".into(),
        Box::new(move || ctx.run("a cargo test", ctx.cargo_test(a), 0, false)),
    )];
    for (label, bin) in bins.iter().copied() {
        for (kind, flags) in [("--jobs 1", &SERIAL[..]), ("parallel", &[][..])] {
            let name = format!("a reap {label} {kind}");
            jobs.push((
                name.clone(),
                Box::new(move || ctx.run(&name, ctx.reap_of(bin, a, flags), 0, false)),
            ));
        }
    }
    let res = alternate("baseline", s.reps, true, &mut jobs)?;
    let cargo = walls(&res[0]);
    let _ = writeln!(
        out,
        "Workspace (a), 40 suites: `cargo test` {}.\n\n| binary | `--jobs 1` | / cargo test | parallel | / cargo test |\n|---|---|---|---|---|",
        stats::spread_ms(&cargo)
    );
    for (k, (label, _)) in bins.iter().enumerate() {
        let serial = walls(&res[1 + 2 * k]);
        let par = walls(&res[2 + 2 * k]);
        let ratio = |x: &[f64]| median(&paired(x, &cargo, |x, y| x / y));
        let _ = writeln!(
            out,
            "| {label} | {} | {:.2}× | {} | {:.2}× |",
            stats::spread_ms(&serial),
            ratio(&serial),
            stats::spread_ms(&par),
            ratio(&par)
        );
    }
    Ok(())
}

fn runner_mode(
    s: &Settings,
    a: &Workspace,
    bins: &[(&str, &Path); 2],
    out: &mut String,
) -> Result<()> {
    let b = &a.binaries[0];
    let bare = || bare_call(a);
    let run = move |bin: &Path, mode: Mode| reap_call(bin, mode, a);
    let mut jobs: Vec<Job<'_>> = vec![(
        format!("bare binary x{CALLS}"),
        Box::new(move || calls("bare", bare)),
    )];
    for mode in Mode::BOTH {
        for (label, bin) in bins.iter().copied() {
            jobs.push((
                format!("run {label} {} x{CALLS}", mode.arg()),
                Box::new(move || calls("cargo-reap run", || run(bin, mode))),
            ));
        }
    }
    jobs.push((
        format!("bare binary x{SPACED_CALLS} spaced"),
        Box::new(move || spaced_calls("bare", bare)),
    ));
    for (label, bin) in bins.iter().copied() {
        jobs.push((
            format!("run {label} cgroup x{SPACED_CALLS} spaced"),
            Box::new(move || spaced_calls("cargo-reap run", || run(bin, Mode::Cgroup))),
        ));
    }
    let res = alternate("baseline runner", s.reps, true, &mut jobs)?;
    let bare = walls(&res[0]);
    let _ = writeln!(
        out,
        "\nRunner mode: `{}` of (a), {CALLS} calls in a row per sample; bare {} per call.\n\n| mode | before per call | before overhead | after per call | after overhead |\n|---|---|---|---|---|",
        b.target,
        stats::spread_ms(&bare)
    );
    let spaced_bare = walls(&res[5]);
    let rows = [
        (Mode::Cgroup.arg().to_string(), &bare, 1),
        (Mode::ProcessGroup.arg().to_string(), &bare, 3),
        (
            format!(
                "cgroup, each call after {} ms idle (bare {})",
                PAUSE.as_millis(),
                stats::spread_ms(&spaced_bare)
            ),
            &spaced_bare,
            6,
        ),
    ];
    for (label, base, k) in rows {
        let before = walls(&res[k]);
        let after = walls(&res[k + 1]);
        let over = |x: &[f64]| stats::ms(median(&paired(x, base, |x, y| x - y)));
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} |",
            stats::spread_ms(&before),
            over(&before),
            stats::spread_ms(&after),
            over(&after)
        );
    }
    Ok(())
}
