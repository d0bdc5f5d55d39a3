//! Ring-buffer records. Variable-length records (argv, TLS data) are a fixed header
//! ([`ExecArgvHeader`], [`TlsDataHeader`]) followed by only the used part of their trailing
//! buffer; the header's `*_len` field says how many bytes follow.
//!
//! With the `pod` feature every record is `bytemuck::Pod`, so userspace reads them without
//! `unsafe`; deriving it also proves at compile time that no record has implicit padding.

#[cfg(feature = "pod")]
use bytemuck::{Pod, Zeroable};

#[cfg(feature = "user")]
mod user;

pub const COMM_LEN: usize = 16;
pub const PATH_LEN: usize = 256;
/// Packed argv: each argument NUL-terminated, back to back. Capture stops once this much is used.
pub const ARGS_CAP: usize = 8192;
/// The longest single argument read; a longer one is cut and flagged.
pub const ARG_MAX: usize = 4096;
/// The most arguments read from one exec.
pub const MAX_ARGS: u32 = 64;
/// Plaintext per TLS chunk. 16 KiB is one TLS record and fits a per-CPU scratch value.
pub const TLS_CHUNK: usize = 16384;
/// The most chunks sent for one SSL call (2 MiB); more is counted as truncation.
pub const TLS_MAX_CHUNKS: u32 = 128;

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Exec = 1,
    Fork = 2,
    Exit = 3,
    ExecArgv = 4,
    ExecResult = 5,
    TlsData = 6,
    TlsClose = 7,
    /// A deletion by an agent's process (`crate::delete::DeleteEvent`).
    Delete = 8,
}

impl EventKind {
    pub const fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Exec,
            2 => Self::Fork,
            3 => Self::Exit,
            4 => Self::ExecArgv,
            5 => Self::ExecResult,
            6 => Self::TlsData,
            7 => Self::TlsClose,
            8 => Self::Delete,
            _ => return None,
        })
    }
}

/// Starts every record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct Header {
    pub kind: u32,
    /// Kernel task id of the thread that produced the event (`pid` in kernel terms).
    pub tid: u32,
    /// Thread group id: the process id users see.
    pub tgid: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC).
    pub ktime_ns: u64,
}

/// `sched_process_exec`: a program image was replaced successfully.
#[repr(C)]
#[derive(Clone, Copy)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct ExecEvent {
    pub hdr: Header,
    pub ppid: u32,
    /// The tid that called exec (differs from `hdr.tid` when a non-leader thread exec'd).
    pub old_tid: u32,
    pub uid: u32,
    pub filename_len: u32,
    /// `task->start_boottime`, ns since boot: with the pid, the identity of the process.
    pub start_time_ns: u64,
    pub comm: [u8; COMM_LEN],
    pub filename: [u8; PATH_LEN],
}

/// `sched_process_fork` for a new process (threads are not reported).
#[repr(C)]
#[derive(Clone, Copy)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct ForkEvent {
    pub hdr: Header,
    pub child_tgid: u32,
    pub uid: u32,
    pub child_start_time_ns: u64,
    pub parent_start_time_ns: u64,
    pub comm: [u8; COMM_LEN],
}

/// `sched_process_exit` of a whole process (the last thread of the group).
#[repr(C)]
#[derive(Clone, Copy)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct ExitEvent {
    pub hdr: Header,
    /// Raw wait status: `code << 8`, or the terminating signal in the low 7 bits.
    pub exit_code: i32,
    pub _pad: u32,
    pub start_time_ns: u64,
    pub comm: [u8; COMM_LEN],
}

pub const ARGV_TRUNCATED_COUNT: u32 = 1 << 0;
pub const ARGV_TRUNCATED_ARG: u32 = 1 << 1;
pub const ARGV_TRUNCATED_BYTES: u32 = 1 << 2;
pub const ARGV_READ_FAILED: u32 = 1 << 3;
/// The exec gate holds a ticket for this exec and owns its verdict (`crate::gate`).
pub const ARGV_GATED: u32 = 1 << 4;

