//! The stage after the pipeline: which agent is behind each exchange and each command, and is
//! the command destructive. Sans-IO like the pipeline; the little IO it may want (a process the
//! table has not seen, a live cwd) is asked of a [`Lookup`] that `guard run` backs with /proc
//! and `guard replay` with the facts the recording kept ([`crate::engine::Replay`]).

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::SystemTime};

use serde::Serialize;

mod api_calls;
mod deletes;
mod link;

pub use link::{LinkLimits, LinkStats};

use crate::{
    audit::{Action, ApiCallRecord, AuditRecord, ProposedBy, Subject, record::rfc3339},
    cost::{Cost, PriceTable},
    deletions::{DeletionConfig, DeletionRecord, Deletions},
    enforce::{GateRecord, Mechanism, Mode},
    events::exec_join::{ExecOutcome, ExecRecord},
    pipeline::Output,
    process::{AgentRef, Catalog, ProcKey, ProcessTable, SeedProcess, TableLimits},
    protocols::{Exchange, Role},
    providers::{Provider, ToolCall},
    requests::RequestRuleSet,
    rules::{Context, Dedup, Match, RuleSet},
};

/// How long a destructive command suppresses its repeats (the shell's exec, then the child's).
const DEDUP_WINDOW_NS: u64 = 5_000_000_000;
const DEDUP_CAP: usize = 4_096;
/// The table is tidied (exits lingered out, parked marks expired) at most this often.
const TICK_EVERY_NS: u64 = 1_000_000_000;

/// What the governor may ask of the system.
pub trait Lookup {
    /// A live process the table does not know yet.
    fn process(&mut self, pid: u32) -> Option<SeedProcess>;
    /// The working directory of a live process.
    fn cwd(&mut self, pid: u32) -> Option<String>;
}

/// No system to ask: every lookup goes unanswered (tests, fuzzing, `pipeline_throughput`).
pub struct NoLookup;

impl Lookup for NoLookup {
    fn process(&mut self, _: u32) -> Option<SeedProcess> {
        None
    }
    fn cwd(&mut self, _: u32) -> Option<String> {
        None
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct User {
    pub name: String,
    pub home: Option<PathBuf>,
}

/// Facts about the machine that go into audit records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Host {
    pub name: String,
    pub users: HashMap<u32, User>,
}

/// What the governor learnt from one pipeline output.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Governed {
    /// A decoded exchange and the agent behind it.
    Exchange {
        agent: Option<String>,
        #[serde(flatten)]
        exchange: Exchange,
        /// What it cost, for an exchange that counts (a client's inference call whose usage was
        /// reported); priced here once so that every sink shows the same figure.
        #[serde(skip_serializing_if = "Option::is_none")]
        cost: Option<Cost>,
    },
    /// A program that ran, and the agent behind it (argv stays out: it can carry secrets),
    /// and the model's tool call that proposed it, if one did.
    Command {
        pid: u32,
        ppid: Option<u32>,
        name: String,
        agent: Option<String>,
        proposed_by: Option<ProposedBy>,
    },
    /// A destructive command, once per action, as written to the audit log.
    Destructive(AuditRecord),
    /// A destructive API call of an agent's process tree, as written to the audit log.
    ApiCall(ApiCallRecord),
    /// One file an agent's process deleted, and where (`guard_agent_files_deleted_total`).
    Deleted {
        agent: String,
        #[serde(rename = "where", with = "crate::places::place_name")]
        place: crate::places::Place,
    },
    /// An agent's process set up io_uring (deletions through it are unseen).
    IoUring { agent: String, pid: u32 },
    /// An agent's deletions where it should not, as written to the audit log.
    Deletion(DeletionRecord),
}

/// A process the kernel must now hold in an agent's scope: the process table newly identified
/// the agent at or above it. Removal is the kernel's (at exit), and forks inherit scope there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeAdd {
    pub tgid: u32,
    pub agent: Arc<str>,
    /// The agent's own process, the one that speaks to its model (`ProcessTable::agent_root`):
    /// the request pause never holds it.
    pub root: u32,
}

