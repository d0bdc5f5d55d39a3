//! The hook finder: where in an ELF file guard can see TLS plaintext, found from the code's own
//! structure rather than from per-version tables. Strategies, cheapest and surest first:
//!
//! 1. `dynsym`: exported `SSL_write`/`SSL_read` (libssl, node's static OpenSSL);
//! 2. `symtab`: the same names in the static symbol table of an unstripped binary;
//! 3. `gopclntab`: Go's function table, which survives `-s -w`, names `crypto/tls.(*Conn).Write`
//!    and `.Read`; their RET instructions come from disassembly (Go cannot take uretprobes);
//! 4. `structural`: from the error-reporting call sites and the call graph. BoringSSL in a
//!    stripped static binary (Bun, `boring.rs`); OpenSSL 3 in a stripped static binary (a Rust
//!    program with `openssl` vendored, `openssl.rs`), whose function bounds come from `.eh_frame`.
//!
//! rustls on aws-lc-rs (Codex CLI, rustup) is hooked at aws-lc's AEAD entry points (`awslc.rs`),
//! found in `.symtab` or by structure, plus the program's entry point in an executable
//! ([`HookKind::ProgramStart`]). The kernel has a program for each of these kinds, so [`analyse`]
//! returns them as hooks to attach, labelled [`Library::Rustls`]. In a file whose first TLS
//! library is another one (the static OpenSSL in Codex CLI), they join that library's hooks and
//! rustls is named in [`Found::also`]. rustls on ring has no such boundary: `Unhooked(Rustls)`.
//! [`candidates`] lists the AEAD entry points alone, for the tests.
//!
//! A file where none applies gets a [`Miss`] with a reason, so that a blind spot is reported
//! rather than silent. Sans-IO: [`analyse`] takes the file's bytes; reading the file and running
//! off the event loop are the daemon's business, and [`cache`] keeps one analysis per build-id.

mod awslc;
mod boring;
pub mod cache;
mod code;
mod elf;
mod flow;
mod frames;
mod gopclntab;
mod markers;
mod openssl;
mod rets;
mod symbols;

use object::Object as _;
use serde::Serialize;

/// A place a kernel program is attached, and which program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    SslWrite,
    SslRead,
    SslWriteEx,
    SslReadEx,
    SslFree,
    /// Entry of Go's `crypto/tls.(*Conn).Write`.
    GoWrite,
    /// Entry of `(*Conn).Read`.
    GoRead,
    /// One RET instruction of `(*Conn).Read`.
    GoReadRet,
    /// Entry of `(*Conn).Close`.
    GoClose,
    /// aws-lc's `EVP_AEAD_CTX_seal`: one whole TLS record before sealing (rustls + aws-lc-rs).
    AeadSeal,
    /// `EVP_AEAD_CTX_seal_scatter`, the same with a separate tag buffer.
    AeadSealScatter,
    /// `EVP_AEAD_CTX_open`: a record opened (plaintext at return).
    AeadOpen,
    /// `EVP_AEAD_CTX_init_with_direction`: each new key.
    AeadInit,
    /// `EVP_AEAD_CTX_init`, which calls or inlines `init_with_direction`: also each new key.
    AeadInitDefault,
    /// The program's entry point (`e_entry`) in an executable with rustls hooks: each process
    /// of it starts being watched before its first connection, so that its first keys bind.
    ProgramStart,
}

impl HookKind {
    /// aws-lc's AEAD entry points (rustls): their records are tied to sockets by syscall
    /// tracepoints.
    pub const fn is_aead(self) -> bool {
        matches!(
            self,
            Self::AeadSeal | Self::AeadSealScatter | Self::AeadOpen | Self::AeadInit | Self::AeadInitDefault | Self::ProgramStart
        )
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::SslWrite => "SSL_write",
            Self::SslRead => "SSL_read",
            Self::SslWriteEx => "SSL_write_ex",
            Self::SslReadEx => "SSL_read_ex",
            Self::SslFree => "SSL_free",
            Self::GoWrite => "crypto/tls.(*Conn).Write",
            Self::GoRead => "crypto/tls.(*Conn).Read",
            Self::GoReadRet => "crypto/tls.(*Conn).Read RET",
            Self::GoClose => "crypto/tls.(*Conn).Close",
            Self::AeadSeal => "EVP_AEAD_CTX_seal",
            Self::AeadSealScatter => "EVP_AEAD_CTX_seal_scatter",
            Self::AeadOpen => "EVP_AEAD_CTX_open",
            Self::AeadInit => "EVP_AEAD_CTX_init_with_direction",
            Self::AeadInitDefault => "EVP_AEAD_CTX_init",
            Self::ProgramStart => "entry point",
        }
    }
}

