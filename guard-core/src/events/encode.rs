//! [`Event`] → kernel record bytes: the inverse of [`super::decode()`]. Used by the round-trip
//! tests, fuzzing seeds and benchmarks to produce records without a kernel.

use guard_common::{
    delete::{DeleteEvent, DeleteSyscall},
    event::{self as k, EventKind},
};

use super::*;

fn header(kind: EventKind, tid: u32, tgid: u32, ts: u64) -> k::Header {
    k::Header { kind: kind as u32, tid, tgid, _pad: 0, ktime_ns: ts }
}

fn bytes_of<T: bytemuck::Pod>(v: &T) -> Vec<u8> {
    bytemuck::bytes_of(v).to_vec()
}

fn fill<const N: usize>(s: &str) -> ([u8; N], u32) {
    let mut a = [0u8; N];
    let n = s.len().min(N - 1);
    a[..n].copy_from_slice(&s.as_bytes()[..n]);
    (a, n as u32)
}

pub fn encode(ev: &Event) -> Vec<u8> {
    match ev {
        Event::Exec(e) => {
            let (filename, filename_len) = fill(&e.filename);
            bytes_of(&k::ExecEvent {
                hdr: header(EventKind::Exec, e.tid, e.pid, e.ts_ns),
                ppid: e.ppid,
                old_tid: e.old_tid,
                uid: e.uid,
                filename_len,
                start_time_ns: e.start_time_ns,
                comm: fill(&e.comm).0,
                filename,
            })
        }
        Event::Fork(f) => bytes_of(&k::ForkEvent {
            hdr: header(EventKind::Fork, f.parent_tid, f.parent_pid, f.ts_ns),
            child_tgid: f.child_pid,
            uid: f.uid,
            child_start_time_ns: f.child_start_time_ns,
            parent_start_time_ns: f.parent_start_time_ns,
            comm: fill(&f.comm).0,
        }),
        Event::Exit(x) => bytes_of(&k::ExitEvent {
            hdr: header(EventKind::Exit, x.tid, x.pid, x.ts_ns),
            exit_code: x.exit_code,
            _pad: 0,
            start_time_ns: x.start_time_ns,
            comm: fill(&x.comm).0,
        }),
        Event::ExecArgv(a) => {
            let mut args = Vec::new();
            for s in &a.argv {
                args.extend_from_slice(s.as_bytes());
                args.push(0);
            }
            let (filename, filename_len) = fill(&a.filename);
            let mut out = bytes_of(&k::ExecArgvHeader {
                hdr: header(EventKind::ExecArgv, a.tid, a.pid, a.ts_ns),
                syscall: match a.syscall {
                    ExecSyscall::Execve => k::SYSCALL_EXECVE,
                    ExecSyscall::Execveat => k::SYSCALL_EXECVEAT,
                },
                flags: if a.truncated { k::ARGV_TRUNCATED_COUNT } else { 0 } | if a.gated { k::ARGV_GATED } else { 0 },
                argc: a.argv.len() as u32,
                filename_len,
                args_len: args.len() as u32,
                _pad: 0,
                filename,
            });
            out.extend_from_slice(&args);
            out
        }
        Event::ExecResult(r) => bytes_of(&k::ExecResultEvent { hdr: header(EventKind::ExecResult, r.tid, r.pid, r.ts_ns), ret: r.ret }),
        Event::TlsData(d) => {
            let mut out = bytes_of(&k::TlsDataHeader {
                hdr: header(EventKind::TlsData, d.tid, d.conn.pid, d.ts_ns),
                conn: d.conn.conn,
                stream_offset: d.offset,
                call_len: d.call_len,
                len: d.data.len() as u32,
                dir: k::Direction::from(d.dir) as u8,
                func: k::TlsFunc::from(d.func) as u8,
                flags: if d.paused { k::TLS_DATA_PAUSED } else { 0 },
                _pad: 0,
                target: d.target,
            });
            out.extend_from_slice(&d.data);
            out
        }
        Event::TlsClose(c) => bytes_of(&k::TlsCloseEvent { hdr: header(EventKind::TlsClose, c.conn.pid, c.conn.pid, c.ts_ns), conn: c.conn.conn }),
        Event::Delete(d) => encode_delete(d),
    }
}

