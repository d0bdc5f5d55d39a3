//! Strategy 4, structural: BoringSSL's `SSL_write` and `SSL_read` in a stripped static binary
//! (Bun), found from what the code itself records. Every `OPENSSL_PUT_ERROR(SSL, reason)` calls
//! `ERR_put_error(ERR_LIB_SSL, 0, reason, __FILE__, __LINE__)`, so its call sites load the
//! address of the ".../ssl/ssl_lib.cc" string into RCX, 16 into EDI and the reason into EDX.
//! The reasons are public constants of `ssl.h`, stable across releases:
//!
//! - SSL_write: ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED (QUIC), SSL_R_UNINITIALIZED,
//!   SSL_R_SSL_HANDSHAKE_FAILURE and SSL_R_BAD_LENGTH (num < 0);
//! - SSL_read (with SSL_peek and ssl_read_impl inlined): the first three, never BAD_LENGTH.
//!
//! Function entries come from the call graph: the nearest direct-call target at or before the
//! sites that begins after inter-function padding. A file where the shapes are not each found
//! exactly once gets no hook: a wrong guess must never feed garbage into the pipeline.

use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind, Register};
use memchr::{memchr_iter, memmem};

use super::{
    Found, Hook, HookKind, Library, Strategy,
    code::{self, Code},
    elf,
};

const ERR_LIB_SSL: u32 = 16;
const SHOULD_NOT_HAVE_BEEN_CALLED: u32 = 64 | 2;
const UNINITIALIZED: u32 = 226;
const HANDSHAKE_FAILURE: u32 = 215;
const BAD_LENGTH: u32 = 111;
/// The farthest an error site may be from its function's entry.
const MAX_FUNC: u64 = 16 << 10;
/// How far from SSL_read's entry its call to the inlined-or-not read implementation may be.
const CALL_REACH: u64 = 1024;

pub(super) fn find(file: &object::File<'_>, data: &[u8]) -> Option<Found> {
    let code = code::segments(file, data);
    let mut strings = file_strings(file, data);
    strings.sort_unstable();
    strings.dedup();
    if strings.is_empty() {
        return None;
    }
    let mut sites: Vec<(u64, u32)> = code.iter().flat_map(|c| error_sites(c, &strings)).collect();
    sites.sort_unstable();
    let entries = entries_before(&code, &sites);
    // Reasons raised per function.
    let mut funcs: Vec<(u64, Vec<u32>)> = Vec::new();
    for (&(_, reason), entry) in sites.iter().zip(entries) {
        let Some(entry) = entry else { continue };
        match funcs.iter_mut().find(|f| f.0 == entry) {
            Some(f) => f.1.push(reason),
            None => funcs.push((entry, vec![reason])),
        }
    }
    tracing::debug!(?funcs, "BoringSSL error sites by function");
    let has = |rs: &[u32], want: &[u32]| want.iter().all(|w| rs.contains(w));
    let core = [
        SHOULD_NOT_HAVE_BEEN_CALLED,
        UNINITIALIZED,
        HANDSHAKE_FAILURE,
    ];
    let only = |pred: &dyn Fn(&[u32]) -> bool| {
        let mut it = funcs.iter().filter(|f| pred(&f.1));
        match (it.next(), it.next()) {
            (Some(f), None) => Some(f.0),
            _ => None,
        }
    };
    let write = only(&|rs| has(rs, &core) && rs.contains(&BAD_LENGTH))?;
    // The read path: SSL_read (or SSL_peek) raises the QUIC error and calls ssl_read_impl, which
    // raises the other two; the compiler may have inlined one into the other.
    let read = match only(&|rs| has(rs, &core) && !rs.contains(&BAD_LENGTH)) {
        Some(f) => f,
        None => {
            let inner = only(&|rs| has(rs, &core[1..]) && !rs.contains(&BAD_LENGTH))?;
            let callers: Vec<u64> = funcs
                .iter()
                .filter(|f| {
                    f.1.contains(&SHOULD_NOT_HAVE_BEEN_CALLED) && !f.1.contains(&BAD_LENGTH)
                })
                .filter(|f| {
                    // Up to the next function found, so a neighbour's calls are not counted.
                    let next = funcs
                        .iter()
                        .map(|g| g.0)
                        .filter(|&g| g > f.0)
                        .min()
                        .unwrap_or(u64::MAX);
                    calls_within(&code, f.0, CALL_REACH.min(next - f.0), inner)
                })
                .map(|f| f.0)
                .collect();
            match callers[..] {
                [one] => one,
                _ => return None,
            }
        }
    };
    let hooks = vec![
        Hook {
            kind: HookKind::SslWrite,
            offset: elf::file_offset(file, write)?,
        },
        Hook {
            kind: HookKind::SslRead,
            offset: elf::file_offset(file, read)?,
        },
    ];
    Some(Found {
        library: Library::Boringssl,
        strategy: Strategy::Structural,
        hooks,
        also: None,
    })
}

