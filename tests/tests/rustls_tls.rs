//! Privileged end-to-end: Rust clients on reqwest + rustls, the way Codex CLI is built, in three
//! configurations (rustls 0.23 and 0.22 with aws-lc-rs, rustls 0.23 with ring), stripped and not.
//! guard finds aws-lc's AEAD entry points by structure with no per-version table, ties each
//! record to its socket, and must decode exactly the usage the mock server sent, over HTTP/1.1
//! and HTTP/2, TLS 1.3 and 1.2, every chunk from the AEAD hooks; with 8 connections at once, each request once.
//! The ring build has no aws-lc: guard must say it is blind to it, not pretend to see it.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{
    io::Write as _,
    process::Stdio,
    time::{Duration, Instant},
};

use guard_core::{
    events::TlsFunc,
    hooks::{Analysis, Found, Library, Miss, Strategy},
};
use guard_tests::{
    assert_only_funcs, client_exchanges, connections_of,
    daemon::Daemon,
    exchanges,
    mock::{MockLlm, assert_usage_matches, run_client},
    privileged, rustls,
    scrape::{metrics_addr, samples, scrape},
};

fn analyse(path: &std::path::Path) -> Analysis {
    guard_core::hooks::analyse(&std::fs::read(path).unwrap()).unwrap()
}

fn found(path: &std::path::Path) -> Found {
    match analyse(path) {
        Analysis::Found(f) => f,
        other => panic!("{}: {other:?}", path.display()),
    }
}

/// The stripped build is hooked by structure at exactly the places the unstripped build's
/// symbol table names.
fn assert_structural_is_the_symbol_table(c: &rustls::Client) {
    let s = found(&c.stripped);
    assert_eq!((s.library, s.strategy), (Library::Rustls, Strategy::Structural), "rustls {}", c.rustls);
    let f = found(&c.full);
    assert_eq!((f.library, f.strategy), (Library::Rustls, Strategy::Symtab), "rustls {}", c.rustls);
    assert_eq!(s.hooks, f.hooks, "rustls {}", c.rustls);
}

/// Waits until guard attaches to this file, as rustls.
fn wait_attached(d: &mut Daemon, bin: &std::path::Path) {
    let line = d.wait_attached(bin, Duration::from_secs(120));
    assert!(line.contains("Rustls"), "attached: {line}");
}

/// Lets guard hook a binary (an idle process of it, waiting on stdin) before any call.
fn hook_first(d: &mut Daemon, mock: &MockLlm, bin: &std::path::Path) {
    let mut idle = rustls::repeat(bin, mock, 0, 1).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    wait_attached(d, bin);
    let _ = idle.kill();
    let _ = idle.wait();
}

