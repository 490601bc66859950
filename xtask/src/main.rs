//! Project tasks for cargo-reap, run with `cargo run --release -p xtask -- TASK`.
//!
//! - `bench`: benchmark `cargo reap test` against `cargo test` and
//!   `cargo nextest run` on generated workspaces, measure its per-suite
//!   overhead, survivor-collection cost, hang-kill latency and CPU use, and
//!   write the figures to BENCHMARKS.md (see that file for the method).

mod bench;
#[cfg(test)]
mod gate;
#[cfg(test)]
mod msrv;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "Project tasks for cargo-reap")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Benchmark cargo reap against cargo test and cargo nextest; write BENCHMARKS.md
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Task::Bench(args) => match bench::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask bench: error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
