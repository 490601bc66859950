//! End-to-end tests as a non-root user, the way most developers and CI jobs
//! run: another uid (`setpriv`), with and without a cgroup subtree delegated
//! to it. The delegation is made as systemd's `Delegate=yes` makes it: a
//! directory of the cgroup2 hierarchy owned by the user, with its
//! `cgroup.procs`, `cgroup.subtree_control` and `cgroup.threads`; the run
//! starts inside it. Tried on this host's cgroup2 mount (hybrid:
//! `/sys/fs/cgroup/unified`) and, in a private mount namespace, on a pure
//! v2 layout (cgroup2 at `/sys/fs/cgroup`, as on systemd hosts and GitHub
//! runners). Verified from outside: the report, no process of the run left,
//! no leaf left in the delegated directory.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// The uid (and gid) of these runs (no account needed: setpriv takes numbers).
const USER: u32 = 4243;

/// A suite that leaks a plain child and a double-forked daemon (its own
/// session, stdio on /dev/null), then exits 0: `sleep 3890` and `sleep 3891`.
const LEAKING: &str =
    "sleep 3890 & setsid sh -c 'sleep 3891 </dev/null >/dev/null 2>&1 &' ; echo started";

/// A directory the user owns, with a `report.json` path in it; removed after.
struct Home(PathBuf);

