//! Byte prefilters: whether a payload can concern a tool call at all, decided by one substring
//! search before any parse. The searcher is built once per process: building one (`memmem::find`
//! does it on every call) costs more than searching a whole stream event.
//!
//! A needle is a key or type name as providers write it, quotes included where that keeps a
//! string's escaped text (`\"tool_use\"`) from matching. A name spelt with `\u` escapes would
//! be missed; no provider writes its own keys that way.

use std::sync::OnceLock;

use memchr::memmem::Finder;

pub(crate) struct Needle {
    bytes: &'static [u8],
    finder: OnceLock<Finder<'static>>,
}

impl Needle {
    pub(crate) const fn new(bytes: &'static [u8]) -> Self {
        Self { bytes, finder: OnceLock::new() }
    }

    /// Whether `haystack` contains the needle.
    pub(crate) fn is_in(&self, haystack: &[u8]) -> bool {
        self.finder.get_or_init(|| Finder::new(self.bytes)).find(haystack).is_some()
    }
}

/// Anthropic: a `tool_use` content block (whole, or a stream's `content_block_start`).
pub(crate) static TOOL_USE: Needle = Needle::new(b"\"tool_use\"");
/// Anthropic: a streamed tool call's input fragment.
pub(crate) static INPUT_JSON_DELTA: Needle = Needle::new(b"\"input_json_delta\"");
/// Anthropic: the end of a content block.
pub(crate) static BLOCK_STOP: Needle = Needle::new(b"content_block_stop");
/// Bedrock Converse: a `toolUse` content block, whole or streamed.
pub(crate) static TOOL_USE_CAMEL: Needle = Needle::new(b"\"toolUse\"");
/// Bedrock invoke streams: the final chunk's usage.
pub(crate) static INVOCATION_METRICS: Needle = Needle::new(b"amazon-bedrock-invocationMetrics");
/// OpenAI Chat Completions: a message's or a delta's tool calls.
pub(crate) static TOOL_CALLS: Needle = Needle::new(b"\"tool_calls\"");
/// OpenAI Responses: a tool call output item (`function_call`, `custom_tool_call`,
/// `local_shell_call`: the types end so).
pub(crate) static CALL_ITEM: Needle = Needle::new(b"_call\"");
/// Gemini: a `functionCall` part.
pub(crate) static FUNCTION_CALL: Needle = Needle::new(b"\"functionCall\"");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_matches_but_its_escaped_text_in_a_string_does_not() {
        assert!(TOOL_USE.is_in(br#"{"type":"tool_use","id":"toolu_1"}"#));
        assert!(TOOL_USE.is_in(br#"{"content":[{"type": "tool_use"}]}"#));
        assert!(!TOOL_USE.is_in(br#"{"type":"text","text":"a \"tool_use\" block"}"#));
        assert!(!INPUT_JSON_DELTA.is_in(br#"{"delta":{"type":"text_delta","text":"tool_use"}}"#));
        // Twice: the second search uses the searcher the first built.
        assert!(TOOL_CALLS.is_in(br#"{"delta":{"tool_calls":[]}}"#));
        assert!(TOOL_CALLS.is_in(&[b"x".repeat(100).as_slice(), br#""tool_calls""#].concat()));
    }
}
