//! Group testing: which tests of a list started which leaks, in about
//! k·log2(n) re-runs for k leaking tests among n, where re-running the tests
//! one by one costs n.
//!
//! Pure search logic over an oracle (`run`: re-run this set of tests, which
//! leaks did it reproduce?), so the bound is unit-tested without processes.
//!
//! 1. **Halving.** A group known (or inferred) to leave some leaks re-runs its
//!    first half; the leaks that half reproduces are looked for in it, the
//!    others are inferred to come from the second half, which is split in
//!    turn without being re-run as a whole. A single test is re-run to confirm
//!    an inferred leak (one it was seen to leave needs no more run).
//! 2. **Interactions.** A leak that no single test reproduces at the end of
//!    its path needs several tests together (or is flaky). From the smallest
//!    group seen to reproduce it, a binary search finds the shortest prefix
//!    that still reproduces it: its last test is needed. With that test kept,
//!    the search repeats over the tests before it, until the tests kept
//!    reproduce the leak by themselves: the smallest set found. A group never
//!    seen to leave the leak in a re-run (the suite's own run, which may have
//!    been parallel) is re-run whole first: a leak it does not reproduce is
//!    [`Verdict::NotReproduced`] at once.
//!
//! Re-runs of a set already run are answered from memory. Once `run` says no
//! more re-runs may start (budget, interrupt), every leak not yet placed is
//! [`Verdict::Stopped`].

use std::collections::HashMap;

/// Where the search placed one leak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Re-running this test (index into the list) alone reproduced it.
    Test(usize),
    /// Only these tests together reproduced it (indices, ascending; two or more).
    Together(Vec<usize>),
    /// No re-run reproduced it: flaky, or it needs the suite's parallel run.
    NotReproduced,
    /// The re-runs stopped before it was placed.
    Stopped,
}

/// Re-runs a set of tests (indices, ascending) and says which leaks (indices)
/// it reproduced, or `None` when no re-run may start any more.
pub type Run<'a, E> = dyn FnMut(&[usize]) -> Result<Option<Vec<usize>>, E> + 'a;

/// Place each of `leaks` (indices the oracle names) among `tests` tests, all
/// of which ran together when the leaks were seen. One verdict per leak, in
/// the order of `leaks`.
pub fn search<E>(tests: usize, leaks: &[usize], run: &mut Run<'_, E>) -> Result<Vec<Verdict>, E> {
    if tests == 0 {
        return Ok(vec![Verdict::NotReproduced; leaks.len()]);
    }
    let mut s = Searcher {
        run,
        memo: HashMap::new(),
        stopped: false,
    };
    let mut placed: HashMap<usize, Verdict> = HashMap::new();
    let mut suspects: Vec<(usize, Vec<usize>)> = Vec::new();
    s.halve(
        (0..tests).collect(),
        leaks.to_vec(),
        &mut placed,
        &mut suspects,
    )?;
    for (leak, witness) in suspects {
        let v = s.smallest_set(leak, witness)?;
        placed.insert(leak, v);
    }
    Ok(leaks
        .iter()
        .map(|l| placed.remove(l).unwrap_or(Verdict::Stopped))
        .collect())
}

/// A group still to split: its tests, the leaks expected of it, and, when
/// the expectation is inferred rather than seen, the smallest group seen to
/// leave them.
struct Node {
    tests: Vec<usize>,
    expect: Vec<usize>,
    witness: Option<Vec<usize>>,
}

struct Searcher<'r, 'a, E> {
    run: &'r mut Run<'a, E>,
    /// What each set already re-run reproduced.
    memo: HashMap<Vec<usize>, Vec<usize>>,
    stopped: bool,
}

impl<E> Searcher<'_, '_, E> {
    /// The leaks re-running `set` reproduces; `None` once re-runs stopped.
    fn reproduced(&mut self, set: &[usize]) -> Result<Option<Vec<usize>>, E> {
        if let Some(found) = self.memo.get(set) {
            return Ok(Some(found.clone()));
        }
        if self.stopped {
            return Ok(None);
        }
        match (self.run)(set)? {
            Some(found) => {
                self.memo.insert(set.to_vec(), found.clone());
                Ok(Some(found))
            }
            None => {
                self.stopped = true;
                Ok(None)
            }
        }
    }

