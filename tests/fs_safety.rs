//! cargo-reap never touches what it did not create, end to end: suites of
//! `fixtures/sabotage` (package sabotage-fs) that bind-mount into, delete,
//! replace or lock down their private TMPDIR; runs by two users; a TMPDIR
//! that does not exist; two concurrent runs started under other names;
//! `cargo reap clean` past an entry it cannot remove.
//!
//! The tests of this binary take turns (one lock): each checks what runs'
//! stale sweeps did, so none may run while another sets up leftovers.

mod common;

use std::io::{BufRead, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The uid (and gid) of the "other user" runs.
const OTHER: u32 = 4242;

fn sabotage_args<'a>(manifest: &'a str, tests: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "test",
        "--manifest-path",
        manifest,
        "-p",
        "sabotage-fs",
        "--timeout",
        "60s",
    ];
    for t in tests {
        v.extend(["--test", t]);
    }
    v
}

fn sabotage_manifest() -> String {
    fixture_manifest_of("sabotage").display().to_string()
}

/// The expectations of these sabotage-fs suites.
fn expected_fs(ids: &[&str]) -> Vec<ExpectedSuite> {
    expected_of("sabotage")
        .into_iter()
        .filter(|e| ids.contains(&e.id.as_str()))
        .collect()
}

/// A directory with files that must survive every run.
fn precious(scratch: &Scratch, name: &str) -> PathBuf {
    let dir = scratch.0.join(name);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("precious-1.txt"), b"one").unwrap();
    std::fs::write(dir.join("precious-2.txt"), b"two").unwrap();
    std::fs::write(dir.join("sub/precious-3.txt"), b"three").unwrap();
    dir
}

fn assert_intact(dir: &Path) {
    for (f, body) in [
        ("precious-1.txt", "one"),
        ("precious-2.txt", "two"),
        ("sub/precious-3.txt", "three"),
    ] {
        assert_eq!(
            std::fs::read_to_string(dir.join(f)).ok().as_deref(),
            Some(body),
            "{} was touched",
            dir.join(f).display()
        );
    }
}

