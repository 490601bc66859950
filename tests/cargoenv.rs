//! A test process gets the environment `cargo test` gives it (issue 18), on
//! `fixtures/cargoenv`, run from that directory (cargo reads
//! `.cargo/config.toml` from the current directory up): the dynamic library
//! path a dylib dev-dependency needs, the `[env]` table of cargo's
//! configuration (plain, `force`, `relative`, `--config`),
//! `CARGO_BIN_EXE_<name>` at run time, and what a build script passes on
//! (`OUT_DIR`, `cargo::rustc-env`, link-search directories). The comparison test dumps the whole
//! environment of one probe test under `cargo test` and under `cargo reap
//! test` and allows only cargo-reap's documented additions to differ.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// What cargo-reap adds to a test process's environment, on purpose (README,
/// "Test environment"): its suite tag, the trial number, and the private
/// temporary directory.
const REAP_ADDITIONS: [&str; 5] = [
    "CARGO_REAP_SUITE",
    "CARGO_REAP_TRIAL",
    "TMPDIR",
    "TMP",
    "TEMP",
];

fn fixture_dir() -> PathBuf {
    repo().join("fixtures/cargoenv")
}

/// `cargo ARGS` from the fixture's directory, through the same cargo as the
/// project's (`$CARGO`), with this build's cargo-reap first on PATH (so
/// `cargo reap` is it) and no cargo-reap tag inherited.
fn cargo(args: &[&str]) -> Command {
    let bin_dir = Path::new(REAP).parent().unwrap().to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path =
        std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(&path))).unwrap();
    let mut c = Command::new(env!("CARGO"));
    c.args(args)
        .current_dir(fixture_dir())
        .env("PATH", path)
        .env_remove("CARGO_REAP_SUITE")
        .env_remove("CARGO_REAP_TRIAL")
        .env_remove("REAP_ENV_DUMP")
        .stdin(Stdio::null());
    c
}