#[test]
fn rustls_aws_lc_usage_is_exact_on_two_minors_stripped_and_not() {
    if !privileged() {
        return;
    }
    let clients: Vec<_> = rustls::clients().iter().filter(|c| c.aws_lc).collect();
    for c in &clients {
        assert_structural_is_the_symbol_table(c);
    }
    let mock = MockLlm::start();
    let mock_h2 = MockLlm::start_h2();
    let mut d = Daemon::start_with("rustls-llm", &["--metrics-addr", "127.0.0.1:0", "--log-format", "json"]);
    let addr = metrics_addr(&d);
    let mut runs = Vec::new();
    for c in &clients {
        // Stripped first: its hooks are found by structure and go through verification.
        for bin in [&c.stripped, &c.full] {
            hook_first(&mut d, &mock, bin);
            let cases = [(&mock, "", false, false), (&mock, "gzip", false, false), (&mock_h2, "", true, false), (&mock, "", false, true)];
            for (m, enc, h2, tls12) in cases {
                let run = run_client(&mut rustls::llm(bin, m, enc, h2, tls12));
                assert_eq!(run.calls.len(), 5, "rustls {} {}", c.rustls, bin.display());
                let want = (!enc.is_empty()).then(|| enc.to_string());
                assert!(run.calls.iter().all(|x| x.encoding == want), "{enc:?}: {:#?}", run.calls);
                runs.push(run);
            }
        }
    }
    // Every process started after its file was hooked: no record without its socket. The
    // counters are refreshed every 2 s.
    std::thread::sleep(Duration::from_millis(2500));
    let m = samples(&scrape(&addr).1);
    for source in ["kernel_aead_unbound", "kernel_tls13_padding"] {
        assert_eq!(m.get(&format!(r#"guard_events_lost_total{{source="{source}"}}"#)), Some(&0.0), "{source}");
    }
    let (events, log) = d.stop_with_log();
    assert!(log.iter().any(|l| l.contains("TLS hook verified")), "the structural hooks were verified");
    assert!(!log.iter().any(|l| l.contains("TLS hook rejected")));
    let all = exchanges(&events);
    for run in &runs {
        assert_usage_matches(&all, run);
        // hyper may open a second connection when a request starts before the last response's
        // connection is back in the pool.
        let conns = connections_of(&events, run.pid);
        assert!(!conns.is_empty());
        for (_, c) in conns {
            assert_eq!(c.gaps, 0);
            assert_only_funcs(&c, TlsFunc::AeadSeal, TlsFunc::AeadOpen);
        }
    }
}

#[test]
fn rustls_eight_connections_at_once_each_request_seen_once() {
    if !privileged() {
        return;
    }
    const N: u32 = 400;
    const CONC: u32 = 8;
    let c = &rustls::clients()[0];
    let mock = MockLlm::start();
    let mut d = Daemon::start("rustls-loop");
    let mut child = rustls::repeat(&c.stripped, &mock, N, CONC)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_attached(&mut d, &c.stripped);
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the client failed under the probes: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), N.to_string());
    let events = d.stop();
    let conns = connections_of(&events, pid);
    // At least one connection per task; hyper reconnects when the mock closes one (about 13
    // connects for 400 requests under strace), so the exact number varies.
    assert!(conns.len() >= CONC as usize, "{:?}", conns.keys());
    assert!(conns.values().all(|c| c.gaps == 0));
    let seen = client_exchanges(&events, pid);
    assert_eq!(seen.len(), N as usize, "every request seen once");
    let bad: Vec<_> = seen
        .iter()
        .filter(|x| !(x.path.as_deref() == Some("/v1/models") && x.status == Some(200) && x.complete && !x.inference))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn rustls_on_ring_is_a_reported_blind_spot() {
    if !privileged() {
        return;
    }
    let c = rustls::clients().iter().find(|c| !c.aws_lc).unwrap();
    for bin in [&c.stripped, &c.full] {
        assert_eq!(analyse(bin), Analysis::Miss(Miss::Unhooked(Library::Rustls)), "{}", bin.display());
    }
    let mock = MockLlm::start();
    let d = Daemon::start_with("rustls-ring", &["--metrics-addr", "127.0.0.1:0", "--audit-log", "off", "--log-format", "json"]);
    let addr = metrics_addr(&d);
    // Installed as `codex` (a hard link), it is Codex CLI to guard.
    let codex = c.stripped.with_file_name("codex");
    if !codex.exists() {
        std::fs::hard_link(&c.stripped, &codex).unwrap();
    }
    let mut child = rustls::repeat(&codex, &mock, 100_000, 1)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    // The gauge is refreshed every 2 s while the client holds its connection.
    let blind = r#"guard_tls_blind_processes{agent="codex",reason="unhooked_rustls"}"#;
    let deadline = Instant::now() + Duration::from_secs(30);
    let m = loop {
        let m = samples(&scrape(&addr).1);
        if m.get(blind) == Some(&1.0) || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(m.get(blind), Some(&1.0), "{m:#?}");
    let events = d.stop();
    assert!(connections_of(&events, pid).is_empty(), "nothing of ring's traffic is claimed as seen");
}

/// The OpenAI Responses API over WebSocket with permessage-deflate, as Codex speaks it: yawc on
/// rustls + aws-lc-rs at both ends (the server another process of the same stripped binary).
/// guard must decode the compressed frames of each turn with exactly the usage the server sent.
#[test]
fn rustls_websocket_with_deflate_usage_is_exact() {
    if !privileged() {
        return;
    }
    const TURNS: usize = 3;
    let c = &rustls::clients()[0];
    let (cert, key) = guard_tests::self_signed("ws");

    let mut d = Daemon::start("rustls-ws");
    let mut server = rustls::ws_server(&c.stripped, &cert, &key);
    wait_attached(&mut d, &c.stripped);
    let url = rustls::ws_url(&mut server);
    let run = run_client(&mut rustls::ws(&c.stripped, &url, &cert, TURNS));
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(run.calls.len(), TURNS);
    let events = d.stop();

    let mine = client_exchanges(&events, run.pid);
    assert_eq!(mine.len(), TURNS + 1, "the upgrade and each turn: {mine:#?}");
    assert!(mine[0].status == Some(101) && !mine[0].inference, "{:#?}", mine[0]);
    for (x, call) in mine[1..].iter().zip(&run.calls) {
        let provider = serde_json::to_value(x.provider).unwrap();
        assert_eq!(provider.as_str(), Some("openai_responses"), "{x:#?}");
        assert!(x.inference && x.complete && x.usage_seen && x.streamed, "{x:#?}");
        let u = x.usage;
        assert_eq!([u.input, u.cache_read, u.cache_write, u.output, u.reasoning], call.usage, "{x:#?}");
    }
    let conns = connections_of(&events, run.pid);
    assert_eq!(conns.len(), 1);
    let conn = conns.values().next().unwrap();
    assert_eq!(conn.gaps, 0);
    assert_only_funcs(conn, TlsFunc::AeadSeal, TlsFunc::AeadOpen);
    // Deflate was negotiated, and the client's first message went out compressed (FIN, RSV1,
    // text: 0xC1).
    let head = conn.write.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(String::from_utf8_lossy(&conn.write[..head]).contains("permessage-deflate"));
    assert_eq!(conn.write[head], 0xC1, "a compressed text frame");
}
