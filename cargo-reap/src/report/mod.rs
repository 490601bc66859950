//! Reports: the terminal rendering ([`terminal`]), JUnit ([`junit`]),
//! writing report files atomically ([`output`]) and reading the runner's own
//! vitals between `--loop` trials ([`vitals`]). The JSON schema, the summary
//! math and the exit codes are the `reap-report` crate (the contract: it
//! imports nothing of cargo-reap).

pub mod junit;
pub mod output;
pub mod terminal;
pub mod vitals;
