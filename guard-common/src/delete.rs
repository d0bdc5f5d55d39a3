//! Deletions by processes in an agent's tree (`guard-ebpf/src/delete.rs`).
//!
//! The syscall tracepoints of `unlink`, `unlinkat`, `rmdir`, `rename`, `renameat` and
//! `renameat2` look the caller up in `AGENT_TGIDS` (one lookup for everyone else). For an agent's
//! process the kernel builds the absolute path of each operand at entry (the directory of `dfd`
//! or the cwd, walked up to the root, then the name), finds its [`PlaceValue`] in the `PLACES`
//! longest-prefix trie the daemon fills, and, when deletions are enforced and the place is
//! protected, sends SIGKILL (the syscall in flight still completes: one file per thread is the
//! bound). At exit it sends one [`DeleteEvent`] with the result.
//!
//! `io_uring_setup` by an agent's process is reported in the same record: io_uring's
//! `IORING_OP_UNLINKAT` and `RENAMEAT` never pass through these tracepoints.

#[cfg(feature = "pod")]
use bytemuck::{Pod, Zeroable};

use crate::event::{Header, PATH_LEN};

tag_enum! {
    /// `DeleteEvent::syscall`.
    pub enum DeleteSyscall {
        Unlink = 1,
        Unlinkat = 2,
        Rmdir = 3,
        Rename = 4,
        Renameat = 5,
        Renameat2 = 6,
        /// Not a deletion: an agent's process set up io_uring, which deletes unseen.
        IoUringSetup = 7,
    }
}

tag_enum! {
    /// Where a path lies, as the daemon told the kernel (`PlaceValue::place`) and as the daemon
    /// classifies it. 0: no prefix matched.
    pub enum Place {
        Unknown = 0,
        /// The deleting agent's own work tree (`PlaceValue::owner` is its root tgid).
        Worktree = 1,
        Temp = 2,
        Cache = 3,
        Home = 4,
        System = 5,
        /// Another agent's work tree, or another repository.
        OtherRepo = 6,
        Outside = 7,
    }
}

/// `DeleteEvent::flags`.
/// A directory: `rmdir`, or `unlinkat` with `AT_REMOVEDIR`.
pub const DEL_DIR: u8 = 1 << 0;
/// `path` is relative: the kernel could not resolve its directory (userspace joins it with the
/// process's cwd, or leaves its place unknown).
pub const DEL_RELATIVE: u8 = 1 << 1;
/// A path was longer than `PATH_LEN` and was cut at its end (its start, and so its place, holds).
pub const DEL_TRUNCATED: u8 = 1 << 2;
/// The kernel sent SIGKILL: the place is protected and deletions are enforced.
pub const DEL_KILLED: u8 = 1 << 3;
/// `renameat2` with `RENAME_NOREPLACE`: the destination was not replaced.
pub const DEL_NOREPLACE: u8 = 1 << 4;
/// `renameat2` with `RENAME_EXCHANGE`: the two swapped, nothing was removed.
pub const DEL_EXCHANGE: u8 = 1 << 5;
/// A `..` component: the kernel's place for it is not trusted, and it kills nothing for it.
pub const DEL_DOTDOT: u8 = 1 << 6;
/// The process is in scope provisionally (`gate::SCOPE_PROVISIONAL`: a TLS client not yet known
/// to be an agent): reported, never killed.
pub const DEL_PROVISIONAL: u8 = 1 << 7;

/// One deletion (or rename) by a process in an agent's tree, sent at syscall exit.
#[repr(C)]
#[derive(Clone, Copy)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct DeleteEvent {
    /// `kind` is `EventKind::Delete`.
    pub hdr: Header,
    /// The syscall's result: 0 done, negative `-errno`.
    pub ret: i64,
    /// The process's start time (boot clock, ns): with the tgid, its identity.
    pub start_time_ns: u64,
    /// The scope entry's root: the tgid whose identification put this process in scope.
    pub root: u32,
    /// `PlaceValue::owner` of `path`'s place.
    pub owner: u32,
    /// A [`DeleteSyscall`].
    pub syscall: u8,
    /// `DEL_*`.
    pub flags: u8,
    /// The kernel's [`Place`] of `path` and of `path2`.
    pub place: u8,
    pub place2: u8,
    pub path_len: u16,
    pub path2_len: u16,
    /// What was removed; for a rename, the source (it leaves its place).
    pub path: [u8; PATH_LEN],
    /// A rename's destination (replaced if it existed); empty otherwise.
    pub path2: [u8; PATH_LEN],
}

/// A key of the `PLACES` trie: `prefix_len` in bits, then a path prefix that ends with `/`.
pub const PLACE_KEY_LEN: usize = PATH_LEN;

/// The value of a `PLACES` prefix.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct PlaceValue {
    /// A [`Place`].
    pub place: u8,
    /// 1: an agent's deletion here is killed when deletions are enforced.
    pub protect: u8,
    pub _pad: u16,
    /// For a work tree: the root tgid of the agent that works in it.
    pub owner: u32,
}

pub const PLACES_MAX: u32 = 4096;
/// Threads between a deletion's entry and exit at once.
pub const DELETES_PENDING_MAX: u32 = 4096;
/// Directory levels the kernel walks up to build a path.
pub const PATH_DEPTH: u32 = 32;

const _: () = {
    assert!(core::mem::size_of::<DeleteEvent>() == 24 + 8 + 8 + 8 + 4 + 4 + 2 * PATH_LEN);
    assert!(core::mem::size_of::<PlaceValue>() == 8);
};
