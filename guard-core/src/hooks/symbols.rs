//! Strategies 1 and 2: the OpenSSL API by name, in `.dynsym` (exported) or `.symtab` (a binary
//! that was not stripped).

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

use super::{Found, Hook, HookKind, Library, Strategy, elf};

const SSL: [HookKind; 5] = [
    HookKind::SslWrite,
    HookKind::SslRead,
    HookKind::SslWriteEx,
    HookKind::SslReadEx,
    HookKind::SslFree,
];

/// The SSL functions a file defines, from its dynamic symbols first, then its static ones.
pub(super) fn find(file: &object::File<'_>) -> Option<Found> {
    from(file, file.dynamic_symbols(), Strategy::Dynsym)
        .or_else(|| from(file, file.symbols(), Strategy::Symtab))
}

fn from<'d, 'f>(
    file: &'f object::File<'d>,
    symbols: impl Iterator<Item = object::Symbol<'d, 'f>>,
    strategy: Strategy,
) -> Option<Found> {
    let mut hooks: Vec<Hook> = Vec::new();
    for sym in symbols {
        if !sym.is_definition() || sym.kind() != object::SymbolKind::Text {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        let Some(kind) = SSL.into_iter().find(|k| k.name() == name) else {
            continue;
        };
        if hooks.iter().any(|h| h.kind == kind) {
            continue;
        }
        if let Some(offset) = elf::file_offset(file, sym.address()) {
            hooks.push(Hook { kind, offset });
        }
    }
    let has = |k| hooks.iter().any(|h| h.kind == k);
    let usable = (has(HookKind::SslWrite) || has(HookKind::SslWriteEx))
        && (has(HookKind::SslRead) || has(HookKind::SslReadEx));
    usable.then_some(Found {
        library: Library::Openssl,
        strategy,
        hooks,
        also: None,
    })
}

/// Parts of the names any TLS library guard knows leaves in a symbol table: OpenSSL's and
/// BoringSSL's API and internals, Go's crypto/tls, rustls (Rust-mangled paths), aws-lc.
const TLS_NAMES: [&[u8]; 6] = [b"SSL_", b"ssl_", b"crypto/tls", b"rustls", b"aws_lc", b"EVP_AEAD"];

/// A file with a symbol table that names no TLS library carries none: a linked TLS library brings
/// its function names along. Such files (most compiler outputs: unstripped, no TLS) then skip the
/// passes over all their bytes that look for a stripped library's traces, which cost a 150 MB debug
/// binary ~60 ms on its first exec (issue 17). False for a file without a symbol table.
pub(super) fn names_no_tls(file: &object::File<'_>) -> bool {
    if file.symbols().next().is_none() {
        return false;
    }
    let Some(strtab) = file.section_by_name(".strtab").and_then(|s| s.data().ok()) else { return false };
    !TLS_NAMES.iter().any(|n| memchr::memmem::find(strtab, n).is_some())
}
