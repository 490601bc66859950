//! Each test's time and output, from libtest's human output as the capture
//! read it (the report's `tests[]`).
//!
//! libtest prints a test's result line only when the test ends; only a
//! serial run (`--test-threads 1`) prints `test NAME ... ` when it starts.
//! A test's start is therefore:
//! - serial: when its `test NAME ... ` line was read, else when the result
//!   line before it was read (libtest starts the next test right after
//!   printing a result), else when `running N tests` was read;
//! - parallel (N test threads, libtest's default: the CPUs it may use):
//!   libtest starts the first N tests in their listed order (sorted by name)
//!   when it prints `running N tests`, and the next listed test each time
//!   one ends, right after printing its result. The test listed at
//!   position `p >= N` started when the `(p - N + 1)`th result line was
//!   read. A result read before its test could have started under this
//!   model (`--shuffle`, a harness that orders its tests otherwise) makes
//!   every time of the attempt unknown rather than wrong; so does
//!   `--shuffle` / `RUST_TEST_SHUFFLE` up front.
//!
//! Times are wall time between two reads of the output by the capture
//! thread: a test's own time plus libtest's work between tests, give or
//! take the difference between the delays with which the two lines were
//! read (under a millisecond on an idle machine, more when the capture
//! thread waits for a CPU). An ignored test's time is 0.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reap_report::TestOutcome;

use super::capture::ResultLine;

/// How libtest runs a suite's tests: how many at once, and whether in
/// their listed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threads {
    pub count: usize,
    /// False with `--shuffle`: the order tests start in is not known.
    pub ordered: bool,
}

impl Threads {
    /// As libtest reads them: `--test-threads N` (or `RUST_TEST_THREADS`),
    /// else the CPUs available; `--shuffle`, `--shuffle-seed` or
    /// `RUST_TEST_SHUFFLE(_SEED)` make the order unknown. `suite_env`: what
    /// the suite gets on top of our environment (cargo's `[env]`, say).
    pub fn of(args: &[String], suite_env: &[(String, String)]) -> Threads {
        let env = |k: &str| {
            suite_env
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(k).ok())
        };
        let mut count = env("RUST_TEST_THREADS").and_then(|v| v.parse().ok());
        let mut ordered =
            env("RUST_TEST_SHUFFLE").is_none() && env("RUST_TEST_SHUFFLE_SEED").is_none();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a == "--test-threads" {
                count = it.next().and_then(|v| v.parse().ok()).or(count);
            } else if let Some(v) = a.strip_prefix("--test-threads=") {
                count = v.parse().ok().or(count);
            } else if a == "--shuffle" || a.starts_with("--shuffle-seed") {
                ordered = false;
            }
        }
        let count = count.filter(|&n| n > 0).unwrap_or_else(reap_probe::cpus);
        Threads { count, ordered }
    }
}

/// The report's per-test entries of one attempt: each result with its time
/// (see the module's model) and its section of libtest's `failures:` block.
/// `in_flight`: tests started and not finished (a hang), which held slots;
/// `t0`: when the tests began.
pub fn outcomes(
    results: Vec<ResultLine>,
    mut sections: Vec<(String, String)>,
    in_flight: &[String],
    t0: Instant,
    threads: Threads,
) -> Vec<TestOutcome> {
    let times = durations(&results, in_flight, t0, threads);
    results
        .into_iter()
        .zip(times)
        .map(|(r, time)| {
            let output = sections
                .iter()
                .position(|(n, _)| *n == r.name)
                .map(|i| sections.swap_remove(i).1);
            TestOutcome {
                duration_ms: match r.result {
                    reap_report::TestResult::Ignored => Some(0),
                    _ => time.map(|d| d.as_millis() as u64),
                },
                output,
                name: r.name,
                result: r.result,
            }
        })
        .collect()
}

/// The tests in flight when a binary that printed `results` died, by the
/// slot model: of the `listed` tests (sorted as libtest runs them), the
/// first `threads + results` had started; those without a result were in
/// flight. None when the order is unknown (`--shuffle`).
pub fn in_flight_at_death(
    mut listed: Vec<String>,
    results: &[ResultLine],
    threads: Threads,
) -> Vec<String> {
    if !threads.ordered {
        return Vec::new();
    }
    listed.sort_unstable();
    listed.dedup();
    listed.truncate(threads.count.saturating_add(results.len()));
    listed.retain(|t| !results.iter().any(|r| r.name == *t));
    listed
}

/// Each result's time, in order; `None` where the model cannot tell.
fn durations(
    results: &[ResultLine],
    in_flight: &[String],
    t0: Instant,
    threads: Threads,
) -> Vec<Option<Duration>> {
    if threads.count <= 1 {
        let mut prev = t0;
        return results
            .iter()
            .map(|r| {
                let start = r.started.unwrap_or(prev);
                prev = r.at;
                Some(r.at.saturating_duration_since(start))
            })
            .collect();
    }
    let starts = threads
        .ordered
        .then(|| parallel_starts(results, in_flight, t0, threads.count))
        .flatten();
    match starts {
        Some(starts) => results
            .iter()
            .zip(starts)
            .map(|(r, s)| Some(r.at.saturating_duration_since(s)))
            .collect(),
        None => vec![None; results.len()],
    }
}

