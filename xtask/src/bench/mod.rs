//! `cargo run --release -p xtask -- bench`: the benchmark behind BENCHMARKS.md.
//!
//! Phases, in order (each prints one line per run to stderr):
//! 1. build `cargo-reap` (release) and the synthetic workspaces under `target/bench/`;
//! 2. `compare`: `cargo test`, `cargo nextest run` and `cargo reap test` on
//!    workspaces (a), (b), (c), alternating per repetition, after a warm-up;
//! 3. `overhead`: on (a), the test binaries run bare in sequence, cargo-reap's
//!    fixed steps (`cargo metadata`, no-op `cargo test --no-run`) alone, and
//!    cargo-reap on all suites and on one suite, in both isolation modes;
//! 4. `runner`: one test binary of (a) called 20 times in a row, bare and as
//!    `cargo-reap run -- BINARY` in both isolation modes (runner mode);
//! 5. `survivors`: cargo-reap on (a) with 5,000 unrelated `sleep` processes alive;
//! 6. `hang`: hang-kill latency from the JSON report;
//! 7. `idle`: cargo-reap's own CPU time while suites sleep;
//! 8. a check that nothing the benchmark started is left, then the report.
//!
//! With `--baseline PATH`, only [`baseline`]: another cargo-reap binary against
//! this one, side by side in one run (serial, parallel and runner mode).

mod baseline;
mod gen;
mod procs;
mod report;
mod runner;
mod stats;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use gen::Workspace;
use procs::Sample;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Measured repetitions of each timing, after one warm-up run [default: 7; with --quick: 2]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub reps: Option<u32>,
    /// A short run: 2 repetitions, one hang and one idle run per mode. Prints the
    /// figures; writes the results file only with --write
    #[arg(long)]
    pub quick: bool,
    /// Write the results file even with --quick
    #[arg(long, conflicts_with = "no_write")]
    pub write: bool,
    /// Only print the results; leave the results file alone
    #[arg(long)]
    pub no_write: bool,
    /// Unrelated idle processes alive during the survivor-collection runs
    #[arg(long, value_name = "N", default_value_t = 5000)]
    pub sleepers: usize,
    /// The results file; its generated section is replaced (relative: from the workspace root)
    #[arg(long, value_name = "PATH", default_value = "BENCHMARKS.md")]
    pub output: PathBuf,
    /// Benchmark this cargo-reap binary instead of building target/release/cargo-reap
    #[arg(long, value_name = "PATH")]
    pub cargo_reap: Option<PathBuf>,
    /// Only compare another cargo-reap binary (e.g. one built from an earlier
    /// commit) with this one, side by side in one run: `cargo test` against
    /// both with `--jobs 1` and in parallel on (a), and runner mode per call;
    /// prints the figures, writes nothing
    #[arg(long, value_name = "PATH")]
    pub baseline: Option<PathBuf>,
}

/// How many runs each phase makes.
#[derive(Debug, Clone)]
pub struct Settings {
    pub quick: bool,
    pub reps: usize,
    pub after_reps: usize,
    pub hang_reps: usize,
    pub idle_reps: usize,
    pub sleepers: usize,
}

impl Settings {
    fn from(args: &BenchArgs) -> Settings {
        let reps = args
            .reps
            .map(|r| r as usize)
            .unwrap_or(if args.quick { 2 } else { 7 });
        Settings {
            quick: args.quick,
            reps,
            after_reps: reps.div_ceil(2),
            hang_reps: if args.quick { 1 } else { reps.min(5) },
            idle_reps: if args.quick { 1 } else { reps.min(3) },
            sleepers: args.sleepers,
        }
    }
}

/// cargo-reap's isolation modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Cgroup,
    ProcessGroup,
}

impl Mode {
    pub const BOTH: [Mode; 2] = [Mode::Cgroup, Mode::ProcessGroup];

    pub fn arg(self) -> &'static str {
        match self {
            Mode::Cgroup => "cgroup",
            Mode::ProcessGroup => "process-group",
        }
    }
}

/// Tools and paths every phase uses.
pub struct Ctx {
    pub cargo: PathBuf,
    pub nextest: Option<PathBuf>,
    pub reap: PathBuf,
    pub bench_dir: PathBuf,
    logs: PathBuf,
    /// Pids of every command run (cargo-reap's run ids end with its pid).
    pids: RefCell<BTreeSet<i32>>,
}

impl Ctx {
    /// Run a timed command whose stderr goes to `target/bench/logs/NAME.stderr`;
    /// fail with that file's end unless it exits with `expect`.
    fn run(&self, name: &str, mut cmd: Command, expect: i32, watch: bool) -> Result<Sample> {
        let log = self.logs.join(format!("{}.stderr", slug(name)));
        cmd.stderr(File::create(&log).with_context(|| format!("creating {}", log.display()))?);
        let s = procs::timed(&mut cmd, watch)?;
        self.pids.borrow_mut().insert(s.pid);
        if s.status.code() != Some(expect) {
            bail!(
                "{name}: {} (expected exit code {expect}); the end of its stderr ({}):\n{}",
                s.status,
                log.display(),
                tail(&log, 30)
            );
        }
        Ok(s)
    }

