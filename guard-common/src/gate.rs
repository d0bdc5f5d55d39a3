//! The exec gate's kernel state, shared by guard-ebpf and the daemon (`guard-userspace/src/gate`).
//!
//! - [`AgentScope`] in `AGENT_TGIDS`, by tgid: the processes of agent trees. Userspace inserts an
//!   agent when it identifies one; the kernel copies the entry to each child at fork and drops it
//!   at exit, so a tree is in scope from its first instruction on.
//! - [`GateExec`] in `GATE_EXECS`, by tid: one exec in scope, from `sys_enter_execve` until
//!   `sys_exit_execve`. The fanotify listener answers events without a ticket at once.
//! - [`StopEvent`] in `GATE_EVENTS`: an in-scope exec that no fanotify answer covered, stopped
//!   with SIGSTOP before its first instruction; `GATE_STOPPED` (pinned) remembers it until guard
//!   lets it go or kills it.
//! - [`RequestStop`] in `GATE_EVENTS`: an agent's descendant stopped at the entry of `SSL_write`
//!   of a request that may change something (issue 21), registered in `GATE_STOPPED` the same
//!   way. [`ConnKey`] in `REQ_CONNS`: connections userspace passed for good, or whose next write
//!   it wants to see.
//! - [`LoadStop`] in `GATE_EVENTS`: a process stopped at an `mmap` that maps a file for
//!   execution which guard has not analysed (a library loaded with `dlopen`, issue 17), registered
//!   in `GATE_STOPPED` the same way. [`FileKey`] in `KNOWN_FILES`: the files guard has analysed.

#[cfg(feature = "pod")]
use bytemuck::{Pod, Zeroable};

/// `AgentScope::flags`: inserted by userspace (an identified agent), not inherited at fork.
pub const SCOPE_ROOT: u32 = 1 << 0;
/// Inserted by the kernel at a process's first TLS write: it may be a zero-config agent, which
/// userspace learns only once its request is decoded, and a fast agent execs its first tool
/// before that. Its tree is judged at once; a refusal waits for userspace to say whether `root`
/// is an agent.
pub const SCOPE_PROVISIONAL: u32 = 1 << 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct AgentScope {
    /// Index into the daemon's agent directory (the agent's name); 0 = not (yet) a known agent.
    pub slot: u32,
    pub flags: u32,
    /// The tgid whose identification put this process in scope (itself, or an ancestor).
    pub root: u32,
    pub _pad: u32,
}

/// `GateExec::state`.
pub const TICKET_PENDING: u32 = 0;
/// A fanotify answer (allow or deny) covered this exec: no stop at its exit.
pub const TICKET_SEEN: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct GateExec {
    /// `bpf_ktime_get_ns` at `sys_enter_execve`: names this execve call (a later one by the same
    /// thread has another), and is where decision latency is measured from.
    pub enter_ns: u64,
    pub tgid: u32,
    pub slot: u32,
    pub uid: u32,
    pub state: u32,
    /// The scope entry's `root` and `flags`, copied.
    pub root: u32,
    pub scope_flags: u32,
}

/// One stopped process, in `GATE_EVENTS` and (by tgid) in `GATE_STOPPED`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct StopEvent {
    pub enter_ns: u64,
    pub stopped_ns: u64,
    /// The process's start time (boot clock, ns): tells this process from a later one with its pid.
    pub start_ns: u64,
    pub tid: u32,
    pub tgid: u32,
    pub slot: u32,
    pub uid: u32,
    pub root: u32,
    pub scope_flags: u32,
}

/// `StopEvent::scope_flags`: the stop is a paused request ([`RequestStop`]), not an exec. A
/// restarted guard lets such a stop go rather than judge its command line.
pub const STOP_REQUEST: u32 = 1 << 8;
/// `StopEvent::scope_flags`, with [`STOP_REQUEST`]: the write is on an HTTP/2 connection
/// ([`CONN_H2`]): userspace follows its frames and header compression across writes.
pub const STOP_H2: u32 = 1 << 9;
/// `StopEvent::scope_flags`, set by userspace in `GATE_STOPPED`: the paused request was let go
/// and its process runs again. Its next pause replaces the entry (the kernel); one left by a
/// process that is gone is swept by userspace. Removing it after the `SIGCONT` would race that
/// next pause, and removing it before would leave a stopped process that a guard dying in between
/// has no record of.
pub const STOP_ANSWERED: u32 = 1 << 10;
/// `StopEvent::scope_flags`: the stop is a library load ([`LoadStop`]). Userspace lets it go
/// once the file's hooks are attached (or at the hold's bound), whatever they are; a restarted
/// guard lets it go at once.
pub const STOP_LOAD: u32 = 1 << 11;

/// A process stopped at the entry of an `mmap` with `PROT_EXEC` of a file that is not in
/// `KNOWN_FILES`: the stop lands as the call returns, before the caller can run the mapping.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct LoadStop {
    pub stop: StopEvent,
    pub file: FileKey,
    /// The caller's fd of the file: userspace opens the very file through `/proc/PID/fd/FD`.
    pub fd: u32,
    pub _pad: u32,
}