/// Addresses of the NUL-terminated strings ending in "/ssl/ssl_lib.cc" (BoringSSL's `__FILE__`).
fn file_strings(file: &object::File<'_>, data: &[u8]) -> Vec<u64> {
    // Reversed in guard's own binary, so that guard does not look like BoringSSL to itself.
    let name = super::markers::forward(b"\0cc.bil_lss/lss/");
    memmem::find_iter(data, &name)
        .filter_map(|at| {
            let start = data[..at]
                .iter()
                .rposition(|&b| b == 0)
                .map_or(0, |p| p + 1);
            elf::vaddr_of(file, start as u64)
        })
        .collect()
}

/// `ERR_put_error(ERR_LIB_SSL, [0,] reason, file, line)` call sites: (address, reason), from
/// every load of a `ssl_lib.cc` string (`strings` sorted).
fn error_sites(code: &Code<'_>, strings: &[u64]) -> Vec<(u64, u32)> {
    code::address_loads(code, strings)
        .into_iter()
        .filter_map(|(addr, _)| {
            let at = usize::try_from(addr - code.addr).ok()?;
            Some((addr, put_error_reason(code.bytes.get(at..)?, addr)?))
        })
        .collect()
}

/// Position of a register among the SysV integer argument registers.
fn arg_index(r: Register) -> Option<usize> {
    use Register as R;
    Some(match r {
        R::EDI | R::RDI => 0,
        R::ESI | R::RSI => 1,
        R::EDX | R::RDX => 2,
        R::ECX | R::RCX => 3,
        R::R8D | R::R8 => 4,
        R::R9D | R::R9 => 5,
        _ => return None,
    })
}

/// Decodes from the file-name load to the call. The file is one argument of the error call, the
/// reason the argument just before it (the compiler may have dropped the unused one), and the
/// library (ERR_LIB_SSL) the first.
fn put_error_reason(code: &[u8], ip: u64) -> Option<u32> {
    let mut dec = Decoder::with_ip(64, &code[..code.len().min(64)], ip, DecoderOptions::NONE);
    let first = dec.decode();
    let file_arg = arg_index(first.op0_register())?;
    let mut imm = [None; 6];
    for _ in 0..10 {
        if !dec.can_decode() {
            break;
        }
        let insn = dec.decode();
        match insn.mnemonic() {
            // The compiler may share one call among several sites and jump to it.
            Mnemonic::Call | Mnemonic::Jmp => {
                let reason = imm[file_arg.checked_sub(1)?]?;
                return (file_arg >= 2 && imm[0] == Some(ERR_LIB_SSL)).then_some(reason);
            }
            Mnemonic::Mov if insn.op1_kind() == OpKind::Immediate32 => {
                if let Some(i) = arg_index(insn.op0_register()) {
                    imm[i] = Some(insn.immediate32());
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether the code in `[from, from + reach)` has a direct call to `target`.
fn calls_within(code: &[Code<'_>], from: u64, reach: u64, target: u64) -> bool {
    code.iter().any(|c| {
        let Some(start) = from
            .checked_sub(c.addr)
            .and_then(|o| usize::try_from(o).ok())
        else {
            return false;
        };
        let Some(window) = c
            .bytes
            .get(start..c.bytes.len().min(start + reach as usize))
        else {
            return false;
        };
        memchr_iter(0xe8, window).any(|at| {
            window.get(at + 1..at + 5).is_some_and(|d| {
                let next = from + at as u64 + 5;
                next.wrapping_add_signed(i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])))
                    == target
            })
        })
    })
}

/// Whether offset `at` can begin a function: it follows padding (int3, nop) or an instruction
/// that never falls through (ret, jmp rel32, jmp rel8).
fn after_function_end(bytes: &[u8], at: usize) -> bool {
    let back = |n: usize| at.checked_sub(n).and_then(|i| bytes.get(i)).copied();
    matches!(back(1), Some(0xcc | 0xc3 | 0x90)) || back(5) == Some(0xe9) || back(2) == Some(0xeb)
}

/// For each site, the entry of its function: the highest direct-call target at or below it that
/// is 16-byte aligned and can begin a function.
fn entries_before(code: &[Code<'_>], sites: &[(u64, u32)]) -> Vec<Option<u64>> {
    let mut best: Vec<Option<u64>> = vec![None; sites.len()];
    for c in code {
        let end = c.addr + c.bytes.len() as u64;
        for at in memchr_iter(0xe8, c.bytes) {
            let Some(d) = c.bytes.get(at + 1..at + 5) else {
                continue;
            };
            let t = (c.addr + at as u64 + 5)
                .wrapping_add_signed(i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])));
            if t % 16 != 0 || t <= c.addr || t >= end {
                continue;
            }
            // Sites at or above t, and within reach of it.
            let first = sites.partition_point(|s| s.0 < t);
            let mut touched = false;
            for (i, s) in sites.iter().enumerate().skip(first) {
                if s.0 - t > MAX_FUNC {
                    break;
                }
                if best[i].is_some_and(|b| b >= t) {
                    continue;
                }
                if !touched {
                    if !after_function_end(c.bytes, (t - c.addr) as usize) {
                        break;
                    }
                    touched = true;
                }
                best[i] = Some(t);
            }
        }
    }
    best
}
