//! Strategy 4, structural, for OpenSSL 3 linked statically into a stripped binary (the Rust addon
//! of Copilot CLI: reqwest + native-tls + `openssl` with OpenSSL vendored).
//!
//! OpenSSL 3 reports errors with `ERR_raise(lib, reason)`, which expands to
//! `ERR_new(); ERR_set_debug(OPENSSL_FILE, OPENSSL_LINE, OPENSSL_FUNC); ERR_set_error(lib, reason,
//! NULL)`, and `OPENSSL_FUNC` is C99's `__func__` (also with `no-filenames`). So every function
//! that raises an error loads the address of its own name as a string into RDX, the third
//! argument of `ERR_set_debug`, then calls `ERR_set_error` with `ERR_LIB_SSL` (20) in EDI and the
//! reason in ESI. `__func__` is lexical: an inlined function still passes its own name.
//!
//! Function bounds come from `.eh_frame` ([`Functions`]). The rules, each of which must give
//! exactly one function (a wrong guess must never feed garbage into the pipeline):
//!
//! - `SSL_write` / `SSL_read`: the function holding the error sites named "SSL_write" /
//!   "SSL_read", one of them raising `SSL_R_BAD_LENGTH` (271, `num < 0`). They are often absent:
//!   the `openssl` crate calls the `_ex` functions and the linker drops what nobody calls.
//! - `ssl_read_internal` / `ssl_write_internal`: the function holding the sites of that name
//!   (never hooked themselves: `ssl_write_internal` gained a `flags` argument in 3.3, which moved
//!   `written`).
//! - `SSL_read_ex`: the thin function (one call or tail jump, nothing else that branches) that
//!   hands all four of its arguments unchanged to `ssl_read_internal`.
//! - `SSL_write_ex`: if `ssl_write_internal` raises `SSL_R_UNSUPPORTED_WRITE_FLAG` (412) it takes
//!   `flags`, and `SSL_write_ex` is the thin function that passes its first three arguments, 0 as
//!   the fourth and its own fourth (`written`) as the fifth, to `ssl_write_internal` or to
//!   `SSL_write_ex2` (itself a thin four-plus-one passthrough). Otherwise it is the thin function
//!   that passes its four arguments unchanged to `ssl_write_internal`.
//!
//! None of the hooked functions may call another: SSL_read and SSL_read_ex both call
//! `ssl_read_internal`, never each other, so every byte is seen once.

use std::collections::BTreeMap;

use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind, Register};

use super::{
    Found, Hook, HookKind, Library, Strategy,
    code::{self, Code},
    elf,
    flow::{self, Forward, Src},
    frames::Functions,
};

const ERR_LIB_SSL: u32 = 20;
const SSL_R_BAD_LENGTH: u32 = 271;
const SSL_R_UNSUPPORTED_WRITE_FLAG: u32 = 412;
/// The longest body a thin wrapper may have.
const THIN: u64 = 96;

/// The `__func__` names that anchor the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Name {
    SslRead,
    SslWrite,
    ReadInternal,
    WriteInternal,
}

const NAMES: [(Name, &str); 4] = [
    (Name::SslRead, "SSL_read"),
    (Name::SslWrite, "SSL_write"),
    (Name::ReadInternal, "ssl_read_internal"),
    (Name::WriteInternal, "ssl_write_internal"),
];

/// One `ERR_raise(ERR_LIB_SSL, reason)` in a function named by its `__func__`.
#[derive(Clone, Copy, Debug)]
struct Site {
    at: u64,
    name: Name,
    set_debug: u64,
    set_error: u64,
    reason: Option<u32>,
}

type Range = (u64, u64);

