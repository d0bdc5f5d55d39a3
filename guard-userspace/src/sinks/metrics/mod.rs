//! Prometheus metrics (issue 6): a registry of guard's metric families and the façade the daemon
//! feeds. Families are registered per concern ([`llm`], [`commands`], [`runtime`]); every open
//! label is sanitised and capped here ([`labels`]), so no pid, path or prompt text reaches a
//! label and no input grows the series without bound. [`server`] serves the text on `/metrics`.
//! Reference: docs/metrics.md.

pub(crate) mod commands;
pub(crate) mod deletions;
pub(crate) mod enforce;
pub(crate) mod first_exec;
pub(crate) mod labels;
pub(crate) mod llm;
pub(crate) mod otlp;
pub(crate) mod runtime;
pub(crate) mod server;
pub(crate) mod tools;

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests;

use std::collections::BTreeMap;

use prometheus_client::registry::Registry;

pub(crate) use labels::{LabelCaps, LossSource};
pub(crate) use server::{MetricsError, MetricsListener};

use self::{
    commands::{AgentLabel, CommandLabels, CommandMetrics, DestructiveLabels},
    labels::{Capped, agent_value, ident_value, model_value, provider_str},
    llm::LlmMetrics,
    runtime::{AttachFailureLabel, BlindLabel, LibraryLabel, RuntimeMetrics, SourceLabel},
    tools::{LlmToolLabels, McpToolLabels, SHELL_TOOLS, ToolMetrics, server_host},
};
use guard_core::{
    audit::Action,
    cost::Cost,
    protocols::{Exchange, Role},
    rules::Severity,
};

/// Content type of [`Metrics::encode`]'s output.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The label values an exchange was counted under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Counted {
    pub agent: String,
    pub model: String,
}

pub(crate) struct Metrics {
    registry: Registry,
    llm: LlmMetrics,
    commands: CommandMetrics,
    deletions: deletions::DeletionMetrics,
    runtime: RuntimeMetrics,
    enforce: enforce::EnforceMetrics,
    first_exec: first_exec::FirstExecMetrics,
    otlp: otlp::OtlpMetrics,
    tools: ToolMetrics,
    agents: Capped,
    tool_names: Capped,
    servers: Capped,
    models: Capped,
    rules: Capped,
    libraries: Capped,
}

impl Metrics {
    pub(crate) fn new(caps: &LabelCaps) -> Self {
        let mut registry = Registry::default();
        let llm = LlmMetrics::register(&mut registry);
        let commands = CommandMetrics::register(&mut registry);
        let deletions = deletions::DeletionMetrics::register(&mut registry);
        let runtime = RuntimeMetrics::register(&mut registry);
        let enforce = enforce::EnforceMetrics::register(&mut registry);
        let first_exec = first_exec::FirstExecMetrics::register(&mut registry);
        let otlp = otlp::OtlpMetrics::register(&mut registry);
        let tools = ToolMetrics::register(&mut registry);
        Self {
            registry,
            llm,
            commands,
            deletions,
            runtime,
            enforce,
            first_exec,
            otlp,
            tools,
            agents: Capped::new(caps.max_agents),
            tool_names: Capped::new(caps.max_tools),
            servers: Capped::new(caps.max_mcp_servers),
            models: Capped::new(caps.max_models_per_provider),
            rules: Capped::new(caps.max_rules),
            // Library kinds are a handful (libssl, node's static OpenSSL, ...).
            libraries: Capped::new(16),
        }
    }

    /// The `agent` label for an agent id (`none`, a catalog id or a zero-config label).
    fn agent(&self, agent: &str) -> String {
        self.agents.admit("agent", agent_value(agent))
    }

