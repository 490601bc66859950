//! `--junit PATH`: one `<testsuite>` per suite (quick-junit). Each test from
//! libtest's output is a `<testcase>`; what cargo-reap adds is visible to CI
//! dashboards as test cases of their own — `cargo-reap::leaks` fails when the
//! suite leaked (the message lists the processes), `cargo-reap::hang` fails
//! when it hung and is marked flaky (a failed run, then a pass) for a
//! flaky-hang — and as properties of the suite (status, attempts, leaks).

use std::time::Duration;

use quick_junit::{
    NonSuccessKind, Property, Report as JReport, TestCase, TestCaseStatus, TestRerun, TestSuite,
};

use reap_report::{Attempt, Report, SuiteReport, SuiteStatus, TestOutcome};

/// The JUnit XML of a report.
pub fn render(r: &Report) -> Result<String, quick_junit::SerializeError> {
    let mut report = JReport::new(format!("cargo-reap {}", r.run_id));
    report.set_time(Duration::from_millis(r.duration_ms));
    for s in &r.suites {
        report.add_test_suite(suite(s, r));
    }
    report.to_string()
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
    for t in &s.tests {
        ts.add_test_case(case(s, t.name.as_str(), test_status(t)));
    }
    if let Some(status) = exit_status(s) {
        ts.add_test_case(case(s, "cargo-reap::exit", status));
    }
    if let Some(status) = hang_status(s) {
        ts.add_test_case(case(s, "cargo-reap::hang", status));
    }
    ts.add_test_case(case(s, "cargo-reap::leaks", leaks_status(s)));
    ts
}

/// A test case of the suite (its class name is the suite's id).
fn case(s: &SuiteReport, name: &str, status: TestCaseStatus) -> TestCase {
    let mut tc = TestCase::new(name, status);
    tc.set_classname(s.id.as_str());
    tc
}

/// A libtest result: `ok` passes, `ignored` is skipped, anything else failed.
fn test_status(t: &TestOutcome) -> TestCaseStatus {
    match t.result.as_str() {
        "ok" => TestCaseStatus::success(),
        "ignored" => TestCaseStatus::skipped(),
        _ => {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_message(format!("test {}: {}", t.name, t.result));
            st
        }
    }
}

/// `cargo-reap::exit`: the binary's own outcome, when the suite failed,
/// crashed or could not be judged without a failing per-test result.
fn exit_status(s: &SuiteReport) -> Option<TestCaseStatus> {
    let failed = matches!(
        s.status,
        SuiteStatus::Crash | SuiteStatus::Fail | SuiteStatus::Error
    );
    let a_test_failed = s
        .tests
        .iter()
        .any(|t| t.result != "ok" && t.result != "ignored");
    if !failed || a_test_failed {
        return None;
    }
    let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
    st.set_message(match s.attempts.last() {
        _ if s.status == SuiteStatus::Error => format!(
            "cargo-reap could not judge the suite: {}",
            s.problems.join("; ")
        ),
        Some(a) if a.signal.is_some() => format!(
            "the test binary was killed by signal {}",
            a.signal.unwrap_or(0)
        ),
        Some(a) => format!("the test binary exited with {:?}", a.exit_code),
        None => "the test binary did not run".into(),
    });
    Some(st)
}

/// `cargo-reap::hang`: failed when the suite hung (the message names each
/// timed-out attempt, the description its stacks and reap-probe's tree); for a
/// flaky-hang, passed with each timed-out attempt as a failed rerun.
fn hang_status(s: &SuiteReport) -> Option<TestCaseStatus> {
    let hung: Vec<&Attempt> = s.attempts.iter().filter(|a| a.timed_out).collect();
    if hung.is_empty() {
        return None;
    }
    if s.status == SuiteStatus::FlakyHang {
        let mut st = TestCaseStatus::success();
        for a in &hung {
            let mut rerun = TestRerun::new(NonSuccessKind::Failure);
            rerun.set_message(timed_out(a));
            st.add_rerun(rerun);
        }
        return Some(st);
    }
    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
    st.set_message(
        hung.iter()
            .map(|a| timed_out(a))
            .collect::<Vec<_>>()
            .join("; "),
    );
    // Where each thread was blocked (the in-flight tests' first), then reap-probe's tree.
    st.set_description(
        hung.iter()
            .flat_map(|a| {
                super::stacks::hang_lines(a, None)
                    .into_iter()
                    .chain(a.tree.iter().cloned())
            })
            .collect::<Vec<_>>()
            .join("\n"),
    );
    Some(st)
}

/// `attempt N timed out after M ms; in flight: a, b`
fn timed_out(a: &Attempt) -> String {
    format!(
        "attempt {} timed out after {} ms; in flight: {}",
        a.number,
        a.duration_ms,
        if a.tests_in_flight.is_empty() {
            "(unknown)".to_string()
        } else {
            a.tests_in_flight.join(", ")
        }
    )
}

/// `cargo-reap::leaks`: passed, or failed listing each leaked process.
fn leaks_status(s: &SuiteReport) -> TestCaseStatus {
    if s.leaks.is_empty() {
        return TestCaseStatus::success();
    }
    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
    st.set_message(format!(
        "{} process(es) survived the suite and were reaped",
        s.leaks.len()
    ));
    st.set_type("leak");
    st.set_description(
        s.leaks
            .iter()
            .map(|l| {
                format!(
                    "pid {} ppid {} {} [{}] test={} findings={}",
                    l.pid,
                    l.ppid,
                    l.state,
                    l.cmdline.join(" "),
                    l.test.as_deref().unwrap_or("?"),
                    l.findings.join(",")
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
    );
    st
}
