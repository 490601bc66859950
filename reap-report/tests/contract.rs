//! The contract against reports cargo-reap wrote (`tests/reports/`): the
//! types read every field and write the same bytes back, and the summary
//! math gives what cargo-reap reported.

use reap_report::{exit, Failure, LoopSummary, Report, Summary};

fn load(name: &str) -> (String, Report) {
    let path = format!("{}/tests/reports/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let report = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    (text, report)
}

/// cargo-reap writes `to_vec_pretty` and a newline.
fn written(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap() + "\n"
}

#[test]
fn a_report_reads_back_byte_for_byte() {
    for name in ["leaky.json", "loop.json"] {
        let (text, report) = load(name);
        assert!(
            written(&report) == text,
            "{name}: a field or its order differs once read and written back"
        );
    }
}

#[test]
fn the_summary_math_gives_what_cargo_reap_reported() {
    let (_, r) = load("loop.json");
    let mut total = Summary::default();
    for t in &r.trials {
        assert_eq!(Summary::of(&t.suites), t.summary, "trial {}", t.number);
        total.add(&t.summary);
    }
    assert_eq!(total, r.summary);
    let rates = LoopSummary::of(&r.trials);
    let reported = r.loop_summary.as_ref().expect("a --loop report");
    assert_eq!(
        serde_json::to_value(&rates).unwrap(),
        serde_json::to_value(reported).unwrap()
    );
    assert_eq!(exit::for_summary(&r.summary, false), r.exit_code);
}

#[test]
fn failures_and_their_rerun_commands_are_what_cargo_reap_listed() {
    let (_, r) = load("leaky.json");
    let prefix = [
        "--manifest-path".to_string(),
        "fixtures/leaky/Cargo.toml".into(),
    ];
    assert!(!r.failures.is_empty());
    assert_eq!(Failure::of(&r.suites, &prefix), r.failures);
    assert_eq!(r.exit_code, exit::TEST_FAILED);
}
