//! rustls on aws-lc (Codex CLI): plaintext at aws-lc's generic AEAD entry points, the one C ABI
//! every rustls record crosses whole (design: docs/dev-notes/rustls.md).
//!
//!   EVP_AEAD_CTX_seal(ctx, out, *out_len, max_out, nonce, nonce_len, in, in_len, ad, ad_len)
//!   EVP_AEAD_CTX_seal_scatter(ctx, out, tag, *tag_len, max_tag, nonce, nonce_len, in, in_len,
//!                             extra_in, extra_in_len, ad, ad_len)
//!   EVP_AEAD_CTX_open(ctx, out, *out_len, max_out, nonce, nonce_len, in, in_len, ad, ad_len)
//!   EVP_AEAD_CTX_init[_with_direction](ctx, aead, key, key_len, tag_len[, dir])
//!
//! The additional data proves each call is a TLS record (a 5-byte TLS 1.3 header or a 13-byte
//! TLS 1.2 pseudo-header whose length matches `in_len`); anything else (HPKE, QUIC, an app's own
//! sealing) is ignored. Only application data is sent: TLS 1.3's inner content type is the last
//! plaintext byte, TLS 1.2's is in the additional data.
//!
//! The AEAD context says nothing about the connection, so records are tied to the socket that
//! moved their ciphertext, tracked by syscall tracepoints in processes that use these hooks:
//! - an opened record must end inside the bytes this thread's last read asked for (rustls
//!   decrypts in place in its read buffer right after `read_tls`);
//! - a key is bound at set-up to the socket this thread last read from (rustls installs keys while
//!   processing what it just read), and re-bound by the first write whose buffer holds a record
//!   sealed with it: rustls writes each record from the Vec it sealed in, header first.
//!
//! A process is watched from its program's entry point (or, for a library, its first AEAD
//! call), so its first connection's reads are seen. The connection id is a number per
//! (process, socket fd), so both directions share it.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated::bpf_probe_read_user},
    macros::{map, tracepoint, uprobe, uretprobe},
    maps::{HashMap, LruHashMap},
    programs::{ProbeContext, RetProbeContext, TracePointContext},
};
use guard_common::event::{Direction, LossSlot, TlsFunc};

use crate::{
    globals,
    go::caller,
    maps::{ConnKey, TLS13, TlsCall, count_loss},
    tls::{close, cookie, emit},
};

/// AES-GCM and ChaCha20-Poly1305, the AEADs of every TLS suite rustls offers, have 16-byte tags.
const TAG: u64 = 16;
const APP_DATA: u8 = 0x17;
/// Most vectors one write is searched for sealed records.
const MAX_IOV: usize = 8;
/// Bytes of TLS 1.3 zero padding looked through for the inner content type.
const PAD_SCAN: usize = 32;
/// Marks a socket connection id: user pointers (other libraries' ids) never have bit 63.
const SOCK_BIT: u64 = 1 << 63;

/// Processes whose AEAD hooks fired: only their syscalls are looked at.
#[map]
static AEAD_TRACKED: LruHashMap<u32, u8> = LruHashMap::with_max_entries(4096, 0);

/// The last read of each thread of a tracked process.
#[map]
static LAST_READ: LruHashMap<u64, LastRead> = LruHashMap::with_max_entries(16_384, 0);

/// (tgid, fd) -> connection id.
#[map]
static FD_SOCK: LruHashMap<ConnKey, u64> = LruHashMap::with_max_entries(65_536, 0);

/// (tgid, AEAD ctx) -> connection id of the key's socket.
#[map]
static CTX_SOCK: LruHashMap<ConnKey, u64> = LruHashMap::with_max_entries(65_536, 0);

/// (tgid, sealed output buffer) -> the record, until the write that sends it.
#[map]
static SEALED: LruHashMap<ConnKey, Sealed> = LruHashMap::with_max_entries(16_384, 0);

