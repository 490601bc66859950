//! Reports: the JSON schema ([`schema`]) and the terminal rendering ([`terminal`]).

pub mod junit;
pub mod output;
pub mod schema;
pub mod terminal;
