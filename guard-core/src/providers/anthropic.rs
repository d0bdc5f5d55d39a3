//! Anthropic Messages (`POST /v1/messages`), also as served by Vertex (`:rawPredict`) and inside
//! Bedrock invoke bodies.
//!
//! Usage: input_tokens (uncached) → input, cache_read_input_tokens → cache_read,
//! cache_creation_input_tokens → cache_write (its `cache_creation.ephemeral_1h_input_tokens` part
//! → cache_write_1h), output_tokens → output (thinking included; Anthropic
//! reports no separate count). In a stream, `message_start` carries the first usage and every
//! `message_delta` carries CUMULATIVE counts: each field present replaces the earlier value.

use serde::Deserialize;

use super::{Observed, Payload, parse};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AnthropicUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    /// The split of `cache_creation_input_tokens` by lifetime (5 minutes, 1 hour).
    cache_creation: Option<CacheCreation>,
}

#[derive(Debug, Default, Deserialize)]
struct CacheCreation {
    ephemeral_1h_input_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    usage: Option<AnthropicUsage>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Message<'a>>,
    usage: Option<AnthropicUsage>,
    #[serde(borrow)]
    error: Option<ErrorBody<'a>>,
}

pub(crate) fn apply_usage(o: &mut Observed, u: &AnthropicUsage) {
    // Replace, never add: later counts are cumulative.
    let t = &mut o.usage;
    if let Some(v) = u.input_tokens {
        t.input = v;
    }
    if let Some(v) = u.cache_read_input_tokens {
        t.cache_read = v;
    }
    if let Some(v) = u.cache_creation_input_tokens {
        t.cache_write = v;
    }
    if let Some(v) = u.cache_creation.as_ref().and_then(|c| c.ephemeral_1h_input_tokens) {
        // Never more than the total it is part of, whatever the body says.
        t.cache_write_1h = v.min(t.cache_write);
    }
    if let Some(v) = u.output_tokens {
        t.output = v;
    }
    o.usage_seen = true;
}

pub fn extract(o: &mut Observed, p: Payload<'_>) {
    match p {
        // Deltas and pings are most of a stream and carry nothing we need.
        Payload::Sse { event, .. }
            if event.starts_with("content_block") || event == "ping" => {}
        Payload::Sse { data, .. } => on_json(o, data, false),
        Payload::Json(data) => on_json(o, data, true),
        Payload::Aws { .. } => {}
    }
}

/// One Anthropic JSON object: a stream event, or (`whole`) a whole message body. A stream
/// ends with `message_stop` or `error`; an untyped object inside a stream ends nothing.
pub(crate) fn on_json(o: &mut Observed, data: &[u8], whole: bool) {
    let Some(ev) = parse::<Event<'_>>(o, data) else { return };
    match ev.kind.as_deref() {
        Some("message_start") => {
            if let Some(m) = &ev.message {
                o.set_model(m.model.as_deref());
                if let Some(u) = &m.usage {
                    apply_usage(o, u);
                }
            }
        }
        Some("message_delta") => {
            if let Some(u) = &ev.usage {
                apply_usage(o, u);
            }
        }
        Some("message_stop") => o.finished = true,
        Some("error") => {
            o.set_error(ev.error.as_ref().and_then(|e| e.kind.as_deref()));
            o.finished = true;
        }
        // A whole (non-streamed) message.
        Some("message") | None => {
            o.set_model(ev.model.as_deref());
            if let Some(u) = &ev.usage {
                apply_usage(o, u);
            }
            o.finished |= whole;
        }
        Some(_) => {}
    }
}
