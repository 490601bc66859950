//! Reports: the event stream and its reporter ([`events`]), the terminal
//! rendering ([`terminal`]), JUnit ([`junit`]), the HTML page ([`html`]) and writing report files
//! atomically ([`output`]). The JSON schema, the summary math and the exit
//! codes are the `reap-report` crate (the contract: it imports nothing of
//! cargo-reap).

pub mod events;
pub mod html;
mod html_esc;
mod html_svg;
pub mod junit;
pub mod output;
pub mod stacks;
pub mod terminal;
