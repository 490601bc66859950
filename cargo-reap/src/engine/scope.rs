//! Before the run: `--systemd-scope` (or `systemd-scope = true` in the
//! workspace's `[workspace.metadata.reap]`). Where this run's own cgroup is
//! not writable, cargo-reap runs itself again inside a cgroup subtree that
//! systemd delegates to the user; where systemd cannot, it says why and
//! goes on with process groups.

use std::ffi::OsString;

use super::emit;
use crate::config::Config;
use crate::containment::cgroup;
use crate::containment::delegation::{enter_scope, Host};
use crate::options::{CargoInvocation, IsolationMode, ReapOptions};

/// Enter a delegated scope if one is wanted and needed; returns when not
/// (or when it could not be entered, said as a warning).
pub fn systemd_scope(reap: &ReapOptions, cargo: Option<&CargoInvocation>, args: &[OsString]) {
    // Cheapest first: this runs before every run, and `cargo reap run` as a
    // target runner starts once per test binary.
    if reap.isolation == IsolationMode::ProcessGroup {
        return;
    }
    let own = match cgroup::own_dir() {
        // Writable: cgroup isolation works as it is (the probe proves it).
        Ok(dir) if rustix::fs::access(&dir, rustix::fs::Access::WRITE_OK).is_ok() => return,
        Ok(dir) => dir.display().to_string(),
        Err(e) => e.to_string(),
    };
    if !reap.systemd_scope && !configured(cargo) {
        return;
    }
    let host = Host::detect();
    if host.entered {
        return;
    }
    if let Ok(scope) = host.scope_args() {
        emit(&format!(
            "cargo-reap: this run's cgroup is not writable ({own}): running again inside a delegated scope: systemd-run {} -- cargo-reap …",
            scope.join(" ")
        ));
    }
    let why = enter_scope(&host, args);
    emit(&format!(
        "cargo-reap: warning: --systemd-scope: no delegated scope ({why}); going on without it"
    ));
}

/// `systemd-scope = true` in the workspace's configuration. Read only when
/// it could matter (the flag is absent and the cgroup is not writable): it
/// costs a `cargo metadata`. A configuration that cannot be read is left to
/// the run, which says why.
fn configured(cargo: Option<&CargoInvocation>) -> bool {
    let config = match cargo {
        Some(c) => crate::discover::metadata(c)
            .ok()
            .and_then(|meta| Config::load(&meta).ok()),
        None => Config::for_runner().ok().map(|(c, _)| c),
    };
    config.is_some_and(|c| c.workspace.systemd_scope == Some(true))
}
