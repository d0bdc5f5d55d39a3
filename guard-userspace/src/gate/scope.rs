//! The kernel's agent scope, written from the daemon loop, and the fanotify marks, kept only
//! while an agent lives (a host with no agent running pays nothing for the gate).

use std::{
    collections::{HashMap as StdHashMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use aya::maps::{HashMap, MapData};
use guard_common::gate::{AgentScope, SCOPE_PROVISIONAL, SCOPE_ROOT};
use guard_core::govern::ScopeAdd;

use super::{fanotify::Fanotify, mounts};

/// Agent names by slot (slot 0: not a known agent), for the gate's records; and what the engine
/// found out about the roots of provisional scope entries (`SCOPE_PROVISIONAL`).
#[derive(Default)]
pub(super) struct Agents {
    names: RwLock<Names>,
    /// Root tgid → its agent's slot, or 0 when its traffic showed it is no agent.
    resolved: RwLock<StdHashMap<u32, u32>>,
}

/// Agent names by slot - 1, and slots by name.
type Names = (Vec<Arc<str>>, StdHashMap<Arc<str>, u32>);

/// Resolutions kept; the oldest processes are long gone when it fills, so it is simply cleared.
const MAX_RESOLVED: usize = 65_536;

/// Distinct agent names kept; past it, new names share the last slot's record name.
const MAX_AGENTS: usize = 4096;

impl Agents {
    pub(super) fn slot(&self, name: &Arc<str>) -> u32 {
        let mut g = self.names.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&s) = g.1.get(name) {
            return s;
        }
        if g.0.len() >= MAX_AGENTS {
            return g.0.len() as u32;
        }
        g.0.push(name.clone());
        let s = g.0.len() as u32;
        g.1.insert(name.clone(), s);
        s
    }

    /// What is known of a provisional root: `Some(slot)` (0: no agent), `None`: not yet.
    pub(super) fn resolution(&self, root: u32) -> Option<u32> {
        self.resolved.read().unwrap_or_else(|e| e.into_inner()).get(&root).copied()
    }

    /// Records a resolution; returns whether it is new.
    pub(super) fn resolve(&self, root: u32, slot: u32) -> bool {
        let mut g = self.resolved.write().unwrap_or_else(|e| e.into_inner());
        if g.len() >= MAX_RESOLVED {
            g.clear();
        }
        g.insert(root, slot) != Some(slot)
    }

    pub(super) fn name(&self, slot: u32) -> Option<Arc<str>> {
        let g = self.names.read().unwrap_or_else(|e| e.into_inner());
        g.0.get((slot as usize).checked_sub(1)?).cloned()
    }
}

pub(super) struct ScopeWriter {
    map: HashMap<MapData, u32, AgentScope>,
    /// Identified agents' root tgids that may still live (dropped by `sweep`).
    roots: HashSet<u32>,
}

impl ScopeWriter {
    pub(super) fn new(map: HashMap<MapData, u32, AgentScope>) -> Self {
        Self { map, roots: HashSet::new() }
    }

    /// Whether an identified agent may still live.
    pub(super) fn has_roots(&self) -> bool {
        !self.roots.is_empty()
    }

    pub(super) fn apply(&mut self, agents: &Agents, adds: &[ScopeAdd]) {
        for a in adds {
            let v = AgentScope { slot: agents.slot(&a.agent), flags: SCOPE_ROOT, root: a.root, _pad: 0 };
            agents.resolve(a.tgid, v.slot);
            self.roots.insert(a.tgid);
            tracing::debug!(tgid = a.tgid, agent = %a.agent, slot = v.slot, "in the exec gate's scope");
            if let Err(e) = self.map.insert(a.tgid, v, 0) {
                tracing::warn!(tgid = a.tgid, error = %e, "an agent process could not be put in the exec gate's scope");
            }
        }
    }

    /// A client whose exchange was no inference call is no agent (unless it was found to be one):
    /// its provisional entries, and its descendants', leave the kernel's scope.
    pub(super) fn not_an_agent(&mut self, agents: &Agents, tgid: u32) {
        if agents.resolution(tgid).is_some_and(|s| s != 0) || !agents.resolve(tgid, 0) {
            return;
        }
        let gone: Vec<u32> = self
            .map
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, v)| v.root == tgid && v.flags & SCOPE_PROVISIONAL != 0)
            .map(|(k, _)| k)
            .collect();
        for t in gone {
            let _ = self.map.remove(&t);
        }
    }

    /// Drops entries of processes that are gone: an agent identified just after it exited
    /// would otherwise hold its entry for ever (the kernel drops entries at exit only).
    pub(super) fn sweep(&mut self, proc: &std::path::Path) {
        self.roots.retain(|t| proc.join(t.to_string()).exists());
        let gone: Vec<u32> = self.map.keys().filter_map(Result::ok).filter(|t| !proc.join(t.to_string()).exists()).collect();
        for t in gone {
            let _ = self.map.remove(&t);
        }
    }
}

