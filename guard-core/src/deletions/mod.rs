//! Deletions by agents (issue 18): each [`Delete`] record placed ([`crate::places`]), counted per
//! agent and place, and summed per process and place into audit records ([`DeletionRecord`]) when
//! an agent deletes where it should not. The governor gives each record its agent and program
//! (`govern::deletes`); this part knows only the places, the thresholds and the tallies.
//!
//! A record is written when a process's deletions in one place outside its work tree, the temp
//! dirs and the caches reach the threshold (one file for `system` and the protected dirs), and at
//! once for a deletion the kernel killed. Further deletions by that process there are summed into
//! one more record when it exits or when the window has passed, never one record per file.

mod record;

use std::collections::{HashMap, HashSet};

use serde::Serialize;

pub use record::{DeletionRecord, TopDir};

use crate::{
    audit::Action,
    enforce::Mode,
    events::{Delete, DeleteOp},
    places::{Place, Placed, Places},
    process::ProcKey,
    rules::Severity,
};
use guard_common::delete::{DEL_DIR, DEL_EXCHANGE, DEL_KILLED};

/// Tallies kept at once (process × rule); past it, new ones are dropped and counted.
const MAX_TALLIES: usize = 4_096;
/// Directories kept per tally for its top three.
const MAX_DIRS: usize = 64;
/// Processes remembered as having set up io_uring.
const MAX_URING: usize = 4_096;

/// How deletions are judged (`[deletions]`, and the exec gate's mode for `would_block`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletionConfig {
    pub enabled: bool,
    /// Files per process and place (outside work tree, temp and caches) that make a record.
    pub audit_threshold: u32,
    /// `enforce`: the kernel kills in protected places; `monitor`: it would have.
    pub mode: Mode,
    /// After a record, later deletions are summed for this long (or until the process exits).
    pub window_ns: u64,
}

impl Default for DeletionConfig {
    fn default() -> Self {
        Self { enabled: true, audit_threshold: 5, mode: Mode::Monitor, window_ns: 60_000_000_000 }
    }
}

/// Why a tally is audited: its `rule_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeletionRule {
    Home,
    System,
    Protected,
    OtherRepo,
    Outside,
    Unknown,
    /// A place audited only because the kernel killed there (a temp dir made protected, ...).
    Killed,
    IoUring,
}

impl DeletionRule {
    pub const fn id(self) -> &'static str {
        match self {
            Self::Home => "deletion.home",
            Self::System => "deletion.system",
            Self::Protected => "deletion.protected",
            Self::OtherRepo => "deletion.other_repo",
            Self::Outside => "deletion.outside",
            Self::Unknown => "deletion.unknown",
            Self::Killed => "deletion.killed",
            Self::IoUring => "deletion.io_uring",
        }
    }

    pub const fn severity(self) -> Severity {
        match self {
            Self::System | Self::Protected | Self::Killed => Severity::Critical,
            Self::Home => Severity::High,
            Self::OtherRepo | Self::Outside | Self::Unknown | Self::IoUring => Severity::Medium,
        }
    }

    /// The rule a deletion at `p` falls under, if any (work tree, temp and caches: none).
    fn of(p: Placed) -> Option<Self> {
        if p.sensitive {
            return Some(Self::Protected);
        }
        match p.place {
            Place::Home => Some(Self::Home),
            Place::System => Some(Self::System),
            Place::OtherRepo => Some(Self::OtherRepo),
            Place::Outside => Some(Self::Outside),
            Place::Unknown => Some(Self::Unknown),
            Place::Worktree | Place::Temp | Place::Cache => None,
        }
    }
}

/// What one record asks the governor to emit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// One file deleted at `place` (counted in `guard_agent_files_deleted_total`).
    Deleted { place: Place },
    /// The process set up io_uring; `first`: the first time for this process (audited).
    IoUring { first: bool },
    /// A record to write.
    Report(Report),
}

/// An audit record before the governor adds who did it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub key: ProcKey,
    pub rule: DeletionRule,
    pub place: Place,
    pub files: u64,
    pub top_dirs: Vec<TopDir>,
    pub action: Action,
    /// Sums deletions after the process's first record for this rule.
    pub summary: bool,
}