fn encode_delete(d: &Delete) -> Vec<u8> {
    let (path, path_len) = fill::<{ k::PATH_LEN }>(&d.path);
    let (path2, path2_len) = fill::<{ k::PATH_LEN }>(&d.path2);
    bytes_of(&DeleteEvent {
        hdr: header(EventKind::Delete, d.tid, d.pid, d.ts_ns),
        ret: d.ret,
        start_time_ns: d.start_time_ns,
        root: d.root,
        owner: d.owner,
        syscall: DeleteSyscall::from(d.op) as u8,
        flags: d.flags,
        place: d.place,
        place2: d.place2,
        path_len: path_len as u16,
        path2_len: path2_len as u16,
        path,
        path2,
    })
}

impl From<DeleteOp> for DeleteSyscall {
    fn from(op: DeleteOp) -> Self {
        match op {
            DeleteOp::Unlink => Self::Unlink,
            DeleteOp::Unlinkat => Self::Unlinkat,
            DeleteOp::Rmdir => Self::Rmdir,
            DeleteOp::Rename => Self::Rename,
            DeleteOp::Renameat => Self::Renameat,
            DeleteOp::Renameat2 => Self::Renameat2,
            DeleteOp::IoUringSetup => Self::IoUringSetup,
        }
    }
}

impl From<Direction> for k::Direction {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Write => Self::Write,
            Direction::Read => Self::Read,
        }
    }
}

impl From<TlsFunc> for k::TlsFunc {
    fn from(f: TlsFunc) -> Self {
        match f {
            TlsFunc::SslWrite => Self::SslWrite,
            TlsFunc::SslRead => Self::SslRead,
            TlsFunc::SslWriteEx => Self::SslWriteEx,
            TlsFunc::SslReadEx => Self::SslReadEx,
            TlsFunc::GoWrite => Self::GoWrite,
            TlsFunc::GoRead => Self::GoRead,
            TlsFunc::AeadSeal => Self::AeadSeal,
            TlsFunc::AeadOpen => Self::AeadOpen,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn samples() -> Vec<Event> {
        vec![
            Event::Exec(Exec { ts_ns: 1, pid: 10, tid: 10, old_tid: 11, ppid: 1, uid: 1000, start_time_ns: 5, comm: "rm".into(), filename: "/usr/bin/rm".into() }),
            Event::Fork(Fork { ts_ns: 2, parent_pid: 1, parent_tid: 2, parent_start_time_ns: 3, child_pid: 10, child_start_time_ns: 4, uid: 0, comm: "bash".into() }),
            Event::Exit(Exit { ts_ns: 3, pid: 10, tid: 12, start_time_ns: 5, exit_code: 256, comm: "rm".into() }),
            Event::ExecArgv(ExecArgv { ts_ns: 4, pid: 10, tid: 10, syscall: ExecSyscall::Execveat, filename: "/bin/sh".into(), argv: vec!["sh".into(), "-c".into(), "".into(), "x y".into()], truncated: false, gated: false }),
            Event::ExecArgv(ExecArgv { ts_ns: 4, pid: 10, tid: 10, syscall: ExecSyscall::Execve, filename: "/bin/true".into(), argv: vec![], truncated: true, gated: true }),
            Event::ExecResult(ExecResult { ts_ns: 5, pid: 10, tid: 10, ret: -2 }),
            Event::TlsData(TlsData { ts_ns: 6, tid: 11, conn: ConnId { pid: 10, conn: 0xdead }, dir: Direction::Read, func: TlsFunc::SslReadEx, offset: 1 << 40, call_len: 70000, target: 3, paused: true, data: Bytes::from_static(b"HTTP/1.1 200 OK\r\n") }),
            Event::TlsClose(TlsClose { ts_ns: 7, conn: ConnId { pid: 10, conn: 0xdead } }),
            Event::Delete(Delete { ts_ns: 8, pid: 10, tid: 12, start_time_ns: 5, root: 9, op: DeleteOp::Renameat2, ret: 0, flags: guard_common::delete::DEL_NOREPLACE, place: 4, place2: 2, owner: 0, path: "/home/dev/.ssh/id_ed25519".into(), path2: "/tmp/x".into() }),
            Event::Delete(Delete { ts_ns: 9, pid: 10, tid: 10, start_time_ns: 5, root: 9, op: DeleteOp::Unlinkat, ret: -13, flags: guard_common::delete::DEL_RELATIVE | guard_common::delete::DEL_DIR, place: 0, place2: 0, owner: 0, path: "build/\u{e9}t\u{e9}".into(), path2: String::new() }),
        ]
    }

    /// The rename record of `samples()`, as bytes.
    fn delete_bytes() -> Vec<u8> {
        encode(&samples()[8])
    }

    #[test]
    fn a_delete_record_with_an_unknown_syscall_is_an_error() {
        let mut b = delete_bytes();
        b[std::mem::offset_of!(DeleteEvent, syscall)] = 0;
        assert_eq!(decode(&b), Err(DecodeError::BadField { what: "delete syscall", value: 0 }));
    }

    #[test]
    fn delete_path_lengths_beyond_the_array_are_clamped_and_bad_utf8_is_replaced() {
        let mut b = delete_bytes();
        let (len, path) = (std::mem::offset_of!(DeleteEvent, path_len), std::mem::offset_of!(DeleteEvent, path));
        b[len..len + 2].copy_from_slice(&u16::MAX.to_le_bytes());
        b[path..path + k::PATH_LEN].fill(b'a');
        b[path + 1] = 0xff;
        let Ok(Event::Delete(d)) = decode(&b) else { panic!("not a delete") };
        assert_eq!(d.path.chars().count(), k::PATH_LEN);
        assert!(d.path.starts_with("a\u{fffd}a"), "{}", d.path);
        // A length shorter than the string cuts it there.
        let mut b = delete_bytes();
        b[len..len + 2].copy_from_slice(&5u16.to_le_bytes());
        let Ok(Event::Delete(d)) = decode(&b) else { panic!("not a delete") };
        assert_eq!(d.path, "/home");
    }

    #[test]
    fn every_event_survives_encode_then_decode() {
        for ev in samples() {
            assert_eq!(decode(&encode(&ev)), Ok(ev.clone()), "{ev:?}");
        }
    }

    #[test]
    fn every_event_survives_a_recording() {
        for ev in samples() {
            let line = serde_json::to_string(&ev).unwrap();
            assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), ev);
        }
    }

