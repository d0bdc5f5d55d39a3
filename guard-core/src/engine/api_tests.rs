//! Agents' HTTPS requests through the whole engine: TLS plaintext of an HTTP/1.1 and an HTTP/2
//! DELETE in, one audit record out; nothing for outsiders, reads, or the LLM API; no secret of
//! the request in the record; a replay of the recording gives the same records.

use std::time::UNIX_EPOCH;

use super::*;
use crate::{
    audit::{Action, ApiCallRecord},
    events::{ConnId, Direction, TlsData, TlsFunc},
    govern::NoLookup,
};

const TOKEN: &str = "Bearer eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2Vu";

/// Claude Code (pid 9), a script it runs (pid 10), and a human's script (pid 20).
fn engine(record: bool) -> (Engine, Outputs) {
    let mut e = Engine::new(EngineConfig { record, ..EngineConfig::default() });
    let mut out = Outputs::default();
    let p = |pid, ppid, exe: &str, argv: &[&str]| SeedProcess {
        pid,
        ppid,
        start_ticks: u64::from(pid),
        exe: Some(exe.into()),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        ..SeedProcess::default()
    };
    e.start(
        vec![
            p(1, 0, "/usr/lib/systemd/systemd", &["systemd"]),
            p(9, 1, "/usr/bin/claude", &["claude"]),
            p(10, 9, "/usr/bin/python3", &["python3", "cleanup.py"]),
            p(20, 1, "/usr/bin/python3", &["python3", "cleanup.py"]),
        ],
        &mut out,
    );
    (e, out)
}

fn write(pid: u32, conn: u64, offset: u64, ts_ns: u64, data: &[u8]) -> Event {
    Event::TlsData(TlsData {
        ts_ns,
        tid: pid,
        conn: ConnId { pid, conn },
        dir: Direction::Write,
        func: TlsFunc::SslWrite,
        offset,
        call_len: data.len() as u32,
        target: 0,
        paused: false,
        data: bytes::Bytes::copy_from_slice(data),
    })
}

