//! guard: see what AI coding agents send to LLMs and what commands they run, from the kernel.
//!
//! Data flows one way: kernel → [`events`] (reader, decode) → [`streams`] → [`protocols`] →
//! [`providers`] and [`process`] → [`rules`] → metrics and [`audit`]. Everything after decode is
//! sans-IO: it consumes events and returns records, so `guard replay` and the tests drive the same
//! [`pipeline`] as `guard run`, without root.

pub mod audit;
pub mod cli;
pub mod config;
pub mod coverage;
pub mod daemon;
pub mod doctor;
pub mod ebpf;
pub mod events;
pub mod glob;
pub mod govern;
pub mod metrics;
pub mod hooks;
pub mod pipeline;
pub mod process;
pub mod protocols;
pub mod providers;
pub mod rules;
pub mod streams;
pub mod verify;

/// The compiled kernel programs (empty when built with `AYA_BUILD_SKIP=1`).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/guard"));