/// `cargo test ARGS` from the fixture: it must pass.
fn cargo_test_passes(args: &[&str]) {
    let out = cargo(&[&["test"], args].concat()).output().unwrap();
    assert!(
        out.status.success(),
        "cargo test {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cargo reap test ARGS --json …` from the fixture, checked from outside
/// for survivors.
fn reap_test(args: &[&str], env: &[(&str, &str)]) -> Run {
    let scratch = Scratch::new("cargoenv");
    let json = scratch.0.join("report.json");
    let json_s = json.display().to_string();
    let mut c = cargo(&[&["reap", "test", "--json", &json_s], args].concat());
    c.envs(env.iter().copied());
    let out = c.output().unwrap();
    finished_run(
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        &json,
    )
}

fn expected(ids: &[&str]) -> Vec<ExpectedSuite> {
    expected_of("cargoenv")
        .into_iter()
        .filter(|e| ids.contains(&e.id.as_str()))
        .collect()
}

#[test]
fn dylib_dev_dependency_suite_starts_as_under_cargo_test() {
    cargo_test_passes(&["-p", "envprobe", "--test", "dylib"]);
    let run = reap_test(&["-p", "envprobe", "--test", "dylib"], &[]);
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    check_against_expected(&run, &expected(&["envprobe::dylib"]));
    assert_eq!(
        run.suites()["envprobe::dylib"]["tests"][0]["result"],
        "ok",
        "{}",
        run.stderr
    );
}

#[test]
fn config_env_and_bin_exe_reach_the_tests_as_under_cargo_test() {
    cargo_test_passes(&["-p", "envprobe", "--test", "config_env"]);
    let run = reap_test(&["-p", "envprobe", "--test", "config_env"], &[]);
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    check_against_expected(&run, &expected(&["envprobe::config_env"]));
    let tests = run.suites()["envprobe::config_env"]["tests"].clone();
    let ok = tests
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["result"] == "ok")
        .count();
    assert_eq!(ok, 4, "{tests:#}");
}

/// `NAME=value` lines of a dump (values may not contain newlines here).
fn read_dump(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no environment dump {}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn test_environment_is_cargo_tests_but_for_documented_additions() {
    compare_environments(&[]);
}

/// The same with `--target <host>`: the executables are then under
/// `target/<triple>/debug`, and the library path follows.
#[test]
fn test_environment_with_target_is_cargo_tests_too() {
    let out = Command::new("rustc").arg("-vV").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let host = text
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host");
    compare_environments(&["--target", host]);
}

/// Dump the probe's environment under `cargo test EXTRA` and `cargo reap
/// test EXTRA` and compare.
fn compare_environments(extra: &[&str]) {
    let scratch = Scratch::new("cargoenv-dump");
    // Both runs: `--config` overrides a file value, a non-forced variable
    // already in the environment keeps its value, a forced one does not.
    let config = ["--config", "env.REAP_PLAIN='from-cli'"];
    let given = [
        ("REAP_OVERRIDABLE", "from-environment"),
        ("REAP_FORCED", "from-environment"),
    ];
    let selection = [&["-p", "envprobe", "--test", "dump"], extra].concat();

    let plain = scratch.0.join("cargo-test.env");
    let out = cargo(&[&["test"], &config[..], &selection[..]].concat())
        .envs(given)
        .env("REAP_ENV_DUMP", &plain)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let reaped = scratch.0.join("cargo-reap.env");
    let reaped_s = reaped.display().to_string();
    let mut env = given.to_vec();
    env.push(("REAP_ENV_DUMP", &reaped_s));
    let run = reap_test(&[&config[..], &selection[..]].concat(), &env);
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    check_against_expected(&run, &expected(&["envprobe::dump"]));

    let mut a = read_dump(&plain);
    let mut b = read_dump(&reaped);
    // What both runs must show (cargo's own rules, so cargo-reap's too).
    for env in [&a, &b] {
        assert_eq!(env["REAP_PLAIN"], "from-cli");
        assert_eq!(env["REAP_OVERRIDABLE"], "from-environment");
        assert_eq!(env["REAP_FORCED"], "forced-value");
        assert_eq!(
            env["REAP_RELATIVE"],
            fixture_dir().join("envprobe/data").display().to_string()
        );
        assert!(env.contains_key("CARGO_BIN_EXE_probe-bin"), "{env:#?}");
        // The build script's `rustc-env`, its OUT_DIR, and its link-search
        // directory (inside the target directory) on the library path.
        assert_eq!(env["REAP_FROM_BUILD_SCRIPT"], "built");
        let out_dir = &env["OUT_DIR"];
        assert!(
            env["LD_LIBRARY_PATH"].split(':').next() == Some(out_dir.as_str()),
            "{env:#?}"
        );
    }
    // The dump file's name is the one variable the test itself varies.
    assert_eq!(
        a.remove("REAP_ENV_DUMP").unwrap(),
        plain.display().to_string()
    );
    assert_eq!(b.remove("REAP_ENV_DUMP").unwrap(), reaped_s);
    // cargo-reap's additions: its private TMPDIR (also TMP, TEMP), its tag.
    let tmp = &b["TMPDIR"];
    assert!(tmp.contains("/cargo-reap-"), "TMPDIR {tmp}");
    assert_eq!(&b["TMP"], tmp);
    assert_eq!(&b["TEMP"], tmp);
    assert!(b["CARGO_REAP_SUITE"].ends_with("/envprobe::dump"));
    assert_eq!(b["CARGO_REAP_TRIAL"], "1");
    for k in REAP_ADDITIONS {
        a.remove(k);
        b.remove(k);
    }
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let differences: Vec<String> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: cargo test {:?}, cargo reap {:?}", a.get(k), b.get(k)))
        .collect();
    assert!(
        differences.is_empty(),
        "environments differ beyond cargo-reap's documented additions:\n{}",
        differences.join("\n")
    );
}