    fn cargo(&self, ws: &Workspace) -> Command {
        let mut c = procs::command(&self.cargo);
        c.env("CARGO_TARGET_DIR", &ws.target_dir);
        c
    }

    fn cargo_test(&self, ws: &Workspace) -> Command {
        let mut c = self.cargo(ws);
        c.args(["test", "--offline", "--manifest-path"])
            .arg(&ws.manifest);
        c
    }

    fn nextest(&self, ws: &Workspace) -> Option<Command> {
        let mut c = procs::command(self.nextest.as_ref()?);
        c.args(["nextest", "run", "--offline", "--manifest-path"])
            .arg(&ws.manifest)
            .env("CARGO", &self.cargo)
            .env("CARGO_TARGET_DIR", &ws.target_dir);
        Some(c)
    }

    fn reap(&self, ws: &Workspace, args: &[&str]) -> Command {
        self.reap_of(&self.reap, ws, args)
    }

    /// `cargo-reap test` on `ws` with the binary `reap`.
    fn reap_of(&self, reap: &Path, ws: &Workspace, args: &[&str]) -> Command {
        let mut c = procs::command(reap);
        c.args(["test", "--offline", "--manifest-path"])
            .arg(&ws.manifest)
            .args(args)
            .env("CARGO", &self.cargo)
            .env("CARGO_TARGET_DIR", &ws.target_dir);
        c
    }

    /// cargo-reap's first step: `cargo metadata --no-deps`.
    fn metadata(&self, ws: &Workspace) -> Command {
        let mut c = self.cargo(ws);
        c.args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
        ])
        .arg(&ws.manifest);
        c
    }

    /// cargo-reap's second step: the (no-op) build with JSON messages.
    fn build_noop(&self, ws: &Workspace) -> Command {
        let mut c = self.cargo(ws);
        c.args([
            "test",
            "--no-run",
            "--message-format=json-render-diagnostics",
            "--offline",
            "--manifest-path",
        ])
        .arg(&ws.manifest);
        c
    }

    /// Every test binary of `ws` run bare, `workers` at a time (each worker
    /// takes the next binary when its last one exits): what a runner with no
    /// cost of its own at all could do after the build step.
    fn bare_parallel(&self, ws: &Workspace, workers: usize) -> Result<Sample> {
        let next = std::sync::Mutex::new(ws.binaries.iter());
        let before = procs::children_cpu()?;
        let t0 = Instant::now();
        let statuses: Vec<Result<std::process::ExitStatus>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| -> Result<std::process::ExitStatus> {
                        let mut last = None;
                        loop {
                            let b = next.lock().unwrap_or_else(|p| p.into_inner()).next();
                            let Some(b) = b else { break };
                            let mut cmd = procs::command(&b.path);
                            let status = cmd.current_dir(&ws.dir).status()?;
                            last = Some(passed(ws, b, status)?);
                        }
                        last.context("no binaries")
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker panicked")))
                })
                .collect()
        });
        let wall = t0.elapsed();
        let mut status = None;
        for s in statuses {
            status = Some(s?);
        }
        bare_sample(wall, before, status)
    }

    /// The test binaries run bare, one after the other, as cargo test does
    /// (working directory: the package root; output discarded).
    fn bare(&self, ws: &Workspace, targets: &[&str]) -> Result<Sample> {
        let before = procs::children_cpu()?;
        let t0 = Instant::now();
        let mut status = None;
        for t in targets {
            let b = ws.binary(t)?;
            let mut cmd = procs::command(&b.path);
            cmd.current_dir(&ws.dir);
            let s = procs::timed(&mut cmd, false)?;
            status = Some(passed(ws, b, s.status)?);
        }
        bare_sample(t0.elapsed(), before, status)
    }
}

/// A bare test binary's status, or an error naming it when it failed.
fn passed(
    ws: &Workspace,
    b: &gen::Binary,
    status: std::process::ExitStatus,
) -> Result<std::process::ExitStatus> {
    if !status.success() {
        bail!("{}: {} exited with {status}", ws.spec.key, b.target);
    }
    Ok(status)
}

/// The sample of bare binaries that ran for `wall` since the children's CPU
/// read `before`; `status` is the last one's (none: there were no binaries).
fn bare_sample(
    wall: std::time::Duration,
    before: std::time::Duration,
    status: Option<std::process::ExitStatus>,
) -> Result<Sample> {
    Ok(Sample {
        pid: 0,
        wall,
        tree_cpu: procs::children_cpu()?.saturating_sub(before),
        status: status.context("no binaries")?,
        runner: None,
    })
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

type Job<'a> = (String, Box<dyn FnMut() -> Result<Sample> + 'a>);

/// The flags of a serial cargo-reap run.
const SERIAL: [&str; 2] = ["--jobs", "1"];

