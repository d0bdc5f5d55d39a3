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

pub(crate) struct CommandMetrics {
    pub(super) destructive: Family<DestructiveLabels, Counter>,
    pub(super) commands: Family<AgentLabel, Counter>,
}

impl CommandMetrics {
    pub(crate) fn register(reg: &mut Registry) -> Self {
        let destructive = Family::default();
        reg.register(
            "guard_destructive_commands",
            "Commands that matched a destructive-command rule, by rule, severity and what guard did",
            destructive.clone(),
        );
        let commands = Family::default();
        reg.register(
            "guard_agent_commands",
            "Programs that agents (or their descendants) ran: successful execs attributed to an agent",
            commands.clone(),
        );
        Self { destructive, commands }
    }
}
