//! Finds files to hook for TLS plaintext: every `libssl.so*` a process maps or that sits in the
//! system library directories, and every executable or library that defines the SSL functions
//! (node's built-in OpenSSL). Files are identified by (device, inode), so each is inspected and
//! attached once however many processes map it, and a container's copy (reached through
//! `/proc/PID/root`) is its own target.

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use object::{Object as _, ObjectSegment as _, ObjectSymbol as _};

/// The functions we hook, by symbol name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum TlsSymbol {
    SslWrite,
    SslRead,
    SslWriteEx,
    SslReadEx,
    SslFree,
}

impl TlsSymbol {
    pub const ALL: [Self; 5] = [Self::SslWrite, Self::SslRead, Self::SslWriteEx, Self::SslReadEx, Self::SslFree];

    pub const fn name(self) -> &'static str {
        match self {
            Self::SslWrite => "SSL_write",
            Self::SslRead => "SSL_read",
            Self::SslWriteEx => "SSL_write_ex",
            Self::SslReadEx => "SSL_read_ex",
            Self::SslFree => "SSL_free",
        }
    }
}

/// Where the file came from, for labels and logs (a closed set: no paths in metric labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LibraryKind {
    /// A shared libssl.
    Libssl,
    /// Another file that defines the SSL functions (e.g. node with its static OpenSSL).
    Embedded,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TlsTarget {
    /// The path to attach through (may start with /proc/PID/root).
    pub attach_path: PathBuf,
    /// The path as the owning process sees it.
    pub path: String,
    pub kind: LibraryKind,
    pub dev: u64,
    pub ino: u64,
    /// File offsets of the functions found.
    pub symbols: Vec<(TlsSymbol, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{path} is not an ELF file we can read: {source}")]
    Elf { path: PathBuf, source: object::Error },
}

/// Reads the SSL function offsets of one ELF file. `None`: it does not define SSL_write/SSL_read.
pub fn inspect(path: &Path) -> Result<Option<Vec<(TlsSymbol, u64)>>, TargetError> {
    let file = fs::File::open(path).map_err(|source| TargetError::Open { path: path.into(), source })?;
    // SAFETY: read-only map of a file we only parse; if it is truncated underneath us the parse
    // may see garbage, which `object` reports as an error rather than reading out of bounds.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| TargetError::Open { path: path.into(), source })?;
    let elf = object::File::parse(&*map).map_err(|source| TargetError::Elf { path: path.into(), source })?;
    let mut found: Vec<(TlsSymbol, u64)> = Vec::new();
    for sym in elf.dynamic_symbols().chain(elf.symbols()) {
        if !sym.is_definition() || sym.kind() != object::SymbolKind::Text {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        let Some(which) = TlsSymbol::ALL.into_iter().find(|s| s.name() == name) else { continue };
        if found.iter().any(|(s, _)| *s == which) {
            continue;
        }
        if let Some(off) = file_offset(&elf, sym.address()) {
            found.push((which, off));
        }
    }
    let has = |s| found.iter().any(|(f, _)| *f == s);
    let usable = (has(TlsSymbol::SslWrite) || has(TlsSymbol::SslWriteEx)) && (has(TlsSymbol::SslRead) || has(TlsSymbol::SslReadEx));
    Ok(usable.then_some(found))
}

/// Virtual address → offset in the file, through the loadable segment that holds it.
fn file_offset(elf: &object::File<'_>, addr: u64) -> Option<u64> {
    elf.segments().find_map(|seg| {
        let (start, size) = (seg.address(), seg.size());
        let (file_start, file_size) = seg.file_range();
        (addr >= start && addr < start + size && addr - start < file_size).then(|| addr - start + file_start)
    })
}

pub fn is_libssl(path: &str) -> bool {
    Path::new(path).file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libssl.so"))
}

/// Executable file mappings in `/proc/PID/maps`, as paths inside the process's mount namespace.
pub fn mapped_files(maps: &str) -> Vec<String> {
    let mut out: Vec<String> = maps
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(6, ' ');
            let perms = f.nth(1)?;
            let path = f.nth(3)?.trim_start();
            (perms.contains('x') && path.starts_with('/') && !path.ends_with(" (deleted)")).then(|| path.to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The standard places a system libssl lives, hooked at start so that a process that loads it
/// later (python's `import ssl`, curl) is covered from its first call.
pub const SYSTEM_LIB_DIRS: &[&str] =
    &["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib"];

/// Remembers every file inspected, by (dev, inode), so each is read once.
#[derive(Default)]
pub struct Scanner {
    seen: HashMap<(u64, u64), bool>,
    pub inspect_errors: u64,
}

impl Scanner {
    /// New targets among the files a process maps, plus its executable.
    pub fn scan_pid(&mut self, pid: u32) -> Vec<TlsTarget> {
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else { return vec![] };
        let mut out = vec![];
        for path in mapped_files(&maps) {
            let attach = root.join(path.trim_start_matches('/'));
            out.extend(self.consider(&attach, &path));
        }
        out
    }

    /// New targets among the `libssl.so*` files in the system library directories.
    pub fn scan_system(&mut self) -> Vec<TlsTarget> {
        let mut out = vec![];
        for dir in SYSTEM_LIB_DIRS {
            let Ok(entries) = fs::read_dir(dir) else { continue };
            let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            names.sort();
            for p in names {
                let s = p.to_string_lossy().into_owned();
                if is_libssl(&s) {
                    out.extend(self.consider(&p, &s));
                }
            }
        }
        out
    }

    /// Every running process.
    pub fn scan_all(&mut self) -> Vec<TlsTarget> {
        let Ok(entries) = fs::read_dir("/proc") else { return vec![] };
        let mut pids: Vec<u32> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
        pids.sort();
        pids.into_iter().flat_map(|p| self.scan_pid(p)).collect()
    }

    /// Inspects one file (once per inode); returns it when it is a new target.
    pub fn consider(&mut self, attach: &Path, path: &str) -> Option<TlsTarget> {
        let meta = fs::metadata(attach).ok()?;
        if !meta.is_file() {
            return None;
        }
        let key = (meta.dev(), meta.ino());
        if self.seen.contains_key(&key) {
            return None;
        }
        let symbols = match inspect(attach) {
            Ok(s) => s,
            Err(e) => {
                self.inspect_errors += 1;
                tracing::debug!(error = %e, "skipping file");
                None
            }
        };
        self.seen.insert(key, symbols.is_some());
        let symbols = symbols?;
        let kind = if is_libssl(path) { LibraryKind::Libssl } else { LibraryKind::Embedded };
        Some(TlsTarget { attach_path: attach.into(), path: path.into(), kind, dev: key.0, ino: key.1, symbols })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_give_executable_file_mappings_once() {
        let maps = "\
55d0c0000000-55d0c0001000 r--p 00000000 fe:00 123 /usr/bin/node
55d0c0001000-55d0c0002000 r-xp 00001000 fe:00 123 /usr/bin/node
7f0000000000-7f0000001000 r-xp 00000000 fe:00 456 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f0000001000-7f0000002000 r-xp 00000000 fe:00 457 /tmp/gone.so (deleted)
7f0000002000-7f0000003000 rw-p 00000000 00:00 0 
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0                          [vdso]
7f0000003000-7f0000004000 r-xp 00000000 fe:00 458 /opt/my app/lib.so
";
        assert_eq!(
            mapped_files(maps),
            ["/opt/my app/lib.so", "/usr/bin/node", "/usr/lib/x86_64-linux-gnu/libssl.so.3"]
        );
    }

    #[test]
    fn libssl_names() {
        assert!(is_libssl("/usr/lib/x86_64-linux-gnu/libssl.so.3"));
        assert!(is_libssl("/opt/x/libssl.so.1.1"));
        assert!(!is_libssl("/usr/lib/libcrypto.so.3"));
        assert!(!is_libssl("/usr/lib/libssl3.so"));
    }

    #[test]
    fn a_binary_without_tls_is_not_a_target() {
        let me = std::env::current_exe().unwrap();
        assert!(inspect(&me).unwrap().is_none());
        assert!(inspect(Path::new("/etc/hostname")).is_err());
    }

    #[test]
    fn the_system_libssl_is_a_target_with_all_functions() {
        let Some(lib) = ["/usr/lib/x86_64-linux-gnu/libssl.so.3", "/lib/x86_64-linux-gnu/libssl.so.3"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())
        else {
            eprintln!("SKIP: no system libssl.so.3");
            return;
        };
        let syms = inspect(lib).unwrap().expect("libssl defines SSL_write");
        for s in TlsSymbol::ALL {
            assert!(syms.iter().any(|(f, off)| *f == s && *off > 0), "{s:?} missing");
        }
    }
}