/// Run every job once per repetition (the order rotates each repetition),
/// after one warm-up round if asked; the measured samples per job.
fn alternate(
    phase: &str,
    reps: usize,
    warmup: bool,
    jobs: &mut [Job<'_>],
) -> Result<Vec<Vec<Sample>>> {
    let n = jobs.len();
    let mut out: Vec<Vec<Sample>> = (0..n).map(|_| Vec::with_capacity(reps)).collect();
    let rounds = reps + usize::from(warmup);
    for r in 0..rounds {
        let measured = !warmup || r > 0;
        let tag = if measured {
            format!("{}/{reps}", r + usize::from(!warmup))
        } else {
            "warm-up".into()
        };
        for k in 0..n {
            let i = (k + r) % n;
            let (name, job) = &mut jobs[i];
            let s = job().with_context(|| format!("{phase}: {name}"))?;
            eprintln!(
                "[{phase}] {tag:>7}  {name:<34} {}",
                stats::secs(s.wall.as_secs_f64())
            );
            if measured {
                out[i].push(s);
            }
        }
    }
    Ok(out)
}

pub fn walls(v: &[Sample]) -> Vec<f64> {
    v.iter().map(|s| s.wall.as_secs_f64()).collect()
}

/// One workspace of the comparison: wall times (s) per tool.
pub struct CompareRow {
    pub title: String,
    pub cargo_test: Vec<f64>,
    pub nextest: Option<Vec<f64>>,
    pub reap: Vec<f64>,
    pub reap_parallel: Vec<f64>,
    /// (a) only: its test binaries bare, as many at a time as CPUs.
    pub bare_parallel: Option<Vec<f64>>,
}

fn phase_compare(ctx: &Ctx, s: &Settings, wss: &[&Workspace]) -> Result<Vec<CompareRow>> {
    let mut jobs: Vec<Job<'_>> = Vec::new();
    // (workspace, tool) of each job: 0 cargo test, 1 nextest, 2 reap, 3 reap
    // parallel, 4 the binaries bare, as many at a time as CPUs ((a) only).
    let mut what = Vec::new();
    for (w, ws) in wss.iter().enumerate() {
        let key = ws.spec.key;
        let name = format!("{key} cargo test");
        jobs.push((
            name.clone(),
            Box::new(move || ctx.run(&name, ctx.cargo_test(ws), 0, false)),
        ));
        what.push((w, 0));
        if ctx.nextest.is_some() {
            let name = format!("{key} cargo nextest run");
            jobs.push((
                name.clone(),
                Box::new(move || {
                    let cmd = ctx.nextest(ws).context("cargo-nextest")?;
                    ctx.run(&name, cmd, 0, false)
                }),
            ));
            what.push((w, 1));
        }
        let name = format!("{key} cargo reap test");
        jobs.push((
            name.clone(),
            Box::new(move || ctx.run(&name, ctx.reap(ws, &SERIAL), 0, false)),
        ));
        what.push((w, 2));
        let name = format!("{key} cargo reap test (parallel)");
        jobs.push((
            name.clone(),
            Box::new(move || ctx.run(&name, ctx.reap(ws, &[]), 0, false)),
        ));
        what.push((w, 3));
        if w == 0 {
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
            jobs.push((
                format!("{key} bare binaries, {workers} at a time"),
                Box::new(move || ctx.bare_parallel(ws, workers)),
            ));
            what.push((w, 4));
        }
    }
    let res = alternate("compare", s.reps, true, &mut jobs)?;
    let mut rows: Vec<CompareRow> = wss
        .iter()
        .map(|ws| CompareRow {
            title: ws.spec.title.to_string(),
            cargo_test: Vec::new(),
            nextest: None,
            reap: Vec::new(),
            reap_parallel: Vec::new(),
            bare_parallel: None,
        })
        .collect();
    for ((w, tool), samples) in what.into_iter().zip(res) {
        let t = walls(&samples);
        let row = &mut rows[w];
        match tool {
            0 => row.cargo_test = t,
            1 => row.nextest = Some(t),
            2 => row.reap = t,
            3 => row.reap_parallel = t,
            _ => row.bare_parallel = Some(t),
        }
    }
    Ok(rows)
}

/// What the JSON report of one run says about where the time went.
#[derive(Debug, Clone)]
pub struct Breakdown {
    pub wall: f64,
    pub duration: f64,
    pub sum_suites: f64,
    pub sum_attempts: f64,
    pub suites: usize,
    /// Each attempt's collection, from its binary's exit to its survivors
    /// collected, its output read and its containment removed, as cargo-reap
    /// timed it to the µs (`RUST_LOG=cargo_reap::timing=debug`), in seconds.
    pub collected: Vec<f64>,
}

/// Wall times (s) on workspace (a), one entry per repetition, paired by index:
/// the binaries bare and cargo-reap (serial), on all suites and on one.
#[derive(Debug, Clone, Default)]
pub struct OverheadSet {
    pub bare_all: Vec<f64>,
    pub bare_one: Vec<f64>,
    /// Indexed like [`Mode::BOTH`].
    pub reap_all: [Vec<f64>; 2],
    pub reap_one: [Vec<f64>; 2],
}

impl OverheadSet {
    /// Concatenation (pairs stay pairs: both sets are paired within themselves).
    pub fn chain(&self, other: &OverheadSet) -> OverheadSet {
        let cat = |a: &Vec<f64>, b: &Vec<f64>| a.iter().chain(b).copied().collect::<Vec<f64>>();
        OverheadSet {
            bare_all: cat(&self.bare_all, &other.bare_all),
            bare_one: cat(&self.bare_one, &other.bare_one),
            reap_all: [
                cat(&self.reap_all[0], &other.reap_all[0]),
                cat(&self.reap_all[1], &other.reap_all[1]),
            ],
            reap_one: [
                cat(&self.reap_one[0], &other.reap_one[0]),
                cat(&self.reap_one[1], &other.reap_one[1]),
            ],
        }
    }
}

pub struct Overhead {
    pub suites: usize,
    pub set: OverheadSet,
    pub metadata: Vec<f64>,
    pub build_noop: Vec<f64>,
    /// Indexed like [`Mode::BOTH`].
    /// Per mode, [`BREAKDOWN_RUNS`] runs each.
    pub breakdown: Vec<Vec<Breakdown>>,
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn ms_field(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN) / 1000.0
}

/// The jobs of an [`OverheadSet`] (bare all, bare one, then per mode reap
/// all and reap one), named with `suffix`.
fn overhead_jobs<'a>(ctx: &'a Ctx, a: &'a Workspace, suffix: &str) -> Vec<Job<'a>> {
    let first = a.binaries[0].target.as_str();
    let all: Vec<&'a str> = a.binaries.iter().map(|b| b.target.as_str()).collect();
    let mut jobs: Vec<Job<'a>> = vec![
        (
            format!("bare, all suites{suffix}"),
            Box::new(move || ctx.bare(a, &all)),
        ),
        (
            format!("bare, 1 suite{suffix}"),
            Box::new(move || ctx.bare(a, &[first])),
        ),
    ];
    for mode in Mode::BOTH {
        let name = format!("reap {}, all suites{suffix}", mode.arg());
        jobs.push((
            name.clone(),
            Box::new(move || {
                let mut args = vec!["--isolation", mode.arg()];
                args.extend(SERIAL);
                ctx.run(&name, ctx.reap(a, &args), 0, false)
            }),
        ));
        let name = format!("reap {}, 1 suite{suffix}", mode.arg());
        jobs.push((
            name.clone(),
            Box::new(move || {
                let mut args = vec!["--isolation", mode.arg(), "--test", first];
                args.extend(SERIAL);
                ctx.run(&name, ctx.reap(a, &args), 0, false)
            }),
        ));
    }
    jobs
}

