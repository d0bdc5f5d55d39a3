//! OpenAI Responses (`POST …/responses`, SSE events; the same JSON events arrive as WebSocket
//! messages, which is why [`on_event_json`] takes one event's JSON and nothing else).
//!
//! Usage (in `response.completed`, also `response.incomplete` / `response.failed`):
//! input_tokens includes cached, output_tokens includes reasoning, so
//! input = input_tokens − cached_tokens, cache_read = cached_tokens,
//! output = output_tokens − reasoning_tokens, reasoning = reasoning_tokens.
//!
//! Tool calls are output items: `function_call` (`name`, `arguments` string), `custom_tool_call`
//! (`name`, free-form `input`) and `local_shell_call` (its `action`, with the `command` argv,
//! under the tool name `local_shell`). A stream gives each whole in `response.output_item.done`
//! and again in `response.completed`; a whole response lists them in `output`. Kept by `call_id`.

use std::borrow::Cow;

use serde::Deserialize;

use super::{Code, Observed, Payload, Usage, needle::CALL_ITEM, parse};

#[derive(Debug, Deserialize)]
struct InDetails {
    cached_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct OutDetails {
    reasoning_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ResponsesUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<InDetails>,
    output_tokens_details: Option<OutDetails>,
}

impl ResponsesUsage {
    fn normalise(&self) -> Usage {
        let input = self.input_tokens.unwrap_or(0);
        let output = self.output_tokens.unwrap_or(0);
        let cached = self.input_tokens_details.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0).min(input);
        let reasoning = self.output_tokens_details.as_ref().and_then(|d| d.reasoning_tokens).unwrap_or(0).min(output);
        Usage { input: input - cached, cache_read: cached, output: output - reasoning, reasoning, ..Usage::default() }
    }
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<Code>,
}

#[derive(Debug, Deserialize)]
struct Response<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    usage: Option<ResponsesUsage>,
    error: Option<ErrorBody>,
    #[serde(borrow)]
    output: Option<Vec<Item<'a>>>,
}

/// An output item; only tool calls are kept.
#[derive(Debug, Deserialize)]
struct Item<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    call_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
    #[serde(borrow)]
    input: Option<Cow<'a, str>>,
    action: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    response: Option<Response<'a>>,
    // A whole (non-streamed) response object has these at the top level.
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    usage: Option<ResponsesUsage>,
    /// `error` events carry `code`; a non-streamed failure carries `error`.
    code: Option<Code>,
    error: Option<ErrorBody>,
    /// `response.output_item.done`.
    #[serde(borrow)]
    item: Option<Item<'a>>,
    /// A whole response's items.
    #[serde(borrow)]
    output: Option<Vec<Item<'a>>>,
}

pub fn extract(o: &mut Observed, p: Payload<'_>) {
    match p {
        // Only lifecycle events and errors matter; deltas are the bulk of a stream.
        Payload::Sse { event, data } => {
            if event == "message" || event == "error" || is_lifecycle(event) || is_call_item(event, data) {
                on_event_json(o, data);
            }
        }
        Payload::Json(data) => {
            on_event_json(o, data);
            o.finished = true;
        }
        Payload::Aws { .. } => {}
    }
}

/// A finished output item that may be a tool call: a message's own (its whole text) is not
/// parsed.
fn is_call_item(event: &str, data: &[u8]) -> bool {
    event == "response.output_item.done" && CALL_ITEM.is_in(data)
}

fn is_lifecycle(event: &str) -> bool {
    matches!(
        event,
        "response.created" | "response.in_progress" | "response.completed" | "response.incomplete" | "response.failed"
    )
}

/// One Responses event (SSE `data`, or one WebSocket text message), or a whole response object.
pub fn on_event_json(o: &mut Observed, data: &[u8]) {
    let Some(ev) = parse::<Event<'_>>(o, data) else { return };
    let kind = ev.kind.as_deref().unwrap_or("");
    if let Some(r) = &ev.response {
        apply(o, r.model.as_deref(), r.usage.as_ref(), r.error.as_ref());
        r.output.iter().flatten().for_each(|i| tool_call(o, i));
    }
    ev.item.iter().chain(ev.output.iter().flatten()).for_each(|i| tool_call(o, i));
    match kind {
        "response.completed" | "response.incomplete" => o.finished = true,
        "response.failed" => {
            if o.error_type.is_none() {
                o.set_error(None);
            }
            o.finished = true;
        }
        "error" => {
            let code = ev.code.as_ref().and_then(Code::text);
            o.set_error(code.as_deref().or(ev.error.as_ref().and_then(|e| e.kind.as_deref())));
            o.finished = true;
        }
        // A whole response object ("object":"response"), or an error body.
        _ if !kind.starts_with("response.") => apply(o, ev.model.as_deref(), ev.usage.as_ref(), ev.error.as_ref()),
        _ => {}
    }
}

fn apply(o: &mut Observed, model: Option<&str>, usage: Option<&ResponsesUsage>, error: Option<&ErrorBody>) {
    o.set_model(model);
    if let Some(u) = usage {
        o.usage = u.normalise();
        o.usage_seen = true;
    }
    if let Some(e) = error {
        let code = e.code.as_ref().and_then(Code::text);
        o.set_error(code.as_deref().or(e.kind.as_deref()));
    }
}

fn tool_call(o: &mut Observed, item: &Item<'_>) {
    let call_id = item.call_id.as_deref().or(item.id.as_deref()).unwrap_or("");
    match item.kind.as_deref() {
        Some("function_call") => {
            o.tools.push(item.name.as_deref().unwrap_or(""), call_id, item.arguments.as_deref().unwrap_or(""));
        }
        Some("custom_tool_call") => {
            o.tools.push(item.name.as_deref().unwrap_or(""), call_id, item.input.as_deref().unwrap_or(""));
        }
        Some("local_shell_call") => {
            let args = item.action.as_ref().map(serde_json::Value::to_string).unwrap_or_default();
            o.tools.push("local_shell", call_id, &args);
        }
        _ => {}
    }
}
