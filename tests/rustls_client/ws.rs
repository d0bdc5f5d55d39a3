//! The OpenAI Responses API over WebSocket (`GET /v1/responses` upgraded, as Codex CLI speaks
//! it) with permessage-deflate, on yawc (crates.io's tungstenite has no permessage-deflate; yawc
//! does, with the same frame model). Both ends run on rustls + aws-lc-rs.
//!
//!   rustlsclient ws-server CERT KEY       serves wss on 127.0.0.1, prints `listening wss://...`;
//!                                         with WS_TOOL_CALL=CMD, the first turn that offers a
//!                                         shell tool gets a call of it running CMD (`call_ws_mock`)
//!   rustlsclient ws URL CA_FILE TURNS     TURNS `response.create` messages on one connection,
//!                                         one JSON line per turn with the usage the server sent

use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::Empty;
use hyper::{Request, Response, body::Incoming};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
use tokio::net::TcpListener;

use crate::{default_provider, fail};

/// Deflate every message, with context takeover: what Codex negotiates.
fn options() -> yawc::Options {
    yawc::Options::default().with_balanced_compression().with_compression_threshold(0)
}

/// The server's events for a request of `len` bytes: usage is input = len, output = 7.
fn events(len: usize, turn: usize) -> Vec<String> {
    vec![
        format!(r#"{{"type":"response.created","response":{{"id":"resp_{turn}","object":"response","model":"gpt-5-codex","status":"in_progress"}}}}"#),
        format!(r#"{{"type":"response.output_text.delta","item_id":"msg_{turn}","output_index":0,"content_index":0,"delta":"Sure, {}"}}"#, "done ".repeat(30)),
        format!(
            r#"{{"type":"response.completed","response":{{"id":"resp_{turn}","object":"response","model":"gpt-5-codex","status":"completed","usage":{{"input_tokens":{len},"input_tokens_details":{{"cached_tokens":0}},"output_tokens":7,"output_tokens_details":{{"reasoning_tokens":0}},"total_tokens":{}}}}}}}"#,
            len + 7
        ),
    ]
}

/// The shell tools Codex offers, and the arguments each takes for `cmd`.
fn shell_args(tool: &str, cmd: &str) -> Option<serde_json::Value> {
    match tool {
        "exec_command" => Some(serde_json::json!({ "cmd": cmd })),
        "shell_command" => Some(serde_json::json!({ "command": cmd })),
        "shell" => Some(serde_json::json!({ "command": ["bash", "-lc", cmd] })),
        _ => None,
    }
}

/// The events of a turn answered with a call of the first shell tool the request offers, running
/// WS_TOOL_CALL; `None` when it offers none (or the variable is unset).
fn tool_call_events(payload: &[u8], turn: usize) -> Option<Vec<String>> {
    let cmd = std::env::var("WS_TOOL_CALL").ok()?;
    let req: serde_json::Value = serde_json::from_slice(payload).ok()?;
    // Codex's start-up warmup (`generate: false`) asks for no output.
    if req["generate"] == false {
        return None;
    }
    let (name, args) = req["tools"].as_array()?.iter().find_map(|t| {
        let name = t["name"].as_str()?;
        Some((name.to_owned(), shell_args(name, &cmd)?))
    })?;
    let item = serde_json::json!({ "type": "function_call", "id": "fc_ws_mock", "call_id": "call_ws_mock", "name": name,
        "arguments": args.to_string(), "status": "completed" });
    let usage = serde_json::json!({ "input_tokens": payload.len(), "input_tokens_details": { "cached_tokens": 0 }, "output_tokens": 7,
        "output_tokens_details": { "reasoning_tokens": 0 }, "total_tokens": payload.len() + 7 });
    let resp = |status: &str, output: serde_json::Value| serde_json::json!({ "id": format!("resp_{turn}"), "object": "response",
        "model": "gpt-5-codex", "status": status, "output": output });
    let mut completed = resp("completed", serde_json::json!([item]));
    completed["usage"] = usage;
    Some(vec![
        serde_json::json!({ "type": "response.created", "response": resp("in_progress", serde_json::json!([])) }).to_string(),
        serde_json::json!({ "type": "response.output_item.added", "output_index": 0, "item": item }).to_string(),
        serde_json::json!({ "type": "response.output_item.done", "output_index": 0, "item": item }).to_string(),
        serde_json::json!({ "type": "response.completed", "response": completed }).to_string(),
    ])
}

async fn serve(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, yawc::WebSocketError> {
    let (resp, fut) = yawc::WebSocket::upgrade_with_options(&mut req, options())?;
    tokio::spawn(async move {
        let Ok(mut ws) = fut.await else { return };
        let (mut turn, mut called) = (0, false);
        while let Some(f) = ws.next().await {
            if f.opcode() != yawc::OpCode::Text {
                continue;
            }
            turn += 1;
            let call = if called { None } else { tool_call_events(f.payload(), turn) };
            called |= call.is_some();
            for e in call.unwrap_or_else(|| events(f.payload().len(), turn)) {
                if ws.send(yawc::Frame::text(e)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(resp)
}

pub async fn server(cert: &str, key: &str) {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert).unwrap_or_else(|e| fail(e)).collect::<Result<_, _>>().unwrap_or_else(|e| fail(e));
    let key = PrivateKeyDer::from_pem_file(key).unwrap_or_else(|e| fail(e));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| fail(e))
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap_or_else(|e| fail(e));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| fail(e));
    println!("listening wss://127.0.0.1:{}", listener.local_addr().unwrap_or_else(|e| fail(e)).port());
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let io = hyper_util::rt::TokioIo::new(tls);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, hyper::service::service_fn(serve))
                .with_upgrades()
                .await;
        });
    }
}

pub async fn client(url: &str, tls: rustls::ClientConfig, turns: usize) {
    let url = url.parse().unwrap_or_else(|e| fail(e));
    let mut ws = yawc::WebSocket::connect(url)
        .with_connector(tokio_rustls::TlsConnector::from(Arc::new(tls)))
        .with_options(options())
        .await
        .unwrap_or_else(|e| fail(e));
    for turn in 1..=turns {
        let create = format!(
            r#"{{"type":"response.create","model":"gpt-5-codex","input":[{{"type":"message","role":"user","content":[{{"type":"input_text","text":"turn {turn} {}"}}]}}],"stream":true}}"#,
            "lorem ipsum ".repeat(20 * turn)
        );
        ws.send(yawc::Frame::text(create)).await.unwrap_or_else(|e| fail(e));
        loop {
            let f = ws.next().await.unwrap_or_else(|| fail("connection closed"));
            let text = String::from_utf8_lossy(f.payload()).to_string();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| fail(e));
            if v["type"] != "response.completed" {
                continue;
            }
            let u = &v["response"]["usage"];
            let n = |p: &str| u.pointer(p).and_then(serde_json::Value::as_u64).unwrap_or(0);
            let (cached, reasoning) = (n("/input_tokens_details/cached_tokens"), n("/output_tokens_details/reasoning_tokens"));
            println!(
                r#"{{"client":"rustls-ws","provider":"openai_responses","streamed":true,"inference":true,"usage":{{"input":{},"cache_read":{cached},"output":{},"reasoning":{reasoning}}}}}"#,
                n("/input_tokens") - cached,
                n("/output_tokens") - reasoning
            );
            break;
        }
    }
    let _ = ws.send(yawc::Frame::close(yawc::close::CloseCode::Normal, b"done")).await;
}