fn problems(suite: &Value) -> Vec<String> {
    suite["problems"]
        .as_array()
        .map(|a| a.iter().map(|p| p.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// A directory `uid` owns (for its TMPDIR and report).
fn owned_by(scratch: &Scratch, name: &str, uid: u32) -> PathBuf {
    let dir = scratch.0.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).unwrap();
    // The scratch directory itself must be traversable by that user.
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Run cargo-reap through `wrapper` with `env`, its JSON report in `json`,
/// stdin closed; then check from outside that nothing of the run survived.
fn reap_with(wrapper: &[&str], env: &[(&str, &str)], args: &[&str], json: &Path) -> Run {
    let out = reap_command(wrapper, args, json)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run cargo-reap");
    finished_run(
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        json,
    )
}

fn setpriv(uid: u32) -> Vec<String> {
    vec![
        "setpriv".into(),
        "--reuid".into(),
        uid.to_string(),
        "--regid".into(),
        uid.to_string(),
        "--clear-groups".into(),
    ]
}

/// A suite bind-mounts a directory with files into its TMPDIR (as root, in a
/// private mount namespace) and exits: every file behind the mount is still
/// there afterwards, and the suite's report says `mount left in TMPDIR`.
/// Before: cargo-reap listed and deleted the mounted directory's files, then
/// failed the whole run with EBUSY (exit 2, no report).
#[test]
fn a_bind_mount_left_in_tmpdir_is_reported_and_never_entered() {
    require_root();
    let _turn = serial();
    let scratch = Scratch::new("bind");
    let source = precious(&scratch, "precious");
    let tmp = scratch.0.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let manifest = sabotage_manifest();
    let run = reap_with(
        &["unshare", "--mount", "--propagation", "private"],
        &[
            ("TMPDIR", tmp.to_str().unwrap()),
            ("SABOTAGE_BIND_SOURCE", source.to_str().unwrap()),
        ],
        &sabotage_args(&manifest, &["bind_mount"]),
        &scratch.0.join("report.json"),
    );
    assert_intact(&source);
    let expected = expected_fs(&["sabotage-fs::bind_mount"]);
    check_against_expected(&run, &expected);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let suites = run.suites();
    let suite = suites["sabotage-fs::bind_mount"];
    let p = problems(suite);
    // The suite's TMPDIR is `<run dir>/<n>` (numbered: see the README's temp-file leaks).
    let run_dir = tmp
        .join("cargo-reap-0")
        .join(run.report()["run_id"].as_str().unwrap());
    let prefix = format!("mount left in TMPDIR: {}/", run_dir.display());
    let suite_tmp = p
        .iter()
        .find_map(|p| p.strip_prefix(&prefix)?.split_once("/mnt ").map(|(n, _)| n))
        .unwrap_or_else(|| panic!("{p:?}"));
    assert!(suite_tmp.parse::<usize>().is_ok(), "{suite_tmp}");
    // Only the suite's own file was left and removed: nothing behind the mount.
    assert_eq!(suite["tmp"]["files"], 1, "{suite:#}");
    assert_eq!(suite["tmp"]["examples"][0], "own.txt");
    assert!(run.stderr.contains("problem: mount left in TMPDIR"));
    // The run's directory, removed at its end, keeps the mount too, and says so.
    assert!(
        run.stderr.contains(&format!(
            "cargo-reap: warning: mount left in {}: {}/{suite_tmp}/mnt",
            run_dir.display(),
            run_dir.display()
        )),
        "{}",
        run.stderr
    );
}

/// A suite replaces its TMPDIR with a symlink to a directory with files: the
/// files are intact, not listed as left by the suite, and the suite's report
/// says it was a symlink. Before: the files behind the link were reported as
/// "left (removed)".
#[test]
fn a_tmpdir_replaced_by_a_symlink_is_reported_and_not_followed() {
    require_root();
    let _turn = serial();
    let scratch = Scratch::new("symlink");
    let target = precious(&scratch, "precious");
    let tmp = scratch.0.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let manifest = sabotage_manifest();
    let run = reap_with(
        &[],
        &[
            ("TMPDIR", tmp.to_str().unwrap()),
            ("SABOTAGE_SYMLINK_TARGET", target.to_str().unwrap()),
        ],
        &sabotage_args(&manifest, &["tmpdir_symlink"]),
        &scratch.0.join("report.json"),
    );
    assert_intact(&target);
    check_against_expected(&run, &expected_fs(&["sabotage-fs::tmpdir_symlink"]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let suites = run.suites();
    let suite = suites["sabotage-fs::tmpdir_symlink"];
    assert!(suite["tmp"].is_null(), "nothing listed as left: {suite:#}");
    let p = problems(suite);
    assert!(
        p.iter()
            .any(|p| p.contains("TMPDIR was replaced by a symlink")
                && p.contains(target.to_str().unwrap())),
        "{p:?}"
    );
    assert_eq!(run.report()["summary"]["suites_with_tmp_files"], 0);
}

/// A suite deletes its TMPDIR (and leaks a process): the run finishes with
/// its full report — leak table, summary, valid JSON — and the suite's
/// problems say what happened. Before: exit 2, no table, a 0-byte JSON file.
#[test]
fn a_deleted_tmpdir_is_a_problem_of_the_suite_not_the_end_of_the_run() {
    require_root();
    let _turn = serial();
    let scratch = Scratch::new("deleted");
    let manifest = sabotage_manifest();
    let run = reap_with(
        &[],
        &[],
        &sabotage_args(&manifest, &["tmpdir_deleted", "read_only_dir"]),
        &scratch.0.join("report.json"),
    );
    let expected = expected_fs(&["sabotage-fs::tmpdir_deleted", "sabotage-fs::read_only_dir"]);
    check_against_expected(&run, &expected);
    check_summary(&run, &expected);
    assert_eq!(run.code, 103, "{}", run.stderr);
    assert!(run.stderr.contains("LEAKED PROCESSES"), "{}", run.stderr);
    assert!(run.stderr.contains("sleep 3852"), "{}", run.stderr);
    assert!(
        run.stderr.contains("cargo-reap: 2 suites in"),
        "{}",
        run.stderr
    );
    let suites = run.suites();
    let p = problems(suites["sabotage-fs::tmpdir_deleted"]);
    assert!(
        p.iter()
            .any(|p| p.starts_with("TMPDIR was deleted by the suite")),
        "{p:?}"
    );
    // As root a read-only directory is no obstacle: removed, no problem.
    let ro = suites["sabotage-fs::read_only_dir"];
    assert_eq!(ro["tmp"]["files"], 1, "{ro:#}");
    assert!(problems(ro).is_empty(), "{ro:#}");
}

/// The binary of a sabotage-fs suite (built by a root run of it).
fn suite_binary(scratch: &Scratch, target: &str) -> String {
    let manifest = sabotage_manifest();
    let run = reap_with(
        &[],
        &[],
        &sabotage_args(&manifest, &[target]),
        &scratch.0.join("build.json"),
    );
    let suites = run.suites();
    let id = format!("sabotage-fs::{target}");
    suites[id.as_str()]["binary"].as_str().unwrap().to_string()
}

/// A non-root suite leaves a read-only directory with a file in its TMPDIR:
/// the runner (same user) gives the directory its write permission back,
/// removes it, says so in the suite's problems, and the run reports as usual.
/// Before: "Permission denied" ended the run (exit 2, no report).
#[test]
fn a_read_only_directory_left_by_a_non_root_suite_is_removed_and_reported() {
    require_root();
    let _turn = serial();
    let scratch = Scratch::new("readonly");
    let binary = suite_binary(&scratch, "read_only_dir");
    let home = owned_by(&scratch, "user", OTHER);
    let run = reap_with(
        &setpriv(OTHER)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &[("TMPDIR", home.to_str().unwrap())],
        &["run", "--", &binary],
        &home.join("report.json"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let suites = run.suites();
    let (_, suite) = suites.iter().next().expect("one suite");
    assert_eq!(suite["status"], "pass", "{suite:#}");
    assert_eq!(suite["tmp"]["files"], 1, "{suite:#}");
    assert_eq!(suite["tmp"]["examples"][0], "ro/inside.txt");
    let p = problems(suite);
    assert!(
        p.iter().any(
            |p| p.starts_with("read-only directory in TMPDIR made writable to remove it")
                && p.ends_with("/ro")
        ),
        "{p:?}"
    );
    // Nothing of the run is left in the user's directory (the user's stamps
    // of runner mode, the last sweep and the session, are not the run's).
    let mine = home.join(format!("cargo-reap-{OTHER}"));
    let left: Vec<String> = std::fs::read_dir(&mine)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "last-sweep" && !n.starts_with("session-"))
        .collect();
    assert_eq!(left, Vec::<String>::new());
}

/// `cargo reap run` by root, then by another user: both work; each user's
/// directory is its own (0700). Before: root's run created a shared
/// `/tmp/cargo-reap` (0755) and every other user's run failed with
/// "Permission denied".
#[test]
fn run_by_root_then_by_another_user_both_work() {
    require_root();
    let _turn = serial();
    let scratch = Scratch::new("users");
    let reports = owned_by(&scratch, "reports", OTHER);
    let script = "echo hi > \"$TMPDIR/hello.txt\"";
    for (uid, wrapper) in [(0, Vec::new()), (OTHER, setpriv(OTHER))] {
        let json = reports.join(format!("report-{uid}.json"));
        let cmd_args = ["run", "--", "sh", "-c", script];
        let w: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        // Both use the machine's default temporary directory.
        let run = {
            let mut c = Command::new(if w.is_empty() { REAP } else { w[0] });
            if !w.is_empty() {
                c.args(&w[1..]).arg(REAP);
            }
            c.args(&cmd_args[..1])
                .arg("--json")
                .arg(&json)
                .args(&cmd_args[1..])
                .env_remove("TMPDIR")
                .env_remove("CARGO_REAP_SUITE")
                .current_dir(&reports)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(0), "uid {uid}: {stderr}");
        let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_nothing_survived(report["run_id"].as_str().unwrap());
        assert_eq!(report["suites"][0]["tmp"]["files"], 1, "uid {uid}");
        let dir = PathBuf::from(format!("/tmp/cargo-reap-{uid}"));
        let meta = std::fs::metadata(&dir).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (meta.uid(), meta.mode() & 0o777),
            (uid, 0o700),
            "{}",
            dir.display()
        );
    }
    // The other user's directory is empty again: leave /tmp as it was.
    if let Err(e) = std::fs::remove_dir(format!("/tmp/cargo-reap-{OTHER}")) {
        eprintln!("removing /tmp/cargo-reap-{OTHER}: {e}");
    }
}

/// `TMPDIR` naming a directory that does not exist: cargo-reap says so, uses
/// /tmp, and creates neither it nor its parents. Before: it was created.
#[test]
fn a_tmpdir_that_does_not_exist_is_not_created() {
    require_root();
    let _turn = serial();
    let scratch = Scratch::new("no-tmpdir");
    let missing = scratch.0.join("does/not/exist");
    let run = reap_with(
        &[],
        &[("TMPDIR", missing.to_str().unwrap())],
        &["run", "--", "sh", "-c", "test -d \"$TMPDIR\""],
        &scratch.0.join("report.json"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("TMPDIR={} cannot be used", missing.display()))
            && run.stderr.contains("uses /tmp instead"),
        "{}",
        run.stderr
    );
    assert!(!scratch.0.join("does").exists(), "a parent was created");
}

/// Two concurrent `cargo reap test` runs in one workspace, started under
/// other names (a symlink `reap`, a copy `.cargo-reap-wrapped`), plus
/// `cargo reap clean` under both names while they run: neither run is judged
/// dead, both suites pass with their TMPDIR intact. Before: the runner's
/// process name decided liveness, so the second run's start swept the first
/// (killed its suite, deleted its TMPDIR).
#[test]
fn concurrent_runs_under_other_names_never_sweep_each_other() {
    require_root();
    let _turn = serial();
    let scratch = Scratch::new("names");
    let wrapped = scratch.0.join(".cargo-reap-wrapped");
    std::fs::copy(REAP, &wrapped).unwrap();
    let link = scratch.0.join("reap");
    std::os::unix::fs::symlink(REAP, &link).unwrap();
    let manifest = sabotage_manifest();
    // Build first, so that both runs start at once.
    suite_binary(&scratch, "wait_for_go");

    let mut runs = Vec::new();
    for (name, exe) in [("a", &link), ("b", &wrapped)] {
        let fifo = scratch.0.join(format!("go-{name}"));
        let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let json = scratch.0.join(format!("{name}.json"));
        let mut child = Command::new(exe)
            .args(sabotage_args(&manifest, &["wait_for_go"]))
            .arg("--json")
            .arg(&json)
            .env("SABOTAGE_GO_FIFO", &fifo)
            .env_remove("CARGO_REAP_SUITE")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let run_id = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("run {name} announces itself: {seen:#?}"))
                .unwrap();
            seen.push(line.clone());
            if let Some(rest) = line.strip_prefix("cargo-reap: run ") {
                break rest.split(':').next().unwrap().to_string();
            }
        };
        let rest = std::thread::spawn(move || {
            seen.extend(lines.map_while(Result::ok));
            seen.join("\n")
        });
        // Its sweep is done before its suite starts; the suite then waits.
        wait_until("the suite to wait for go", Duration::from_secs(30), || {
            !tagged(&run_id).is_empty()
        });
        runs.push((name, child, run_id, fifo, json, rest));
    }
    for exe in [&link, &wrapped] {
        let out = Command::new(exe).arg("clean").output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        for (_, _, run_id, ..) in &runs {
            assert!(!text.contains(run_id.as_str()), "{run_id} swept: {text}");
        }
    }
    let mut results = Vec::new();
    for (name, mut child, run_id, fifo, json, rest) in runs {
        // Non-blocking: a suite that is gone fails here, not by hanging.
        let go = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo);
        match go {
            Ok(mut w) => w.write_all(b"go").unwrap(),
            Err(e) => eprintln!("run {name}: its suite no longer waits: {e}"),
        }
        let status = child.wait().unwrap();
        let stderr = rest.join().unwrap();
        results.push((name, status, run_id, json, stderr));
    }
    for (name, status, run_id, json, stderr) in &results {
        assert_eq!(status.code(), Some(0), "run {name}: {stderr}");
        let report: Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
        assert_nothing_survived(run_id);
        assert_eq!(
            report["suites"][0]["status"], "pass",
            "run {name}: {stderr}"
        );
        for (_, _, other, ..) in &results {
            assert!(
                other == run_id || !stderr.contains(other.as_str()),
                "run {name} swept {other}: {stderr}"
            );
        }
    }
}

/// `sleep SECS` (through `wrapper`, e.g. setpriv) tagged as a suite of run
/// `run`, once it runs.
fn tagged_leftover(wrapper: &[String], secs: &str, run: &str) -> Guarded {
    let mut argv: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    argv.extend(["sleep", secs]);
    let g = Guarded(
        Command::new(argv[0])
            .args(&argv[1..])
            .env("CARGO_REAP_SUITE", format!("{run}/fake::suite"))
            .spawn()
            .unwrap(),
    );
    wait_until(
        "the tagged leftover to exec",
        Duration::from_secs(5),
        || !tagged(run).is_empty(),
    );
    g
}

/// `cargo reap clean` as `uid` with `TMPDIR=tmp`.
fn clean_as(uid: u32, tmp: &Path) -> std::process::Output {
    let pr = setpriv(uid);
    Command::new(&pr[0])
        .args(&pr[1..])
        .arg(REAP)
        .arg("clean")
        .env("TMPDIR", tmp)
        .output()
        .unwrap()
}

/// `cargo reap clean` (by a user) meets a dead run's directory with an entry
/// it may not remove (a root-owned directory with a file): it removes the
/// rest, names the entry, still kills the dead run's tagged process, and
/// exits 1. Before: the first entry it could not remove ended the sweep.
#[test]
fn clean_goes_on_past_an_entry_it_cannot_remove_and_still_kills() {
    use std::os::unix::fs::MetadataExt;
    require_root();
    let _turn = serial();
    let scratch = Scratch::new("clean");
    let tmp = owned_by(&scratch, "tmp", OTHER);
    let ns = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
    // pid 99999993 cannot exist (pid_max <= 2^22): a dead run.
    let dead = format!("1-99999993-{ns:x}-1");
    let user_dir = tmp.join(format!("cargo-reap-{OTHER}"));
    let suite_dir = user_dir.join(&dead).join("1.fake__suite");
    std::fs::create_dir_all(&suite_dir).unwrap();
    std::fs::write(suite_dir.join("normal.txt"), b"x").unwrap();
    let stuck = suite_dir.join("stuck");
    std::fs::create_dir(&stuck).unwrap();
    std::fs::write(stuck.join("file"), b"root's").unwrap();
    for d in [&user_dir, &user_dir.join(&dead), &suite_dir] {
        std::os::unix::fs::chown(d, Some(OTHER), Some(OTHER)).unwrap();
    }
    std::fs::set_permissions(&user_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(suite_dir.join("normal.txt"), Some(OTHER), Some(OTHER)).unwrap();
    let leftover = tagged_leftover(&setpriv(OTHER), "3853", &dead);
    let out = clean_as(OTHER, &tmp);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "could not remove {} from {}: Permission denied",
            stuck.join("file").display(),
            user_dir.join(&dead).display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "killed pid {} [{dead}/fake::suite]",
            leftover.0.id()
        )),
        "{text}"
    );
    assert!(
        !suite_dir.join("normal.txt").exists(),
        "the rest is removed"
    );
    assert!(stuck.join("file").exists());
    // Killed by the sweep: its exit is the event that proves it.
    let mut leftover = leftover;
    let status = leftover.0.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    std::mem::forget(leftover);
}

