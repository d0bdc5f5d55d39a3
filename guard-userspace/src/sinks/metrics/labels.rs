//! Label values: closed sets as enums, open sets (agents, models, rules, libraries) sanitised and
//! capped so that no input can grow the number of series without bound. Once a value is admitted
//! it keeps its series (counters cannot be forgotten); values past the cap become `other`.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    sync::Mutex,
};

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use serde::{Deserialize, Serialize};

use guard_common::event::LossSlot;
use guard_core::{
    labels::{self, Kind},
    providers::Provider,
};

/// The value that stands for every value past a cap.
pub(crate) const OTHER: &str = "other";
/// The model label when the exchange named no model.
pub(crate) const UNKNOWN: &str = "unknown";

/// How many distinct values each open label may take. `other` and `unknown` do not count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelCaps {
    /// Distinct `model` values per provider.
    pub max_models_per_provider: usize,
    /// Distinct `agent` values (catalog ids, zero-config labels and `none`).
    pub max_agents: usize,
    /// Distinct `rule` values (rule ids come from the catalog, so this is a safety net).
    pub max_rules: usize,
    /// Distinct `tool` values per provider, and per MCP server (shell tools always keep
    /// their own name).
    pub max_tools: usize,
    /// Distinct MCP `server` values (host names).
    pub max_mcp_servers: usize,
}

impl Default for LabelCaps {
    fn default() -> Self {
        Self {
            // A team rarely uses more than a handful of models per provider at once.
            max_models_per_provider: 20,
            // The built-in catalog, admin agents and the process table's 32 zero-config labels.
            max_agents: 64,
            // The built-in catalog has about 60 rules.
            max_rules: 256,
            // An agent declares a few dozen tools; MCP servers add theirs.
            max_tools: 64,
            max_mcp_servers: 32,
        }
    }
}

/// First-come admission of label values, per scope, up to a cap.
#[derive(Debug)]
pub(crate) struct Capped {
    cap: usize,
    admitted: Mutex<BTreeMap<&'static str, BTreeSet<String>>>,
}

impl Capped {
    pub(crate) fn new(cap: usize) -> Self {
        Self { cap, admitted: Mutex::new(BTreeMap::new()) }
    }

    /// `value` if it is already admitted in `scope` or there is room, else `other`.
    pub(crate) fn admit(&self, scope: &'static str, value: String) -> String {
        if value == OTHER || value == UNKNOWN {
            return value;
        }
        // A poisoned lock only means another thread panicked mid-insert; the set is still valid.
        let mut admitted = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
        let set = admitted.entry(scope).or_default();
        if set.contains(&value) {
            return value;
        }
        if set.len() < self.cap {
            set.insert(value.clone());
            return value;
        }
        OTHER.to_owned()
    }

    /// The values admitted in `scope`.
    pub(crate) fn values(&self, scope: &'static str) -> Vec<String> {
        let admitted = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
        admitted.get(scope).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }
}

/// An agent id as a label; `none` when empty.
pub(crate) fn agent_value(raw: &str) -> String {
    labels::clean(Kind::Agent, raw).unwrap_or_else(|| "none".to_owned())
}

/// A model name as a label; `unknown` when absent or empty.
pub(crate) fn model_value(raw: Option<&str>) -> String {
    raw.and_then(|m| labels::clean(Kind::Model, m)).unwrap_or_else(|| UNKNOWN.to_owned())
}

/// A short identifier (rule id, library name).
pub(crate) fn ident_value(raw: &str) -> String {
    labels::clean(Kind::Ident, raw).unwrap_or_else(|| UNKNOWN.to_owned())
}

/// Implements `EncodeLabelValue` through an `as_str`-like function.
macro_rules! label_value {
    ($t:ty, $f:expr) => {
        impl EncodeLabelValue for $t {
            fn encode(&self, e: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
                let f: fn(&$t) -> &'static str = $f;
                e.write_str(f(self))
            }
        }
    };
}

/// How an inference request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Outcome {
    Ok,
    Error,
    Incomplete,
}

impl Outcome {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Incomplete => "incomplete",
        }
    }
}

/// The token partition: their sum is the billed total.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TokenType {
    Input,
    CacheRead,
    CacheWrite,
    Output,
    Reasoning,
}

impl TokenType {
    pub(crate) const ALL: [Self; 5] = [Self::Input, Self::CacheRead, Self::CacheWrite, Self::Output, Self::Reasoning];

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::CacheRead => "cache_read",
            Self::CacheWrite => "cache_write",
            Self::Output => "output",
            Self::Reasoning => "reasoning",
        }
    }
}

/// Where events were lost. Each source is a cumulative counter somewhere in guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum LossSource {
    /// The kernel could not reserve ring buffer space (records dropped).
    KernelRingFull,
    /// TLS plaintext cut by the kernel's per-call limits.
    KernelTlsTruncated,
    /// The reader's channel to the pipeline was full (records dropped).
    ChannelFull,
    /// Records that did not decode.
    DecodeError,
    /// Holes in a connection's byte stream (ring full, truncation, capture started mid-stream).
    StreamGap,
    /// HTTP/SSE/JSON payloads the protocol decoders could not read.
    DecoderError,
    /// Exec records abandoned because their parts never met (pending limit).
    ExecDropped,
    /// TLS data through a guessed hook that was rejected, or held past the limit while unverified.
    UnverifiedHook,
    /// rustls records sealed or opened under a key guard could not tie to a socket.
    KernelAeadUnbound,
    /// TLS 1.3 records whose padding hid their content type.
    KernelTls13Padding,
    /// exec argv the kernel could not read from the process's memory.
    KernelArgvRead,
    /// TLS plaintext (or its length) the kernel could not read from the process's memory.
    KernelTlsRead,
    /// Children of agents the kernel could not put in the gate's scope (`AGENT_TGIDS` full).
    GateAgentMapFull,
    /// In-scope execs the kernel could not give a ticket (`GATE_EXECS` full): unjudged.
    GateExecMapFull,
    /// Stopped execs released unjudged because the stop ring was full.
    GateStopRingFull,
    /// In-scope execs the kernel did not stop because guard was not answering.
    GateStale,
    /// Gate decisions not written to audit and metrics because their channel was full.
    GateRecords,
    /// Agents' deletions the kernel could not follow from entry to exit (`DELETES_PENDING` full):
    /// unreported, and not enforced.
    DeletePendingFull,
    /// Agents' deletions whose path the kernel could not read from the process's memory.
    DeletePathRead,
    /// Tool calls (or their arguments) past an exchange's bounds, and calls forgotten before
    /// their link window ended: commands they proposed cannot be linked.
    ToolCalls,
}