    #[test]
    fn short_or_unknown_records_are_errors() {
        for ev in samples() {
            let b = encode(&ev);
            let min = match ev {
                Event::ExecArgv(_) => k::EXEC_ARGV_FIXED,
                Event::TlsData(_) => k::TLS_DATA_FIXED,
                _ => b.len(),
            };
            for n in 0..min {
                assert!(matches!(decode(&b[..n]), Err(DecodeError::Short { .. })), "{n} bytes of {ev:?}");
            }
        }
        let mut b = encode(&samples()[0]);
        b[0] = 99;
        assert_eq!(decode(&b), Err(DecodeError::UnknownKind { kind: 99 }));
    }

    #[test]
    fn a_data_length_beyond_the_record_is_an_error() {
        for i in [3, 6] {
            let mut b = encode(&samples()[i]);
            b.truncate(b.len() - 1);
            assert!(matches!(decode(&b), Err(DecodeError::BadLength { .. })), "{:?}", samples()[i]);
        }
    }

    #[test]
    fn a_tls_chunk_longer_than_the_kernel_sends_is_an_error() {
        let Event::TlsData(mut d) = samples()[6].clone() else { unreachable!() };
        d.data = Bytes::from(vec![b'x'; k::TLS_CHUNK + 1]);
        let b = encode(&Event::TlsData(d));
        assert_eq!(decode(&b), Err(DecodeError::BadLength { what: "tls data", claimed: k::TLS_CHUNK + 1, held: k::TLS_CHUNK + 1 }));
    }

    #[test]
    fn unknown_direction_or_function_is_an_error() {
        let b = encode(&samples()[6]);
        let (dir, func) = (std::mem::offset_of!(k::TlsDataHeader, dir), std::mem::offset_of!(k::TlsDataHeader, func));
        let mut bad = b.clone();
        bad[dir] = 2;
        assert_eq!(decode(&bad), Err(DecodeError::BadField { what: "tls direction", value: 2 }));
        let mut bad = b;
        bad[func] = 0;
        assert_eq!(decode(&bad), Err(DecodeError::BadField { what: "tls function", value: 0 }));
    }

    #[test]
    fn a_payload_decoded_from_bytes_shares_the_record() {
        let record = Bytes::from(encode(&samples()[6]));
        let Ok(Event::TlsData(d)) = decode(&record) else { panic!("not TLS data") };
        assert_eq!(d.data.as_ptr(), record[k::TLS_DATA_FIXED..].as_ptr());
        assert_eq!(Ok(Event::TlsData(d)), decode(&record[..]));
    }
}
