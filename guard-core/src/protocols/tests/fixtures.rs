//! One fixture per case, with the exchanges it must produce stated exactly. Bodies follow the
//! examples in each provider's public API reference.

use base64::{Engine as _, engine::general_purpose::STANDARD};

use crate::{
    events::Direction::{Read, Write},
    protocols::{encoding::Encoding, eventstream::encode_message, testutil::compress},
    providers::{Endpoint as E, Provider as P, Usage},
};

use super::{Fixture, IncompleteReason, Role, Segment, Want, usage};

pub(crate) fn request(method: &str, target: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {target} HTTP/1.1\r\nHost: llm.example\r\nAuthorization: Bearer sk-test\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// How a response body goes on the wire.
#[derive(Clone, Copy)]
pub(crate) struct Wire {
    pub chunked: bool,
    pub encoding: Encoding,
}

pub(crate) const PLAIN: Wire = Wire { chunked: false, encoding: Encoding::Identity };

pub(crate) fn response(status: u16, content_type: &str, extra: &str, body: &[u8], wire: Wire) -> Vec<u8> {
    let body = compress(wire.encoding, body);
    let enc = match wire.encoding {
        Encoding::Identity => "",
        Encoding::Gzip => "Content-Encoding: gzip\r\n",
        Encoding::Deflate => "Content-Encoding: deflate\r\n",
        Encoding::Br => "Content-Encoding: br\r\n",
        Encoding::Zstd => "Content-Encoding: zstd\r\n",
    };
    let mut out = format!("HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n{enc}{extra}").into_bytes();
    if wire.chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for c in body.chunks(97) {
            out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\nx-trailer: 1\r\n\r\n");
    } else {
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(&body);
    }
    out
}

pub(crate) fn sse(events: &[(&str, &str)]) -> Vec<u8> {
    events
        .iter()
        .map(|(e, d)| if e.is_empty() { format!("data: {d}\n\n") } else { format!("event: {e}\ndata: {d}\n\n") })
        .collect::<String>()
        .into_bytes()
}

pub(super) fn want(provider: P, endpoint: E, model: &'static str, status: u16, streamed: bool, u: Usage) -> Want {
    Want {
        provider,
        endpoint,
        inference: true,
        model: Some(model),
        status: Some(status),
        streamed,
        complete: true,
        reason: None,
        error_type: None,
        usage: u,
        role: Role::Client,
    }
}

pub(super) fn client(req: Vec<u8>, resp: Vec<u8>) -> Vec<Segment> {
    vec![Segment { dir: Write, ts: 1_000, bytes: req }, Segment { dir: Read, ts: 2_000, bytes: resp }]
}

const ENCODINGS: [Encoding; 4] = [Encoding::Gzip, Encoding::Deflate, Encoding::Br, Encoding::Zstd];

// ---- Anthropic Messages ----

pub(super) const ANTHROPIC_REQ: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"Hello, Claude"}]}"#;
const ANTHROPIC_JSON: &str = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hi!"}],"stop_reason":"end_turn","usage":{"input_tokens":2095,"output_tokens":503,"cache_creation_input_tokens":2051,"cache_read_input_tokens":1000}}"#;