/// The samples of [`overhead_jobs`] (in that order) as a set.
fn overhead_set(res: &[Vec<Sample>]) -> OverheadSet {
    OverheadSet {
        bare_all: walls(&res[0]),
        bare_one: walls(&res[1]),
        reap_all: [walls(&res[2]), walls(&res[4])],
        reap_one: [walls(&res[3]), walls(&res[5])],
    }
}

fn phase_overhead(ctx: &Ctx, s: &Settings, a: &Workspace) -> Result<Overhead> {
    let mut jobs = overhead_jobs(ctx, a, "");
    jobs.push((
        "cargo metadata --no-deps".into(),
        Box::new(move || ctx.run("cargo metadata", ctx.metadata(a), 0, false)),
    ));
    jobs.push((
        "cargo test --no-run (no-op)".into(),
        Box::new(move || ctx.run("cargo test --no-run", ctx.build_noop(a), 0, false)),
    ));
    let res = alternate("overhead", s.reps, true, &mut jobs)?;
    drop(jobs);
    let breakdown = Mode::BOTH
        .iter()
        .map(|&mode| breakdown_runs(ctx, a, mode, "", BREAKDOWN_RUNS))
        .collect::<Result<Vec<_>>>()?;
    Ok(Overhead {
        suites: a.spec.suites(),
        set: overhead_set(&res[..6]),
        metadata: walls(&res[6]),
        build_noop: walls(&res[7]),
        breakdown,
    })
}

/// Extra `--json` runs per mode for the breakdowns (not in the timings).
pub const BREAKDOWN_RUNS: usize = 3;

