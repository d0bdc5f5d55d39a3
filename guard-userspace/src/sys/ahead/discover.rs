//! Where the executables worth analysing ahead of time are, under a root directory: a pure
//! reading of the tree (given a root, the candidate paths), so a test tree can stand in for a
//! host.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Component, Path, PathBuf},
};

use guard_core::process::Catalog;

/// Bounds on one directory walk (a package, an install directory).
const WALK_DEPTH: usize = 8;
const WALK_ENTRIES: usize = 4000;
/// Bound on the candidates overall, before the ELF check.
const MAX_CANDIDATES: usize = 8192;

/// Bin directories under a home whose every executable is a candidate: where user-level CLIs
/// go. `*` stands for every directory at that level.
const USER_BINS: &[&str] =
    &[".local/bin", ".bun/bin", ".npm-global/bin", ".nvm/versions/node/*/bin", ".local/share/pipx/venvs/*/bin"];
/// Bin directories shared with everything else: only agents (by catalog name), the interpreters
/// agents run on (node, bun: a node built with its own OpenSSL is hooked in the binary), and npm
/// links.
const SHARED_BINS: &[&str] = &["usr/local/bin", "usr/bin", "bin"];
const HOME_SHARED_BINS: &[&str] = &["bin", ".cargo/bin"];
/// Global `node_modules` directories, under the root and under a home (`npx` caches included).
const NODE_MODULES: &[&str] = &["usr/lib/node_modules", "usr/local/lib/node_modules"];
const HOME_NODE_MODULES: &[&str] = &[
    ".npm-global/lib/node_modules",
    ".bun/install/global/node_modules",
    ".nvm/versions/node/*/lib/node_modules",
    ".npm/_npx/*/node_modules",
];

/// A file worth analysing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Resolved: no symbolic link in it.
    pub path: PathBuf,
    /// A catalog agent's file (by name or path) or an interpreter agents run on: analysed first.
    pub first: bool,
}

/// Where the catalog says agents are installed: directories under a home (`.opencode/bin`)
/// and npm package names (`@openai/codex`), from the literal start of its `*/...` path globs.
pub(crate) fn catalog_locations(catalog: &Catalog) -> (Vec<String>, Vec<String>) {
    let mut dirs = BTreeSet::new();
    let mut packages = BTreeSet::new();
    let globs = catalog.agents().iter().flat_map(|a| a.paths.iter()).flat_map(|g| g.split('|'));
    for g in globs {
        let Some(rest) = g.strip_prefix("*/") else { continue };
        let literal: Vec<&str> = rest.split('/').take_while(|s| !s.contains(['*', '?'])).collect();
        let literal = literal.join("/");
        if literal.is_empty() || literal.contains("site-packages") {
            continue;
        }
        if literal.starts_with('.') {
            dirs.insert(literal);
        } else {
            packages.insert(literal.trim_start_matches("node_modules/").to_owned());
        }
    }
    (dirs.into_iter().collect(), packages.into_iter().collect())
}

/// The package directory a file in `node_modules` belongs to (`.../node_modules/@scope/pkg`).
pub(crate) fn package_root(path: &Path) -> Option<PathBuf> {
    let parts: Vec<Component<'_>> = path.components().collect();
    let at = parts.iter().rposition(|c| c.as_os_str() == "node_modules")?;
    let name = parts.get(at + 1)?.as_os_str().to_string_lossy();
    if name.starts_with('.') {
        return None;
    }
    let end = at + 2 + usize::from(name.starts_with('@'));
    (parts.len() >= end).then(|| parts[..end].iter().collect())
}

/// The home directories: `/home/*` and `/root`, under `root`.
pub(crate) fn homes(root: &Path) -> Vec<PathBuf> {
    let mut out = subdirs(&root.join("home"));
    out.push(root.join("root"));
    out.retain(|h| h.is_dir());
    out
}

/// The candidates under `root` (the host's `/`, or a test tree), and in the `node_modules/.bin`
/// of `cwds` and their parents; agents and interpreters first.
pub(crate) fn candidates(root: &Path, cwds: &[PathBuf], catalog: &Catalog) -> Vec<Candidate> {
    let (dirs, packages) = catalog_locations(catalog);
    let mut d = Discovery { catalog, out: Vec::new(), index: HashMap::new(), walked: HashSet::new() };
    let homes = homes(root);
    for home in &homes {
        for bin in USER_BINS.iter().flat_map(|b| expand(home, b)) {
            d.bin_dir(&bin, Take::Every);
        }
    }
    let shared = SHARED_BINS.iter().map(|b| root.join(b));
    let home_shared = homes.iter().flat_map(|h| HOME_SHARED_BINS.iter().map(move |b| h.join(b)));
    for bin in shared.chain(home_shared) {
        d.bin_dir(&bin, Take::Agents);
    }
    let modules = NODE_MODULES.iter().map(|m| root.join(m));
    let home_modules = homes.iter().flat_map(|h| HOME_NODE_MODULES.iter().flat_map(move |m| expand(h, m)));
    for nm in modules.chain(home_modules) {
        for p in &packages {
            d.package(&nm.join(p), true);
        }
    }
    for home in &homes {
        for dir in &dirs {
            d.walk(&home.join(dir), true);
        }
    }
    for cwd in cwds {
        for dir in cwd.ancestors() {
            d.bin_dir(&dir.join("node_modules/.bin"), Take::AgentsOnly);
        }
    }
    let mut out = d.out;
    out.sort_by_key(|c| !c.first);
    out
}

