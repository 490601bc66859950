//! Reports: the terminal rendering ([`terminal`]), JUnit ([`junit`]) and
//! writing report files atomically ([`output`]). The JSON schema, the summary
//! math and the exit codes are the `reap-report` crate.

pub mod junit;
pub mod output;
pub mod terminal;
pub mod vitals;