/// Counters of records that were not counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeletionStats {
    /// Deletions counted (`ret == 0`, a real removal).
    pub counted: u64,
    /// Records whose syscall failed, renames within one place, exchanges.
    pub not_deletions: u64,
    /// Records whose process is not in an identified agent's tree (a provisional scope entry).
    pub not_agent: u64,
    /// Deletions whose place is unknown (relative path without a cwd, truncated path, no list).
    pub unknown_place: u64,
    /// Tallies not kept because too many were open.
    pub tallies_dropped: u64,
}

#[derive(Debug)]
struct Tally {
    place: Place,
    files: u64,
    /// Files since the last record (or all, before the first).
    pending: u64,
    reported: bool,
    last_report_ns: u64,
    action: Option<Action>,
    dirs: HashMap<String, u64>,
}

pub struct Deletions {
    cfg: DeletionConfig,
    places: Places,
    tallies: HashMap<(ProcKey, DeletionRule), Tally>,
    uring: HashSet<ProcKey>,
    pub stats: DeletionStats,
}

impl Deletions {
    pub fn new(cfg: DeletionConfig) -> Self {
        Self { cfg, places: Places::default(), tallies: HashMap::new(), uring: HashSet::new(), stats: DeletionStats::default() }
    }

    pub fn places(&self) -> &Places {
        &self.places
    }

    pub fn set_places(&mut self, places: Places) {
        self.places = places;
    }

    /// One record of a process of the agent whose root tgid is `agent_root`; `cwd` resolves a
    /// relative path.
    pub fn push(&mut self, d: &Delete, key: ProcKey, agent_root: u32, cwd: Option<&str>, out: &mut Vec<Effect>) {
        if !self.cfg.enabled {
            return;
        }
        if d.op == DeleteOp::IoUringSetup {
            let first = self.uring.len() < MAX_URING && self.uring.insert(key);
            out.push(Effect::IoUring { first });
            return;
        }
        let killed = d.has(DEL_KILLED);
        let full = resolve(&d.path, cwd);
        let at = full.as_deref().map_or(Placed::UNKNOWN, |p| self.classify_removed(p, d.has(DEL_DIR), agent_root));
        let deleted = d.ret == 0 && !d.has(DEL_EXCHANGE) && (!d.op.is_rename() || self.leaves(at, &d.path2, agent_root, cwd));
        if !deleted && !killed {
            self.stats.not_deletions += 1;
            return;
        }
        if deleted {
            self.stats.counted += 1;
            if at.place == Place::Unknown {
                self.stats.unknown_place += 1;
            }
            out.push(Effect::Deleted { place: at.place });
        }
        let Some(rule) = DeletionRule::of(at).or(killed.then_some(DeletionRule::Killed)) else {
            return;
        };
        let action = self.action(at, killed);
        let threshold = match rule {
            DeletionRule::System | DeletionRule::Protected | DeletionRule::Killed => 1,
            _ => u64::from(self.cfg.audit_threshold.max(1)),
        };
        let dir = parent(full.as_deref().unwrap_or(&d.path), d.has(DEL_DIR));
        let Some(t) = self.tally(key, rule, at.place) else {
            return;
        };
        t.files += u64::from(deleted);
        t.pending += u64::from(deleted);
        t.action = Some(t.action.map_or(action, |a| stronger(a, action)));
        if deleted && (t.dirs.len() < MAX_DIRS || t.dirs.contains_key(dir)) {
            *t.dirs.entry(dir.to_owned()).or_default() += 1;
        }
        if !t.reported && (t.files >= threshold || killed) {
            out.push(Effect::Report(report(key, rule, t, d.ts_ns)));
        }
    }

    /// The tallies of a process that exited: one summary each for what came after its record.
    pub fn exit(&mut self, key: ProcKey, out: &mut Vec<Effect>) {
        self.uring.remove(&key);
        let mut keys: Vec<_> = self.tallies.keys().filter(|(k, _)| *k == key).copied().collect();
        keys.sort_by_key(|(_, r)| r.id());
        for k in keys {
            if let Some(mut t) = self.tallies.remove(&k)
                && t.reported
                && t.pending > 0
            {
                out.push(Effect::Report(report(key, k.1, &mut t, 0)));
            }
        }
    }

