//! `cargo reap merge` (issue 13), end to end on `fixtures/counts`: the
//! selection run whole and as `--partition` shards by the built binary, the
//! shard reports merged, and the merged verdicts (per suite status, leaks,
//! tests, the summary, the failures and rerun hints, the exit code, the
//! JUnit file) compared with the unpartitioned run's. Also what merge
//! refuses (another schema version, another selection, the same run twice),
//! what it warns about (a missing shard, a report without `selection`), runs
//! of one shard as trials, and, from outside, that merge starts no process.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

/// Passing, failing and ignored tests, and one suite that leaks a `sleep`
/// (attributed to its test): four suites, split 3 + 1 by `hash:M/2` and
/// 2 + 2 by `slice:M/2`.
const SELECTION: &[&str] = &[
    "-p",
    "counts-fixture",
    "--lib",
    "--test",
    "integ",
    "--test",
    "fails",
    "--test",
    "leaky_two",
];

/// A finished `cargo reap test` run: its exit code, its JSON report (read
/// back, and on disk for merging).
struct Ran {
    code: i32,
    report: Value,
    json: PathBuf,
}

/// The runs the tests share (each run once per test process).
struct Runs {
    dir: PathBuf,
    all: Ran,
    /// The unpartitioned run's `--junit`.
    all_junit: PathBuf,
    hash: [Ran; 2],
    slice: [Ran; 2],
}

fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        // One directory, replaced by each run of this test binary (cargo's
        // place for integration tests' files): the reports stay to be read
        // after a failure.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("merge-reports");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        let all_junit = dir.join("all.xml");
        let all = run_selection(&dir, "all", &["--junit", all_junit.to_str().unwrap()]);
        let shard = |kind: &str, m: u32| {
            let p = format!("{kind}:{m}/2");
            run_selection(&dir, &format!("{kind}-{m}"), &["--partition", &p])
        };
        Runs {
            all,
            all_junit,
            hash: [shard("hash", 1), shard("hash", 2)],
            slice: [shard("slice", 1), shard("slice", 2)],
            dir,
        }
    })
}

/// `cargo-reap test --manifest-path <counts> SELECTION EXTRA --json DIR/NAME.json`,
/// checked from outside to have left nothing behind.
fn run_selection(dir: &Path, name: &str, extra: &[&str]) -> Ran {
    let manifest = fixture_manifest_of("counts").display().to_string();
    let mut args = vec!["test", "--manifest-path", manifest.as_str()];
    args.extend_from_slice(SELECTION);
    args.extend_from_slice(extra);
    let json = dir.join(format!("{name}.json"));
    let out = reap_command(&[], &args, &json)
        .env("REAP_FIXTURE_STATE_DIR", dir.join("state"))
        .stdin(Stdio::null())
        .output()
        .expect("run cargo-reap");
    let run = finished_run(
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        &json,
    );
    let report = run.report().clone();
    Ran {
        code: run.code,
        report,
        json,
    }
}

/// A finished `cargo reap merge`.
struct Merged {
    code: i32,
    stderr: String,
    /// Its `--json`, when it wrote one.
    report: Option<Value>,
}

/// `cargo-reap merge REPORTS --json <dir>/OUT.json EXTRA`.
fn merge(reports: &[&Path], out: &Path, extra: &[&str]) -> Merged {
    if out.exists() {
        std::fs::remove_file(out).unwrap();
    }
    let output = Command::new(REAP)
        .arg("merge")
        .args(reports)
        .arg("--json")
        .arg(out)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run cargo-reap merge");
    let report = std::fs::read(out)
        .ok()
        .map(|b| serde_json::from_slice::<Value>(&b).expect("valid merged JSON"));
    Merged {
        code: output.status.code().expect("merge exited, not killed"),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        report,
    }
}

/// What a suite's verdict is: status, failing and allowed leaks (command,
/// test), tests and their results, libtest's counts.
fn verdicts(report: &Value) -> BTreeMap<String, Value> {
    report["suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut leaks: Vec<Value> = s["leaks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| serde_json::json!([l["cmdline"], l["test"], l["allowed"]]))
                .collect();
            leaks.sort_by_key(|l| l.to_string());
            // A test's verdict is its name and result (its time and the
            // thread ids in its failure output differ from run to run).
            let mut tests: Vec<Value> = s["tests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| serde_json::json!([t["name"], t["result"]]))
                .collect();
            tests.sort_by_key(|t| t.to_string());
            let verdict = serde_json::json!({
                "status": s["status"],
                "leaks": leaks,
                "tests": tests,
                "counts": s["counts"],
            });
            (s["id"].as_str().unwrap().to_string(), verdict)
        })
        .collect()
}

