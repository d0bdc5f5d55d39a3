//! [`Judge`]: one exec's argv against the rules, and the decision the mode makes of the matches.

use std::{path::Path, sync::Arc};

use serde::{Deserialize, Serialize};

use super::{Decision, EnforceConfig, FailMode, Mechanism, Mode};
use crate::{
    audit::Action,
    govern::Host,
    rules::{Context, Match, RuleAction, RuleSet},
};

/// One exec as the gate read it. No IO, no clock: the caller fills it.
#[derive(Clone, Debug)]
pub struct ExecRequest<'a> {
    pub pid: u32,
    pub tid: u32,
    pub uid: Option<u32>,
    /// The caller is in an agent's process tree (what fail-closed applies to).
    pub in_agent_tree: bool,
    pub argv: &'a [String],
    /// False when argv was cut at the read caps: the verdict is on what was read.
    pub argv_complete: bool,
    pub cwd: Option<&'a Path>,
    pub mechanism: Mechanism,
}

/// A rule match and what it became.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgedMatch {
    pub m: Match,
    /// `blocked`, `would_block` or `observed`.
    pub outcome: Action,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub decision: Decision,
    pub matches: Vec<JudgedMatch>,
}

/// Pure and shared: the gate's judge threads hold it through an `Arc`.
#[derive(Debug)]
pub struct Judge {
    rules: Arc<RuleSet>,
    host: Arc<Host>,
    cfg: EnforceConfig,
}

impl Judge {
    /// `host` gives each uid's home, which decides what `rm -rf ~` means.
    pub fn new(rules: Arc<RuleSet>, host: Arc<Host>, cfg: EnforceConfig) -> Self {
        Self { rules, host, cfg }
    }

    pub fn config(&self) -> &EnforceConfig {
        &self.cfg
    }

    /// The verdict on one exec: denied iff enforcing and a blocking rule matched.
    pub fn judge(&self, req: &ExecRequest<'_>) -> Verdict {
        let home = req
            .uid
            .and_then(|u| self.host.users.get(&u))
            .and_then(|u| u.home.clone());
        let ctx = Context {
            cwd: req.cwd.map(Path::to_path_buf),
            home,
            worktree: None,
        };
        let matches: Vec<JudgedMatch> = self
            .rules
            .check(req.argv, &ctx)
            .into_iter()
            .map(|m| JudgedMatch {
                outcome: outcome(self.cfg.mode, m.action),
                m,
            })
            .collect();
        let deny = matches.iter().any(|j| j.outcome == Action::Blocked);
        Verdict {
            decision: if deny { Decision::Deny } else { Decision::Allow },
            matches,
        }
    }

    /// The answer when the deadline passed first: allow, unless failing closed for an agent.
    pub fn on_timeout(&self, in_agent_tree: bool) -> Decision {
        if self.cfg.fail == FailMode::Closed && in_agent_tree {
            Decision::Deny
        } else {
            Decision::Allow
        }
    }
}

/// What a match becomes under a mode.
fn outcome(mode: Mode, action: RuleAction) -> Action {
    match (mode, action) {
        (Mode::Enforce, RuleAction::Block) => Action::Blocked,
        (Mode::Monitor, RuleAction::Block) => Action::WouldBlock,
        (Mode::Off, _) | (_, RuleAction::Observe) => Action::Observed,
    }
}
