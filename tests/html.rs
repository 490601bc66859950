//! `--html PATH` end to end (issue 16): the built binary runs `fixtures/leaky`
//! suites that leak and hang (`--loop 2`, a short timeout), writes its HTML
//! page, and a real browser (headless Chromium) renders it: the DOM must show
//! the numbers of the JSON report of the same run (exit code, leak count,
//! each suite's status, the hung test in flight and its stacks, the re-run
//! commands), and a screenshot is saved under `target/`. The same JSON with a
//! `watch` section added (and a leaked command line holding a `<script>`) is
//! re-rendered by `cargo reap merge X.json --html`: the watched series are
//! charted with their slope and trend sentence, the script stays text.
//!
//! Without Chromium the browser checks are skipped with a message (the page
//! itself is still checked), unless `REAP_REQUIRE_CHROMIUM` is set (`.ci/run`
//! installs Debian's `chromium` and sets it). Every Chromium process is
//! killed and waited for on every path (the test process is their child
//! subreaper while the browser runs), its profile is a scratch directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const REQUIRE: &str = "REAP_REQUIRE_CHROMIUM";

/// The suites run: two that leak (1 and 25 processes) and one that hangs.
const SUITES: [&str; 3] = [
    "leaky::daemon",
    "leaky::many_children",
    "leaky::always_hangs",
];

/// Headless Chromium without its background connections (refused on a closed network).
const HEADLESS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// One browser at a time (the subreaper bit is the process's).
static BROWSER: Mutex<()> = Mutex::new(());

/// Chromium on `PATH`, or None after saying the browser checks are skipped
/// (a failure when `REAP_REQUIRE_CHROMIUM` is set).
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        });
    if found.is_none() {
        assert!(
            std::env::var_os(REQUIRE).is_none(),
            "no chromium on PATH and {REQUIRE} is set: .ci/run installs Debian's chromium"
        );
        eprintln!(
            "skipping the browser checks: no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it and sets {REQUIRE}=1)"
        );
    }
    found
}

/// A headless Chromium and everything it started: on drop, its process
/// group is SIGKILLed and the browser waited for, then every `chrom*` child
/// of this process (crashpad handlers leave the group; as their subreaper
/// this process inherits them) is killed and waited for, until none is left.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let pgid = self.0.id() as i32;
        // SAFETY: plain syscalls on a process group and pids that are our children.
        if unsafe { libc::killpg(pgid, libc::SIGKILL) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                eprintln!("killpg({pgid}): {e}");
            }
        }
        if let Err(e) = self.0.wait() {
            eprintln!("wait for chromium {pgid}: {e}");
        }
        loop {
            let strays = browser_children();
            if strays.is_empty() {
                break;
            }
            for pid in strays {
                // SAFETY: `pid` is our child (alive or a zombie): it cannot be reused before the wait.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
            }
        }
        // SAFETY: clears the subreaper bit set by `headless`.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) };
    }
}

/// Children of this process whose command starts with `chrom`.
fn browser_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 1..].split_whitespace().nth(1);
        if comm.starts_with("chrom") && ppid == Some(me.as_str()) {
            out.extend(stat[..open].trim().parse::<i32>());
        }
    }
    out
}

/// Run headless Chromium on `page` with `args`; its stdout. Fails after two
/// minutes; kills and waits for every process of it on every path.
fn headless(chromium: &Path, page: &Path, args: &[String]) -> String {
    let _one = BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let profile = Scratch::new("chromium-profile");
    let stdout = profile.0.join("stdout");
    // SAFETY: sets this process's subreaper bit (cleared by Browser's drop).
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0
    );
    let mut cmd = Command::new(chromium);
    cmd.args(HEADLESS)
        .arg("--hide-scrollbars")
        .arg(format!(
            "--user-data-dir={}",
            profile.0.join("profile").display()
        ))
        .args(args)
        .arg(page)
        .env("HOME", &profile.0)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(profile.0.join("stderr")).unwrap());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let browser = Browser(cmd.spawn().expect("start chromium"));
    let pid = rustix::process::Pid::from_raw(browser.0.id() as i32).unwrap();
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap();
    let done = exits_within(&fd, Duration::from_secs(120));
    drop(browser);
    let err = std::fs::read_to_string(profile.0.join("stderr")).unwrap_or_default();
    assert!(done, "chromium did not finish within 120 s; stderr:\n{err}");
    std::fs::read_to_string(&stdout).unwrap()
}

