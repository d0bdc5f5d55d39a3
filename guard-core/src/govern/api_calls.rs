//! Agents' requests against the request rules (issue 21): a request of a process in an agent's
//! tree that matches becomes an audit record, attributed like a command (agent, process chain,
//! the tool call that proposed the process). Requests of other processes are not judged.

use std::time::SystemTime;

use super::Governor;
use crate::{
    audit::{Action, ApiCallRecord, Sender},
    enforce::Mode,
    requests::ApiRequest,
    rules::RuleAction,
};

use super::Governed;

impl Governor {
    pub(super) fn api_call(&mut self, pid: u32, r: &ApiRequest, wall: SystemTime, sink: &mut Vec<Governed>) {
        let Some(agent) = self.table.agent_of(pid) else { return };
        let Some(m) = self.requests.check(r) else { return };
        let proc = self.table.get(pid);
        let uid = proc.and_then(|p| p.uid);
        let table = &self.table;
        let chain = std::iter::successors(proc.map(|p| p.key), |k| table.get_key(*k).and_then(|p| p.parent));
        let who = Sender {
            pid,
            agent: Some(agent.id.to_string()),
            process_chain: self.table.chain(pid),
            uid,
            user: uid.and_then(|u| self.host.users.get(&u)).map(|u| u.name.clone()),
            cwd: proc.and_then(|p| p.cwd.clone()),
            proposed_by: self.linker.inherited(chain),
        };
        let action = outcome(self.mode, m.action);
        sink.push(Governed::ApiCall(ApiCallRecord::new(wall, &self.host.name, who, r, &m, action)));
    }
}

/// What a match becomes: as the exec gate's outcomes, except that nothing holds a request yet,
/// so enforce mode records `would_block`, never `blocked`.
fn outcome(mode: Mode, action: RuleAction) -> Action {
    match (mode, action) {
        (Mode::Monitor | Mode::Enforce, RuleAction::Block) => Action::WouldBlock,
        (Mode::Off, _) | (_, RuleAction::Observe) => Action::Observed,
    }
}