impl LossSource {
    pub(crate) const ALL: [Self; 20] = [
        Self::KernelRingFull,
        Self::KernelTlsTruncated,
        Self::ChannelFull,
        Self::DecodeError,
        Self::StreamGap,
        Self::DecoderError,
        Self::ExecDropped,
        Self::UnverifiedHook,
        Self::KernelAeadUnbound,
        Self::KernelTls13Padding,
        Self::KernelArgvRead,
        Self::KernelTlsRead,
        Self::GateAgentMapFull,
        Self::GateExecMapFull,
        Self::GateStopRingFull,
        Self::GateStale,
        Self::GateRecords,
        Self::DeletePendingFull,
        Self::DeletePathRead,
        Self::ToolCalls,
    ];

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::KernelRingFull => "kernel_ring_full",
            Self::KernelTlsTruncated => "kernel_tls_truncated",
            Self::ChannelFull => "channel_full",
            Self::DecodeError => "decode_error",
            Self::StreamGap => "stream_gap",
            Self::DecoderError => "decoder_error",
            Self::ExecDropped => "exec_dropped",
            Self::UnverifiedHook => "unverified_hook",
            Self::KernelAeadUnbound => "kernel_aead_unbound",
            Self::KernelTls13Padding => "kernel_tls13_padding",
            Self::KernelArgvRead => "kernel_argv_read",
            Self::KernelTlsRead => "kernel_tls_read",
            Self::GateAgentMapFull => "gate_agent_map_full",
            Self::GateExecMapFull => "gate_exec_map_full",
            Self::GateStopRingFull => "gate_stop_ring_full",
            Self::GateStale => "gate_stale",
            Self::GateRecords => "gate_records",
            Self::DeletePendingFull => "delete_pending_full",
            Self::DeletePathRead => "delete_path_read",
            Self::ToolCalls => "tool_calls",
        }
    }
}

/// The source each kernel loss counter is exported as. No wildcard: a new slot does not compile
/// until it has a source.
impl From<LossSlot> for LossSource {
    fn from(slot: LossSlot) -> Self {
        match slot {
            LossSlot::RingFull => Self::KernelRingFull,
            LossSlot::TlsTruncated => Self::KernelTlsTruncated,
            LossSlot::ArgvRead => Self::KernelArgvRead,
            LossSlot::TlsRead => Self::KernelTlsRead,
            LossSlot::AeadUnbound => Self::KernelAeadUnbound,
            LossSlot::Tls13Padding => Self::KernelTls13Padding,
            LossSlot::GateAgentMapFull => Self::GateAgentMapFull,
            LossSlot::GateExecMapFull => Self::GateExecMapFull,
            LossSlot::GateStopRingFull => Self::GateStopRingFull,
            LossSlot::GateStale => Self::GateStale,
            LossSlot::DeletePendingFull => Self::DeletePendingFull,
            LossSlot::DeletePathRead => Self::DeletePathRead,
        }
    }
}

pub(crate) const fn provider_str(p: Provider) -> &'static str {
    match p {
        Provider::Anthropic => "anthropic",
        Provider::OpenaiChat => "openai_chat",
        Provider::OpenaiResponses => "openai_responses",
        Provider::Gemini => "gemini",
        Provider::Azure => "azure",
        Provider::Bedrock => "bedrock",
        Provider::Unknown => "unknown",
    }
}

label_value!(Outcome, |v| v.as_str());
label_value!(TokenType, |v| v.as_str());
label_value!(LossSource, |v| v.as_str());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_sanitised() {
        assert_eq!(agent_value("Claude Code"), "claude_code");
        assert_eq!(agent_value(""), "none");
        assert_eq!(model_value(Some("us.anthropic.claude-3-5-sonnet-20240620-v1:0")), "us.anthropic.claude-3-5-sonnet-20240620-v1:0");
        assert_eq!(model_value(Some("gpt 4\"}\n")), "gpt_4__");
        assert_eq!(model_value(Some("  ")), "unknown");
        assert_eq!(model_value(None), "unknown");
        assert_eq!(model_value(Some(&"m".repeat(500))).len(), 96);
        assert_eq!(ident_value("rm-rf/root"), "rm-rf_root");
    }

    #[test]
    fn caps_are_per_scope_and_sticky() {
        let c = Capped::new(2);
        assert_eq!(c.admit("a", "x".into()), "x");
        assert_eq!(c.admit("a", "y".into()), "y");
        assert_eq!(c.admit("a", "z".into()), "other");
        assert_eq!(c.admit("a", "x".into()), "x");
        assert_eq!(c.admit("a", "unknown".into()), "unknown");
        assert_eq!(c.admit("b", "z".into()), "z");
    }
}
