//! Analysis ahead of time: at start, the executables an engineer is likely to run as agents are
//! analysed, and hooked when they carry TLS, before they run. Otherwise the first exec of an agent
//! is scanned only after it started, and its first requests (a Bun- or Rust-built CLI opens its
//! connection within milliseconds) go unseen.
//!
//! Where to look, for the root and for every home (`/home/*`, `/root`): the user-level bin
//! directories (`~/.local/bin`, `~/.bun/bin`, npm's and nvm's global bins, pipx venvs), agents by
//! name in the shared ones (`/usr/local/bin`, ...), the packages their npm links point into (a
//! bin is a link to `node_modules/<pkg>/bin/x.js`; the native binary sits in the package or in a
//! platform package beside it, `opencode-linux-x64/bin/opencode`), the catalog's npm packages in
//! the global `node_modules` directories, the catalog's install directories under a home
//! (`~/.local/share/claude/versions`), and the agents in the `node_modules/.bin` of the running
//! processes' working directories.
//!
//! Large binaries are exactly the ones that matter (Codex CLI is ~300 MB), so no file is skipped
//! for its size; the whole run is bounded instead, by a file count and a time budget. It runs on
//! the scan worker's pass lane, after the system libraries, so the daemon never waits for it.

mod discover;
#[cfg(test)]
mod tests;

use std::{
    collections::BTreeSet,
    fs,
    io::Read as _,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use guard_core::process::Catalog;

use self::discover::{Candidate, candidates};
use super::targets::{Scanner, TlsTarget};

/// At most this many ELF files are analysed.
const MAX_FILES: usize = 200;
/// No new file is started after this long.
const BUDGET: Duration = Duration::from_secs(30);

/// True when the file starts with the ELF magic.
pub(crate) fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == *b"\x7fELF"
}

/// The working directories of the running processes that share guard's root.
fn running_cwds() -> Vec<PathBuf> {
    let Ok(own) = fs::metadata("/proc/self/root") else { return vec![] };
    let mut out = BTreeSet::new();
    for pid in Scanner::pids() {
        let same_root = fs::metadata(format!("/proc/{pid}/root")).is_ok_and(|m| (m.dev(), m.ino()) == (own.dev(), own.ino()));
        if let (true, Ok(cwd)) = (same_root, fs::read_link(format!("/proc/{pid}/cwd")))
            && cwd != Path::new("/")
        {
            out.insert(cwd);
        }
    }
    out.into_iter().collect()
}

/// What one run did, for its log line.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Candidates looked at (all, unless cut short).
    pub considered: usize,
    /// ELF files analysed now.
    pub analysed: usize,
    /// ELF files the scanner knew already (a running process carries them).
    pub known: usize,
    /// New TLS targets offered for attaching.
    pub hooked: usize,
    /// The file cap or the time budget stopped it.
    pub cut_short: bool,
}

/// One ahead-of-time run: the catalog and its bounds.
pub(crate) struct Ahead {
    catalog: Catalog,
    root: PathBuf,
    max_files: usize,
    budget: Duration,
}

impl Ahead {
    pub(crate) fn new(catalog: Catalog) -> Self {
        Self { catalog, root: PathBuf::from("/"), max_files: MAX_FILES, budget: BUDGET }
    }

    /// Analyses the candidates through `scanner` and hands each new target to `offer`; false
    /// when `offer` does (the daemon is gone).
    pub(crate) fn run(&self, scanner: &Scanner, offer: impl FnMut(TlsTarget) -> bool) -> bool {
        let start = Instant::now();
        let list = candidates(&self.root, &running_cwds(), &self.catalog);
        let found = list.len();
        let Some(s) = self.analyse(scanner, &list, start, offer) else { return false };
        tracing::info!(
            candidates = found,
            considered = s.considered,
            analysed = s.analysed,
            known = s.known,
            hooked = s.hooked,
            ms = start.elapsed().as_millis() as u64,
            cut_short = s.cut_short,
            "ahead-of-time TLS analysis done"
        );
        true
    }

    /// The bounded loop over `list`; `None` when `offer` refused a target.
    fn analyse(
        &self,
        scanner: &Scanner,
        list: &[Candidate],
        start: Instant,
        mut offer: impl FnMut(TlsTarget) -> bool,
    ) -> Option<Summary> {
        let mut s = Summary::default();
        for c in list {
            if s.analysed >= self.max_files || start.elapsed() >= self.budget {
                s.cut_short = true;
                break;
            }
            s.considered += 1;
            let Ok(meta) = fs::metadata(&c.path) else { continue };
            if !is_elf(&c.path) {
                continue;
            }
            if scanner.status(meta.dev(), meta.ino()).is_some() {
                s.known += 1;
                continue;
            }
            s.analysed += 1;
            let Some(t) = scanner.consider(&c.path, &c.path.to_string_lossy()) else { continue };
            s.hooked += 1;
            if !offer(t) {
                return None;
            }
        }
        Some(s)
    }
}

