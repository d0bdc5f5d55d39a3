//! aws-lc's generic AEAD entry points (`EVP_AEAD_CTX_seal`, `_seal_scatter`, `_open`,
//! `_init_with_direction`, `_init`), which every TLS record that rustls's aws-lc-rs provider
//! protects passes through, found in a stripped static binary (Codex CLI) by what the code
//! records. No per-version table: only aws-lc's source file name and its public reason codes.
//! See docs/dev-notes/rustls.md, Q3.
//!
//! 1. The `__FILE__` string of aws-lc's AEAD layer, ".../crypto/fipsmodule/cipher/aead.c".
//! 2. Every instruction that loads its address (`lea r64, [rip + disp32]`, or `mov r32, imm32`
//!    in a non-PIE file), and the function around it from `.eh_frame` ([`frames`]).
//! 3. Each such function decoded from its first to its last byte. At each `call` or direct `jmp`
//!    (clang shares one call among error sites and jumps to it), the last constant put in each
//!    argument register: `ERR_put_error(ERR_LIB_CIPHER, 0, reason, __FILE__, __LINE__)` has the
//!    file in one argument, the reason in the one before and 30 in the first. The order in which
//!    the compiler loaded them does not matter (gcc loads the reason before the file).
//! 4. The reasons raised, among five that tell the functions apart (`cipher.h`), must be exactly:
//!
//!    | function | reasons |
//!    | --- | --- |
//!    | `EVP_AEAD_CTX_seal` | TOO_LARGE |
//!    | `EVP_AEAD_CTX_seal_scatter` | INVALID_OPERATION |
//!    | `EVP_AEAD_CTX_open` | BAD_DECRYPT (with `open_gather` inlined or not) |
//!    | `EVP_AEAD_CTX_init_with_direction` | UNSUPPORTED_KEY_SIZE |
//!    | `EVP_AEAD_CTX_init` | NO_DIRECTION_SET, with or without an inlined UNSUPPORTED_KEY_SIZE |
//!
//!    A function with more of them (an inlined copy in aws-lc's self-test, in the same unit) is
//!    none of these. Each must match exactly one function, which must begin a frame; otherwise
//!    that hook is not reported. A reference to the string outside any FDE means no hook at all:
//!    a function we cannot see could be the one we are looking for.
//!
//! An unstripped file (rustup) is read by name instead: `aws_lc_X_Y_Z_EVP_AEAD_CTX_seal`.

use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind, Register};
use memchr::{memchr_iter, memmem};
use object::{Object as _, ObjectSegment as _, ObjectSymbol as _};

use super::{Hook, HookKind, Strategy, elf, frames};

const ERR_LIB_CIPHER: u64 = 30;
const BAD_DECRYPT: u64 = 101;
const INVALID_OPERATION: u64 = 112;
const TOO_LARGE: u64 = 117;
const UNSUPPORTED_KEY_SIZE: u64 = 120;
const NO_DIRECTION_SET: u64 = 124;
/// The reasons that tell the functions apart; the others (BUFFER_TOO_SMALL, OUTPUT_ALIASES_INPUT,
/// CTRL_NOT_IMPLEMENTED) are shared and ignored.
const SIGNATURE: [u64; 5] = [
    TOO_LARGE,
    INVALID_OPERATION,
    BAD_DECRYPT,
    UNSUPPORTED_KEY_SIZE,
    NO_DIRECTION_SET,
];
/// Each hook and the signature reasons its function raises, exactly.
const RULES: &[(HookKind, &[&[u64]])] = &[
    (HookKind::AeadSeal, &[&[TOO_LARGE]]),
    (HookKind::AeadSealScatter, &[&[INVALID_OPERATION]]),
    (HookKind::AeadOpen, &[&[BAD_DECRYPT]]),
    (HookKind::AeadInit, &[&[UNSUPPORTED_KEY_SIZE]]),
    (
        HookKind::AeadInitDefault,
        &[
            &[NO_DIRECTION_SET],
            &[UNSUPPORTED_KEY_SIZE, NO_DIRECTION_SET],
        ],
    ),
];
/// The hook kinds this finder reports.
pub(super) const KINDS: [HookKind; 5] = [
    HookKind::AeadSeal,
    HookKind::AeadSealScatter,
    HookKind::AeadOpen,
    HookKind::AeadInit,
    HookKind::AeadInitDefault,
];
/// More functions than aead.c has: not the file we think it is.
const MAX_FUNCS: usize = 64;
/// The longest function decoded.
const MAX_FUNC: u64 = 1 << 20;

