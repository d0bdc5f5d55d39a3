//! AWS Bedrock runtime: `/model/{modelId}/converse`, `/converse-stream`, `/invoke` and
//! `/invoke-with-response-stream`. Streams use the binary eventstream framing.
//!
//! Converse usage: inputTokens (uncached) → input, cacheReadInputTokens → cache_read,
//! cacheWriteInputTokens → cache_write, outputTokens → output; in converse-stream it arrives in
//! the `metadata` event. Invoke bodies are the model's own format: Anthropic models (the ones
//! agents use) are read as Anthropic Messages; the final stream chunk's
//! `amazon-bedrock-invocationMetrics` and the `x-amzn-bedrock-*-token-count` response headers
//! are used when the body itself carries no usage.
//!
//! Terminal events: converse-stream's `metadata` (it follows `messageStop` and carries the
//! usage, so a stream cut between the two is incomplete); in invoke streams the model's own end
//! (Anthropic `message_stop`) or the final chunk's invocation metrics; an exception message.
//!
//! Tool calls: Converse's `output.message.content[].toolUse` (`toolUseId`, `name`, `input`
//! object); converse-stream opens one in `contentBlockStart` (`start.toolUse`), sends its input
//! as string pieces in `contentBlockDelta` (`delta.toolUse.input`) and ends it with
//! `contentBlockStop`, all on `contentBlockIndex`. Invoke bodies are Anthropic's `tool_use`.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde::{Deserialize, de::IgnoredAny};

use super::{
    Observed, Payload, Shape, Usage, anthropic,
    needle::{INVOCATION_METRICS, TOOL_USE_CAMEL},
    parse,
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_write_input_tokens: Option<u64>,
}

/// `O` is the `output`: parsed ([`Output`]) when the body names a `toolUse` block, else
/// skipped ([`IgnoredAny`]).
#[derive(Debug, Deserialize)]
struct ConverseBody<O> {
    usage: Option<ConverseUsage>,
    /// Errors are `{"message": …}` with the type in a header or an exception event.
    message: Option<IgnoredAny>,
    output: Option<O>,
}

/// A Converse body's output, as far as tool calls go.
trait ToolUses {
    fn into_tool_uses(self) -> Vec<ToolUse>;
}

impl ToolUses for IgnoredAny {
    fn into_tool_uses(self) -> Vec<ToolUse> {
        Vec::new()
    }
}

impl ToolUses for Output {
    fn into_tool_uses(self) -> Vec<ToolUse> {
        let blocks = self.message.and_then(|m| m.content).unwrap_or_default();
        blocks.into_iter().filter_map(|c| c.tool_use).collect()
    }
}

#[derive(Debug, Deserialize)]
struct Output {
    message: Option<OutputMessage>,
}

