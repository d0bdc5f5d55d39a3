//! The process table: one entry per process incarnation, keyed by (pid, start time), fed by fork,
//! exec and exit events and seeded from /proc. Sans-IO: time comes in with the events and
//! [`ProcessTable::tick`].

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    sync::Arc,
};

use serde::Serialize;

use super::{
    agents::{Catalog, basename},
    images::Images,
    script::Script,
};
use crate::events::{
    Exit, Fork,
    exec_join::{ExecOutcome, ExecRecord},
};

/// `/proc/PID/stat` start times are in USER_HZ (100) ticks; kernel events carry nanoseconds.
/// Keys use ticks so both sources agree.
pub const NS_PER_TICK: u64 = 10_000_000;

/// One process incarnation: a reused pid has a different start time, so a different key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ProcKey {
    pub pid: u32,
    pub start_ticks: u64,
}

impl ProcKey {
    pub const fn from_ns(pid: u32, start_time_ns: u64) -> Self {
        Self {
            pid,
            start_ticks: start_time_ns / NS_PER_TICK,
        }
    }
}

/// Zero-config marking: this process made an LLM inference call.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Inference {
    No,
    Label(Arc<str>),
}

#[derive(Clone, Debug)]
pub struct Process {
    pub key: ProcKey,
    /// The parent at fork time (kept when the process is re-parented later).
    pub parent: Option<ProcKey>,
    pub exe: Option<String>,
    pub argv: Vec<String>,
    pub comm: Option<String>,
    pub uid: Option<u32>,
    /// Filled by the IO side (seed, or a /proc read at exec time).
    pub cwd: Option<String>,
    /// The cgroup path (v2), e.g. `/system.slice/docker-<id>.scope`.
    pub cgroup: Option<String>,
    /// Agent environment markers (name, value), only names in the catalog's closed set.
    pub markers: Vec<(String, String)>,
    pub exited_at_ns: Option<u64>,
    catalog: Option<usize>,
    inference: Inference,
}

impl Process {
    fn new(key: ProcKey) -> Self {
        Self {
            key,
            parent: None,
            exe: None,
            argv: Vec::new(),
            comm: None,
            uid: None,
            cwd: None,
            cgroup: None,
            markers: Vec::new(),
            exited_at_ns: None,
            catalog: None,
            inference: Inference::No,
        }
    }

    /// The program's short name: executable basename, else `argv[0]`'s, else comm.
    pub fn name(&self) -> &str {
        self.exe
            .as_deref()
            .or(self.argv.first().map(String::as_str))
            .map(basename)
            .or(self.comm.as_deref())
            .unwrap_or("?")
    }

}

/// How an agent was recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// A catalog entry matched the program.
    Catalog,
    /// Not in the catalog, but the process made an inference call.
    ZeroConfig,
    /// Only an environment marker the agent sets tells (the tree does not reach the agent).
    EnvMarker,
}

/// The agent a process belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgentRef {
    /// Catalog id, or the zero-config label (sanitised executable name, or `other`).
    #[serde(serialize_with = "as_str")]
    pub id: Arc<str>,
    pub kind: AgentKind,
    /// The agent's process (for env markers: the process carrying the marker).
    pub key: ProcKey,
}

#[derive(Clone, Debug)]
pub struct TableLimits {
    /// Entries kept at most; beyond, exited then oldest non-agent entries are evicted.
    pub max_entries: usize,
    /// How long an exited process stays, so late events (TLS data, exec records) still attribute.
    pub exit_linger_ns: u64,
    /// How long an inference mark for a process not yet seen waits for its fork or exec.
    pub park_ttl_ns: u64,
    pub max_parked: usize,
    /// Distinct zero-config labels; more become `other`.
    pub max_labels: usize,
    /// Ancestry walks stop here (cycles, very deep trees).
    pub max_depth: usize,
}

