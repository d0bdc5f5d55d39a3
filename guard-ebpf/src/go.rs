//! Go's crypto/tls, found by userspace through `.gopclntab` (it survives `-s -w`). Arguments
//! come in registers under Go's ABIInternal on amd64: receiver in RAX, then the slice as
//! RBX (ptr), RCX (len), RDI (cap); results come back in RAX, RBX, ...; R14 holds the goroutine.
//!
//! (*Conn).Write(b) is captured at entry: the bytes are all there, and a failed write ends the
//! connection anyway. (*Conn).Read(b) is captured at each of its RET instructions, never with a
//! uretprobe: those rewrite the return address on the goroutine stack, which Go moves and
//! unwinds, and crash the program.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::uprobe, programs::ProbeContext};
use guard_common::event::{Direction, TlsFunc};

use crate::{
    globals,
    maps::{GO_CALLS, GoKey, TLS_CALL_PAUSED, TlsCall},
    tls::{close, cookie, emit},
};

/// (RAX, RBX, RCX, R14) of the probed thread.
#[inline(always)]
fn regs(ctx: &ProbeContext) -> (u64, u64, u64, u64) {
    // SAFETY: for a uprobe the context is the thread's saved user registers, readable in place.
    let r = unsafe { &*ctx.regs };
    (r.rax, r.rbx, r.rcx, r.r14)
}

/// The calling thread, unless it is guard itself.
#[inline(always)]
pub(crate) fn caller() -> Option<u64> {
    let id = bpf_get_current_pid_tgid();
    ((id >> 32) as u32 != globals::self_tgid()).then_some(id)
}

#[uprobe]
pub fn go_tls_write(ctx: ProbeContext) -> u32 {
    let _ = write(&ctx);
    0
}

#[uprobe]
pub fn go_tls_read(ctx: ProbeContext) -> u32 {
    let _ = read(&ctx);
    0
}

/// Attached to every RET instruction of `(*Conn).Read`.
#[uprobe]
pub fn go_tls_read_ret(ctx: ProbeContext) -> u32 {
    let _ = read_ret(&ctx);
    0
}

#[uprobe]
pub fn go_tls_close(ctx: ProbeContext) -> u32 {
    if let Some(id) = caller() {
        let _ = close(id, regs(&ctx).0);
    }
    0
}

fn write(ctx: &ProbeContext) -> Result<(), i64> {
    let id = caller().ok_or(0i64)?;
    let (conn, buf, len, _) = regs(ctx);
    // A Go length is an int: a negative one is impossible, but never trust user registers.
    if (len as i64) <= 0 {
        return Ok(());
    }
    // Judged before it is captured: a write the pause stops is captured all the same (there is
    // no return probe), flagged so the engine leaves a refusal's record to the gate.
    let paused = crate::pause::on_write(id as u32, (id >> 32) as u32, conn, buf, len);
    let call = TlsCall {
        conn,
        buf,
        len_ptr: 0,
        func: TlsFunc::GoWrite,
        flags: if paused { TLS_CALL_PAUSED } else { 0 },
        _pad: [0; 2],
        target: cookie(ctx),
    };
    emit(id, &call, Direction::Write, len)
}

fn read(ctx: &ProbeContext) -> Result<(), i64> {
    let id = caller().ok_or(0i64)?;
    let (conn, buf, _, g) = regs(ctx);
    let key = GoKey {
        tgid: (id >> 32) as u32,
        _pad: 0,
        g,
    };
    GO_CALLS
        .insert(
            &key,
            &TlsCall {
                conn,
                buf,
                len_ptr: 0,
                func: TlsFunc::GoRead,
                flags: 0,
                _pad: [0; 2],
                target: cookie(ctx),
            },
            0,
        )
        .map_err(i64::from)
}

fn read_ret(ctx: &ProbeContext) -> Result<(), i64> {
    let id = caller().ok_or(0i64)?;
    let (n, _, _, g) = regs(ctx);
    let key = GoKey {
        tgid: (id >> 32) as u32,
        _pad: 0,
        g,
    };
    // SAFETY: the value is copied out before the entry is removed.
    let call = unsafe { *GO_CALLS.get(&key).ok_or(0i64)? };
    let _ = GO_CALLS.remove(&key);
    if (n as i64) <= 0 {
        return Ok(());
    }
    emit(id, &call, Direction::Read, n)
}
