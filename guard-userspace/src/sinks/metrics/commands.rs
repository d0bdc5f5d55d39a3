//! Command metrics: destructive commands flagged by the rules, and commands agents ran.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};


#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DestructiveLabels {
    pub agent: String,
    pub rule: String,
    pub severity: &'static str,
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AgentLabel {
    pub agent: String,
}

/// `origin`: `model` when a tool call proposed the command, else `other`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CommandLabels {
    pub agent: String,
    pub origin: &'static str,
}

pub(crate) struct CommandMetrics {
    pub(super) destructive: Family<DestructiveLabels, Counter>,
    /// Same labels: agents' HTTPS requests that matched a request rule.
    pub(super) api_calls: Family<DestructiveLabels, Counter>,
    pub(super) commands: Family<CommandLabels, Counter>,
}

impl CommandMetrics {
    pub(crate) fn register(reg: &mut Registry) -> Self {
        let destructive = Family::default();
        reg.register(
            "guard_destructive_commands",
            "Commands that matched a destructive-command rule, by rule, severity and what guard did",
            destructive.clone(),
        );
        let api_calls = Family::default();
        reg.register(
            "guard_destructive_api_calls",
            "HTTPS requests of agents' process trees that matched a request rule (docs/api-calls.md), by rule, severity and what guard did",
            api_calls.clone(),
        );
        let commands = Family::default();
        reg.register(
            "guard_agent_commands",
            "Programs that agents (or their descendants) ran: successful execs attributed to an agent, by origin (model: a tool call in a response proposed it; other)",
            commands.clone(),
        );
        Self { destructive, api_calls, commands }
    }
}
