//! Decode throughput (MB/s of wire bytes, one core): a long streamed Anthropic SSE response and
//! a large non-streamed JSON response, each through the whole connection decoder; then each
//! again ending with one tool call (a `tool_use` block), whose decoding is the difference.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use guard_core::{
    events::Direction,
    protocols::{ConnectionDecoder, DecoderConfig},
};

fn request(body: &str) -> Vec<u8> {
    format!("POST /v1/messages HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        .into_bytes()
}

/// A streamed `tool_use` block at index 1: its start, its input in fragments, its stop.
const SSE_TOOL: &str = concat!(
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"Bash\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"command\\\": \\\"ls\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" -la\\\"}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
);

/// A whole `tool_use` content block.
const JSON_TOOL: &str = r#"{"type":"tool_use","id":"toolu_01","name":"Bash","input":{"command":"ls -la"}}"#;

fn sse_response(deltas: usize, tool: &str) -> Vec<u8> {
    let mut body = String::from("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n");
    for i in 0..deltas {
        body.push_str(&format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"token {i} of a long and winding answer\"}}}}\n\n"));
    }
    body.push_str(tool);
    body.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":4000}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for c in body.as_bytes().chunks(1024) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn json_response(blocks: usize, last: &str) -> Vec<u8> {
    let text: String = (0..blocks).map(|i| format!("{{\"type\":\"text\",\"text\":\"paragraph {i}: lorem ipsum dolor sit amet, \\\"quoted\\\" and escaped\\n\"}},")).collect();
    let body = format!("{{\"type\":\"message\",\"model\":\"claude-sonnet-4-5\",\"content\":[{}{last}],\"usage\":{{\"input_tokens\":10,\"output_tokens\":20}}}}", text);
    let mut out = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

fn run(req: &[u8], resp: &[u8], piece: usize) -> usize {
    let mut d = ConnectionDecoder::new(DecoderConfig::default());
    d.on_data(Direction::Write, 1, req);
    for c in resp.chunks(piece) {
        d.on_data(Direction::Read, 2, c);
    }
    let mut out = Vec::new();
    d.drain(&mut out);
    assert_eq!(out.len(), 1);
    out.len()
}

fn bench(c: &mut Criterion) {
    let req = request(r#"{"model":"claude-sonnet-4-5","stream":true,"messages":[]}"#);
    let mut g = c.benchmark_group("decode");
    for (tool, suffix) in [(false, ""), (true, "_tool_call")] {
        let sse = sse_response(40_000, if tool { SSE_TOOL } else { "" });
        let json = json_response(60_000, if tool { JSON_TOOL } else { r#"{"type":"text","text":"end"}"# });
        g.throughput(Throughput::Bytes(sse.len() as u64));
        g.bench_function(format!("sse_stream_{}KiB_4KiB_reads{suffix}", sse.len() / 1024), |b| b.iter(|| black_box(run(&req, &sse, 4096))));
        g.throughput(Throughput::Bytes(json.len() as u64));
        g.bench_function(format!("json_{}KiB_16KiB_reads{suffix}", json.len() / 1024), |b| b.iter(|| black_box(run(&req, &json, 16384))));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