/// How the hooks of a file were found (a label value: a closed set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Dynsym,
    Symtab,
    Gopclntab,
    /// From the code's shape: error-reporting call sites and the call graph (BoringSSL, OpenSSL 3).
    Structural,
}

impl Strategy {
    /// The label value (as serialised).
    pub const fn as_label(self) -> &'static str {
        match self {
            Self::Dynsym => "dynsym",
            Self::Symtab => "symtab",
            Self::Gopclntab => "gopclntab",
            Self::Structural => "structural",
        }
    }

    /// A hook found by name is the function it names; one found from the code's shape is a
    /// guess whose traffic must be verified before it counts (see `crate::verify`).
    pub fn is_guess(self) -> bool {
        matches!(self, Self::Structural)
    }
}

/// The TLS implementation a file carries (a label value: a closed set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Library {
    Openssl,
    GoCryptoTls,
    Boringssl,
    Rustls,
}

impl Library {
    /// The label value (as serialised).
    pub const fn as_label(self) -> &'static str {
        match self {
            Self::Openssl => "openssl",
            Self::GoCryptoTls => "go_crypto_tls",
            Self::Boringssl => "boringssl",
            Self::Rustls => "rustls",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Hook {
    pub kind: HookKind,
    /// Offset in the file, where the uprobe goes.
    pub offset: u64,
}

/// Hooks that were found, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Found {
    pub library: Library,
    /// How the hooks were found; a guess if any of them was (verification holds the file).
    pub strategy: Strategy,
    pub hooks: Vec<Hook>,
    /// A second TLS library in the same file, whose hooks are in `hooks` too, and how they were
    /// found: rustls next to the static OpenSSL in Codex CLI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub also: Option<(Library, Strategy)>,
}

/// Why a file has no hook (a label value: a closed set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Miss {
    /// No TLS library in it: nothing to see, not a blind spot.
    NoTls,
    /// It carries TLS (by its strings or metadata) but no strategy located the functions.
    Unhooked(Library),
    /// Not x86-64 code: the hooks and the register conventions are amd64 only.
    UnsupportedArch,
    /// A Go binary whose function table layout we do not read (before Go 1.16).
    UnsupportedGoVersion,
}

