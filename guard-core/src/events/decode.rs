//! Ring-buffer record → [`Event`]. The tag at offset 0 selects the layout; short or unknown input
//! is an error, never a panic. Records are read as `bytemuck::Pod` values, so without `unsafe`; a
//! variable-length record is its fixed header, then its payload, taken straight from the record.

use std::ops::Range;

use bytemuck::Pod;
use bytes::Bytes;
use guard_common::{
    delete::{DeleteEvent, DeleteSyscall},
    event::{self as k, EventKind},
};

use super::*;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than the {need} bytes a {what} needs")]
    Short { what: &'static str, len: usize, need: usize },
    #[error("unknown record kind {kind}")]
    UnknownKind { kind: u32 },
    #[error("{what} says {claimed} bytes of data but the record holds {held}")]
    BadLength { what: &'static str, claimed: usize, held: usize },
    #[error("unknown {what} value {value}")]
    BadField { what: &'static str, value: u32 },
}

/// A ring record as the decoder takes it: its bytes, and a way to hand out part of them as
/// [`Bytes`] (a TLS payload).
pub trait RawRecord {
    fn bytes(&self) -> &[u8];
    /// `range` of [`bytes`](Self::bytes): shared when the record is `Bytes` already (the
    /// reader's), copied otherwise. The decoder passes only ranges it has checked.
    fn share(&self, range: Range<usize>) -> Bytes;
}

impl RawRecord for [u8] {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn share(&self, range: Range<usize>) -> Bytes {
        Bytes::copy_from_slice(&self[range])
    }
}

impl RawRecord for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn share(&self, range: Range<usize>) -> Bytes {
        Bytes::copy_from_slice(&self[range])
    }
}

impl RawRecord for Bytes {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn share(&self, range: Range<usize>) -> Bytes {
        self.slice(range)
    }
}

/// Reads a `#[repr(C)]` record (or the fixed header of one) from the front of `buf`, at any
/// alignment.
fn read<T: Pod>(buf: &[u8], what: &'static str) -> Result<T, DecodeError> {
    let need = std::mem::size_of::<T>();
    match buf.get(..need) {
        Some(b) => Ok(bytemuck::pod_read_unaligned(b)),
        None => Err(DecodeError::Short { what, len: buf.len(), need }),
    }
}

/// Where the `len` bytes after a `fixed`-byte header are, if the record holds them and they are
/// at most `max`.
fn payload(buf: &[u8], fixed: usize, len: u32, max: usize, what: &'static str) -> Result<Range<usize>, DecodeError> {
    let (len, held) = (len as usize, buf.len().saturating_sub(fixed));
    if len > held || len > max {
        return Err(DecodeError::BadLength { what, claimed: len, held });
    }
    Ok(fixed..fixed + len)
}

/// A NUL-terminated (or `len`-bounded) kernel string, lossily made UTF-8.
fn cstr(bytes: &[u8], len: Option<u32>) -> String {
    let bytes = match len {
        Some(l) => &bytes[..(l as usize).min(bytes.len())],
        None => bytes,
    };
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Decodes one ring-buffer record.
pub fn decode<R: RawRecord + ?Sized>(rec: &R) -> Result<Event, DecodeError> {
    let buf = rec.bytes();
    let hdr: k::Header = read(buf, "header")?;
    let kind = EventKind::from_u32(hdr.kind).ok_or(DecodeError::UnknownKind { kind: hdr.kind })?;
    let ts_ns = hdr.ktime_ns;
    Ok(match kind {
        EventKind::Delete => decode_delete(buf, hdr)?,
        EventKind::Exec => {
            let e: k::ExecEvent = read(buf, "exec")?;
            Event::Exec(Exec {
                ts_ns,
                pid: hdr.tgid,
                tid: hdr.tid,
                old_tid: e.old_tid,
                ppid: e.ppid,
                uid: e.uid,
                start_time_ns: e.start_time_ns,
                comm: cstr(&e.comm, None),
                filename: cstr(&e.filename, Some(e.filename_len)),
            })
        }
        EventKind::Fork => {
            let e: k::ForkEvent = read(buf, "fork")?;
            Event::Fork(Fork {
                ts_ns,
                parent_pid: hdr.tgid,
                parent_tid: hdr.tid,
                parent_start_time_ns: e.parent_start_time_ns,
                child_pid: e.child_tgid,
                child_start_time_ns: e.child_start_time_ns,
                uid: e.uid,
                comm: cstr(&e.comm, None),
            })
        }
        EventKind::Exit => {
            let e: k::ExitEvent = read(buf, "exit")?;
            Event::Exit(Exit {
                ts_ns,
                pid: hdr.tgid,
                tid: hdr.tid,
                start_time_ns: e.start_time_ns,
                exit_code: e.exit_code,
                comm: cstr(&e.comm, None),
            })
        }
        EventKind::ExecArgv => decode_argv(buf, hdr)?,
        EventKind::ExecResult => {
            let e: k::ExecResultEvent = read(buf, "exec result")?;
            Event::ExecResult(ExecResult { ts_ns, pid: hdr.tgid, tid: hdr.tid, ret: e.ret })
        }
        EventKind::TlsData => decode_tls(rec, hdr)?,
        EventKind::TlsClose => {
            let e: k::TlsCloseEvent = read(buf, "tls close")?;
            Event::TlsClose(TlsClose { ts_ns, conn: ConnId { pid: hdr.tgid, conn: e.conn } })
        }
    })
}

fn decode_argv(buf: &[u8], hdr: k::Header) -> Result<Event, DecodeError> {
    let e: k::ExecArgvHeader = read(buf, "exec argv")?;
    let args = payload(buf, k::EXEC_ARGV_FIXED, e.args_len, k::ARGS_CAP + k::ARG_MAX, "exec argv")?;
    let syscall = match e.syscall {
        k::SYSCALL_EXECVE => ExecSyscall::Execve,
        k::SYSCALL_EXECVEAT => ExecSyscall::Execveat,
        v => return Err(DecodeError::BadField { what: "exec syscall", value: v }),
    };
    Ok(Event::ExecArgv(ExecArgv {
        ts_ns: hdr.ktime_ns,
        pid: hdr.tgid,
        tid: hdr.tid,
        syscall,
        filename: cstr(&e.filename, Some(e.filename_len)),
        argv: split_argv(&buf[args], e.argc),
        truncated: e.flags
            & (k::ARGV_TRUNCATED_COUNT | k::ARGV_TRUNCATED_ARG | k::ARGV_TRUNCATED_BYTES | k::ARGV_READ_FAILED)
            != 0,
        gated: e.flags & k::ARGV_GATED != 0,
    }))
}

/// Packed argv: each argument ends with NUL; a final unterminated piece is a cut argument.
fn split_argv(args: &[u8], argc: u32) -> Vec<String> {
    let mut argv: Vec<String> = args
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if args.last() == Some(&0) || args.is_empty() {
        argv.pop();
    }
    argv.truncate(argc as usize);
    argv
}

fn decode_delete(buf: &[u8], hdr: k::Header) -> Result<Event, DecodeError> {
    let e: DeleteEvent = read(buf, "delete")?;
    let op = DeleteSyscall::from_u8(e.syscall).ok_or(DecodeError::BadField { what: "delete syscall", value: e.syscall.into() })?;
    // `cstr` clamps the lengths to the arrays; a NUL ends a path early.
    Ok(Event::Delete(Delete {
        ts_ns: hdr.ktime_ns,
        pid: hdr.tgid,
        tid: hdr.tid,
        start_time_ns: e.start_time_ns,
        root: e.root,
        op: op.into(),
        ret: e.ret,
        flags: e.flags,
        place: e.place,
        place2: e.place2,
        owner: e.owner,
        path: cstr(&e.path, Some(e.path_len.into())),
        path2: cstr(&e.path2, Some(e.path2_len.into())),
    }))
}

impl From<DeleteSyscall> for DeleteOp {
    fn from(s: DeleteSyscall) -> Self {
        match s {
            DeleteSyscall::Unlink => Self::Unlink,
            DeleteSyscall::Unlinkat => Self::Unlinkat,
            DeleteSyscall::Rmdir => Self::Rmdir,
            DeleteSyscall::Rename => Self::Rename,
            DeleteSyscall::Renameat => Self::Renameat,
            DeleteSyscall::Renameat2 => Self::Renameat2,
            DeleteSyscall::IoUringSetup => Self::IoUringSetup,
        }
    }
}

fn decode_tls<R: RawRecord + ?Sized>(rec: &R, hdr: k::Header) -> Result<Event, DecodeError> {
    let buf = rec.bytes();
    let e: k::TlsDataHeader = read(buf, "tls data")?;
    let data = payload(buf, k::TLS_DATA_FIXED, e.len, k::TLS_CHUNK, "tls data")?;
    let dir = k::Direction::from_u8(e.dir).ok_or(DecodeError::BadField { what: "tls direction", value: e.dir.into() })?;
    let func = k::TlsFunc::from_u8(e.func).ok_or(DecodeError::BadField { what: "tls function", value: e.func.into() })?;
    Ok(Event::TlsData(TlsData {
        ts_ns: hdr.ktime_ns,
        tid: hdr.tid,
        conn: ConnId { pid: hdr.tgid, conn: e.conn },
        dir: dir.into(),
        func: func.into(),
        offset: e.stream_offset,
        call_len: e.call_len,
        target: e.target,
        paused: e.flags & k::TLS_DATA_PAUSED != 0,
        data: rec.share(data),
    }))
}

impl From<k::Direction> for Direction {
    fn from(d: k::Direction) -> Self {
        match d {
            k::Direction::Write => Self::Write,
            k::Direction::Read => Self::Read,
        }
    }
}

impl From<k::TlsFunc> for TlsFunc {
    fn from(f: k::TlsFunc) -> Self {
        match f {
            k::TlsFunc::SslWrite => Self::SslWrite,
            k::TlsFunc::SslRead => Self::SslRead,
            k::TlsFunc::SslWriteEx => Self::SslWriteEx,
            k::TlsFunc::SslReadEx => Self::SslReadEx,
            k::TlsFunc::GoWrite => Self::GoWrite,
            k::TlsFunc::GoRead => Self::GoRead,
            k::TlsFunc::AeadSeal => Self::AeadSeal,
            k::TlsFunc::AeadOpen => Self::AeadOpen,
        }
    }
}
