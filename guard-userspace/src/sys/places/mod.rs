//! The places list (`guard_core::places`): the path prefixes the kernel's `PLACES` trie and the
//! engine share. Built by [`roots`], a pure function of the host's accounts, `$TMPDIR`, the
//! `[deletions]` config and the agents' work trees, with the IO kept to two helpers: [`resolve`]
//! (symlinks, so a prefix is what the kernel's dentry walk sees) and [`worktree`] (the git top
//! level above an agent's cwd). [`PlacesWatch`] rebuilds it when the set of agents changes.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use guard_core::{
    govern::Host,
    places::{Place, PlaceRoot, Places},
};

use crate::app::config::DeletionsConfig;

/// System directories (`/var/tmp/` stays temp: a longer prefix).
const SYSTEM: [&str; 9] = ["/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/var", "/opt"];
const TEMP: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];
/// Caches under each home: rebuilt on demand by the tools that fill them.
pub(crate) const CACHES: [&str; 7] = [".cache", ".npm", ".cargo/registry", ".cargo/git", ".rustup/tmp", ".bun/install/cache", ".local/share/Trash"];

/// What the list is built from.
pub(crate) struct RootsInput<'a> {
    pub host: &'a Host,
    pub tmpdir: Option<&'a Path>,
    pub cfg: &'a DeletionsConfig,
    /// Each agent's root tgid and its work tree (already [`worktree`]d).
    pub agents: &'a [(u32, PathBuf)],
}

/// The homes of real users: root's, and those of uids 1000 to 65533 (system accounts' homes
/// such as /usr/sbin or /var/lib/x are system places, not homes).
fn homes(host: &Host) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = host
        .users
        .iter()
        .filter(|(uid, _)| **uid == 0 || (1000..65534).contains(*uid))
        .filter_map(|(_, u)| u.home.clone())
        .filter(|h| h.is_absolute() && h.parent().is_some())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// `p` as a prefix: resolved, ending with `/`.
fn prefix(p: &Path, resolve: &dyn Fn(&Path) -> PathBuf) -> String {
    let mut s = resolve(p).display().to_string();
    if !s.ends_with('/') {
        s.push('/');
    }
    s
}

/// `~/x` under `home`, or an absolute path as is.
fn under(home: &Path, entry: &str) -> PathBuf {
    entry.strip_prefix("~/").map_or_else(|| PathBuf::from(entry), |rest| home.join(rest))
}

/// The list for `input`; `resolve` resolves symlinks ([`resolve`] in the daemon).
pub(crate) fn roots(input: &RootsInput<'_>, resolve: &dyn Fn(&Path) -> PathBuf) -> Vec<PlaceRoot> {
    let enforced = input.cfg.enforced();
    let mut by_prefix: BTreeMap<String, (Place, bool, u32)> = BTreeMap::new();
    let mut add = |p: &Path, place: Place, sensitive: bool, owner: u32| {
        by_prefix.entry(prefix(p, resolve)).or_insert((place, sensitive, owner));
    };
    let homes = homes(input.host);
    for h in &homes {
        for p in input.cfg.protected.iter().filter(|p| p.starts_with("~/")) {
            add(&under(h, p), Place::Home, true, 0);
        }
        for c in CACHES.iter().map(|c| format!("~/{c}")).chain(input.cfg.cache.iter().filter(|c| c.starts_with("~/")).cloned()) {
            add(&under(h, &c), Place::Cache, false, 0);
        }
    }
    for c in input.cfg.cache.iter().filter(|c| c.starts_with('/')) {
        add(Path::new(c), Place::Cache, false, 0);
    }
    let temps: Vec<PathBuf> = TEMP.iter().map(PathBuf::from).chain(input.tmpdir.map(Path::to_path_buf)).chain(input.cfg.temp.iter().cloned()).collect();
    for t in temps.iter().filter(|t| t.is_absolute() && t.parent().is_some()) {
        add(t, Place::Temp, false, 0);
    }
    for h in &homes {
        add(h, Place::Home, false, 0);
    }
    for s in SYSTEM {
        add(Path::new(s), Place::System, false, 0);
    }
    add(Path::new("/"), Place::Outside, false, 0);
    // Absolute protected dirs take the place the rest gives them.
    let fixed = places_of(&by_prefix, &enforced);
    for p in input.cfg.protected.iter().filter(|p| p.starts_with('/')) {
        let pre = prefix(Path::new(p), resolve);
        let place = fixed.classify(&pre, 0).place;
        by_prefix.insert(pre, (place, true, 0));
    }
    let fixed_prefixes: Vec<String> = by_prefix.keys().cloned().collect();
    for (owner, tree) in input.agents {
        let pre = prefix(tree, resolve);
        // A work tree at or above a fixed place (an agent started in `~` or `/`) would turn it
        // into the agent's own: it stays what it is.
        if let Some(f) = fixed_prefixes.iter().find(|f| f.starts_with(pre.as_str())) {
            tracing::debug!(agent = owner, tree = %pre, covers = %f, "not a work tree: at or above a fixed place");
            continue;
        }
        by_prefix.entry(pre).or_insert((Place::Worktree, false, *owner));
    }
    places_of(&by_prefix, &enforced).roots().to_vec()
}

