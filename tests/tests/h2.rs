//! Privileged end-to-end: curl (nghttp2) speaking HTTP/2 to the mock LLM server, three streamed
//! exchanges multiplexed on one TLS connection, captured by the real daemon. Each stream must
//! decode to its exchange with exactly the server's usage.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::process::Command;

use guard_core::protocols::{Role, exchange::Protocol};
use guard_tests::{daemon::Daemon, exchanges, mock::MockLlm, privileged};

#[test]
fn curl_http2_multiplexed_streams_decode_exactly() {
    if !privileged() {
        return;
    }
    let mock = MockLlm::start_h2();
    let d = Daemon::start("h2");
    let body = r#"{"model":"mock-1","max_tokens":16,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}],"input":"hi"}"#;
    let paths = ["/v1/messages", "/v1/chat/completions", "/v1/responses"];
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "--http2", "-Z", "--cacert"]).arg(&mock.ca_file);
    cmd.args(["-H", "content-type: application/json", "-H", "x-mock-usage: input=120,output=45,cache_read=30", "-d", body]);
    for p in paths {
        cmd.arg(format!("{}{p}", mock.base)).args(["-o", "/dev/null"]);
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    let all = exchanges(&d.stop());

    let mut mine: Vec<_> = all.iter().filter(|x| x.role == Role::Client && x.conn.is_some_and(|c| c.pid == pid)).collect();
    mine.sort_by_key(|x| x.path.clone());
    assert_eq!(mine.len(), 3, "{all:#?}");
    assert!(mine.iter().all(|x| x.conn == mine[0].conn), "one connection, three streams");
    let providers: Vec<String> = mine.iter().map(|x| serde_json::to_value(x.provider).unwrap().as_str().unwrap().to_owned()).collect();
    assert_eq!(providers, ["openai_chat", "anthropic", "openai_responses"]);
    for x in mine {
        assert_eq!(x.protocol, Protocol::Http2, "{x:#?}");
        assert!(x.inference && x.complete && x.streamed && x.usage_seen, "{x:#?}");
        assert_eq!(x.status, Some(200));
        assert_eq!(x.model.as_deref(), Some("mock-1"));
        let u = x.usage;
        assert_eq!([u.input, u.cache_read, u.cache_write, u.output, u.reasoning], [120, 30, 0, 45, 0], "{x:#?}");
    }
}
