//! Getting cgroup v2 isolation where the run's own cgroup is not writable
//! (a normal user, a CI job): a cgroup subtree delegated by systemd, as
//! `systemd-run --scope -p Delegate=yes` makes one. This module says how on
//! this host (the advice under the fallback line) and, when asked
//! (`--systemd-scope`, or `systemd-scope = true` in the configuration),
//! runs cargo-reap again inside such a scope.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Set for the cargo-reap that runs inside the scope, so that it does not
/// ask for another one. A mark only: it chooses no program.
pub const ENTERED_VAR: &str = "CARGO_REAP_SYSTEMD_SCOPE";

/// What this host offers for delegation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// systemd is the init system (`/run/systemd/system` exists).
    pub systemd: bool,
    /// `systemd-run` on PATH.
    pub systemd_run: Option<PathBuf>,
    pub root: bool,
    /// The user's own systemd instance is running (its private socket
    /// exists), so `systemd-run --user` can reach it.
    pub user_manager: bool,
    /// This process already runs inside a scope cargo-reap asked for.
    pub entered: bool,
}

impl Host {
    pub fn detect() -> Host {
        let uid = rustix::process::geteuid();
        let runtime = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format!("/run/user/{}", uid.as_raw())));
        Host {
            systemd: Path::new("/run/systemd/system").is_dir(),
            systemd_run: which::which("systemd-run").ok(),
            root: uid.is_root(),
            user_manager: runtime.join("systemd/private").exists(),
            entered: std::env::var_os(ENTERED_VAR).is_some(),
        }
    }

    /// The `systemd-run` arguments that give this user a delegated scope,
    /// or why there is none here.
    pub fn scope_args(&self) -> Result<Vec<&'static str>, String> {
        if self.entered {
            return Err("this run is already inside the systemd scope it asked for, and its cgroup is still not usable".into());
        }
        if !self.systemd {
            return Err("systemd is not the init system here (a container?)".into());
        }
        if self.systemd_run.is_none() {
            return Err("systemd-run is not on PATH".into());
        }
        let common = ["--scope", "--quiet", "--collect", "-p", "Delegate=yes"];
        if self.root {
            return Ok(common.to_vec());
        }
        if !self.user_manager {
            return Err("this user has no systemd user instance (no lingering session: `loginctl enable-linger`), and the system instance needs root".into());
        }
        let mut v = vec!["--user"];
        v.extend(common);
        Ok(v)
    }

    /// One line on how to get cgroup isolation on this host, under the
    /// fallback line.
    pub fn advice(&self) -> String {
        match self.scope_args() {
            Ok(args) => format!(
                "for cgroup isolation here, pass --systemd-scope (or set systemd-scope = true in [workspace.metadata.reap]): cargo-reap then runs itself as `systemd-run {} -- cargo reap …`",
                args.join(" ")
            ),
            Err(_) if self.entered => {
                "the systemd scope did not give a writable cgroup: check that the scope has Delegate=yes and that cgroup v2 is mounted".into()
            }
            Err(_) if self.systemd && self.systemd_run.is_some() => {
                "for cgroup isolation here (CI with sudo): sudo systemd-run --scope -p Delegate=yes --uid=$(id -u) --gid=$(id -g) -E PATH=\"$PATH\" -E HOME=\"$HOME\" -- cargo reap … (the tests run as you, in a scope delegated to you)".into()
            }
            Err(why) => format!(
                "for cgroup isolation, give this run a writable cgroup v2: in a container, its own cgroup namespace with cgroup2 mounted read-write (docker run --cgroupns=private, podman's default); on a host, a delegated subtree ({why})"
            ),
        }
    }
}

/// Run this cargo-reap again (`args`: the whole command line) inside a
/// delegated transient scope. Returns only when that could not be done,
/// with the reason; otherwise the process becomes `systemd-run`, which runs
/// cargo-reap in the scope (same pid, same environment plus
/// [`ENTERED_VAR`]) and exits with its exit code.
pub fn enter_scope(host: &Host, args: &[OsString]) -> String {
    let scope = match host.scope_args() {
        Ok(a) => a,
        Err(why) => return why,
    };
    let Some(systemd_run) = &host.systemd_run else {
        return "systemd-run is not on PATH".into();
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return format!("cannot locate cargo-reap's own executable: {e}"),
    };
    let error = Command::new(systemd_run)
        .args(scope)
        .arg("--")
        .arg(exe)
        .args(args.iter().skip(1))
        .env(ENTERED_VAR, "1")
        .exec();
    format!("running {}: {error}", systemd_run.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host {
            systemd: true,
            systemd_run: Some("/usr/bin/systemd-run".into()),
            root: false,
            user_manager: true,
            entered: false,
        }
    }

    #[test]
    fn a_user_with_a_user_manager_gets_a_user_scope() {
        assert_eq!(
            host().scope_args().unwrap(),
            [
                "--user",
                "--scope",
                "--quiet",
                "--collect",
                "-p",
                "Delegate=yes"
            ]
        );
        assert!(host().advice().contains("--systemd-scope"));
    }

    #[test]
    fn root_gets_a_system_scope() {
        let h = Host {
            root: true,
            user_manager: false,
            ..host()
        };
        assert_eq!(h.scope_args().unwrap()[0], "--scope");
    }

    #[test]
    fn without_a_user_manager_the_advice_is_the_system_variant_for_ci() {
        let h = Host {
            user_manager: false,
            ..host()
        };
        assert!(h.scope_args().is_err());
        assert!(h
            .advice()
            .starts_with("for cgroup isolation here (CI with sudo): sudo systemd-run --scope"));
    }

    #[test]
    fn a_container_is_told_about_cgroup_namespaces() {
        let h = Host {
            systemd: false,
            systemd_run: None,
            ..host()
        };
        assert!(h.advice().contains("--cgroupns=private"), "{}", h.advice());
    }

    #[test]
    fn inside_the_scope_it_never_asks_again() {
        let h = Host {
            entered: true,
            ..host()
        };
        assert!(h.scope_args().is_err());
        assert!(enter_scope(&h, &[]).contains("already inside"));
    }
}
