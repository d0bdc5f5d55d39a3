//! The governor's part in deletions: whose agent a [`Delete`] record belongs to, its process's
//! cwd for a relative path, and the audit subject of each report ([`crate::deletions`]).

use std::time::SystemTime;

use guard_common::delete::DEL_RELATIVE;

use super::{Governed, Governor, Lookup};
use crate::{
    audit::Subject,
    deletions::{DeletionRecord, Effect, Report},
    events::Delete,
    process::ProcKey,
};

impl Governor {
    /// One record. A process no identified agent is at or above (the kernel's scope includes
    /// provisional entries: any process that wrote TLS) is skipped and counted.
    pub(super) fn delete(&mut self, d: &Delete, wall: SystemTime, lookup: &mut dyn Lookup, sink: &mut Vec<Governed>) {
        let key = ProcKey::from_ns(d.pid, d.start_time_ns);
        let agent = self.table.agent_of_key(key).or_else(|| self.table.agent_of(d.root));
        let Some(agent) = agent else {
            self.deletions.stats.not_agent += 1;
            return;
        };
        let cwd = if d.flags & DEL_RELATIVE != 0 { self.cwd_of(key, lookup) } else { None };
        let mut effects = Vec::new();
        // Work trees are owned by the agent's process: the roots list names it so.
        self.deletions.push(d, key, agent.key.pid, cwd.as_deref(), &mut effects);
        let id = agent.id.to_string();
        for e in effects {
            match e {
                Effect::Deleted { place } => sink.push(Governed::Deleted { agent: id.clone(), place }),
                Effect::IoUring { first } => {
                    sink.push(Governed::IoUring { agent: id.clone(), pid: d.pid });
                    if first {
                        let r = Report {
                            key,
                            rule: crate::deletions::DeletionRule::IoUring,
                            place: crate::places::Place::Unknown,
                            files: 0,
                            top_dirs: Vec::new(),
                            action: crate::audit::Action::Observed,
                            summary: false,
                        };
                        self.deletion_record(&r, wall, sink);
                    }
                }
                Effect::Report(r) => self.deletion_record(&r, wall, sink),
            }
        }
    }

    /// A process exited: its deletions since its last record, summed.
    pub(super) fn deletions_exit(&mut self, key: ProcKey, wall: SystemTime, sink: &mut Vec<Governed>) {
        let mut effects = Vec::new();
        self.deletions.exit(key, &mut effects);
        self.deletion_effects(effects, wall, sink);
    }

    pub(super) fn deletions_tick(&mut self, now_ns: u64, wall: SystemTime, sink: &mut Vec<Governed>) {
        let mut effects = Vec::new();
        self.deletions.tick(now_ns, &mut effects);
        self.deletion_effects(effects, wall, sink);
    }

    fn deletion_effects(&self, effects: Vec<Effect>, wall: SystemTime, sink: &mut Vec<Governed>) {
        for e in effects {
            if let Effect::Report(r) = e {
                self.deletion_record(&r, wall, sink);
            }
        }
    }

    /// The process's live cwd (a fact when recording; the table's may be stale: a `chdir`
    /// since the exec is not seen), else the table's.
    fn cwd_of(&mut self, key: ProcKey, lookup: &mut dyn Lookup) -> Option<String> {
        match lookup.cwd(key.pid) {
            Some(cwd) => {
                self.table.set_cwd(key, cwd.clone());
                Some(cwd)
            }
            None => self.table.get_key(key).and_then(|p| p.cwd.clone()),
        }
    }

    fn deletion_record(&self, r: &Report, wall: SystemTime, sink: &mut Vec<Governed>) {
        let p = self.table.get_key(r.key);
        let uid = p.and_then(|p| p.uid);
        let subject = Subject {
            pid: r.key.pid,
            agent: self.table.agent_of_key(r.key).map(|a| a.id.to_string()),
            process_chain: if p.is_some() { self.table.chain(r.key.pid) } else { Vec::new() },
            uid,
            user: uid.and_then(|u| self.host.users.get(&u)).map(|u| u.name.clone()),
            cwd: p.and_then(|p| p.cwd.clone()),
            argv: p.map(|p| p.argv.clone()).unwrap_or_default(),
            proposed_by: None,
        };
        sink.push(Governed::Deletion(DeletionRecord::new(wall, &self.host.name, subject, r)));
    }
}
