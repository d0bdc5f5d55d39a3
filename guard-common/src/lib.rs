//! Types shared by the kernel programs (guard-ebpf) and the daemon (guard-userspace).
//!
//! Every record in the ring buffer starts with [`event::Header`], whose `kind` tag says which
//! `#[repr(C)]` struct follows. Layouts use explicit padding and fixed-width integers (no `bool`),
//! and their sizes are asserted at compile time so both sides agree.
#![no_std]

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod config;
pub mod event;
pub mod gate;
pub mod maps;