/// `open` calls in flight, by thread.
#[map]
static OPENS: HashMap<u64, TlsCall> = HashMap::with_max_entries(16_384, 0);

#[repr(C)]
#[derive(Clone, Copy)]
struct LastRead {
    fd: u64,
    buf: u64,
    count: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Sealed {
    ctx: u64,
    /// The record header the write must start with, and how far before `out` it sits.
    header: [u8; 5],
    before: u8,
    _pad: [u8; 2],
}

/// What the additional data says a call is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Record {
    /// TLS 1.3: the inner content type is the last plaintext byte.
    Tls13,
    /// TLS 1.2, with its content type.
    Tls12(u8),
}

#[uprobe]
pub fn aead_seal(ctx: ProbeContext) -> u32 {
    let _ = seal(&ctx, false);
    0
}

#[uprobe]
pub fn aead_seal_scatter(ctx: ProbeContext) -> u32 {
    let _ = seal(&ctx, true);
    0
}

#[uprobe]
pub fn aead_open(ctx: ProbeContext) -> u32 {
    let _ = open(&ctx);
    0
}

#[uretprobe]
pub fn aead_open_ret(ctx: RetProbeContext) -> u32 {
    let _ = open_ret(&ctx);
    0
}

/// A new key: bind it to the socket this thread just read from, and start watching the process.
#[uprobe]
pub fn aead_key_init(ctx: ProbeContext) -> u32 {
    let _ = key_init(&ctx);
    0
}

/// The program's entry point: watch this process's sockets from before its first connection.
#[uprobe]
pub fn aead_start(_ctx: ProbeContext) -> u32 {
    if let Some(id) = caller() {
        track(id);
    }
    0
}

/// `sys_enter_read` and `sys_enter_recvfrom` (fd, buf, count at the same offsets).
#[tracepoint]
pub fn aead_sys_read(ctx: TracePointContext) -> u32 {
    let _ = sys_read(&ctx);
    0
}

/// `sys_enter_write` and `sys_enter_sendto` (fd, buf, count).
#[tracepoint]
pub fn aead_sys_write(ctx: TracePointContext) -> u32 {
    let _ = sys_write(&ctx, false);
    0
}

/// `sys_enter_writev` (fd, iov, iovcnt).
#[tracepoint]
pub fn aead_sys_writev(ctx: TracePointContext) -> u32 {
    let _ = sys_write(&ctx, true);
    0
}

#[tracepoint]
pub fn aead_sys_close(ctx: TracePointContext) -> u32 {
    let _ = sys_close(&ctx);
    0
}

#[inline(always)]
fn key(id: u64, v: u64) -> ConnKey {
    ConnKey { tgid: (id >> 32) as u32, _pad: 0, conn: v }
}

/// Reads `N` u64s of user memory.
#[inline(always)]
fn read_user<const N: usize>(addr: u64) -> Result<[u64; N], i64> {
    let mut v = [0u64; N];
    // SAFETY: the checked helper writes at most size_of_val(&v) bytes into `v`.
    let r = unsafe { bpf_probe_read_user(v.as_mut_ptr().cast(), (N * 8) as u32, addr as *const _) };
    if r < 0 { Err(r) } else { Ok(v) }
}

#[inline(always)]
fn read_byte(addr: u64) -> Result<u8, i64> {
    let mut b = 0u8;
    // SAFETY: reads one byte through the checked helper.
    let r = unsafe { bpf_probe_read_user((&mut b as *mut u8).cast(), 1, addr as *const _) };
    if r < 0 { Err(r) } else { Ok(b) }
}

/// The stack arguments after the six register ones: at a function's first instruction `[rsp]` is
/// the return address, so argument 7 + k is at `rsp + 8 + 8k`.
#[inline(always)]
fn stack_args<const N: usize>(ctx: &ProbeContext) -> Result<[u64; N], i64> {
    // SAFETY: for a uprobe the context is the thread's saved user registers.
    let rsp = unsafe { (*ctx.regs).rsp };
    read_user::<N>(rsp + 8)
}