/// Removes the test's cgroup directories on every path (they hold no process).
struct CgroupDirs(Vec<PathBuf>);

impl Drop for CgroupDirs {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            if let Err(e) = std::fs::remove_dir(d) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    eprintln!("removing {}: {e}", d.display());
                }
            }
        }
    }
}

/// A user's sweep finds its own dead run's leaf in a subtree delegated to it
/// below directories of root (as `user.slice/user@UID.service` is), and
/// leaves alone what is root's: a dead run's leaf and tagged process of root
/// are neither touched nor reported as failures.
#[test]
fn a_non_root_sweep_takes_its_own_leftovers_only() {
    use std::os::unix::fs::MetadataExt;
    require_root();
    let _turn = serial();
    let ns = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
    let root_dir = cgroup2_root().join(format!("fs-safety-{}", std::process::id()));
    let delegated = root_dir.join("delegated");
    let mine = delegated.join(format!("cargo-reap.1-99999991-{ns:x}-1.0.1.fake"));
    let roots = cgroup2_root().join(format!("cargo-reap.1-99999990-{ns:x}-1.0.1.fake"));
    let _dirs = CgroupDirs(vec![
        root_dir.clone(),
        delegated.clone(),
        mine.clone(),
        roots.clone(),
    ]);
    for d in [&root_dir, &delegated, &mine, &roots] {
        std::fs::create_dir(d).unwrap();
    }
    for d in [&delegated, &mine] {
        std::os::unix::fs::chown(d, Some(OTHER), Some(OTHER)).unwrap();
    }
    let dead_of_root = format!("1-99999990-{ns:x}-1");
    let roots_leftover = tagged_leftover(&[], "3854", &dead_of_root);
    let scratch = Scratch::new("own-leaves");
    let tmp = owned_by(&scratch, "tmp", OTHER);
    let out = clean_as(OTHER, &tmp);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(&format!("removed cgroup {}", mine.display())),
        "{text}"
    );
    assert!(!mine.exists());
    assert!(
        !text.contains("99999990"),
        "root's leftovers are root's: {text}"
    );
    assert!(roots.exists());
    assert!(reap_probe::start_time(roots_leftover.0.id() as i32).is_ok());
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(std::fs::metadata(&delegated).unwrap().uid(), OTHER);
}

