//! The kernel's agent scope, written from the daemon loop, and the fanotify marks, kept only
//! while an agent lives (a host with no agent running pays nothing for the gate).

use std::{
    collections::{HashMap as StdHashMap, HashSet},
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Duration,
};

use aya::maps::{HashMap, MapData};
use guard_common::gate::{AgentScope, SCOPE_ROOT};
use guard_core::govern::ScopeAdd;

use super::{fanotify::Fanotify, mounts};

/// Agent names by slot (slot 0: not an agent, only with `scope = "all"`), for the gate's records.
#[derive(Default)]
pub(super) struct Agents {
    names: RwLock<(Vec<Arc<str>>, StdHashMap<Arc<str>, u32>)>,
}

/// Distinct agent names kept; past it, new names share the last slot's record name.
const MAX_AGENTS: usize = 4096;

impl Agents {
    fn slot(&self, name: &Arc<str>) -> u32 {
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

    pub(super) fn name(&self, slot: u32) -> Option<Arc<str>> {
        let g = self.names.read().unwrap_or_else(|e| e.into_inner());
        g.0.get((slot as usize).checked_sub(1)?).cloned()
    }
}

pub(super) struct ScopeWriter {
    map: HashMap<MapData, u32, AgentScope>,
}

impl ScopeWriter {
    pub(super) fn new(map: HashMap<MapData, u32, AgentScope>) -> Self {
        Self { map }
    }

    pub(super) fn apply(&mut self, agents: &Agents, adds: &[ScopeAdd]) {
        for a in adds {
            let v = AgentScope { slot: agents.slot(&a.agent), flags: SCOPE_ROOT };
            tracing::info!(tgid = a.tgid, agent = %a.agent, slot = v.slot, "in the exec gate's scope");
            if let Err(e) = self.map.insert(a.tgid, v, 0) {
                tracing::warn!(tgid = a.tgid, error = %e, "an agent process could not be put in the exec gate's scope");
            }
        }
    }

    /// Drops entries of processes that are gone: an agent identified just after it exited
    /// would otherwise hold its entry for ever (the kernel drops entries at exit only).
    pub(super) fn sweep(&mut self, proc: &std::path::Path) {
        let gone: Vec<u32> = self.map.keys().filter_map(Result::ok).filter(|t| !proc.join(t.to_string()).exists()).collect();
        for t in gone {
            let _ = self.map.remove(&t);
        }
    }
}

/// The filesystems marked for exec permission events.
pub(super) struct Marks {
    /// Configured paths; empty: every filesystem that can hold programs.
    paths: Vec<PathBuf>,
    always: bool,
    marked: HashSet<PathBuf>,
    watch: Option<mounts::MountWatch>,
    armed: bool,
}

impl Marks {
    pub(super) fn new(paths: Vec<PathBuf>, always: bool) -> Self {
        let watch = if paths.is_empty() { mounts::MountWatch::open().ok() } else { None };
        Self { paths, always, marked: HashSet::new(), watch, armed: false }
    }

    /// Marks are kept whatever the agents do (`scope = "all"`).
    pub(super) fn always(&self) -> bool {
        self.always
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
                tracing::info!("exec gate disarmed: no agent alive");
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
            tracing::info!(marks = self.marked.len(), failed, "exec gate armed");
        }
        self.armed = !self.marked.is_empty();
        self.armed
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