/// `n` more `--jobs 1` runs with `--json` on `a`, for where the time goes.
fn breakdown_runs(
    ctx: &Ctx,
    a: &Workspace,
    mode: Mode,
    label: &str,
    n: usize,
) -> Result<Vec<Breakdown>> {
    let mut out = Vec::new();
    for i in 0..n {
        let json = ctx
            .bench_dir
            .join(format!("overhead-{}{label}-{i}.json", mode.arg()));
        let json_arg = json.display().to_string();
        let mut args = vec!["--isolation", mode.arg(), "--json", &json_arg];
        args.extend(SERIAL);
        let name = format!("reap {} --json{label}", mode.arg());
        let mut cmd = ctx.reap(a, &args);
        cmd.env("RUST_LOG", "cargo_reap::timing=debug");
        let sample = ctx.run(&name, cmd, 0, false)?;
        let log = ctx.logs.join(format!("{}.stderr", slug(&name)));
        let collected = collection_times(
            &std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?,
        );
        let r = read_json(&json)?;
        let suites = r["suites"].as_array().context("report without suites")?;
        out.push(Breakdown {
            wall: sample.wall.as_secs_f64(),
            duration: ms_field(&r["duration_ms"]),
            sum_suites: suites.iter().map(|x| ms_field(&x["duration_ms"])).sum(),
            sum_attempts: suites
                .iter()
                .flat_map(|x| x["attempts"].as_array().into_iter().flatten())
                .map(|x| ms_field(&x["duration_ms"]))
                .sum(),
            suites: suites.len(),
            collected,
        });
    }
    Ok(out)
}

