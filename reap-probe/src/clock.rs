//! The clock that /proc start times count in.
//!
//! Field 22 of `/proc/PID/stat` is the process start time in clock ticks since boot, measured on
//! `CLOCK_BOOTTIME` (since Linux 5.3; the same clock, time-namespace adjusted, that
//! `clock_gettime(CLOCK_BOOTTIME)` reads). Comparing the two gives an age that is as precise as
//! the tick (normally 10 ms), unlike `/proc/stat`'s `btime`, which has whole-second resolution and
//! drifts with wall-clock adjustments.

use rustix::time::{clock_gettime, ClockId};

/// Milliseconds since boot on `CLOCK_BOOTTIME`: "now" in the clock that
/// [`ProcessInfo::start_time`](crate::ProcessInfo::start_time) counts in.
///
/// Useful to remember when something started (for example a test suite) and compare later with
/// [`ticks_to_ms`]`(info.start_time)`.
pub fn boottime_ms() -> u64 {
    let ts = clock_gettime(ClockId::Boottime);
    // Both fields are non-negative for CLOCK_BOOTTIME.
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// Now, in the clock ticks since boot that [`ProcessInfo::start_time`](crate::ProcessInfo::start_time)
/// counts in: record it before starting something, and every process started afterwards has a
/// `start_time` at least this large (both are truncated the same way). See
/// [`scan_since`](crate::scan_since).
pub fn boottime_ticks() -> u64 {
    let per_second = procfs::ticks_per_second().max(1);
    let ts = clock_gettime(ClockId::Boottime);
    let ns = (ts.tv_sec as u128) * 1_000_000_000 + ts.tv_nsec as u128;
    (ns * per_second as u128 / 1_000_000_000) as u64
}

/// Convert a start time in clock ticks since boot (stat field 22) to milliseconds since boot.
pub fn ticks_to_ms(ticks: u64) -> u64 {
    let per_second = procfs::ticks_per_second().max(1);
    ticks.saturating_mul(1000) / per_second
}

/// Age in milliseconds of a process that started `start_ticks` after boot, as of `now_ms`.
pub(crate) fn age_ms(start_ticks: u64, now_ms: u64) -> u64 {
    now_ms.saturating_sub(ticks_to_ms(start_ticks))
}