    /// Summaries of tallies whose window has passed since their last record.
    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<Effect>) {
        let mut due: Vec<_> = self
            .tallies
            .iter()
            .filter(|(_, t)| t.reported && t.pending > 0 && now_ns.saturating_sub(t.last_report_ns) >= self.cfg.window_ns)
            .map(|(k, _)| *k)
            .collect();
        due.sort_by_key(|(k, r)| (*k, r.id()));
        for k in due {
            if let Some(t) = self.tallies.get_mut(&k) {
                out.push(Effect::Report(report(k.0, k.1, t, now_ns)));
            }
        }
    }

    fn tally(&mut self, key: ProcKey, rule: DeletionRule, place: Place) -> Option<&mut Tally> {
        if !self.tallies.contains_key(&(key, rule)) && self.tallies.len() >= MAX_TALLIES {
            self.stats.tallies_dropped += 1;
            return None;
        }
        Some(self.tallies.entry((key, rule)).or_insert_with(|| Tally { place, files: 0, pending: 0, reported: false, last_report_ns: 0, action: None, dirs: HashMap::new() }))
    }

    /// A removed directory is placed as its own content: `rmdir ~/.ssh` is in the protected
    /// directory, not merely in the home above it.
    fn classify_removed(&self, path: &str, dir: bool, agent_root: u32) -> Placed {
        if dir && !path.ends_with('/') {
            return self.places.classify(&format!("{path}/"), agent_root);
        }
        self.places.classify(path, agent_root)
    }

    /// A rename removes its source from its place only when the destination is elsewhere (an
    /// atomic save within one place is no deletion).
    fn leaves(&self, from: Placed, to: &str, agent_root: u32, cwd: Option<&str>) -> bool {
        let to = resolve(to, cwd).map_or(Placed::UNKNOWN, |p| self.places.classify(&p, agent_root));
        (from.place, from.sensitive) != (to.place, to.sensitive)
    }

    fn action(&self, at: Placed, killed: bool) -> Action {
        match (killed, at.protect, self.cfg.mode) {
            (true, ..) => Action::Blocked,
            (false, true, Mode::Monitor) => Action::WouldBlock,
            _ => Action::Observed,
        }
    }
}

/// The absolute, normalised path of a record's path; `None` when it cannot be known (a relative
/// one needs the cwd). A truncated path (`DEL_TRUNCATED`) lost its end, never its start, so its
/// place still holds.
fn resolve(path: &str, cwd: Option<&str>) -> Option<String> {
    crate::places::join(cwd, path).and_then(|p| crate::places::normalize(&p))
}

fn stronger(a: Action, b: Action) -> Action {
    let rank = |a| match a {
        Action::Observed => 0,
        Action::WouldBlock => 1,
        Action::Blocked => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// The report of what `t` holds since its last one; the tally then starts its next window.
fn report(key: ProcKey, rule: DeletionRule, t: &mut Tally, now_ns: u64) -> Report {
    let r = Report {
        key,
        rule,
        place: t.place,
        files: t.pending,
        top_dirs: top_dirs(&t.dirs),
        action: t.action.unwrap_or(Action::Observed),
        summary: t.reported,
    };
    t.reported = true;
    t.pending = 0;
    t.last_report_ns = now_ns;
    t.dirs.clear();
    t.action = None;
    r
}

/// Up to three directories with the most files, most first (ties by name).
fn top_dirs(dirs: &HashMap<String, u64>) -> Vec<TopDir> {
    let mut v: Vec<_> = dirs.iter().map(|(d, n)| TopDir { dir: d.clone(), files: *n }).collect();
    v.sort_by(|a, b| b.files.cmp(&a.files).then_with(|| a.dir.cmp(&b.dir)));
    v.truncate(3);
    v
}

/// The directory a deleted path was in (a removed directory counts as itself: `rm -rf` of a
/// tree then names the tree's directories, not their parents).
fn parent(path: &str, dir: bool) -> &str {
    let p = path.trim_end_matches('/');
    if dir && !p.is_empty() {
        return p;
    }
    match p.rfind('/') {
        Some(0) => "/",
        Some(i) => &p[..i],
        None => ".",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests;