/// The page's DOM as Chromium built it (scripts would have run).
fn dom_of(chromium: &Path, page: &Path) -> String {
    let dom = headless(chromium, page, &["--dump-dom".into()]);
    assert!(dom.contains("</html>"), "no DOM from chromium:\n{dom}");
    dom
}

/// A screenshot of the page at `png` (a PNG, checked).
fn screenshot(chromium: &Path, page: &Path, png: &Path, height: u32) {
    std::fs::create_dir_all(png.parent().unwrap()).unwrap();
    if png.exists() {
        std::fs::remove_file(png).unwrap();
    }
    headless(
        chromium,
        page,
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size=1200,{height}"),
        ],
    );
    let bytes = std::fs::read(png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000);
    eprintln!("screenshot: {} ({} bytes)", png.display(), bytes.len());
}

/// Text as a DOM dump shows it (Chromium escapes `&`, `<`, `>` in text).
fn escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The run: `cargo reap test` of [`SUITES`] with `--loop 2`, its JSON and HTML.
fn leaky_run(scratch: &Scratch) -> (Run, PathBuf, PathBuf) {
    let json = scratch.0.join("report.json");
    let html = scratch.0.join("report.html");
    let manifest = fixture_manifest();
    let mut args = vec![
        "reap",
        "test",
        "--manifest-path",
        manifest.to_str().unwrap(),
    ];
    for id in SUITES {
        args.extend(["--test", id.strip_prefix("leaky::").unwrap()]);
    }
    args.extend(["--loop", "2", "--timeout", "2s", "--grace", "1s", "--html"]);
    args.push(html.to_str().unwrap());
    let mut cmd = reap_command(&[], &args, &json);
    cmd.env("REAP_FIXTURE_STATE_DIR", scratch.0.join("state"));
    let out = cmd.output().expect("run cargo-reap");
    let run = finished_run(
        out.status,
        String::from_utf8_lossy(&out.stderr).into(),
        &json,
    );
    (run, json, html)
}

/// What holds for the page without a browser: one file, no script, nothing
/// fetched, small.
fn check_self_contained(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    for never in [
        "<script", "<link", " src=", "http://", "https://", "@import",
    ] {
        assert!(!html.contains(never), "the page holds {never}");
    }
    assert!(html.len() < 200_000, "{} bytes", html.len());
}

