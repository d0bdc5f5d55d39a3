//! An HTTPS client on reqwest + rustls, shaped like Codex CLI's (tokio multi-threaded runtime),
//! for guard's end-to-end tests of the rustls hooks. Built in several configurations (one
//! directory each, with a committed Cargo.lock): rustls 0.23 with aws-lc-rs, rustls 0.23 with
//! ring, and rustls 0.22 with aws-lc-rs; the tests strip a copy of each.
//!
//!   rustlsclient llm  BASE CA_FILE [encoding]  five LLM calls on one keep-alive connection,
//!                                              one JSON line each, like the other test clients
//!   rustlsclient loop BASE CA_FILE N CONC      N GETs of /v1/models over CONC concurrent
//!                                              connections; prints how many got a 200
//!
//!   rustlsclient ws / ws-server ...            (feature `ws`: see ws.rs)
//!
//! `RUSTLSCLIENT_HTTP2=1`: HTTP/2 (ALPN h2) instead of HTTP/1.1. `RUSTLSCLIENT_TLS12=1`: TLS 1.2
//! only (AES-GCM records go through `EVP_AEAD_CTX_seal_scatter`). `RUSTLSCLIENT_WAIT_STDIN=1`:
//! wait for a line on stdin before any connection. `MOCK_CLIENT_DELAY_MS`: sleep first.

use std::{io::BufReader, process::exit, sync::Arc};

#[cfg(feature = "ws")]
mod ws;

#[cfg(feature = "ring-provider")]
pub(crate) use rustls::crypto::ring::default_provider;
#[cfg(not(feature = "ring-provider"))]
pub(crate) use rustls::crypto::aws_lc_rs::default_provider;

pub(crate) fn fail(msg: impl std::fmt::Debug) -> ! {
    eprintln!("rustlsclient: {msg:?}");
    exit(1)
}

fn http2() -> bool {
    std::env::var_os("RUSTLSCLIENT_HTTP2").is_some()
}

/// A TLS configuration that trusts only the mock's certificate, offering `alpn`.
fn tls_config(ca_file: &str, alpn: &[u8]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::File::open(ca_file).unwrap_or_else(|e| fail(e));
    for cert in rustls_pemfile::certs(&mut BufReader::new(pem)) {
        roots.add(cert.unwrap_or_else(|e| fail(e))).unwrap_or_else(|e| fail(e));
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()));
    let builder = if std::env::var_os("RUSTLSCLIENT_TLS12").is_some() {
        builder.with_protocol_versions(&[&rustls::version::TLS12])
    } else {
        builder.with_safe_default_protocol_versions()
    };
    let mut tls = builder
        .unwrap_or_else(|e| fail(e))
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    tls
}

/// A reqwest client over [`tls_config`].
fn client(ca_file: &str) -> reqwest::Client {
    let tls = tls_config(ca_file, if http2() { b"h2" } else { b"http/1.1" });
    let b = reqwest::Client::builder().use_preconfigured_tls(tls);
    let b = if http2() { b.http2_prior_knowledge() } else { b.http1_only() };
    b.build().unwrap_or_else(|e| fail(e))
}

async fn llm(base: &str, ca: &str, enc: &str) {
    let msg = r#""messages":[{"role":"user","content":"Hi"}]"#;
    let calls = [
        ("anthropic", false, "/v1/messages", format!(r#"{{"model":"claude-sonnet-4-5","max_tokens":64,{msg}}}"#)),
        ("anthropic", true, "/v1/messages", format!(r#"{{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,{msg}}}"#)),
        ("openai_chat", false, "/v1/chat/completions", format!(r#"{{"model":"gpt-4o",{msg}}}"#)),
        (
            "openai_chat",
            true,
            "/v1/chat/completions",
            format!(r#"{{"model":"gpt-4o","stream":true,"stream_options":{{"include_usage":true}},{msg}}}"#),
        ),
        ("openai_responses", true, "/v1/responses", r#"{"model":"gpt-5","input":"Hi","stream":true}"#.to_string()),
    ];
    let c = client(ca);
    for (provider, streamed, path, body) in calls {
        let mut req = c
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .header("x-mock-usage", "input=300,output=40,cache_read=100,reasoning=12");
        if !enc.is_empty() {
            req = req.header("accept-encoding", enc).header("x-mock-encoding", enc);
        }
        let r = req.body(body).send().await.unwrap_or_else(|e| fail(e));
        let status = r.status().as_u16();
        let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let usage = header("x-mock-usage-normalised").unwrap_or_else(|| fail("no x-mock-usage-normalised"));
        let encoding = header("content-encoding").map_or("null".to_string(), |e| format!("\"{e}\""));
        let body = r.bytes().await.unwrap_or_else(|e| fail(e));
        println!(
            r#"{{"client":"rustls","provider":"{provider}","streamed":{streamed},"status":{status},"encoding":{encoding},"inference":true,"usage":{usage},"body_bytes":{}}}"#,
            body.len()
        );
    }
}

async fn repeat(base: &str, ca: &str, n: usize, conc: usize) {
    let mut tasks = Vec::new();
    for t in 0..conc {
        // A client per task: its own connection, so that guard must keep the connections apart.
        let c = client(ca);
        let url = format!("{base}/v1/models");
        let share = n / conc + usize::from(t < n % conc);
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            for _ in 0..share {
                let r = c.get(&url).send().await.unwrap_or_else(|e| fail(e));
                let good = r.status().as_u16() == 200;
                let _ = r.bytes().await.unwrap_or_else(|e| fail(e));
                ok += usize::from(good);
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap_or_else(|e| fail(e));
    }
    println!("{ok}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        fail("usage: rustlsclient llm|loop BASE CA_FILE [encoding|N CONC]");
    }
    if let Some(ms) = std::env::var("MOCK_CLIENT_DELAY_MS").ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    if std::env::var_os("RUSTLSCLIENT_WAIT_STDIN").is_some() {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    let (mode, base, ca) = (&args[1], args[2].trim_end_matches('/'), &args[3]);
    let num = |i: usize| args.get(i).and_then(|v| v.parse().ok()).unwrap_or_else(|| fail("loop needs N and CONC"));
    match mode.as_str() {
        "llm" => llm(base, ca, args.get(4).map_or("", String::as_str)).await,
        "loop" => repeat(base, ca, num(4), num(5)).await,
        #[cfg(feature = "ws")]
        "ws" => ws::client(base, tls_config(ca, b"http/1.1"), num(4)).await,
        #[cfg(feature = "ws")]
        "ws-server" => ws::server(&args[2], ca).await,
        other => fail(format!("unknown mode {other:?}")),
    }
}