#[derive(Debug, Deserialize)]
struct OutputMessage {
    content: Option<Vec<ContentBlock>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContentBlock {
    tool_use: Option<ToolUse>,
}

/// A whole `toolUse` block, or the start of a streamed one (no input yet).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUse {
    tool_use_id: Option<String>,
    name: Option<String>,
    input: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockEvent {
    content_block_index: Option<u64>,
    start: Option<ContentBlock>,
    delta: Option<BlockDelta>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta {
    tool_use: Option<InputPiece>,
}

#[derive(Debug, Deserialize)]
struct InputPiece {
    input: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvocationMetrics {
    input_token_count: Option<u64>,
    output_token_count: Option<u64>,
    cache_read_input_token_count: Option<u64>,
    cache_write_input_token_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct InvokeChunk {
    #[serde(rename = "amazon-bedrock-invocationMetrics")]
    metrics: Option<InvocationMetrics>,
}

#[derive(Debug, Deserialize)]
struct ChunkEnvelope {
    bytes: Option<String>,
}

pub fn extract(shape: Shape, o: &mut Observed, p: Payload<'_>) {
    match (shape, p) {
        (Shape::BedrockConverse, Payload::Json(data)) => {
            converse_json(o, data);
            o.finished = true;
        }
        (Shape::BedrockInvoke, Payload::Json(data)) => anthropic::on_json(o, data, true),
        (_, Payload::Aws { message_type, event_type, payload }) => {
            if message_type != "event" {
                o.set_error(Some(event_type));
                o.finished = true;
            } else if event_type == "metadata" {
                converse_json(o, payload);
                o.tools.close_all();
                o.finished = true;
            } else if event_type.starts_with("contentBlock") {
                content_block(o, event_type, payload);
            } else if event_type == "chunk" {
                invoke_chunk(o, payload);
            }
        }
        _ => {}
    }
}

fn converse_json(o: &mut Observed, data: &[u8]) {
    if TOOL_USE_CAMEL.is_in(data) {
        converse::<Output>(o, data);
    } else {
        converse::<IgnoredAny>(o, data);
    }
}

fn converse<'a, O: Deserialize<'a> + ToolUses>(o: &mut Observed, data: &'a [u8]) {
    let Some(b) = parse::<ConverseBody<O>>(o, data) else { return };
    for t in b.output.map(O::into_tool_uses).unwrap_or_default() {
        let args = t.input.as_ref().map(serde_json::Value::to_string).unwrap_or_default();
        o.tools.push(t.name.as_deref().unwrap_or(""), t.tool_use_id.as_deref().unwrap_or(""), &args);
    }
    if let Some(u) = b.usage {
        o.usage = Usage {
            input: u.input_tokens.unwrap_or(0),
            cache_read: u.cache_read_input_tokens.unwrap_or(0),
            cache_write: u.cache_write_input_tokens.unwrap_or(0),
            output: u.output_tokens.unwrap_or(0),
            ..Usage::default()
        };
        o.usage_seen = true;
    } else if b.message.is_some() {
        o.set_error(None);
    }
}

/// A converse-stream content block event; text deltas (most of them) are not parsed.
fn content_block(o: &mut Observed, event_type: &str, payload: &[u8]) {
    let wanted = match event_type {
        "contentBlockStart" | "contentBlockDelta" => TOOL_USE_CAMEL.is_in(payload),
        "contentBlockStop" => o.tools.has_open(),
        _ => false,
    };
    if !wanted {
        return;
    }
    let Some(ev) = parse::<BlockEvent>(o, payload) else { return };
    let index = ev.content_block_index.unwrap_or(0);
    if let Some(t) = ev.start.and_then(|s| s.tool_use) {
        o.tools.open(index, t.name.as_deref(), t.tool_use_id.as_deref());
    } else if let Some(piece) = ev.delta.and_then(|d| d.tool_use) {
        o.tools.append(index, piece.input.as_deref().unwrap_or(""));
    } else if event_type == "contentBlockStop" {
        o.tools.close(index);
    }
}

/// An invoke-with-response-stream chunk: base64 of the model's own stream event.
fn invoke_chunk(o: &mut Observed, payload: &[u8]) {
    let Some(env) = parse::<ChunkEnvelope>(o, payload) else { return };
    let Some(inner) = env.bytes.and_then(|b| STANDARD.decode(b).ok()) else {
        o.bad_payloads += 1;
        return;
    };
    anthropic::on_json(o, &inner, false);
    // Only the final chunk carries the metrics: parse for them only when they are there.
    if !INVOCATION_METRICS.is_in(&inner) {
        return;
    }
    if let Ok(InvokeChunk { metrics: Some(m) }) = serde_json::from_slice::<InvokeChunk>(&inner) {
        // The model's own usage (Anthropic's message_start/message_delta) wins over the metrics.
        if !o.usage_seen {
            apply_counts(o, m.input_token_count, m.output_token_count, m.cache_read_input_token_count, m.cache_write_input_token_count);
        }
        o.finished = true;
    }
}

/// Token counts given outside the body (invocation metrics, response headers).
pub fn apply_counts(o: &mut Observed, input: Option<u64>, output: Option<u64>, cache_read: Option<u64>, cache_write: Option<u64>) {
    if input.is_none() && output.is_none() {
        return;
    }
    o.usage = Usage {
        input: input.unwrap_or(0),
        cache_read: cache_read.unwrap_or(0),
        cache_write: cache_write.unwrap_or(0),
        output: output.unwrap_or(0),
        ..Usage::default()
    };
    o.usage_seen = true;
}

/// The model id in a Bedrock path (`/model/{id}/…`), percent-decoded (ids contain `:`, ARNs `/`).
pub fn model_id(path: &str) -> Option<String> {
    let rest = path.split("/model/").nth(1)?;
    let id = rest.rsplit_once('/').map(|(id, _)| id)?;
    (!id.is_empty()).then(|| super::route::percent_decode(id))
}