/// The per-user directory is checked before use: one that another user owns
/// or that is a symlink (pre-created in a shared /tmp to catch this user's
/// files) is refused with a message saying what to do, and nothing is
/// written behind the link.
#[test]
fn a_user_directory_that_is_not_ours_is_refused() {
    require_root();
    let _turn = serial();
    let scratch = Scratch::new("not-ours");
    let tmp = scratch.0.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let elsewhere = owned_by(&scratch, "elsewhere", OTHER);
    let user_dir = tmp.join(format!("cargo-reap-{OTHER}"));
    let pr = setpriv(OTHER);
    for (what, make) in [
        ("owned by uid 0, not by you", None),
        ("is a symbolic link", Some(&elsewhere)),
    ] {
        match make {
            None => std::fs::create_dir(&user_dir).unwrap(),
            Some(target) => std::os::unix::fs::symlink(target, &user_dir).unwrap(),
        }
        let out = Command::new(&pr[0])
            .args(&pr[1..])
            .args([REAP, "run", "--", "true"])
            .env("TMPDIR", &tmp)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(
            text.contains(&format!("refusing to use {}", user_dir.display()))
                && text.contains(what)
                && text.contains("set TMPDIR to a directory of yours"),
            "{text}"
        );
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        if make.is_none() {
            std::fs::remove_dir(&user_dir).unwrap();
        }
    }
}