    /// Counts one decoded exchange and the cost the engine gave it. Only inference calls made by
    /// the captured process as the client count ([`llm::counts`]); anything else is ignored.
    /// Its tool calls and MCP calls are counted too. Returns the labels it counted under
    /// (capped), for the other exports to use the same series.
    pub(crate) fn on_exchange(&self, agent: &str, x: &Exchange, cost: Option<Cost>) -> Option<Counted> {
        if x.role == Role::Client && !x.mcp_calls.is_empty() {
            self.on_mcp_calls(&self.agent(agent), x);
        }
        if !llm::counts(x) {
            return None;
        }
        let agent = self.agent(agent);
        let model = self.models.admit(provider_str(x.provider), model_value(x.model.as_deref()));
        self.llm.observe(&agent, &model, x, cost);
        let provider = provider_str(x.provider);
        for c in &x.tool_calls {
            let tool = self.tool(provider, &c.tool);
            self.tools.llm.get_or_create(&LlmToolLabels { agent: agent.clone(), provider, tool }).inc();
        }
        Some(Counted { agent, model })
    }

    /// Counters of the OTLP export's health for one signal.
    pub(crate) fn otlp(&self, signal: &'static str) -> otlp::SignalHandles {
        self.otlp.signal(signal)
    }

    /// A tool name as a label: shell tools by their own name, others capped per `scope`.
    fn tool(&self, scope: &'static str, raw: &str) -> String {
        let v = ident_value(raw);
        if SHELL_TOOLS.contains(&v.as_str()) { v } else { self.tool_names.admit(scope, v) }
    }

    fn on_mcp_calls(&self, agent: &str, x: &Exchange) {
        let server = self.servers.admit("server", ident_value(&server_host(x.host.as_deref().unwrap_or("")).to_ascii_lowercase()));
        for c in &x.mcp_calls {
            let labels = McpToolLabels {
                agent: agent.to_owned(),
                server: server.clone(),
                tool: self.tool("mcp", &c.tool),
                outcome: c.outcome.as_str(),
            };
            self.tools.mcp.get_or_create(&labels).inc();
        }
    }

    /// Counts one destructive command (one rule match).
    pub(crate) fn on_destructive(&self, agent: &str, rule_id: &str, severity: Severity, action: Action) {
        let labels = DestructiveLabels {
            agent: self.agent(agent),
            rule: self.rules.admit("rule", ident_value(rule_id)),
            severity: severity.as_str(),
            action: action.as_str(),
        };
        self.commands.destructive.get_or_create(&labels).inc();
    }

    /// Counts one destructive API call (one request-rule match); rules share the `rule` cap.
    pub(crate) fn on_api_call(&self, agent: &str, rule_id: &str, severity: Severity, action: Action) {
        let labels = DestructiveLabels {
            agent: self.agent(agent),
            rule: self.rules.admit("rule", ident_value(rule_id)),
            severity: severity.as_str(),
            action: action.as_str(),
        };
        self.commands.api_calls.get_or_create(&labels).inc();
    }

