//! The GenAI semantic conventions: names, attributes and buckets of what an LLM exchange becomes
//! in OTLP (metrics and spans). Follows the conventions' `gen_ai.client.*` instruments, with the
//! newer per-kind usage counters where the token partition is richer than input/output.

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Histogram, Meter},
};

use guard_core::{
    protocols::Exchange,
    providers::{Endpoint, Provider},
};

use crate::sinks::metrics::{labels::Outcome, llm::outcome};

/// `gen_ai.client.token.usage` buckets, as the conventions ask.
const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0,
];
/// `gen_ai.client.operation.duration` buckets, as the conventions ask; also used for the time
/// to the first chunk.
const DURATION_BUCKETS: [f64; 14] = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];

pub(crate) const AGENT: &str = "guard.agent";

/// `gen_ai.provider.name`: the conventions' well-known values.
pub(crate) fn provider_name(p: Provider) -> &'static str {
    match p {
        Provider::Anthropic => "anthropic",
        Provider::OpenaiChat | Provider::OpenaiResponses => "openai",
        Provider::Gemini => "gcp.gemini",
        Provider::Azure => "azure.ai.openai",
        Provider::Bedrock => "aws.bedrock",
        Provider::Unknown => "unknown",
    }
}

/// `gen_ai.operation.name` of an inference endpoint.
pub(crate) fn operation_name(e: Endpoint) -> &'static str {
    match e {
        Endpoint::GenerateContent | Endpoint::StreamGenerateContent => "generate_content",
        Endpoint::Completions => "text_completion",
        _ => "chat",
    }
}

/// `error.type`: the provider's error type, else the HTTP status, else why the reply ended early.
pub(crate) fn error_type(x: &Exchange) -> Option<String> {
    match outcome(x) {
        Outcome::Ok => None,
        Outcome::Error => Some(match (&x.error_type, x.status) {
            (Some(e), _) => e.clone(),
            (None, Some(s)) => s.to_string(),
            (None, None) => "error".into(),
        }),
        Outcome::Incomplete => Some("incomplete".into()),
    }
}

/// The attributes every GenAI instrument carries. `agent` and `model` come capped from the
/// Prometheus sink, so both exports have the same series.
pub(crate) fn attributes(agent: &str, model: &str, x: &Exchange) -> Vec<KeyValue> {
    vec![
        KeyValue::new("gen_ai.operation.name", operation_name(x.endpoint)),
        KeyValue::new("gen_ai.provider.name", provider_name(x.provider)),
        KeyValue::new("gen_ai.request.model", model.to_owned()),
        KeyValue::new(AGENT, agent.to_owned()),
    ]
}

pub(crate) struct GenAi {
    token_usage: Histogram<u64>,
    input: Counter<u64>,
    output: Counter<u64>,
    cache_read: Counter<u64>,
    cache_write: Counter<u64>,
    reasoning: Counter<u64>,
    duration: Histogram<f64>,
    first_chunk: Histogram<f64>,
}

impl GenAi {
    pub(crate) fn new(meter: &Meter) -> Self {
        let tokens = |name: &'static str, what: &'static str| meter.u64_counter(name).with_unit("{token}").with_description(what).build();
        Self {
            token_usage: meter
                .u64_histogram("gen_ai.client.token.usage")
                .with_unit("{token}")
                .with_description("Number of input and output tokens used")
                .with_boundaries(TOKEN_BUCKETS.to_vec())
                .build(),
            input: tokens("gen_ai.client.inference.usage.input_tokens", "Input (prompt) tokens used, cached tokens included"),
            output: tokens("gen_ai.client.inference.usage.output_tokens", "Output tokens used, reasoning tokens included"),
            cache_read: tokens("gen_ai.client.inference.usage.cache_read.input_tokens", "Input tokens read from the provider's cache"),
            cache_write: tokens("gen_ai.client.inference.usage.cache_write.input_tokens", "Input tokens written to the provider's cache"),
            reasoning: tokens("gen_ai.client.inference.usage.reasoning.output_tokens", "Output tokens spent on reasoning"),
            duration: meter
                .f64_histogram("gen_ai.client.operation.duration")
                .with_unit("s")
                .with_description("GenAI operation duration")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            first_chunk: meter
                .f64_histogram("gen_ai.client.operation.time_to_first_chunk")
                .with_unit("s")
                .with_description("Time from the request to the first chunk of a streamed response")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
        }
    }

    /// Records one counted exchange (see `metrics::llm::counts`).
    pub(crate) fn record(&self, attrs: &[KeyValue], x: &Exchange) {
        if x.usage_seen {
            let u = &x.usage;
            let input = u.input + u.cache_read + u.cache_write;
            let output = u.output + u.reasoning;
            let mut typed = attrs.to_vec();
            typed.push(KeyValue::new("gen_ai.token.type", "input"));
            self.token_usage.record(input, &typed);
            if let Some(last) = typed.last_mut() {
                *last = KeyValue::new("gen_ai.token.type", "output");
            }
            self.token_usage.record(output, &typed);
            // The provider does not say which modality: the conventions' `unknown`.
            let mut kinds = attrs.to_vec();
            kinds.push(KeyValue::new("gen_ai.token.modality", "unknown"));
            self.input.add(input, &kinds);
            self.output.add(output, &kinds);
            self.cache_read.add(u.cache_read, &kinds);
            self.cache_write.add(u.cache_write, &kinds);
            self.reasoning.add(u.reasoning, &kinds);
        }
        let t = &x.timings;
        let Some(start) = t.start_ns else { return };
        if let Some(d) = t.end_ns.checked_sub(start) {
            let mut a = attrs.to_vec();
            if let Some(e) = error_type(x) {
                a.push(KeyValue::new("error.type", e));
            }
            self.duration.record(d as f64 / 1e9, &a);
        }
        if x.streamed
            && let Some(d) = t.first_byte_ns.and_then(|f| f.checked_sub(start))
        {
            self.first_chunk.record(d as f64 / 1e9, attrs);
        }
    }
}