/// The stale sweep never enters a mount either: a dead run's directory with a
/// directory of files bind-mounted into it (in a private mount namespace) —
/// `cargo reap clean` removes the rest, names the mount, and every file
/// behind it is intact.
#[test]
fn clean_never_enters_a_mount_in_a_dead_runs_directory() {
    use std::os::unix::fs::MetadataExt;
    require_root();
    let _turn = serial();
    let scratch = Scratch::new("clean-mount");
    let source = precious(&scratch, "precious");
    let tmp = scratch.0.join("tmp");
    let ns = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
    let dead = tmp
        .join("cargo-reap-0")
        .join(format!("1-99999989-{ns:x}-1"));
    let suite_dir = dead.join("1.fake__suite");
    std::fs::create_dir_all(suite_dir.join("mnt")).unwrap();
    std::fs::write(suite_dir.join("left.txt"), b"x").unwrap();
    let script = format!(
        "set -e; mount --bind {} {}; exec \"$0\" clean",
        source.display(),
        suite_dir.join("mnt").display()
    );
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            REAP,
        ])
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_intact(&source);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "problem: mount left in {}: {}",
            dead.display(),
            suite_dir.join("mnt").display()
        )),
        "{text}"
    );
    assert!(!suite_dir.join("left.txt").exists(), "the rest is removed");
}

