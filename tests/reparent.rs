//! End-to-end tests for suites that wait for an orphan to be reparented
//! (`fixtures/sabotage`, package `sabotage-reparent`), the pattern of
//! `test_getppid_after_parent_exits` in the `nix` and `fork` crates.
//!
//! The runner is the child subreaper in both isolation modes (an escaped
//! leak is found because it reparents to the runner; README, Containment),
//! so an orphan's new parent is the runner, never PID 1. This is a known
//! difference from `cargo test` (README, "Differences from cargo test"):
//! a grandchild that waits for `getppid() == 1` is still waiting when its
//! suite ends and is reported as a leak; the workaround — wait until
//! `getppid()` is no longer the original parent — passes with no leak.
//! Verified from outside: the report, and no grandchild left in /proc.

mod common;

use common::*;

/// `cargo-reap test -p sabotage-reparent --test NAME --isolation MODE`.
fn run_suite(name: &str, isolation: &str) -> Run {
    let m = fixture_manifest_of("sabotage").display().to_string();
    reap(
        &[],
        &[
            "test",
            "--manifest-path",
            &m,
            "-p",
            "sabotage-reparent",
            "--test",
            name,
            "--isolation",
            isolation,
        ],
    )
}

fn expected_reparent(id: &str) -> Vec<ExpectedSuite> {
    expected_of("sabotage")
        .into_iter()
        .filter(|e| e.id == id)
        .collect()
}

/// The fixture's grandchild (`prctl(PR_SET_NAME)`), found from outside.
fn is_grandchild(s: &Stray, _env: &[u8]) -> bool {
    s.comm == "ppid-wait-3861"
}

/// Both suites in one test: they share the grandchild's name, which the
/// stray scan looks for.
#[test]
fn an_orphan_is_reparented_to_the_runner_not_to_pid_1() {
    require_root();
    for isolation in ["cgroup", "process-group"] {
        // The known difference: waiting for PID 1 leaves the grandchild
        // polling when the suite ends; it is a leak, adopted by the runner,
        // and killed.
        let since = reap_probe::boottime_ticks();
        let run = run_suite("getppid_pid1", isolation);
        assert_no_strays(&format!("{isolation}: getppid_pid1"), since, is_grandchild);
        assert_eq!(run.code, 103, "{isolation}: {}", run.stderr);
        let expected = expected_reparent("sabotage-reparent::getppid_pid1");
        assert_eq!(expected.len(), 1);
        check_against_expected(&run, &expected);
        let report = run.report();
        let runner = runner_pid(report["run_id"].as_str().unwrap());
        let leak = &report["suites"][0]["leaks"][0];
        assert_eq!(
            leak["ppid"], runner,
            "{isolation}: the orphan's parent is the runner (child subreaper): {leak:#}"
        );
        assert_nothing_survived(report["run_id"].as_str().unwrap());

        // The workaround: wait until getppid() is no longer the original
        // parent. It passes with no leak.
        let since = reap_probe::boottime_ticks();
        let run = run_suite("getppid_changed", isolation);
        assert_no_strays(
            &format!("{isolation}: getppid_changed"),
            since,
            is_grandchild,
        );
        assert_eq!(run.code, 0, "{isolation}: {}", run.stderr);
        let expected = expected_reparent("sabotage-reparent::getppid_changed");
        assert_eq!(expected.len(), 1);
        check_against_expected(&run, &expected);
        assert_nothing_survived(run.report()["run_id"].as_str().unwrap());
    }
}

/// An orphan that exits on its own within the settle (a `setsid` child in a
/// process group and session of its own, reparented to the runner) becomes
/// the runner's zombie; the runner reaps it before the next trial. Each
/// trial's command first looks at the runner's children in /proc (its
/// parent is the runner) and fails if one is a zombie. Failed before the
/// end-of-trial reap waited for any child: it waited only for children in
/// the runner's own process group.
#[test]
fn an_orphan_that_exits_in_the_settle_is_reaped_before_the_next_trial() {
    require_root();
    let script = r#"
for f in /proc/[0-9]*/stat; do
  read -r line < "$f" 2>/dev/null || continue
  set -- ${line##*) }
  if [ "$1" = Z ] && [ "$2" = "$PPID" ]; then echo "ZOMBIE child of the runner: $line" >&2; exit 1; fi
done
setsid sh -c 'sleep 0.1' &
exit 0
"#;
    for isolation in ["cgroup", "process-group"] {
        let run = reap(
            &[],
            &[
                "run",
                "--isolation",
                isolation,
                "--loop",
                "3",
                "--settle",
                "5s",
                "--",
                "sh",
                "-c",
                script,
            ],
        );
        assert!(
            !run.stderr.contains("ZOMBIE"),
            "{isolation}: a zombie was left between trials:\n{}",
            run.stderr
        );
        assert_eq!(run.code, 0, "{isolation}: {}", run.stderr);
        let report = run.report();
        assert_eq!(report["summary"]["leaked_processes"], 0, "{isolation}");
        assert_eq!(report["trials"].as_array().map(Vec::len), Some(3));
        assert_nothing_survived(report["run_id"].as_str().unwrap());
    }
}
