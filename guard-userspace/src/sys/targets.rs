//! Finds files to hook for TLS plaintext: every `libssl.so*` a process maps or that sits in the
//! system library directories, and every executable or library that defines the SSL functions
//! (node's built-in OpenSSL). Files are identified by (device, inode), so each is inspected and
//! attached once however many processes map it, and a container's copy (reached through
//! `/proc/PID/root`) is its own target.

use std::{
    collections::{HashMap, HashSet},
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError},
};

use aya::maps::MapData;

pub(crate) use guard_core::coverage::{FileStatus, ProcessTls};
use guard_core::hooks::{
    Analysis, Found, Hook, Library, Strategy,
    cache::{Cache, FileKey},
};

/// Where the file came from, for labels and logs (a closed set: no paths in metric labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LibraryKind {
    /// A shared libssl.
    Libssl,
    /// Another file that carries a TLS library (node's static OpenSSL, a Go binary).
    Embedded,
}

#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct TlsTarget {
    /// The path to attach through (may start with /proc/PID/root).
    pub attach_path: PathBuf,
    /// The path as the owning process sees it.
    pub path: String,
    pub kind: LibraryKind,
    pub dev: u64,
    pub ino: u64,
    pub library: Library,
    /// How the hooks were found (the `strategy` label of `guard_tls_targets_attached`).
    pub strategy: Strategy,
    /// Where the probes go, by file offset.
    pub hooks: Vec<Hook>,
    /// A second TLS library hooked in the same file ([`Found::also`]).
    pub also: Option<(Library, Strategy)>,
    /// The file's content as it was analysed: the offsets hold for this stamp only.
    pub stamp: Stamp,
}

/// When a file at one (device, inode) was last written, and its size: a compiler that rewrites
/// its output in place keeps the inode, and the old analysis then no longer holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Stamp {
    pub mtime_ns: i128,
    pub size: u64,
}

impl Stamp {
    pub(crate) fn of(meta: &fs::Metadata) -> Self {
        Self { mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()), size: meta.size() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Analysis { path: PathBuf, reason: String },
}


/// Analyses one file through the cache.
pub fn inspect(path: &Path, cache: &mut Cache) -> Result<Analysis, TargetError> {
    let map = map(path)?;
    cache.analyse(&map).map_err(|reason| TargetError::Analysis { path: path.into(), reason })
}

fn map(path: &Path) -> Result<memmap2::Mmap, TargetError> {
    let file = fs::File::open(path).map_err(|source| TargetError::Open { path: path.into(), source })?;
    // SAFETY: read-only map of a file we only parse; if it is truncated underneath us the parse
    // may see garbage, which the parsers report as an error rather than reading out of bounds.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|source| TargetError::Open { path: path.into(), source })
}

pub(crate) fn is_libssl(path: &str) -> bool {
    Path::new(path).file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libssl.so"))
}

/// Executable file mappings in `/proc/PID/maps`, as paths inside the process's mount namespace.
pub(crate) fn mapped_files(maps: &str) -> Vec<String> {
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
pub(crate) const SYSTEM_LIB_DIRS: &[&str] =
    &["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib"];


/// Remembers every file inspected, by (dev, inode), so each is read once. Clones share what they
/// know: the daemon's two scan lanes never analyse one file twice, and a lane that meets a file
/// the other is analysing waits for that result (Codex CLI's 294 MB binary takes half a second)
/// instead of repeating it. Each lane then reports the file's status for its own process.
#[derive(Clone)]
pub(crate) struct Scanner {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when a file's analysis ends.
    settled: Condvar,
    /// guard's own executable, by (dev, inode): never analysed, hooked or reported (guard maps it
    /// and carries a TLS library, which would show as a blind spot of its own).
    own: Option<(u64, u64)>,
    /// The kernel's copy of what `seen` holds, for the library-load stop (`KNOWN_FILES`).
    kernel: OnceLock<Mutex<KnownFiles>>,
}

/// The kernel's list of analysed files (`guard_common::gate::FileKey`).
pub(crate) type KnownFiles = aya::maps::HashMap<MapData, guard_common::gate::FileKey, u8>;

impl Default for Scanner {
    fn default() -> Self {
        let own = fs::metadata("/proc/self/exe").ok().map(|m| (m.dev(), m.ino()));
        Self::skipping(own)
    }
}

#[derive(Default)]
struct State {
    seen: HashMap<(u64, u64), (FileStatus, Stamp)>,
    /// Files being analysed now, by some clone.
    busy: HashSet<(u64, u64)>,
    cache: Cache,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A lane that panicked mid-update leaves maps that are still valid; keep using them.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One clone's claim on analysing a file; dropping it (after the result is stored, or on a
/// panic) wakes the clones that wait for the file.
struct Claim<'a> {
    shared: &'a Shared,
    key: (u64, u64),
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.shared.lock().busy.remove(&self.key);
        self.shared.settled.notify_all();
    }
}

impl Scanner {
    /// A scanner that takes `own` for guard's executable.
    fn skipping(own: Option<(u64, u64)>) -> Self {
        Self { shared: Arc::new(Shared { own, ..Shared::default() }) }
    }

