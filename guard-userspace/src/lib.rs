//! guard's daemon: the IO shell around [`guard_core::Engine`].
//!
//! [`kernel`] loads the eBPF programs and reads their ring buffer; [`sys`] reads the host
//! (/proc, accounts, the TLS libraries of running programs); [`sinks`] serve what the engine
//! produced (Prometheus metrics, the audit log, recordings); [`app`] wires them: the daemon
//! loop, `guard doctor`, the command line and the config file.

pub mod app;
pub mod kernel;
pub mod sinks;
pub mod sys;

/// The compiled kernel programs (empty when built with `AYA_BUILD_SKIP=1`).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/guard"));
