//! Privileged end-to-end with the real Codex CLI from npm: a stripped static-pie Rust binary
//! whose model traffic goes through rustls on aws-lc-rs. guard finds the AEAD hooks by
//! structure, verifies them on Codex's own traffic, and must attribute the Responses call to
//! `codex` with the usage Codex itself reports.
#![allow(clippy::unwrap_used)]

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use guard::{
    events::TlsFunc,
    hooks::{Analysis, HookKind},
    providers::Provider,
};
use guard_tests::{
    client_exchanges, codex, connections_of,
    daemon::Daemon,
    mock::MockLlm,
    privileged,
    scrape::{metrics_addr, samples, scrape},
    temp_path,
};

#[test]
fn codex_responses_call_is_seen_with_its_usage() {
    if !privileged() {
        return;
    }
    let bin = codex::codex();
    let Analysis::Found(found) = guard::hooks::analyse(&std::fs::read(&bin).unwrap()).unwrap() else {
        panic!("no hooks in {}", bin.display())
    };
    for k in [HookKind::AeadSeal, HookKind::AeadOpen, HookKind::ProgramStart] {
        assert!(found.hooks.iter().any(|h| h.kind == k), "{k:?}: {found:?}");
    }
    let mock = MockLlm::start();
    let home = temp_path("codex-home");
    let mut d = Daemon::start_with("codex", &["--metrics-addr", "127.0.0.1:0"]);
    let addr = metrics_addr(&d);
    // An idle Codex (reading its prompt from stdin) lets guard hook the file before the run.
    let mut idle = codex::exec(&bin, &home, &mock, &["-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    d.wait_attached(&bin, Duration::from_secs(120));
    let _ = idle.kill();
    let _ = idle.wait();

    let child = codex::exec(&bin, &home, &mock, &["say hi"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "codex failed: {text}");
    let total = codex::tokens_used(&text).unwrap_or_else(|| panic!("no token count in: {text}"));
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
    assert!(log.iter().any(|l| l.contains("TLS hook verified")), "Codex's hooks were verified by its traffic");
    assert!(
        log.iter().any(|l| l.contains("exchange") && l.contains(r#""codex""#) && l.contains("OpenaiResponses")),
        "attributed to Codex"
    );

    let calls: Vec<_> = client_exchanges(&events, pid).into_iter().filter(|x| x.inference).collect();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let x = &calls[0];
    assert_eq!((x.provider, x.path.as_deref(), x.model.as_deref()), (Provider::OpenaiResponses, Some("/v1/responses"), Some("gpt-5")));
    assert!(x.complete && x.streamed, "{x:#?}");
    // The mock answers with output 7 and input = the request's size; Codex prints their sum.
    assert_eq!(x.usage.output, 7, "{x:#?}");
    assert_eq!(x.usage.input + x.usage.cache_read + x.usage.output, total, "{x:#?}");
    for (_, c) in connections_of(&events, pid) {
        assert_eq!(c.gaps, 0);
        assert!(c.funcs.iter().all(|f| matches!(f, TlsFunc::AeadSeal | TlsFunc::AeadOpen)), "{:?}", c.funcs);
    }
}
