//! Execs of a provisional tree (`guard_common::gate::SCOPE_PROVISIONAL`): a process that wrote
//! TLS and may be a zero-config agent. Most of their execs are judged harmless and answered at
//! once; a refusal waits, within the deadline, for the engine to say whether the root is an
//! agent. An agent's tree is refused; anything else is no agent's business of the gate, and runs.

use std::time::{Duration, Instant};

use guard_common::gate::SCOPE_PROVISIONAL;
use guard_core::{
    audit::Action,
    enforce::{Decision, Verdict},
};

use super::scope::Agents;

/// How often a waiting judge looks for the engine's answer.
const POLL: Duration = Duration::from_millis(2);

/// The verdict and the agent's slot, once it is known whether the root is an agent.
pub(super) fn settle(agents: &Agents, v: Verdict, slot: u32, flags: u32, root: u32, until: Instant) -> (Verdict, u32) {
    let at_stake = v.matches.iter().any(|m| m.outcome != Action::Observed);
    if slot != 0 || flags & SCOPE_PROVISIONAL == 0 || !at_stake {
        return (v, slot);
    }
    loop {
        match agents.resolution(root) {
            Some(0) => return (no_agent(v), 0),
            Some(slot) => return (v, slot),
            None if Instant::now() >= until => return (no_agent(v), 0),
            None => std::thread::sleep(POLL),
        }
    }
}

/// Whether an exec counts as an agent's for `enforce.fail`: a provisional tree does until the
/// engine says its root is no agent (with `fail = "closed"`, a doubt is a refusal).
pub(super) fn maybe_agent(agents: &Agents, slot: u32, flags: u32, root: u32) -> bool {
    slot != 0 || (flags & SCOPE_PROVISIONAL != 0 && agents.resolution(root) != Some(0))
}

/// Outside every agent's tree, a match is only observed, as for any exec the gate does not own.
fn no_agent(mut v: Verdict) -> Verdict {
    v.decision = Decision::Allow;
    for m in &mut v.matches {
        m.outcome = Action::Observed;
    }
    v
}