impl Default for TableLimits {
    fn default() -> Self {
        Self {
            // A busy build host runs a few thousand processes; 64k entries is a few tens of MB.
            max_entries: 65_536,
            exit_linger_ns: 30_000_000_000,
            park_ttl_ns: 5_000_000_000,
            max_parked: 1_024,
            max_labels: 32,
            max_depth: 64,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableStats {
    pub entries: u64,
    pub evictions: u64,
    pub parked: u64,
    pub parked_expired: u64,
    pub label_overflow: u64,
}

/// A process as read from /proc (at start, or when the table meets a pid it has not seen).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SeedProcess {
    pub pid: u32,
    pub ppid: u32,
    /// Start time in USER_HZ (100) ticks since boot.
    pub start_ticks: u64,
    pub uid: Option<u32>,
    pub exe: Option<String>,
    pub argv: Vec<String>,
    pub comm: Option<String>,
    pub cwd: Option<String>,
    pub cgroup: Option<String>,
    pub markers: Vec<(String, String)>,
}

/// The table's maps hash with foldhash: a walk up an agent tree is a lookup per ancestor, and
/// SipHash was a tenth of the daemon loop's CPU in an exec loop's profile. Keys are pids and
/// start times the kernel gives, not attacker-chosen strings.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub struct ProcessTable {
    catalog: Arc<Catalog>,
    limits: TableLimits,
    procs: Map<ProcKey, Process>,
    /// The newest incarnation of each pid.
    by_pid: Map<u32, ProcKey>,
    /// Insertion order, for eviction (stale keys are skipped and compacted).
    order: VecDeque<ProcKey>,
    exited: VecDeque<(u64, ProcKey)>,
    /// Inference marks waiting for their process to appear, with the time they were parked.
    parked: Map<ProcKey, u64>,
    labels: BTreeSet<Arc<str>>,
    images: Images,
    stats: TableStats,
}

impl ProcessTable {
    pub fn new(catalog: Arc<Catalog>, limits: TableLimits) -> Self {
        Self {
            catalog,
            limits,
            procs: Map::default(),
            by_pid: Map::default(),
            order: VecDeque::new(),
            exited: VecDeque::new(),
            parked: Map::default(),
            labels: BTreeSet::new(),
            images: Images::default(),
            stats: TableStats::default(),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    pub fn stats(&self) -> TableStats {
        TableStats {
            entries: self.procs.len() as u64,
            ..self.stats
        }
    }

    /// The newest incarnation of `pid`.
    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.by_pid.get(&pid).and_then(|k| self.procs.get(k))
    }

    pub fn get_key(&self, key: ProcKey) -> Option<&Process> {
        self.procs.get(&key)
    }

    /// Loads processes read from /proc when the daemon starts; parents are linked by ppid.
    pub fn seed(&mut self, procs: Vec<SeedProcess>) {
        let mut keys = Vec::with_capacity(procs.len());
        for s in procs {
            let key = ProcKey {
                pid: s.pid,
                start_ticks: s.start_ticks,
            };
            keys.push((key, s.ppid));
            let p = self.entry(key);
            p.exe = s.exe;
            p.argv = s.argv;
            p.comm = s.comm;
            p.uid = s.uid;
            p.cwd = s.cwd;
            p.cgroup = s.cgroup;
            p.markers = s.markers;
            self.identify(key);
        }
        for (key, ppid) in keys {
            let parent = self.by_pid.get(&ppid).copied().filter(|pk| *pk != key);
            if let Some(p) = self.procs.get_mut(&key) {
                p.parent = parent;
            }
        }
    }

    pub fn on_fork(&mut self, f: &Fork) {
        let key = ProcKey::from_ns(f.child_pid, f.child_start_time_ns);
        let parent = ProcKey::from_ns(f.parent_pid, f.parent_start_time_ns);
        let known = self.procs.contains_key(&key)
            && self
                .procs
                .get(&key)
                .is_some_and(|p| p.exe.is_some() || !p.argv.is_empty());
        let image = self.procs.get(&parent).map(|pp| {
            (
                pp.exe.clone(),
                pp.argv.clone(),
                pp.cwd.clone(),
                pp.cgroup.clone(),
                pp.markers.clone(),
                pp.uid,
                pp.catalog,
            )
        });
        let copied = !known && image.is_some();
        let p = self.entry(key);
        p.parent = Some(parent);
        p.uid = p.uid.or(Some(f.uid));
        if p.comm.is_none() {
            p.comm = Some(f.comm.clone());
        }
        // An exec seen before this fork already set the child's own image; keep it.
        if !known && let Some((exe, argv, cwd, cgroup, markers, _, catalog)) = image {
            p.exe = exe;
            p.argv = argv;
            p.cwd = cwd;
            p.cgroup = cgroup;
            p.markers = markers;
            p.catalog = catalog;
        }
        // A copy of the parent's image is what the parent was: the catalog was matched on it.
        if !copied {
            self.identify(key);
        }
        // The mark may belong to the program this child is about to exec: keep it parked until
        // the exec (or its expiry) too.
        if self.parked.contains_key(&key) {
            self.mark(key);
        }
    }

    /// A finished exec attempt: only one that ran changes the image.
    pub fn on_exec(&mut self, r: &ExecRecord) {
        let (ExecOutcome::Ran, Some(start)) = (&r.outcome, r.start_time_ns) else {
            return;
        };
        let key = ProcKey::from_ns(r.pid, start);
        let parent = r
            .ppid
            .and_then(|pp| self.by_pid.get(&pp).copied())
            .filter(|pk| pk.pid != r.pid);
        let p = self.entry(key);
        p.exe = Some(r.exe.clone().unwrap_or_else(|| r.filename.clone()));
        p.argv = r.argv.clone();
        p.uid = r.uid.or(p.uid);
        p.inference = Inference::No;
        if p.parent.is_none() {
            p.parent = parent;
        }
        self.identify(key);
        self.resolve_parked(key);
    }

    /// Marks the process exited; it is dropped `exit_linger_ns` later by [`Self::tick`].
    pub fn on_exit(&mut self, x: &Exit) {
        let key = ProcKey::from_ns(x.pid, x.start_time_ns);
        let p = self.entry(key);
        if p.comm.is_none() {
            p.comm = Some(x.comm.clone());
        }
        if p.exited_at_ns.is_none() {
            p.exited_at_ns = Some(x.ts_ns);
            self.exited.push_back((x.ts_ns, key));
        }
    }

    /// Feeds one pipeline output (fork, exec, exit); streams and exchanges are ignored.
    pub fn observe(&mut self, out: &crate::pipeline::Output) {
        use crate::pipeline::Output;
        match out {
            Output::Fork(f) => self.on_fork(f),
            Output::Exec(r) => self.on_exec(r),
            Output::Exit(x) => self.on_exit(x),
            Output::Stream(_) | Output::Exchange(_) | Output::InferenceRequest { .. } | Output::ToolCalls { .. } | Output::ApiRequest { .. } | Output::PausedWrite { .. } | Output::Delete(_) => {}
        }
    }

    /// Sets the working directory the IO side read (e.g. /proc/PID/cwd at exec time).
    pub fn set_cwd(&mut self, key: ProcKey, cwd: String) {
        if let Some(p) = self.procs.get_mut(&key) {
            p.cwd = Some(cwd);
        }
    }

    /// Drops processes that exited more than the linger ago, and stale parked marks.
    pub fn tick(&mut self, now_ns: u64) {
        while let Some(&(at, key)) = self.exited.front() {
            if now_ns.saturating_sub(at) < self.limits.exit_linger_ns {
                break;
            }
            self.exited.pop_front();
            if self
                .procs
                .get(&key)
                .is_some_and(|p| p.exited_at_ns == Some(at))
            {
                self.remove(key);
            }
        }
        let ttl = self.limits.park_ttl_ns;
        let before = self.parked.len();
        self.parked.retain(|_, at| now_ns.saturating_sub(*at) < ttl);
        self.stats.parked_expired += (before - self.parked.len()) as u64;
    }

    /// Zero-config detection: the process `(pid, start_time_ns)` made an LLM inference call.
    /// It becomes an agent (labelled by its program) unless it already is one, or it is a generic
    /// interpreter whose parent tree already is an agent (a helper script of that agent).
    /// A process not seen yet is parked until its fork or exec arrives.
    pub fn mark_inference(
        &mut self,
        pid: u32,
        start_time_ns: u64,
        now_ns: u64,
    ) -> Option<AgentRef> {
        let key = ProcKey::from_ns(pid, start_time_ns);
        if !self.procs.contains_key(&key) {
            if self.parked.len() >= self.limits.max_parked
                && !self.parked.contains_key(&key)
                && let Some(old) = self
                    .parked
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| *k)
            {
                self.parked.remove(&old);
                self.stats.parked_expired += 1;
            }
            self.parked.insert(key, now_ns);
            self.stats.parked += 1;
            return None;
        }
        self.mark(key);
        self.agent_of_key(key)
    }

