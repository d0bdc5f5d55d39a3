//! OpenSSL-compatible TLS calls: arguments are saved at entry, and on return the plaintext that
//! actually moved is sent in numbered chunks of up to `TLS_CHUNK` bytes. Each chunk carries its
//! offset in the connection's stream, so userspace sees every lost byte as a gap.
//!
//! SSL_write(ssl, buf, num) -> int          SSL_write_ex(ssl, buf, num, size_t *written) -> 1/0
//! SSL_read(ssl, buf, num)  -> int          SSL_read_ex(ssl, buf, num, size_t *readbytes) -> 1/0
//! SSL_free(ssl)

use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        generated::{bpf_get_attach_cookie, bpf_loop, bpf_probe_read_user},
    },
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use guard_common::event::{
    Direction, EventKind, Header, LossSlot, TLS_CHUNK, TLS_DATA_FIXED, TLS_DATA_PAUSED, TLS_MAX_CHUNKS, TlsCloseEvent,
    TlsDataHeader, TlsFunc,
};

use crate::{
    globals,
    maps::{ConnKey, TLS_CALLS, TLS_CALL_PAUSED, TLS_OFFSETS, TLS_SCRATCH, TlsCall, count_loss},
    ring::{self, Wake},
};

#[uprobe]
pub fn ssl_write(ctx: ProbeContext) -> u32 {
    let _ = enter(&ctx, TlsFunc::SslWrite);
    0
}

#[uprobe]
pub fn ssl_read(ctx: ProbeContext) -> u32 {
    let _ = enter(&ctx, TlsFunc::SslRead);
    0
}

#[uprobe]
pub fn ssl_write_ex(ctx: ProbeContext) -> u32 {
    let _ = enter(&ctx, TlsFunc::SslWriteEx);
    0
}

#[uprobe]
pub fn ssl_read_ex(ctx: ProbeContext) -> u32 {
    let _ = enter(&ctx, TlsFunc::SslReadEx);
    0
}

/// One return program serves all four functions: the entry saved which one was called.
#[uretprobe]
pub fn ssl_return(ctx: RetProbeContext) -> u32 {
    let _ = ret(&ctx);
    0
}

#[uprobe]
pub fn ssl_free(ctx: ProbeContext) -> u32 {
    let _ = free(&ctx);
    0
}

fn enter(ctx: &ProbeContext, func: TlsFunc) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    if (id >> 32) as u32 == globals::self_tgid() {
        return Ok(());
    }
    let conn: u64 = ctx.arg(0).ok_or(0i64)?;
    let buf: u64 = ctx.arg(1).ok_or(0i64)?;
    let len_ptr: u64 = match func {
        TlsFunc::SslWriteEx | TlsFunc::SslReadEx => ctx.arg(3).ok_or(0i64)?,
        _ => 0,
    };
    let call = TlsCall { conn, buf, len_ptr, func, flags: 0, _pad: [0; 2], target: cookie(ctx) };
    TLS_CALLS.insert(id, call, 0).map_err(i64::from)?;
    if matches!(func, TlsFunc::SslWrite | TlsFunc::SslWriteEx) {
        // `num` is an int for SSL_write, a size_t for SSL_write_ex.
        let num: u64 = ctx.arg(2).ok_or(0i64)?;
        let num = if func == TlsFunc::SslWrite { (num as u32 as i32).max(0) as u64 } else { num };
        // Captured at the return: a refused write is never captured, so the flag stays clear.
        let _ = crate::pause::on_write(id as u32, (id >> 32) as u32, conn, buf, num);
    }
    Ok(())
}

/// The attach cookie: the id userspace gave the hooked file (kernel 5.15+ for uprobes).
#[inline(always)]
pub(crate) fn cookie(ctx: &ProbeContext) -> u32 {
    // SAFETY: the helper only reads the cookie of the link this program runs for.
    unsafe { bpf_get_attach_cookie(ctx.as_ptr()) as u32 }
}

fn ret(ctx: &RetProbeContext) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: the value is copied out before the entry is removed.
    let call = unsafe { *TLS_CALLS.get(id).ok_or(0i64)? };
    let _ = TLS_CALLS.remove(id);
    // All four return `int`: the upper half of rax is undefined, so read 32 bits only.
    let rc: i32 = ctx.ret();
    let len: u64 = match call.func {
        TlsFunc::SslWriteEx | TlsFunc::SslReadEx => {
            if rc != 1 {
                return Ok(());
            }
            let mut n: u64 = 0;
            // SAFETY: reads the size_t out-parameter through the checked helper.
            let r = unsafe { bpf_probe_read_user((&mut n as *mut u64).cast(), 8, call.len_ptr as *const _) };
            if r < 0 {
                count_loss(LossSlot::TlsRead);
                return Ok(());
            }
            n
        }
        _ => {
            if rc <= 0 {
                return Ok(());
            }
            rc as u64
        }
    };
    let dir = match call.func {
        TlsFunc::SslWrite | TlsFunc::SslWriteEx => Direction::Write,
        _ => Direction::Read,
    };
    emit(id, &call, dir, len)
}