/// Classifies a call by its additional data; `sealing` says which way `in_len` relates to the
/// record length (sealing adds the tag, opening's input includes it).
#[inline(always)]
fn classify(ad: u64, ad_len: u64, in_len: u64, sealing: bool) -> Option<Record> {
    let mut a = [0u8; 13];
    let n = match ad_len {
        5 => 5u32,
        13 => 13u32,
        _ => return None,
    };
    // SAFETY: n <= 13, the size of `a`.
    if unsafe { bpf_probe_read_user(a.as_mut_ptr().cast(), n, ad as *const _) } < 0 {
        return None;
    }
    if n == 5 {
        let len = u64::from(u16::from_be_bytes([a[3], a[4]]));
        let want = if sealing { in_len + TAG } else { in_len };
        (a[0] == APP_DATA && a[1] == 3 && a[2] == 3 && len == want).then_some(Record::Tls13)
    } else {
        let len = u64::from(u16::from_be_bytes([a[11], a[12]]));
        let want = if sealing { in_len } else { in_len.wrapping_sub(TAG) };
        (a[9] == 3 && a[10] == 3 && len == want).then_some(Record::Tls12(a[8]))
    }
}

/// The connection id of a socket of this process, made on first sight.
#[inline(always)]
fn sock_of(id: u64, fd: u64) -> Result<u64, i64> {
    let k = key(id, fd);
    if let Some(s) = FD_SOCK.get_ptr(&k) {
        // SAFETY: map value pointer valid for this program run.
        return Ok(unsafe { *s });
    }
    // SAFETY: no preconditions.
    let s = unsafe { bpf_ktime_get_ns() } | SOCK_BIT;
    FD_SOCK.insert(&k, &s, 0).map_err(i64::from)?;
    Ok(s)
}

#[inline(always)]
fn track(id: u64) {
    let tgid = (id >> 32) as u32;
    if AEAD_TRACKED.get_ptr(&tgid).is_none() {
        let _ = AEAD_TRACKED.insert(&tgid, &1, 0);
    }
}

#[inline(always)]
fn tracked(id: u64) -> bool {
    (id >> 32) as u32 != globals::self_tgid() && AEAD_TRACKED.get_ptr(&((id >> 32) as u32)).is_some()
}

fn seal(ctx: &ProbeContext, scatter: bool) -> Result<(), i64> {
    let id = caller().ok_or(0i64)?;
    track(id);
    let actx: u64 = ctx.arg(0).ok_or(0i64)?;
    let out: u64 = ctx.arg(1).ok_or(0i64)?;
    let (input, in_len, ad, ad_len) = if scatter {
        let a = stack_args::<7>(ctx)?;
        (a[1], a[2], a[5], a[6])
    } else {
        let a = stack_args::<4>(ctx)?;
        (a[0], a[1], a[2], a[3])
    };
    let rec = classify(ad, ad_len, in_len, true).ok_or(0i64)?;
    // The header the record goes out with, and where: TLS 1.2 GCM (scatter) keeps an 8-byte
    // explicit nonce between the header and `out`.
    let (typ, wire, before) = match rec {
        Record::Tls13 => (APP_DATA, in_len + TAG, 5u8),
        Record::Tls12(t) if scatter => (t, in_len + 8 + TAG, 13u8),
        Record::Tls12(t) => (t, in_len + TAG, 5u8),
    };
    let header = [typ, 3, 3, (wire >> 8) as u8, wire as u8];
    let sealed = Sealed { ctx: actx, header, before, _pad: [0; 2] };
    let _ = SEALED.insert(&key(id, out), &sealed, 0);

    let len = match rec {
        Record::Tls13 => {
            if in_len == 0 || read_byte(input + in_len - 1)? != APP_DATA {
                return Ok(());
            }
            in_len - 1
        }
        Record::Tls12(APP_DATA) => in_len,
        Record::Tls12(_) => return Ok(()),
    };
    if len == 0 {
        return Ok(());
    }
    let Some(sock) = CTX_SOCK.get_ptr(&key(id, actx)) else {
        count_loss(LossSlot::AeadUnbound);
        return Ok(());
    };
    // SAFETY: map value pointer valid for this program run.
    let sock = unsafe { *sock };
    let call = TlsCall { conn: sock, buf: input, len_ptr: 0, func: TlsFunc::AeadSeal, flags: 0, _pad: [0; 2], target: cookie(ctx) };
    emit(id, &call, Direction::Write, len)
}