/// The filesystems marked for exec permission events: all of them, from start to stop. Marks
/// placed only while an agent lives would save non-agents the fanotify round trip, but a
/// zero-config agent is known only after its first call, and its first tool would then meet
/// the stop (SIGKILL) rather than EPERM: always armed is the predictable choice.
pub(super) struct Marks {
    /// Configured paths; empty: every filesystem that can hold programs.
    paths: Vec<PathBuf>,
    marked: HashSet<PathBuf>,
    watch: Option<mounts::MountWatch>,
    armed: bool,
}

impl Marks {
    pub(super) fn new(paths: Vec<PathBuf>) -> Self {
        let watch = if paths.is_empty() { mounts::MountWatch::open().ok() } else { None };
        Self { paths, marked: HashSet::new(), watch, armed: false }
    }

    /// Brings the marks to `wanted`, marking new mounts while armed. Returns whether armed.
    pub(super) fn sync(&mut self, fan: &Fanotify, wanted: bool) -> bool {
        if !wanted {
            if self.armed {
                if let Err(e) = fan.flush() {
                    tracing::warn!(error = %e, "removing the exec gate's marks failed");
                }
                self.marked.clear();
                self.armed = false;
                tracing::info!("exec gate disarmed");
            }
            return false;
        }
        let changed = match self.watch.as_mut() {
            Some(w) => w.changed(Duration::ZERO).unwrap_or(false),
            None => false,
        };
        if self.armed && !changed {
            return true;
        }
        let targets = self.targets();
        let mut failed = 0;
        for p in targets {
            if self.marked.contains(&p) {
                continue;
            }
            match fan.mark_fs(&p) {
                Ok(()) => {
                    self.marked.insert(p);
                }
                Err(e) => {
                    failed += 1;
                    tracing::debug!(path = %p.display(), error = %e, "filesystem not marked");
                }
            }
        }
        if !self.armed {
            let loaders = ignore_loaders(fan);
            tracing::info!(marks = self.marked.len(), failed, loaders, "exec gate armed");
        }
        self.armed = !self.marked.is_empty();
        self.armed
    }

    /// Puts the loaders' ignore marks back (a flush of the inode marks removes them, and an
    /// upgrade replaces the loader's inode). Only while armed.
    pub(super) fn keep_loaders_ignored(&self, fan: &Fanotify) {
        if self.armed {
            ignore_loaders(fan);
        }
    }

    fn targets(&mut self) -> Vec<PathBuf> {
        if !self.paths.is_empty() {
            return self.paths.clone();
        }
        let text = match self.watch.as_mut().map(mounts::MountWatch::read) {
            Some(Ok(t)) => t,
            _ => std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
        };
        mounts::exec_superblocks(&text).mounts.into_iter().map(|m| m.path).collect()
    }
}

/// The host's dynamic loaders. Every exec of a dynamic program raises a second exec event for its
/// loader, after the program's own, which the kernel opens as part of the same execve; guard has
/// judged that exec at its first event already. Ignoring the loaders' events halves the gate's
/// round trips for everyone (`cargo xtask bench gate`). A loader run directly (`ld.so PROGRAM`)
/// then raises no event at all: an agent's such exec is judged by the stop at its end
/// (`stops.rs`), as a memfd exec is, and the rules unwrap the loader.
const LOADERS: [&str; 6] = [
    "/lib64/ld-linux-x86-64.so.2",
    "/lib/ld-linux-aarch64.so.1",
    "/lib/ld-linux-x86-64.so.2",
    "/lib/ld-linux.so.2",
    "/lib/ld-musl-x86_64.so.1",
    "/lib/ld-musl-aarch64.so.1",
];

/// Marks the loaders that exist as ignored; returns how many.
fn ignore_loaders(fan: &Fanotify) -> usize {
    let mut n = 0;
    for l in LOADERS {
        match fan.ignore_exec(Path::new(l)) {
            Ok(()) => n += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::debug!(loader = l, error = %e, "loader's exec events not ignored"),
        }
    }
    n
}