pub const SYSCALL_EXECVE: u32 = 1;
pub const SYSCALL_EXECVEAT: u32 = 2;

/// `sys_enter_execve` / `sys_enter_execveat`: what a thread asked to run. `args_len` bytes of
/// packed argv follow it.
#[repr(C)]
#[derive(Clone, Copy)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct ExecArgvHeader {
    pub hdr: Header,
    pub syscall: u32,
    pub flags: u32,
    /// Arguments captured in the packed argv.
    pub argc: u32,
    pub filename_len: u32,
    pub args_len: u32,
    pub _pad: u32,
    pub filename: [u8; PATH_LEN],
}

/// An argv record as the kernel builds it, in per-CPU scratch. Only the header and `args_len`
/// bytes of `args` are sent.
#[repr(C)]
#[derive(Clone, Copy)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct ExecArgvEvent {
    pub head: ExecArgvHeader,
    /// Room for `ARGS_CAP` plus one argument of `ARG_MAX` (the verifier needs the slack).
    pub args: [u8; ARGS_CAP + ARG_MAX],
}

/// `sys_exit_execve` / `sys_exit_execveat`: the result; negative is `-errno`, and a failed exec
/// never ran.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct ExecResultEvent {
    pub hdr: Header,
    pub ret: i64,
}

tag_enum! {
    /// Which way plaintext went (`TlsDataHeader::dir`), seen from the process that owns the
    /// connection; also the index of the direction's stream offset in the kernel.
    pub enum Direction {
        Write = 0,
        Read = 1,
    }
}

tag_enum! {
    /// The hooked function a TLS record came from (`TlsDataHeader::func`).
    pub enum TlsFunc {
        SslWrite = 1,
        SslRead = 2,
        SslWriteEx = 3,
        SslReadEx = 4,
        /// Go's `crypto/tls.(*Conn).Write`: the connection id is the `*tls.Conn`.
        GoWrite = 5,
        /// Go's `crypto/tls.(*Conn).Read`.
        GoRead = 6,
        /// aws-lc's `EVP_AEAD_CTX_seal{,_scatter}` under rustls: one TLS record's application
        /// data; the connection id is the socket's (see guard-ebpf's aead.rs).
        AeadSeal = 7,
        /// aws-lc's `EVP_AEAD_CTX_open` under rustls.
        AeadOpen = 8,
    }
}

/// One chunk of TLS plaintext: this header, then `len` bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct TlsDataHeader {
    pub hdr: Header,
    /// The library's connection object (e.g. `SSL *`): with `tgid`, the connection id.
    pub conn: u64,
    /// Offset of the chunk's first byte in this connection's stream for `dir`. A jump means lost
    /// bytes.
    pub stream_offset: u64,
    /// Bytes the whole call transferred (may span many chunks).
    pub call_len: u32,
    pub len: u32,
    /// A [`Direction`].
    pub dir: u8,
    /// A [`TlsFunc`].
    pub func: u8,
    /// [`TLS_DATA_PAUSED`].
    pub flags: u8,
    pub _pad: u8,
    /// The uprobe's attach cookie: which hooked file the call came through, so userspace can
    /// hold back a guessed hook's bytes until they are verified. 0 when attached without one.
    pub target: u32,
}

/// `TlsDataHeader::flags`: the write was captured at its entry (Go) and the request pause
/// stopped it there (`guard_common::gate::RequestStop`). Its bytes may never have left: the gate,
/// not the decoder, records a refusal of what it carries.
pub const TLS_DATA_PAUSED: u8 = 1;

/// A TLS data record as the kernel builds it, in per-CPU scratch. Only the header and `len`
/// bytes of `data` are sent.
#[repr(C)]
#[derive(Clone, Copy)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct TlsDataEvent {
    pub head: TlsDataHeader,
    pub data: [u8; TLS_CHUNK],
}

/// The connection object was freed (`SSL_free`): the connection is over.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "pod", derive(Pod, Zeroable))]
pub struct TlsCloseEvent {
    pub hdr: Header,
    pub conn: u64,
}

