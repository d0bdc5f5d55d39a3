//! Which tool call proposed a command (docs/intent.md). A model's tool calls are kept, per
//! agent, as the commands their arguments name; an exec of that agent within the window after
//! the response whose normalised commands meet one of them is linked to the call. A process
//! below a linked one inherits its link (the children of `bash -c "a && b"`).
//!
//! Both sides go through the rules' normaliser (`rules::normalize`): wrappers and shells
//! (`bash -lc S`, `sh -c S`, `eval`, Codex's argv arrays) are peeled and scripts split into
//! simple commands, words by shell quoting, so whitespace and quoting do not matter. What is
//! kept of the arguments is a hash per simple command, never their text.

use std::{
    collections::{HashMap, VecDeque},
    hash::{DefaultHasher, Hash as _, Hasher as _},
};

use serde::Serialize;

use crate::{
    audit::ProposedBy,
    process::ProcKey,
    providers::ToolCall,
    rules::{
        normalize::{Start, normalize},
        shell::split_script,
    },
};

/// Bounds of the linker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkLimits {
    /// How long after a response its calls can be linked to a command.
    pub window_ns: u64,
    /// Tool calls kept across all agents (the oldest goes first).
    pub max_calls: usize,
    /// Linked processes kept for their descendants to inherit from.
    pub max_linked: usize,
}

impl Default for LinkLimits {
    fn default() -> Self {
        Self {
            // Agents run a call within seconds; a human confirming it may take minutes.
            window_ns: 300_000_000_000,
            max_calls: 4_096,
            max_linked: 8_192,
        }
    }
}

/// Simple commands kept per call, and JSON strings read per call.
const MAX_KEYS: usize = 64;
const MAX_STRINGS: usize = 256;
/// The deepest JSON nesting read, and the deepest ancestry walked for inheritance.
const MAX_DEPTH: usize = 16;

/// Counters of what the linker dropped; never reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    /// Calls whose commands were kept for linking.
    pub calls: u64,
    /// Calls dropped before their window ended, to stay under `max_calls`.
    pub calls_evicted: u64,
    pub commands_linked: u64,
}

struct Proposal {
    /// The agent instance (`ProcessTable::dedup_scope`) that received the call.
    scope: u64,
    end_ns: u64,
    by: ProposedBy,
    keys: Vec<u64>,
}

pub(crate) struct Linker {
    limits: LinkLimits,
    calls: VecDeque<Proposal>,
    linked: HashMap<ProcKey, ProposedBy>,
    linked_order: VecDeque<ProcKey>,
    pub(crate) stats: LinkStats,
}

impl Linker {
    pub(crate) fn new(limits: LinkLimits) -> Self {
        Self { limits, calls: VecDeque::new(), linked: HashMap::new(), linked_order: VecDeque::new(), stats: LinkStats::default() }
    }

    /// Keeps the commands each call proposes. `by` names the exchange (its call fields are
    /// filled in per call).
    pub(crate) fn propose(&mut self, scope: u64, end_ns: u64, calls: &[ToolCall], by: &ProposedBy) {
        self.expire(end_ns);
        for c in calls {
            let keys = call_keys(c.args.as_str());
            if keys.is_empty() {
                continue;
            }
            // Announced while its response streamed, then again with the exchange: one call,
            // its window counted from the later sighting (its `at` from the first).
            if let Some(i) = self.calls.iter().rposition(|p| p.scope == scope && p.by.call_id == c.call_id && p.keys == keys) {
                if let Some(mut p) = self.calls.remove(i) {
                    p.end_ns = p.end_ns.max(end_ns);
                    self.calls.push_back(p);
                }
                continue;
            }
            if self.calls.len() >= self.limits.max_calls {
                self.calls.pop_front();
                self.stats.calls_evicted += 1;
            }
            let by = ProposedBy { tool: c.tool.clone(), call_id: c.call_id.clone(), ..by.clone() };
            self.calls.push_back(Proposal { scope, end_ns, by, keys });
            self.stats.calls += 1;
        }
    }

    /// The call that proposed the command `argv` run by `key` at `ts_ns`: its own match first
    /// (the newest call), else the link of its nearest linked ancestor (`ancestors`, nearest
    /// first, starting with the process's image before this exec). Remembered for `key`'s
    /// descendants when `remember`.
    pub(crate) fn link(
        &mut self,
        key: ProcKey,
        scope: u64,
        argv: &[String],
        ts_ns: u64,
        ancestors: impl Iterator<Item = ProcKey>,
        remember: bool,
    ) -> Option<ProposedBy> {
        let by = self.own(scope, argv, ts_ns).or_else(|| {
            ancestors.take(MAX_DEPTH).find_map(|k| self.linked.get(&k).cloned())
        })?;
        self.stats.commands_linked += 1;
        if remember {
            self.remember(key, by.clone());
        }
        Some(by)
    }