fn failures(report: &Value) -> Vec<String> {
    let mut f: Vec<String> = report["failures"]
        .as_array()
        .map(|a| a.iter().map(|x| x.to_string()).collect())
        .unwrap_or_default();
    f.sort();
    f
}

/// (testsuite, testcase, failed) of a JUnit file, which must be well-formed.
fn junit_cases(path: &Path) -> Vec<(String, String, bool)> {
    use quick_xml::events::Event;
    let xml = std::fs::read_to_string(path).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut cases: Vec<(String, String, bool)> = Vec::new();
    let mut suite = String::new();
    loop {
        let ev = reader.read_event().expect("well-formed JUnit XML");
        let name = |e: &quick_xml::events::BytesStart| {
            e.attributes()
                .flatten()
                .find(|a| a.key.as_ref() == b"name")
                .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                .unwrap_or_default()
        };
        match ev {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testsuite" => {
                    suite = name(&e);
                    cases.push((suite.clone(), String::new(), false));
                }
                b"testcase" => cases.push((suite.clone(), name(&e), false)),
                b"failure" | b"error" => cases.last_mut().unwrap().2 = true,
                _ => {}
            },
            _ => {}
        }
    }
    cases.sort();
    cases
}

/// The merge of the two shards of `kind` equals the unpartitioned run.
fn shards_merge_to_the_whole(kind: &str, shards: &[Ran; 2]) {
    let r = runs();
    for s in shards {
        assert!(
            !s.report["suites"].as_array().unwrap().is_empty(),
            "a {kind} shard ran no suite: the test would not test a split"
        );
    }
    let junit = r.dir.join(format!("merged-{kind}.xml"));
    let m = merge(
        &[&shards[0].json, &shards[1].json],
        &r.dir.join(format!("merged-{kind}.json")),
        &["--junit", junit.to_str().unwrap()],
    );
    let merged = m.report.as_ref().unwrap_or_else(|| panic!("{}", m.stderr));
    let all = &r.all.report;
    assert_eq!(verdicts(merged), verdicts(all), "{}", m.stderr);
    assert_eq!(merged["summary"], all["summary"], "{}", m.stderr);
    assert_eq!(failures(merged), failures(all));
    assert_eq!(m.code, r.all.code, "{}", m.stderr);
    assert_eq!(merged["exit_code"], all["exit_code"]);
    assert_eq!(m.code, 100, "a failing suite and a leak: 100");
    // The summary line says the exit code returned.
    assert!(
        m.stderr.contains("4 suites") && m.stderr.contains("exit 100)"),
        "{}",
        m.stderr
    );
    assert!(m.stderr.contains("LEAKED PROCESSES"), "{}", m.stderr);
    // One selection; the merge has no partition left; the inputs listed.
    assert_eq!(
        merged["selection"]["fingerprint"],
        all["selection"]["fingerprint"]
    );
    assert_eq!(merged["selection"]["suites_total"], 4);
    assert!(merged["selection"].get("partition").is_none());
    assert_eq!(
        merged["merged_from"],
        serde_json::json!([shards[0].report["run_id"], shards[1].report["run_id"]])
    );
    assert_ne!(merged["run_id"], shards[0].report["run_id"]);
    assert!(merged.get("trials").is_none() && merged.get("loop_summary").is_none());
    let summed = shards[0].report["duration_ms"].as_u64().unwrap()
        + shards[1].report["duration_ms"].as_u64().unwrap();
    assert_eq!(merged["duration_ms"], summed, "runner time, summed");
    assert!(!m.stderr.contains("warning"), "{}", m.stderr);
    // The JUnit of the merge: well-formed, the same testsuites and cases, the
    // same ones failing.
    // The merged file is valid against the schema CI dashboards read.
    validate_junit(&junit);
    let cases = junit_cases(&junit);
    assert_eq!(cases, junit_cases(&r.all_junit));
    let suites = cases.iter().filter(|c| c.1.is_empty()).count();
    assert_eq!(suites, 4, "one testsuite per suite: {cases:?}");
}

#[test]
fn hash_shards_merge_to_the_unpartitioned_verdicts() {
    require_root();
    shards_merge_to_the_whole("hash", &runs().hash);
}

#[test]
fn slice_shards_merge_to_the_unpartitioned_verdicts() {
    require_root();
    shards_merge_to_the_whole("slice", &runs().slice);
}

/// A report with `edit` applied, written next to the others.
fn edited(from: &Ran, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut v = from.report.clone();
    edit(&mut v);
    let path = runs().dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    path
}

