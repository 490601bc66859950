//! Reports: the event stream and its reporter ([`events`]), the JSON schema
//! ([`schema`]), the terminal rendering ([`terminal`]), JUnit ([`junit`])
//! and atomic report files ([`output`]).

pub mod events;
pub mod junit;
pub mod output;
pub mod schema;
pub mod terminal;
