//! Privileged end-to-end with the real Codex CLI from npm: a stripped static-pie Rust binary
//! whose model traffic goes through rustls on aws-lc-rs. guard finds the AEAD hooks by
//! structure, verifies them on Codex's own traffic, and must attribute the Responses calls to
//! `codex` with the usage Codex itself reports, over HTTPS and over its WebSocket transport.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use guard_core::{
    events::{Event, TlsFunc},
    hooks::{Analysis, HookKind},
    protocols::Exchange,
    providers::Provider,
};
use guard_tests::{
    client_exchanges, codex, connections_of,
    daemon::Daemon,
    mock::MockLlm,
    privileged, rustls,
    scrape::{metrics_addr, samples, scrape},
    temp_path,
};

#[test]
fn codex_responses_call_is_seen_with_its_usage() {
    if !privileged() {
        return;
    }
    let bin = codex_with_aead_hooks();
    let mock = MockLlm::start();
    let provider = codex::Provider::mock(&mock);
    let home = temp_path("codex-home");
    let mut d = Daemon::start_with("codex", &["--metrics-addr", "127.0.0.1:0", "--log-format", "json"]);
    let addr = metrics_addr(&d);
    hook(&mut d, &bin, &home, &provider);
    let (pid, total) = run(&bin, &home, &provider);
    // The file carries two TLS libraries, both found by structure: the targets gauge counts it
    // under each (refreshed every 2 s).
    let want = ["openssl", "rustls"].map(|l| format!(r#"guard_tls_targets_attached{{library="{l}",strategy="structural"}}"#));
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = samples(&scrape(&addr).1);
        if want.iter().all(|k| m.get(k) >= Some(&1.0)) || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for k in &want {
        assert!(m.get(k) >= Some(&1.0), "{k}: {m:#?}");
    }
    let (events, log) = d.stop_with_log();
    assert_seen(&events, &log, pid);

    let calls: Vec<_> = client_exchanges(&events, pid).into_iter().filter(|x| x.inference).collect();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let x = &calls[0];
    assert_eq!((x.provider, x.path.as_deref(), x.model.as_deref()), (Provider::OpenaiResponses, Some("/v1/responses"), Some("gpt-5")));
    assert!(x.complete && x.streamed, "{x:#?}");
    // The mock answers with output 7 and input = the request's size; Codex prints their sum.
    assert_eq!(x.usage.output, 7, "{x:#?}");
    assert_eq!(total_of(&calls), total, "{x:#?}");
}

/// Codex's own WebSocket transport for the Responses API (`supports_websockets`): the upgrade
/// to `/v1/responses`, then `response.create` messages and their events, deflated. The server is
/// the stripped yawc test server (rustls + aws-lc-rs too, in its own process).
#[test]
fn codex_over_its_websocket_transport_is_seen_with_its_usage() {
    if !privileged() {
        return;
    }
    let bin = codex_with_aead_hooks();
    let server_bin = &rustls::clients()[0].stripped;
    let (cert, key) = guard_tests::self_signed("codex-ws");

    let mut d = Daemon::start("codex-ws");
    let mut server = rustls::ws_server(server_bin, &cert, &key);
    d.wait_attached(server_bin, Duration::from_secs(60));
    let url = rustls::ws_url(&mut server);
    let base = url.replacen("wss://", "https://", 1).replace("/responses", "");
    let provider = codex::Provider { base: &base, ca: &cert, websockets: true };
    let home = temp_path("codex-ws-home");
    hook(&mut d, &bin, &home, &provider);
    let (pid, total) = run(&bin, &home, &provider);
    let _ = server.kill();
    let _ = server.wait();
    let (events, log) = d.stop_with_log();
    assert_seen(&events, &log, pid);

    let mine = client_exchanges(&events, pid);
    let upgrades: Vec<_> = mine.iter().filter(|x| x.status == Some(101)).collect();
    assert_eq!(upgrades.len(), 1, "one WebSocket: {mine:#?}");
    assert_eq!(upgrades[0].path.as_deref(), Some("/v1/responses"), "{:#?}", upgrades[0]);
    // Codex sends two `response.create` messages: its start-up warmup on the new socket
    // (`startup_prewarm_websocket_warmup`), then the turn, which continues from it and carries
    // only the new input. It counts the turn alone in "tokens used".
    let calls: Vec<_> = mine.iter().filter(|x| x.inference).cloned().collect();
    assert_eq!(calls.len(), 2, "{mine:#?}");
    for x in &calls {
        assert_eq!((x.provider, x.model.as_deref()), (Provider::OpenaiResponses, Some("gpt-5")), "{x:#?}");
        assert!(x.complete && x.streamed && x.usage_seen, "{x:#?}");
        // The server answers every `response.create` with output 7 and input = its size.
        assert_eq!(x.usage.output, 7, "{x:#?}");
    }
    assert_eq!(total_of(&calls[1..]), total, "{calls:#?}");
    assert!(calls[0].usage.input > calls[1].usage.input, "the turn sends less than the warmup: {calls:#?}");
    // Deflate was negotiated, and Codex's first message went out compressed (FIN, RSV1, text).
    let ws = connections_of(&events, pid).into_values().find(|c| c.write.starts_with(b"GET /v1/responses")).unwrap();
    let head = ws.write.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(String::from_utf8_lossy(&ws.write[..head]).contains("permessage-deflate"));
    assert_eq!(ws.write[head], 0xC1, "a compressed text frame");
}

/// The model's tool call over Codex's WebSocket transport: the server answers the first turn
/// with a call of Codex's shell tool (`call_ws_mock`) running a (fake) `terraform destroy`; Codex
/// runs it, and the audit record of that command names the call.
#[test]
fn codex_over_its_websocket_transport_links_the_command_to_the_tool_call() {
    if !privileged() {
        return;
    }
    let bin = codex_with_aead_hooks();
    let server_bin = &rustls::clients()[0].stripped;
    let (cert, key) = guard_tests::self_signed("codex-ws-call");
    let f = guard_tests::gate::Fixture::create();
    let cmd = format!("{} destroy -auto-approve", f.bin().join("terraform").display());

    let (args, audit) = guard_tests::gate::daemon_args("codex-ws-call", "monitor", &[], 250, "open");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut d = Daemon::start_with("codex-ws-call", &args);
    let mut server = rustls::ws_server_calling(server_bin, &cert, &key, &cmd);
    d.wait_attached(server_bin, Duration::from_secs(60));
    let url = rustls::ws_url(&mut server);
    let base = url.replacen("wss://", "https://", 1).replace("/responses", "");
    let provider = codex::Provider { base: &base, ca: &cert, websockets: true };
    let home = temp_path("codex-ws-call-home");
    hook(&mut d, &bin, &home, &provider);
    let out = codex::exec(&bin, &home, &provider, &["--sandbox", "danger-full-access", "clean up the infrastructure"])
        .current_dir(f.work())
        .env("PATH", f.path_env())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "codex failed: {text}");
    assert!(!text.contains("Falling back from WebSockets"), "{text}");
    std::thread::sleep(Duration::from_millis(1500));
    d.stop();
    let records = guard_tests::gate::audit_records(&audit);
    let mine: Vec<_> = records.iter().filter(|r| r["rule_id"] == "iac.terraform-destroy").collect();
    assert!(!mine.is_empty(), "Codex ran the call: {text}\n{records:#?}");
    for r in mine {
        assert_eq!(r["agent"], "codex", "{r:#}");
        let by = &r["proposed_by"];
        assert_eq!((by["provider"].as_str(), by["call_id"].as_str()), (Some("openai_responses"), Some("call_ws_mock")), "{r:#}");
    }
}

/// The Codex binary, after checking that analysis finds its AEAD hooks.
fn codex_with_aead_hooks() -> std::path::PathBuf {
    let bin = codex::codex();
    let Analysis::Found(found) = guard_core::hooks::analyse(&std::fs::read(&bin).unwrap()).unwrap() else {
        panic!("no hooks in {}", bin.display())
    };
    for k in [HookKind::AeadSeal, HookKind::AeadOpen, HookKind::ProgramStart] {
        assert!(found.hooks.iter().any(|h| h.kind == k), "{k:?}: {found:?}");
    }
    bin
}

/// An idle Codex (reading its prompt from stdin) lets guard hook the file before the run.
fn hook(d: &mut Daemon, bin: &Path, home: &Path, provider: &codex::Provider<'_>) {
    let mut idle = codex::exec(bin, home, provider, &["-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    d.wait_attached(bin, Duration::from_secs(120));
    let _ = idle.kill();
    let _ = idle.wait();
}

/// `codex exec "say hi"`: its pid and the token total it prints.
fn run(bin: &Path, home: &Path, provider: &codex::Provider<'_>) -> (u32, u64) {
    let child = codex::exec(bin, home, provider, &["say hi"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "codex failed: {text}");
    assert!(!text.contains("Falling back from WebSockets"), "{text}");
    let total = codex::tokens_used(&text).unwrap_or_else(|| panic!("no token count in: {text}"));
    (pid, total)
}

/// Codex's hooks were verified by its own traffic, its exchanges attributed to it, and every
/// chunk of its connections came from the AEAD hooks without a gap.
fn assert_seen(events: &[Event], log: &[String], pid: u32) {
    assert!(log.iter().any(|l| l.contains("TLS hook verified")), "Codex's hooks were verified by its traffic");
    assert!(
        log.iter().any(|l| l.contains("exchange") && l.contains(r#""codex""#) && l.contains("OpenaiResponses")),
        "attributed to Codex"
    );
    for (_, c) in connections_of(events, pid) {
        assert_eq!(c.gaps, 0);
        assert!(c.funcs.iter().all(|f| matches!(f, TlsFunc::AeadSeal | TlsFunc::AeadOpen)), "{:?}", c.funcs);
    }
}

/// The total Codex prints: input, cached input and output of every call.
fn total_of(calls: &[Exchange]) -> u64 {
    calls.iter().map(|x| x.usage.input + x.usage.cache_read + x.usage.output).sum()
}