pub(crate) fn emit(id: u64, call: &TlsCall, dir: Direction, len: u64) -> Result<(), i64> {
    let tgid = (id >> 32) as u32;
    if dir == Direction::Write {
        crate::gate::on_tls_write(tgid);
    }
    let key = ConnKey { tgid, _pad: 0, conn: call.conn };
    // Claim this call's range of the stream first: bytes we then fail to send show up as a gap.
    let base = match TLS_OFFSETS.get_ptr_mut(&key) {
        Some(off) => {
            // SAFETY: map value pointer valid for this program run.
            let slot = unsafe { &mut (*off)[dir as usize & 1] };
            let base = *slot;
            *slot = base + len;
            base
        }
        None => {
            let mut v = [0u64; 2];
            v[dir as usize & 1] = len;
            TLS_OFFSETS.insert(&key, &v, 0).map_err(i64::from)?;
            0
        }
    };
    let ev = TLS_SCRATCH.get_ptr_mut(0).ok_or(0i64)?;
    // SAFETY: the per-CPU scratch value is ours for the duration of this program.
    let ev = unsafe { &mut *ev };
    ev.head = TlsDataHeader {
        hdr: Header {
            kind: EventKind::TlsData as u32,
            tid: id as u32,
            tgid,
            _pad: 0,
            // SAFETY: no preconditions.
            ktime_ns: unsafe { bpf_ktime_get_ns() },
        },
        conn: call.conn,
        // Set per chunk.
        stream_offset: 0,
        call_len: len.min(u32::MAX as u64) as u32,
        len: 0,
        dir: dir as u8,
        func: call.func as u8,
        flags: if call.flags & TLS_CALL_PAUSED != 0 { TLS_DATA_PAUSED } else { 0 },
        _pad: 0,
        target: call.target,
    };
    let chunks = len.div_ceil(TLS_CHUNK as u64);
    if chunks > TLS_MAX_CHUNKS as u64 {
        count_loss(LossSlot::TlsTruncated);
    }
    let mut state = Chunks { buf: call.buf, len, base };
    // bpf_loop (5.17+): the callback is verified once, where an open-coded loop of 128 chunks
    // with a helper call each exceeds the verifier's complexity limit.
    // SAFETY: the callback has the signature bpf_loop expects and `state` outlives the call.
    unsafe {
        bpf_loop(
            chunks.min(TLS_MAX_CHUNKS as u64) as u32,
            send_chunk as *const () as *mut _,
            (&mut state as *mut Chunks).cast(),
            0,
        )
    };
    Ok(())
}

#[repr(C)]
struct Chunks {
    buf: u64,
    len: u64,
    base: u64,
}

/// Sends chunk `i` of the call described by `ctx`. Returns 1 to stop the loop.
#[inline(never)]
extern "C" fn send_chunk(i: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes back the pointer to the caller's `Chunks`.
    let c = unsafe { &*(ctx as *const Chunks) };
    let Some(ev) = TLS_SCRATCH.get_ptr_mut(0) else { return 1 };
    // SAFETY: the per-CPU scratch value is ours for the duration of this program.
    let ev = unsafe { &mut *ev };
    let done = i * TLS_CHUNK as u64;
    if done >= c.len {
        return 1;
    }
    let rest = c.len - done;
    let n = if rest > TLS_CHUNK as u64 { TLS_CHUNK as u64 } else { rest };
    ev.head.stream_offset = c.base + done;
    ev.head.len = n as u32;
    // SAFETY: n <= TLS_CHUNK, the size of `data`; the helper checks the user address.
    let r = unsafe { bpf_probe_read_user(ev.data.as_mut_ptr().cast(), n as u32, (c.buf + done) as *const _) };
    if r < 0 {
        count_loss(LossSlot::TlsRead);
    } else {
        // The end of what a program writes (a request) wakes the reader at once: a client that
        // turns out to be an agent is put in the exec gate's scope before its tool calls run.
        let last_write = ev.head.dir == Direction::Write as u8 && n == rest;
        let wake = if last_write { Wake::Now } else { Wake::Bulk };
        let _ = ring::send_head(ev, TLS_DATA_FIXED + n as usize, wake);
    }
    0
}

fn free(ctx: &ProbeContext) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if tgid == globals::self_tgid() {
        return Ok(());
    }
    let conn: u64 = ctx.arg(0).ok_or(0i64)?;
    close(id, conn)
}

/// Announces the end of connection `conn` of the current process, if it carried data.
pub(crate) fn close(id: u64, conn: u64) -> Result<(), i64> {
    let tgid = (id >> 32) as u32;
    let key = ConnKey { tgid, _pad: 0, conn };
    // Only connections that carried data are announced as closed.
    if TLS_OFFSETS.remove(&key).is_err() {
        return Ok(());
    }
    ring::send(TlsCloseEvent {
        hdr: Header {
            kind: EventKind::TlsClose as u32,
            tid: id as u32,
            tgid,
            _pad: 0,
            // SAFETY: no preconditions.
            ktime_ns: unsafe { bpf_ktime_get_ns() },
        },
        conn,
    })
}
