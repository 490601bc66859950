//! `--junit PATH` as CI dashboards read it (issue 13), end to end on
//! `fixtures/junit`: the built binary runs failing, leaking, hanging and
//! crashing suites; its JUnit file is validated against the JUnit schema
//! Jenkins and GitLab use (`junit-10.xsd` from pytest's source package, with `xmllint`) and
//! read back: every test with its time, failure bodies with the panic
//! text, the hung test failing with type `timeout`, the leak failing on the
//! test it is attributed to, counts that add up, no made-up passing case.

mod common;

use common::*;

/// One `<testcase>` as read back.
#[derive(Debug, Default, Clone)]
struct Case {
    name: String,
    time: Option<f64>,
    /// `failure`, `error` or `skipped`, with its type, message and body.
    outcome: Option<(String, String, String, String)>,
    system_out: String,
    reruns: Vec<String>,
}

/// One `<testsuite>`: its count attributes and its cases.
#[derive(Debug, Default)]
struct Suite {
    name: String,
    counts: [usize; 4],
    cases: Vec<Case>,
}

impl Suite {
    fn case(&self, name: &str) -> &Case {
        self.cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no testcase {name} in {}: {:#?}", self.name, self.cases))
    }
}

fn attr(e: &quick_xml::events::BytesStart, k: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == k.as_bytes())
        .map(|a| {
            a.normalized_value(quick_xml::XmlVersion::default())
                .unwrap()
                .into_owned()
        })
}

/// The JUnit file's totals (`tests`, `failures`, `errors`) and its suites.
fn parse(xml: &str) -> ([usize; 3], Vec<Suite>) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut totals, mut suites) = ([0; 3], Vec::<Suite>::new());
    let mut case: Option<Case> = None;
    let mut text = String::new();
    let count = |e: &quick_xml::events::BytesStart, k: &str| {
        attr(e, k).map_or(0, |v| v.parse::<usize>().unwrap())
    };
    loop {
        let ev = reader.read_event().expect("well-formed JUnit XML");
        let empty = matches!(ev, Event::Empty(_));
        if let Event::Start(_) = ev {
            text.clear();
        }
        match ev {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testsuites" => totals = ["tests", "failures", "errors"].map(|k| count(&e, k)),
                b"testsuite" => suites.push(Suite {
                    name: attr(&e, "name").unwrap(),
                    counts: ["tests", "failures", "errors", "skipped"].map(|k| count(&e, k)),
                    cases: Vec::new(),
                }),
                b"testcase" => {
                    let c = Case {
                        name: attr(&e, "name").unwrap(),
                        time: attr(&e, "time").map(|t| t.parse().unwrap()),
                        ..Case::default()
                    };
                    // An empty `<testcase/>` has no end tag: kept at once.
                    if empty {
                        suites.last_mut().unwrap().cases.push(c);
                    } else {
                        case = Some(c);
                    }
                }
                tag @ (b"failure" | b"error" | b"skipped") => {
                    let c = case.as_mut().expect("inside a testcase");
                    c.outcome = Some((
                        String::from_utf8_lossy(tag).into_owned(),
                        attr(&e, "type").unwrap_or_default(),
                        attr(&e, "message").unwrap_or_default(),
                        String::new(),
                    ));
                }
                b"flakyFailure" | b"rerunFailure" => {
                    let c = case.as_mut().expect("inside a testcase");
                    c.reruns.push(attr(&e, "type").unwrap_or_default());
                }
                _ => {}
            },
            Event::Text(t) => text.push_str(&t.decode().unwrap()),
            Event::GeneralRef(r) => match r.resolve_char_ref().unwrap() {
                Some(c) => text.push(c),
                None => text.push_str(match r.decode().unwrap().as_ref() {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "apos" => "'",
                    "quot" => "\"",
                    other => panic!("unknown entity &{other};"),
                }),
            },
            Event::End(e) => {
                match e.name().as_ref() {
                    b"failure" | b"error" => {
                        if let Some((_, _, _, body)) =
                            case.as_mut().and_then(|c| c.outcome.as_mut())
                        {
                            *body = text.clone();
                        }
                    }
                    b"system-out" => {
                        if let Some(c) = case.as_mut() {
                            c.system_out = text.clone();
                        }
                    }
                    b"testcase" => {
                        let c = case.take().expect("a testcase ends");
                        suites.last_mut().unwrap().cases.push(c);
                    }
                    _ => {}
                }
                text.clear();
            }
            _ => {}
        }
    }
    (totals, suites)
}

