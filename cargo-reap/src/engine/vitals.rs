//! cargo-reap's own resources between `--loop` trials ([`RunnerVitals`] of
//! the report), read from `/proc/self`: the reading lives here, on the engine
//! side; the report contract only holds the figures.

use reap_report::RunnerVitals;

/// Read them now (memory and threads through reap-probe's snapshot).
pub(super) fn runner_vitals() -> Result<RunnerVitals, reap_probe::ProbeError> {
    let fd_dir = std::path::Path::new("/proc/self/fd");
    let open_fds = std::fs::read_dir(fd_dir)
        .map_err(|source| reap_probe::ProbeError::Io {
            path: fd_dir.to_path_buf(),
            source,
        })?
        .count();
    let me = reap_probe::snapshot(std::process::id() as i32, Default::default())?;
    Ok(RunnerVitals {
        // read_dir's own descriptor was open while it counted.
        open_fds: open_fds.saturating_sub(1),
        rss_kib: me.rss_bytes / 1024,
        threads: me.threads.max(0) as u64,
    })
}