fn open(ctx: &ProbeContext) -> Result<(), i64> {
    let id = caller().ok_or(0i64)?;
    track(id);
    let actx: u64 = ctx.arg(0).ok_or(0i64)?;
    let out: u64 = ctx.arg(1).ok_or(0i64)?;
    let out_len: u64 = ctx.arg(2).ok_or(0i64)?;
    let [input, in_len, ad, ad_len] = stack_args::<4>(ctx)?;
    let flags = match classify(ad, ad_len, in_len, false).ok_or(0i64)? {
        Record::Tls13 => TLS13,
        Record::Tls12(APP_DATA) => 0u8,
        Record::Tls12(_) => return Ok(()),
    };
    // The record ends inside what this thread's last read asked for: that read's socket.
    // Otherwise (a library that copies records out of its read buffer) the key's binding.
    let end = input + in_len;
    let from_read = LAST_READ.get_ptr(&id).and_then(|r| {
        // SAFETY: map value pointer valid for this program run.
        let r = unsafe { &*r };
        (r.buf < end && end <= r.buf + r.count).then_some(r.fd)
    });
    // 0 = unbound: counted at return, and only if the record turns out to be application data
    // (a TLS 1.3 record's type is only known once it is opened).
    let sock = match from_read {
        Some(fd) => sock_of(id, fd)?,
        // SAFETY: map value pointer valid for this program run.
        None => CTX_SOCK.get_ptr(&key(id, actx)).map_or(0, |s| unsafe { *s }),
    };
    let call = TlsCall { conn: sock, buf: out, len_ptr: out_len, func: TlsFunc::AeadOpen, flags, _pad: [0; 2], target: cookie(ctx) };
    OPENS.insert(&id, &call, 0).map_err(i64::from)
}

fn open_ret(ctx: &RetProbeContext) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: the value is copied out before the entry is removed.
    let call = unsafe { *OPENS.get(&id).ok_or(0i64)? };
    let _ = OPENS.remove(&id);
    let rc: i32 = ctx.ret();
    if rc != 1 {
        return Ok(());
    }
    let Ok([n]) = read_user::<1>(call.len_ptr) else {
        count_loss(LossSlot::TlsRead);
        return Ok(());
    };
    let len = if call.flags == TLS13 { unpad(call.buf, n)? } else { n };
    if len == 0 {
        return Ok(());
    }
    if call.conn == 0 {
        count_loss(LossSlot::AeadUnbound);
        return Ok(());
    }
    emit(id, &call, Direction::Read, len)
}

/// TLS 1.3 plaintext is content ‖ type ‖ zeros: the content's length if the type is
/// application data, else 0.
#[inline(always)]
fn unpad(buf: u64, n: u64) -> Result<u64, i64> {
    let k = if n < PAD_SCAN as u64 { n as usize } else { PAD_SCAN };
    if k == 0 {
        return Ok(0);
    }
    let mut tail = [0u8; PAD_SCAN];
    // SAFETY: 0 < k <= PAD_SCAN, the size of `tail`.
    if unsafe { bpf_probe_read_user(tail.as_mut_ptr().cast(), k as u32, (buf + n - k as u64) as *const _) } < 0 {
        count_loss(LossSlot::TlsRead);
        return Ok(0);
    }
    let mut i = k;
    while i > 0 {
        i -= 1;
        let b = tail[i & (PAD_SCAN - 1)];
        if b != 0 {
            let pos = n - (k - i) as u64;
            return Ok(if b == APP_DATA { pos } else { 0 });
        }
    }
    count_loss(LossSlot::Tls13Padding);
    Ok(0)
}