/// The `collected in N us` figures of a run's stderr (its timing trace), in seconds.
fn collection_times(stderr: &str) -> Vec<f64> {
    stderr
        .lines()
        .filter_map(|l| l.split("collected in ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse::<f64>().ok())
        .map(|us| us / 1e6)
        .collect()
}

impl Breakdown {
    /// Per suite, after its binary exited: settle, survivor check, log, leaf
    /// removal — the collection itself.
    pub fn collection_per_suite(&self) -> f64 {
        (self.sum_suites - self.sum_attempts) / self.suites as f64
    }

    /// The median of [`Breakdown::collected`] over `runs` (all their
    /// attempts pooled); NaN without any.
    pub fn collection(runs: &[Breakdown]) -> f64 {
        let all: Vec<f64> = runs
            .iter()
            .flat_map(|b| b.collected.iter().copied())
            .collect();
        stats::median(&all)
    }
}

pub struct Survivors {
    pub sleepers: usize,
    pub started_in: f64,
    pub processes_with: usize,
    pub processes_without: usize,
    pub reaped: usize,
    /// With the sleepers alive.
    pub with: OverheadSet,
    /// Without them, after they were killed.
    pub after: OverheadSet,
    /// `--json` runs with the sleepers alive, per mode (like `Overhead::breakdown`).
    pub breakdown_with: Vec<Vec<Breakdown>>,
    /// The same without them: just before they start and just after they
    /// are killed (bracketing the runs with them against the machine's drift).
    pub breakdown_without: Vec<Vec<Breakdown>>,
}

fn phase_survivors(ctx: &Ctx, s: &Settings, a: &Workspace) -> Result<Survivors> {
    let breakdowns = |label: &str| {
        Mode::BOTH
            .iter()
            .map(|&mode| breakdown_runs(ctx, a, mode, label, BREAKDOWN_RUNS))
            .collect::<Result<Vec<_>>>()
    };
    let mut breakdown_without = breakdowns("-before-sleepers")?;
    let processes_without = procs::process_count()?;
    eprintln!("[survivors] starting {} sleepers", s.sleepers);
    let sleepers = procs::Sleepers::start(s.sleepers)?;
    let processes_with = procs::process_count()?;
    eprintln!(
        "[survivors] {} sleepers started in {}; {} processes on the machine",
        sleepers.count,
        stats::secs(sleepers.started_in.as_secs_f64()),
        processes_with
    );
    let with = {
        let mut jobs = overhead_jobs(ctx, a, &format!(" + {} sleepers", s.sleepers));
        overhead_set(&alternate("survivors", s.reps, true, &mut jobs)?)
    };
    let breakdown_with = breakdowns("-sleepers")?;
    let started_in = sleepers.started_in.as_secs_f64();
    let count = sleepers.count;
    let reaped = procs::kill_sleepers();
    drop(sleepers);
    eprintln!("[survivors] {reaped} sleepers killed and reaped");
    for (without, after) in breakdown_without
        .iter_mut()
        .zip(breakdowns("-after-sleepers")?)
    {
        without.extend(after);
    }
    let after = {
        let mut jobs = overhead_jobs(ctx, a, " (sleepers gone)");
        overhead_set(&alternate("survivors", s.after_reps, false, &mut jobs)?)
    };
    Ok(Survivors {
        sleepers: count,
        started_in,
        processes_with,
        processes_without,
        reaped,
        with,
        after,
        breakdown_with,
        breakdown_without,
    })
}

pub struct HangMode {
    pub mode: Mode,
    /// Attempt duration − timeout (s), tree dying on SIGTERM.
    pub term: Vec<f64>,
    /// Attempt duration − timeout − grace (s), tree ignoring SIGTERM.
    pub ignore: Vec<f64>,
    /// Processes of each hang when the kill fired (term, ignore), last run.
    pub processes: (usize, usize),
}

pub const HANG_TIMEOUT: f64 = 1.0;
pub const HANG_GRACE: f64 = 1.0;

fn phase_hang(ctx: &Ctx, s: &Settings, ws: &Workspace) -> Result<Vec<HangMode>> {
    let mut out: Vec<HangMode> = Mode::BOTH
        .into_iter()
        .map(|mode| HangMode {
            mode,
            term: Vec::new(),
            ignore: Vec::new(),
            processes: (0, 0),
        })
        .collect();
    for r in 0..s.hang_reps {
        for k in 0..out.len() {
            let k = (k + r) % out.len();
            let mode = out[k].mode;
            let json = ctx.bench_dir.join(format!("hang-{}.json", mode.arg()));
            let json_arg = json.display().to_string();
            let name = format!("reap {} hang", mode.arg());
            let mut args = vec![
                "--isolation",
                mode.arg(),
                "--timeout",
                "1s",
                "--grace",
                "1s",
                "--hang-retries",
                "0",
                "--json",
                &json_arg,
            ];
            args.extend(SERIAL);
            let sample = ctx.run(&name, ctx.reap(ws, &args), 102, false)?;
            let report = read_json(&json)?;
            let attempt = |target: &str| -> Result<(f64, usize)> {
                let suite = report["suites"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|x| x["target"] == target)
                    .with_context(|| format!("no suite {target} in {}", json.display()))?;
                let a = &suite["attempts"][0];
                if a["timed_out"] != true {
                    bail!(
                        "{target}: the attempt did not time out ({})",
                        json.display()
                    );
                }
                let procs = a["hang_processes"].as_array().map_or(0, |v| v.len());
                Ok((ms_field(&a["duration_ms"]), procs))
            };
            let (term, tp) = attempt("hang_term")?;
            let (ignore, ip) = attempt("hang_ignore_term")?;
            let m = &mut out[k];
            m.term.push(term - HANG_TIMEOUT);
            m.ignore.push(ignore - HANG_TIMEOUT - HANG_GRACE);
            m.processes = (tp, ip);
            eprintln!(
                "[hang] {:>7}  {name:<34} {}  beyond timeout (SIGTERM kills): {}, beyond timeout+grace (SIGTERM ignored): {}",
                format!("{}/{}", r + 1, s.hang_reps),
                stats::secs(sample.wall.as_secs_f64()),
                stats::ms(term - HANG_TIMEOUT),
                stats::ms(ignore - HANG_TIMEOUT - HANG_GRACE),
            );
        }
    }
    Ok(out)
}

pub struct IdleMode {
    pub mode: Mode,
    pub wall: Vec<f64>,
    /// cargo-reap's own user+sys (runner + lifeline guard), s.
    pub runner_cpu: Vec<f64>,
    /// runner CPU / wall in the middle of the run (suites sleeping).
    pub steady: Vec<f64>,
    /// Everything the run waited for: runner, cargo, suites (getrusage), s.
    pub tree_cpu: Vec<f64>,
}

fn phase_idle(ctx: &Ctx, s: &Settings, ws: &Workspace) -> Result<Vec<IdleMode>> {
    let mut jobs: Vec<Job<'_>> = Mode::BOTH
        .into_iter()
        .map(|mode| {
            let name = format!("reap {} idle", mode.arg());
            let job: Job<'_> = (
                name.clone(),
                Box::new(move || {
                    ctx.run(&name, ctx.reap(ws, &["--isolation", mode.arg()]), 0, true)
                }),
            );
            job
        })
        .collect();
    let res = alternate("idle", s.idle_reps, false, &mut jobs)?;
    Ok(Mode::BOTH
        .into_iter()
        .zip(res)
        .map(|(mode, v)| IdleMode {
            mode,
            wall: walls(&v),
            runner_cpu: v
                .iter()
                .map(|x| {
                    x.runner
                        .as_ref()
                        .map_or(f64::NAN, |r| r.total.as_secs_f64())
                })
                .collect(),
            steady: v
                .iter()
                .map(|x| {
                    x.runner
                        .as_ref()
                        .and_then(|r| r.steady_fraction)
                        .unwrap_or(f64::NAN)
                })
                .collect(),
            tree_cpu: v.iter().map(|x| x.tree_cpu.as_secs_f64()).collect(),
        })
        .collect())
}

/// What was found alive (and then killed) after the run.
pub struct Leftovers {
    pub processes: Vec<String>,
    pub cgroup_leaves: Vec<String>,
}

/// The runner's pid in a cargo-reap run id: `<ms hex>-<pid>[-<pid ns hex>]`.
fn run_pid(run_id: &str) -> Option<i32> {
    run_id.split('-').nth(1)?.parse().ok()
}

/// Kill and list every process the benchmark started that is still alive: the sleepers, the
/// hang children, anything running a binary under `target/bench/` or tagged by one of its runs.
fn leftover_processes(ctx: &Ctx) -> Result<Vec<String>> {
    let pids = ctx.pids.borrow();
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for p in procs::scan_processes()? {
        if p.pid == me {
            continue;
        }
        let args: Vec<&str> = p.cmdline.iter().map(String::as_str).collect();
        let sentinel = matches!(
            args.as_slice(),
            ["sleep", procs::SLEEPER_ARG] | ["sleep", "100007"] | ["sleep", "100008"]
        ) || args.iter().any(|a| a.contains("sleep 100008"));
        // Not readable (gone meanwhile, a zombie): nothing runs from there.
        let bench_exe = reap_probe::exe(p.pid)
            .ok()
            .flatten()
            .is_some_and(|e| Path::new(&e).starts_with(&ctx.bench_dir));
        let tagged = p
            .tag
            .as_deref()
            .and_then(|t| t.split_once('/'))
            .and_then(|(run, _)| run_pid(run))
            .is_some_and(|run| pids.contains(&run));
        if sentinel || bench_exe || tagged {
            out.push(format!("{} {}", p.pid, p.cmdline.join(" ")));
            match nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.pid),
                nix::sys::signal::Signal::SIGKILL,
            ) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => eprintln!("bench: cannot kill leftover {}: {e}", p.pid),
            }
        }
    }
    Ok(out)
}

