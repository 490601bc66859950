//! `--junit PATH`: one `<testsuite>` per suite (quick-junit), valid against
//! the JUnit schema Jenkins and GitLab read (`tests/data/junit-10.xsd`).
//!
//! Each test libtest reported is a `<testcase>` with its `time` (see
//! `suite::timing`); a failing one carries its section of libtest's
//! `failures:` block: the panic message's first line as the message, the
//! panic message and backtrace as the body, everything the test printed
//! (libtest captures stdout and stderr into one) as `system-out`. What
//! cargo-reap finds lands on the test it belongs to:
//! - a hung test (in flight at the kill) is a failing case of type
//!   `timeout` whose body is the hang forensics; one that hung and then
//!   passed on a retry is a passing case with a `flakyFailure`;
//! - a crash is an `error` of type `crash` on the test in flight, when the
//!   output named it;
//! - a leak is a failure of type `leak` on the test attribution named, with
//!   its rows of the leak table and their findings.
//!
//! Only what names no test gets a synthetic case: `cargo-reap::hang` (a
//! hang with no test known in flight), `cargo-reap::exit` (a failed,
//! crashed or unjudged suite with no failing test to carry it),
//! `cargo-reap::leaks` (leaks attributed to no test of the suite), and a
//! `cargo-reap` suite with `cargo-reap::unattributed` (process-group
//! survivors no suite could claim). Each of them fails: no case passes
//! that is not a test.

use std::time::Duration;

use quick_junit::{
    NonSuccessKind, Property, Report as JReport, TestCase, TestCaseStatus, TestRerun, TestSuite,
};

use reap_report::{Attempt, Leak, Report, SuiteReport, SuiteStatus, TestOutcome, TestResult};

/// Columns of the leak rows in a leak failure's body.
const ROWS_WIDTH: usize = 200;

/// The JUnit XML of a report.
pub fn render(r: &Report) -> Result<String, quick_junit::SerializeError> {
    let mut report = JReport::new(format!("cargo-reap {}", r.run_id));
    report.set_time(Duration::from_millis(r.duration_ms));
    for s in &r.suites {
        report.add_test_suite(suite(s, r));
    }
    if !r.unattributed.is_empty() {
        let mut ts = TestSuite::new("cargo-reap");
        let leaks: Vec<&Leak> = r.unattributed.iter().collect();
        if let Some(status) = leak_status(&leaks, "no suite could claim them") {
            let mut tc = TestCase::new("cargo-reap::unattributed", status);
            tc.set_classname("cargo-reap");
            ts.add_test_case(tc);
            report.add_test_suite(ts);
        }
    }
    report.to_string().map(|xml| without_total_skipped(&xml))
}

/// quick-junit writes `skipped="N"` on `<testsuites>`; the JUnit schema
/// Jenkins validates against (junit-10.xsd) has no such attribute there
/// (each `<testsuite>` keeps its own `skipped`).
fn without_total_skipped(xml: &str) -> String {
    let Some(start) = xml.find("<testsuites") else {
        return xml.to_string();
    };
    let end = xml[start..].find('>').map_or(xml.len(), |e| start + e);
    let tag = &xml[start..end];
    let Some(at) = tag.find(" skipped=\"") else {
        return xml.to_string();
    };
    let value_end = tag[at + 10..]
        .find('"')
        .map_or(tag.len(), |e| at + 10 + e + 1);
    format!("{}{}{}", &xml[..start + at], &tag[value_end..], &xml[end..])
}

fn suite(s: &SuiteReport, r: &Report) -> TestSuite {
    let mut ts = TestSuite::new(s.id.as_str());
    ts.set_time(Duration::from_millis(s.duration_ms));
    for (k, v) in [
        ("cargo-reap.status", s.status.as_str().to_string()),
        ("cargo-reap.attempts", s.attempts.len().to_string()),
        ("cargo-reap.leaked", s.leaks.len().to_string()),
        ("cargo-reap.isolation", r.isolation.to_string()),
        ("cargo-reap.binary", s.binary.clone()),
    ] {
        ts.add_property(Property::new(k, v));
    }
    if let Some(log) = &s.log {
        ts.add_property(Property::new("cargo-reap.log", log.as_str()));
    }
    let mut named: Vec<&str> = Vec::new();
    for t in &s.tests {
        ts.add_test_case(test_case(s, t));
        named.push(&t.name);
    }
    for tc in unfinished_cases(s, &named) {
        ts.add_test_case(tc);
    }
    if let Some(status) = exit_status(s) {
        ts.add_test_case(case(s, "cargo-reap::exit", status));
    }
    let unclaimed: Vec<&Leak> = s
        .leaks
        .iter()
        .filter(|l| !l.test.as_deref().is_some_and(|t| named.contains(&t)))
        .collect();
    if let Some(status) = leak_status(&unclaimed, "attributed to no test of the suite") {
        ts.add_test_case(case(s, "cargo-reap::leaks", status));
    }
    if let Some(note) = unnamed_flaky_hang(s) {
        ts.set_system_err(note);
    }
    ts
}