/// Which entries of a bin directory to take.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Take {
    /// Every executable, and the package behind every npm link.
    Every,
    /// Agents, and the package behind every npm link (a global npm install).
    Agents,
    /// Agents only, their packages included (a project's `node_modules/.bin`).
    AgentsOnly,
}

struct Discovery<'a> {
    catalog: &'a Catalog,
    out: Vec<Candidate>,
    /// Position in `out` by path.
    index: HashMap<PathBuf, usize>,
    /// Directories walked already.
    walked: HashSet<PathBuf>,
}

impl Discovery<'_> {
    fn is_agent(&self, path: &Path) -> bool {
        let p = path.to_string_lossy();
        self.catalog.identify(Some(&p), &[]).is_some()
    }

    fn is_interpreter(&self, path: &Path) -> bool {
        let p = path.to_string_lossy();
        self.catalog.is_interpreter(Some(&p), &[])
    }

    /// An executable regular file, by its resolved path (`real` has no symbolic link in it).
    fn add(&mut self, real: PathBuf, first: bool) {
        let Ok(meta) = fs::metadata(&real) else { return };
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return;
        }
        let first = first || self.is_agent(&real) || self.is_interpreter(&real);
        if let Some(&i) = self.index.get(&real) {
            self.out[i].first |= first;
        } else if self.out.len() < MAX_CANDIDATES {
            self.index.insert(real.clone(), self.out.len());
            self.out.push(Candidate { path: real, first });
        }
    }

    fn bin_dir(&mut self, dir: &Path, take: Take) {
        for (listed, real) in resolved(dir) {
            let agent = self.is_agent(&listed) || self.is_agent(&real);
            if let Some(pkg) = package_root(&real)
                && (agent || take != Take::AgentsOnly)
            {
                self.package(&pkg, agent);
            }
            let interpreter = self.is_interpreter(&listed) || self.is_interpreter(&real);
            if agent || interpreter || take == Take::Every {
                self.add(real, agent || interpreter);
            }
        }
    }

    /// A package's executables, and those of its platform packages beside it.
    fn package(&mut self, pkg: &Path, agent: bool) {
        if !pkg.is_dir() {
            return;
        }
        self.walk(pkg, agent);
        for sibling in platform_packages(pkg) {
            self.walk(&sibling, agent);
        }
    }

    /// Executables under `dir`, bounded in depth and entries; links to directories are not
    /// followed (no cycles), links to files are.
    fn walk(&mut self, dir: &Path, first: bool) {
        let Ok(real) = fs::canonicalize(dir) else { return };
        if !self.walked.insert(real.clone()) {
            return;
        }
        let mut stack = vec![(real, 0)];
        let mut entries = 0;
        while let Some((d, depth)) = stack.pop() {
            let Ok(list) = fs::read_dir(&d) else { continue };
            for e in list.flatten() {
                entries += 1;
                if entries > WALK_ENTRIES {
                    return;
                }
                let Ok(ty) = e.file_type() else { continue };
                if ty.is_dir() && depth < WALK_DEPTH {
                    stack.push((e.path(), depth + 1));
                } else if ty.is_file() {
                    self.add(e.path(), first);
                } else if let (true, Ok(target)) = (ty.is_symlink(), fs::canonicalize(e.path())) {
                    self.add(target, first);
                }
            }
        }
    }
}

/// Platform packages beside a package: `opencode-linux-x64` beside `opencode-ai`,
/// `@openai/codex-linux-x64` beside `@openai/codex`.
fn platform_packages(pkg: &Path) -> Vec<PathBuf> {
    let (Some(parent), Some(name)) = (pkg.parent(), pkg.file_name().and_then(|n| n.to_str())) else {
        return vec![];
    };
    let stem = name.split('-').next().unwrap_or(name);
    let prefix = format!("{stem}-");
    sorted(parent)
        .into_iter()
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n != name && n.starts_with(&prefix) && n.contains("linux"))
        })
        .collect()
}

/// `base` joined with `pattern`, where a `*` segment stands for every subdirectory.
fn expand(base: &Path, pattern: &str) -> Vec<PathBuf> {
    let mut out = vec![base.to_path_buf()];
    for seg in pattern.split('/') {
        out = if seg == "*" { out.iter().flat_map(|p| subdirs(p)).collect() } else { out.iter().map(|p| p.join(seg)).collect() };
    }
    out
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    sorted(dir).into_iter().filter(|p| p.is_dir()).collect()
}

/// A directory's entries in name order, as listed under `dir` and resolved (a link that leads
/// nowhere is left out). Only links are resolved: the directory itself is resolved once.
fn resolved(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let Ok(real_dir) = fs::canonicalize(dir) else { return vec![] };
    let Ok(list) = fs::read_dir(&real_dir) else { return vec![] };
    let mut out: Vec<(PathBuf, PathBuf)> = list
        .flatten()
        .filter_map(|e| {
            let link = e.file_type().ok()?.is_symlink();
            let real = if link { fs::canonicalize(e.path()).ok()? } else { e.path() };
            Some((dir.join(e.file_name()), real))
        })
        .collect();
    out.sort();
    out
}

/// A directory's entries in order (none when it cannot be read).
fn sorted(dir: &Path) -> Vec<PathBuf> {
    let Ok(list) = fs::read_dir(dir) else { return vec![] };
    let mut out: Vec<PathBuf> = list.flatten().map(|e| e.path()).collect();
    out.sort();
    out
}