/// Each result's start under libtest's slot model, or `None` when a result
/// came before its test could have started (the order is not libtest's).
fn parallel_starts(
    results: &[ResultLine],
    in_flight: &[String],
    t0: Instant,
    slots: usize,
) -> Option<Vec<Instant>> {
    let mut names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    names.extend(in_flight.iter().map(String::as_str));
    names.sort_unstable();
    names.dedup();
    let position: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    results
        .iter()
        .enumerate()
        .map(|(k, r)| {
            let p = position[r.name.as_str()];
            match p.checked_sub(slots) {
                None => Some(t0),
                // The slot it ran in freed at the (p - slots)th result.
                Some(freed) if freed < k => Some(results[freed].at),
                Some(_) => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, word: &str, t0: Instant, ms: u64) -> ResultLine {
        ResultLine {
            name: name.into(),
            result: super::super::capture::result_word(word).expect("a libtest result word"),
            at: t0 + Duration::from_millis(ms),
            started: None,
        }
    }

    fn ms(v: &[Option<Duration>]) -> Vec<Option<u128>> {
        v.iter().map(|d| d.map(|d| d.as_millis())).collect()
    }

    #[test]
    fn serial_tests_start_where_the_previous_ended() {
        let t0 = Instant::now();
        let mut rs = vec![result("b", "ok", t0, 100), result("a", "ok", t0, 250)];
        rs[1].started = Some(t0 + Duration::from_millis(120));
        let one = Threads {
            count: 1,
            ordered: false,
        };
        assert_eq!(ms(&durations(&rs, &[], t0, one)), [Some(100), Some(130)]);
    }

    #[test]
    fn parallel_tests_start_as_slots_free_in_listed_order() {
        // Two slots; a (300 ms) and b (100 ms) start at once, c when b ends,
        // d when a ends.
        let t0 = Instant::now();
        let rs = vec![
            result("b", "ok", t0, 100),
            result("c", "FAILED", t0, 150),
            result("a", "ok", t0, 300),
            result("d", "ok", t0, 340),
        ];
        let two = Threads {
            count: 2,
            ordered: true,
        };
        assert_eq!(
            ms(&durations(&rs, &[], t0, two)),
            [Some(100), Some(50), Some(300), Some(190)]
        );
        // `d`'s result before a slot could have freed for it: unknown.
        let shuffled = vec![result("d", "ok", t0, 10), result("a", "ok", t0, 20)];
        assert_eq!(
            ms(&durations(&shuffled, &["b".into(), "c".into()], t0, two)),
            [None, None]
        );
        let unordered = Threads {
            count: 2,
            ordered: false,
        };
        assert_eq!(ms(&durations(&rs[..1], &[], t0, unordered)), [None]);
    }

    #[test]
    fn a_test_in_flight_holds_its_slot() {
        // `a` hangs: b, c, d run one after another in the other slot.
        let t0 = Instant::now();
        let rs = vec![
            result("b", "ok", t0, 100),
            result("c", "ok", t0, 200),
            result("d", "ignored", t0, 200),
        ];
        let two = Threads {
            count: 2,
            ordered: true,
        };
        let got = outcomes(
            rs,
            vec![("c".into(), "boom".into())],
            &["a".into()],
            t0,
            two,
        );
        let times: Vec<Option<u64>> = got.iter().map(|t| t.duration_ms).collect();
        assert_eq!(times, [Some(100), Some(100), Some(0)]);
        assert_eq!(got[1].output.as_deref(), Some("boom"));
        assert_eq!(got[0].output, None);
    }

    #[test]
    fn a_crash_names_the_tests_whose_slots_had_started() {
        let t0 = Instant::now();
        let listed: Vec<String> = ["d", "a", "c", "b", "e"].map(String::from).into();
        let done = [result("a", "ok", t0, 1)];
        let two = Threads {
            count: 2,
            ordered: true,
        };
        // a and b started at once, c when a ended: b and c in flight.
        assert_eq!(in_flight_at_death(listed.clone(), &done, two), ["b", "c"]);
        let shuffled = Threads {
            ordered: false,
            ..two
        };
        assert!(in_flight_at_death(listed, &done, shuffled).is_empty());
    }

    #[test]
    fn threads_are_read_as_libtest_reads_them() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let env = [("RUST_TEST_THREADS".to_string(), "5".to_string())];
        assert_eq!(Threads::of(&args(&["--test-threads", "3"]), &env).count, 3);
        assert_eq!(Threads::of(&args(&["x", "--test-threads=1"]), &[]).count, 1);
        assert_eq!(Threads::of(&args(&["x"]), &env).count, 5);
        assert!(!Threads::of(&args(&["--shuffle"]), &[]).ordered);
        assert!(!Threads::of(&args(&["--shuffle-seed=4"]), &[]).ordered);
    }
}