/// Each suite's and the file's counts are those of its test cases.
fn counts_add_up(totals: [usize; 3], suites: &[Suite]) {
    let mut sum = [0; 3];
    for s in suites {
        let of = |kind: &str| {
            s.cases
                .iter()
                .filter(|c| c.outcome.as_ref().is_some_and(|o| o.0 == kind))
                .count()
        };
        let seen = [s.cases.len(), of("failure"), of("error"), of("skipped")];
        assert_eq!(s.counts, seen, "{}: tests/failures/errors/skipped", s.name);
        for i in 0..3 {
            sum[i] += seen[i];
        }
    }
    assert_eq!(totals, sum, "<testsuites> tests/failures/errors");
}

/// `cargo-reap test --manifest-path <junit> -p junit-fixture ARGS --junit FILE`:
/// the run and the JUnit file, validated and read back.
fn junit_run(args: &[&str]) -> (Run, [usize; 3], Vec<Suite>) {
    let scratch = Scratch::new("junit");
    let xml_path = scratch.0.join("junit.xml");
    let manifest = fixture_manifest_of("junit").display().to_string();
    let xml_arg = xml_path.display().to_string();
    let mut all = vec![
        "test",
        "--manifest-path",
        manifest.as_str(),
        "-p",
        "junit-fixture",
        "--junit",
        xml_arg.as_str(),
    ];
    all.extend_from_slice(args);
    let run = reap(&[], &all);
    validate_junit(&xml_path);
    let xml = std::fs::read_to_string(&xml_path).unwrap();
    let (totals, suites) = parse(&xml);
    counts_add_up(totals, &suites);
    for s in &suites {
        for c in &s.cases {
            assert!(
                !c.name.starts_with("cargo-reap::") || c.outcome.is_some(),
                "a synthetic case passes: {}/{}",
                s.name,
                c.name
            );
        }
    }
    (run, totals, suites)
}

/// A failing test carries its panic (message: the panic message's first
/// line; body: from the panic on, with the backtrace note) and its output;
/// every test has its time; an ignored test is skipped with time 0; a leak
/// fails the test it is attributed to; the hung test fails with type
/// `timeout` and the hang's forensics.
#[test]
fn junit_carries_times_failures_hangs_and_leaks_on_their_tests() {
    require_root();
    let (run, totals, suites) = junit_run(&[
        "--test",
        "mixed",
        "--test",
        "hang",
        "--timeout",
        "4s",
        "--grace",
        "1s",
        "--hang-retries",
        "0",
    ]);
    assert_eq!(run.code, 100, "{}", run.stderr);
    let mixed = suites
        .iter()
        .find(|s| s.name == "junit-fixture::mixed")
        .unwrap();
    let hang = suites
        .iter()
        .find(|s| s.name == "junit-fixture::hang")
        .unwrap();
    assert_eq!(mixed.cases.len(), 6, "{:#?}", mixed.cases);
    assert_eq!(hang.cases.len(), 2, "{:#?}", hang.cases);
    assert_eq!(totals, [8, 4, 0], "{suites:#?}");
    for c in mixed.cases.iter().chain(&hang.cases) {
        assert!(c.time.is_some(), "no time: {c:?}");
    }

    let b = mixed.case("b_fails_with_output");
    let (kind, ty, message, body) = b.outcome.clone().unwrap();
    assert_eq!((kind.as_str(), ty.as_str()), ("failure", "panic"));
    assert_eq!(
        message,
        "assertion `left == right` failed: the sum is wrong"
    );
    assert!(body.starts_with("thread 'b_fails_with_output'"), "{body}");
    assert!(body.contains(" right: 3"), "{body}");
    assert!(
        b.system_out
            .contains("junit-fixture stdout: about to check the sum")
            && b.system_out
                .contains("junit-fixture stderr: libtest captures this too"),
        "{}",
        b.system_out
    );
    // b sleeps 300 ms, c 700 ms: their derived times are theirs, give or
    // take how late the capture read the lines that bound them (bounded
    // loosely: a loaded 2-core machine delays the capture thread).
    let c_time = mixed.case("c_sleeps_then_passes").time.unwrap();
    assert!(b.time.unwrap() >= 0.2, "{b:?}");
    assert!(c_time >= 0.5, "{:?}", mixed.cases);
    assert!(c_time > mixed.case("a_passes_quickly").time.unwrap());
    assert!(mixed.case("c_sleeps_then_passes").outcome.is_none());

    let f = mixed.case("f_returns_an_error").outcome.clone().unwrap();
    assert_eq!(
        (f.0.as_str(), f.1.as_str(), f.2.as_str()),
        ("failure", "error", "Error: \"the file was not there\"")
    );
    let d = mixed.case("d_is_ignored");
    assert_eq!(d.outcome.as_ref().unwrap().0, "skipped");
    assert_eq!(d.time, Some(0.0));

    let (kind, ty, message, body) = mixed.case("e_leaks_a_sleeper").outcome.clone().unwrap();
    assert_eq!((kind.as_str(), ty.as_str()), ("failure", "leak"));
    assert!(
        message.starts_with("1 process(es) started by this test"),
        "{message}"
    );
    assert!(
        body.contains("sleep 3881") && body.contains("findings: "),
        "{body}"
    );
    assert!(mixed.case("a_passes_quickly").outcome.is_none());

    let (kind, ty, message, body) = hang.case("never_finishes").outcome.clone().unwrap();
    assert_eq!((kind.as_str(), ty.as_str()), ("failure", "timeout"));
    assert!(message.contains("in flight: never_finishes"), "{message}");
    assert!(
        body.contains("never_finishes"),
        "the thread in the tree: {body}"
    );
    assert!(hang.case("never_finishes").time.unwrap() >= 4.0);
    assert!(hang.case("finishes").outcome.is_none());
}

