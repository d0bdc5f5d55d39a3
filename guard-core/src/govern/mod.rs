//! The stage after the pipeline: which agent is behind each exchange and each command, and is
//! the command destructive. Sans-IO like the pipeline; the little IO it may want (a process the
//! table has not seen, a live cwd) is asked of a [`Lookup`] that `guard run` backs with /proc
//! and `guard replay` with the facts the recording kept ([`crate::engine::Replay`]).

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::SystemTime};

use serde::Serialize;

use crate::{
    audit::{Action, AuditRecord, Subject},
    events::exec_join::{ExecOutcome, ExecRecord},
    pipeline::Output,
    process::{Catalog, ProcKey, ProcessTable, SeedProcess, TableLimits},
    protocols::{Exchange, Role},
    rules::{Context, Dedup, RuleSet},
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
    },
    /// A program that ran, and the agent behind it (argv stays out: it can carry secrets).
    Command {
        pid: u32,
        ppid: Option<u32>,
        name: String,
        agent: Option<String>,
    },
    /// A destructive command, once per action, as written to the audit log.
    Destructive(AuditRecord),
}

pub struct Governor {
    table: ProcessTable,
    rules: RuleSet,
    dedup: Dedup,
    host: Host,
    last_tick_ns: u64,
}

impl Governor {
    pub fn new(catalog: Arc<Catalog>, rules: RuleSet, host: Host) -> Self {
        Self {
            table: ProcessTable::new(catalog, TableLimits::default()),
            rules,
            dedup: Dedup::new(DEDUP_WINDOW_NS, DEDUP_CAP),
            host,
            last_tick_ns: 0,
        }
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

    /// Loads the processes already running (read from /proc by the caller).
    pub fn seed(&mut self, procs: Vec<SeedProcess>) {
        self.table.seed(procs);
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
    ) {
        match out {
            Output::Exchange(x) => sink.push(self.exchange(x, lookup)),
            Output::Exec(r) => {
                self.table.observe(out);
                self.command(r, wall, lookup, sink);
            }
            Output::Fork(_) | Output::Exit(_) => self.table.observe(out),
            Output::Stream(_) => return,
        }
        let now = match out {
            Output::Exec(r) => r.ts_ns,
            Output::Fork(f) => f.ts_ns,
            Output::Exit(x) => x.ts_ns,
            Output::Exchange(x) => x.timings.end_ns,
            Output::Stream(_) => return,
        };
        if now >= self.last_tick_ns + TICK_EVERY_NS {
            self.last_tick_ns = now;
            self.table.tick(now);
        }
    }

    /// An inference call made by a client marks its process as an agent (zero-config) unless an
    /// agent is already at or above it.
    fn exchange(&mut self, x: &Exchange, lookup: &mut dyn Lookup) -> Governed {
        let agent = x.conn.and_then(|c| {
            if !(x.inference && x.role == Role::Client) {
                return self.table.agent_of(c.pid);
            }
            self.table.mark_inference_pid(c.pid).or_else(|| {
                let p = lookup.process(c.pid)?;
                self.table.seed(vec![p]);
                self.table.mark_inference_pid(c.pid)
            })
        });
        Governed::Exchange {
            agent: agent.map(|a| a.id.to_string()),
            exchange: x.clone(),
        }
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
        // Only a command that can match a rule needs its own cwd (a /proc read per exec) and
        // the rules' look.
        let may_run = self.may_run(r);
        if may_run
            && let Some(cwd) = lookup.cwd(r.pid)
        {
            self.table.set_cwd(key, cwd);
        }
        let agent = self.table.agent_of_key(key).map(|a| a.id.to_string());
        let proc = self.table.get_key(key);
        let name = proc.map_or_else(|| r.filename.clone(), |p| p.name().to_owned());
        let cwd = proc.and_then(|p| p.cwd.clone());
        sink.push(Governed::Command {
            pid: r.pid,
            ppid: r.ppid,
            name,
            agent: agent.clone(),
        });

        let user = r.uid.and_then(|u| self.host.users.get(&u));
        let ctx = Context {
            cwd: cwd.as_ref().map(PathBuf::from),
            home: user.and_then(|u| u.home.clone()),
            worktree: None,
        };
        if !may_run {
            return;
        }
        let scope = self.table.dedup_scope(r.pid);
        for m in self.rules.check(&r.argv, &ctx) {
            if !self.dedup.first_sighting(scope, &m, r.ts_ns) {
                continue;
            }
            let subject = Subject {
                pid: r.pid,
                agent: agent.clone(),
                process_chain: self.table.chain(r.pid),
                uid: r.uid,
                user: user.map(|u| u.name.clone()),
                cwd: cwd.clone(),
                argv: r.argv.clone(),
            };
            sink.push(Governed::Destructive(AuditRecord::new(
                wall,
                &self.host.name,
                subject,
                &m,
                Action::Observed,
            )));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests;
