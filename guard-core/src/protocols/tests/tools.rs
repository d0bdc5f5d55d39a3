//! Tool calls of every provider, streamed and not, and MCP `tools/call` over Streamable HTTP.
//! Bodies follow the examples in each public API reference. These fixtures also join
//! [`super::fixtures::all`], so the split-invariance tests cover them (arguments included).

use base64::{Engine as _, engine::general_purpose::STANDARD};

use crate::{
    protocols::{Exchange, Role, eventstream::encode_message},
    providers::{Endpoint as E, Provider as P, Usage, mcp::Outcome},
};

use super::{
    Fixture, Want,
    fixtures::{PLAIN, client, request, response, sse, want},
    run, usage,
};

/// A fixture and the calls each of its exchanges must carry: (tool, call id, arguments).
pub(crate) struct ToolFixture {
    pub fixture: Fixture,
    pub calls: Vec<(&'static str, &'static str, &'static str)>,
    pub mcp: Vec<(&'static str, Outcome)>,
}

fn calls(f: Fixture, calls: Vec<(&'static str, &'static str, &'static str)>) -> ToolFixture {
    ToolFixture { fixture: f, calls, mcp: Vec::new() }
}

fn anthropic() -> Vec<ToolFixture> {
    let req = r#"{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"tools":[],"messages":[{"role":"user","content":"clean"}]}"#;
    let whole = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","stop_reason":"tool_use","content":[{"type":"text","text":"I'll clean it."},{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"Bash","input":{"description":"Clean","command":"rm -rf build && echo \"done\""}}],"usage":{"input_tokens":472,"output_tokens":89}}"#;
    let stream = sse(&[
        ("message_start", r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","usage":{"input_tokens":40,"output_tokens":1}}}"#),
        ("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
        ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking."}}"#),
        ("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
        ("content_block_start", r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}"#),
        ("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#),
        ("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"San Fra"}}"#),
        ("content_block_start", r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_02","name":"Bash","input":{}}}"#),
        ("content_block_delta", r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"command\": \"git status\"}"}}"#),
        ("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ncisco, CA\"}"}}"#),
        ("content_block_stop", r#"{"type":"content_block_stop","index":1}"#),
        ("content_block_stop", r#"{"type":"content_block_stop","index":2}"#),
        ("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":89}}"#),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ]);
    let m = "claude-sonnet-4-5";
    vec![
        calls(
            Fixture {
                name: "anthropic tool_use, non-streamed".into(),
                segments: client(request("POST", "/v1/messages", "", &req.replace("true", "false")), response(200, "application/json", "", whole.as_bytes(), PLAIN)),
                want: vec![want(P::Anthropic, E::Messages, m, 200, false, usage(472, 0, 0, 89, 0))],
            },
            vec![("Bash", "toolu_01A09q90qw90lq917835lq9", r#"{"command":"rm -rf build && echo \"done\"","description":"Clean"}"#)],
        ),
        calls(
            Fixture {
                name: "anthropic tool_use, input_json_delta interleaved".into(),
                segments: client(request("POST", "/v1/messages", "", req), response(200, "text/event-stream", "", &stream, PLAIN)),
                want: vec![want(P::Anthropic, E::Messages, m, 200, true, usage(40, 0, 0, 89, 0))],
            },
            vec![
                ("get_weather", "toolu_01T1x1fJ34qAmk2tNTrN7Up6", r#"{"location": "San Francisco, CA"}"#),
                ("Bash", "toolu_02", r#"{"command": "git status"}"#),
            ],
        ),
    ]
}

fn openai_chat() -> Vec<ToolFixture> {
    let req = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"list"}],"tools":[],"stream":true,"stream_options":{"include_usage":true}}"#;
    let whole = r#"{"id":"chatcmpl-abc123","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_abc123","type":"function","function":{"name":"bash","arguments":"{\"cmd\":\"ls -la\"}"}},{"id":"call_c2","type":"custom","custom":{"name":"apply_patch","input":"*** Begin Patch"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99}}"#;
    let chunk = |delta: &str, finish: &str| {
        format!(r#"{{"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}]}}"#)
    };
    let parts = [
        chunk(r#"{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","type":"function","function":{"name":"get_weather","arguments":""}}]}"#, "null"),
        chunk(r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\""}}]}"#, "null"),
        chunk(r#"{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"bash","arguments":"{\"cmd\": "}}]}"#, "null"),
        chunk(r#"{"tool_calls":[{"index":0,"function":{"arguments":"location\":\"Paris\"}"}}]}"#, "null"),
        chunk(r#"{"tool_calls":[{"index":1,"function":{"arguments":"\"make  test\"}"}}]}"#, "null"),
        chunk("{}", r#""tool_calls""#),
        r#"{"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":90,"completion_tokens":30}}"#.to_owned(),
        "[DONE]".to_owned(),
    ];
    let events: Vec<(&str, &str)> = parts.iter().map(|p| ("", p.as_str())).collect();
    let m = "gpt-4o";
    vec![
        calls(
            Fixture {
                name: "chat tool_calls, non-streamed (function and custom)".into(),
                segments: client(request("POST", "/v1/chat/completions", "", &req.replace("true", "false")), response(200, "application/json", "", whole.as_bytes(), PLAIN)),
                want: vec![want(P::OpenaiChat, E::ChatCompletions, m, 200, false, usage(82, 0, 0, 17, 0))],
            },
            vec![("bash", "call_abc123", r#"{"cmd":"ls -la"}"#), ("apply_patch", "call_c2", "*** Begin Patch")],
        ),
        calls(
            Fixture {
                name: "chat tool_calls, arguments streamed per index".into(),
                segments: client(request("POST", "/v1/chat/completions", "", req), response(200, "text/event-stream", "", &sse(&events), PLAIN)),
                want: vec![want(P::OpenaiChat, E::ChatCompletions, m, 200, true, usage(90, 0, 0, 30, 0))],
            },
            vec![
                ("get_weather", "call_DdmO9pD3xa9XTPNJ32zg2hcA", r#"{"location":"Paris"}"#),
                ("bash", "call_2", r#"{"cmd": "make  test"}"#),
            ],
        ),
    ]
}

fn openai_responses() -> Vec<ToolFixture> {
    let item = r#"{"type":"function_call","id":"fc_1","call_id":"call_x1","name":"exec_command","arguments":"{\"cmd\":\"cargo build\"}","status":"completed"}"#;
    let usage_json = r#"{"input_tokens":100,"input_tokens_details":{"cached_tokens":0},"output_tokens":20,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":120}"#;
    let added = format!(r#"{{"type":"response.output_item.added","output_index":0,"item":{}}}"#, item.replace(r#"{\"cmd\":\"cargo build\"}"#, "").replace("completed", "in_progress"));
    let delta = r#"{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":0,"delta":"{\"cmd\":"}"#;
    let done = format!(r#"{{"type":"response.output_item.done","output_index":0,"item":{item}}}"#);
    let completed = format!(r#"{{"type":"response.completed","response":{{"id":"resp_1","object":"response","status":"completed","model":"gpt-5-codex","output":[{item}],"usage":{usage_json}}}}}"#);
    let stream = sse(&[
        ("response.created", r#"{"type":"response.created","response":{"id":"resp_1","object":"response","status":"in_progress","model":"gpt-5-codex"}}"#),
        ("response.output_item.added", &added),
        ("response.function_call_arguments.delta", delta),
        ("response.output_item.done", &done),
        ("response.completed", &completed),
    ]);
    let whole = format!(
        r#"{{"id":"resp_2","object":"response","status":"completed","model":"codex-mini-latest","output":[{{"type":"local_shell_call","id":"lsh_1","call_id":"call_lsh1","action":{{"type":"exec","command":["bash","-lc","git status"],"env":{{}},"timeout_ms":10000,"working_directory":"/repo"}},"status":"completed"}},{{"type":"custom_tool_call","id":"ctc_1","call_id":"call_patch1","name":"apply_patch","input":"*** Begin Patch\n*** End Patch"}}],"usage":{usage_json}}}"#
    );
    let req = r#"{"model":"gpt-5-codex","input":"build","stream":true}"#;
    vec![
        calls(
            Fixture {
                name: "responses function_call, streamed (output_item.done, then completed)".into(),
                segments: client(request("POST", "/v1/responses", "", req), response(200, "text/event-stream", "", &stream, PLAIN)),
                want: vec![want(P::OpenaiResponses, E::Responses, "gpt-5-codex", 200, true, usage(100, 0, 0, 20, 0))],
            },
            vec![("exec_command", "call_x1", r#"{"cmd":"cargo build"}"#)],
        ),
        calls(
            Fixture {
                name: "responses local_shell_call and custom_tool_call, non-streamed".into(),
                segments: client(request("POST", "/v1/responses", "", r#"{"model":"codex-mini-latest","input":"x"}"#), response(200, "application/json", "", whole.as_bytes(), PLAIN)),
                want: vec![want(P::OpenaiResponses, E::Responses, "codex-mini-latest", 200, false, usage(100, 0, 0, 20, 0))],
            },
            vec![
                ("local_shell", "call_lsh1", r#"{"command":["bash","-lc","git status"],"env":{},"timeout_ms":10000,"type":"exec","working_directory":"/repo"}"#),
                ("apply_patch", "call_patch1", "*** Begin Patch\n*** End Patch"),
            ],
        ),
    ]
}

fn gemini() -> Vec<ToolFixture> {
    let usage_json = r#"{"promptTokenCount":100,"candidatesTokenCount":10,"totalTokenCount":110}"#;
    let whole = format!(
        r#"{{"candidates":[{{"content":{{"role":"model","parts":[{{"functionCall":{{"name":"run_shell_command","args":{{"command":"npm test"}}}}}}]}},"finishReason":"STOP","index":0}}],"usageMetadata":{usage_json},"modelVersion":"gemini-2.5-pro"}}"#
    );
    let chunk = |parts: &str, last: bool| {
        let tail = if last { format!(r#","finishReason":"STOP"}}],"usageMetadata":{usage_json}"#) } else { "}]".to_owned() };
        format!(r#"{{"candidates":[{{"content":{{"role":"model","parts":{parts}}},"index":0{tail},"modelVersion":"gemini-2.5-pro"}}"#)
    };
    let c = [
        chunk(r#"[{"text":"Running."}]"#, false),
        chunk(r#"[{"functionCall":{"name":"run_shell_command","args":{"command":"ls"}}}]"#, false),
        chunk(r#"[{"functionCall":{"name":"read_file","id":"fc_7","args":{"path":"a"}}},{"functionCall":{"name":"run_shell_command","args":{"command":"pwd"}}}]"#, true),
    ];
    let events: Vec<(&str, &str)> = c.iter().map(|d| ("", d.as_str())).collect();
    let path = "/v1beta/models/gemini-2.5-pro";
    let req = r#"{"contents":[{"role":"user","parts":[{"text":"test"}]}],"tools":[]}"#;
    let u = usage(100, 0, 0, 10, 0);
    vec![
        calls(
            Fixture {
                name: "gemini functionCall, non-streamed".into(),
                segments: client(request("POST", &format!("{path}:generateContent"), "", req), response(200, "application/json", "", whole.as_bytes(), PLAIN)),
                want: vec![want(P::Gemini, E::GenerateContent, "gemini-2.5-pro", 200, false, u)],
            },
            vec![("run_shell_command", "gemini_call_0", r#"{"command":"npm test"}"#)],
        ),
        calls(
            Fixture {
                name: "gemini functionCall, streamed (ids made per exchange)".into(),
                segments: client(request("POST", &format!("{path}:streamGenerateContent?alt=sse"), "", req), response(200, "text/event-stream", "", &sse(&events), PLAIN)),
                want: vec![want(P::Gemini, E::StreamGenerateContent, "gemini-2.5-pro", 200, true, u)],
            },
            vec![
                ("run_shell_command", "gemini_call_0", r#"{"command":"ls"}"#),
                ("read_file", "fc_7", r#"{"path":"a"}"#),
                ("run_shell_command", "gemini_call_2", r#"{"command":"pwd"}"#),
            ],
        ),
    ]
}

fn bedrock() -> Vec<ToolFixture> {
    let model = "anthropic.claude-3-5-sonnet-20240620-v1:0";
    let path = |op: &str| format!("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/{op}");
    let req = r#"{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"toolConfig":{"tools":[]}}"#;
    let whole = br#"{"output":{"message":{"role":"assistant","content":[{"text":"Let me run it."},{"toolUse":{"toolUseId":"tooluse_kZJMlvQmRJ6eAyJE5GIl7Q","name":"top_song","input":{"sign":"WZPZ"}}}]}},"stopReason":"tool_use","usage":{"inputTokens":30,"outputTokens":12,"totalTokens":42},"metrics":{"latencyMs":300}}"#;
    let ev = |kind: &str, body: &[u8]| encode_message(&[(":message-type", "event"), (":event-type", kind), (":content-type", "application/json")], body);
    let mut stream = ev("messageStart", br#"{"role":"assistant","p":"abc"}"#);
    stream.extend(ev("contentBlockDelta", br#"{"contentBlockIndex":0,"delta":{"text":"Running"}}"#));
    stream.extend(ev("contentBlockStop", br#"{"contentBlockIndex":0}"#));
    stream.extend(ev("contentBlockStart", br#"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_1","name":"bash"}}}"#));
    stream.extend(ev("contentBlockDelta", br#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"command\":"}}}"#));
    stream.extend(ev("contentBlockDelta", br#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"\"ls /tmp\"}"}}}"#));
    stream.extend(ev("contentBlockStop", br#"{"contentBlockIndex":1}"#));
    stream.extend(ev("messageStop", br#"{"stopReason":"tool_use"}"#));
    stream.extend(ev("metadata", br#"{"usage":{"inputTokens":30,"outputTokens":12,"totalTokens":42},"metrics":{"latencyMs":300}}"#));
    let chunk = |inner: &str| ev("chunk", format!(r#"{{"bytes":"{}"}}"#, STANDARD.encode(inner)).as_bytes());
    let mut invoke = chunk(r#"{"type":"message_start","message":{"model":"claude-3-5-sonnet-20240620","usage":{"input_tokens":14,"output_tokens":1}}}"#);
    invoke.extend(chunk(r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_bdrk_1","name":"Bash","input":{}}}"#));
    invoke.extend(chunk(r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"command\":\"df -h\"}"}}"#));
    invoke.extend(chunk(r#"{"type":"content_block_stop","index":0}"#));
    invoke.extend(chunk(r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}"#));
    invoke.extend(chunk(r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":14,"outputTokenCount":9}}"#));
    let es = "application/vnd.amazon.eventstream";
    let u = usage(30, 0, 0, 12, 0);
    vec![
        calls(
            Fixture {
                name: "bedrock converse toolUse".into(),
                segments: client(request("POST", &path("converse"), "", req), response(200, "application/json", "", whole, PLAIN)),
                want: vec![want(P::Bedrock, E::Converse, model, 200, false, u)],
            },
            vec![("top_song", "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", r#"{"sign":"WZPZ"}"#)],
        ),
        calls(
            Fixture {
                name: "bedrock converse-stream toolUse".into(),
                segments: client(request("POST", &path("converse-stream"), "", req), response(200, es, "", &stream, PLAIN)),
                want: vec![want(P::Bedrock, E::ConverseStream, model, 200, true, u)],
            },
            vec![("bash", "tooluse_1", r#"{"command":"ls /tmp"}"#)],
        ),
        calls(
            Fixture {
                name: "bedrock invoke stream, anthropic tool_use".into(),
                segments: client(request("POST", &path("invoke-with-response-stream"), "", r#"{"anthropic_version":"bedrock-2023-05-31","messages":[]}"#), response(200, es, "", &invoke, PLAIN)),
                want: vec![want(P::Bedrock, E::InvokeWithResponseStream, model, 200, true, usage(14, 0, 0, 9, 0))],
            },
            vec![("Bash", "toolu_bdrk_1", r#"{"command":"df -h"}"#)],
        ),
    ]
}

fn mcp_want(streamed: bool) -> Want {
    Want {
        provider: P::Unknown,
        endpoint: E::Other,
        inference: false,
        model: None,
        status: Some(200),
        streamed,
        complete: true,
        reason: None,
        error_type: None,
        usage: Usage::default(),
        role: Role::Client,
    }
}

fn mcp() -> Vec<ToolFixture> {
    let accept = "Accept: application/json, text/event-stream\r\nMcp-Session-Id: s1\r\n";
    let one = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_weather","arguments":{"location":"New York"}}}"#;
    let batch = r#"[{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}},{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"delete_repo","arguments":{}}}]"#;
    let json_reply = br#"{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"72F"}],"isError":false}}"#;
    let sse_reply = sse(&[
        ("message", r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":50}}"#),
        ("message", r#"{"jsonrpc":"2.0","id":"a","result":{"content":[{"type":"text","text":"3"}]}}"#),
        ("message", r#"{"jsonrpc":"2.0","id":"b","result":{"content":[{"type":"text","text":"denied"}],"isError":true}}"#),
    ]);
    let f = |name: &str, body: &str, ct: &str, reply: &[u8], streamed: bool| Fixture {
        name: name.into(),
        segments: client(request("POST", "/mcp", accept, body), response(200, ct, "", reply, PLAIN)),
        want: vec![mcp_want(streamed)],
    };
    vec![
        ToolFixture {
            fixture: f("mcp tools/call, JSON reply", one, "application/json", json_reply, false),
            calls: Vec::new(),
            mcp: vec![("get_weather", Outcome::Ok)],
        },
        ToolFixture {
            fixture: f("mcp tools/call batch, SSE reply with a notification", batch, "text/event-stream", &sse_reply, true),
            calls: Vec::new(),
            mcp: vec![("add", Outcome::Ok), ("delete_repo", Outcome::Error)],
        },
    ]
}

pub(crate) fn tool_fixtures() -> Vec<ToolFixture> {
    [anthropic(), openai_chat(), openai_responses(), gemini(), bedrock(), mcp()].into_iter().flatten().collect()
}

pub(crate) fn fixtures() -> Vec<Fixture> {
    tool_fixtures().into_iter().map(|t| t.fixture).collect()
}

fn calls_of(x: &Exchange) -> Vec<(&str, &str, &str)> {
    x.tool_calls.iter().map(|c| (c.tool.as_str(), c.call_id.as_str(), c.args.as_str())).collect()
}

#[test]
fn every_tool_fixture_gives_its_calls() {
    for t in tool_fixtures() {
        let got = run(&t.fixture.segments);
        assert_eq!(got.len(), 1, "fixture {}", t.fixture.name);
        assert_eq!(calls_of(&got[0]), t.calls, "fixture {}", t.fixture.name);
        let mcp: Vec<_> = got[0].mcp_calls.iter().map(|c| (c.tool.as_str(), c.outcome)).collect();
        assert_eq!(mcp, t.mcp, "fixture {}", t.fixture.name);
    }
}

#[test]
fn serialised_exchanges_name_calls_but_never_carry_arguments() {
    for t in tool_fixtures() {
        let x = &run(&t.fixture.segments)[0];
        let line = serde_json::to_string(x).unwrap();
        let debug = format!("{x:?}");
        for (tool, id, args) in &t.calls {
            assert!(line.contains(&format!(r#"{{"tool":"{tool}","call_id":"{id}"}}"#)), "{line}");
            assert!(!line.contains(args) && !debug.contains(args), "fixture {}: {line}", t.fixture.name);
        }
    }
}

#[test]
fn responses_over_websocket_give_their_calls() {
    for f in super::live::ws::fixtures() {
        let got = run(&f.segments);
        let turns: Vec<_> = got.iter().filter(|x| x.inference).map(calls_of).collect();
        let want = vec![("shell", "call_live1", r#"{"command":["bash","-lc","ls -la"]}"#)];
        assert_eq!(turns, vec![want.clone(), want], "fixture {}", f.name);
    }
}

#[test]
fn calls_are_announced_once_while_their_response_still_streams() {
    use crate::{events::Direction::{Read, Write}, protocols::{ConnectionDecoder, DecoderConfig}};
    let t = tool_fixtures().into_iter().find(|t| t.fixture.name.starts_with("responses function_call, streamed")).unwrap();
    let [req, resp] = [&t.fixture.segments[0].bytes, &t.fixture.segments[1].bytes];
    let cut = resp.windows(25).position(|w| w == b"event: response.completed").unwrap();
    let mut d = ConnectionDecoder::new(DecoderConfig::default());
    d.on_data(Write, 1, req);
    d.on_data(Read, 2, &resp[..cut]);
    let mut early = Vec::new();
    d.drain_tool_calls(&mut early);
    let got: Vec<_> = early.iter().flat_map(|e| e.calls.iter().map(|c| (e.provider, e.model.as_deref(), c.call_id.as_str(), c.args.as_str()))).collect();
    assert_eq!(got, [(P::OpenaiResponses, Some("gpt-5-codex"), "call_x1", r#"{"cmd":"cargo build"}"#)]);
    d.on_data(Read, 3, &resp[cut..]);
    early.clear();
    d.drain_tool_calls(&mut early);
    assert!(early.is_empty(), "{early:?}");
    let mut done = Vec::new();
    d.drain(&mut done);
    assert_eq!(calls_of(&done[0]), t.calls);
}