/// A test case of the suite (its class name is the suite's id).
fn case(s: &SuiteReport, name: &str, status: TestCaseStatus) -> TestCase {
    let mut tc = TestCase::new(name, status);
    tc.set_classname(s.id.as_str());
    tc
}

/// A test libtest reported: its result, its leaks, a hang it survived.
fn test_case(s: &SuiteReport, t: &TestOutcome) -> TestCase {
    let leaks: Vec<&Leak> = s
        .leaks
        .iter()
        .filter(|l| l.test.as_deref() == Some(t.name.as_str()))
        .collect();
    let mut status = match t.result {
        TestResult::Ok | TestResult::Bench => {
            leak_status(&leaks, "started by this test").unwrap_or_else(TestCaseStatus::success)
        }
        TestResult::Ignored => TestCaseStatus::skipped(),
        TestResult::Failed => failed_status(t, &leaks),
    };
    // A hang on an earlier attempt: flaky if it passed now, a rerun if not.
    status.add_reruns(earlier_hangs(s, &t.name));
    let mut tc = case(s, &t.name, status);
    if let Some(ms) = t.duration_ms {
        tc.set_time(Duration::from_millis(ms));
    }
    if let Some(out) = &t.output {
        tc.set_system_out(out.as_str());
    }
    tc
}

/// A test libtest reported as failed: the panic (or returned error) as the
/// message, its output from the panic on as the body, its leaks after it.
fn failed_status(t: &TestOutcome, leaks: &[&Leak]) -> TestCaseStatus {
    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
    let output = t.output.as_deref().unwrap_or("");
    let failure = Failure::of(output);
    st.set_type(failure.kind);
    st.set_message(
        failure
            .message
            .unwrap_or_else(|| format!("test {}: {}", t.name, t.result)),
    );
    let mut body = failure.body.to_string();
    if !leaks.is_empty() {
        body.push_str(&format!(
            "\n\nIt also leaked {} process(es) (killed and reaped):\n{}",
            leaks.len(),
            terminal_rows(leaks)
        ));
    }
    if !body.trim().is_empty() {
        st.set_description(body);
    }
    st
}

/// What libtest's section of a failing test says.
#[derive(Debug, PartialEq, Eq)]
struct Failure<'a> {
    /// `panic`, `error` (a test that returned `Err`) or `failure`.
    kind: &'static str,
    /// The panic message's first line, or the returned error.
    message: Option<String>,
    /// From the panic (or error) on: message and backtrace.
    body: &'a str,
}