    /// [`Self::mark_inference`] for the newest incarnation of `pid` (TLS events carry the pid
    /// only). `None` when the pid is unknown: the caller may seed it from /proc and retry.
    pub fn mark_inference_pid(&mut self, pid: u32) -> Option<AgentRef> {
        let key = *self.by_pid.get(&pid)?;
        self.mark(key);
        self.agent_of_key(key)
    }

    /// The nearest agent at or above `pid`'s newest incarnation.
    pub fn agent_of(&self, pid: u32) -> Option<AgentRef> {
        self.by_pid.get(&pid).and_then(|k| self.agent_of_key(*k))
    }

    /// The nearest agent at or above `key`: the process itself, then its ancestors (through
    /// shells, sudo, env, xargs, interpreters: all of them fork or exec below the agent). When
    /// the tree does not reach one, the nearest environment marker decides.
    pub fn agent_of_key(&self, key: ProcKey) -> Option<AgentRef> {
        let mut marker: Option<AgentRef> = None;
        let mut cur = Some(key);
        for _ in 0..self.limits.max_depth {
            let Some(p) = cur.and_then(|k| self.procs.get(&k)) else {
                break;
            };
            if let Some(a) = self.own_agent(p) {
                return Some(a);
            }
            if marker.is_none() {
                marker = self
                    .catalog
                    .identify_env(&p.markers)
                    .and_then(|i| self.catalog.get(i))
                    .map(|a| AgentRef {
                        id: Arc::from(a.id.as_str()),
                        kind: AgentKind::EnvMarker,
                        key: p.key,
                    });
            }
            cur = p.parent;
        }
        marker
    }