/// A file as the kernel names it: `s_dev` in the kernel's own encoding (major << 20 | minor, not
/// `st_dev`'s) and the inode number.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct FileKey {
    pub ino: u64,
    pub dev: u32,
    pub _pad: u32,
}

impl FileKey {
    /// The key of a file `stat` describes: `st_dev` is re-encoded as the kernel's `dev_t`.
    pub fn from_stat(st_dev: u64, ino: u64) -> Self {
        let major = ((st_dev >> 8) & 0xfff) | ((st_dev >> 32) & !0xfff);
        let minor = (st_dev & 0xff) | ((st_dev >> 12) & !0xff);
        Self { ino, dev: ((major << 20) | (minor & 0xf_ffff)) as u32, _pad: 0 }
    }
}

/// Files in `KNOWN_FILES`: an LRU, so that it never fills; a file that falls out costs its next
/// load one stop that userspace answers from what it knows.
pub const KNOWN_FILES_MAX: u32 = 65_536;

/// A process stopped at the entry of a TLS write that starts a request (`POST`, `PUT`, `PATCH`,
/// `DELETE`): userspace reads the request from `buf` while it waits, judges it, and kills or
/// continues the process. `GATE_STOPPED` holds `stop`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct RequestStop {
    pub stop: StopEvent,
    /// The TLS connection object (the `SSL *`), as in `TlsDataHeader::conn`.
    pub conn: u64,
    /// The plaintext about to be written, in the stopped process's memory.
    pub buf: u64,
    pub len: u64,
    /// Bytes of the connection's write direction captured before this write (`TLS_OFFSETS`), or
    /// [`OFFSET_UNKNOWN`]: a write that starts before the end of the last one repeats bytes that
    /// one did not send (OpenSSL's retry, the rest of a partial write).
    pub offset: u64,
}

/// `RequestStop::offset` when the capture has no count for the connection.
pub const OFFSET_UNKNOWN: u64 = u64::MAX;

/// A TLS connection of a process, in `REQ_CONNS`: what the pause does with its next writes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct ConnKey {
    pub tgid: u32,
    pub _pad: u32,
    pub conn: u64,
}

/// `REQ_CONNS` value: never pause this connection again (the agent's own model calls, a
/// never-judged host).
pub const CONN_PASS: u8 = 1;
/// `REQ_CONNS` value: pause the next write whatever it starts with (a request head whose body,
/// which the rules read, comes in a later write); the kernel removes the mark as it pauses.
pub const CONN_PAUSE_NEXT: u8 = 2;
/// `REQ_CONNS` value: an HTTP/2 connection (its first write was the client preface). Every
/// write pauses, whatever it starts with: a request is a HEADERS frame anywhere in a write, and
/// userspace's HPACK decoder must see every header block in order. Set by the kernel.
pub const CONN_H2: u8 = 3;

pub const REQ_CONNS_MAX: u32 = 16_384;

/// Indexes of `GATE_CTL`, an array of u32 the daemon writes.
pub const CTL_ON: u32 = 0;
/// Every exec is in scope, not only agents' (`enforce.scope = "all"`).
pub const CTL_SCOPE_ALL: u32 = 1;
/// Stop unanswered in-scope execs at `sys_exit_execve`.
pub const CTL_STOP: u32 = 2;
/// The daemon's heartbeat: `bpf_ktime_get_ns` in ms (wrapping u32), written every quarter
/// deadline while guard answers.
pub const CTL_BEAT_MS: u32 = 3;
/// A heartbeat older than this (ms) means guard is not answering (stopped, dying): the kernel
/// then stops no exec, since nobody would let it go.
pub const CTL_STALE_MS: u32 = 4;
/// Report agents' deletions (`crate::delete`).
pub const CTL_DELETE_ON: u32 = 5;
/// Kill an agent's process that deletes in a protected place.
pub const CTL_DELETE_KILL: u32 = 6;
/// Pause agents' descendants' TLS writes that start a request which may change something.
pub const CTL_REQ_PAUSE: u32 = 7;
/// Stop a process that maps a file for execution that guard has not analysed ([`LoadStop`]).
pub const CTL_LOAD_STOP: u32 = 8;
pub const CTL_SLOTS: u32 = 9;

pub const AGENT_TGIDS_MAX: u32 = 32_768;
pub const GATE_EXECS_MAX: u32 = 8_192;
pub const GATE_STOPPED_MAX: u32 = 4_096;

const _: () = {
    assert!(core::mem::size_of::<AgentScope>() == 16);
    assert!(core::mem::size_of::<GateExec>() == 32);
    assert!(core::mem::size_of::<StopEvent>() == 48);
    assert!(core::mem::size_of::<RequestStop>() == 80);
    assert!(core::mem::size_of::<ConnKey>() == 16);
    assert!(core::mem::size_of::<FileKey>() == 16);
    // Records of `GATE_EVENTS` are told apart by size.
    assert!(core::mem::size_of::<LoadStop>() == 72);
};
