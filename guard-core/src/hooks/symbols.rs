//! Strategies 1 and 2: the OpenSSL API by name, in `.dynsym` (exported) or `.symtab` (a binary
//! that was not stripped).

use object::{Object as _, ObjectSymbol as _};

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