    /// New targets among the files a process maps, plus its executable.
    pub(crate) fn scan_pid(&self, pid: u32) -> Vec<TlsTarget> {
        self.scan_process(pid).map(|(t, _)| t).unwrap_or_default()
    }

    /// [`Self::scan_pid`], also saying which TLS files the process maps; `None` once it is gone.
    pub(crate) fn scan_process(&self, pid: u32) -> Option<(Vec<TlsTarget>, ProcessTls)> {
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
        let mut out = vec![];
        let mut tls = ProcessTls::default();
        for path in mapped_files(&maps) {
            let attach = root.join(path.trim_start_matches('/'));
            out.extend(self.consider(&attach, &path));
            let Ok(meta) = fs::metadata(&attach) else { continue };
            let key = (meta.dev(), meta.ino());
            match self.status(key.0, key.1) {
                Some(st @ FileStatus::Hooked { .. }) => tls.files.push((key, st)),
                Some(st @ FileStatus::Miss(m)) if m.is_blind_spot() => tls.files.push((key, st)),
                _ => {}
            }
        }
        Some((out, tls))
    }

    /// New targets among the `libssl.so*` files in the system library directories.
    pub(crate) fn scan_system(&self) -> Vec<TlsTarget> {
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
    pub(crate) fn scan_all(&self) -> Vec<TlsTarget> {
        Self::pids().into_iter().flat_map(|p| self.scan_pid(p)).collect()
    }

    /// The running processes, in order.
    pub(crate) fn pids() -> Vec<u32> {
        let Ok(entries) = fs::read_dir("/proc") else { return vec![] };
        let mut pids: Vec<u32> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
        pids.sort();
        pids
    }

    /// Inspects one file (once per inode, across clones); returns it when it is a new target.
    pub(crate) fn consider(&self, attach: &Path, path: &str) -> Option<TlsTarget> {
        let meta = fs::metadata(attach).ok()?;
        if !meta.is_file() {
            return None;
        }
        let (key, stamp) = ((meta.dev(), meta.ino()), Stamp::of(&meta));
        if self.shared.own == Some(key) {
            return None;
        }
        let _claim = self.claim(key, stamp)?;
        let analysis = self.inspect(attach);
        let status = match &analysis {
            Ok(Analysis::Found(f)) => FileStatus::Hooked { library: f.library, strategy: f.strategy },
            Ok(Analysis::Miss(m)) => FileStatus::Miss(*m),
            Err(_) => FileStatus::Error,
        };
        if let FileStatus::Miss(m) = status
            && m.is_blind_spot()
        {
            tracing::info!(path, reason = ?m, "TLS library without a verified hook");
        }
        self.shared.lock().seen.insert(key, (status, stamp));
        self.tell_kernel(key);
        let Found { library, strategy, hooks, also } = match analysis {
            Ok(Analysis::Found(f)) => f,
            Ok(Analysis::Miss(_)) => return None,
            Err(e) => {
                tracing::debug!(error = %e, "skipping file");
                return None;
            }
        };
        let kind = if is_libssl(path) { LibraryKind::Libssl } else { LibraryKind::Embedded };
        // The same file by guard's own path when it is one: a process's root can be a sandbox
        // (Codex CLI runs its tools under bubblewrap) that is gone by the time guard attaches.
        let same = fs::metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == key);
        let attach_path = if same { PathBuf::from(path) } else { attach.into() };
        Some(TlsTarget { attach_path, path: path.into(), kind, dev: key.0, ino: key.1, library, strategy, hooks, also, stamp })
    }

