//! Provider response bodies the live servers send, with the usage each must decode to.

use crate::providers::Usage;

use super::super::usage;

pub(crate) fn sse(events: &[(&str, &str)]) -> Vec<Vec<u8>> {
    events
        .iter()
        .map(|(e, d)| if e.is_empty() { format!("data: {d}\n\n") } else { format!("event: {e}\ndata: {d}\n\n") }.into_bytes())
        .collect()
}

/// OpenAI Chat Completions stream with `include_usage`.
pub(crate) fn chat() -> (Vec<Vec<u8>>, Usage) {
    let chunks = sse(&[
        ("", r#"{"id":"c1","object":"chat.completion.chunk","model":"gpt-4.1-2025-04-14","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#),
        ("", r#"{"id":"c1","object":"chat.completion.chunk","model":"gpt-4.1-2025-04-14","choices":[{"index":0,"delta":{"content":"lo"}}]}"#),
        ("", r#"{"id":"c1","object":"chat.completion.chunk","model":"gpt-4.1-2025-04-14","choices":[],"usage":{"prompt_tokens":1500,"completion_tokens":420,"prompt_tokens_details":{"cached_tokens":1024},"completion_tokens_details":{"reasoning_tokens":256}}}"#),
        ("", "[DONE]"),
    ]);
    (chunks, usage(476, 1024, 0, 164, 256))
}

/// Anthropic Messages stream: initial usage in `message_start`, cumulative in `message_delta`.
pub(crate) fn anthropic() -> (Vec<Vec<u8>>, Usage) {
    let chunks = sse(&[
        ("message_start", r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":12,"cache_creation_input_tokens":300,"cache_read_input_tokens":4000,"output_tokens":1}}}"#),
        ("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
        ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#),
        ("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
        ("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":87}}"#),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ]);
    (chunks, usage(12, 4000, 300, 87, 0))
}

/// OpenAI Responses events; the same JSON goes over SSE and over WebSocket.
pub(crate) fn responses_events(input: u64, cached: u64, output: u64, reasoning: u64) -> Vec<(&'static str, String)> {
    vec![
        ("response.created", r#"{"type":"response.created","response":{"id":"resp_1","object":"response","model":"gpt-5-codex","status":"in_progress"}}"#.to_string()),
        ("response.output_text.delta", r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Sure"}"#.to_string()),
        ("response.output_text.delta", r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":", done."}"#.to_string()),
        ("response.output_item.done", r#"{"type":"response.output_item.done","output_index":1,"item":{"type":"function_call","id":"fc_1","call_id":"call_live1","name":"shell","arguments":"{\"command\":[\"bash\",\"-lc\",\"ls -la\"]}","status":"completed"}}"#.to_string()),
        ("response.completed", format!(r#"{{"type":"response.completed","response":{{"id":"resp_1","object":"response","model":"gpt-5-codex","status":"completed","usage":{{"input_tokens":{input},"input_tokens_details":{{"cached_tokens":{cached}}},"output_tokens":{output},"output_tokens_details":{{"reasoning_tokens":{reasoning}}},"total_tokens":{}}}}}}}"#, input + output)),
    ]
}

pub(crate) fn responses() -> (Vec<Vec<u8>>, Usage) {
    let ev = responses_events(3000, 2048, 500, 384);
    let pairs: Vec<(&str, &str)> = ev.iter().map(|(e, d)| (*e, d.as_str())).collect();
    (sse(&pairs), usage(952, 2048, 0, 116, 384))
}
