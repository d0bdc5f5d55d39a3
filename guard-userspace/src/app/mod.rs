//! The daemon and the commands around it.

mod attach_retry;
pub(crate) mod cli;
pub(crate) mod commands;
pub(crate) mod config;
pub(crate) mod daemon;
pub(crate) mod doctor;
mod entry;
mod gate_queue;
mod gauges;
mod options;
pub(crate) mod logging;
mod tls;

pub use entry::main;
