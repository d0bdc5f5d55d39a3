//! guard's engine, sans IO: kernel records in; decoded exchanges, commands and destructive-command
//! records out.
//!
//! Data flows one way through [`Engine`]: [`events`] decodes each ring record; [`verify`] holds
//! the events of guessed hooks until their traffic proves them; the [`pipeline`] joins the parts
//! of each exec ([`events::exec_join`]) and turns TLS chunks into ordered [`streams`], which
//! [`protocols`] decode into exchanges whose model and usage [`providers`] read; [`govern`] finds
//! the agent behind each exchange and command ([`process`]) and judges commands against the
//! [`rules`], as [`audit`] records; [`enforce`] judges the execs the exec gate holds. `guard
//! run`, `guard replay`, the tests, the benchmarks and the fuzz targets all drive that one type;
//! [`engine`] states its contract, and [`engine::Replay`] feeds a recording back into it.
//!
//! Nothing here opens a file or a socket, loads a program, spawns a thread or reads a clock, and
//! the crate does not depend on aya or tokio. What the system knows comes in as arguments: record
//! bytes, the wall time that stamps audit records, a [`govern::Lookup`] for what the process
//! table has not seen. So every stage runs on recorded bytes without root.
//!
//! Beside the engine: [`hooks`] (where to hook TLS in an ELF file, from its bytes), [`coverage`]
//! (why an agent process is blind), [`cost`] (what an exchange cost, from a price table), [`labels`] (the one sanitiser family for label, log and audit
//! values) and [`glob`] (the pattern language of rule and agent files).

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod audit;
pub mod cost;
pub mod coverage;
pub mod deletions;
pub mod enforce;
pub mod engine;
pub mod events;
pub mod glob;
pub mod govern;
pub mod hooks;
pub mod labels;
pub mod pipeline;
pub mod places;
pub mod process;
pub mod protocols;
pub mod providers;
pub mod requests;
pub mod rules;
pub mod streams;
pub mod verify;
#[cfg(test)]
mod test_util;

pub use engine::{Engine, EngineStats};
