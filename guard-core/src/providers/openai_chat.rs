//! OpenAI Chat Completions (`POST …/chat/completions`, legacy `…/completions`), the shape every
//! OpenAI-compatible host speaks (OpenRouter, DeepSeek, Groq, Mistral, xAI, Together, vLLM…).
//!
//! Usage: prompt_tokens includes cached, completion_tokens includes reasoning, so
//! input = prompt_tokens − cached_tokens, cache_read = cached_tokens,
//! output = completion_tokens − reasoning_tokens, reasoning = reasoning_tokens. DeepSeek reports
//! the cache as prompt_cache_hit_tokens instead. A stream carries usage only in a final chunk
//! when the request set `stream_options.include_usage`; `data: [DONE]` ends it. That usage chunk
//! (every choice finished, `choices: []` at OpenAI) is terminal too: nothing reported follows it.
//!
//! Tool calls: `message.tool_calls[]` (`function` with `name` and the `arguments` string, or
//! `custom` with `name` and `input`). Streamed, each `delta.tool_calls[]` fragment names its
//! `index`; the first carries the id and name, the rest pieces of `arguments`.

use std::borrow::Cow;

use serde::{Deserialize, de::IgnoredAny};

use super::{Code, Observed, Payload, Usage, needle::TOOL_CALLS, parse};

#[derive(Debug, Deserialize)]
struct Details {
    cached_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<Details>,
    completion_tokens_details: Option<Details>,
    prompt_cache_hit_tokens: Option<u64>,
}

impl ChatUsage {
    pub(crate) fn normalise(&self) -> Usage {
        let prompt = self.prompt_tokens.unwrap_or(0);
        let completion = self.completion_tokens.unwrap_or(0);
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .or(self.prompt_cache_hit_tokens)
            .unwrap_or(0)
            .min(prompt);
        let reasoning =
            self.completion_tokens_details.as_ref().and_then(|d| d.reasoning_tokens).unwrap_or(0).min(completion);
        Usage { input: prompt - cached, cache_read: cached, output: completion - reasoning, reasoning, ..Usage::default() }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<Code>,
}

impl ErrorBody {
    pub(crate) fn label(&self) -> Option<String> {
        self.kind.clone().or_else(|| self.code.as_ref().and_then(Code::text))
    }
}

#[derive(Debug, Deserialize)]
struct Function<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
    /// A custom tool's free-form input.
    #[serde(borrow)]
    input: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct ToolCallPart<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: Option<Function<'a>>,
    #[serde(borrow)]
    custom: Option<Function<'a>>,
}

impl ToolCallPart<'_> {
    fn function(&self) -> Option<&Function<'_>> {
        self.function.as_ref().or(self.custom.as_ref())
    }
}

#[derive(Debug, Deserialize)]
struct ChatMessage<'a> {
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolCallPart<'a>>>,
}

/// A choice's `message` or `delta`, as far as tool calls go.
trait Calls {
    fn parts(&self) -> &[ToolCallPart<'_>];
}

impl Calls for IgnoredAny {
    fn parts(&self) -> &[ToolCallPart<'_>] {
        &[]
    }
}

impl Calls for ChatMessage<'_> {
    fn parts(&self) -> &[ToolCallPart<'_>] {
        self.tool_calls.as_deref().unwrap_or_default()
    }
}

/// `M` is a choice's `message` and `delta`: read ([`ChatMessage`]) when the chunk names
/// `tool_calls`, else skipped ([`IgnoredAny`]): most chunks are text.
#[derive(Debug, Deserialize)]
struct Choice<M> {
    /// Null (`None`) until the choice is done.
    finish_reason: Option<IgnoredAny>,
    index: Option<u64>,
    message: Option<M>,
    delta: Option<M>,
}

#[derive(Debug, Deserialize)]
struct Chunk<'a, M> {
    #[serde(borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    usage: Option<ChatUsage>,
    error: Option<ErrorBody>,
    choices: Option<Vec<Choice<M>>>,
}

impl<M> Chunk<'_, M> {
    /// The final usage: OpenAI sends it alone (`choices: []`) before `[DONE]`; some compatible
    /// hosts leave `choices` out, or put it on the last choice's finishing chunk. Hosts that report usage on every
    /// chunk do so with unfinished choices, which this refuses.
    fn is_final_usage(&self) -> bool {
        self.usage.is_some() && self.choices.as_ref().is_none_or(|c| c.iter().all(|c| c.finish_reason.is_some()))
    }
}

pub fn extract(o: &mut Observed, p: Payload<'_>) {
    let (data, streamed) = match p {
        Payload::Sse { data, .. } => (data, true),
        Payload::Json(data) => (data, false),
        Payload::Aws { .. } => return,
    };
    if data.trim_ascii() == b"[DONE]" {
        o.tools.close_all();
        o.finished = true;
        return;
    }
    if TOOL_CALLS.is_in(data) {
        chunk::<ChatMessage<'_>>(o, data, streamed);
    } else {
        chunk::<IgnoredAny>(o, data, streamed);
    }
}

fn chunk<'a, M: Deserialize<'a> + Calls>(o: &mut Observed, data: &'a [u8], streamed: bool) {
    let Some(c) = parse::<Chunk<'a, M>>(o, data) else { return };
    o.set_model(c.model.as_deref());
    for choice in c.choices.iter().flatten() {
        tool_calls(o, choice);
    }
    if let Some(u) = &c.usage {
        o.usage = u.normalise();
        o.usage_seen = true;
    }
    if let Some(e) = &c.error {
        o.set_error(e.label().as_deref());
        o.finished = true;
    }
    if !streamed || c.is_final_usage() {
        o.finished = true;
    }
}

/// A choice's tool calls: whole (`message`) or fragments (`delta`), keyed by choice and index.
fn tool_calls(o: &mut Observed, choice: &Choice<impl Calls>) {
    if let Some(calls) = choice.message.as_ref().map(Calls::parts) {
        for t in calls {
            let f = t.function();
            let args = f.and_then(|f| f.arguments.as_deref().or(f.input.as_deref())).unwrap_or("");
            o.tools.push(f.and_then(|f| f.name.as_deref()).unwrap_or(""), t.id.as_deref().unwrap_or(""), args);
        }
    }
    let Some(parts) = choice.delta.as_ref().map(Calls::parts) else { return };
    let base = choice.index.unwrap_or(0) << 32;
    for t in parts {
        let index = base | t.index.unwrap_or(0);
        let f = t.function();
        o.tools.open(index, f.and_then(|f| f.name.as_deref()), t.id.as_deref());
        if let Some(a) = f.and_then(|f| f.arguments.as_deref().or(f.input.as_deref())) {
            o.tools.append(index, a);
        }
    }
}