pub(super) fn find(file: &object::File<'_>, data: &[u8]) -> Option<Found> {
    let mut strings: Vec<(u64, Name)> = NAMES
        .iter()
        .flat_map(|&(n, s)| {
            code::string_addrs(file, data, s)
                .into_iter()
                .map(move |a| (a, n))
        })
        .collect();
    strings.sort_unstable();
    if strings.is_empty() {
        return None;
    }
    let funcs = Functions::of(file)?;
    let code = code::segments(file, data);
    let sites = error_sites(&code, &funcs, &strings)?;
    tracing::debug!(?sites, "OpenSSL error sites");

    // Functions holding each name's sites.
    let mut holders: BTreeMap<Name, Vec<Range>> = BTreeMap::new();
    for s in &sites {
        let Some(f) = funcs.containing(s.at) else {
            // A site outside every known function: the table does not describe this code.
            return None;
        };
        let v = holders.entry(s.name).or_default();
        if !v.contains(&f) {
            v.push(f);
        }
    }
    let one = |v: &[Range]| match v {
        [f] => Some(*f),
        _ => None,
    };
    let holding = |n: Name| holders.get(&n).map_or(&[][..], Vec::as_slice);
    let raises = |f: Range, n: Name, reason: u32| {
        sites
            .iter()
            .any(|s| s.name == n && s.reason == Some(reason) && (f.0..f.1).contains(&s.at))
    };
    let public = |n: Name| one(holding(n)).filter(|&f| raises(f, n, SSL_R_BAD_LENGTH));
    let ssl_read = public(Name::SslRead);
    let ssl_write = public(Name::SslWrite);
    // The internal function, not a public one it was inlined into.
    let internal = |n: Name, public: Name| {
        let v: Vec<Range> = holding(n)
            .iter()
            .copied()
            .filter(|f| !holding(public).contains(f))
            .collect();
        one(&v)
    };
    let read_internal = internal(Name::ReadInternal, Name::SslRead);
    let write_internal = internal(Name::WriteInternal, Name::SslWrite);

    let thin: Vec<(Range, Forward)> = funcs
        .iter()
        .filter(|&(s, e)| e - s <= THIN)
        .filter_map(|f| Some((f, flow::forward(code::range(&code, f.0, f.1)?, f.0)?)))
        .collect();
    let passes = |fw: &Forward, want: &[Src]| fw.args[..want.len()] == *want;
    let arg = Src::Arg;
    let read_ex = read_internal.and_then(|r| {
        let v: Vec<Range> = thin
            .iter()
            .filter(|(_, fw)| fw.target == r.0 && passes(fw, &[arg(0), arg(1), arg(2), arg(3)]))
            .map(|(f, _)| *f)
            .collect();
        one(&v)
    });
    let write_ex = write_internal.and_then(|w| {
        let all5 = [arg(0), arg(1), arg(2), arg(3), arg(4)];
        let ex2: Vec<u64> = thin
            .iter()
            .filter(|(_, fw)| fw.target == w.0 && passes(fw, &all5))
            .map(|(f, _)| f.0)
            .collect();
        let shifted: Vec<Range> = thin
            .iter()
            .filter(|(_, fw)| {
                (fw.target == w.0 || ex2.contains(&fw.target))
                    && passes(fw, &[arg(0), arg(1), arg(2), Src::Const(0), arg(3)])
            })
            .map(|(f, _)| *f)
            .collect();
        if raises(w, Name::WriteInternal, SSL_R_UNSUPPORTED_WRITE_FLAG) {
            one(&shifted)
        } else if shifted.is_empty() {
            let v: Vec<Range> = thin
                .iter()
                .filter(|(_, fw)| fw.target == w.0 && passes(fw, &all5[..4]))
                .map(|(f, _)| *f)
                .collect();
            one(&v)
        } else {
            // Evidence both ways about `flags`: no guess.
            None
        }
    });
    tracing::debug!(
        ?ssl_read,
        ?ssl_write,
        ?read_internal,
        ?write_internal,
        ?read_ex,
        ?write_ex,
        "OpenSSL functions by structure"
    );

    let chosen: Vec<(HookKind, Range)> = [
        (HookKind::SslWrite, ssl_write),
        (HookKind::SslRead, ssl_read),
        (HookKind::SslWriteEx, write_ex),
        (HookKind::SslReadEx, read_ex),
    ]
    .into_iter()
    .filter_map(|(k, f)| Some((k, f?)))
    .collect();
    // Each must begin where a call lands (not a piece split out of a function).
    if let Some((k, f)) = chosen.iter().find(|(_, f)| !funcs.is_entry(f.0)) {
        tracing::debug!(?k, ?f, "not a function entry by its unwind rule");
        return None;
    }
    let has = |ks: [HookKind; 2]| chosen.iter().any(|(k, _)| ks.contains(k));
    if !has([HookKind::SslWrite, HookKind::SslWriteEx])
        || !has([HookKind::SslRead, HookKind::SslReadEx])
    {
        return None;
    }
    // No hooked function may branch to another, or its bytes would be seen twice.
    for (_, f) in &chosen {
        let targets = flow::branch_targets(code::range(&code, f.0, f.1)?, f.0);
        if chosen.iter().any(|(_, g)| g != f && targets.contains(&g.0)) {
            return None;
        }
    }
    let mut hooks = Vec::new();
    for (kind, f) in chosen {
        hooks.push(Hook {
            kind,
            offset: elf::file_offset(file, f.0)?,
        });
    }
    Some(Found {
        library: Library::Openssl,
        strategy: Strategy::Structural,
        hooks,
        also: None,
    })
}

