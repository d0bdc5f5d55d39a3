//! The daemon and the commands around it.

pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod doctor;
pub mod logging;
mod gauges;
mod tls;