/// The DOM shows the run's numbers, as its JSON report has them.
fn check_run_dom(dom: &str, r: &Value, code: i32) {
    assert_eq!(r["exit_code"], code);
    assert!(
        dom.contains(&format!("id=\"exit-code\">{code}<")),
        "exit code"
    );
    let shown: usize = r["suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["leaks"].as_array().unwrap().len())
        .sum();
    assert!(shown >= 26, "the fixture leaks 1 + 25 processes: {shown}");
    assert!(
        dom.contains(&format!("id=\"leak-total\">{shown}<")),
        "leak total {shown}"
    );
    let total = &r["summary"]["leaked_processes"];
    assert!(dom.contains(&format!("id=\"count-leaked-processes\">{total}<")));
    for e in expected_for(&SUITES) {
        let s = r["suites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == e.id.as_str())
            .unwrap();
        assert_eq!(s["status"], e.status.as_str(), "{}", e.id);
        let row = format!("data-suite=\"{}\" data-status=\"{}\"", e.id, e.status);
        assert!(dom.contains(&row), "no row {row}");
        assert!(dom.contains(&format!("({} leaked)", e.leaks)) || e.leaks == 0);
    }
    for f in r["failures"].as_array().unwrap() {
        assert!(
            dom.contains(&escaped(f["rerun"].as_str().unwrap())),
            "rerun of {f}"
        );
    }
    assert!(dom.contains("id=\"loop\"") && dom.contains("Loop: 2 trials"));
}

/// The hang forensics: the test in flight and each captured stack's title.
fn check_hang_dom(dom: &str, r: &Value) {
    let hang = r["suites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "leaky::always_hangs")
        .unwrap();
    let hangs = dom.split("id=\"hangs\"").nth(1).expect("a hangs section");
    for a in hang["attempts"].as_array().unwrap() {
        for t in a["tests_in_flight"].as_array().unwrap() {
            assert!(hangs.contains(t.as_str().unwrap()), "in flight {t}");
        }
        for p in a["stacks"].as_array().into_iter().flatten() {
            let title = format!("pid {} ({})", p["pid"], p["command"].as_str().unwrap());
            assert!(hangs.contains(&escaped(&title)), "stacks of {title}");
        }
    }
    assert!(
        hangs.contains("frames in std"),
        "std frames folded as the terminal folds them"
    );
}

#[test]
fn a_run_renders_in_a_browser_with_its_numbers() {
    let scratch = Scratch::new("html-run");
    let (run, _, html) = leaky_run(&scratch);
    let r = run.report();
    let page = std::fs::read_to_string(&html).expect("the --html page");
    check_self_contained(&page);
    eprintln!(
        "HTML page: {} bytes (JSON report: {} bytes)",
        page.len(),
        r.to_string().len()
    );
    let timelines = r["suites"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["attempts"].as_array().unwrap())
        .any(|a| a.get("timeline").is_some());
    assert_eq!(
        page.contains("id=\"timelines\""),
        timelines,
        "attempt timelines drawn when recorded"
    );
    let Some(chromium) = chromium() else { return };
    let dom = dom_of(&chromium, &html);
    check_run_dom(&dom, r, run.code);
    check_hang_dom(&dom, r);
    screenshot(
        &chromium,
        &html,
        &repo().join("target/html-report-run.png"),
        2000,
    );
}

/// A watch of 5 s sampled every 100 ms: one more process each second.
fn watch() -> Value {
    let n = 50u64;
    let processes: Vec<u64> = (0..n).map(|i| 1 + i / 10).collect();
    let orphans: Vec<u64> = (0..n).map(|i| i / 10).collect();
    let memory: Vec<u64> = (0..n).map(|i| (10 << 20) + i * (64 << 10)).collect();
    let trend = |series: &str, slope: f64, intercept: f64, verdict: &str, sentence: &str| {
        json!({"series": series, "slope_per_hour": slope, "intercept": intercept,
               "first": intercept, "last": intercept + slope * 4.9 / 3600.0,
               "samples": n, "warmup_samples": 0, "verdict": verdict, "sentence": sentence})
    };
    json!({
        "duration_ms": 5000,
        "timeline": {"start_ms": 0, "interval_ms": 100, "processes": processes,
                     "orphans": orphans, "threads": processes, "memory_bytes": memory,
                     "memory_source": "memory.current", "open_fds": vec![4; n as usize]},
        "trends": [
            trend("processes", 3600.0, 1.0, "too-fast", "processes: +1 every 1 s (1 → 5 over 4.9s), 4 orphans of '<sleep>'"),
            trend("memory", 64.0 * 1024.0 * 36_000.0, 10_485_760.0, "growing", "memory: +2.2 GiB/h"),
            trend("open-fds", 0.0, 4.0, "flat", "open-fds: flat"),
        ],
        "died_at_ms": 4900,
        "died_with": 137
    })
}

/// Every leak's command line, in the suites shown and in every trial (what merge reads).
fn set_command_lines(r: &mut Value, cmdline: Value) {
    let set = |suites: &mut Value| {
        for s in suites.as_array_mut().unwrap() {
            for l in s["leaks"].as_array_mut().unwrap() {
                l["cmdline"] = cmdline.clone();
            }
        }
    };
    set(&mut r["suites"]);
    for t in r["trials"].as_array_mut().into_iter().flatten() {
        set(&mut t["suites"]);
    }
}

#[test]
fn a_saved_report_with_a_watch_re_renders_through_merge() {
    let scratch = Scratch::new("html-watch");
    let (run, _, _) = leaky_run(&scratch);
    let mut r = run.report().clone();
    r["watch"] = watch();
    let hostile = "<script>document.title='pwned'</script>";
    set_command_lines(&mut r, json!(["sh", "-c", hostile]));
    let edited = scratch.0.join("edited.json");
    std::fs::write(&edited, serde_json::to_vec(&r).unwrap()).unwrap();
    let (page, merged) = (scratch.0.join("watch.html"), scratch.0.join("merged.json"));
    let out = Command::new(REAP)
        .args(["reap", "merge"])
        .arg(&edited)
        .arg("--html")
        .arg(&page)
        .arg("--json")
        .arg(&merged)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(run.code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&std::fs::read(&merged).unwrap()).unwrap();
    assert_eq!(m["watch"], r["watch"], "one report: its watch is kept");
    let mut again = r.clone();
    again["run_id"] = json!(format!("{}-again", r["run_id"].as_str().unwrap()));
    let second = scratch.0.join("again.json");
    std::fs::write(&second, serde_json::to_vec(&again).unwrap()).unwrap();
    let two = Command::new(REAP)
        .args(["reap", "merge"])
        .arg(&edited)
        .arg(&second)
        .arg("--json")
        .arg(&merged)
        .output()
        .unwrap();
    assert_ne!(
        two.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&two.stderr)
    );
    let m: Value = serde_json::from_slice(&std::fs::read(&merged).unwrap()).unwrap();
    assert!(m.get("watch").is_none(), "two runs combined: no one watch");
    let html = std::fs::read_to_string(&page).unwrap();
    check_self_contained(&html);
    let Some(chromium) = chromium() else { return };
    let dom = dom_of(&chromium, &page);
    assert!(
        dom.contains("<title>cargo-reap report"),
        "the injected script did not run"
    );
    assert!(
        dom.contains(&escaped(hostile)),
        "the command line shows as text"
    );
    let watch = dom.split("id=\"watch\"").nth(1).expect("a watch section");
    assert!(watch.contains("slope +3600.0/h"), "the processes slope");
    assert!(
        watch.contains(&escaped("4 orphans of '<sleep>'")),
        "the trend sentence"
    );
    assert!(watch.contains("the command died at 4.90s with exit status 137"));
    assert_eq!(
        watch
            .split("</section>")
            .next()
            .unwrap()
            .matches("class=\"fit\"")
            .count(),
        3
    );
    check_run_dom(&dom, &r, run.code);
    screenshot(
        &chromium,
        &page,
        &repo().join("target/html-report.png"),
        1150,
    );
}

/// A real watch (`cargo reap run --watch` of `fixtures/watch`'s leaker, one orphan per
/// 100 ms): its page shows each trend as the JSON has it, the failing verdict, the fitted
/// lines; from outside, nothing of the leaker survived.
#[test]
fn a_real_watch_renders_its_trends_in_a_browser() {
    require_root();
    let leaker = watch_fixture_bin("leaker");
    let scratch = Scratch::new("html-real-watch");
    let (json, page) = (scratch.0.join("watch.json"), scratch.0.join("watch.html"));
    let since = reap_probe::boottime_ticks().saturating_sub(1);
    let args = [
        "reap",
        "run",
        "--watch",
        "3s",
        "--sample-every",
        "50ms",
        "--html",
        page.to_str().unwrap(),
        "--",
        &leaker,
        "100",
    ];
    let out = reap_command(&[], &args, &json).output().unwrap();
    let run = finished_run(
        out.status,
        String::from_utf8_lossy(&out.stderr).into(),
        &json,
    );
    assert_no_strays("leaker", since, |s, _| {
        s.cmdline.first().is_some_and(|a| a == "watch-orphan") || s.comm == "leaker"
    });
    assert_eq!(run.code, 104, "a series grew too fast: {}", run.stderr);
    let trends = run.report()["watch"]["trends"].as_array().expect("trends");
    let html = std::fs::read_to_string(&page).expect("the --html page of the watch");
    check_self_contained(&html);
    let Some(chromium) = chromium() else { return };
    let dom = dom_of(&chromium, &page);
    let watch = dom.split("id=\"watch\"").nth(1).expect("a watch section");
    let watch = watch.split("</section>").next().unwrap();
    for t in trends {
        let sentence = t["sentence"].as_str().unwrap();
        assert!(
            watch.contains(&escaped(sentence)),
            "{sentence} not on the page"
        );
    }
    assert!(watch.contains("grows too fast"), "the failing verdict");
    assert!(
        dom.contains("a watched series grew faster than --max-growth allows"),
        "exit 104 explained"
    );
    assert!(watch.matches("class=\"fit\"").count() >= 2, "fitted lines");
    screenshot(
        &chromium,
        &page,
        &repo().join("target/html-report-watch.png"),
        1100,
    );
}

/// Chromium itself under `cargo reap run` (a browser test's launcher, as the brief's users
/// run one): it starts, renders the page and exits 0, nothing of it left behind. Before the
/// suites' TMPDIRs were short, it died of SIGTRAP at start (its singleton socket's path
/// below TMPDIR did not fit in 108 bytes).
#[test]
fn chromium_runs_under_cargo_reap_run() {
    let Some(chromium) = chromium() else { return };
    let _one = BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let scratch = Scratch::new("html-chromium-run");
    let page = scratch.0.join("page.html");
    std::fs::write(
        &page,
        "<html><body><p id=\"greeting\">hello, reaper</p></body></html>",
    )
    .unwrap();
    let profile = format!("--user-data-dir={}", scratch.0.join("profile").display());
    let json = scratch.0.join("run.json");
    let args = ["run", "--timeout", "120s", "--", chromium.to_str().unwrap()];
    let args: Vec<&str> = args
        .into_iter()
        .chain(HEADLESS)
        .chain([profile.as_str(), "--dump-dom", page.to_str().unwrap()])
        .collect();
    let out = reap_command(&[], &args, &json)
        .env("HOME", &scratch.0)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let run = finished_run(
        out.status,
        String::from_utf8_lossy(&out.stderr).into(),
        &json,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        stdout.contains("<p id=\"greeting\">hello, reaper</p>"),
        "the DOM on stdout: {stdout}"
    );
}

#[test]
fn a_command_run_writes_its_page() {
    let scratch = Scratch::new("html-command");
    let (json, page) = (scratch.0.join("run.json"), scratch.0.join("run.html"));
    let args = [
        "reap",
        "run",
        "--html",
        page.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "sleep 300 & exit 0",
    ];
    let out = reap_command(&[], &args, &json).output().unwrap();
    let run = finished_run(
        out.status,
        String::from_utf8_lossy(&out.stderr).into(),
        &json,
    );
    let r = run.report();
    let html = std::fs::read_to_string(&page).expect("the --html page of cargo reap run");
    check_self_contained(&html);
    assert_eq!(run.code, 103, "{}", run.stderr);
    assert!(html.contains("id=\"exit-code\">103<"));
    assert!(html.contains("id=\"leak-total\">1<"));
    let id = r["suites"][0]["id"].as_str().unwrap();
    assert!(html.contains(&format!("data-suite=\"{id}\" data-status=\"pass\"")));
    assert!(
        html.contains("<code>sleep 300</code>"),
        "the leaked command"
    );
}

/// `cargo reap merge` of one report keeps its exit code: a command's own
/// (here 3) is not recomputed from the suite's status (which says 100).
#[test]
fn one_report_merged_keeps_its_exit_code() {
    let scratch = Scratch::new("html-exit");
    let (json, page) = (scratch.0.join("run.json"), scratch.0.join("merged.html"));
    let args = ["reap", "run", "--", "sh", "-c", "exit 3"];
    let out = reap_command(&[], &args, &json).output().unwrap();
    let run = finished_run(
        out.status,
        String::from_utf8_lossy(&out.stderr).into(),
        &json,
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    let merged = Command::new(REAP)
        .args(["reap", "merge"])
        .arg(&json)
        .arg("--html")
        .arg(&page)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&merged.stderr);
    assert_eq!(merged.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("exit 3)"),
        "the summary line says it: {stderr}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("id=\"exit-code\">3<"));
}