impl Miss {
    /// Whether this miss leaves TLS traffic unseen.
    pub fn is_blind_spot(self) -> bool {
        !matches!(self, Self::NoTls)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Analysis {
    Found(Found),
    Miss(Miss),
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("not an ELF file we can read: {0}")]
    Elf(#[from] object::Error),
    #[error("malformed Go function table: {0}")]
    Gopclntab(#[from] gopclntab::PclnError),
}

/// Finds the TLS hooks of one ELF file, given its bytes.
pub fn analyse(data: &[u8]) -> Result<Analysis, HookError> {
    let file = object::File::parse(data)?;
    let first = analyse_first(&file, data)?;
    // rustls can sit next to another TLS library: Codex CLI links a static OpenSSL too, and
    // rustup exports OpenSSL's functions. Its records then need the AEAD hooks as well.
    let other = match &first {
        Analysis::Found(f) => f.library != Library::Rustls,
        Analysis::Miss(Miss::Unhooked(l)) => *l != Library::Rustls,
        Analysis::Miss(_) => false,
    };
    if !other || file.architecture() != object::Architecture::X86_64 || !markers::has(data, Library::Rustls) {
        return Ok(first);
    }
    let Some(aead) = rustls_aead(&file, data) else { return Ok(first) };
    Ok(Analysis::Found(match first {
        Analysis::Found(mut f) => {
            // Held for verification if either set was found by structure.
            if aead.strategy.is_guess() {
                f.strategy = Strategy::Structural;
            }
            f.hooks.extend(aead.hooks);
            f.also = Some((aead.library, aead.strategy));
            f
        }
        Analysis::Miss(_) => aead,
    }))
}

/// The hooks of the first TLS library the file shows.
fn analyse_first(file: &object::File<'_>, data: &[u8]) -> Result<Analysis, HookError> {
    if let Some(found) = symbols::find(file) {
        return Ok(Analysis::Found(found));
    }
    let amd64 = file.architecture() == object::Architecture::X86_64;
    match gopclntab::Table::locate(file, data) {
        Ok(Some(_)) if !amd64 => Ok(Analysis::Miss(Miss::UnsupportedArch)),
        Ok(Some(table)) => Ok(go_hooks(file, data, &table)),
        Err(gopclntab::PclnError::TooOld { .. }) => Ok(Analysis::Miss(Miss::UnsupportedGoVersion)),
        Err(gopclntab::PclnError::NotAmd64 { .. }) => Ok(Analysis::Miss(Miss::UnsupportedArch)),
        Err(e) => Err(e.into()),
        Ok(None) => Ok(match markers::library(data) {
            Some(Library::Boringssl) if amd64 => match boring::find(file, data) {
                Some(found) => Analysis::Found(found),
                None => Analysis::Miss(Miss::Unhooked(Library::Boringssl)),
            },
            Some(Library::Openssl) if amd64 => match openssl::find(file, data) {
                Some(found) => Analysis::Found(found),
                None => Analysis::Miss(Miss::Unhooked(Library::Openssl)),
            },
            Some(Library::Rustls) if amd64 => match rustls_aead(file, data) {
                Some(found) => Analysis::Found(found),
                None => Analysis::Miss(Miss::Unhooked(Library::Rustls)),
            },
            Some(lib) => Analysis::Miss(Miss::Unhooked(lib)),
            None => Analysis::Miss(Miss::NoTls),
        }),
    }
}

/// rustls on aws-lc: its AEAD entry points, when enough of them were found to carry traffic.
fn rustls_aead(file: &object::File<'_>, data: &[u8]) -> Option<Found> {
    let (strategy, mut hooks) = awslc::find(file, data)?;
    // A shared library's entry point never runs: its processes are watched from their first
    // AEAD call instead, and miss the first keys of connections made before it.
    if let Some(offset) = (file.kind() == object::ObjectKind::Executable || file.entry() != 0)
        .then(|| elf::file_offset(file, file.entry()))
        .flatten()
    {
        hooks.push(Hook { kind: HookKind::ProgramStart, offset });
    }
    awslc::usable(&hooks).then_some(Found {
        library: Library::Rustls,
        strategy,
        hooks,
        also: None,
    })
}

/// aws-lc's AEAD entry points in a file that carries rustls, on their own: each one found exactly
/// once (the others are left out), whether or not together they are enough to carry traffic, and
/// without the `ProgramStart` hook. The tests compare it with [`analyse`] and with the symbol
/// table. `None` when the file carries no rustls or no aws-lc AEAD layer. aws-lc without rustls is not looked at: with its own TLS
/// (libssl's `ssl_lib.cc`) it is hooked at `SSL_write`/`SSL_read` above the AEAD, and without
/// it, it is not TLS guard can frame.
pub fn candidates(data: &[u8]) -> Result<Option<Found>, HookError> {
    let file = object::File::parse(data)?;
    if file.architecture() != object::Architecture::X86_64 || !markers::has(data, Library::Rustls) {
        return Ok(None);
    }
    Ok(awslc::find(&file, data).map(|(strategy, hooks)| Found {
        library: Library::Rustls,
        strategy,
        hooks,
        also: None,
    }))
}

/// Go: entries of Write, Read, Close from the function table, and the RETs of Read.
fn go_hooks(file: &object::File<'_>, data: &[u8], table: &gopclntab::Table<'_>) -> Analysis {
    const NAMES: [&str; 3] = [
        "crypto/tls.(*Conn).Write",
        "crypto/tls.(*Conn).Read",
        "crypto/tls.(*Conn).Close",
    ];
    let [write, read, close] = table.find(NAMES);
    let (Some(write), Some(read)) = (write, read) else {
        return Analysis::Miss(Miss::NoTls);
    };
    let unhooked = Analysis::Miss(Miss::Unhooked(Library::GoCryptoTls));
    let at = |addr| elf::file_offset(file, addr);
    // Entry probes go after the stack check, which re-enters the function when the stack grows.
    let body = |f: &gopclntab::Func| {
        elf::bytes_at(file, data, f.entry, f.end - f.entry).map(|code| (code, rets::after_stack_check(code, f.entry)))
    };
    let (Some((_, write_body)), Some((code, read_body))) = (body(&write), body(&read)) else {
        return unhooked;
    };
    let (Some(w), Some(r)) = (at(write_body), at(read_body)) else {
        return unhooked;
    };
    let rets = rets::find(code, read.entry);
    // A Read with no RET would leave every entry unanswered: no hook rather than half of one.
    if rets.is_empty() {
        return unhooked;
    }
    let mut hooks = vec![
        Hook {
            kind: HookKind::GoWrite,
            offset: w,
        },
        Hook {
            kind: HookKind::GoRead,
            offset: r,
        },
    ];
    for ret in rets {
        let Some(offset) = at(ret) else {
            return unhooked;
        };
        hooks.push(Hook {
            kind: HookKind::GoReadRet,
            offset,
        });
    }
    if let Some(offset) = close.and_then(|c| at(body(&c)?.1)) {
        hooks.push(Hook {
            kind: HookKind::GoClose,
            offset,
        });
    }
    Analysis::Found(Found {
        library: Library::GoCryptoTls,
        strategy: Strategy::Gopclntab,
        hooks,
        also: None,
    })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "the tests read real binaries and build test clients")]
mod tests;
