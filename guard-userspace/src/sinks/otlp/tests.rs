#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpListener,
    sync::Arc,
    time::Duration,
};

use guard_core::{
    protocols::{Exchange, Role, exchange::Timings},
    providers::{Endpoint, Provider, Usage},
};

use super::{Otlp, settings::Settings};
use crate::{
    app::config::OtlpConfig,
    sinks::metrics::{Counted, Metrics},
};

fn exchange() -> Exchange {
    Exchange {
        conn: None,
        role: Role::Client,
        protocol: guard_core::protocols::exchange::Protocol::Http1,
        provider: Provider::Anthropic,
        endpoint: Endpoint::Messages,
        inference: true,
        method: Some("POST".into()),
        path: Some("/v1/messages".into()),
        host: Some("api.anthropic.com".into()),
        model: Some("claude-sonnet-4-5".into()),
        status: Some(200),
        streamed: true,
        complete: true,
        incomplete_reason: None,
        error_type: None,
        timings: Timings { start_ns: Some(1_000_000_000), first_byte_ns: Some(1_300_000_000), end_ns: 3_000_000_000 },
        usage: Usage { input: 10, cache_read: 200, cache_write: 30, cache_write_1h: 0, output: 40, reasoning: 5 },
        usage_seen: true,
        tool_calls: Vec::new(),
        mcp_calls: Vec::new(),
    }
}

fn settings(endpoint: &str, queue: usize) -> Settings {
    let cfg = OtlpConfig {
        endpoint: Some(endpoint.into()),
        metric_export_interval_ms: Some(100),
        timeout_ms: Some(500),
        spans: true,
        logs: true,
        queue,
        ..OtlpConfig::default()
    };
    Settings::resolve(&cfg, &|_| None).unwrap().unwrap()
}

fn counted() -> Counted {
    Counted { agent: "claude-code".into(), model: "claude-sonnet-4-5".into() }
}

/// Reads one HTTP request: (request line, headers, body).
fn read_request(stream: &mut std::net::TcpStream) -> (String, Vec<String>, Vec<u8>) {
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        headers.push(h.trim().to_ascii_lowercase());
    }
    let len = headers.iter().find_map(|h| h.strip_prefix("content-length: ")).map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (line.trim().to_owned(), headers, body)
}

#[test]
fn http_protobuf_reaches_the_collector_with_the_signal_paths() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", l.local_addr().unwrap());
    let registry = Arc::new(Metrics::default());
    let o = Otlp::start(&settings(&endpoint, 16), registry.clone(), "test-host").unwrap();
    o.on_exchange(&counted(), &exchange(), Some(guard_core::cost::Cost::Usd(0.25)));
    l.set_nonblocking(false).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    while !(seen.contains("POST /v1/metrics HTTP/1.1") && seen.contains("POST /v1/traces HTTP/1.1")) {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (line, headers, body) = read_request(&mut s);
        assert!(headers.iter().any(|h| h == "content-type: application/x-protobuf"), "{headers:?}");
        assert!(!body.is_empty(), "{line}: empty body");
        // The span's model and the resource's host travel as protobuf strings.
        if line.contains("/v1/traces") {
            let text = String::from_utf8_lossy(&body);
            assert!(text.contains("chat claude-sonnet-4-5") && text.contains("test-host"), "{text}");
        }
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n").unwrap();
        seen.insert(line);
    }
    o.shutdown();
    let text = registry.encode();
    assert!(text.contains("guard_otlp_dropped_total{signal=\"spans\"} 0"), "{text}");
}

#[test]
fn a_dead_collector_never_holds_the_caller_and_every_span_lost_is_counted() {
    // A port nothing listens on: every export fails at once.
    let endpoint = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let registry = Arc::new(Metrics::default());
    let o = Otlp::start(&settings(&endpoint, 4), registry.clone(), "h").unwrap();
    for _ in 0..100 {
        o.on_exchange(&counted(), &exchange(), Some(guard_core::cost::Cost::Usd(0.25)));
    }
    std::thread::sleep(Duration::from_millis(300));
    o.shutdown();
    let text = registry.encode();
    // Each span either did not fit the queue or went down with its failed export: all 100.
    assert!(text.contains("guard_otlp_dropped_total{signal=\"spans\"} 100"), "{text}");
    let failures = text
        .lines()
        .find_map(|l| l.strip_prefix("guard_otlp_export_failures_total{signal=\"metrics\"} "))
        .map(|v| v.parse::<u64>().unwrap())
        .unwrap();
    assert!(failures >= 1, "{text}");
}
