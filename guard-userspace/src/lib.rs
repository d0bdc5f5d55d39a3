//! guard's daemon: the IO shell around [`guard_core::Engine`], and all of the `guard` binary.
//!
//! `kernel` loads and attaches the eBPF programs and reads their ring buffer; `sys` reads the host
//! (/proc for the engine's lookups, the cwd thread, accounts, sockets, the TLS libraries of running
//! programs); `sinks` take what the engine produced (Prometheus metrics and `/metrics`, the audit
//! log, recordings, log lines, OTLP); `app` wires them: the daemon loop, TLS attach and verification,
//! `guard doctor`, `replay`, `rules` and `hooks`, the command line and the config file.
//!
//! Those modules are private. The library exports only [`main`], [`testing`] and
//! [`EBPF_OBJECT`].

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod app;
mod gate;
mod kernel;
mod sinks;
mod sys;

pub use app::main;

/// What the privileged tests and the benchmark tools reach into; nothing else is public, so
/// dead code cannot hide behind `pub`.
pub mod testing {
    pub use crate::{
        app::config::Config,
        kernel::probes::TLS_PROGRAMS,
        sys::{host::hostname, targets::inspect},
    };
    pub use crate::sinks::otlp::bench::SinkBench;
}

/// The compiled kernel programs (empty when built with `AYA_BUILD_SKIP=1`).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/guard"));