    /// Live processes per agent (each agent's own process and everything below it), for the
    /// `guard_agent_processes` gauge. Walks every entry's ancestry: call it every few seconds,
    /// not per event.
    pub fn agent_counts(&self) -> std::collections::BTreeMap<Arc<str>, i64> {
        let mut out = std::collections::BTreeMap::new();
        for (_, agent) in self.agent_processes() {
            *out.entry(agent).or_insert(0) += 1;
        }
        out
    }

    /// Every live agent process itself (the process an agent was identified at, not its
    /// descendants), with its cwd: whose work trees the places list holds (`crate::places`).
    pub fn agent_roots(&self) -> Vec<(u32, Option<String>)> {
        let mut out: Vec<_> = self
            .procs
            .values()
            .filter(|p| p.exited_at_ns.is_none())
            .filter(|p| self.agent_of_key(p.key).is_some_and(|a| a.key == p.key))
            .map(|p| (p.key.pid, p.cwd.clone()))
            .collect();
        out.sort();
        out
    }

    /// Every live process attributed to an agent, with the agent (same walk as `agent_counts`).
    pub fn agent_processes(&self) -> Vec<(u32, Arc<str>)> {
        self.procs
            .values()
            .filter(|p| p.exited_at_ns.is_none())
            .filter_map(|p| Some((p.key.pid, self.agent_of_key(p.key)?.id)))
            .collect()
    }