#[test]
fn another_schema_version_is_refused_naming_each_file() {
    require_root();
    let r = runs();
    let v2 = edited(&r.hash[1], "version-2.json", |v| v["version"] = 2.into());
    let out = r.dir.join("merged-v2.json");
    let m = merge(&[&r.hash[0].json, &v2], &out, &[]);
    assert_eq!(m.code, 2, "{}", m.stderr);
    assert!(m.report.is_none(), "nothing written");
    let said = format!("{} has version 2", v2.display());
    assert!(m.stderr.contains(&said), "{}", m.stderr);
    let said = format!("{} has version 1", r.hash[0].json.display());
    assert!(m.stderr.contains(&said), "{}", m.stderr);
}

#[test]
fn reports_of_another_selection_are_refused_unless_allowed() {
    require_root();
    let r = runs();
    // Another selection: only the `integ` suite.
    let manifest = fixture_manifest_of("counts").display().to_string();
    let json = r.dir.join("integ.json");
    let out = reap_command(
        &[],
        &[
            "test",
            "--manifest-path",
            &manifest,
            "-p",
            "counts-fixture",
            "--test",
            "integ",
        ],
        &json,
    )
    .stdin(Stdio::null())
    .output()
    .unwrap();
    let other = finished_run(
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        &json,
    );
    assert_eq!(other.code, 0, "{}", other.stderr);
    let merged = r.dir.join("merged-mixed.json");
    let m = merge(&[&r.hash[1].json, &json], &merged, &[]);
    assert_eq!(m.code, 2, "{}", m.stderr);
    assert!(m.report.is_none());
    assert!(m.stderr.contains("different selections"), "{}", m.stderr);
    for f in [&r.hash[1].json, &json] {
        assert!(m.stderr.contains(&f.display().to_string()), "{}", m.stderr);
    }
    // Allowed: merged, said; the verdicts of both.
    let m = merge(&[&r.hash[1].json, &json], &merged, &["--allow-mixed"]);
    let report = m.report.as_ref().unwrap_or_else(|| panic!("{}", m.stderr));
    assert!(m.stderr.contains("--allow-mixed"), "{}", m.stderr);
    assert_eq!(
        verdicts(report).keys().collect::<Vec<_>>(),
        ["counts-fixture", "counts-fixture::integ"]
    );
    assert_eq!(m.code, 100, "{}", m.stderr);
    assert!(report.get("selection").is_none());
}

/// One selection split two ways: the shards overlap, refused naming each.
#[test]
fn shards_of_different_partition_schemes_are_refused() {
    require_root();
    let r = runs();
    let m = merge(
        &[&r.hash[0].json, &r.slice[1].json],
        &r.dir.join("merged-schemes.json"),
        &[],
    );
    assert_eq!(m.code, 2, "{}", m.stderr);
    assert!(m.report.is_none());
    for (f, p) in [
        (&r.hash[0].json, "hash:1/2"),
        (&r.slice[1].json, "slice:2/2"),
    ] {
        let said = format!("{} {p}", f.display());
        assert!(m.stderr.contains(&said), "{}", m.stderr);
    }
    assert!(m.stderr.contains("split in different ways"), "{}", m.stderr);
}

#[test]
fn a_missing_shard_is_warned_and_the_rest_merged() {
    require_root();
    let r = runs();
    let m = merge(&[&r.hash[0].json], &r.dir.join("merged-one.json"), &[]);
    let report = m.report.as_ref().unwrap_or_else(|| panic!("{}", m.stderr));
    assert!(
        m.stderr
            .contains("warning: merge: shard 2/2 (hash:2/2) is missing"),
        "{}",
        m.stderr
    );
    assert_eq!(verdicts(report), verdicts(&r.hash[0].report));
    assert_eq!(report["summary"], r.hash[0].report["summary"]);
    assert_eq!(m.code, r.hash[0].code);
    assert_eq!(
        report["selection"]["partition"], "hash:1/2",
        "runs of one share keep its partition"
    );
}

#[test]
fn reports_without_selection_merge_with_a_warning() {
    require_root();
    let r = runs();
    let old: Vec<PathBuf> = r
        .hash
        .iter()
        .enumerate()
        .map(|(i, s)| {
            edited(s, &format!("old-{i}.json"), |v| {
                v.as_object_mut().unwrap().remove("selection");
            })
        })
        .collect();
    let m = merge(&[&old[0], &old[1]], &r.dir.join("merged-old.json"), &[]);
    let report = m.report.as_ref().unwrap_or_else(|| panic!("{}", m.stderr));
    for f in &old {
        let said = format!(
            "{} has no `selection` (written by an older cargo-reap): whether it belongs to the same selection cannot be checked",
            f.display()
        );
        assert!(m.stderr.contains(&said), "{}", m.stderr);
    }
    assert_eq!(verdicts(report), verdicts(&r.all.report));
    assert_eq!(report["summary"], r.all.report["summary"]);
    assert_eq!(m.code, r.all.code);
    assert!(report.get("selection").is_none());
}