impl Home {
    fn new(name: &str) -> Home {
        let dir =
            std::env::temp_dir().join(format!("cargo-reap-nonroot-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        chown(&dir, USER);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        Home(dir)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("removing {}: {e}", self.0.display());
        }
    }
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// A cgroup delegated to `USER` under the cgroup2 mount `root`, as systemd
/// delegates one. Removed after the test (empty by then, or the test failed).
struct Delegated(PathBuf);

impl Delegated {
    fn new(root: &Path, name: &str) -> Delegated {
        let dir = root.join(format!("cargo-reap-nonroot-{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        chown(&dir, USER);
        for f in ["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"] {
            chown(&dir.join(f), USER);
        }
        Delegated(dir)
    }

    /// The cgroups left below it (cargo-reap's leaves must all be gone).
    fn children(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.path())
            .collect()
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir(&self.0) {
            eprintln!("rmdir {}: {e}", self.0.display());
        }
    }
}

/// `cargo-reap run -- sh -c LEAKING` as `USER`, started inside `cgroup` when
/// given (its path as the run sees it), after `setup` (shell, as root).
fn run_as_user(home: &Home, setup: &str, cgroup: Option<&Path>) -> Run {
    run_as_user_with(home, setup, cgroup, &[], &[])
}

/// [`run_as_user`] with more flags for `run` and more environment.
fn run_as_user_with(
    home: &Home,
    setup: &str,
    cgroup: Option<&Path>,
    flags: &[&str],
    env: &[(&str, String)],
) -> Run {
    let json = home.0.join("report.json");
    let join = cgroup.map_or(String::new(), |c| {
        format!("echo $$ > {}/cgroup.procs; ", c.display())
    });
    let script = format!(
        "set -e; {setup}; {join}exec setpriv --reuid {USER} --regid {USER} --clear-groups \"$0\" \"$@\""
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(REAP)
        .arg("run")
        .args(flags)
        .arg("--json")
        .arg(&json)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["--", "sh", "-c", LEAKING])
        .env("TMPDIR", &home.0)
        .env("HOME", &home.0)
        .env_remove("CARGO_REAP_SUITE")
        .current_dir(&home.0)
        .stdin(Stdio::null())
        .output()
        .expect("run cargo-reap as another user");
    finished_run(
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        &json,
    )
}

/// Both leaks are found, killed and reaped; the run fails with 103.
fn assert_gate_held(run: &Run, isolation: &str) {
    assert_eq!(run.code, 103, "{}", run.stderr);
    let r = run.report();
    assert_eq!(r["isolation"], isolation, "{}", run.stderr);
    let suites = run.suites();
    let (_, suite) = suites.iter().next().expect("one suite");
    let leaks = suite["leaks"].as_array().unwrap();
    let mut sleeps: Vec<String> = leaks
        .iter()
        .map(|l| {
            l["cmdline"].as_array().unwrap()[1]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    sleeps.sort();
    assert_eq!(sleeps, ["3890", "3891"], "{suite:#}");
    assert!(leaks.iter().all(|l| l["reaped"] == true), "{suite:#}");
}

/// No process of these tests is left anywhere on the machine.
fn assert_no_sleeps(since: u64) {
    assert_no_strays("the non-root runs", since, |s, _| {
        s.cmdline.first().is_some_and(|c| c == "sleep")
            && s.cmdline.get(1).is_some_and(|a| a == "3890" || a == "3891")
    });
}

/// With a delegated subtree, a non-root run gets cgroup isolation on this
/// host's cgroup2 mount, finds both leaks and leaves no leaf behind.
#[test]
fn a_delegated_subtree_gives_a_non_root_user_cgroup_isolation() {
    require_root();
    let since = reap_probe::boottime_ticks();
    let home = Home::new("hybrid");
    let delegated = Delegated::new(&cgroup2_root(), "hybrid");
    let run = run_as_user(&home, "true", Some(&delegated.0));
    assert_gate_held(&run, "cgroup");
    assert_eq!(delegated.children(), Vec::<PathBuf>::new());
    assert_no_sleeps(since);
}

/// The same on a pure v2 layout (cgroup2 mounted at /sys/fs/cgroup, in a
/// private mount namespace): the delegated directory is found through the
/// run's own `/proc/self/cgroup`, wherever the hierarchy is mounted.
#[test]
fn a_delegated_subtree_works_on_a_pure_v2_layout() {
    require_root();
    let since = reap_probe::boottime_ticks();
    let home = Home::new("purev2");
    let delegated = Delegated::new(&cgroup2_root(), "purev2");
    let name = delegated
        .0
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let run = run_as_user(
        &home,
        "umount -l /sys/fs/cgroup; mount -t cgroup2 none /sys/fs/cgroup",
        Some(&Path::new("/sys/fs/cgroup").join(&name)),
    );
    assert_gate_held(&run, "cgroup");
    assert_eq!(delegated.children(), Vec::<PathBuf>::new());
    assert_no_sleeps(since);
}

/// Without a delegated subtree (the run stays in root's cgroup, which the
/// user may not write), cargo-reap falls back to a process group with
/// itself as child subreaper, says so, and still holds the gate: both
/// leaks, the daemon in its own session included, fail the run.
#[test]
fn without_delegation_a_non_root_run_falls_back_and_still_fails_on_leaks() {
    require_root();
    let since = reap_probe::boottime_ticks();
    let home = Home::new("nodeleg");
    let run = run_as_user(&home, "true", None);
    assert_gate_held(&run, "process-group");
    assert!(
        run.stderr.contains("process group"),
        "the fallback is announced: {}",
        run.stderr
    );
    // With how to do better on this host (no systemd here: the container advice).
    assert!(
        run.stderr
            .contains("cargo-reap: for cgroup isolation, give this run a writable cgroup v2"),
        "{}",
        run.stderr
    );
    assert_no_sleeps(since);
}

/// A stand-in for `systemd-run --scope`: records its arguments, then does
/// what systemd does for a delegated scope (a cgroup under the user's
/// delegated directory `$FAKE_SCOPE`, the process moved into it) and execs
/// the command after `--`, as systemd-run does in scope mode.
const FAKE_SYSTEMD_RUN: &str = r#"#!/bin/sh
printf '%s\n' "$@" > "$HOME/systemd-run.args"
while [ "$1" != "--" ]; do shift; done
shift
mkdir "$FAKE_SCOPE/run-u1.scope"
echo $$ > "$FAKE_SCOPE/run-u1.scope/cgroup.procs"
exec "$@"
"#;

/// `--systemd-scope` where the user's own cgroup is not writable (it sits in
/// a cgroup of root's, below a directory delegated to it, as a login session
/// sits below the user's slice): cargo-reap announces it and runs itself
/// again as `systemd-run --user --scope --quiet --collect -p Delegate=yes --
/// cargo-reap ARGS`, which here is a stand-in that makes the delegated scope
/// as systemd would; the run inside gets cgroup isolation and holds the gate.
/// (systemd is made visible in a private mount namespace: /run/systemd/system,
/// and the user's manager socket under XDG_RUNTIME_DIR.)
#[test]
fn systemd_scope_runs_again_inside_a_delegated_scope() {
    require_root();
    let since = reap_probe::boottime_ticks();
    let home = Home::new("scope");
    let delegated = Delegated::new(&cgroup2_root(), "scope");
    let start = delegated.0.join("session.scope");
    std::fs::create_dir(&start).unwrap();
    let bin = home.0.join("bin");
    let runtime = home.0.join("runtime/systemd");
    for d in [&bin, &runtime] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(runtime.join("private"), "").unwrap();
    let fake = bin.join("systemd-run");
    std::fs::write(&fake, FAKE_SYSTEMD_RUN).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    for p in [
        &home.0.join("runtime"),
        &runtime,
        &runtime.join("private"),
        &bin,
        &fake,
    ] {
        chown(p, USER);
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run = run_as_user_with(
        &home,
        "mount -t tmpfs none /run; mkdir -p /run/systemd/system",
        Some(&start),
        &["--systemd-scope"],
        &[
            ("PATH", path),
            (
                "XDG_RUNTIME_DIR",
                home.0.join("runtime").display().to_string(),
            ),
            ("FAKE_SCOPE", delegated.0.display().to_string()),
        ],
    );
    let scope = delegated.0.join("run-u1.scope");
    let args = std::fs::read_to_string(home.0.join("systemd-run.args"));
    let procs = std::fs::read_to_string(scope.join("cgroup.procs"));
    let cleaned = [&scope, &start]
        .map(|d| std::fs::remove_dir(d).map_err(|e| format!("{}: {e}", d.display())));
    assert!(
        run.stderr
            .contains("running again inside a delegated scope: systemd-run --user --scope"),
        "{}",
        run.stderr
    );
    let args = args.expect("systemd-run was run");
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        args[..7],
        [
            "--user",
            "--scope",
            "--quiet",
            "--collect",
            "-p",
            "Delegate=yes",
            "--"
        ],
        "{args:?}"
    );
    assert!(args[7].ends_with("cargo-reap"), "{args:?}");
    assert_eq!(args[8], "run", "{args:?}");
    assert_gate_held(&run, "cgroup");
    assert_eq!(procs.unwrap(), "", "nothing left in the scope");
    for c in cleaned {
        c.unwrap();
    }
    assert_no_sleeps(since);
}

/// `--systemd-scope` where systemd cannot delegate (no systemd here): said
/// in one warning with the reason, the run goes on in process groups with
/// the advice for this host, and still fails on both leaks.
#[test]
fn systemd_scope_without_systemd_says_why_and_still_gates() {
    require_root();
    let since = reap_probe::boottime_ticks();
    let home = Home::new("noscope");
    let run = run_as_user_with(&home, "true", None, &["--systemd-scope"], &[]);
    assert!(
        run.stderr.contains(
            "warning: --systemd-scope: no delegated scope (systemd is not the init system here"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--cgroupns=private"), "{}", run.stderr);
    assert_gate_held(&run, "process-group");
    assert_no_sleeps(since);
}
