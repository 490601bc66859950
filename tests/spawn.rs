//! How a suite gets into its cgroup leaf, seen from outside: born there
//! (`clone3(CLONE_INTO_CGROUP)`) by default; moved there before exec where
//! the kernel or a seccomp filter refuses `clone3` (as container runtimes'
//! default filters do: ENOSYS), or when `CARGO_REAP_SPAWN=move` asks for it.
//! Either way each suite runs in its own leaf, the verdicts are the same,
//! and the fallback is announced in the isolation line with what it costs.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;

use common::*;

/// How the test starts cargo-reap.
#[derive(Clone, Copy, Debug)]
enum Kernel {
    /// As it is (clone3 with CLONE_INTO_CGROUP: Linux >= 5.7).
    AsIs,
    /// `CARGO_REAP_SPAWN=move`.
    ForcedMove,
    /// Under a seccomp filter that answers `clone3` with ENOSYS, as
    /// Docker's and podman's default profiles do.
    NoClone3,
}

/// A seccomp filter: `clone3` fails with ENOSYS, everything else is allowed
/// (x86-64 and the generic syscall table number clone3 435).
fn deny_clone3(cmd: &mut Command) {
    const SYS_CLONE3: u32 = 435;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let filter = [
        // A = syscall number (offset 0 of seccomp_data).
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: SYS_CLONE3,
        },
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    // SAFETY: prctl with pointers to memory moved into the closure; both
    // calls are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn under(kernel: Kernel, cmd: &mut Command) {
    match kernel {
        Kernel::AsIs => {
            cmd.env_remove("CARGO_REAP_SPAWN");
        }
        Kernel::ForcedMove => {
            cmd.env("CARGO_REAP_SPAWN", "move");
        }
        Kernel::NoClone3 => {
            cmd.env_remove("CARGO_REAP_SPAWN");
            deny_clone3(cmd);
        }
    }
}

/// What the isolation line must say about the spawn, per kernel. `quiet`:
/// `cargo reap run`, which says the cgroup line only for the fallback.
fn check_isolation_line(kernel: Kernel, stderr: &str, quiet: bool) {
    let found = stderr
        .lines()
        .find(|l| l.starts_with("cargo-reap: isolation: cgroup v2"));
    let moved = "each suite moves itself into its leaf before exec";
    let line = match (kernel, found) {
        (Kernel::AsIs, None) if quiet => return,
        (_, Some(line)) => line,
        (_, None) => panic!("{kernel:?}: no cgroup isolation line:\n{stderr}"),
    };
    match kernel {
        Kernel::AsIs => assert!(!line.contains(moved) && !quiet, "{line}"),
        Kernel::ForcedMove => assert!(
            line.contains(&format!("{moved} (CARGO_REAP_SPAWN=move)"))
                && line.contains("RCU grace period")
                && line.contains("without CARGO_REAP_SPAWN, suites are spawned straight"),
            "{line}"
        ),
        Kernel::NoClone3 => assert!(
            line.contains(&format!(
                "{moved} (clone3(CLONE_INTO_CGROUP) refused: ENOSYS: "
            )) && line.contains("Linux 5.7 or newer"),
            "{line}"
        ),
    }
    assert_eq!(
        stderr.matches("cargo-reap: isolation:").count(),
        1,
        "said once: {stderr}"
    );
}

/// `cargo reap run -- sh -c 'read /proc/self/cgroup'`: the command runs in
/// its own leaf of the run (named after the run id), and says so itself.
fn run_reports_its_own_leaf(kernel: Kernel) {
    let scratch = Scratch::new("spawn-run");
    let json = scratch.0.join("report.json");
    let mut cmd = reap_command(
        &[],
        &[
            "run",
            "--isolation",
            "cgroup",
            "--",
            "sh",
            "-c",
            "grep '^0::' /proc/self/cgroup; exit 7",
        ],
        &json,
    );
    // Its own session directory, so the isolation line is said (once per session).
    cmd.env("TMPDIR", &scratch.0);
    under(kernel, &mut cmd);
    let out = cmd.output().expect("run cargo-reap");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let run = finished_run(out.status, stderr.clone(), &json);
    assert_eq!(
        run.code, 7,
        "{kernel:?}: the command's exit code:\n{stderr}"
    );
    let run_id = run.report()["run_id"].as_str().unwrap().to_string();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let cgroup = stdout.trim().trim_start_matches("0::");
    let leaf = cgroup.rsplit('/').next().unwrap();
    assert!(
        leaf.starts_with(&format!("cargo-reap.{run_id}.")) && leaf.ends_with("run__sh"),
        "{kernel:?}: the command ran in {cgroup}, not a leaf of run {run_id}"
    );
    check_isolation_line(kernel, &stderr, true);
}

#[test]
fn a_command_is_born_in_its_leaf() {
    require_root();
    run_reports_its_own_leaf(Kernel::AsIs);
}

#[test]
fn a_command_moves_into_its_leaf_when_asked() {
    require_root();
    run_reports_its_own_leaf(Kernel::ForcedMove);
}

#[test]
fn a_command_moves_into_its_leaf_without_clone3() {
    require_root();
    run_reports_its_own_leaf(Kernel::NoClone3);
}

/// Suites that leak, crash, fail and pass: the verdicts the fixture expects,
/// whichever way the suites got into their leaves; nothing survives.
fn fixture_verdicts(kernel: Kernel) {
    let ids = [
        "leaky::daemon",
        "leaky::crash",
        "leaky::failing",
        "leaky::clean",
    ];
    let base = manifest_args();
    let a = args(
        &base,
        &[
            "reap",
            "test",
            "-p",
            "leaky",
            "--test",
            "daemon",
            "--test",
            "crash",
            "--test",
            "failing",
            "--test",
            "clean",
            "--isolation",
            "cgroup",
        ],
    );
    let scratch = Scratch::new("spawn-fixture");
    let json = scratch.0.join("report.json");
    let mut cmd = reap_command(&[], &a, &json);
    cmd.env("REAP_FIXTURE_STATE_DIR", scratch.0.join("state"));
    under(kernel, &mut cmd);
    let out = cmd.output().expect("run cargo-reap");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let run = finished_run(out.status, stderr.clone(), &json);
    let expected = expected_for(&ids);
    assert_eq!(expected.len(), ids.len());
    check_against_expected(&run, &expected);
    assert_eq!(run.code, expected_exit(&expected), "{kernel:?}:\n{stderr}");
    check_isolation_line(kernel, &stderr, false);
}

#[test]
fn fixture_verdicts_when_born_in_the_leaf() {
    require_root();
    fixture_verdicts(Kernel::AsIs);
}

#[test]
fn fixture_verdicts_without_clone3() {
    require_root();
    fixture_verdicts(Kernel::NoClone3);
}
