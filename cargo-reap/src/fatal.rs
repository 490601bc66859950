//! A panic is an internal error, never exit 101 ("the build failed"): the hook
//! installed by [`install`] names it in one line and ends the process with
//! exit 2 at once, from whichever thread panicked. Ending the process closes
//! the lifeline's write end without `end`, so the guard kills every process
//! of every suite still registered (and every process carrying the run's tag).

use std::any::Any;
use std::io::Write;
use std::panic::Location;

/// Environment variable that makes a debug build panic at a named point
/// ([`inject`]), for the end-to-end test of the panic path.
pub const INJECT_ENV: &str = "CARGO_REAP_TEST_PANIC";

/// Install the panic hook (before any thread is started).
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        // Not eprintln!: it panics when stderr is a closed pipe, and a panic
        // in the hook aborts (exit 134). Nobody could read a failed write.
        let text = format!(
            "cargo-reap: internal error (a bug in cargo-reap, please report it): {}\n\
             cargo-reap: exiting with code {}; the lifeline guard kills every process of the run\n",
            describe(info.payload(), info.location()),
            reap_report::exit::USAGE
        );
        if std::io::stderr().write_all(text.as_bytes()).is_err() {
            // Nowhere to say it; the exit code still does.
        }
        std::process::exit(reap_report::exit::USAGE);
    }));
}

/// The payload and location of a panic, in one line.
fn describe(payload: &(dyn Any + Send), location: Option<&Location<'_>>) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    let thread = std::thread::current();
    let location = location
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    format!(
        "thread '{}' panicked{location}: {message}",
        thread.name().unwrap_or("<unnamed>")
    )
}

/// Does a debug build run with `CARGO_REAP_TEST_PANIC=<point>`?
pub fn armed(point: &str) -> bool {
    cfg!(debug_assertions) && std::env::var_os(INJECT_ENV).is_some_and(|v| v == point)
}

/// Panic here when [`armed`] at `point`.
pub fn inject(point: &str) {
    if armed(point) {
        panic!("injected panic at `{point}` ({INJECT_ENV})");
    }
}