fn key_init(ctx: &ProbeContext) -> Result<(), i64> {
    let id = caller().ok_or(0i64)?;
    track(id);
    let actx: u64 = ctx.arg(0).ok_or(0i64)?;
    let k = key(id, actx);
    let fd = LAST_READ.get_ptr(&id).map(|r| {
        // SAFETY: map value pointer valid for this program run.
        unsafe { (*r).fd }
    });
    match fd {
        Some(fd) => {
            let s = sock_of(id, fd)?;
            CTX_SOCK.insert(&k, &s, 0).map_err(i64::from)
        }
        // The address may be a freed key's: forget that binding.
        None => CTX_SOCK.remove(&k).map_err(i64::from),
    }
}

/// Offsets in the syscall tracepoint records: common fields, `__syscall_nr`, then one u64 per
/// argument.
const ARG0: usize = 16;
const ARG1: usize = 24;
const ARG2: usize = 32;

#[inline(always)]
fn args3(ctx: &TracePointContext) -> Result<(u64, u64, u64), i64> {
    // SAFETY: fixed offsets of every sys_enter record with at least three arguments.
    unsafe { Ok((ctx.read_at(ARG0)?, ctx.read_at(ARG1)?, ctx.read_at(ARG2)?)) }
}

fn sys_read(ctx: &TracePointContext) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    if !tracked(id) {
        return Ok(());
    }
    let (fd, buf, count) = args3(ctx)?;
    LAST_READ.insert(&id, &LastRead { fd, buf, count }, 0).map_err(i64::from)
}

fn sys_write(ctx: &TracePointContext, vectored: bool) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    if !tracked(id) {
        return Ok(());
    }
    let (fd, buf, count) = args3(ctx)?;
    if !vectored {
        return bind_sent(id, fd, buf);
    }
    let n = if count < MAX_IOV as u64 { count as usize } else { MAX_IOV };
    let mut i = 0;
    while i < MAX_IOV {
        if i >= n {
            break;
        }
        // struct iovec { void *base; size_t len; }
        if let Ok([base, _]) = read_user::<2>(buf + (i as u64) * 16) {
            let _ = bind_sent(id, fd, base);
        }
        i += 1;
    }
    Ok(())
}

/// A write starting at `base`: if a record sealed in place sits right after its header there,
/// that record's key belongs to this socket.
#[inline(always)]
fn bind_sent(id: u64, fd: u64, base: u64) -> Result<(), i64> {
    for before in [5u64, 13] {
        let k = key(id, base + before);
        let Some(s) = SEALED.get_ptr(&k) else { continue };
        // SAFETY: map value pointer valid for this program run.
        let s = unsafe { *s };
        if u64::from(s.before) != before {
            continue;
        }
        let mut h = [0u8; 5];
        // SAFETY: reads 5 bytes into `h` through the checked helper.
        if unsafe { bpf_probe_read_user(h.as_mut_ptr().cast(), 5, base as *const _) } < 0 || h != s.header {
            continue;
        }
        let _ = SEALED.remove(&k);
        let sock = sock_of(id, fd)?;
        return CTX_SOCK.insert(&key(id, s.ctx), &sock, 0).map_err(i64::from);
    }
    Ok(())
}

fn sys_close(ctx: &TracePointContext) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    if !tracked(id) {
        return Ok(());
    }
    // SAFETY: fixed offset of the first argument.
    let fd: u64 = unsafe { ctx.read_at(ARG0)? };
    let k = key(id, fd);
    // SAFETY: map value pointer valid for this program run.
    let sock = unsafe { *FD_SOCK.get_ptr(&k).ok_or(0i64)? };
    let _ = FD_SOCK.remove(&k);
    close(id, sock)
}
