//! Types shared by the kernel programs (guard-ebpf) and the daemon (guard-userspace).
//!
//! Every record in the ring buffer starts with [`event::Header`], whose `kind` tag says which
//! `#[repr(C)]` struct follows. Layouts use explicit padding and fixed-width integers (no `bool`),
//! and their sizes are asserted at compile time so both sides agree.
#![no_std]

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

// Before the modules, so that each of them can use it.
/// A `#[repr(u8)]` enum for a tag byte or slot number shared with the kernel, with `ALL` (in
/// declaration order), `from_u8` and `TryFrom<u8>` (the error is the unknown value). Records keep
/// the raw `u8`, because a byte from the ring may hold any value.
macro_rules! tag_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $v:ident = $n:literal,)+ }) => {
        $(#[$m])*
        #[repr(u8)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $v = $n,)+
        }

        impl $name {
            pub const ALL: [Self; [$($name::$v),+].len()] = [$(Self::$v),+];

            pub const fn from_u8(v: u8) -> Option<Self> {
                match v {
                    $($n => Some(Self::$v),)+
                    _ => None,
                }
            }
        }

        impl TryFrom<u8> for $name {
            type Error = u8;

            fn try_from(v: u8) -> Result<Self, u8> {
                Self::from_u8(v).ok_or(v)
            }
        }
    };
}

pub mod config;
pub mod delete;
pub mod event;
pub mod gate;
pub mod maps;
