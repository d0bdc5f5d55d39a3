//! Ring-buffer records. Variable-length records (argv, TLS data) are sent with only the used part
//! of their trailing buffer; the `*_len` fields say how much of it is valid.

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
            _ => return None,
        })
    }
}

/// Starts every record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
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

pub const SYSCALL_EXECVE: u32 = 1;
pub const SYSCALL_EXECVEAT: u32 = 2;

/// `sys_enter_execve` / `sys_enter_execveat`: what a thread asked to run. Only `args_len` bytes
/// of `args` are sent.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecArgvEvent {
    pub hdr: Header,
    pub syscall: u32,
    pub flags: u32,
    /// Arguments captured in `args`.
    pub argc: u32,
    pub filename_len: u32,
    pub args_len: u32,
    pub _pad: u32,
    pub filename: [u8; PATH_LEN],
    /// Room for `ARGS_CAP` plus one argument of `ARG_MAX` (the verifier needs the slack).
    pub args: [u8; ARGS_CAP + ARG_MAX],
}

/// `sys_exit_execve` / `sys_exit_execveat`: the result; negative is `-errno`, and a failed exec
/// never ran.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecResultEvent {
    pub hdr: Header,
    pub ret: i64,
}

pub const DIR_WRITE: u8 = 0;
pub const DIR_READ: u8 = 1;

pub const FUNC_SSL_WRITE: u8 = 1;
pub const FUNC_SSL_READ: u8 = 2;
pub const FUNC_SSL_WRITE_EX: u8 = 3;
pub const FUNC_SSL_READ_EX: u8 = 4;
/// Go's `crypto/tls.(*Conn).Write` / `.Read`: the connection id is the `*tls.Conn`.
pub const FUNC_GO_WRITE: u8 = 5;
pub const FUNC_GO_READ: u8 = 6;
/// aws-lc's `EVP_AEAD_CTX_seal{,_scatter}` / `EVP_AEAD_CTX_open` under rustls: one TLS record's
/// application data each; the connection id is the socket's (see guard-ebpf's aead.rs).
pub const FUNC_AEAD_SEAL: u8 = 7;
pub const FUNC_AEAD_OPEN: u8 = 8;

/// One chunk of TLS plaintext. Only `len` bytes of `data` are sent.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TlsDataEvent {
    pub hdr: Header,
    /// The library's connection object (e.g. `SSL *`): with `tgid`, the connection id.
    pub conn: u64,
    /// Offset of `data[0]` in this connection's stream for `dir`. A jump means lost bytes.
    pub stream_offset: u64,
    /// Bytes the whole call transferred (may span many chunks).
    pub call_len: u32,
    pub len: u32,
    pub dir: u8,
    pub func: u8,
    pub _pad: [u8; 2],
    /// The uprobe's attach cookie: which hooked file the call came through, so userspace can
    /// hold back a guessed hook's bytes until they are verified. 0 when attached without one.
    pub target: u32,
    pub data: [u8; TLS_CHUNK],
}

/// The connection object was freed (`SSL_free`): the connection is over.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TlsCloseEvent {
    pub hdr: Header,
    pub conn: u64,
}

/// Per-CPU loss counters (array map `LOSSES`), indexed by these.
pub const LOSS_RING_FULL: u32 = 0;
pub const LOSS_TLS_TRUNCATED: u32 = 1;
pub const LOSS_ARGV_READ: u32 = 2;
pub const LOSS_TLS_READ: u32 = 3;
/// Application data sealed or opened under a key guard could not tie to a socket.
pub const LOSS_AEAD_UNBOUND: u32 = 4;
/// A TLS 1.3 record whose zero padding was too long to find its content type in.
pub const LOSS_TLS13_PADDING: u32 = 5;
pub const LOSS_SLOTS: u32 = 6;

pub const TLS_DATA_FIXED: usize = core::mem::offset_of!(TlsDataEvent, data);
pub const EXEC_ARGV_FIXED: usize = core::mem::offset_of!(ExecArgvEvent, args);

const _: () = {
    assert!(core::mem::size_of::<Header>() == 24);
    assert!(core::mem::size_of::<ExecEvent>() == 24 + 24 + COMM_LEN + PATH_LEN);
    assert!(core::mem::size_of::<ForkEvent>() == 24 + 24 + COMM_LEN);
    assert!(core::mem::size_of::<ExitEvent>() == 24 + 16 + COMM_LEN);
    assert!(core::mem::size_of::<ExecArgvEvent>() == 24 + 24 + PATH_LEN + ARGS_CAP + ARG_MAX);
    assert!(core::mem::size_of::<ExecResultEvent>() == 32);
    assert!(TLS_DATA_FIXED == 24 + 32);
    assert!(core::mem::size_of::<TlsDataEvent>() == TLS_DATA_FIXED + TLS_CHUNK);
    assert!(core::mem::size_of::<TlsCloseEvent>() == 32);
    assert!(ARGS_CAP.is_power_of_two() && ARG_MAX.is_power_of_two() && TLS_CHUNK.is_power_of_two());
};
