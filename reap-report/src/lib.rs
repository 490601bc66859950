//! The report contract of cargo-reap: the types of its `--json` report
//! (schema version 1, [`Report`] and what it holds), the summary math over
//! them ([`Summary::of`], [`Summary::of_trial`], [`LoopSummary::of`],
//! [`Failure::of`], [`shown_trial`]) and the exit codes a report stands for
//! ([`exit`]).
//!
//! It does no I/O and imports nothing of the engine that runs the suites: a
//! tool that reads cargo-reap's reports can deserialize them with these types.
//! Within schema version 1 fields are only added; a field's meaning never
//! changes (cargo-reap's `docs/json-schema.md`, field by field).

pub mod exit;
mod schema;
mod summary;
mod timeline;
pub mod trend;

pub use schema::*;
pub use summary::{growth, rerun_hint, shown_trial};
pub use timeline::*;
