//! The exec gate's metrics. The gate's threads hold [`EnforceHandles`], clones of the counters
//! themselves (atomics), so answering an exec never waits on a lock or a channel.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Decision latency buckets: from a fast-path answer to a judge at its deadline.
const DECISION_BUCKETS: [f64; 14] =
    [10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 250e-3, 2.5];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DecisionLabels {
    pub decision: &'static str,
    pub mechanism: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct MechanismLabel {
    pub mechanism: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ActionLabel {
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DecisionLabel {
    pub decision: &'static str,
}

pub(crate) struct EnforceMetrics {
    decisions: Family<DecisionLabels, Counter>,
    pauses: Family<DecisionLabel, Counter>,
    protected: Family<ActionLabel, Counter>,
    latency: Histogram,
    timeouts: Counter,
    mechanism: Family<MechanismLabel, Gauge>,
}

/// Where the gate counts. Cheap to clone; every field shares its series with the registry.
#[derive(Clone)]
pub(crate) struct EnforceHandles {
    pub out_of_scope: Counter,
    /// allow, deny by mechanism: `[fanotify, stop]`.
    pub allow: [Counter; 2],
    pub deny: [Counter; 2],
    pub latency: Histogram,
    pub timeouts: Counter,
    /// 1 while a mechanism is active: `[fanotify, stop]`.
    pub active: [Gauge; 2],
    /// 1 while active: `[delete_kill, fanotify_protect]`.
    pub deletions_active: [Gauge; 2],
    /// Agents' opens for writing of protected files: `[blocked, would_block]`.
    pub protected_writes: [Counter; 2],
    /// Requests paused before they left: `[allow, deny]`; 1 while the pause is on.
    pub request_pauses: [Counter; 2],
    pub request_pause_active: Gauge,
}

pub(crate) const MECHANISMS: [&str; 2] = ["fanotify", "stop"];
/// The deletion mechanisms (`guard_common::delete`, `crate::gate::protect`).
pub(crate) const DELETION_MECHANISMS: [&str; 2] = ["delete_kill", "fanotify_protect"];
/// The pause of agents' requests (issue 21, `crate::gate::paused`).
pub(crate) const REQUEST_MECHANISM: &str = "request_stop";

impl EnforceMetrics {
    pub(crate) fn register(reg: &mut Registry) -> Self {
        let decisions: Family<DecisionLabels, Counter> = Family::default();
        reg.register(
            "guard_enforce_decisions",
            "Answers the exec gate gave, by decision (out_of_scope, allow, deny) and mechanism",
            decisions.clone(),
        );
        let latency = Histogram::new(DECISION_BUCKETS);
        reg.register(
            "guard_enforce_decision_seconds",
            "How long an in-scope exec waited for the gate's answer, from its execve call",
            latency.clone(),
        );
        let timeouts = Counter::default();
        reg.register(
            "guard_enforce_timeouts",
            "In-scope execs answered by enforce.fail because no verdict came within the deadline",
            timeouts.clone(),
        );
        let mechanism: Family<MechanismLabel, Gauge> = Family::default();
        reg.register(
            "guard_enforcement_mechanism",
            "Enforcement mechanisms, 1 while active: fanotify (exec permission events), stop (SIGSTOP at exec exit), bpf_lsm, delete_kill (SIGKILL at an agent's deletion in a protected place), fanotify_protect (open permission events on protected directories), request_stop (SIGSTOP at an agent's TLS write of a request that may change something)",
            mechanism.clone(),
        );
        for m in MECHANISMS.into_iter().chain(["bpf_lsm"]).chain(DELETION_MECHANISMS).chain([REQUEST_MECHANISM]) {
            mechanism.get_or_create(&MechanismLabel { mechanism: m }).set(0);
        }
        let protected: Family<ActionLabel, Counter> = Family::default();
        reg.register(
            "guard_protected_file_writes",
            "Opens for writing or truncation of files in protected directories (~/.ssh, ~/.aws, /etc...) by agents' processes, by action (blocked: refused with EPERM in enforce mode, would_block: monitor mode)",
            protected.clone(),
        );
        let pauses: Family<DecisionLabel, Counter> = Family::default();
        reg.register(
            "guard_request_pauses",
            "Requests of agents' descendants paused at their TLS write before a byte left, by decision (allow: let go, deny: the process was killed)",
            pauses.clone(),
        );
        Self { decisions, pauses, protected, latency, timeouts, mechanism }
    }

    pub(crate) fn handles(&self) -> EnforceHandles {
        let counter = |decision, mechanism| self.decisions.get_or_create(&DecisionLabels { decision, mechanism }).clone();
        let gauge = |mechanism| self.mechanism.get_or_create(&MechanismLabel { mechanism }).clone();
        EnforceHandles {
            out_of_scope: counter("out_of_scope", "fanotify"),
            allow: MECHANISMS.map(|m| counter("allow", m)),
            deny: MECHANISMS.map(|m| counter("deny", m)),
            latency: self.latency.clone(),
            timeouts: self.timeouts.clone(),
            active: MECHANISMS.map(gauge),
            deletions_active: DELETION_MECHANISMS.map(gauge),
            protected_writes: ["blocked", "would_block"].map(|action| self.protected.get_or_create(&ActionLabel { action }).clone()),
            request_pauses: ["allow", "deny"].map(|decision| self.pauses.get_or_create(&DecisionLabel { decision }).clone()),
            request_pause_active: gauge(REQUEST_MECHANISM),
        }
    }
}
