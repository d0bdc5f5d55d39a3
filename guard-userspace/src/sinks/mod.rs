//! Where the engine's records go: Prometheus metrics, the audit log, recordings, and the log.
//! Sinks never reach back into the engine.

pub(crate) mod audit;
mod files;
pub(crate) mod metrics;
pub(crate) mod otlp;
pub(crate) mod record;

use std::sync::Arc;

use guard_core::{
    cost::Cost,
    engine::Outputs,
    govern::Governed,
    pipeline::Output,
    protocols::Exchange,
    streams::StreamEvent,
};

use self::{audit::AuditWriter, metrics::Metrics, otlp::Otlp, record::{Recording, RecordingError}};

/// The agent label of what no agent is behind.
pub(crate) const NO_AGENT: &str = "none";

pub(crate) struct Sinks {
    pub metrics: Arc<Metrics>,
    pub audit: Option<AuditWriter>,
    pub recording: Option<Recording>,
    pub otlp: Option<Otlp>,
    /// Audit records that could not be written (each one logged).
    pub audit_errors: u64,
}

impl Sinks {
    /// Serves one push's outputs. Only a recording that cannot be written is an error: a
    /// recording with holes would replay as something that never happened.
    pub(crate) fn take(&mut self, out: &Outputs) -> Result<(), RecordingError> {
        if let Some(r) = self.recording.as_mut() {
            r.write(&out.recorded)?;
        }
        for g in &out.governed {
            self.governed(g);
        }
        for o in &out.pipeline {
            log_output(o);
        }
        Ok(())
    }

    fn governed(&mut self, g: &Governed) {
        match g {
            Governed::Exchange { agent, exchange: x, cost } => {
                if let Some(c) = self.metrics.on_exchange(agent.as_deref().unwrap_or(NO_AGENT), x, *cost)
                    && let Some(o) = &self.otlp
                {
                    o.on_exchange(&c, x, *cost);
                }
                log_exchange(agent.as_deref(), x, *cost);
            }
            Governed::Command { pid, agent, name, proposed_by, .. } => {
                if let Some(a) = agent.as_deref() {
                    self.metrics.on_agent_command(a, proposed_by.is_some());
                }
                let call_id = proposed_by.as_ref().map(|p| p.call_id.as_str());
                tracing::debug!(pid, program = %name, agent = agent.as_deref().unwrap_or(NO_AGENT), call_id, "command");
            }
            Governed::ApiCall(rec) => {
                let agent = rec.agent.as_deref().unwrap_or(NO_AGENT);
                self.metrics.on_api_call(agent, &rec.rule_id, rec.severity, rec.action);
                // Method, host and rule only: the path can name things, the query and body are never kept.
                tracing::warn!(agent, rule = %rec.rule_id, severity = ?rec.severity, action = rec.action.as_str(), method = %rec.request.method, host = %rec.request.host, pid = rec.pid, "destructive API call");
                if let Some(o) = &self.otlp {
                    o.on_api_audit(rec);
                }
                self.write_audit(rec);
            }
            Governed::Deleted { agent, place } => self.metrics.on_file_deleted(agent, *place),
            Governed::IoUring { agent, pid } => {
                self.metrics.on_io_uring(agent);
                tracing::info!(agent = %agent, pid, "io_uring set up by an agent's process");
            }
            Governed::Deletion(rec) => {
                let agent = rec.agent.as_deref().unwrap_or(NO_AGENT);
                tracing::warn!(agent, rule = rec.rule_id, files = rec.files, pid = rec.pid, action = rec.action.as_str(), "agent deletions");
                self.write_audit(rec);
            }
            Governed::Destructive(rec) => {
                let agent = rec.agent.as_deref().unwrap_or(NO_AGENT);
                self.metrics.on_destructive(agent, &rec.rule_id, rec.severity, rec.action);
                tracing::warn!(agent, rule = %rec.rule_id, severity = ?rec.severity, pid = rec.pid, "destructive command");
                if let Some(o) = &self.otlp {
                    o.on_audit(rec);
                }
                self.write_audit(rec);
            }
        }
    }

    fn write_audit(&mut self, rec: &impl serde::Serialize) {
        if let Some(w) = self.audit.as_mut()
            && let Err(e) = w.write(rec)
        {
            self.audit_errors += 1;
            tracing::warn!(error = %e, "audit record not written");
        }
    }
}

/// Logs a finished exchange: what was called and what it used, never its content.
fn log_exchange(agent: Option<&str>, x: &Exchange, cost: Option<Cost>) {
    let (usd, unpriced) = match cost {
        Some(Cost::Usd(v)) => (Some(v), None),
        Some(Cost::Unpriced { tokens }) => (None, Some(tokens)),
        None => (None, None),
    };
    tracing::info!(
        agent = agent.unwrap_or(NO_AGENT),
        role = ?x.role,
        provider = ?x.provider,
        endpoint = ?x.endpoint,
        model = x.model.as_deref(),
        status = x.status,
        streamed = x.streamed,
        complete = x.complete,
        reason = x.incomplete_reason.map(|r| format!("{r:?}")),
        input = x.usage.input,
        cache_read = x.usage.cache_read,
        cache_write = x.usage.cache_write,
        output = x.usage.output,
        reasoning = x.usage.reasoning,
        cache_write_1h = x.usage.cache_write_1h,
        cost_usd = usd,
        unpriced_tokens = unpriced,
        "exchange"
    );
}

/// Logs what the pipeline learnt. Never argv or payload bytes: they can carry secrets and
/// prompt text.
fn log_output(o: &Output) {
    match o {
        Output::Exec(e) => {
            tracing::debug!(pid = e.pid, ppid = e.ppid, file = %e.filename, argc = e.argv.len(), outcome = ?e.outcome, "exec");
        }
        Output::Stream(StreamEvent::Gap { conn, dir, missing, .. }) => {
            tracing::debug!(pid = conn.pid, ?dir, missing, "stream gap");
        }
        _ => {}
    }
}
