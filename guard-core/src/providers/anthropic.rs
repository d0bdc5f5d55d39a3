//! Anthropic Messages (`POST /v1/messages`), also as served by Vertex (`:rawPredict`) and inside
//! Bedrock invoke bodies.
//!
//! Usage: input_tokens (uncached) → input, cache_read_input_tokens → cache_read,
//! cache_creation_input_tokens → cache_write (its `cache_creation.ephemeral_1h_input_tokens` part
//! → cache_write_1h), output_tokens → output (thinking included; Anthropic
//! reports no separate count). In a stream, `message_start` carries the first usage and every
//! `message_delta` carries CUMULATIVE counts: each field present replaces the earlier value.
//!
//! Tool calls: `tool_use` content blocks. A whole message has their `input` object; a stream
//! opens one with `content_block_start` (id, name), sends the input as `input_json_delta`
//! fragments on the block's index, and ends it with `content_block_stop`.

use std::{borrow::Cow, fmt, marker::PhantomData};

use serde::{
    Deserialize, Deserializer,
    de::{IgnoredAny, SeqAccess, Visitor},
};

use super::{
    Observed, Payload,
    needle::{BLOCK_STOP, INPUT_JSON_DELTA, TOOL_USE},
    parse,
};

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

/// A content block: only `tool_use` blocks are kept.
#[derive(Debug, Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    input: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Delta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partial_json: Option<Cow<'a, str>>,
}

/// `content_block_start`, `_delta` and `_stop`.
#[derive(Debug, Deserialize)]
struct BlockEvent<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    content_block: Option<Block<'a>>,
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
}

/// `C` is a whole message's `content`: its tool blocks ([`ToolBlocks`]) when the body names a
/// `tool_use` block, else skipped unparsed ([`IgnoredAny`]): most bodies have no tool call.
#[derive(Debug, Deserialize)]
struct Event<'a, C> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Message<'a>>,
    usage: Option<AnthropicUsage>,
    #[serde(borrow)]
    error: Option<ErrorBody<'a>>,
    content: Option<C>,
}

/// A whole message's content, as far as tool calls go.
trait Content {
    fn tool_blocks(&self, o: &mut Observed);
}

impl Content for IgnoredAny {
    fn tool_blocks(&self, _: &mut Observed) {}
}

impl Content for ToolBlocks<'_> {
    fn tool_blocks(&self, o: &mut Observed) {
        for b in &self.0 {
            tool_block(o, b);
        }
    }
}

/// A whole message's `tool_use` blocks: the others are read past, not kept (a long answer has
/// thousands of text blocks).
#[derive(Debug)]
struct ToolBlocks<'a>(Vec<Block<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for ToolBlocks<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(KeepTools(PhantomData))
    }
}

struct KeepTools<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for KeepTools<'a> {
    type Value = ToolBlocks<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of content blocks")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut kept = Vec::new();
        while let Some(b) = seq.next_element::<Block<'a>>()? {
            if b.kind.as_deref() == Some("tool_use") {
                kept.push(b);
            }
        }
        Ok(ToolBlocks(kept))
    }
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
        // Text deltas and pings are most of a stream: only tool blocks are parsed.
        Payload::Sse { event, data } if event.starts_with("content_block") => {
            if is_tool_block(o, event, data) {
                on_block(o, event, data);
            }
        }
        Payload::Sse { event: "ping", .. } => {}
        Payload::Sse { data, .. } => on_json(o, data, false),
        Payload::Json(data) => on_json(o, data, true),
        Payload::Aws { .. } => {}
    }
}

/// One Anthropic JSON object: a stream event, or (`whole`) a whole message body. A stream
/// ends with `message_stop` or `error`; an untyped object inside a stream ends nothing.
pub(crate) fn on_json(o: &mut Observed, data: &[u8], whole: bool) {
    if TOOL_USE.is_in(data) {
        on_event::<ToolBlocks<'_>>(o, data, whole);
    } else {
        on_event::<IgnoredAny>(o, data, whole);
    }
}

fn on_event<'a, C: Deserialize<'a> + Content>(o: &mut Observed, data: &'a [u8], whole: bool) {
    let Some(ev) = parse::<Event<'a, C>>(o, data) else { return };
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
        Some(kind @ ("content_block_start" | "content_block_delta" | "content_block_stop")) => {
            if is_tool_block(o, kind, data) {
                on_block(o, kind, data);
            }
        }
        Some("message_stop") => {
            o.tools.close_all();
            o.finished = true;
        }
        Some("error") => {
            o.set_error(ev.error.as_ref().and_then(|e| e.kind.as_deref()));
            o.finished = true;
        }
        // A whole (non-streamed) message.
        Some("message") | None => {
            o.set_model(ev.model.as_deref());
            if let Some(c) = &ev.content {
                c.tool_blocks(o);
            }
            if let Some(u) = &ev.usage {
                apply_usage(o, u);
            }
            o.finished |= whole;
        }
        Some(_) => {}
    }
}