    /// Counts one file an agent's process deleted at `place`.
    pub(crate) fn on_file_deleted(&self, agent: &str, place: guard_core::places::Place) {
        let labels = deletions::DeletedLabels { agent: self.agent(agent), r#where: guard_core::places::place_str(place) };
        self.deletions.deleted.get_or_create(&labels).inc();
    }

    /// Counts one io_uring set-up by an agent's process.
    pub(crate) fn on_io_uring(&self, agent: &str) {
        self.deletions.io_uring.get_or_create(&AgentLabel { agent: self.agent(agent) }).inc();
    }

    /// The exec gate's counters, for its threads.
    pub(crate) fn enforce(&self) -> enforce::EnforceHandles {
        self.enforce.handles()
    }

    /// The first-exec hold's counters, for the gate's threads.
    pub(crate) fn first_exec(&self) -> first_exec::FirstExecHandles {
        self.first_exec.handles()
    }

    /// Counts one program an agent (or a descendant) ran; `by_model`: a tool call proposed it.
    /// Call it for attributed execs only.
    pub(crate) fn on_agent_command(&self, agent: &str, by_model: bool) {
        let labels = CommandLabels { agent: self.agent(agent), origin: if by_model { "model" } else { "other" } };
        self.commands.commands.get_or_create(&labels).inc();
    }

    /// Sets the live process count of every agent. Agents absent from `counts` that had a value
    /// before are set to 0 rather than removed, so a series never vanishes mid-graph; the set of
    /// agents is capped, so the zeros stay bounded. Counts of agents that share a capped label
    /// (`other`) are summed.
    pub(crate) fn set_agent_processes(&self, counts: impl IntoIterator<Item = (String, i64)>) {
        let mut next: BTreeMap<String, i64> = BTreeMap::new();
        for (agent, n) in counts {
            *next.entry(self.agent(&agent)).or_default() += n;
        }
        // Zero the agents that are gone. Family has no iterator, so collect the known labels
        // from the cap's admitted set, plus `other`.
        for agent in self.agents.values("agent").into_iter().chain([labels::OTHER.to_owned()]) {
            if !next.contains_key(&agent)
                && let Some(g) = self.runtime.agent_processes.get(&AgentLabel { agent })
            {
                g.set(0);
            }
        }
        for (agent, n) in next {
            self.runtime.agent_processes.get_or_create(&AgentLabel { agent }).set(n);
        }
    }

    /// Reports the cumulative total of one loss source (the caller reads its own counters); the
    /// counter is increased by the difference since the last call. A total lower than the last
    /// one means the source restarted from zero, and the whole total is added.
    pub(crate) fn set_lost_total(&self, source: LossSource, total: u64) {
        let idx = LossSource::ALL.iter().position(|s| *s == source).unwrap_or(0);
        let mut seen = self.runtime.lost_seen.lock().unwrap_or_else(|e| e.into_inner());
        let delta = if total >= seen[idx] { total - seen[idx] } else { total };
        seen[idx] = total;
        if delta > 0 {
            self.runtime.lost.get_or_create(&SourceLabel { source }).inc_by(delta);
        }
    }

    /// Sets how many files of one TLS library (`openssl`, `boringssl`, `go_crypto_tls`, ...) are
    /// hooked through one strategy (`dynsym`, `symtab`, `gopclntab`, `structural`).
    pub(crate) fn set_tls_targets(&self, library: &str, strategy: &str, n: i64) {
        let library = self.libraries.admit("library", ident_value(library));
        let strategy = self.libraries.admit("strategy", ident_value(strategy));
        self.runtime.tls_targets.get_or_create(&LibraryLabel { library, strategy }).set(n);
    }

    /// Reports the cumulative count of failed attach calls for one TLS library and errno class
    /// (the caller keeps the totals); the counter is raised to it.
    pub(crate) fn set_attach_failures_total(&self, library: &str, reason: &'static str, total: u64) {
        let library = self.libraries.admit("library", ident_value(library));
        let c = self.runtime.tls_attach_failures.get_or_create(&AttachFailureLabel { library, reason });
        let delta = total.saturating_sub(c.get());
        if delta > 0 {
            c.inc_by(delta);
        }
    }

    /// Sets the blind-spot gauge: agent processes holding connections that guard cannot read,
    /// per (agent, reason). Pairs seen before and absent now read 0.
    pub(crate) fn set_tls_blind(&self, counts: impl IntoIterator<Item = (String, guard_core::coverage::BlindReason)>) {
        let mut next: BTreeMap<BlindLabel, i64> = BTreeMap::new();
        for (agent, reason) in counts {
            *next.entry(BlindLabel { agent: self.agent(&agent), reason: reason.as_str() }).or_default() += 1;
        }
        let mut seen = self.runtime.tls_blind_seen.lock().unwrap_or_else(|e| e.into_inner());
        for old in seen.iter().filter(|l| !next.contains_key(*l)) {
            self.runtime.tls_blind.get_or_create(old).set(0);
        }
        for (label, n) in next {
            self.runtime.tls_blind.get_or_create(&label).set(n);
            seen.insert(label);
        }
    }

    /// The OpenMetrics text of every family, `# EOF` included.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a label value.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(&LabelCaps::default())
    }
}
