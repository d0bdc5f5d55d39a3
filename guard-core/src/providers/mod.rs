//! LLM providers: which API an exchange spoke (from its path and body shape, never its host, so
//! gateways and custom base URLs work) and what it used, normalised to the token partition
//! `input + cache_read + cache_write + output + reasoning` = billed total (see docs/providers.md).

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod gemini;
pub mod mcp;
mod needle;
pub mod openai_chat;
pub mod openai_responses;
mod route;
pub mod tools;

use serde::{Deserialize, Serialize};

use crate::labels;

pub use route::{RequestBody, Route, route};
pub use tools::{Args, ToolCall, ToolCalls};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Anthropic,
    OpenaiChat,
    OpenaiResponses,
    Gemini,
    Azure,
    Bedrock,
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Messages,
    CountTokens,
    ChatCompletions,
    Completions,
    Responses,
    GenerateContent,
    StreamGenerateContent,
    Converse,
    ConverseStream,
    Invoke,
    InvokeWithResponseStream,
    Models,
    Other,
}

/// Which response format to read usage from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Anthropic,
    OpenaiChat,
    OpenaiResponses,
    Gemini,
    BedrockConverse,
    BedrockInvoke,
    /// MCP JSON-RPC replies to `tools/call` (not an inference call: no usage).
    Mcp,
    /// Not an inference call: the body is not read.
    None,
}

impl Shape {
    /// Streams of this shape must end with their terminal event: a body that ends without it
    /// was cut short (`stream_truncated`). Gemini's and Bedrock's last chunks are recognised
    /// too (an aborted stream that saw them stays complete) but not required of a body that
    /// ended, as their APIs state them less strictly.
    pub fn has_terminal_event(self) -> bool {
        matches!(self, Self::Anthropic | Self::OpenaiChat | Self::OpenaiResponses)
    }
}

/// Token counts, normalised so that their sum is the billed total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens not read from a cache.
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// Generated tokens, reasoning excluded.
    pub output: u64,
    pub reasoning: u64,
    /// The part of `cache_write` written with a 1-hour lifetime (Anthropic prices it higher than
    /// the default 5 minutes). A subset, so not part of [`Usage::total`]; absent when zero, so
    /// older shapes read and write the same.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_1h: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input + self.cache_read + self.cache_write + self.output + self.reasoning
    }
}

/// What one response told us so far. Providers fill it in as events arrive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub model: Option<String>,
    pub usage: Usage,
    pub usage_seen: bool,
    pub error_type: Option<String>,
    /// The response's terminal event arrived: the end a stream announces itself (`[DONE]` or
    /// the final usage chunk, `message_stop`, `response.completed`/`.incomplete`/`.failed`,
    /// Gemini's last chunk with `finishReason` and `usageMetadata`, Bedrock's `metadata` or
    /// invocation metrics), an error event, or a whole JSON body. What the exchange reports is
    /// then final: a transport that ends before its own last byte (the closing chunk,
    /// END_STREAM) loses nothing, so the exchange stays complete.
    pub finished: bool,
    /// Payloads that did not parse as the expected JSON.
    pub bad_payloads: u64,
    /// The tool calls the model asked for (arguments held for linking only).
    pub tools: ToolCalls,
    /// MCP JSON-RPC replies (`Shape::Mcp`).
    pub mcp: Vec<mcp::Reply>,
}

impl Observed {
    pub(crate) fn set_model(&mut self, m: Option<&str>) {
        if self.model.is_none()
            && let Some(m) = m
        {
            self.model = labels::clean(labels::Kind::Model, m);
        }
    }

    pub(crate) fn set_error(&mut self, e: Option<&str>) {
        if self.error_type.is_none() {
            self.error_type = Some(e.and_then(|e| labels::clean(labels::Kind::Ident, e)).unwrap_or_else(|| "error".into()));
        }
    }
}


/// Parses one JSON payload, counting it when it is not the expected shape.
pub(crate) fn parse<'a, T: Deserialize<'a>>(o: &mut Observed, data: &'a [u8]) -> Option<T> {
    match serde_json::from_slice(data) {
        Ok(v) => Some(v),
        Err(_) => {
            o.bad_payloads += 1;
            None
        }
    }
}

/// A string or a number, as error codes come in either.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Code {
    Str(String),
    Num(i64),
    #[allow(dead_code, reason = "matches any other JSON value; its content is ignored")]
    Other(serde::de::IgnoredAny),
}

impl Code {
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Self::Str(s) => Some(s.clone()),
            Self::Num(n) => Some(n.to_string()),
            Self::Other(_) => None,
        }
    }
}

/// One unit of a response body handed to a provider.
#[derive(Debug)]
pub enum Payload<'a> {
    /// A whole non-streamed JSON body, or one element of a streamed JSON array.
    Json(&'a [u8]),
    Sse { event: &'a str, data: &'a [u8] },
    /// An AWS eventstream message.
    Aws { message_type: &'a str, event_type: &'a str, payload: &'a [u8] },
}

/// Feeds one payload to the extractor for `shape`.
pub fn extract(shape: Shape, o: &mut Observed, p: Payload<'_>) {
    match shape {
        Shape::Anthropic => anthropic::extract(o, p),
        Shape::OpenaiChat => openai_chat::extract(o, p),
        Shape::OpenaiResponses => openai_responses::extract(o, p),
        Shape::Gemini => gemini::extract(o, p),
        Shape::BedrockConverse | Shape::BedrockInvoke => bedrock::extract(shape, o, p),
        Shape::Mcp => mcp::extract(o, p),
        Shape::None => {}
    }
}
