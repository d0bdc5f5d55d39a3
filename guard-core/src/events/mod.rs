//! Typed events, decoded from the kernel's ring-buffer records.
//!
//! These are what the rest of the pipeline consumes, and what `--record` writes and `replay` reads.

pub mod decode;
pub mod encode;
pub mod exec_join;
pub mod record;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use decode::{DecodeError, RawRecord, decode};

/// A TLS connection as the kernel sees it: the process and its connection object (`SSL *`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnId {
    pub pid: u32,
    pub conn: u64,
}

/// Which way plaintext went, seen from the process that owns the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Written by the process (`SSL_write`): a client's requests, or a server's responses.
    Write,
    /// Read by the process (`SSL_read`).
    Read,
}

impl Direction {
    pub const fn index(self) -> usize {
        match self {
            Self::Write => 0,
            Self::Read => 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsFunc {
    SslWrite,
    SslRead,
    SslWriteEx,
    SslReadEx,
    /// Go's `crypto/tls.(*Conn).Write` / `.Read`.
    GoWrite,
    GoRead,
    /// aws-lc's AEAD seal/open under rustls: one record's application data each.
    AeadSeal,
    AeadOpen,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecSyscall {
    Execve,
    Execveat,
}

/// A process image replaced (`sched_process_exec`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    /// The thread that called exec; differs from `tid` when a non-leader thread exec'd.
    pub old_tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub start_time_ns: u64,
    pub comm: String,
    pub filename: String,
}

/// A new process (threads are not reported).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fork {
    pub ts_ns: u64,
    pub parent_pid: u32,
    pub parent_tid: u32,
    pub parent_start_time_ns: u64,
    pub child_pid: u32,
    pub child_start_time_ns: u64,
    pub uid: u32,
    pub comm: String,
}

/// A whole process ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub start_time_ns: u64,
    /// Raw wait status (see [`Exit::code`] and [`Exit::signal`]).
    pub exit_code: i32,
    pub comm: String,
}

impl Exit {
    /// The exit status when the process exited normally.
    pub fn code(&self) -> Option<i32> {
        (self.exit_code & 0x7f == 0).then_some((self.exit_code >> 8) & 0xff)
    }
    /// The signal that killed the process.
    pub fn signal(&self) -> Option<i32> {
        let s = self.exit_code & 0x7f;
        (s != 0).then_some(s)
    }
}

/// What a thread asked to run (`execve`/`execveat` entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecArgv {
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub syscall: ExecSyscall,
    pub filename: String,
    pub argv: Vec<String>,
    /// Some of argv is missing: too many arguments, too long an argument, or too many bytes.
    pub truncated: bool,
    /// The exec gate held this exec (`ARGV_GATED`): its verdict is the gate's, not judged again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gated: bool,
}

/// The result of an exec (`execve`/`execveat` exit): 0, or `-errno`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResult {
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub ret: i64,
}

/// A chunk of TLS plaintext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsData {
    pub ts_ns: u64,
    pub tid: u32,
    pub conn: ConnId,
    pub dir: Direction,
    pub func: TlsFunc,
    /// Offset of `data[0]` in the direction's stream.
    pub offset: u64,
    /// Bytes the whole library call moved.
    pub call_len: u32,
    /// Which hooked file the call came through (the uprobe's attach cookie; 0 = not told).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub target: u32,
    /// The request pause stopped this write at its entry, where it was captured
    /// (`guard_common::event::TLS_DATA_PAUSED`): its bytes may never have left.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    #[serde(with = "b64")]
    pub data: Bytes,
}

/// What a [`Delete`] record's syscall was (`guard_common::delete::DeleteSyscall`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteOp {
    Unlink,
    Unlinkat,
    Rmdir,
    Rename,
    Renameat,
    Renameat2,
    /// Not a deletion: the process set up io_uring, whose deletions no tracepoint sees.
    IoUringSetup,
}

impl DeleteOp {
    pub const fn is_rename(self) -> bool {
        matches!(self, Self::Rename | Self::Renameat | Self::Renameat2)
    }
}

/// A deletion (or rename, or io_uring set-up) by a process in an agent's scope, at syscall exit
/// (`guard_common::delete::DeleteEvent`). The kernel's places are kept as sent; the engine
/// classifies the paths itself ([`crate::places`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delete {
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub start_time_ns: u64,
    /// The scope entry's root tgid: whose identification put the process in scope.
    pub root: u32,
    pub op: DeleteOp,
    /// 0 done, else `-errno`.
    pub ret: i64,
    /// `DEL_*` bits.
    pub flags: u8,
    /// The kernel's `Place` bytes of `path` and `path2`, and the owner of `path`'s place.
    pub place: u8,
    pub place2: u8,
    pub owner: u32,
    /// What was removed; a rename's source.
    pub path: String,
    /// A rename's destination; empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path2: String,
}

impl Delete {
    pub const fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A TLS connection object was freed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsClose {
    pub ts_ns: u64,
    pub conn: ConnId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Exec(Exec),
    Fork(Fork),
    Exit(Exit),
    ExecArgv(ExecArgv),
    ExecResult(ExecResult),
    TlsData(TlsData),
    TlsClose(TlsClose),
    Delete(Delete),
}

impl Event {
    pub fn ts_ns(&self) -> u64 {
        match self {
            Self::Exec(e) => e.ts_ns,
            Self::Fork(e) => e.ts_ns,
            Self::Exit(e) => e.ts_ns,
            Self::ExecArgv(e) => e.ts_ns,
            Self::ExecResult(e) => e.ts_ns,
            Self::TlsData(e) => e.ts_ns,
            Self::TlsClose(e) => e.ts_ns,
            Self::Delete(e) => e.ts_ns,
        }
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// TLS payloads in recordings are base64, so a recording stays one JSON object per line.
mod b64 {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    use bytes::Bytes;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(b))
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        STANDARD.decode(s.as_bytes()).map(Bytes::from).map_err(serde::de::Error::custom)
    }
}
