//! Google Gemini: Google AI `…/models/{model}:generateContent` and `:streamGenerateContent`
//! (`?alt=sse` for SSE, else a streamed JSON array), Vertex AI
//! `/v1/projects/*/locations/*/publishers/google/models/{model}:…`, and Code Assist
//! (`/v1internal:streamGenerateContent`, whose chunks wrap the same object in `response`).
//!
//! Usage (`usageMetadata`, cumulative per chunk, so the last one wins): promptTokenCount includes
//! cachedContentTokenCount; candidatesTokenCount excludes thoughtsTokenCount; toolUsePromptTokenCount
//! is billed as input. input = prompt + tool_use_prompt − cached, cache_read = cached,
//! output = candidates, reasoning = thoughts.
//!
//! The last chunk of a stream carries every candidate's `finishReason` together with the final
//! `usageMetadata` (a blocked prompt: `promptFeedback.blockReason` instead of candidates); that
//! chunk is the stream's terminal event.
//!
//! Tool calls: `functionCall` parts (`name`, `args` object, `id` on newer models), each whole in
//! one chunk. Without an id, the call is named `gemini_call_N` by its order in the exchange.

use std::borrow::Cow;

use serde::{Deserialize, de::IgnoredAny};

use super::{Code, Observed, Payload, Usage, needle::FUNCTION_CALL, parse};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    tool_use_prompt_token_count: Option<u64>,
}

impl UsageMetadata {
    fn normalise(&self) -> Usage {
        let prompt = self.prompt_token_count.unwrap_or(0) + self.tool_use_prompt_token_count.unwrap_or(0);
        let cached = self.cached_content_token_count.unwrap_or(0).min(prompt);
        Usage {
            input: prompt - cached,
            cache_read: cached,
            output: self.candidates_token_count.unwrap_or(0),
            reasoning: self.thoughts_token_count.unwrap_or(0),
            ..Usage::default()
        }
    }
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    status: Option<String>,
    code: Option<Code>,
}

/// `C` is a candidate's `content`: read ([`Content`]) when the chunk names a `functionCall`,
/// else skipped ([`IgnoredAny`]): most chunks are text.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<C> {
    finish_reason: Option<IgnoredAny>,
    content: Option<C>,
}

/// A candidate's content, as far as tool calls go.
trait Calls {
    fn parts(&self) -> &[Part<'_>];
}

impl Calls for IgnoredAny {
    fn parts(&self) -> &[Part<'_>] {
        &[]
    }
}

impl Calls for Content<'_> {
    fn parts(&self) -> &[Part<'_>] {
        self.parts.as_deref().unwrap_or_default()
    }
}

#[derive(Debug, Deserialize)]
struct Content<'a> {
    #[serde(borrow)]
    parts: Option<Vec<Part<'a>>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part<'a> {
    #[serde(borrow)]
    function_call: Option<FunctionCall<'a>>,
}

#[derive(Debug, Deserialize)]
struct FunctionCall<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    args: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk<'a, C> {
    usage_metadata: Option<UsageMetadata>,
    candidates: Option<Vec<Candidate<C>>>,
    prompt_feedback: Option<PromptFeedback>,
    #[serde(borrow)]
    model_version: Option<Cow<'a, str>>,
    error: Option<ErrorBody>,
    #[serde(borrow)]
    response: Option<Box<Chunk<'a, C>>>,
}

pub fn extract(o: &mut Observed, p: Payload<'_>) {
    let data = match p {
        Payload::Sse { data, .. } | Payload::Json(data) => data,
        Payload::Aws { .. } => return,
    };
    if FUNCTION_CALL.is_in(data) {
        chunk::<Content<'_>>(o, data);
    } else {
        chunk::<IgnoredAny>(o, data);
    }
}

fn chunk<'a, C: Deserialize<'a> + Calls>(o: &mut Observed, data: &'a [u8]) {
    let Some(c) = parse::<Chunk<'a, C>>(o, data) else { return };
    apply(o, &c);
    if let Some(inner) = &c.response {
        apply(o, inner);
    }
}

impl<C> Chunk<'_, C> {
    fn is_last(&self) -> bool {
        let finished = match &self.candidates {
            Some(c) if !c.is_empty() => c.iter().all(|c| c.finish_reason.is_some()),
            _ => self.prompt_feedback.as_ref().is_some_and(|f| f.block_reason.is_some()),
        };
        finished && self.usage_metadata.is_some()
    }
}

fn apply<C: Calls>(o: &mut Observed, c: &Chunk<'_, C>) {
    o.set_model(c.model_version.as_deref());
    for cand in c.candidates.iter().flatten() {
        let parts = cand.content.as_ref().map(Calls::parts).unwrap_or_default();
        for f in parts.iter().filter_map(|p| p.function_call.as_ref()) {
            function_call(o, f);
        }
    }
    if let Some(u) = &c.usage_metadata {
        o.usage = u.normalise();
        o.usage_seen = true;
    }
    if c.is_last() {
        o.finished = true;
    }
    if let Some(e) = &c.error {
        let code = e.code.as_ref().and_then(Code::text);
        o.set_error(e.status.as_deref().or(code.as_deref()));
        o.finished = true;
    }
}

fn function_call(o: &mut Observed, f: &FunctionCall<'_>) {
    let id = match f.id.as_deref().filter(|i| !i.is_empty()) {
        Some(id) => id.to_owned(),
        // Stable within the exchange: the call's position among its calls.
        None => format!("gemini_call_{}", o.tools.seen()),
    };
    let args = f.args.as_ref().map(serde_json::Value::to_string).unwrap_or_default();
    o.tools.push(f.name.as_deref().unwrap_or(""), &id, &args);
}
