//! `reap-probe PID [--tree] [--json]`: explain why a process is still alive (forensics).
//!
//! A debugging aid for cargo-reap. All the work is in the library; argument handling and output
//! formatting live in the library's `cli.rs` (so that `cargo reap probe` runs the same code).

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(reap_probe::cli::main(&args));
}