/// The AEAD entry points of the file, by name if it has a symbol table, else by structure.
/// `None` if it carries no aws-lc AEAD layer; the hooks found otherwise, each one unique.
pub(super) fn find(file: &object::File<'_>, data: &[u8]) -> Option<(Strategy, Vec<Hook>)> {
    let named = by_symbols(file);
    if !named.is_empty() {
        return Some((Strategy::Symtab, named));
    }
    structural(file, data).map(|hooks| (Strategy::Structural, hooks))
}

/// Whether hooks found here can carry traffic: a record sealed, one opened, and each new key.
pub(super) fn usable(hooks: &[Hook]) -> bool {
    let has = |k: HookKind| hooks.iter().any(|h| h.kind == k);
    (has(HookKind::AeadSeal) || has(HookKind::AeadSealScatter))
        && has(HookKind::AeadOpen)
        && (has(HookKind::AeadInit) || has(HookKind::AeadInitDefault))
}

/// From `.symtab`: `EVP_AEAD_CTX_seal` or aws-lc-sys's prefixed `aws_lc_0_38_0_EVP_AEAD_CTX_seal`.
/// A name defined twice (two aws-lc versions linked in) gives no hook.
pub(super) fn by_symbols(file: &object::File<'_>) -> Vec<Hook> {
    let mut hits: Vec<(HookKind, u64)> = Vec::new();
    for sym in file.symbols() {
        if !sym.is_definition() || sym.kind() != object::SymbolKind::Text {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        let base = match name.strip_prefix("aws_lc_") {
            Some(rest) => rest
                .split_once("_EVP_")
                .filter(|(v, _)| v.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
                .map(|(_, f)| f),
            None => name.strip_prefix("EVP_"),
        };
        let Some(kind) = base.and_then(|b| KINDS.into_iter().find(|k| k.name()[4..] == *b)) else {
            continue;
        };
        if let Some(offset) = elf::file_offset(file, sym.address()) {
            hits.push((kind, offset));
        }
    }
    KINDS
        .into_iter()
        .filter_map(|kind| {
            let mut it = hits.iter().filter(|h| h.0 == kind);
            match (it.next(), it.next()) {
                (Some(&(_, offset)), None) => Some(Hook { kind, offset }),
                _ => None,
            }
        })
        .collect()
}

/// A function that references aead.c, and the CIPHER reasons it raises there.
#[derive(Debug)]
struct Func {
    f: frames::Function,
    reasons: Vec<u64>,
}

/// By structure (the module's steps). `None` when the file has no aws-lc `aead.c` error site.
pub(super) fn structural(file: &object::File<'_>, data: &[u8]) -> Option<Vec<Hook>> {
    let strings = file_strings(file, data);
    if strings.is_empty() {
        return None;
    }
    let code: Vec<(u64, &[u8])> = file
        .segments()
        .filter(|s| matches!(s.flags(), object::SegmentFlags::Elf { p_flags } if p_flags & 1 != 0))
        .filter_map(|s| {
            let (off, len) = s.file_range();
            let start = usize::try_from(off).ok()?;
            let end = start.checked_add(usize::try_from(len).ok()?)?;
            Some((s.address(), data.get(start..end)?))
        })
        .collect();
    let refs: Vec<u64> = code
        .iter()
        .flat_map(|&(addr, bytes)| references(addr, bytes, &strings))
        .collect();
    if refs.is_empty() {
        return None;
    }
    let fdes = frames::Fdes::of(file);
    let mut funcs: Vec<Func> = Vec::new();
    for r in refs {
        // A site we cannot place in a function might be the one we look for: no guess at all.
        let f = fdes.as_ref().and_then(|t| t.containing(r));
        let Some(f) = f.filter(|f| f.end - f.start <= MAX_FUNC) else {
            tracing::debug!(site = r, "aead.c reference outside any FDE");
            return Some(Vec::new());
        };
        if funcs.iter().any(|g| g.f.start == f.start) {
            continue;
        }
        if funcs.len() == MAX_FUNCS {
            return Some(Vec::new());
        }
        let bytes = elf::bytes_at(file, data, f.start, f.end - f.start)?;
        let mut reasons = error_reasons(bytes, f.start, &strings);
        reasons.sort_unstable();
        reasons.dedup();
        funcs.push(Func { f, reasons });
    }
    tracing::debug!(?funcs, "aws-lc aead.c error sites by function");
    let mut hooks = Vec::new();
    for &(kind, shapes) in RULES {
        let mut it = funcs.iter().filter(|g| {
            let sig: Vec<u64> = SIGNATURE
                .into_iter()
                .filter(|r| g.reasons.contains(r))
                .collect();
            shapes
                .iter()
                .any(|s| s.len() == sig.len() && s.iter().all(|r| sig.contains(r)))
        });
        let (Some(g), None) = (it.next(), it.next()) else {
            continue;
        };
        if !g.f.is_entry {
            continue;
        }
        if let Some(offset) = elf::file_offset(file, g.f.start) {
            hooks.push(Hook { kind, offset });
        }
    }
    Some(hooks)
}

/// Addresses at which code may refer to aws-lc's aead.c `__FILE__`: the start of each string
/// ending in "crypto/fipsmodule/cipher/aead.c", and each position after a '/' inside it (the
/// linker may merge a shorter path into the tail of a longer one).
fn file_strings(file: &object::File<'_>, data: &[u8]) -> Vec<u64> {
    // Reversed in guard's own binary, so that guard does not look like aws-lc to itself.
    let name: Vec<u8> = b"\0c.daea/rehpic/eludomspif/otpyrc"
        .iter()
        .rev()
        .copied()
        .collect();
    let mut out = Vec::new();
    for at in memmem::find_iter(data, &name) {
        let start = data[..at]
            .iter()
            .rposition(|&b| b == 0)
            .map_or(0, |p| p + 1);
        for p in start..=at {
            if (p == start || data[p - 1] == b'/')
                && let Some(v) = elf::vaddr_of(file, p as u64)
            {
                out.push(v);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Instructions in `bytes` (at `addr`) that load one of `targets`: `lea r64, [rip + disp32]`,
/// and `mov r32, imm32` for a file linked below 4 GiB.
fn references(addr: u64, bytes: &[u8], targets: &[u64]) -> Vec<u64> {
    let (Some(&lo), Some(&hi)) = (targets.first(), targets.last()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for at in memchr_iter(0x8d, bytes) {
        let (Some(&rex), Some(&modrm), Some(d)) = (
            at.checked_sub(1).and_then(|i| bytes.get(i)),
            bytes.get(at + 1),
            bytes.get(at + 2..at + 6),
        ) else {
            continue;
        };
        if rex & 0xfb != 0x48 || modrm & 0xc7 != 0x05 {
            continue;
        }
        let next = addr + at as u64 + 6;
        let t = next.wrapping_add_signed(i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])));
        if (lo..=hi).contains(&t) && targets.binary_search(&t).is_ok() {
            out.push(addr + at as u64 - 1);
        }
    }
    for &t in targets {
        let Ok(abs) = u32::try_from(t) else { continue };
        for at in memmem::find_iter(bytes, &abs.to_le_bytes()) {
            if at
                .checked_sub(1)
                .is_some_and(|i| (0xb8..=0xbf).contains(&bytes[i]))
            {
                let rex = at >= 2 && bytes[at - 2] == 0x41;
                out.push(addr + (at - 1 - usize::from(rex)) as u64);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Position of a register among the SysV integer argument registers, and whether this form of it
/// holds a whole constant (32 or 64 bits; an 8- or 16-bit write only spoils it).
fn arg_index(r: Register) -> Option<(usize, bool)> {
    use Register as R;
    const FORMS: [[Register; 4]; 6] = [
        [R::RDI, R::EDI, R::DI, R::DIL],
        [R::RSI, R::ESI, R::SI, R::SIL],
        [R::RDX, R::EDX, R::DX, R::DL],
        [R::RCX, R::ECX, R::CX, R::CL],
        [R::R8, R::R8D, R::R8W, R::R8L],
        [R::R9, R::R9D, R::R9W, R::R9L],
    ];
    FORMS.iter().enumerate().find_map(|(i, forms)| {
        let form = forms.iter().position(|&f| f == r)?;
        Some((i, form < 2))
    })
}

/// The reasons of the `ERR_put_error(ERR_LIB_CIPHER, …, reason, file, line)` calls (or jumps to a
/// shared call) in one function's code, decoded linearly from its entry. Only constants count:
/// any other write to an argument register forgets what it held, and so do calls and returns.
fn error_reasons(code: &[u8], ip: u64, files: &[u64]) -> Vec<u64> {
    let mut dec = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut regs: [Option<u64>; 6] = [None; 6];
    let mut out = Vec::new();
    while dec.can_decode() {
        let insn = dec.decode();
        match insn.mnemonic() {
            Mnemonic::Call | Mnemonic::Jmp | Mnemonic::Ret => {
                let direct = insn.op0_kind() == OpKind::NearBranch64;
                if direct
                    && insn.mnemonic() != Mnemonic::Ret
                    && let Some(i) = regs
                        .iter()
                        .position(|r| r.is_some_and(|v| files.binary_search(&v).is_ok()))
                    && i >= 2
                    && regs[0] == Some(ERR_LIB_CIPHER)
                    && let Some(reason) = regs[i - 1]
                {
                    out.push(reason);
                }
                regs = [None; 6];
            }
            Mnemonic::Cmp | Mnemonic::Test | Mnemonic::Push | Mnemonic::Bt => {}
            m => {
                if insn.op_count() == 0 || insn.op0_kind() != OpKind::Register {
                    continue;
                }
                let dst = insn.op0_register();
                let Some((i, wide)) = arg_index(dst) else {
                    continue;
                };
                regs[i] = match (m, insn.op1_kind()) {
                    (
                        Mnemonic::Mov,
                        OpKind::Immediate32 | OpKind::Immediate64 | OpKind::Immediate32to64,
                    ) if wide => Some(insn.immediate(1)),
                    (Mnemonic::Lea, OpKind::Memory) if insn.is_ip_rel_memory_operand() => {
                        Some(insn.ip_rel_memory_address())
                    }
                    (Mnemonic::Xor, OpKind::Register) if wide && insn.op1_register() == dst => {
                        Some(0)
                    }
                    _ => None,
                };
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_in_either_order_and_through_a_shared_call() {
        let file = 0x2000u64;
        // gcc: mov edx,0x75; mov edi,0x1e; lea rcx,[rip+X]; call rel32
        let mut gcc = vec![0xba, 0x75, 0, 0, 0, 0xbf, 0x1e, 0, 0, 0, 0x48, 0x8d, 0x0d];
        let lea_next = 0x1000u64 + 17;
        gcc.extend_from_slice(&((file - lea_next) as i32).to_le_bytes());
        gcc.extend_from_slice(&[0xe8, 0, 0, 0, 0]);
        assert_eq!(error_reasons(&gcc, 0x1000, &[file]), [TOO_LARGE]);
        // clang: lea rcx,[rip+X]; mov edi,0x1e; xor esi,esi; mov edx,0x70; jmp rel8
        let mut clang = vec![0x48, 0x8d, 0x0d];
        clang.extend_from_slice(&((file - 0x1007) as i32).to_le_bytes());
        clang.extend_from_slice(&[0xbf, 0x1e, 0, 0, 0, 0x31, 0xf6, 0xba, 0x70, 0, 0, 0]);
        clang.extend_from_slice(&[0xeb, 0x00]);
        assert_eq!(error_reasons(&clang, 0x1000, &[file]), [INVALID_OPERATION]);
        // The reason register overwritten by a non-constant before the call: nothing.
        let mut clobbered = clang.clone();
        clobbered.truncate(clobbered.len() - 2);
        clobbered.extend_from_slice(&[0x89, 0xc2, 0xeb, 0x00]); // mov edx, eax; jmp
        assert!(error_reasons(&clobbered, 0x1000, &[file]).is_empty());
        // Another library's error (EDI != 30): nothing.
        let mut other = clang.clone();
        other[8] = 0x10;
        assert!(error_reasons(&other, 0x1000, &[file]).is_empty());
        assert_eq!(
            references(0x1000, &clang, &[file]),
            [0x1000],
            "the lea is a reference"
        );
    }
}