impl<'a> Failure<'a> {
    fn of(output: &'a str) -> Failure<'a> {
        let mut offset = 0;
        for line in output.split_inclusive('\n') {
            let text = line.trim_end();
            // `thread 'NAME' panicked at ...`, since Rust 1.88 or so
            // `thread 'NAME' (TID) panicked at ...`.
            if let Some(at) = text
                .strip_prefix("thread '")
                .and_then(|r| r.split_once(" panicked at "))
                .map(|(_, at)| at)
            {
                let rest = &output[offset + line.len()..];
                // Rust >= 1.73: `... panicked at FILE:L:C:` and the message on
                // the next line; before: `... panicked at 'MESSAGE', FILE:L:C`.
                let message = match at.strip_suffix(':') {
                    Some(_) => rest.lines().next().map(str::to_string),
                    None => Some(at.to_string()),
                };
                return Failure {
                    kind: "panic",
                    message,
                    body: &output[offset..],
                };
            }
            if text.starts_with("Error: ") {
                return Failure {
                    kind: "error",
                    message: Some(text.to_string()),
                    body: &output[offset..],
                };
            }
            offset += line.len();
        }
        Failure {
            kind: "failure",
            message: output
                .lines()
                .rev()
                .find(|l| l.starts_with("note: "))
                .map(str::to_string),
            body: output,
        }
    }
}

/// Tests in flight when the last attempt hung or crashed (no result line):
/// each a case failing with the hang's forensics, or an error naming the
/// crash. A hang with no test known is `cargo-reap::hang`.
fn unfinished_cases(s: &SuiteReport, named: &[&str]) -> Vec<TestCase> {
    let Some(last) = s.attempts.last() else {
        return Vec::new();
    };
    let hung = s.status == SuiteStatus::Hang && last.timed_out;
    let crashed = s.status == SuiteStatus::Crash;
    if !hung && !crashed {
        return Vec::new();
    }
    let in_flight: Vec<&String> = last
        .tests_in_flight
        .iter()
        .filter(|t| !named.contains(&t.as_str()))
        .collect();
    if hung && in_flight.is_empty() {
        let mut tc = case(s, "cargo-reap::hang", hang_failure(last, None));
        tc.set_time(Duration::from_millis(last.duration_ms));
        return vec![tc];
    }
    in_flight
        .into_iter()
        .map(|t| {
            let status = if hung {
                let mut st = hang_failure(last, Some(t));
                st.add_reruns(earlier_hangs(s, t));
                st
            } else {
                crash_error(last, s, t)
            };
            let mut tc = case(s, t, status);
            tc.set_time(Duration::from_millis(last.duration_ms));
            tc
        })
        .collect()
}

/// A failure of type `timeout`: the attempt's kill, the tests in flight;
/// the body: where every thread was blocked (the in-flight tests' threads
/// first, when stacks were captured), then reap-probe's tree of the suite
/// when it fired.
fn hang_failure(a: &Attempt, test: Option<&str>) -> TestCaseStatus {
    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
    st.set_type("timeout");
    let guess = test.is_some_and(|t| a.in_flight_guesses.iter().any(|g| g == t));
    st.set_message(format!(
        "{}{}",
        timed_out(a),
        if guess {
            " (this test is named by a thread name prefix it shares with others: a guess)"
        } else {
            ""
        }
    ));
    st.set_description(hang_body(a));
    st
}

/// The stacks of a hung attempt, then reap-probe's tree.
fn hang_body(a: &Attempt) -> String {
    super::stacks::hang_lines(a, None)
        .into_iter()
        .chain(a.tree.iter().cloned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// An error of type `crash` on a test in flight when the binary died
/// (with several in flight, which one crashed it is not known).
fn crash_error(a: &Attempt, s: &SuiteReport, test: &str) -> TestCaseStatus {
    let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
    st.set_type("crash");
    let others: Vec<&str> = a
        .tests_in_flight
        .iter()
        .map(String::as_str)
        .filter(|t| *t != test)
        .collect();
    st.set_message(format!(
        "the test binary was killed by {} while this test ran{}",
        signal_name(a.signal),
        if others.is_empty() {
            String::new()
        } else {
            format!(
                " (and {}: which one crashed it is not known)",
                others.join(", ")
            )
        }
    ));
    if let Some(log) = &s.log {
        st.set_description(format!("its output up to the crash: {log}"));
    }
    st
}

/// Earlier attempts that timed out with `test` in flight, as reruns.
fn earlier_hangs(s: &SuiteReport, test: &str) -> Vec<TestRerun> {
    let n = s.attempts.len();
    s.attempts[..n.saturating_sub(1)]
        .iter()
        .filter(|a| a.timed_out && a.tests_in_flight.iter().any(|t| t == test))
        .map(|a| {
            let mut rerun = TestRerun::new(NonSuccessKind::Failure);
            rerun.set_type("timeout");
            rerun.set_message(timed_out(a));
            rerun.set_description(hang_body(a));
            rerun
        })
        .collect()
}

/// A flaky hang whose attempts named no test: said on the suite (there
/// is no test case to carry it, and no passing case is made up).
fn unnamed_flaky_hang(s: &SuiteReport) -> Option<String> {
    if s.status != SuiteStatus::FlakyHang {
        return None;
    }
    let lines: Vec<String> = s
        .attempts
        .iter()
        .filter(|a| a.timed_out && a.tests_in_flight.is_empty())
        .map(|a| format!("cargo-reap: flaky hang: {}", timed_out(a)))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// `cargo-reap::exit`: the binary's own outcome, when the suite failed,
/// crashed or could not be judged and no test case carries it.
fn exit_status(s: &SuiteReport) -> Option<TestCaseStatus> {
    let failed = matches!(
        s.status,
        SuiteStatus::Crash | SuiteStatus::Fail | SuiteStatus::Error
    );
    let a_test_failed = s
        .tests
        .iter()
        .any(|t| !matches!(t.result, TestResult::Ok | TestResult::Ignored));
    let crash_named =
        s.status == SuiteStatus::Crash && s.attempts.last().is_some_and(crash_names_a_test(s));
    if !failed || a_test_failed || crash_named {
        return None;
    }
    let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
    st.set_message(match s.attempts.last() {
        _ if s.status == SuiteStatus::Error => format!(
            "cargo-reap could not judge the suite: {}",
            s.problems.join("; ")
        ),
        Some(a) if a.signal.is_some() => {
            format!("the test binary was killed by {}", signal_name(a.signal))
        }
        Some(a) => format!("the test binary exited with {:?}", a.exit_code),
        None => "the test binary did not run".into(),
    });
    if let Some(log) = &s.log {
        st.set_description(format!("its output: {log}"));
    }
    Some(st)
}

/// Does the crashed attempt name a test in flight that has no result?
fn crash_names_a_test(s: &SuiteReport) -> impl Fn(&Attempt) -> bool + '_ {
    move |a| {
        a.tests_in_flight
            .iter()
            .any(|t| !s.tests.iter().any(|o| &o.name == t))
    }
}

/// `SIGSEGV (11)`.
fn signal_name(signal: Option<i32>) -> String {
    let n = signal.unwrap_or(0);
    match nix::sys::signal::Signal::try_from(n) {
        Ok(sig) => format!("{} ({n})", sig.as_str()),
        Err(_) => format!("signal {n}"),
    }
}

/// `attempt N timed out after M ms; in flight: a, b`
fn timed_out(a: &Attempt) -> String {
    format!(
        "attempt {} timed out after {} ms and was killed; in flight: {}",
        a.number,
        a.duration_ms,
        if a.tests_in_flight.is_empty() {
            "(unknown)".to_string()
        } else {
            a.tests_in_flight.join(", ")
        }
    )
}

/// A failure of type `leak` for the leaks that fail the run among `leaks`
/// (`whose`: whose they are); none when there are none (an allowed
/// survivor is reported, not failed).
fn leak_status(leaks: &[&Leak], whose: &str) -> Option<TestCaseStatus> {
    let failing: Vec<&Leak> = leaks
        .iter()
        .copied()
        .filter(|l| l.allowed.is_none())
        .collect();
    if failing.is_empty() {
        return None;
    }
    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
    st.set_type("leak");
    st.set_message(format!(
        "{} process(es) {whose} survived the suite{}",
        failing.len(),
        if failing.iter().all(|l| l.reaped) {
            " and were reaped"
        } else {
            "; not all could be killed"
        }
    ));
    st.set_description(terminal_rows(&failing));
    Some(st)
}

/// The leak table's rows of `leaks`, then how each was attributed.
fn terminal_rows(leaks: &[&Leak]) -> String {
    let mut out = super::terminal::leak_rows(leaks, ROWS_WIDTH);
    let mut seen: Vec<&str> = Vec::new();
    for why in leaks.iter().filter_map(|l| l.attribution.as_deref()) {
        if !seen.contains(&why) {
            seen.push(why);
            out.push_str(&format!("attribution: {why}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_skipped_count_is_left_out() {
        let xml = "<?xml?>\n<testsuites name=\"x\" tests=\"2\" skipped=\"1\" failures=\"0\">\n<testsuite skipped=\"1\">";
        assert_eq!(
            without_total_skipped(xml),
            "<?xml?>\n<testsuites name=\"x\" tests=\"2\" failures=\"0\">\n<testsuite skipped=\"1\">"
        );
    }

    #[test]
    fn a_panic_gives_the_message_and_the_body() {
        let out = "printed first\nthread 'b' panicked at tests/m.rs:9:5:\nassertion `left == right` failed: the sum\n  left: 2\n right: 3\nnote: run with `RUST_BACKTRACE=1`";
        let f = Failure::of(out);
        assert_eq!(f.kind, "panic");
        assert_eq!(
            f.message.as_deref(),
            Some("assertion `left == right` failed: the sum")
        );
        assert!(f.body.starts_with("thread 'b' panicked"));
        let old = Failure::of("thread 'x' panicked at 'boom', src/lib.rs:1:2\n");
        assert_eq!(old.message.as_deref(), Some("'boom', src/lib.rs:1:2"));
        let err = Failure::of("Error: \"no file\"\n");
        assert_eq!(
            (err.kind, err.message.as_deref()),
            ("error", Some("Error: \"no file\""))
        );
        let tid = Failure::of("thread 'b' (4242) panicked at m.rs:1:1:\nthe sum\n");
        assert_eq!(tid.message.as_deref(), Some("the sum"));
        let other = Failure::of("note: test did not panic as expected");
        assert_eq!(
            (other.kind, other.message.as_deref()),
            ("failure", Some("note: test did not panic as expected"))
        );
    }
}