/// Whether a `content_block_*` payload may concern a tool call: a `tool_use` start, an input
/// delta, or a stop while a call is open. Spares the parse of every text delta, at the cost of
/// one search for the one name its kind can carry.
fn is_tool_block(o: &Observed, kind: &str, data: &[u8]) -> bool {
    let stop = || o.tools.has_open() && BLOCK_STOP.is_in(data);
    match kind {
        "content_block_delta" => match delta_type(data) {
            Some(t) => t == b"input_json_delta",
            None => INPUT_JSON_DELTA.is_in(data),
        },
        "content_block_start" => TOOL_USE.is_in(data),
        "content_block_stop" => stop(),
        _ => TOOL_USE.is_in(data) || INPUT_JSON_DELTA.is_in(data) || stop(),
    }
}

/// A delta's type read where Anthropic writes it, ahead of the text
/// (`{"type":"content_block_delta","index":N,"delta":{"type":"…"`), so a text delta is known
/// without searching its text; `None` when the event is written otherwise.
fn delta_type(data: &[u8]) -> Option<&[u8]> {
    let rest = data.strip_prefix(br#"{"type":"content_block_delta","index":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = rest[digits..].strip_prefix(br#","delta":{"type":""#)?;
    let end = memchr::memchr(b'"', rest)?;
    rest.get(..end)
}

fn on_block(o: &mut Observed, kind: &str, data: &[u8]) {
    let Some(ev) = parse::<BlockEvent<'_>>(o, data) else { return };
    let Some(index) = ev.index else { return };
    match kind {
        "content_block_start" => {
            if let Some(b) = ev.content_block.filter(|b| b.kind.as_deref() == Some("tool_use")) {
                o.tools.open(index, b.name.as_deref(), b.id.as_deref());
            }
        }
        "content_block_delta" => {
            if let Some(d) = ev.delta.filter(|d| d.kind.as_deref() == Some("input_json_delta")) {
                o.tools.append(index, d.partial_json.as_deref().unwrap_or(""));
            }
        }
        _ => o.tools.close(index),
    }
}

/// A whole `tool_use` block of a non-streamed message.
fn tool_block(o: &mut Observed, b: &Block<'_>) {
    if b.kind.as_deref() != Some("tool_use") {
        return;
    }
    let args = b.input.as_ref().map(serde_json::Value::to_string).unwrap_or_default();
    o.tools.push(b.name.as_deref().unwrap_or(""), b.id.as_deref().unwrap_or(""), &args);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_is_told_by_its_type_in_any_key_order() {
        let text = br#"{"type":"content_block_delta","index":12,"delta":{"type":"text_delta","text":""input_json_delta""}}"#;
        let tool = br#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#;
        let reordered = br#"{"index":1,"delta":{"partial_json":"{}","type":"input_json_delta"},"type":"content_block_delta"}"#;
        let o = Observed::default();
        assert_eq!(delta_type(text), Some(&b"text_delta"[..]));
        assert!(!is_tool_block(&o, "content_block_delta", text));
        assert!(is_tool_block(&o, "content_block_delta", tool));
        assert_eq!(delta_type(reordered), None);
        assert!(is_tool_block(&o, "content_block_delta", reordered));
    }

    #[test]
    fn a_whole_message_keeps_its_tool_blocks_in_order_among_text() {
        let body = br#"{"type":"message","model":"claude-sonnet-4-5","content":[{"type":"text","text":"a \"tool_use\""},
            {"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"ls"}},{"type":"text","text":"then"},
            {"type":"tool_use","id":"toolu_2","name":"Read","input":{}}],"usage":{"input_tokens":3,"output_tokens":5}}"#;
        let mut o = Observed::default();
        extract(&mut o, Payload::Json(body));
        let got: Vec<_> = o.tools.calls.iter().map(|c| (c.call_id.as_str(), c.args.as_str())).collect();
        assert_eq!(got, [("toolu_1", r#"{"command":"ls"}"#), ("toolu_2", "{}")]);
        assert_eq!((o.usage.input, o.usage.output, o.finished), (3, 5, true));
    }

    #[test]
    fn a_message_without_tool_calls_skips_its_content_and_keeps_the_rest() {
        // `content` of any shape: it is not parsed when no block is a tool call.
        let body = br#"{"type":"message","model":"claude-sonnet-4-5","content":"just text","usage":{"input_tokens":3,"output_tokens":5}}"#;
        let mut o = Observed::default();
        extract(&mut o, Payload::Json(body));
        assert!(o.tools.calls.is_empty());
        assert_eq!((o.model.as_deref(), o.usage.output, o.bad_payloads), (Some("claude-sonnet-4-5"), 5, 0));
    }
}