    /// The agent's own process for a process of its tree: the top of the unbroken run of
    /// ancestors, from `key` up, that agent `id` is the agent of. A fork of the agent, or a
    /// nested instance of it, belongs to that top process.
    pub fn agent_root(&self, key: ProcKey, id: &str) -> u32 {
        let mut root = key;
        let mut up = self.procs.get(&key).and_then(|p| p.parent);
        for _ in 0..self.limits.max_depth {
            let Some(k) = up.filter(|k| self.agent_of_key(*k).is_some_and(|a| &*a.id == id)) else {
                break;
            };
            root = k;
            up = self.procs.get(&k).and_then(|p| p.parent);
        }
        root.pid
    }

    /// Live processes at or below `root` that `agent` is the agent of, by pid: what an agent
    /// newly identified at `root` brings into scope. Walks every entry's ancestry: call it when
    /// an identification changes, not per event.
    pub fn agent_tree(&self, root: ProcKey, agent: &AgentRef) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .procs
            .values()
            .filter(|p| p.exited_at_ns.is_none() && self.descends_from(p.key, root))
            .filter(|p| {
                self.agent_of_key(p.key)
                    .is_some_and(|a| a.key == agent.key && a.id == agent.id)
            })
            .map(|p| p.key.pid)
            .collect();
        out.sort_unstable();
        out
    }

    /// `key` is `root` or below it (within the walk's depth).
    fn descends_from(&self, key: ProcKey, root: ProcKey) -> bool {
        let mut cur = Some(key);
        for _ in 0..self.limits.max_depth {
            match cur {
                Some(k) if k == root => return true,
                Some(k) => cur = self.procs.get(&k).and_then(|p| p.parent),
                None => return false,
            }
        }
        false
    }

