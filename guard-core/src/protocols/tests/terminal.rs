//! A stream is complete once its terminal event arrived, however its transport ends after that:
//! the OpenAI SDK (and httpx loops that `break` at `[DONE]`) close the connection before the
//! body's closing chunk. A stream cut before its terminal event stays incomplete and keeps the
//! usage seen so far. Bodies follow the shapes of each provider's public API reference.
//!
//! The fixtures here join the split-invariance tests through `fixtures::all()`.

use base64::{Engine as _, engine::general_purpose::STANDARD};

use crate::{
    events::Direction::{Read, Write},
    protocols::{ConnectionDecoder, DecoderConfig, Exchange, encoding::Encoding, eventstream::encode_message},
    providers::{Endpoint as E, Provider as P, Usage},
};

use super::{
    Fixture, IncompleteReason as R, Role, Segment, Want,
    fixtures::{ANTHROPIC_REQ, CHAT_REQ, Wire, anthropic_stream, chat_stream, client, request, response, sse, want},
    usage,
};

const CLOSING_CHUNK: &[u8] = b"0\r\nx-trailer: 1\r\n\r\n";

/// A chunked 200 response whose closing chunk never came: the client stopped reading.
fn unterminated(content_type: &str, body: &[u8], encoding: Encoding) -> Vec<u8> {
    let mut r = response(200, content_type, "", body, Wire { chunked: true, encoding });
    assert!(r.ends_with(CLOSING_CHUNK));
    r.truncate(r.len() - CLOSING_CHUNK.len());
    r
}

/// A 200 response framed by the end of the connection (neither a length nor chunked).
fn close_delimited(content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n\r\n").into_bytes();
    r.extend_from_slice(body);
    r
}

/// The SSE body up to (not including) the event that contains `needle`.
fn before_event(body: &[u8], needle: &str) -> Vec<u8> {
    let at = memchr::memmem::find(body, needle.as_bytes()).unwrap_or_else(|| panic!("{needle} not in the body"));
    let start = memchr::memmem::rfind(&body[..at], b"\n\n").map_or(0, |p| p + 2);
    body[..start].to_vec()
}

fn aborted(w: Want, reason: R, u: Usage) -> Want {
    Want { complete: false, reason: Some(reason), usage: u, ..w }
}

// ---- Anthropic ----

fn anthropic() -> Vec<Fixture> {
    let full = usage(25, 10, 5, 15, 0);
    let w = want(P::Anthropic, E::Messages, "claude-sonnet-4-5", 200, true, full);
    let req = || request("POST", "/v1/messages", "", ANTHROPIC_REQ);
    let mut v = Vec::new();
    for enc in [Encoding::Identity, Encoding::Gzip] {
        v.push(Fixture {
            name: format!("anthropic: client closes after message_stop, before the closing chunk ({enc:?})"),
            segments: client(req(), unterminated("text/event-stream", &anthropic_stream(), enc)),
            want: vec![w.clone()],
        });
    }
    // Every count is final here, but the stream did not say it ended.
    let cut = before_event(&anthropic_stream(), "message_stop");
    v.push(Fixture {
        name: "anthropic: client closes before message_stop".into(),
        segments: client(req(), unterminated("text/event-stream", &cut, Encoding::Identity)),
        want: vec![aborted(w.clone(), R::ClientAbort, full)],
    });
    let early = before_event(&anthropic_stream(), "message_delta");
    v.push(Fixture {
        name: "anthropic: client closes mid-stream, usage so far kept".into(),
        segments: client(req(), unterminated("text/event-stream", &early, Encoding::Identity)),
        want: vec![aborted(w.clone(), R::ClientAbort, usage(25, 10, 5, 1, 0))],
    });
    v.push(Fixture {
        name: "anthropic: close-delimited body ends after message_stop".into(),
        segments: client(req(), close_delimited("text/event-stream", &anthropic_stream())),
        want: vec![w.clone()],
    });
    // The connection's end is the body's end here: who closed is unknown, the stream says it was cut.
    v.push(Fixture {
        name: "anthropic: close-delimited body ends before message_stop".into(),
        segments: client(req(), close_delimited("text/event-stream", &cut)),
        want: vec![aborted(w, R::StreamTruncated, full)],
    });
    v
}

// ---- OpenAI Chat Completions ----