/// An HTTP/1.1 request with a bearer token, a query token and a JSON body.
fn http1(method: &str, host: &str, target: &str) -> Vec<u8> {
    let body = r#"{"kind":"DeleteOptions","gracePeriodSeconds":0,"note":"body-secret-9f2c"}"#;
    format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An HTTP/2 client's first bytes: the preface, SETTINGS, and one HEADERS frame (END_STREAM,
/// END_HEADERS) whose fields are HPACK literals without indexing (RFC 7541 §6.2.2).
fn http2(method: &str, authority: &str, path: &str) -> Vec<u8> {
    let mut block = Vec::new();
    for (n, v) in [(":method", method), (":scheme", "https"), (":authority", authority), (":path", path), ("authorization", TOKEN)] {
        block.push(0x00);
        block.push(n.len() as u8);
        block.extend_from_slice(n.as_bytes());
        block.push(v.len() as u8);
        block.extend_from_slice(v.as_bytes());
    }
    let mut b = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    b.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    let len = block.len() as u32;
    b.extend_from_slice(&len.to_be_bytes()[1..]);
    b.extend_from_slice(&[0x1, 0x5, 0, 0, 0, 1]);
    b.extend_from_slice(&block);
    b
}

fn api_calls(out: &Outputs) -> Vec<ApiCallRecord> {
    out.governed.iter().filter_map(|g| if let Governed::ApiCall(r) = g { Some(r.clone()) } else { None }).collect()
}

fn push_all(e: &mut Engine, out: &mut Outputs, events: Vec<Event>) -> Vec<ApiCallRecord> {
    out.clear();
    for ev in events {
        e.push(ev, UNIX_EPOCH, &mut NoLookup, out);
    }
    api_calls(out)
}

const NS_DELETE: &str = "/api/v1/namespaces/prod?gracePeriodSeconds=0&token=query-secret-77";

#[test]
fn an_agents_http1_delete_is_one_record_as_soon_as_the_request_is_whole() {
    let (mut e, mut out) = engine(false);
    let req = http1("DELETE", "10.0.0.1:6443", NS_DELETE);
    // The head and part of the body: not whole yet.
    assert!(push_all(&mut e, &mut out, vec![write(10, 1, 0, 100, &req[..req.len() - 5])]).is_empty());
    let got = push_all(&mut e, &mut out, vec![write(10, 1, (req.len() - 5) as u64, 101, &req[req.len() - 5..])]);
    assert_eq!(got.len(), 1, "{:?}", out.governed);
    let r = &got[0];
    assert_eq!((r.agent.as_deref(), r.pid, r.rule_id.as_str(), r.action), (Some("claude-code"), 10, "k8s.api-delete-namespace", Action::WouldBlock));
    assert_eq!((r.request.method.as_str(), r.request.host.as_str()), ("DELETE", "10.0.0.1"));
    assert_eq!(r.request.path, "/api/v1/namespaces/prod?gracePeriodSeconds&token");
    assert_eq!(r.process_chain, ["systemd", "claude", "python3"]);
    let json = serde_json::to_string(&out.governed).unwrap();
    for secret in ["eyJhbGciOiJSUzI1NiJ9", "query-secret-77", "body-secret-9f2c", "DeleteOptions"] {
        assert!(!json.contains(secret), "{secret} in {json}");
    }
}

#[test]
fn an_agents_http2_delete_is_one_record() {
    let (mut e, mut out) = engine(false);
    let got = push_all(&mut e, &mut out, vec![write(10, 2, 0, 100, &http2("DELETE", "api.github.com", "/repos/acme/infra?access_token=query-secret-77"))]);
    assert_eq!(got.len(), 1, "{:?}", out.pipeline);
    assert_eq!((got[0].rule_id.as_str(), got[0].request.path.as_str()), ("github.delete-repo", "/repos/acme/infra?access_token"));
    let json = serde_json::to_string(&got[0]).unwrap();
    assert!(!json.contains("query-secret-77") && !json.contains("eyJhbGciOiJSUzI1NiJ9"), "{json}");
}

#[test]
fn outsiders_reads_and_the_llm_api_give_nothing() {
    let (mut e, mut out) = engine(false);
    // The same DELETE from a script no agent started.
    assert!(push_all(&mut e, &mut out, vec![write(20, 1, 0, 100, &http1("DELETE", "10.0.0.1:6443", NS_DELETE))]).is_empty());
    assert!(push_all(&mut e, &mut out, vec![write(20, 2, 0, 100, &http2("DELETE", "api.github.com", "/repos/acme/infra"))]).is_empty());
    // A read of the same resource by the agent's script.
    assert!(push_all(&mut e, &mut out, vec![write(10, 3, 0, 100, &http1("GET", "10.0.0.1:6443", NS_DELETE))]).is_empty());
    assert!(push_all(&mut e, &mut out, vec![write(10, 4, 0, 100, &http2("GET", "api.github.com", "/repos/acme/infra"))]).is_empty());
    // The LLM API's own DELETE (a file) from the agent.
    assert!(push_all(&mut e, &mut out, vec![write(9, 5, 0, 100, &http1("DELETE", "api.openai.com", "/v1/files/file-abc"))]).is_empty());
    // And a routine write.
    assert!(push_all(&mut e, &mut out, vec![write(10, 6, 0, 100, &http1("POST", "10.0.0.1:6443", "/apis/apps/v1/namespaces/prod/deployments"))]).is_empty());
}

#[test]
fn a_replay_of_the_recording_gives_the_same_records() {
    let (mut e, mut out) = engine(true);
    let mut recorded = std::mem::take(&mut out.recorded);
    let mut run = Vec::new();
    for ev in [write(10, 1, 0, 100, &http1("DELETE", "10.0.0.1:6443", NS_DELETE)), write(10, 2, 0, 200, &http2("DELETE", "api.github.com", "/repos/acme/infra"))] {
        out.clear();
        e.push(ev, UNIX_EPOCH, &mut NoLookup, &mut out);
        recorded.append(&mut out.recorded);
        run.extend(api_calls(&out));
    }
    assert_eq!(run.len(), 2);
    let mut again = Engine::new(EngineConfig::default());
    let (mut replay, mut got) = (Replay::default(), Vec::new());
    for line in recorded {
        out.clear();
        replay.push(line, &mut again, UNIX_EPOCH, &mut out);
        got.extend(api_calls(&out));
    }
    out.clear();
    replay.flush(&mut again, UNIX_EPOCH, &mut out);
    got.extend(api_calls(&out));
    assert_eq!(got, run);
}