    /// Program names from the oldest known ancestor down to `pid` (for the audit log).
    pub fn chain(&self, pid: u32) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = self.by_pid.get(&pid).copied();
        for _ in 0..self.limits.max_depth {
            let Some(p) = cur.and_then(|k| self.procs.get(&k)) else {
                break;
            };
            out.push(p.name().to_owned());
            cur = p.parent;
        }
        out.reverse();
        out
    }

    /// A key for [`crate::rules::Dedup`]: the agent's process, else the uid.
    pub fn dedup_scope(&self, pid: u32) -> u64 {
        match self.agent_of(pid).map(|a| self.outermost(a)) {
            Some(a) => (u64::from(a.key.pid) << 32) ^ a.key.start_ticks ^ (1 << 63),
            None => self
                .get(pid)
                .and_then(|p| p.uid)
                .map_or(u64::MAX, u64::from),
        }
    }

    /// The highest agent of the same id above `a`: a forked copy of an agent is that agent too
    /// until it execs, and a command judged in that moment (the exec gate judges before the
    /// exec record arrives) must share its agent's de-duplication scope.
    fn outermost(&self, mut a: AgentRef) -> AgentRef {
        for _ in 0..64 {
            let above = self.procs.get(&a.key).and_then(|p| p.parent).and_then(|k| self.agent_of_key(k));
            match above {
                Some(b) if b.id == a.id && b.key != a.key => a = b,
                _ => break,
            }
        }
        a
    }

    fn own_agent(&self, p: &Process) -> Option<AgentRef> {
        if let Some(a) = p.catalog.and_then(|i| self.catalog.get(i)) {
            return Some(AgentRef {
                id: Arc::from(a.id.as_str()),
                kind: AgentKind::Catalog,
                key: p.key,
            });
        }
        match &p.inference {
            Inference::Label(l) => Some(AgentRef {
                id: l.clone(),
                kind: AgentKind::ZeroConfig,
                key: p.key,
            }),
            Inference::No => None,
        }
    }

    fn mark(&mut self, key: ProcKey) {
        let Some(p) = self.procs.get(&key) else {
            return;
        };
        if p.catalog.is_some() || p.inference != Inference::No {
            return;
        }
        let interpreter = self.catalog.is_interpreter(p.exe.as_deref(), &p.argv);
        if interpreter && p.parent.and_then(|pk| self.agent_of_key(pk)).is_some() {
            return;
        }
        let label = self.label_for(key);
        if let Some(p) = self.procs.get_mut(&key) {
            p.inference = Inference::Label(label);
        }
    }

    /// Zero-config label: the script an interpreter runs (`python3 agent.py` → `agent`), else the
    /// executable's name, cleaned as an agent label ([`crate::labels`]); at most `max_labels` distinct, else `other`.
    fn label_for(&mut self, key: ProcKey) -> Arc<str> {
        let raw = match self.procs.get(&key) {
            // A script on stdin or code on the command line (`python3 - ARG`, `node -e CODE`)
            // names no script: the interpreter is the label.
            Some(p) => match self.catalog.script_of(p.exe.as_deref(), &p.argv) {
                Some(Script { module: Some(m), .. }) => m.to_owned(),
                Some(Script { path: Some(path), .. }) => stem(basename(path)).to_owned(),
                _ => p.name().to_owned(),
            },
            None => String::new(),
        };
        let label = crate::labels::clean(crate::labels::Kind::Agent, &raw).unwrap_or_else(|| "other".to_owned());
        if let Some(l) = self.labels.get(label.as_str()) {
            return l.clone();
        }
        if self.labels.len() >= self.limits.max_labels {
            self.stats.label_overflow += 1;
            return Arc::from("other");
        }
        let l: Arc<str> = Arc::from(label.as_str());
        self.labels.insert(l.clone());
        l
    }

    fn identify(&mut self, key: ProcKey) {
        let Some(p) = self.procs.get(&key) else {
            return;
        };
        let id = self.images.identify(&self.catalog, p.exe.as_deref(), &p.argv);
        if let Some(p) = self.procs.get_mut(&key) {
            p.catalog = id;
        }
    }

    fn resolve_parked(&mut self, key: ProcKey) {
        if self.parked.remove(&key).is_some() {
            self.mark(key);
        }
    }

    /// The entry for `key`, created (evicting if full) when new.
    fn entry(&mut self, key: ProcKey) -> &mut Process {
        if !self.procs.contains_key(&key) {
            if self.procs.len() >= self.limits.max_entries.max(1) {
                self.evict_one();
            }
            self.procs.insert(key, Process::new(key));
            self.order.push_back(key);
            if self
                .by_pid
                .get(&key.pid)
                .is_none_or(|old| old.start_ticks <= key.start_ticks)
            {
                self.by_pid.insert(key.pid, key);
            }
            if self.order.len() > 2 * self.procs.len() + 64 {
                let procs = &self.procs;
                self.order.retain(|k| procs.contains_key(k));
            }
        }
        self.procs.entry(key).or_insert_with(|| Process::new(key))
    }

    fn remove(&mut self, key: ProcKey) {
        self.procs.remove(&key);
        if self.by_pid.get(&key.pid) == Some(&key) {
            self.by_pid.remove(&key.pid);
        }
    }

    /// Exited processes go first; then the oldest entries that are not agents (agents are few and
    /// long-lived, and everything below them needs them).
    fn evict_one(&mut self) {
        self.stats.evictions += 1;
        while let Some((_, key)) = self.exited.pop_front() {
            if self.procs.contains_key(&key) {
                self.remove(key);
                return;
            }
        }
        let mut spared = 0;
        while let Some(key) = self.order.pop_front() {
            let Some(p) = self.procs.get(&key) else {
                continue;
            };
            if self.own_agent(p).is_some() && spared < self.procs.len() {
                spared += 1;
                self.order.push_back(key);
                continue;
            }
            self.remove(key);
            return;
        }
    }
}

fn as_str<S: serde::Serializer>(s: &Arc<str>, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s)
}

fn stem(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((s, ext))
            if !s.is_empty() && matches!(ext, "py" | "js" | "mjs" | "cjs" | "ts" | "rb" | "pl") =>
        {
            s
        }
        _ => name,
    }
}