/// Every `ERR_raise(ERR_LIB_SSL, ..)` whose `__func__` is one of `strings` (sorted). None when the
/// sites disagree on which functions are `ERR_set_debug` and `ERR_set_error`: then we do not
/// read this code's shape right.
fn error_sites(code: &[Code<'_>], funcs: &Functions, strings: &[(u64, Name)]) -> Option<Vec<Site>> {
    let addrs: Vec<u64> = strings.iter().map(|s| s.0).collect();
    let mut sites = Vec::new();
    for c in code {
        for (at, target) in code::address_loads(c, &addrs) {
            let Some(name) = strings.iter().find(|s| s.0 == target).map(|s| s.1) else {
                continue;
            };
            let Some(func) = funcs.containing(at) else {
                continue;
            };
            if let Some(s) = raise_at(c, func, at, name) {
                sites.push(s);
            }
        }
    }
    let first = sites.first()?;
    let agree = sites
        .iter()
        .all(|s| s.set_debug == first.set_debug && s.set_error == first.set_error);
    agree.then_some(sites)
}

/// Decodes from the load of the `__func__` string at `ip` in function `func`: it must go to RDX,
/// then come a direct call (`ERR_set_debug`) and the next direct call or tail jump
/// (`ERR_set_error`) with `ERR_LIB_SSL` in EDI. Jumps inside the function are followed: a
/// compiler may share the end of the sequence among the sites of a function.
fn raise_at(c: &Code<'_>, func: (u64, u64), ip: u64, name: Name) -> Option<Site> {
    const STEPS: usize = 24;
    let decoder_at = |ip: u64| {
        let bytes = c.range(ip, func.1)?;
        Some(Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE))
    };
    let mut dec = decoder_at(ip)?;
    let load = dec.decode();
    if !matches!(load.mnemonic(), Mnemonic::Lea | Mnemonic::Mov)
        || !matches!(load.op0_register(), Register::RDX | Register::EDX)
    {
        return None;
    }
    let writes = |insn: &iced_x86::Instruction, regs: &[Register]| {
        insn.op_count() > 0
            && insn.op0_kind() == OpKind::Register
            && regs.contains(&insn.op0_register())
            && !matches!(insn.mnemonic(), Mnemonic::Test | Mnemonic::Cmp)
    };
    let direct = |insn: &iced_x86::Instruction| {
        insn.op_count() == 1 && insn.op0_kind() == OpKind::NearBranch64
    };
    let inside = |t: u64| (func.0..func.1).contains(&t);
    let mut set_debug = None;
    let (mut lib, mut reason) = (None, None);
    for _ in 0..STEPS {
        if !dec.can_decode() {
            return None;
        }
        let insn = dec.decode();
        let m = insn.mnemonic();
        if insn.is_invalid() || m == Mnemonic::Ret {
            return None;
        }
        if m == Mnemonic::Jmp && direct(&insn) && inside(insn.near_branch_target()) {
            dec = decoder_at(insn.near_branch_target())?;
            continue;
        }
        if matches!(m, Mnemonic::Call | Mnemonic::Jmp) && direct(&insn) {
            let Some(debug) = set_debug else {
                if m == Mnemonic::Jmp {
                    return None;
                }
                set_debug = Some(insn.near_branch_target());
                continue;
            };
            return (lib == Some(ERR_LIB_SSL)).then_some(Site {
                at: ip,
                name,
                set_debug: debug,
                set_error: insn.near_branch_target(),
                reason,
            });
        }
        // Any other branch: the path is not a straight ERR_raise.
        if direct(&insn) || matches!(m, Mnemonic::Call | Mnemonic::Jmp) {
            return None;
        }
        if set_debug.is_none() {
            if writes(
                &insn,
                &[Register::RDX, Register::EDX, Register::DX, Register::DL],
            ) {
                return None;
            }
            continue;
        }
        let imm = (m == Mnemonic::Mov && insn.op1_kind() == OpKind::Immediate32)
            .then(|| insn.immediate32());
        if writes(&insn, &[Register::EDI, Register::RDI]) {
            lib = imm;
        } else if writes(&insn, &[Register::ESI, Register::RSI]) {
            reason = imm;
        }
    }
    None
}