tag_enum! {
    /// The per-CPU loss counters of the kernel programs: the slots of the array map `LOSSES`.
    /// Each is exported as a `guard_events_lost_total` source.
    pub enum LossSlot {
        /// No room in the ring buffer: the record was dropped.
        RingFull = 0,
        /// An SSL call moved more than `TLS_MAX_CHUNKS` chunks; the rest was not sent.
        TlsTruncated = 1,
        /// An argv pointer or string could not be read from the process's memory.
        ArgvRead = 2,
        /// TLS plaintext or a length out-parameter could not be read from the process's memory.
        TlsRead = 3,
        /// Application data sealed or opened under a key guard could not tie to a socket.
        AeadUnbound = 4,
        /// A TLS 1.3 record whose zero padding was too long to find its content type in.
        Tls13Padding = 5,
        /// `AGENT_TGIDS` was full: a child of an agent is out of the gate's scope.
        GateAgentMapFull = 6,
        /// `GATE_EXECS` was full: an in-scope exec went unjudged.
        GateExecMapFull = 7,
        /// `GATE_EVENTS` was full: a stopped process was released at once, unjudged.
        GateStopRingFull = 8,
        /// An in-scope exec no fanotify answer covered ran unstopped: guard was not answering.
        GateStale = 9,
        /// `DELETES_PENDING` was full: an agent's deletion went unreported (and unenforced).
        DeletePendingFull = 10,
        /// A deletion's path could not be read from the process's memory.
        DeletePathRead = 11,
    }
}

/// Entries of the `LOSSES` map.
pub const LOSS_SLOTS: u32 = LossSlot::ALL.len() as u32;

pub const TLS_DATA_FIXED: usize = core::mem::size_of::<TlsDataHeader>();
pub const EXEC_ARGV_FIXED: usize = core::mem::size_of::<ExecArgvHeader>();

const _: () = {
    assert!(core::mem::size_of::<Header>() == 24);
    assert!(core::mem::size_of::<ExecEvent>() == 24 + 24 + COMM_LEN + PATH_LEN);
    assert!(core::mem::size_of::<ForkEvent>() == 24 + 24 + COMM_LEN);
    assert!(core::mem::size_of::<ExitEvent>() == 24 + 16 + COMM_LEN);
    assert!(EXEC_ARGV_FIXED == 24 + 24 + PATH_LEN);
    assert!(core::mem::offset_of!(ExecArgvEvent, args) == EXEC_ARGV_FIXED);
    assert!(core::mem::size_of::<ExecArgvEvent>() == EXEC_ARGV_FIXED + ARGS_CAP + ARG_MAX);
    assert!(core::mem::size_of::<ExecResultEvent>() == 32);
    assert!(TLS_DATA_FIXED == 24 + 32);
    assert!(core::mem::offset_of!(TlsDataEvent, data) == TLS_DATA_FIXED);
    assert!(core::mem::size_of::<TlsDataEvent>() == TLS_DATA_FIXED + TLS_CHUNK);
    assert!(core::mem::size_of::<TlsCloseEvent>() == 32);
    // A slot's value is its index in `LOSSES`, so `LossSlot::ALL` walks the map in order.
    let mut i = 0;
    while i < LossSlot::ALL.len() {
        assert!(LossSlot::ALL[i] as usize == i);
        i += 1;
    }
    assert!(ARGS_CAP.is_power_of_two() && ARG_MAX.is_power_of_two() && TLS_CHUNK.is_power_of_two());
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_unknown_values_are_refused() {
        for d in Direction::ALL {
            assert_eq!(Direction::from_u8(d as u8), Some(d));
        }
        for f in TlsFunc::ALL {
            assert_eq!(TlsFunc::try_from(f as u8), Ok(f));
        }
        for s in LossSlot::ALL {
            assert_eq!(LossSlot::from_u8(s as u8), Some(s));
        }
        assert_eq!(Direction::try_from(2), Err(2));
        assert_eq!(TlsFunc::from_u8(0), None);
        assert_eq!(TlsFunc::from_u8(9), None);
        assert_eq!(LossSlot::from_u8(LOSS_SLOTS as u8), None);
    }
}