    /// Phase 1: split groups in halves down to single tests.
    fn halve(
        &mut self,
        tests: Vec<usize>,
        expect: Vec<usize>,
        placed: &mut HashMap<usize, Verdict>,
        suspects: &mut Vec<(usize, Vec<usize>)>,
    ) -> Result<(), E> {
        let mut stack = vec![Node {
            tests,
            expect,
            witness: None,
        }];
        while let Some(node) = stack.pop() {
            if node.expect.is_empty() {
                continue;
            }
            if let [only] = node.tests[..] {
                let found = match &node.witness {
                    None => Some(node.expect.clone()),
                    Some(_) => self.reproduced(&node.tests)?,
                };
                let Some(found) = found else { continue };
                for &l in &node.expect {
                    if found.contains(&l) {
                        placed.insert(l, Verdict::Test(only));
                    } else {
                        let w = node.witness.clone().unwrap_or_else(|| node.tests.clone());
                        suspects.push((l, w));
                    }
                }
                continue;
            }
            let (left, right) = node.tests.split_at(node.tests.len() / 2);
            let Some(found) = self.reproduced(left)? else {
                continue;
            };
            let (seen, rest): (Vec<usize>, Vec<usize>) =
                node.expect.iter().partition(|l| found.contains(l));
            let witness = node.witness.clone().unwrap_or_else(|| node.tests.clone());
            stack.push(Node {
                tests: right.to_vec(),
                expect: rest,
                witness: Some(witness),
            });
            stack.push(Node {
                tests: left.to_vec(),
                expect: seen,
                witness: None,
            });
        }
        Ok(())
    }

    /// Phase 2: the smallest set of `witness`'s tests found to reproduce
    /// `leak` together.
    fn smallest_set(&mut self, leak: usize, witness: Vec<usize>) -> Result<Verdict, E> {
        let mut kept: Vec<usize> = Vec::new();
        let mut candidates = witness;
        // The witness as a whole is re-run once, unless a re-run of it was
        // seen to leave the leak (the suite's own run may have been parallel).
        let mut verified = false;
        loop {
            // The shortest prefix that, with `kept`, reproduces the leak: all
            // of `candidates` is assumed to, `kept` alone is known not to.
            let (mut lo, mut hi) = (0, candidates.len());
            while hi - lo > 1 {
                let mid = (lo + hi) / 2;
                match self.reproduces(leak, &kept, &candidates[..mid])? {
                    None => return Ok(Verdict::Stopped),
                    Some(true) => hi = mid,
                    Some(false) => lo = mid,
                }
            }
            if !verified && hi == candidates.len() {
                match self.reproduces(leak, &kept, &candidates)? {
                    None => return Ok(Verdict::Stopped),
                    Some(false) => return Ok(Verdict::NotReproduced),
                    Some(true) => {}
                }
            }
            // From here on, `kept` with all of `candidates` was seen to leave it.
            verified = true;
            if hi == 0 {
                return Ok(Verdict::NotReproduced);
            }
            kept.push(candidates[hi - 1]);
            candidates.truncate(hi - 1);
            match self.reproduces(leak, &kept, &[])? {
                None => return Ok(Verdict::Stopped),
                Some(true) => {
                    kept.sort_unstable();
                    return Ok(match kept[..] {
                        [only] => Verdict::Test(only),
                        _ => Verdict::Together(kept),
                    });
                }
                Some(false) if candidates.is_empty() => return Ok(Verdict::NotReproduced),
                Some(false) => {}
            }
        }
    }

