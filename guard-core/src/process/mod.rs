//! Process table and agent attribution (issue 4).
//!
//! [`table::ProcessTable`] follows every process by (pid, start time) from fork, exec and exit
//! events (seeded with the [`SeedProcess`]es the daemon reads from /proc), and answers which
//! agent a process belongs to: the nearest catalog agent ([`agents`]) or zero-config agent (a
//! process that made an inference call) at or above it. See `docs/agents.md`.

pub mod agents;
mod images;
pub mod script;
pub mod table;

#[cfg(test)]
mod tests;

pub use agents::{Catalog, CatalogError};
pub use table::{
    AgentKind, AgentRef, ProcKey, Process, ProcessTable, SeedProcess, TableLimits, TableStats,
};