pub struct Governor {
    table: ProcessTable,
    rules: RuleSet,
    dedup: Dedup,
    host: Host,
    prices: Arc<PriceTable>,
    linker: link::Linker,
    deletions: Deletions,
    last_tick_ns: u64,
    /// Rules on agents' requests, and the `[enforce]` mode their matches are recorded under.
    requests: RequestRuleSet,
    mode: Mode,
    /// Connections whose writes the request pause stopped where they were captured.
    held: api_calls::Held,
}

/// Who ran a destructive command, before the table fills in the rest of the audit subject.
struct Runner<'a> {
    pid: u32,
    uid: Option<u32>,
    agent: Option<String>,
    cwd: Option<String>,
    argv: &'a [String],
    ts_ns: u64,
    proposed_by: Option<ProposedBy>,
    /// Judged before its exec ran (the gate): the table still names the process by its old
    /// image, so the chain ends with the program being run instead.
    before_exec: bool,
}

impl Governor {
    pub fn new(catalog: Arc<Catalog>, rules: RuleSet, host: Host, link: LinkLimits) -> Self {
        Self {
            table: ProcessTable::new(catalog, TableLimits::default()),
            rules,
            dedup: Dedup::new(DEDUP_WINDOW_NS, DEDUP_CAP),
            host,
            prices: PriceTable::builtin(),
            linker: link::Linker::new(link),
            deletions: Deletions::new(DeletionConfig::default()),
            last_tick_ns: 0,
            requests: RequestRuleSet::builtin(),
            mode: Mode::default(),
            held: api_calls::Held::default(),
        }
    }

    /// Prices exchanges with `prices` instead of the built-in table.
    pub fn with_prices(mut self, prices: Arc<PriceTable>) -> Self {
        self.prices = prices;
        self
    }

    /// Judges agents' requests with `rules`; `mode` (`[enforce] mode`) decides whether a
    /// blocking match is `would_block` or `observed`.
    pub fn with_requests(mut self, rules: RequestRuleSet, mode: Mode) -> Self {
        self.requests = rules;
        self.mode = mode;
        self
    }

    /// Judges deletions with `cfg` instead of the defaults.
    pub fn with_deletions(mut self, cfg: DeletionConfig) -> Self {
        self.deletions = Deletions::new(cfg);
        self
    }

    pub fn deletions(&self) -> &Deletions {
        &self.deletions
    }

    /// The places list from here on (`crate::places`).
    pub fn set_places(&mut self, places: crate::places::Places) {
        self.deletions.set_places(places);
    }

    /// What the linker kept and dropped.
    pub fn link_stats(&self) -> LinkStats {
        self.linker.stats
    }