    /// Does re-running `kept` and `more` together reproduce `leak`?
    fn reproduces(
        &mut self,
        leak: usize,
        kept: &[usize],
        more: &[usize],
    ) -> Result<Option<bool>, E> {
        let mut set: Vec<usize> = kept.iter().chain(more).copied().collect();
        set.sort_unstable();
        Ok(self.reproduced(&set)?.map(|found| found.contains(&leak)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A suite whose leak `l` is left by every run that holds all of
    /// `causes[l]`; counts the re-runs.
    struct Suite {
        causes: Vec<Vec<usize>>,
        runs: usize,
        budget: usize,
    }

    impl Suite {
        fn run(&mut self, set: &[usize]) -> Result<Option<Vec<usize>>, ()> {
            if self.runs >= self.budget {
                return Ok(None);
            }
            self.runs += 1;
            Ok(Some(
                (0..self.causes.len())
                    .filter(|&l| self.causes[l].iter().all(|t| set.contains(t)))
                    .collect(),
            ))
        }
    }

    fn place(n: usize, causes: Vec<Vec<usize>>, budget: usize) -> (Vec<Verdict>, usize) {
        let mut suite = Suite {
            causes,
            runs: 0,
            budget,
        };
        let leaks: Vec<usize> = (0..suite.causes.len()).collect();
        let v = search(n, &leaks, &mut |set: &[usize]| suite.run(set)).unwrap();
        (v, suite.runs)
    }

    /// k·(ceil(log2 n) + 1): a path of halvings per leak and a confirmation.
    fn bound(k: usize, n: usize) -> usize {
        k * (n.next_power_of_two().trailing_zeros() as usize + 1)
    }

    #[test]
    fn finds_1_2_and_4_leaking_tests_among_200_within_k_log2_n() {
        for leakers in [
            vec![137],
            vec![23, 171],
            vec![11, 64, 122, 199],
            vec![0, 1, 2, 3],
            vec![196, 197, 198, 199],
        ] {
            let causes = leakers.iter().map(|&t| vec![t]).collect();
            let (v, runs) = place(200, causes, usize::MAX);
            let want: Vec<Verdict> = leakers.iter().map(|&t| Verdict::Test(t)).collect();
            assert_eq!(v, want);
            assert!(
                runs <= bound(leakers.len(), 200),
                "{leakers:?}: {runs} runs"
            );
        }
    }

    #[test]
    fn every_single_leaker_of_any_position_is_found() {
        for n in [2, 3, 5, 17, 64] {
            for t in 0..n {
                let (v, runs) = place(n, vec![vec![t]], usize::MAX);
                assert_eq!(v, [Verdict::Test(t)], "n {n}");
                assert!(runs <= bound(1, n), "n {n} t {t}: {runs}");
            }
        }
    }

    #[test]
    fn two_leaks_of_one_test_and_one_test_leaking_twice() {
        let (v, _) = place(50, vec![vec![7], vec![7], vec![30]], usize::MAX);
        assert_eq!(v, [Verdict::Test(7), Verdict::Test(7), Verdict::Test(30)]);
    }

    #[test]
    fn an_interaction_pair_is_reported_as_the_pair() {
        for (a, b) in [(40, 160), (3, 4), (0, 199), (120, 130)] {
            let (v, runs) = place(200, vec![vec![a, b]], usize::MAX);
            assert_eq!(v, [Verdict::Together(vec![a, b])]);
            // The halving path, then two binary searches and their checks.
            assert!(runs <= 3 * bound(1, 200), "({a}, {b}): {runs} runs");
        }
        let (v, _) = place(200, vec![vec![5], vec![40, 160], vec![190]], usize::MAX);
        assert_eq!(
            v,
            [
                Verdict::Test(5),
                Verdict::Together(vec![40, 160]),
                Verdict::Test(190)
            ]
        );
    }

    #[test]
    fn a_leak_no_rerun_reproduces_and_a_budget_that_runs_out() {
        let (v, _) = place(20, vec![vec![usize::MAX]], usize::MAX);
        assert_eq!(v, [Verdict::NotReproduced]);
        let (v, runs) = place(200, vec![vec![3], vec![150]], 4);
        assert_eq!(runs, 4);
        assert!(v.contains(&Verdict::Stopped), "{v:?}");
        let (v, runs) = place(200, vec![vec![3]], 0);
        assert_eq!((v, runs), (vec![Verdict::Stopped], 0));
    }
}