fn places_of(by_prefix: &BTreeMap<String, (Place, bool, u32)>, enforced: &[Place]) -> Places {
    Places::new(
        by_prefix
            .iter()
            .map(|(prefix, (place, sensitive, owner))| PlaceRoot {
                prefix: prefix.clone(),
                place: *place,
                protect: *sensitive || enforced.contains(place),
                owner: *owner,
                sensitive: *sensitive,
            })
            .collect(),
    )
}

/// `p` with its symlinks resolved; as given when it does not exist (it may later).
pub(crate) fn resolve(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// An agent's work tree: the git top level at or above its cwd (a directory holding `.git`, a
/// directory or a worktree's file), else the cwd itself.
pub(crate) fn worktree(cwd: &Path) -> PathBuf {
    let cwd = resolve(cwd);
    cwd.ancestors().find(|d| d.join(".git").exists()).map_or_else(|| cwd.clone(), Path::to_path_buf)
}

/// Keeps the list current as agents come and go.
pub(crate) struct PlacesWatch {
    cfg: DeletionsConfig,
    host: Host,
    tmpdir: Option<PathBuf>,
    /// (root tgid, cwd) → work tree, as last seen.
    trees: BTreeMap<(u32, String), PathBuf>,
    /// The agent roots of the last update, with a cwd or not.
    roots_seen: std::collections::BTreeSet<u32>,
    current: Vec<PlaceRoot>,
    started: bool,
}

impl PlacesWatch {
    pub(crate) fn new(cfg: DeletionsConfig, host: Host, tmpdir: Option<PathBuf>) -> Self {
        Self { cfg, host, tmpdir, trees: BTreeMap::new(), roots_seen: Default::default(), current: Vec::new(), started: false }
    }

    /// The list as last returned.
    pub(crate) fn current(&self) -> &[PlaceRoot] {
        &self.current
    }

    /// The list for the agents now running (root tgid, cwd), if it differs from the last one
    /// (the first call always returns it). Only a new (agent, cwd) costs IO, and an agent whose
    /// cwd the table lacks (read from /proc).
    /// Whether `root` is an agent the last update did not have: only then is an update worth
    /// its cost (it resolves every place's path) before the periodic one. Forks in an agent's
    /// tree name their agent's root again.
    pub(crate) fn is_new_root(&self, root: u32) -> bool {
        !self.roots_seen.contains(&root)
    }

    pub(crate) fn update(&mut self, agents: &[(u32, Option<String>)]) -> Option<&[PlaceRoot]> {
        let mut trees = BTreeMap::new();
        self.roots_seen = agents.iter().map(|(t, _)| *t).collect();
        for (tgid, cwd) in agents {
            let cwd = cwd.clone().or_else(|| std::fs::read_link(format!("/proc/{tgid}/cwd")).ok().map(|p| p.display().to_string()));
            let Some(cwd) = cwd.filter(|c| c.starts_with('/')) else { continue };
            let key = (*tgid, cwd.clone());
            let tree = self.trees.remove(&key).unwrap_or_else(|| worktree(Path::new(&cwd)));
            trees.insert(key, tree);
        }
        self.trees = trees;
        let agents: Vec<(u32, PathBuf)> = self.trees.iter().map(|((t, _), w)| (*t, w.clone())).collect();
        let input = RootsInput { host: &self.host, tmpdir: self.tmpdir.as_deref(), cfg: &self.cfg, agents: &agents };
        let next = roots(&input, &resolve);
        if self.started && next == self.current {
            return None;
        }
        self.started = true;
        self.current = next;
        Some(&self.current)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests;