/// A shard whose build failed (a real one: a crate that does not compile)
/// makes the merge exit 101, and may be the shard the merge misses.
#[test]
fn a_failed_build_in_a_shard_carries_over() {
    require_root();
    let r = runs();
    let krate = r.dir.join("broken");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        "[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(krate.join("src/lib.rs"), "pub fn f() -> u32 { \"no\" }\n").unwrap();
    let json = r.dir.join("broken.json");
    let out = reap_command(
        &[],
        &[
            "test",
            "--manifest-path",
            krate.join("Cargo.toml").to_str().unwrap(),
        ],
        &json,
    )
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(101));
    let m = merge(
        &[&r.hash[0].json, &json],
        &r.dir.join("merged-broken.json"),
        &[],
    );
    let report = m.report.as_ref().unwrap_or_else(|| panic!("{}", m.stderr));
    assert_eq!(
        m.code, 101,
        "a failed build over a failed suite: {}",
        m.stderr
    );
    assert_eq!(report["build_failed"], true);
    assert_eq!(report["summary"], r.hash[0].report["summary"]);
    let said = format!(
        "shard 2/2 (hash:2/2) is missing: no report names it, its suites are not in the merged report (unless it is {}, which ended before its suites were known)",
        json.display()
    );
    assert!(m.stderr.contains(&said), "{}", m.stderr);
    assert!(m.stderr.contains("exit 101)"), "{}", m.stderr);
}

/// Several runs of one shard (one with `--loop 2`) are its trials, in the
/// order given; the same run given twice is refused.
#[test]
fn runs_of_one_shard_become_trials() {
    require_root();
    let r = runs();
    let again = run_selection(
        &r.dir,
        "hash-2-loop",
        &["--partition", "hash:2/2", "--loop", "2"],
    );
    let m = merge(
        &[&r.hash[0].json, &r.hash[1].json, &again.json],
        &r.dir.join("merged-trials.json"),
        &[],
    );
    let report = m.report.as_ref().unwrap_or_else(|| panic!("{}", m.stderr));
    assert!(
        m.stderr.contains("2 reports of shard hash:2/2"),
        "{}",
        m.stderr
    );
    let trials = report["trials"].as_array().unwrap();
    let shape: Vec<(u64, usize)> = trials
        .iter()
        .map(|t| {
            (
                t["number"].as_u64().unwrap(),
                t["suites"].as_array().unwrap().len(),
            )
        })
        .collect();
    // Trial 1: both shards; trials 2 and 3: the loop run of shard 2.
    assert_eq!(shape, [(1, 4), (2, 1), (3, 1)]);
    let rates: BTreeMap<&str, u64> = report["loop_summary"]["suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["trials"].as_u64().unwrap()))
        .collect();
    assert_eq!(rates["counts-fixture"], 3);
    assert_eq!(rates["counts-fixture::leaky_two"], 1);
    assert_eq!(report["loop_summary"]["trials"], 3);
    assert_eq!(report["summary"]["suites"], 6, "suite runs, every trial");
    assert_eq!(report["summary"]["failed"], 4);
    assert_eq!(report["summary"]["leaked_processes"], 1);
    assert_eq!(
        verdicts(report),
        verdicts(&r.all.report),
        "shown: one per suite"
    );
    assert_eq!(m.code, 100);
    // The same run twice would count it twice.
    let m = merge(
        &[&r.hash[0].json, &r.hash[1].json, &r.hash[0].json],
        &r.dir.join("merged-twice.json"),
        &[],
    );
    assert_eq!(m.code, 2, "{}", m.stderr);
    assert!(m.stderr.contains("are the same run"), "{}", m.stderr);
}

/// From outside: in a fresh pid namespace the shell is pid 1 and the merge
/// pid 2; the next pid allocated (a process or a thread of anyone in it) is
/// the `cat` that reads `ns_last_pid`: 3 when the merge started nothing.
#[test]
fn merge_starts_no_process() {
    require_root();
    let r = runs();
    let out = r.dir.join("merged-ns.json");
    let script = r#""$0" merge "$1" "$2" --json "$3" >/dev/null 2>&1; echo "exit $?"; cat /proc/sys/kernel/ns_last_pid"#;
    let o = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "sh", "-c", script, REAP])
        .arg(&r.hash[0].json)
        .arg(&r.hash[1].json)
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["exit 100", "3"],
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.exists(), "the merge ran and wrote its report");
}
