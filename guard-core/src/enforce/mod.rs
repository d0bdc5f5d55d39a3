//! The exec gate's verdict (issue 16), sans IO: whether an exec may run, judged on its argv by the
//! rules, and what each match becomes in the audit log. The gate in guard-userspace holds the
//! exec, reads its argv and cwd, asks [`Judge::judge`] and answers the kernel; the records it
//! makes ([`GateRecord`]) go back through [`crate::Engine::gate_record`] to the audit log and the
//! metrics. See `docs/dev-notes/exec-gate.md`.

mod judge;
#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::requests::{ApiMatch, ApiRequest};

pub use judge::{ExecRequest, Judge, JudgedMatch, Verdict};

/// What the gate does with a matching exec (`enforce.mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No gate: execs are only observed after the fact.
    Off,
    /// Judge every exec in scope but always allow; a blocking match is a `would_block` record.
    #[default]
    Monitor,
    /// Refuse an exec that a blocking rule matches.
    Enforce,
}

/// Which execs the gate holds (`enforce.scope`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Those of agent process trees.
    #[default]
    Agents,
    /// Every exec on the host.
    All,
}

/// The answer when no verdict came in time (`enforce.fail`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Allow: a slow guard never stops the host.
    #[default]
    Open,
    /// Deny, for execs in agent trees only.
    Closed,
}

/// How the gate held the exec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// A `FAN_OPEN_EXEC_PERM` event answered before the exec went on.
    Fanotify,
    /// The catch-all: the task stopped at `sys_exit_execve`, then killed or continued.
    Stop,
}

impl Mechanism {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Fanotify => "fanotify",
            Self::Stop => "stop",
        }
    }
}

/// What the kernel is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// The `[enforce]` settings the verdict depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnforceConfig {
    pub mode: Mode,
    pub scope: Scope,
    /// How long an exec may wait for its verdict before [`Judge::on_timeout`] answers.
    pub deadline: Duration,
    pub fail: FailMode,
}

impl Default for EnforceConfig {
    fn default() -> Self {
        Self {
            mode: Mode::default(),
            scope: Scope::default(),
            deadline: Duration::from_millis(250),
            fail: FailMode::default(),
        }
    }
}

/// One exec the gate answered, as it reached the daemon loop: the input of
/// [`crate::Engine::gate_record`], and a line of a recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    /// Kernel monotonic ns of the exec's entry (the ticket's time), like every event's `ts_ns`.
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub uid: Option<u32>,
    /// The gate's own name for the agent, used when the process table has none.
    pub agent: Option<String>,
    pub cwd: Option<String>,
    pub argv: Vec<String>,
    pub mechanism: Mechanism,
    pub decision: Decision,
    pub matches: Vec<JudgedMatch>,
    /// The deadline answered before the judge did.
    pub timed_out: bool,
    /// From the exec's entry to the answer.
    pub latency_ns: u64,
    /// A request the kernel paused before its bytes left (issue 21), not an exec: `argv` and
    /// `matches` are then empty, and `latency_ns` counts from the pause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Box<PausedRequest>>,
}

/// A paused request and the request rule it matched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PausedRequest {
    pub request: ApiRequest,
    pub matched: ApiMatch,
}
