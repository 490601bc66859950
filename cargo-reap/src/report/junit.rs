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

use reap_report::{Report, SuiteReport, SuiteStatus};

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
        let status = match t.result.as_str() {
            "ok" => TestCaseStatus::success(),
            "ignored" => TestCaseStatus::skipped(),
            _ => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(format!("test {}: {}", t.name, t.result));
                st
            }
        };
        let mut tc = TestCase::new(t.name.as_str(), status);
        tc.set_classname(s.id.as_str());
        ts.add_test_case(tc);
    }
    // The binary's own outcome when it did not end in per-test results.
    if matches!(
        s.status,
        SuiteStatus::Crash | SuiteStatus::Fail | SuiteStatus::Error
    ) && !s
        .tests
        .iter()
        .any(|t| t.result != "ok" && t.result != "ignored")
    {
        let last = s.attempts.last();
        let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
        st.set_message(match last {
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
        let mut tc = TestCase::new("cargo-reap::exit", st);
        tc.set_classname(s.id.as_str());
        ts.add_test_case(tc);
    }
    let hung: Vec<_> = s.attempts.iter().filter(|a| a.timed_out).collect();
    if !hung.is_empty() {
        let describe = |a: &reap_report::Attempt| {
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
        };
        let status = if s.status == SuiteStatus::FlakyHang {
            let mut st = TestCaseStatus::success();
            for a in &hung {
                let mut rerun = TestRerun::new(NonSuccessKind::Failure);
                rerun.set_message(describe(a));
                st.add_rerun(rerun);
            }
            st
        } else {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_message(
                hung.iter()
                    .map(|a| describe(a))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            st.set_description(
                hung.iter()
                    .flat_map(|a| a.tree.iter().cloned())
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            st
        };
        let mut tc = TestCase::new("cargo-reap::hang", status);
        tc.set_classname(s.id.as_str());
        ts.add_test_case(tc);
    }
    let status = if s.leaks.is_empty() {
        TestCaseStatus::success()
    } else {
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
    };
    let mut tc = TestCase::new("cargo-reap::leaks", status);
    tc.set_classname(s.id.as_str());
    ts.add_test_case(tc);
    ts
}