    /// The link a process inherits from itself or its nearest linked ancestor (`chain`, the
    /// process first), without matching anything new: what an API call the process sends is
    /// attributed to.
    pub(crate) fn inherited(&self, chain: impl Iterator<Item = ProcKey>) -> Option<ProposedBy> {
        chain.take(MAX_DEPTH).find_map(|k| self.linked.get(&k).cloned())
    }

    fn own(&self, scope: u64, argv: &[String], ts_ns: u64) -> Option<ProposedBy> {
        let window = self.limits.window_ns;
        let mut live = self.calls.iter().rev().filter(|p| {
            p.scope == scope && p.end_ns <= ts_ns && ts_ns - p.end_ns <= window
        });
        let first = live.next()?;
        let keys = exec_keys(argv);
        std::iter::once(first).chain(live).find(|p| p.keys.iter().any(|k| keys.contains(k))).map(|p| p.by.clone())
    }

    fn remember(&mut self, key: ProcKey, by: ProposedBy) {
        if self.linked.insert(key, by).is_none() {
            self.linked_order.push_back(key);
        }
        while self.linked_order.len() > self.limits.max_linked {
            if let Some(old) = self.linked_order.pop_front() {
                self.linked.remove(&old);
            }
        }
    }

    /// Drops calls whose window has ended.
    fn expire(&mut self, now_ns: u64) {
        while self.calls.front().is_some_and(|p| p.end_ns.saturating_add(self.limits.window_ns) < now_ns) {
            self.calls.pop_front();
        }
    }

    pub(crate) fn tick(&mut self, now_ns: u64) {
        self.expire(now_ns);
    }

    #[cfg(test)]
    pub(crate) fn held(&self) -> (usize, usize) {
        (self.calls.len(), self.linked.len())
    }
}

fn key_of(words: &[String]) -> u64 {
    let mut h = DefaultHasher::new();
    words.hash(&mut h);
    h.finish()
}

/// The simple commands an exec runs, as keys.
fn exec_keys(argv: &[String]) -> Vec<u64> {
    normalize(argv, &Start { cwd: None, home: None }).iter().map(|i| key_of(&i.argv)).collect()
}

/// The simple commands a call's arguments name: every string read as a shell script, every
/// array of strings as an argv. Arguments that are not JSON (a custom tool's input) are one script.
fn call_keys(args: &str) -> Vec<u64> {
    let mut out = Vec::new();
    match serde_json::from_str::<serde_json::Value>(args) {
        Ok(v) => walk(&v, 0, &mut 0, &mut out),
        Err(_) => script(args, &mut out),
    }
    out.sort_unstable();
    out.dedup();
    out.truncate(MAX_KEYS);
    out
}

fn walk(v: &serde_json::Value, depth: usize, strings: &mut usize, out: &mut Vec<u64>) {
    use serde_json::Value;
    if depth > MAX_DEPTH || *strings >= MAX_STRINGS {
        return;
    }
    match v {
        Value::String(s) => {
            *strings += 1;
            script(s, out);
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => {
            *strings += items.len();
            let argv: Vec<String> = items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect();
            out.extend(exec_keys(&argv));
        }
        Value::Array(items) => items.iter().for_each(|i| walk(i, depth + 1, strings, out)),
        Value::Object(m) => m.values().for_each(|i| walk(i, depth + 1, strings, out)),
        _ => {}
    }
}

fn script(s: &str, out: &mut Vec<u64>) {
    for words in split_script(s) {
        out.extend(exec_keys(&words));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::argv;

    fn meets(args: &str, exec: &[&str]) -> bool {
        let keys = exec_keys(&argv(exec));
        call_keys(args).iter().any(|k| keys.contains(k))
    }

    #[test]
    fn shells_argv_arrays_and_whitespace_are_seen_through() {
        assert!(meets(r#"{"command":"rm  -rf build"}"#, &["rm", "-rf", "build"]));
        assert!(meets(r#"{"command":"rm -rf build"}"#, &["/bin/bash", "-c", "rm -rf build"]));
        assert!(meets(r#"{"command":"cd /repo && make test"}"#, &["make", "test"]));
        assert!(meets(r#"{"command":["bash","-lc","git status"]}"#, &["git", "status"]));
        assert!(meets(r#"{"command":["bash","-lc","git status"]}"#, &["/usr/bin/bash", "-lc", "git  status"]));
        assert!(meets(r#"{"cmd":"npm test"}"#, &["bash", "-c", "-l", "shopt -u extglob; eval 'npm test' < /dev/null"]));
        assert!(meets("*** Begin Patch\nls", &["ls"]));
        assert!(!meets(r#"{"command":"rm -rf build"}"#, &["rm", "-rf", "dist"]));
        assert!(!meets(r#"{"path":"/etc/passwd"}"#, &["cat", "/etc/passwd"]));
    }
}
