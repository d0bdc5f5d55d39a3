//! LLM call metrics: requests by outcome, tokens by type, cost, latency and time to first byte.
//!
//! What counts: only exchanges where the captured process is the client (`role == Client`) and the
//! call is an inference call (`inference`). A local TLS server (gateway, mock) sees the same call
//! from the other side and telemetry, model lists and token counting are not inference; counting
//! them would double or inflate the numbers.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::{Registry, Unit},
};

use super::labels::{Outcome, TokenType, provider_str};
use guard_core::{
    cost::Cost,
    protocols::{Exchange, IncompleteReason, Role},
};

/// Request latencies of LLM calls: from a tenth of a second (a cached reply) to five minutes (a
/// long reasoning call).
pub(crate) const DURATION_BUCKETS: [f64; 12] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0];
/// Time to the first byte of a streamed reply: usually well under ten seconds.
pub(crate) const TTFT_BUCKETS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub agent: String,
    pub provider: &'static str,
    pub model: String,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TokenLabels {
    pub agent: String,
    pub provider: &'static str,
    pub model: String,
    #[prometheus(flatten)]
    pub kind: TypeLabel,
}

/// `type` is a Rust keyword, so the token type gets its own one-field label set.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct TypeLabel(pub TokenType);

impl EncodeLabelSet for TypeLabel {
    fn encode(&self, mut encoder: prometheus_client::encoding::LabelSetEncoder<'_>) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeLabel as _;
        ("type", self.0.as_str()).encode(encoder.encode_label())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CostLabels {
    pub agent: String,
    pub provider: &'static str,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct UnpricedLabels {
    pub provider: &'static str,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LatencyLabels {
    pub agent: String,
    pub provider: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct IncompleteLabels {
    pub agent: String,
    pub provider: &'static str,
    pub reason: Reason,
}

/// Why an exchange is incomplete (a closed set, from the decoder).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) struct Reason(pub Option<IncompleteReason>);

impl prometheus_client::encoding::EncodeLabelValue for Reason {
    fn encode(&self, e: &mut prometheus_client::encoding::LabelValueEncoder<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        e.write_str(match self.0 {
            None => "unknown",
            Some(IncompleteReason::ClientAbort) => "client_abort",
            Some(IncompleteReason::Gap) => "gap",
            Some(IncompleteReason::MidStreamStart) => "mid_stream_start",
            Some(IncompleteReason::DecodeError) => "decode_error",
            Some(IncompleteReason::BodyCap) => "body_cap",
            Some(IncompleteReason::ConnectionClosed) => "connection_closed",
            Some(IncompleteReason::StreamTruncated) => "stream_truncated",
            Some(IncompleteReason::HeadersUnknown) => "headers_unknown",
            Some(IncompleteReason::StreamReset) => "stream_reset",
        })
    }
}

pub(crate) struct LlmMetrics {
    requests: Family<RequestLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<CostLabels, Counter<f64, AtomicU64>>,
    unpriced: Family<UnpricedLabels, Counter>,
    duration: Family<LatencyLabels, Histogram>,
    ttft: Family<LatencyLabels, Histogram>,
    incomplete: Family<IncompleteLabels, Counter>,
}

impl LlmMetrics {
    pub(crate) fn register(reg: &mut Registry) -> Self {
        let requests = Family::default();
        reg.register(
            "guard_llm_requests",
            "LLM inference requests made by agents, by outcome (ok, error: HTTP status >= 400 or a provider error, incomplete: the reply did not end)",
            requests.clone(),
        );
        let tokens = Family::default();
        reg.register(
            "guard_llm_tokens",
            "Tokens reported by the provider, by type; the types partition the billed total (input excludes cached tokens, output excludes reasoning)",
            tokens.clone(),
        );
        let cost = Family::default();
        reg.register(
            "guard_llm_cost_usd",
            "What LLM inference requests cost in USD, from the reported tokens of each type and the price table (`guard prices`)",
            cost.clone(),
        );
        let unpriced = Family::default();
        reg.register(
            "guard_llm_unpriced_tokens",
            "Tokens of LLM inference requests whose model the price table does not price (not in guard_llm_cost_usd)",
            unpriced.clone(),
        );
        let duration = Family::new_with_constructor(
            (|| Histogram::new(DURATION_BUCKETS)) as fn() -> Histogram,
        );
        reg.register_with_unit(
            "guard_llm_request_duration",
            "LLM inference request duration, from the request's first byte to the reply's last",
            Unit::Seconds,
            duration.clone(),
        );
        let ttft = Family::new_with_constructor((|| Histogram::new(TTFT_BUCKETS)) as fn() -> Histogram);
        reg.register_with_unit(
            "guard_llm_time_to_first_token",
            "Streamed LLM replies: time from the request's first byte to the reply's first byte",
            Unit::Seconds,
            ttft.clone(),
        );
        let incomplete = Family::default();
        reg.register(
            "guard_llm_incomplete_requests",
            "LLM inference requests whose reply did not end, by reason",
            incomplete.clone(),
        );
        Self { requests, tokens, cost, unpriced, duration, ttft, incomplete }
    }

    /// Counts one exchange and its cost (the engine's, `None` when it reported no usage).
    /// `agent` and `model` are already sanitised and capped.
    pub(crate) fn observe(&self, agent: &str, model: &str, x: &Exchange, cost: Option<Cost>) {
        let outcome = outcome(x);
        let provider = x.provider;
        self.requests
            .get_or_create(&RequestLabels { agent: agent.into(), provider: provider_str(provider), model: model.into(), outcome })
            .inc();
        if outcome == Outcome::Incomplete {
            self.incomplete
                .get_or_create(&IncompleteLabels { agent: agent.into(), provider: provider_str(provider), reason: Reason(x.incomplete_reason) })
                .inc();
        }
        if x.usage_seen {
            let u = &x.usage;
            for (kind, n) in TokenType::ALL.into_iter().zip([u.input, u.cache_read, u.cache_write, u.output, u.reasoning]) {
                self.tokens
                    .get_or_create(&TokenLabels { agent: agent.into(), provider: provider_str(provider), model: model.into(), kind: TypeLabel(kind) })
                    .inc_by(n);
            }
        }
        self.observe_cost(agent, model, provider_str(provider), cost);
        let t = &x.timings;
        let latency = LatencyLabels { agent: agent.into(), provider: provider_str(provider) };
        if let Some(start) = t.start_ns {
            if let Some(d) = t.end_ns.checked_sub(start) {
                self.duration.get_or_create(&latency).observe(seconds(d));
            }
            if x.streamed
                && let Some(first) = t.first_byte_ns
                && let Some(d) = first.checked_sub(start)
            {
                self.ttft.get_or_create(&latency).observe(seconds(d));
            }
        }
    }
}

impl LlmMetrics {
    fn observe_cost(&self, agent: &str, model: &str, provider: &'static str, cost: Option<Cost>) {
        match cost {
            Some(Cost::Usd(usd)) => {
                self.cost.get_or_create(&CostLabels { agent: agent.into(), provider, model: model.into() }).inc_by(usd);
            }
            Some(Cost::Unpriced { tokens }) => {
                self.unpriced.get_or_create(&UnpricedLabels { provider, model: model.into() }).inc_by(tokens);
            }
            None => {}
        }
    }
}

/// Whether an exchange is counted at all.
pub(crate) fn counts(x: &Exchange) -> bool {
    x.role == Role::Client && x.inference
}

/// `error` when the provider said so (status >= 400, or an error in the body or stream), else
/// `incomplete` when the reply did not end, else `ok`.
pub(crate) fn outcome(x: &Exchange) -> Outcome {
    if x.status.is_some_and(|s| s >= 400) || x.error_type.is_some() {
        Outcome::Error
    } else if !x.complete {
        Outcome::Incomplete
    } else {
        Outcome::Ok
    }
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}