pub(crate) fn anthropic_stream() -> Vec<u8> {
    sse(&[
        ("message_start", r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","usage":{"input_tokens":25,"cache_creation_input_tokens":5,"cache_read_input_tokens":10,"output_tokens":1}}}"#),
        ("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
        ("ping", r#"{"type": "ping"}"#),
        ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#),
        ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!\n\nevent: x"}}"#),
        ("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
        ("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}"#),
        ("message_delta", r#"{"type":"message_delta","delta":{},"usage":{"input_tokens":25,"cache_read_input_tokens":10,"output_tokens":15}}"#),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ])
}

fn anthropic() -> Vec<Fixture> {
    let mut v = Vec::new();
    let stream_usage = usage(25, 10, 5, 15, 0);
    let stream_want = want(P::Anthropic, E::Messages, "claude-sonnet-4-5", 200, true, stream_usage);
    v.push(Fixture {
        name: "anthropic non-streamed".into(),
        segments: client(
            request("POST", "/v1/messages", "anthropic-version: 2023-06-01\r\nx-api-key: sk-ant\r\n", &ANTHROPIC_REQ.replace("true", "false")),
            response(200, "application/json", "", ANTHROPIC_JSON.as_bytes(), PLAIN),
        ),
        want: vec![want(P::Anthropic, E::Messages, "claude-sonnet-4-5", 200, false, usage(2095, 1000, 2051, 503, 0))],
    });
    // The cache write split by lifetime: the 1-hour part is kept apart (it is priced higher) and
    // stays a part of cache_write, not added to the total.
    let split = ANTHROPIC_JSON.replace(
        r#""cache_read_input_tokens":1000}"#,
        r#""cache_read_input_tokens":1000,"cache_creation":{"ephemeral_5m_input_tokens":51,"ephemeral_1h_input_tokens":2000}}"#,
    );
    v.push(Fixture {
        name: "anthropic non-streamed, 5-minute and 1-hour cache writes".into(),
        segments: client(
            request("POST", "/v1/messages", "", &ANTHROPIC_REQ.replace("true", "false")),
            response(200, "application/json", "", split.as_bytes(), PLAIN),
        ),
        want: vec![want(P::Anthropic, E::Messages, "claude-sonnet-4-5", 200, false, Usage { cache_write_1h: 2000, ..usage(2095, 1000, 2051, 503, 0) })],
    });
    v.push(Fixture {
        name: "anthropic streamed, cumulative message_delta".into(),
        segments: client(
            request("POST", "/v1/messages?beta=true", "", ANTHROPIC_REQ),
            response(200, "text/event-stream; charset=utf-8", "", &anthropic_stream(), PLAIN),
        ),
        want: vec![stream_want.clone()],
    });
    for enc in ENCODINGS {
        v.push(Fixture {
            name: format!("anthropic streamed, chunked, {enc:?}"),
            segments: client(
                request("POST", "/v1/messages", "", ANTHROPIC_REQ),
                response(200, "text/event-stream", "", &anthropic_stream(), Wire { chunked: true, encoding: enc }),
            ),
            want: vec![stream_want.clone()],
        });
    }
    let mid_error = sse(&[
        ("message_start", r#"{"type":"message_start","message":{"model":"claude-sonnet-4-5-20250929","usage":{"input_tokens":40,"output_tokens":1}}}"#),
        ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}"#),
        ("error", r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
    ]);
    v.push(Fixture {
        name: "anthropic mid-stream error event".into(),
        segments: client(request("POST", "/v1/messages", "", ANTHROPIC_REQ), response(200, "text/event-stream", "", &mid_error, PLAIN)),
        want: vec![Want { error_type: Some("overloaded_error"), ..want(P::Anthropic, E::Messages, "claude-sonnet-4-5", 200, true, usage(40, 0, 0, 1, 0)) }],
    });
    v.push(Fixture {
        name: "anthropic 429 error".into(),
        segments: client(
            request("POST", "/v1/messages", "", ANTHROPIC_REQ),
            response(429, "application/json", "retry-after: 3\r\n", br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#, PLAIN),
        ),
        want: vec![Want {
            error_type: Some("rate_limit_error"),
            streamed: false,
            ..want(P::Anthropic, E::Messages, "claude-sonnet-4-5", 429, false, Usage::default())
        }],
    });
    // Keep-alive: bootstrap HEAD, token counting, then a streamed call, all on one connection.
    let mut segs = vec![
        Segment { dir: Write, ts: 1_000, bytes: b"HEAD / HTTP/1.1\r\nHost: api.anthropic.com\r\n\r\n".to_vec() },
        Segment { dir: Read, ts: 1_500, bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/html\r\n\r\n".to_vec() },
        Segment { dir: Write, ts: 2_000, bytes: request("POST", "/v1/messages/count_tokens?beta=true", "", r#"{"model":"claude-sonnet-4-5","messages":[]}"#) },
        Segment { dir: Read, ts: 2_500, bytes: response(200, "application/json", "", br#"{"input_tokens":2095}"#, PLAIN) },
        Segment { dir: Write, ts: 3_000, bytes: request("POST", "/v1/messages", "", ANTHROPIC_REQ) },
    ];
    segs.push(Segment { dir: Read, ts: 3_500, bytes: response(200, "text/event-stream", "", &anthropic_stream(), Wire { chunked: true, encoding: Encoding::Gzip }) });
    let non = |endpoint, status, model| Want {
        provider: if endpoint == E::CountTokens { P::Anthropic } else { P::Unknown },
        endpoint,
        inference: false,
        model,
        status: Some(status),
        streamed: false,
        complete: true,
        reason: None,
        error_type: None,
        usage: Usage::default(),
        role: Role::Client,
    };
    v.push(Fixture {
        name: "keep-alive: HEAD, count_tokens, streamed messages".into(),
        segments: segs,
        want: vec![non(E::Other, 200, None), non(E::CountTokens, 200, None), stream_want.clone()],
    });
    // The same exchange captured inside a local TLS server: SSL_read carries the request.
    v.push(Fixture {
        name: "anthropic seen from the server side".into(),
        segments: vec![
            Segment { dir: Read, ts: 1_000, bytes: request("POST", "/v1/messages", "", ANTHROPIC_REQ) },
            Segment { dir: Write, ts: 2_000, bytes: response(200, "text/event-stream", "", &anthropic_stream(), PLAIN) },
        ],
        want: vec![Want { role: Role::Server, ..stream_want.clone() }],
    });
    // Expect: 100-continue: the body follows an interim response.
    let body = ANTHROPIC_REQ.replace("true", "false");
    let head = format!("POST /v1/messages HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", body.len());
    v.push(Fixture {
        name: "100-continue".into(),
        segments: vec![
            Segment { dir: Write, ts: 1_000, bytes: head.into_bytes() },
            Segment { dir: Read, ts: 1_500, bytes: b"HTTP/1.1 100 Continue\r\n\r\n".to_vec() },
            Segment { dir: Write, ts: 1_600, bytes: body.into_bytes() },
            Segment { dir: Read, ts: 2_000, bytes: response(200, "application/json", "", ANTHROPIC_JSON.as_bytes(), PLAIN) },
        ],
        want: vec![want(P::Anthropic, E::Messages, "claude-sonnet-4-5", 200, false, usage(2095, 1000, 2051, 503, 0))],
    });
    v
}

// ---- OpenAI Chat Completions (and Azure) ----

pub(super) const CHAT_REQ: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hello!"}],"stream":true,"stream_options":{"include_usage":true}}"#;

pub(super) fn chat_stream(done: bool) -> Vec<u8> {
    let mut e = vec![
        ("", r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#),
        ("", r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}],"usage":null}"#),
        ("", r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#),
        ("", r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":1000},"completion_tokens_details":{"reasoning_tokens":100}}}"#),
    ];
    if done {
        e.push(("", "[DONE]"));
    }
    sse(&e)
}

const CHAT_JSON: &str = r#"{"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;

fn openai_chat() -> Vec<Fixture> {
    let mut v = Vec::new();
    let su = usage(200, 1000, 0, 200, 100);
    v.push(Fixture {
        name: "openai chat non-streamed".into(),
        segments: client(
            request("POST", "/v1/chat/completions", "", r#"{"model":"gpt-4o","messages":[]}"#),
            response(200, "application/json", "", CHAT_JSON.as_bytes(), PLAIN),
        ),
        want: vec![want(P::OpenaiChat, E::ChatCompletions, "gpt-4o", 200, false, usage(19, 0, 0, 10, 0))],
    });
    for enc in [Encoding::Identity, Encoding::Br] {
        v.push(Fixture {
            name: format!("openai chat streamed with include_usage, chunked {enc:?}"),
            segments: client(
                request("POST", "/v1/chat/completions", "", CHAT_REQ),
                response(200, "text/event-stream", "", &chat_stream(true), Wire { chunked: true, encoding: enc }),
            ),
            want: vec![want(P::OpenaiChat, E::ChatCompletions, "gpt-4o", 200, true, su)],
        });
    }
    // The server ends the body before the usage chunk and `[DONE]`: neither terminal came.
    let cut = chat_stream(false);
    let cut = &cut[..memchr::memmem::find(&cut, br#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06","choices":[],"#).unwrap()];
    v.push(Fixture {
        name: "openai chat stream ended before its usage chunk and [DONE]".into(),
        segments: client(request("POST", "/v1/chat/completions", "", CHAT_REQ), response(200, "text/event-stream", "", cut, PLAIN)),
        want: vec![Want {
            complete: false,
            reason: Some(IncompleteReason::StreamTruncated),
            ..want(P::OpenaiChat, E::ChatCompletions, "gpt-4o", 200, true, Usage::default())
        }],
    });
    // The final usage chunk is terminal too: a body that ends after it, without `[DONE]`, lost nothing.
    v.push(Fixture {
        name: "openai chat stream ended after its usage chunk, no [DONE]".into(),
        segments: client(
            request("POST", "/v1/chat/completions", "", CHAT_REQ),
            response(200, "text/event-stream", "", &chat_stream(false), PLAIN),
        ),
        want: vec![want(P::OpenaiChat, E::ChatCompletions, "gpt-4o", 200, true, su)],
    });
    v.push(Fixture {
        name: "openai-compatible host behind a gateway prefix, 500".into(),
        segments: client(
            request("POST", "/api/v1/chat/completions", "", r#"{"model":"deepseek-chat","messages":[]}"#),
            response(500, "application/json", "", br#"{"error":{"message":"boom","type":"server_error","code":null}}"#, PLAIN),
        ),
        want: vec![Want { error_type: Some("server_error"), ..want(P::OpenaiChat, E::ChatCompletions, "deepseek-chat", 500, false, Usage::default()) }],
    });
    v.push(Fixture {
        name: "azure deployment, model from response".into(),
        segments: client(
            request("POST", "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21", "api-key: k\r\n", r#"{"messages":[]}"#),
            response(200, "application/json", "", CHAT_JSON.as_bytes(), Wire { chunked: false, encoding: Encoding::Gzip }),
        ),
        want: vec![want(P::Azure, E::ChatCompletions, "gpt-4o-2024-08-06", 200, false, usage(19, 0, 0, 10, 0))],
    });
    v
}

// ---- OpenAI Responses ----

fn responses_stream(completed: bool) -> Vec<u8> {
    let mut e = vec![
        ("response.created", r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","model":"gpt-5-2025-08-07","usage":null}}"#),
        ("response.output_text.delta", r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}"#),
    ];
    if completed {
        e.push(("response.completed", r#"{"type":"response.completed","sequence_number":5,"response":{"id":"resp_1","object":"response","status":"completed","model":"gpt-5-2025-08-07","usage":{"input_tokens":5000,"input_tokens_details":{"cached_tokens":4096},"output_tokens":900,"output_tokens_details":{"reasoning_tokens":640},"total_tokens":5900}}}"#));
    } else {
        e.push(("error", r#"{"type":"error","code":"server_error","message":"The server had an error","sequence_number":3}"#));
    }
    sse(&e)
}

fn openai_responses() -> Vec<Fixture> {
    let req = r#"{"model":"gpt-5","input":"Hi","stream":true}"#;
    vec![
        Fixture {
            name: "responses streamed, zstd".into(),
            segments: client(
                request("POST", "/v1/responses", "", req),
                response(200, "text/event-stream", "", &responses_stream(true), Wire { chunked: true, encoding: Encoding::Zstd }),
            ),
            want: vec![want(P::OpenaiResponses, E::Responses, "gpt-5", 200, true, usage(904, 4096, 0, 260, 640))],
        },
        Fixture {
            name: "responses mid-stream error".into(),
            segments: client(request("POST", "/v1/responses", "", req), response(200, "text/event-stream", "", &responses_stream(false), PLAIN)),
            want: vec![Want { error_type: Some("server_error"), ..want(P::OpenaiResponses, E::Responses, "gpt-5", 200, true, Usage::default()) }],
        },
        Fixture {
            name: "responses non-streamed".into(),
            segments: client(
                request("POST", "/v1/responses", "", r#"{"model":"gpt-5","input":"Hi"}"#),
                response(200, "application/json", "", br#"{"id":"resp_2","object":"response","status":"completed","model":"gpt-5-2025-08-07","output":[],"usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":64},"total_tokens":123}}"#, PLAIN),
            ),
            want: vec![want(P::OpenaiResponses, E::Responses, "gpt-5", 200, false, usage(36, 0, 0, 23, 64))],
        },
    ]
}

// ---- Gemini ----

fn gemini_chunk(text: &str, usage: &str) -> String {
    format!(r#"{{"candidates":[{{"content":{{"parts":[{{"text":"{text}"}}],"role":"model"}},"index":0}}],"usageMetadata":{usage},"modelVersion":"gemini-2.5-pro"}}"#)
}

fn gemini() -> Vec<Fixture> {
    let u1 = r#"{"promptTokenCount":1200,"totalTokenCount":1200}"#;
    let u2 = r#"{"promptTokenCount":1200,"candidatesTokenCount":80,"cachedContentTokenCount":1000,"thoughtsTokenCount":300,"totalTokenCount":1580}"#;
    let array = format!("[{},\r\n{}]", gemini_chunk("Hel", u1), gemini_chunk("lo \\\"]\\\"", u2));
    let events = [("", gemini_chunk("Hel", u1)), ("", gemini_chunk("lo", u2))];
    let sse_body = sse(&events.iter().map(|(e, d)| (*e, d.as_str())).collect::<Vec<_>>());
    let want_u = usage(200, 1000, 0, 80, 300);
    let req = r#"{"contents":[{"parts":[{"text":"Hi"}]}]}"#;
    let code_assist = format!(r#"{{"response":{}}}"#, gemini_chunk("x", u2));
    vec![
        Fixture {
            name: "gemini streamed JSON array, deflate".into(),
            segments: client(
                request("POST", "/v1beta/models/gemini-2.5-pro:streamGenerateContent", "x-goog-api-key: k\r\n", req),
                response(200, "application/json; charset=UTF-8", "", array.as_bytes(), Wire { chunked: true, encoding: Encoding::Deflate }),
            ),
            want: vec![want(P::Gemini, E::StreamGenerateContent, "gemini-2.5-pro", 200, true, want_u)],
        },
        Fixture {
            name: "gemini alt=sse".into(),
            segments: client(
                request("POST", "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse&key=SECRET", "", req),
                response(200, "text/event-stream", "", &sse_body, PLAIN),
            ),
            want: vec![want(P::Gemini, E::StreamGenerateContent, "gemini-2.5-pro", 200, true, want_u)],
        },
        Fixture {
            name: "vertex generateContent".into(),
            segments: client(
                request("POST", "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent", "", req),
                response(200, "application/json", "", gemini_chunk("hi", u2).as_bytes(), PLAIN),
            ),
            want: vec![want(P::Gemini, E::GenerateContent, "gemini-2.5-flash", 200, false, want_u)],
        },
        Fixture {
            name: "code assist wrapper, model from body".into(),
            segments: client(
                request("POST", "/v1internal:streamGenerateContent?alt=sse", "", r#"{"model":"gemini-2.5-pro","project":"p","request":{}}"#),
                response(200, "text/event-stream", "", &sse(&[("", code_assist.as_str())]), PLAIN),
            ),
            want: vec![want(P::Gemini, E::StreamGenerateContent, "gemini-2.5-pro", 200, true, want_u)],
        },
        Fixture {
            name: "gemini 429 on a streamed call".into(),
            segments: client(
                request("POST", "/v1beta/models/gemini-2.5-pro:streamGenerateContent", "", req),
                response(429, "application/json", "", br#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#, PLAIN),
            ),
            want: vec![Want { error_type: Some("RESOURCE_EXHAUSTED"), ..want(P::Gemini, E::StreamGenerateContent, "gemini-2.5-pro", 429, false, Usage::default()) }],
        },
    ]
}

// ---- Bedrock ----

fn bedrock() -> Vec<Fixture> {
    let model = "anthropic.claude-3-5-sonnet-20240620-v1:0";
    let path = |op: &str| format!("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/{op}");
    let req = r#"{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}"#;
    let mut stream = encode_message(&[(":message-type", "event"), (":event-type", "messageStart"), (":content-type", "application/json")], br#"{"role":"assistant"}"#);
    stream.extend(encode_message(&[(":message-type", "event"), (":event-type", "contentBlockDelta")], br#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#));
    stream.extend(encode_message(&[(":message-type", "event"), (":event-type", "messageStop")], br#"{"stopReason":"end_turn"}"#));
    stream.extend(encode_message(&[(":message-type", "event"), (":event-type", "metadata")], br#"{"usage":{"inputTokens":30,"outputTokens":12,"totalTokens":1542,"cacheReadInputTokens":1000,"cacheWriteInputTokens":500},"metrics":{"latencyMs":300}}"#));
    let chunk = |inner: &str| {
        let payload = format!(r#"{{"bytes":"{}"}}"#, STANDARD.encode(inner));
        encode_message(&[(":message-type", "event"), (":event-type", "chunk")], payload.as_bytes())
    };
    let mut invoke = chunk(r#"{"type":"message_start","message":{"model":"claude-3-5-sonnet-20240620","usage":{"input_tokens":14,"output_tokens":1}}}"#);
    invoke.extend(chunk(r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#));
    invoke.extend(chunk(r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#));
    invoke.extend(chunk(r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":14,"outputTokenCount":9,"invocationLatency":500,"firstByteLatency":200}}"#));
    let mut throttled = encode_message(&[(":message-type", "event"), (":event-type", "messageStart")], br#"{"role":"assistant"}"#);
    throttled.extend(encode_message(&[(":message-type", "exception"), (":exception-type", "throttlingException")], br#"{"message":"Too many requests"}"#));
    let es = "application/vnd.amazon.eventstream";
    vec![
        Fixture {
            name: "bedrock converse".into(),
            segments: client(
                request("POST", &path("converse"), "", req),
                response(200, "application/json", "", br#"{"output":{"message":{"role":"assistant","content":[{"text":"Hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":30,"outputTokens":12,"totalTokens":42},"metrics":{"latencyMs":300}}"#, PLAIN),
            ),
            want: vec![want(P::Bedrock, E::Converse, model, 200, false, usage(30, 0, 0, 12, 0))],
        },
        Fixture {
            name: "bedrock converse-stream".into(),
            segments: client(request("POST", &path("converse-stream"), "", req), response(200, es, "", &stream, Wire { chunked: true, encoding: Encoding::Identity })),
            want: vec![want(P::Bedrock, E::ConverseStream, model, 200, true, usage(30, 1000, 500, 12, 0))],
        },
        Fixture {
            name: "bedrock converse-stream exception".into(),
            segments: client(request("POST", &path("converse-stream"), "", req), response(200, es, "", &throttled, PLAIN)),
            want: vec![Want { error_type: Some("throttlingException"), ..want(P::Bedrock, E::ConverseStream, model, 200, true, Usage::default()) }],
        },
        Fixture {
            name: "bedrock invoke-with-response-stream (anthropic)".into(),
            segments: client(
                request("POST", &path("invoke-with-response-stream"), "", r#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[]}"#),
                response(200, es, "", &invoke, PLAIN),
            ),
            want: vec![want(P::Bedrock, E::InvokeWithResponseStream, model, 200, true, usage(14, 0, 0, 9, 0))],
        },
        Fixture {
            name: "bedrock invoke, headers and body".into(),
            segments: client(
                request("POST", &path("invoke"), "", r#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[]}"#),
                response(200, "application/json", "X-Amzn-Bedrock-Input-Token-Count: 14\r\nX-Amzn-Bedrock-Output-Token-Count: 9\r\n", br#"{"type":"message","model":"claude","content":[],"usage":{"input_tokens":14,"output_tokens":9}}"#, PLAIN),
            ),
            want: vec![want(P::Bedrock, E::Invoke, model, 200, false, usage(14, 0, 0, 9, 0))],
        },
        Fixture {
            name: "bedrock 400 validation".into(),
            segments: client(
                request("POST", &path("converse"), "", req),
                response(400, "application/json", "x-amzn-ErrorType: ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/\r\n", br#"{"message":"Malformed input request"}"#, PLAIN),
            ),
            want: vec![Want { error_type: Some("ValidationException"), ..want(P::Bedrock, E::Converse, model, 400, false, Usage::default()) }],
        },
    ]
}

pub(crate) fn all() -> Vec<Fixture> {
    [anthropic(), openai_chat(), openai_responses(), gemini(), bedrock(), super::terminal::fixtures(), super::tools::fixtures()].into_iter().flatten().collect()
}
