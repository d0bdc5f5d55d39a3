//! Agents' requests against the request rules (issue 21): a request of a process in an agent's
//! tree that matches becomes an audit record, attributed like a command (agent, process chain,
//! the tool call that proposed the process). Requests of other processes are not judged.

use std::{
    collections::{HashSet, VecDeque},
    time::SystemTime,
};

use super::Governor;
use crate::{
    audit::{Action, ApiCallRecord, Sender},
    enforce::{Decision, GateRecord, Mode, PausedRequest},
    events::ConnId,
    requests::ApiRequest,
    rules::RuleAction,
};

use super::Governed;

/// Held connections remembered; past it, the oldest are forgotten (a refusal on one is then
/// recorded twice: by the gate, and `would_block` here).
const HELD_CAP: usize = 4096;

/// Connections whose writes the request pause stopped at the entry probe that also captures
/// them (Go's crypto/tls): a request the pause would refuse reaches the decoder all the same.
#[derive(Default)]
pub(super) struct Held {
    set: HashSet<ConnId>,
    order: VecDeque<ConnId>,
}

impl Held {
    pub(super) fn insert(&mut self, c: ConnId) {
        if self.set.insert(c) {
            self.order.push_back(c);
        }
        if self.order.len() > HELD_CAP
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
    }

    fn contains(&self, c: &ConnId) -> bool {
        self.set.contains(c)
    }
}

impl Governor {
    pub(super) fn api_call(&mut self, conn: ConnId, r: &ApiRequest, wall: SystemTime, sink: &mut Vec<Governed>) {
        let pid = conn.pid;
        let Some(agent) = self.table.agent_of(pid) else { return };
        let Some(m) = self.requests.check(r) else { return };
        if self.mode == Mode::Enforce && m.action == RuleAction::Block && self.held.contains(&conn) {
            // The pause judged these bytes with the same rules and refused them: its record
            // (`blocked`, from the gate) is the one.
            return;
        }
        let who = self.sender(pid, Some(agent.id.to_string()));
        let action = outcome(self.mode, m.action);
        sink.push(Governed::ApiCall(ApiCallRecord::new(wall, &self.host.name, who, r, &m, action)));
    }

    /// A request the exec gate's pause refused before its bytes left (`blocked`): they never
    /// reach the decoder, so this is its only record. A request the pause let go is recorded by
    /// the decoder like any other.
    pub(super) fn paused_request(&mut self, g: &GateRecord, p: &PausedRequest, wall: SystemTime, sink: &mut Vec<Governed>) {
        let agent = self.table.agent_of(g.pid).map(|a| a.id.to_string()).or_else(|| g.agent.clone());
        let mut who = self.sender(g.pid, agent);
        // The gate read them from the process while it waited; the table may not know it yet.
        who.uid = who.uid.or(g.uid);
        who.user = who.user.or_else(|| who.uid.and_then(|u| self.host.users.get(&u)).map(|u| u.name.clone()));
        who.cwd = who.cwd.or_else(|| g.cwd.clone());
        let action = match g.decision {
            Decision::Deny => Action::Blocked,
            Decision::Allow => outcome(self.mode, p.matched.action),
        };
        let mut rec = ApiCallRecord::new(wall, &self.host.name, who, &p.request, &p.matched, action);
        rec.mechanism = Some(g.mechanism);
        sink.push(Governed::ApiCall(rec));
    }

    /// Who sent a request: the process, its chain and user, the tool call behind it.
    fn sender(&self, pid: u32, agent: Option<String>) -> Sender {
        let proc = self.table.get(pid);
        let uid = proc.and_then(|p| p.uid);
        let table = &self.table;
        let chain = std::iter::successors(proc.map(|p| p.key), |k| table.get_key(*k).and_then(|p| p.parent));
        Sender {
            pid,
            agent,
            process_chain: self.table.chain(pid),
            uid,
            user: uid.and_then(|u| self.host.users.get(&u)).map(|u| u.name.clone()),
            cwd: proc.and_then(|p| p.cwd.clone()),
            proposed_by: self.linker.inherited(chain),
        }
    }
}

/// What a match the decoder saw becomes: the request's bytes already left (the pause let it go,
/// or could not hold it), so enforce mode records `would_block`; `blocked` comes only from the
/// pause ([`Governor::paused_request`]).
fn outcome(mode: Mode, action: RuleAction) -> Action {
    match (mode, action) {
        (Mode::Monitor | Mode::Enforce, RuleAction::Block) => Action::WouldBlock,
        (Mode::Off, _) | (_, RuleAction::Observe) => Action::Observed,
    }
}