/// `cargo reap test` keeps the logs of the 10 most recent runs (and of the
/// last hour) in `target/reap/` and removes older ones — only directories
/// named by the run id of a dead runner: never a symlink (nor what it points
/// to), a user's file or directory, or a run of another pid namespace.
/// Failed before: every run's logs stayed forever (40 MB in the benchmark's
/// workspace after a few hundred runs).
#[test]
fn old_run_logs_are_pruned_and_nothing_else_is_touched() {
    let _serial = serial();
    let scratch = Scratch::new("prune");
    let target = scratch.0.join("target");
    let reap_dir = target.join("reap");
    std::fs::create_dir_all(&reap_dir).unwrap();
    let ns = std::fs::metadata("/proc/self/ns/pid").unwrap();
    let ns = std::os::unix::fs::MetadataExt::ino(&ns);
    // Twelve dead runs of 1970 (ms 1..=12; pids that cannot exist), each
    // with a log.
    let dead = |i: u32| format!("{i:x}-{}-{ns:x}-1", 99_999_900 + i);
    for i in 1..=12 {
        let dir = reap_dir.join(dead(i));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("suite.log"), "old\n").unwrap();
    }
    // The oldest of all, of another pid namespace: its pid means nothing here.
    let foreign = format!("0-99999800-{:x}-1", ns + 1);
    std::fs::create_dir(reap_dir.join(&foreign)).unwrap();
    // A symlink named like a dead run, to a directory outside.
    let outside = precious(&scratch, "outside");
    let link = format!("2-99999700-{ns:x}-1");
    std::os::unix::fs::symlink(&outside, reap_dir.join(&link)).unwrap();
    // What a user keeps there.
    std::fs::create_dir(reap_dir.join("my-notes")).unwrap();
    std::fs::write(reap_dir.join("my-notes/note.txt"), "mine\n").unwrap();
    std::fs::write(reap_dir.join("report.json"), "{}\n").unwrap();

    let json = scratch.0.join("r.json");
    let manifest = fixture_manifest_of("counts").display().to_string();
    let run = reap_with(
        &[],
        &[("CARGO_TARGET_DIR", target.to_str().unwrap())],
        &["test", "--manifest-path", &manifest],
        &json,
    );
    let run_id = run.report()["run_id"].as_str().unwrap().to_string();
    assert!(
        reap_dir.join(&run_id).is_dir(),
        "the run's own logs: {}",
        run.stderr
    );
    // Kept: this run and the 9 newest dead ones (12..=4); gone: 3, 2, 1.
    for i in 4..=12 {
        assert!(
            reap_dir.join(dead(i)).is_dir(),
            "run {i} kept: {}",
            run.stderr
        );
    }
    for i in 1..=3 {
        assert!(
            !reap_dir.join(dead(i)).exists(),
            "run {i} pruned: {}",
            run.stderr
        );
    }
    assert!(
        reap_dir.join(&foreign).is_dir(),
        "another namespace's run kept"
    );
    assert!(
        reap_dir.join(&link).is_symlink(),
        "the symlink is not removed"
    );
    assert_intact(&outside);
    assert!(reap_dir.join("my-notes/note.txt").is_file());
    assert!(reap_dir.join("report.json").is_file());
    assert!(
        !run.stderr.contains("warning"),
        "nothing to warn about: {}",
        run.stderr
    );
}