    pub fn table(&self) -> &ProcessTable {
        &self.table
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The host of a recording being replayed.
    pub fn set_host(&mut self, host: Host) {
        self.host = host;
    }

    /// Loads the processes already running (read from /proc by the caller), and puts every
    /// agent process among them in scope.
    pub fn seed(&mut self, procs: Vec<SeedProcess>, scope: &mut Vec<ScopeAdd>) {
        self.table.seed(procs);
        let mut agents = self.table.agent_processes();
        agents.sort();
        let table = &self.table;
        scope.extend(agents.into_iter().map(|(tgid, agent)| {
            let root = table.get(tgid).map_or(tgid, |p| table.agent_root(p.key, &agent));
            ScopeAdd { tgid, agent, root }
        }));
    }

    /// Repeats of a destructive command that were suppressed.
    pub fn suppressed_repeats(&self) -> u64 {
        self.dedup.suppressed
    }

    pub fn push(
        &mut self,
        out: &Output,
        wall: SystemTime,
        lookup: &mut dyn Lookup,
        sink: &mut Vec<Governed>,
        scope: &mut Vec<ScopeAdd>,
    ) {
        match out {
            Output::Exchange(x) => sink.push(self.exchange(x, wall, lookup, scope)),
            Output::ApiRequest { conn, request } => self.api_call(*conn, request, wall, sink),
            Output::PausedWrite { conn } => {
                self.held.insert(*conn);
                return;
            }
            Output::InferenceRequest { conn, .. } => {
                self.mark_inference(conn.pid, lookup, scope);
            }
            Output::ToolCalls { conn, ts_ns, calls } => {
                if self.table.agent_of(conn.pid).is_some() {
                    self.propose(conn.pid, *ts_ns, calls.provider, calls.model.as_deref(), &calls.calls, wall);
                }
            }
            Output::Exec(r) => {
                let key = r.start_time_ns.map(|s| ProcKey::from_ns(r.pid, s));
                let before = key.and_then(|k| self.table.agent_of_key(k));
                self.table.observe(out);
                if let Some(k) = key {
                    self.rescope(k, before, scope);
                }
                self.command(r, wall, lookup, sink);
            }
            Output::Fork(f) => {
                // The kernel gives a child its parent's scope, but only if the parent's entry was
                // there at the fork: a child forked just before its parent was identified (a
                // launcher that starts the real agent at once) is put in scope here.
                self.table.observe(out);
                self.rescope(ProcKey::from_ns(f.child_pid, f.child_start_time_ns), None, scope);
            }
            Output::Exit(x) => {
                self.deletions_exit(ProcKey::from_ns(x.pid, x.start_time_ns), wall, sink);
                self.table.observe(out);
            }
            Output::Delete(d) => self.delete(d, wall, lookup, sink),
            Output::Stream(_) => return,
        }
        self.tick(out, wall, sink);
    }

    fn tick(&mut self, out: &Output, wall: SystemTime, sink: &mut Vec<Governed>) {
        let now = match out {
            Output::Exec(r) => r.ts_ns,
            Output::Fork(f) => f.ts_ns,
            Output::Exit(x) => x.ts_ns,
            Output::Exchange(x) => x.timings.end_ns,
            Output::InferenceRequest { ts_ns, .. } | Output::ToolCalls { ts_ns, .. } => *ts_ns,
            Output::ApiRequest { request, .. } => request.ts_ns,
            Output::Delete(d) => d.ts_ns,
            Output::Stream(_) | Output::PausedWrite { .. } => return,
        };
        if now >= self.last_tick_ns + TICK_EVERY_NS {
            self.last_tick_ns = now;
            self.table.tick(now);
            self.linker.tick(now);
            self.deletions_tick(now, wall, sink);
        }
    }

    /// An exec the gate answered: its matches as audit records, through the same de-duplication
    /// as the engine's own (a shell's `-c` script, then the child's exec, count once).
    pub fn gate(&mut self, r: &GateRecord, wall: SystemTime, sink: &mut Vec<Governed>) {
        if let Some(p) = &r.request {
            return self.paused_request(r, p, wall, sink);
        }
        let agent = self.table.agent_of(r.pid).map(|a| a.id.to_string()).or_else(|| r.agent.clone());
        let cwd = r.cwd.clone().or_else(|| self.table.get(r.pid).and_then(|p| p.cwd.clone()));
        let uid = r.uid.or_else(|| self.table.get(r.pid).and_then(|p| p.uid));
        // Judged before the exec: the process's current image is the nearest ancestor.
        let proposed_by = match (&agent, self.table.get(r.pid).map(|p| p.key)) {
            (Some(_), Some(key)) => self.link(key, &r.argv, r.ts_ns, false),
            _ => None,
        };
        let runner = Runner { pid: r.pid, uid, agent, cwd, argv: &r.argv, ts_ns: r.ts_ns, before_exec: true, proposed_by };
        let judged = r.matches.iter().map(|j| (&j.m, j.outcome));
        self.destructive(&runner, judged, Some(r.mechanism), wall, sink);
    }

    /// An inference call made by a client marks its process as an agent (zero-config) unless an
    /// agent is already at or above it.
    /// Its tool calls are kept for linking, and leave without their arguments.
    fn exchange(&mut self, x: &Exchange, wall: SystemTime, lookup: &mut dyn Lookup, scope: &mut Vec<ScopeAdd>) -> Governed {
        let agent = x.conn.and_then(|c| {
            if x.inference && x.role == Role::Client {
                self.mark_inference(c.pid, lookup, scope)
            } else {
                self.table.agent_of(c.pid)
            }
        });
        if let (Some(_), Some(c)) = (&agent, x.conn)
            && x.role == Role::Client
            && !x.tool_calls.is_empty()
        {
            self.propose(c.pid, x.timings.end_ns, x.provider, x.model.as_deref(), &x.tool_calls, wall);
        }
        let tool_calls = x.tool_calls.iter().map(ToolCall::without_args).collect();
        let cost = self.cost(x);
        Governed::Exchange { agent: agent.map(|a| a.id.to_string()), exchange: Exchange { tool_calls, ..x.clone() }, cost }
    }

    /// Keeps the commands `calls`, received by `pid` at `ts_ns`, propose.
    fn propose(&mut self, pid: u32, ts_ns: u64, provider: Provider, model: Option<&str>, calls: &[ToolCall], wall: SystemTime) {
        let by = ProposedBy { provider, model: model.map(str::to_owned), tool: String::new(), call_id: String::new(), at: rfc3339(wall) };
        self.linker.propose(self.table.dedup_scope(pid), ts_ns, calls, &by);
    }

    /// The tool call behind a command `key` runs (`remember`: its descendants inherit it).
    fn link(&mut self, key: ProcKey, argv: &[String], ts_ns: u64, remember: bool) -> Option<ProposedBy> {
        let scope = self.table.dedup_scope(key.pid);
        let table = &self.table;
        let ancestors = std::iter::successors(Some(key), |k| table.get_key(*k).and_then(|p| p.parent));
        self.linker.link(key, scope, argv, ts_ns, ancestors, remember)
    }

    /// The cost of an exchange that counts: a client's inference call with usage.
    fn cost(&self, x: &Exchange) -> Option<Cost> {
        (x.role == Role::Client && x.inference && x.usage_seen).then(|| self.prices.price(x.provider, x.model.as_deref(), &x.usage))
    }

    /// Marks `pid` as a zero-config agent (asking the system for a process the table lacks),
    /// and puts its tree in scope when that made it one.
    fn mark_inference(&mut self, pid: u32, lookup: &mut dyn Lookup, scope: &mut Vec<ScopeAdd>) -> Option<AgentRef> {
        let before = self.table.agent_of(pid);
        let agent = self.table.mark_inference_pid(pid).or_else(|| {
            let p = lookup.process(pid)?;
            self.table.seed(vec![p]);
            self.table.mark_inference_pid(pid)
        });
        if let Some(a) = &agent
            && before.as_ref().is_none_or(|b| b.id != a.id)
        {
            let root = self.table.get(pid).map_or(a.key, |p| p.key);
            self.add_tree(root, a, scope);
        }
        agent
    }

    /// Puts `key`'s tree in scope when the agent at `key` is new or another than `before`.
    fn rescope(&self, key: ProcKey, before: Option<AgentRef>, scope: &mut Vec<ScopeAdd>) {
        let Some(now) = self.table.agent_of_key(key) else {
            return;
        };
        if before.is_none_or(|b| b.id != now.id) {
            self.add_tree(key, &now, scope);
        }
    }

    fn add_tree(&self, root: ProcKey, agent: &AgentRef, scope: &mut Vec<ScopeAdd>) {
        let top = self.table.agent_root(root, &agent.id);
        scope.extend(self.table.agent_tree(root, agent).into_iter().map(|tgid| ScopeAdd {
            tgid,
            agent: agent.id.clone(),
            root: top,
        }));
    }

    fn may_run(&self, r: &ExecRecord) -> bool {
        r.argv.first().is_some_and(|a| self.rules.may_run(a)) || self.rules.may_run(&r.filename)
    }

    fn command(
        &mut self,
        r: &ExecRecord,
        wall: SystemTime,
        lookup: &mut dyn Lookup,
        sink: &mut Vec<Governed>,
    ) {
        // A failed attempt ran nothing (a PATH search fails in every directory but one).
        let (ExecOutcome::Ran, Some(start)) = (&r.outcome, r.start_time_ns) else {
            return;
        };
        let key = ProcKey::from_ns(r.pid, start);
        // The gate held a gated exec and owns its verdict (its record comes through `gate`).
        // Otherwise only a command that can match a rule needs its own cwd (a /proc read per
        // exec) and the rules' look.
        let may_run = !r.gated && self.may_run(r);
        if may_run
            && let Some(cwd) = lookup.cwd(r.pid)
        {
            self.table.set_cwd(key, cwd);
        }
        let agent = self.table.agent_of_key(key).map(|a| a.id.to_string());
        let proc = self.table.get_key(key);
        let name = proc.map_or_else(|| r.filename.clone(), |p| p.name().to_owned());
        let cwd = proc.and_then(|p| p.cwd.clone());
        let proposed_by = if agent.is_some() { self.link(key, &r.argv, r.ts_ns, true) } else { None };
        sink.push(Governed::Command {
            pid: r.pid,
            ppid: r.ppid,
            name,
            agent: agent.clone(),
            proposed_by: proposed_by.clone(),
        });
        if !may_run {
            return;
        }
        let ctx = Context {
            cwd: cwd.as_ref().map(PathBuf::from),
            home: self.home(r.uid),
            worktree: None,
        };
        let matches = self.rules.check(&r.argv, &ctx);
        let runner = Runner { pid: r.pid, uid: r.uid, agent, cwd, argv: &r.argv, ts_ns: r.ts_ns, before_exec: false, proposed_by };
        self.destructive(&runner, matches.iter().map(|m| (m, Action::Observed)), None, wall, sink);
    }

    fn home(&self, uid: Option<u32>) -> Option<PathBuf> {
        uid.and_then(|u| self.host.users.get(&u)).and_then(|u| u.home.clone())
    }

    /// One audit record per match seen first (repeats within the window are suppressed).
    fn destructive<'m>(
        &mut self,
        who: &Runner<'_>,
        matches: impl Iterator<Item = (&'m Match, Action)>,
        mechanism: Option<Mechanism>,
        wall: SystemTime,
        sink: &mut Vec<Governed>,
    ) {
        let scope = self.table.dedup_scope(who.pid);
        let mut subject: Option<Subject> = None;
        for (m, action) in matches {
            if !self.dedup.first_sighting(scope, m, who.ts_ns) {
                continue;
            }
            let subject = subject.get_or_insert_with(|| self.subject(who)).clone();
            let rec = AuditRecord::new(wall, &self.host.name, subject, m, action, mechanism);
            sink.push(Governed::Destructive(rec));
        }
    }

    fn chain(&self, who: &Runner<'_>) -> Vec<String> {
        let mut chain = self.table.chain(who.pid);
        if who.before_exec
            && let Some(program) = who.argv.first().map(|a| crate::process::agents::basename(a))
        {
            match chain.last_mut() {
                Some(last) => program.clone_into(last),
                None => chain.push(program.to_owned()),
            }
        }
        chain
    }

    /// The audit subject: the process chain from the table, the user from the host.
    fn subject(&self, who: &Runner<'_>) -> Subject {
        Subject {
            pid: who.pid,
            agent: who.agent.clone(),
            process_chain: self.chain(who),
            uid: who.uid,
            user: who.uid.and_then(|u| self.host.users.get(&u)).map(|u| u.name.clone()),
            cwd: who.cwd.clone(),
            argv: who.argv.to_vec(),
            proposed_by: who.proposed_by.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests;