/// A crash is an error of type `crash` on the test in flight (libtest names
/// it before running it with one test thread), not only on the suite.
#[test]
fn junit_names_the_test_a_crash_ended() {
    require_root();
    let (run, totals, suites) = junit_run(&["--test", "crash", "--", "--test-threads", "1"]);
    assert_eq!(run.code, 100, "{}", run.stderr);
    assert_eq!(suites.len(), 1);
    let crash = &suites[0];
    assert!(crash.case("a_passes").outcome.is_none());
    let (kind, ty, message, _) = crash.case("b_aborts").outcome.clone().unwrap();
    assert_eq!((kind.as_str(), ty.as_str()), ("error", "crash"));
    assert!(message.contains("SIGABRT"), "{message}");
    assert_eq!(totals, [2, 0, 1], "{suites:#?}");
    let report = run.report();
    assert_eq!(
        report["failures"][0]["test"], "b_aborts",
        "the JSON's failure names it too"
    );
}

/// In parallel, libtest names a test only at its end: the test in flight
/// at the crash comes from a listing and the results printed before it.
#[test]
fn junit_names_the_test_a_parallel_crash_ended() {
    require_root();
    let (run, _, suites) = junit_run(&["--test", "crash", "--", "--test-threads", "2"]);
    assert_eq!(run.code, 100, "{}", run.stderr);
    let crash = &suites[0];
    let (kind, ty, message, _) = crash.case("b_aborts").outcome.clone().unwrap();
    assert_eq!((kind.as_str(), ty.as_str()), ("error", "crash"));
    assert!(message.contains("SIGABRT"), "{message}");
    assert!(
        !crash.cases.iter().any(|c| c.name == "cargo-reap::exit"),
        "{:#?}",
        crash.cases
    );
}

/// A leak no test is named for (`--attribute off`) fails a suite-level
/// `cargo-reap::leaks` case; the test that started it passes as libtest said.
#[test]
fn junit_gives_an_unattributed_leak_a_failing_case_of_the_suite() {
    require_root();
    let (run, _, suites) = junit_run(&["--test", "mixed", "--attribute", "off"]);
    assert_eq!(run.code, 100, "{}", run.stderr);
    let mixed = &suites[0];
    assert!(mixed.case("e_leaks_a_sleeper").outcome.is_none());
    let (kind, ty, message, body) = mixed.case("cargo-reap::leaks").outcome.clone().unwrap();
    assert_eq!((kind.as_str(), ty.as_str()), ("failure", "leak"));
    assert!(message.contains("attributed to no test"), "{message}");
    assert!(body.contains("sleep 3881"), "{body}");
}
