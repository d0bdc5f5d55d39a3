//! Ring-buffer record → [`Event`]. The tag at offset 0 selects the layout; short or unknown input
//! is an error, never a panic.

use bytes::Bytes;
use guard_common::event::{self as k, EventKind};

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

/// Reads a `#[repr(C)]` record from the front of `buf` without requiring alignment.
fn read<T: Copy>(buf: &[u8], what: &'static str) -> Result<T, DecodeError> {
    let need = std::mem::size_of::<T>();
    if buf.len() < need {
        return Err(DecodeError::Short { what, len: buf.len(), need });
    }
    // SAFETY: length checked above; T is a plain-old-data kernel record (integers and byte
    // arrays only), so every bit pattern is valid; read_unaligned has no alignment requirement.
    Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<T>()) })
}

/// The fixed part of a variable-length record, followed by its valid data.
fn read_prefix<T: Copy>(buf: &[u8], fixed: usize, what: &'static str) -> Result<T, DecodeError> {
    if buf.len() < fixed {
        return Err(DecodeError::Short { what, len: buf.len(), need: fixed });
    }
    let mut full = vec![0u8; std::mem::size_of::<T>()];
    let n = buf.len().min(full.len());
    full[..n].copy_from_slice(&buf[..n]);
    read(&full, what)
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
pub fn decode(buf: &[u8]) -> Result<Event, DecodeError> {
    let hdr: k::Header = read(buf, "header")?;
    let kind = EventKind::from_u32(hdr.kind).ok_or(DecodeError::UnknownKind { kind: hdr.kind })?;
    let ts_ns = hdr.ktime_ns;
    Ok(match kind {
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
        EventKind::TlsData => decode_tls(buf, hdr)?,
        EventKind::TlsClose => {
            let e: k::TlsCloseEvent = read(buf, "tls close")?;
            Event::TlsClose(TlsClose { ts_ns, conn: ConnId { pid: hdr.tgid, conn: e.conn } })
        }
    })
}

fn decode_argv(buf: &[u8], hdr: k::Header) -> Result<Event, DecodeError> {
    let e: k::ExecArgvEvent = read_prefix(buf, k::EXEC_ARGV_FIXED, "exec argv")?;
    let held = buf.len() - k::EXEC_ARGV_FIXED;
    let len = e.args_len as usize;
    if len > held {
        return Err(DecodeError::BadLength { what: "exec argv", claimed: len, held });
    }
    let syscall = match e.syscall {
        k::SYSCALL_EXECVE => ExecSyscall::Execve,
        k::SYSCALL_EXECVEAT => ExecSyscall::Execveat,
        v => return Err(DecodeError::BadField { what: "exec syscall", value: v }),
    };
    let args = &buf[k::EXEC_ARGV_FIXED..k::EXEC_ARGV_FIXED + len];
    // Each argument ends with NUL; a final unterminated piece is a cut argument.
    let mut argv: Vec<String> = args
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if args.last() == Some(&0) || args.is_empty() {
        argv.pop();
    }
    argv.truncate(e.argc as usize);
    Ok(Event::ExecArgv(ExecArgv {
        ts_ns: hdr.ktime_ns,
        pid: hdr.tgid,
        tid: hdr.tid,
        syscall,
        filename: cstr(&e.filename, Some(e.filename_len)),
        argv,
        truncated: e.flags
            & (k::ARGV_TRUNCATED_COUNT | k::ARGV_TRUNCATED_ARG | k::ARGV_TRUNCATED_BYTES | k::ARGV_READ_FAILED)
            != 0,
    }))
}

fn decode_tls(buf: &[u8], hdr: k::Header) -> Result<Event, DecodeError> {
    let e: k::TlsDataEvent = read_prefix(buf, k::TLS_DATA_FIXED, "tls data")?;
    let held = buf.len() - k::TLS_DATA_FIXED;
    let len = e.len as usize;
    if len > held || len > k::TLS_CHUNK {
        return Err(DecodeError::BadLength { what: "tls data", claimed: len, held });
    }
    let dir = match e.dir {
        k::DIR_WRITE => Direction::Write,
        k::DIR_READ => Direction::Read,
        v => return Err(DecodeError::BadField { what: "tls direction", value: v.into() }),
    };
    let func = match e.func {
        k::FUNC_SSL_WRITE => TlsFunc::SslWrite,
        k::FUNC_SSL_READ => TlsFunc::SslRead,
        k::FUNC_SSL_WRITE_EX => TlsFunc::SslWriteEx,
        k::FUNC_SSL_READ_EX => TlsFunc::SslReadEx,
        k::FUNC_GO_WRITE => TlsFunc::GoWrite,
        k::FUNC_GO_READ => TlsFunc::GoRead,
        k::FUNC_AEAD_SEAL => TlsFunc::AeadSeal,
        k::FUNC_AEAD_OPEN => TlsFunc::AeadOpen,
        v => return Err(DecodeError::BadField { what: "tls function", value: v.into() }),
    };
    let start = k::TLS_DATA_FIXED;
    Ok(Event::TlsData(TlsData {
        ts_ns: hdr.ktime_ns,
        tid: hdr.tid,
        conn: ConnId { pid: hdr.tgid, conn: e.conn },
        dir,
        func,
        offset: e.stream_offset,
        call_len: e.call_len,
        target: e.target,
        data: Bytes::copy_from_slice(&buf[start..start + len]),
    }))
}