/// The cgroup leaves of the benchmark's cargo-reap runs left beside the runner's cgroup.
fn leftover_leaves(ctx: &Ctx) -> Vec<String> {
    let Some(dir) = procs::own_cgroup_dir() else {
        return Vec::new();
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.collect::<Result<Vec<_>, _>>(),
        Err(e) => Err(e),
    };
    let entries = entries.unwrap_or_else(|e| {
        eprintln!(
            "bench: cannot list {} for leftover leaves: {e}",
            dir.display()
        );
        Vec::new()
    });
    let pids = ctx.pids.borrow();
    entries
        .iter()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("cargo-reap.")
                .and_then(|rest| run_pid(rest.split('.').next().unwrap_or("")))
                .is_some_and(|run| pids.contains(&run))
        })
        .map(|e| e.path().display().to_string())
        .collect()
}

fn check_leftovers(ctx: &Ctx) -> Result<Leftovers> {
    Ok(Leftovers {
        processes: leftover_processes(ctx)?,
        cgroup_leaves: leftover_leaves(ctx),
    })
}

/// Everything the report shows.
pub struct Results {
    pub settings: Settings,
    pub machine: report::Machine,
    pub nextest: Option<String>,
    pub isolation_note: String,
    pub compare: Vec<CompareRow>,
    pub overhead: Overhead,
    pub runner: runner::RunnerMode,
    pub survivors: Survivors,
    pub hang: Vec<HangMode>,
    pub hang_title: String,
    pub idle: Vec<IdleMode>,
    pub idle_title: String,
    pub leftovers: Leftovers,
    pub build_time: f64,
    pub total_time: f64,
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Build cargo-reap in release mode; the path of the binary.
fn build_reap(cargo: &Path, root: &Path) -> Result<PathBuf> {
    eprintln!("xtask bench: cargo build --release -p cargo-reap");
    let out = procs::command(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "cargo-reap",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!(
            "cargo build --release -p cargo-reap failed ({})",
            out.status
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "cargo-reap")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .context("cargo build named no cargo-reap executable")
}

fn tool_output(program: &Path, args: &[&str]) -> Option<String> {
    procs::stdout_of(procs::command(program).args(args))
}

pub fn run(args: &BenchArgs) -> Result<()> {
    // First: SIGINT/SIGTERM/SIGHUP end everything the benchmark started.
    procs::install_signal_cleanup()?;
    let started = Instant::now();
    let settings = Settings::from(args);
    let (ctx, machine, nextest) = setup(args)?;
    let t_build = Instant::now();
    let wss = build_workspaces(&ctx)?;
    let build_time = t_build.elapsed().as_secs_f64();
    let [a, b, c, hang_ws, idle_ws] = &wss[..] else {
        unreachable!("five workspaces")
    };
    if let Some(before) = &args.baseline {
        let before = before
            .canonicalize()
            .with_context(|| format!("{}", before.display()))?;
        println!("{}", baseline::phase(&ctx, &settings, a, &before)?);
        let leftovers = check_leftovers(&ctx)?;
        if !leftovers.processes.is_empty() || !leftovers.cgroup_leaves.is_empty() {
            bail!(
                "left behind after the run (killed now): processes {:?}, cgroup leaves {:?}",
                leftovers.processes,
                leftovers.cgroup_leaves
            );
        }
        return Ok(());
    }
    let isolation_note = isolation_note(&ctx, a)?;

    let compare = phase_compare(&ctx, &settings, &[a, b, c])?;
    let overhead = phase_overhead(&ctx, &settings, a)?;
    let runner = runner::phase(&ctx, &settings, a)?;
    let survivors = phase_survivors(&ctx, &settings, a)?;
    let hang = phase_hang(&ctx, &settings, hang_ws)?;
    let idle = phase_idle(&ctx, &settings, idle_ws)?;
    // No wait needed: cargo-reap reaps its lifeline guard before it exits.
    let leftovers = check_leftovers(&ctx)?;

    let results = Results {
        settings,
        machine: machine.finish(),
        nextest,
        isolation_note,
        compare,
        overhead,
        runner,
        survivors,
        hang,
        hang_title: hang_ws.spec.title.to_string(),
        idle,
        idle_title: idle_ws.spec.title.to_string(),
        leftovers,
        build_time,
        total_time: started.elapsed().as_secs_f64(),
    };
    publish(args, &results)
}

/// The tools and directories of every phase, and the machine's description: the cargo-reap
/// binary (built unless given), cargo-nextest where installed (and its version).
fn setup(args: &BenchArgs) -> Result<(Ctx, report::Machine, Option<String>)> {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"));
    let bench_dir = root.join("target/bench");
    let logs = bench_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let machine = report::Machine::detect(&cargo, &root);

    let reap = match &args.cargo_reap {
        Some(p) => p
            .canonicalize()
            .with_context(|| format!("{}", p.display()))?,
        None => build_reap(&cargo, &root)?,
    };
    let nextest = ["/usr/local/bin/cargo-nextest"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| which("cargo-nextest"));
    let nextest_version = nextest
        .as_ref()
        .and_then(|n| tool_output(n, &["nextest", "--version"]))
        .map(|v| v.lines().next().unwrap_or("").to_string());
    if nextest.is_none() {
        eprintln!("xtask bench: cargo-nextest not found: its column is skipped");
    }
    let reap_version = tool_output(&reap, &["--version"]).context("cargo-reap --version failed")?;
    eprintln!("xtask bench: {reap_version} at {}", reap.display());
    let ctx = Ctx {
        cargo,
        nextest,
        reap,
        bench_dir,
        logs,
        pids: RefCell::new(BTreeSet::new()),
    };
    Ok((ctx, machine, nextest_version))
}

/// The five synthetic workspaces (a), (b), (c), hanging, idle, built.
fn build_workspaces(ctx: &Ctx) -> Result<Vec<Workspace>> {
    let specs = [
        gen::many_suites(),
        gen::many_tests(),
        gen::spawning(),
        gen::hanging(),
        gen::idle(),
    ];
    specs
        .iter()
        .map(|spec| gen::build(&ctx.cargo, &ctx.bench_dir, spec))
        .collect()
}

/// The mode `auto` picks here, as cargo-reap announces it in a run on one suite of `a`.
fn isolation_note(ctx: &Ctx, a: &Workspace) -> Result<String> {
    let name = "reap isolation probe";
    ctx.run(name, ctx.reap(a, &["--test", "t00"]), 0, false)?;
    Ok(
        std::fs::read_to_string(ctx.logs.join(format!("{}.stderr", slug(name))))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("cargo-reap: isolation: "))
            .unwrap_or("unknown")
            .to_string(),
    )
}

/// Print the report, write it into the results file unless told not to, and fail if anything
/// the benchmark started was left behind.
fn publish(args: &BenchArgs, results: &Results) -> Result<()> {
    let section = report::render(results);
    println!("{section}");
    let write = if results.settings.quick {
        args.write
    } else {
        !args.no_write
    };
    if write {
        let path = if args.output.is_absolute() {
            args.output.clone()
        } else {
            workspace_root().join(&args.output)
        };
        report::write(&path, &section)?;
        eprintln!("xtask bench: results written to {}", path.display());
    } else {
        eprintln!("xtask bench: results not written (--quick without --write, or --no-write)");
    }
    let l = &results.leftovers;
    if !l.processes.is_empty() || !l.cgroup_leaves.is_empty() {
        bail!(
            "left behind after the run (killed now): processes {:?}, cgroup leaves {:?}",
            l.processes,
            l.cgroup_leaves
        );
    }
    Ok(())
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::{collection_times, run_pid};

    /// cargo-reap's timing lines (colored or not) among other stderr lines.
    #[test]
    fn collection_times_are_read_from_the_timing_trace() {
        let stderr = "cargo-reap: run 1a-2: 40 suites\n\
            \u{1b}[2m2026-12-04T23:58:20Z\u{1b}[0m \u{1b}[34mDEBUG\u{1b}[0m \u{1b}[2mcargo_reap::timing\u{1b}[0m\u{1b}[2m:\u{1b}[0m p::t00 attempt 1: collected in 105 us after its binary exited\n\
            2026-12-04T23:58:20Z DEBUG cargo_reap::timing: p::t01 attempt 1: collected in 2342 us after its binary exited\n\
                  PASS [     2ms] p::t01\n";
        assert_eq!(collection_times(stderr), vec![105e-6, 2342e-6]);
    }

    #[test]
    fn run_pid_is_the_second_field_of_both_run_id_forms() {
        assert_eq!(run_pid("18f3a2b4c5d-4242"), Some(4242));
        assert_eq!(run_pid("18f3a2b4c5d-4242-effffffc"), Some(4242));
        assert_eq!(run_pid("18f3a2b4c5d"), None);
        assert_eq!(run_pid("x-notapid"), None);
    }
}
