//! guard's engine, sans IO: kernel records in, judged exchanges and commands out.
//!
//! Data flows one way: [`events`] (decode) → [`verify`] → [`streams`] → [`protocols`] →
//! [`providers`] and [`process`] → [`rules`] → [`govern`]. [`Engine`] composes the stages; `guard
//! run`, `guard replay`, the tests, the benchmarks and the fuzz targets all drive that one type.
//! Nothing here opens a file or a socket, loads a program or reads a clock: what the system knows
//! (a process the table has not seen, the wall time) is passed in, so every stage runs on
//! recorded bytes without root. [`hooks`] is the other pure part: where to hook TLS in an ELF file.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod audit;
pub mod coverage;
pub mod engine;
pub mod events;
pub mod glob;
pub mod govern;
pub mod hooks;
pub mod labels;
pub mod pipeline;
pub mod process;
pub mod protocols;
pub mod providers;
pub mod rules;
pub mod streams;
pub mod verify;

pub use engine::{Engine, EngineStats};