fn openai_chat() -> Vec<Fixture> {
    let full = usage(200, 1000, 0, 200, 100);
    let w = want(P::OpenaiChat, E::ChatCompletions, "gpt-4o", 200, true, full);
    let req = || request("POST", "/v1/chat/completions", "", CHAT_REQ);
    let sse_ct = "text/event-stream";
    let no_usage_yet = before_event(&chat_stream(false), r#""choices":[],"#);
    // An OpenAI-compatible host that reports usage on every chunk (vLLM's continuous usage
    // stats) and on its last, finishing chunk (DeepSeek).
    let every = sse(&[
        ("", r#"{"id":"c","object":"chat.completion.chunk","model":"deepseek-chat","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}],"usage":{"prompt_tokens":40,"completion_tokens":1}}"#),
        ("", r#"{"id":"c","object":"chat.completion.chunk","model":"deepseek-chat","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}],"usage":{"prompt_tokens":40,"completion_tokens":2}}"#),
        ("", r#"{"id":"c","object":"chat.completion.chunk","model":"deepseek-chat","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":40,"completion_tokens":3,"prompt_cache_hit_tokens":32}}"#),
        ("", "[DONE]"),
    ]);
    let compat_req = || request("POST", "/v1/chat/completions", "", r#"{"model":"deepseek-chat","stream":true,"messages":[]}"#);
    let compat = want(P::OpenaiChat, E::ChatCompletions, "deepseek-chat", 200, true, usage(8, 32, 0, 3, 0));
    vec![
        Fixture {
            name: "openai chat: the SDK breaks at [DONE], closing chunk never read".into(),
            segments: client(req(), unterminated(sse_ct, &chat_stream(true), Encoding::Identity)),
            want: vec![w.clone()],
        },
        Fixture {
            name: "openai chat: client closes after the usage chunk, before [DONE] (br)".into(),
            segments: client(req(), unterminated(sse_ct, &chat_stream(false), Encoding::Br)),
            want: vec![w.clone()],
        },
        Fixture {
            name: "openai chat: client closes before the usage chunk".into(),
            segments: client(req(), unterminated(sse_ct, &no_usage_yet, Encoding::Identity)),
            want: vec![aborted(w, R::ClientAbort, Usage::default())],
        },
        Fixture {
            name: "openai-compatible: usage on every chunk, client closes mid-stream".into(),
            segments: client(compat_req(), unterminated(sse_ct, &before_event(&every, r#""completion_tokens":3"#), Encoding::Identity)),
            want: vec![aborted(compat.clone(), R::ClientAbort, usage(40, 0, 0, 2, 0))],
        },
        Fixture {
            name: "openai-compatible: usage on the finishing chunk, client closes before [DONE]".into(),
            segments: client(compat_req(), unterminated(sse_ct, &before_event(&every, "[DONE]"), Encoding::Identity)),
            want: vec![compat],
        },
    ]
}

// ---- OpenAI Responses ----

const RESPONSES_REQ: &str = r#"{"model":"gpt-5","input":"Hi","stream":true}"#;
const RESPONSES_USAGE: &str = r#"{"input_tokens":5000,"input_tokens_details":{"cached_tokens":4096},"output_tokens":900,"output_tokens_details":{"reasoning_tokens":640},"total_tokens":5900}"#;

fn responses_body(last: Option<(&str, String)>) -> Vec<u8> {
    let mut e = vec![
        ("response.created", r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","model":"gpt-5-2025-08-07","usage":null}}"#.to_string()),
        ("response.output_text.delta", r#"{"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}"#.to_string()),
    ];
    e.extend(last);
    sse(&e.iter().map(|(k, d)| (*k, d.as_str())).collect::<Vec<_>>())
}

fn openai_responses() -> Vec<Fixture> {
    let full = usage(904, 4096, 0, 260, 640);
    let w = want(P::OpenaiResponses, E::Responses, "gpt-5", 200, true, full);
    let req = || request("POST", "/v1/responses", "", RESPONSES_REQ);
    let end = |kind: &'static str, status: &str, extra: &str, u: &str| {
        let d = format!(
            r#"{{"type":"{kind}","sequence_number":5,"response":{{"id":"resp_1","object":"response","status":"{status}","model":"gpt-5-2025-08-07",{extra}"usage":{u}}}}}"#
        );
        responses_body(Some((kind, d)))
    };
    let completed = end("response.completed", "completed", "", RESPONSES_USAGE);
    // The model stopped at max_output_tokens: the stream ended as it should, the call did
    // what it was asked (like a chat `finish_reason: "length"`), so its outcome is ok.
    let incomplete = end("response.incomplete", "incomplete", r#""incomplete_details":{"reason":"max_output_tokens"},"#, RESPONSES_USAGE);
    let failed = end("response.failed", "failed", r#""error":{"code":"server_error","message":"The model failed to generate a response."},"#, "null");
    vec![
        Fixture {
            name: "responses: client closes after response.completed".into(),
            segments: client(req(), unterminated("text/event-stream", &completed, Encoding::Identity)),
            want: vec![w.clone()],
        },
        Fixture {
            name: "responses: response.incomplete ends the stream, outcome ok".into(),
            segments: client(req(), unterminated("text/event-stream", &incomplete, Encoding::Identity)),
            want: vec![w.clone()],
        },
        Fixture {
            name: "responses: response.failed ends the stream as an error".into(),
            segments: client(req(), unterminated("text/event-stream", &failed, Encoding::Zstd)),
            want: vec![Want { error_type: Some("server_error"), usage: Usage::default(), ..w.clone() }],
        },
        Fixture {
            name: "responses: client closes before response.completed".into(),
            segments: client(req(), unterminated("text/event-stream", &responses_body(None), Encoding::Identity)),
            want: vec![aborted(w, R::ClientAbort, Usage::default())],
        },
    ]
}

// ---- Gemini ----

const GEMINI_FIRST: &str = r#"{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":1200,"totalTokenCount":1200},"modelVersion":"gemini-2.5-pro"}"#;
const GEMINI_LAST: &str = r#"{"candidates":[{"content":{"parts":[{"text":"lo"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":1200,"candidatesTokenCount":80,"cachedContentTokenCount":1000,"thoughtsTokenCount":300,"totalTokenCount":1580},"modelVersion":"gemini-2.5-pro"}"#;

fn gemini() -> Vec<Fixture> {
    let w = want(P::Gemini, E::StreamGenerateContent, "gemini-2.5-pro", 200, true, usage(200, 1000, 0, 80, 300));
    let req = |q: &str| request("POST", &format!("/v1beta/models/gemini-2.5-pro:streamGenerateContent{q}"), "", r#"{"contents":[{"parts":[{"text":"Hi"}]}]}"#);
    let whole = sse(&[("", GEMINI_FIRST), ("", GEMINI_LAST)]);
    let first = sse(&[("", GEMINI_FIRST)]);
    // The array's closing `]` never came either.
    let array = format!("[{GEMINI_FIRST},\r\n{GEMINI_LAST}");
    let blocked = r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9},"modelVersion":"gemini-2.5-pro"}"#;
    vec![
        Fixture {
            name: "gemini alt=sse: client closes after the finishReason chunk".into(),
            segments: client(req("?alt=sse"), unterminated("text/event-stream", &whole, Encoding::Identity)),
            want: vec![w.clone()],
        },
        Fixture {
            name: "gemini JSON array: client closes after the last element, before `]`".into(),
            segments: client(req(""), unterminated("application/json; charset=UTF-8", array.as_bytes(), Encoding::Gzip)),
            want: vec![w.clone()],
        },
        Fixture {
            name: "gemini: blocked prompt, promptFeedback is the last chunk".into(),
            segments: client(req("?alt=sse"), unterminated("text/event-stream", &sse(&[("", blocked)]), Encoding::Identity)),
            want: vec![Want { usage: usage(9, 0, 0, 0, 0), ..w.clone() }],
        },
        Fixture {
            name: "gemini: client closes before the finishReason chunk".into(),
            segments: client(req("?alt=sse"), unterminated("text/event-stream", &first, Encoding::Identity)),
            want: vec![aborted(w, R::ClientAbort, usage(1200, 0, 0, 0, 0))],
        },
    ]
}

// ---- Bedrock ----

fn event(kind: &str, payload: &[u8]) -> Vec<u8> {
    encode_message(&[(":message-type", "event"), (":event-type", kind), (":content-type", "application/json")], payload)
}

fn invoke_chunk(inner: &str) -> Vec<u8> {
    event("chunk", format!(r#"{{"bytes":"{}"}}"#, STANDARD.encode(inner)).as_bytes())
}

fn bedrock() -> Vec<Fixture> {
    let es = "application/vnd.amazon.eventstream";
    let claude = "anthropic.claude-3-5-sonnet-20240620-v1:0";
    let path = |model: &str, op: &str| format!("/model/{}/{op}", model.replace(':', "%3A"));
    let converse_req = |op: &str| request("POST", &path(claude, op), "", r#"{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}"#);
    let mut stop = event("messageStart", br#"{"role":"assistant"}"#);
    stop.extend(event("contentBlockDelta", br#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#));
    stop.extend(event("messageStop", br#"{"stopReason":"end_turn"}"#));
    let mut with_metadata = stop.clone();
    with_metadata.extend(event("metadata", br#"{"usage":{"inputTokens":30,"outputTokens":12,"totalTokens":1542,"cacheReadInputTokens":1000,"cacheWriteInputTokens":500},"metrics":{"latencyMs":300}}"#));
    let converse = want(P::Bedrock, E::ConverseStream, claude, 200, true, usage(30, 1000, 500, 12, 0));

    let mut claude_invoke = invoke_chunk(r#"{"type":"message_start","message":{"model":"claude-3-5-sonnet-20240620","usage":{"input_tokens":14,"output_tokens":1}}}"#);
    claude_invoke.extend(invoke_chunk(r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#));
    claude_invoke.extend(invoke_chunk(r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":14,"outputTokenCount":9,"invocationLatency":500,"firstByteLatency":200}}"#));
    let invoke_req = |model: &str, body: &str| request("POST", &path(model, "invoke-with-response-stream"), "", body);
    let claude_body = r#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[]}"#;

    // A model with its own stream format: untyped chunks, the metrics in the final one.
    let llama = "meta.llama3-70b-instruct-v1:0";
    let mut llama_cut = invoke_chunk(r#"{"generation":"Hel","prompt_token_count":12,"generation_token_count":1,"stop_reason":null}"#);
    llama_cut.extend(invoke_chunk(r#"{"generation":"lo","prompt_token_count":null,"generation_token_count":2,"stop_reason":null}"#));
    let mut llama_whole = llama_cut.clone();
    llama_whole.extend(invoke_chunk(r#"{"generation":"","prompt_token_count":null,"generation_token_count":40,"stop_reason":"stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":12,"outputTokenCount":40,"invocationLatency":900,"firstByteLatency":300}}"#));
    let llama_body = r#"{"prompt":"Hi","max_gen_len":64}"#;
    let llama_want = want(P::Bedrock, E::InvokeWithResponseStream, llama, 200, true, usage(12, 0, 0, 40, 0));
    vec![
        Fixture {
            name: "bedrock converse-stream: client closes after metadata".into(),
            segments: client(converse_req("converse-stream"), unterminated(es, &with_metadata, Encoding::Identity)),
            want: vec![converse.clone()],
        },
        Fixture {
            name: "bedrock converse-stream: client closes after messageStop, before metadata".into(),
            segments: client(converse_req("converse-stream"), unterminated(es, &stop, Encoding::Identity)),
            want: vec![aborted(converse, R::ClientAbort, Usage::default())],
        },
        Fixture {
            name: "bedrock invoke stream (anthropic): client closes after message_stop".into(),
            segments: client(invoke_req(claude, claude_body), unterminated(es, &claude_invoke, Encoding::Identity)),
            want: vec![want(P::Bedrock, E::InvokeWithResponseStream, claude, 200, true, usage(14, 0, 0, 9, 0))],
        },
        Fixture {
            name: "bedrock invoke stream (llama): client closes after the metrics chunk".into(),
            segments: client(invoke_req(llama, llama_body), unterminated(es, &llama_whole, Encoding::Identity)),
            want: vec![llama_want.clone()],
        },
        Fixture {
            name: "bedrock invoke stream (llama): untyped chunks end nothing".into(),
            segments: client(invoke_req(llama, llama_body), unterminated(es, &llama_cut, Encoding::Identity)),
            want: vec![aborted(llama_want, R::ClientAbort, Usage::default())],
        },
    ]
}

// ---- OpenAI Responses over WebSocket ----

/// One WebSocket text frame; a client's is masked.
fn ws_text(text: &str, masked: bool) -> Vec<u8> {
    let p = text.as_bytes();
    let mut f = vec![0x81];
    let m = if masked { 0x80 } else { 0 };
    match p.len() {
        n if n < 126 => f.push(m | n as u8),
        n => {
            f.push(m | 126);
            f.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
        }
    }
    if masked {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        f.extend_from_slice(&key);
        f.extend(p.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        f.extend_from_slice(p);
    }
    f
}

fn websocket() -> Vec<Fixture> {
    let upgrade_req = b"GET /v1/responses HTTP/1.1\r\nHost: api.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let upgrade_resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let create = ws_text(r#"{"type":"response.create","model":"gpt-5-codex","input":[],"stream":true}"#, true);
    let created = ws_text(r#"{"type":"response.created","response":{"id":"resp_1","model":"gpt-5-codex","status":"in_progress"}}"#, false);
    let completed = ws_text(&format!(r#"{{"type":"response.completed","response":{{"id":"resp_1","model":"gpt-5-codex","status":"completed","usage":{RESPONSES_USAGE}}}}}"#), false);
    let session = |server: Vec<u8>| {
        let mut s = client(upgrade_req.to_vec(), upgrade_resp.to_vec());
        s.push(Segment { dir: Write, ts: 3_000, bytes: create.clone() });
        s.push(Segment { dir: Read, ts: 4_000, bytes: server });
        s
    };
    let upgrade = Want {
        provider: P::Unknown,
        endpoint: E::Other,
        inference: false,
        model: None,
        status: Some(101),
        streamed: false,
        complete: true,
        reason: None,
        error_type: None,
        usage: Usage::default(),
        role: Role::Client,
    };
    let turn = Want { status: None, ..want(P::OpenaiResponses, E::Responses, "gpt-5-codex", 200, true, usage(904, 4096, 0, 260, 640)) };
    vec![
        Fixture {
            name: "ws responses: connection closes after response.completed".into(),
            segments: session([created.clone(), completed].concat()),
            want: vec![upgrade.clone(), turn.clone()],
        },
        Fixture {
            name: "ws responses: connection closes before response.completed".into(),
            segments: session(created),
            want: vec![upgrade, aborted(turn, R::ClientAbort, Usage::default())],
        },
    ]
}

pub(crate) fn fixtures() -> Vec<Fixture> {
    [anthropic(), openai_chat(), openai_responses(), gemini(), bedrock(), websocket()].into_iter().flatten().collect()
}

// ---- Timing, gaps ----

fn drain(d: &mut ConnectionDecoder) -> Vec<Exchange> {
    let mut v = Vec::new();
    d.drain(&mut v);
    v
}

#[test]
fn a_stream_cut_after_its_terminal_event_ends_at_that_event() {
    let mut d = ConnectionDecoder::new(DecoderConfig::default());
    d.on_data(Write, 1, &request("POST", "/v1/chat/completions", "", CHAT_REQ));
    let resp = unterminated("text/event-stream", &chat_stream(true), Encoding::Identity);
    // The final usage chunk is the terminal event here; `[DONE]` follows it.
    let last = memchr::memmem::find(&resp, br#""choices":[],"#).unwrap();
    d.on_data(Read, 2, &resp[..last]);
    d.on_data(Read, 3, &resp[last..]);
    // The process frees the connection much later (a pool, a long-lived agent).
    d.on_close(90);
    let x = drain(&mut d);
    assert_eq!((x.len(), x[0].complete, x[0].incomplete_reason), (1, true, None));
    assert_eq!(x[0].timings.end_ns, 3);
}

#[test]
fn a_stream_cut_before_its_terminal_event_ends_when_it_was_abandoned() {
    let mut d = ConnectionDecoder::new(DecoderConfig::default());
    d.on_data(Write, 1, &request("POST", "/v1/chat/completions", "", CHAT_REQ));
    d.on_data(Read, 2, &unterminated("text/event-stream", &chat_stream(false)[..200], Encoding::Identity));
    d.on_close(90);
    let x = drain(&mut d);
    assert_eq!((x[0].complete, x[0].incomplete_reason, x[0].timings.end_ns), (false, Some(R::ClientAbort), 90));
}

#[test]
fn lost_bytes_after_the_terminal_event_lose_nothing() {
    let mut d = ConnectionDecoder::new(DecoderConfig::default());
    d.on_data(Write, 1, &request("POST", "/v1/messages", "", ANTHROPIC_REQ));
    d.on_data(Read, 2, &unterminated("text/event-stream", &anthropic_stream(), Encoding::Identity));
    d.on_gap(Read, 3, 40);
    let x = drain(&mut d);
    assert_eq!((x.len(), x[0].complete, x[0].usage), (1, true, usage(25, 10, 5, 15, 0)));
    assert_eq!(x[0].timings.end_ns, 2);
}

#[test]
fn lost_bytes_before_the_terminal_event_stay_a_gap() {
    let mut d = ConnectionDecoder::new(DecoderConfig::default());
    d.on_data(Write, 1, &request("POST", "/v1/messages", "", ANTHROPIC_REQ));
    let resp = unterminated("text/event-stream", &anthropic_stream(), Encoding::Identity);
    let stop = memchr::memmem::find(&resp, b"event: message_stop").unwrap();
    d.on_data(Read, 2, &resp[..stop]);
    d.on_gap(Read, 3, 40);
    d.on_close(5);
    let x = drain(&mut d);
    assert_eq!((x[0].complete, x[0].incomplete_reason), (false, Some(R::Gap)));
}