    /// The right to analyse a file, or `None` once it is known as it is now. Waits while another
    /// clone analyses it.
    fn claim(&self, key: (u64, u64), stamp: Stamp) -> Option<Claim<'_>> {
        let mut st = self.shared.lock();
        loop {
            if st.seen.get(&key).is_some_and(|(_, s)| *s == stamp) {
                return None;
            }
            if st.busy.insert(key) {
                return Some(Claim { shared: &self.shared, key });
            }
            st = self.shared.settled.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// [`inspect`] through the shared cache, which is not held while the analysis runs.
    fn inspect(&self, path: &Path) -> Result<Analysis, TargetError> {
        let map = map(path)?;
        let key = FileKey::of(&map);
        let cached = self.shared.lock().cache.get(&key);
        let r = cached.unwrap_or_else(|| {
            let r = Cache::compute(&map);
            self.shared.lock().cache.insert(key, r.clone());
            r
        });
        r.map_err(|reason| TargetError::Analysis { path: path.into(), reason })
    }

    /// What is known of a file (by device and inode), once it was inspected.
    pub(crate) fn status(&self, dev: u64, ino: u64) -> Option<FileStatus> {
        self.shared.lock().seen.get(&(dev, ino)).map(|(st, _)| st.clone())
    }

    /// Whether this file was analysed as it is now (the exec gate's one question per exec).
    pub(crate) fn knows(&self, dev: u64, ino: u64, stamp: Stamp) -> bool {
        self.shared.own == Some((dev, ino)) || self.shared.lock().seen.get(&(dev, ino)).is_some_and(|(_, s)| *s == stamp)
    }

    /// From now on every file analysed goes into `map` too, after all those analysed so far: the
    /// kernel then stops no load of them (`guard_common::gate::LoadStop`).
    pub(crate) fn mirror_to_kernel(&self, map: KnownFiles) {
        if self.shared.kernel.set(Mutex::new(map)).is_err() {
            return;
        }
        let keys: Vec<(u64, u64)> = self.shared.lock().seen.keys().copied().chain(self.shared.own).collect();
        for key in keys {
            self.tell_kernel(key);
        }
    }

    /// Puts a file into the kernel's list: analysed, or not worth analysing (not a regular file).
    pub(crate) fn tell_kernel(&self, (dev, ino): (u64, u64)) {
        let Some(map) = self.shared.kernel.get() else { return };
        let key = guard_common::gate::FileKey::from_stat(dev, ino);
        // The map is an LRU: an insert fails only on a kernel error, and the file's next load
        // then stops once more and is answered from `seen`.
        if let Err(e) = map.lock().unwrap_or_else(PoisonError::into_inner).insert(key, 1, 0) {
            tracing::debug!(error = %e, "a known file was not told to the kernel");
        }
    }

    /// What is known of a process's executable: for the per-agent blind-spot gauge and doctor.
    pub(crate) fn exe_status(&self, pid: u32) -> Option<FileStatus> {
        let meta = fs::metadata(format!("/proc/{pid}/exe")).ok()?;
        self.status(meta.dev(), meta.ino())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
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
        let mut cache = Cache::default();
        assert_eq!(inspect(&me, &mut cache).unwrap(), Analysis::Miss(guard_core::hooks::Miss::NoTls));
        assert!(inspect(Path::new("/etc/hostname"), &mut cache).is_err());
    }

    #[test]
    fn clones_analyse_a_file_once_and_only_one_offers_it() {
        let Some(lib) = system_libssl() else { return };
        let scanner = Scanner::default();
        // Four lanes meet the file at once: one analyses it, the others wait for its result.
        let offered: usize = std::thread::scope(|s| {
            let lanes: Vec<_> = (0..4)
                .map(|_| {
                    let lane = scanner.clone();
                    s.spawn(move || lane.consider(lib, &lib.to_string_lossy()).is_some())
                })
                .collect();
            lanes.into_iter().map(|l| usize::from(l.join().unwrap())).sum()
        });
        assert_eq!(offered, 1);
        let counts = scanner.shared.lock().cache.clone();
        assert_eq!((counts.misses, counts.hits), (1, 0), "the file was analysed more than once");
        let meta = fs::metadata(lib).unwrap();
        assert!(matches!(scanner.clone().status(meta.dev(), meta.ino()), Some(FileStatus::Hooked { .. })));
    }

    #[test]
    fn guards_own_executable_is_neither_analysed_nor_offered() {
        // The test binary is this process's executable, as guard's is the daemon's.
        let me = std::env::current_exe().unwrap();
        let scanner = Scanner::default();
        assert!(scanner.consider(&me, &me.to_string_lossy()).is_none());
        let meta = fs::metadata(&me).unwrap();
        assert!(scanner.status(meta.dev(), meta.ino()).is_none(), "its status was recorded");
        assert_eq!(scanner.shared.lock().cache.misses, 0, "it was analysed");
        // A file guard would hook is skipped all the same when it is guard's own.
        let Some(lib) = system_libssl() else { return };
        let meta = fs::metadata(lib).unwrap();
        let scanner = Scanner::skipping(Some((meta.dev(), meta.ino())));
        assert!(scanner.consider(lib, &lib.to_string_lossy()).is_none());
        assert!(Scanner::default().consider(lib, &lib.to_string_lossy()).is_some());
    }

    fn system_libssl() -> Option<&'static Path> {
        let lib = ["/usr/lib/x86_64-linux-gnu/libssl.so.3", "/lib/x86_64-linux-gnu/libssl.so.3"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists());
        if lib.is_none() {
            eprintln!("SKIP: no system libssl.so.3");
        }
        lib
    }

    #[test]
    fn the_system_libssl_is_a_target_with_all_functions() {
        let Some(lib) = system_libssl() else { return };
        let Analysis::Found(found) = inspect(lib, &mut Cache::default()).unwrap() else { panic!("libssl defines SSL_write") };
        assert_eq!((found.library, found.strategy), (Library::Openssl, Strategy::Dynsym));
        use guard_core::hooks::HookKind;
        for k in [HookKind::SslWrite, HookKind::SslRead, HookKind::SslWriteEx, HookKind::SslReadEx, HookKind::SslFree] {
            assert!(found.hooks.iter().any(|h| h.kind == k && h.offset > 0), "{k:?} missing");
        }
    }
}
