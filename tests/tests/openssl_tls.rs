//! Privileged end-to-end: a Rust client on the `openssl` crate with OpenSSL 3 vendored (statically
//! linked, as in Copilot CLI's addon), for two OpenSSL minors (3.2 and 3.5), stripped. guard finds
//! SSL_write_ex/SSL_read_ex (and SSL_read) by structure, with no per-version table, and must
//! decode exactly the usage the mock server sent, every chunk from the `_ex` functions the
//! `openssl` crate calls. Then 500 requests on one connection: each seen once.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{io::Write as _, process::Stdio, time::Duration};

use guard_core::{
    events::TlsFunc,
    hooks::{Analysis, Found, HookKind, Library, Strategy},
};
use guard_tests::{
    assert_only_funcs, client_exchanges, connections_of,
    daemon::Daemon,
    exchanges,
    mock::{MockLlm, assert_usage_matches, run_client},
    openssl, privileged,
};

fn found(path: &std::path::Path) -> Found {
    match guard_core::hooks::analyse(&std::fs::read(path).unwrap()).unwrap() {
        Analysis::Found(f) => f,
        other => panic!("{}: {other:?}", path.display()),
    }
}

/// The stripped build is hooked by structure at exactly the places the symbol table of the same
/// build names (SSL_free aside: the structural strategy does not look for it).
fn assert_structural_is_the_symbol_table(c: &openssl::Client) {
    let s = found(&c.stripped);
    assert_eq!(
        (s.library, s.strategy),
        (Library::Openssl, Strategy::Structural),
        "OpenSSL {}",
        c.openssl
    );
    let mut by_symbols: Vec<_> = found(&c.full)
        .hooks
        .into_iter()
        .filter(|h| h.kind != HookKind::SslFree)
        .map(|h| (h.offset, h.kind))
        .collect();
    let mut by_structure: Vec<_> = s.hooks.iter().map(|h| (h.offset, h.kind)).collect();
    by_symbols.sort_by_key(|h| h.0);
    by_structure.sort_by_key(|h| h.0);
    assert_eq!(by_structure, by_symbols, "OpenSSL {}", c.openssl);
    assert!(
        by_structure.iter().any(|h| h.1 == HookKind::SslWriteEx)
            && by_structure.iter().any(|h| h.1 == HookKind::SslReadEx),
        "the functions the openssl crate calls: {by_structure:?}"
    );
}

/// Lets guard hook a binary (an idle process of it, waiting on stdin) before any call: a debug
/// build's scanning thread may be busy with other new binaries on a shared machine.
fn hook_first(d: &mut Daemon, mock: &MockLlm, c: &openssl::Client) {
    let mut idle = openssl::repeat(&c.stripped, mock, 0)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let line = d.wait_for(
        &format!("{}/osslclient-stripped", c.tag),
        Duration::from_secs(120),
    );
    assert!(
        line.contains("Openssl") && line.contains("Structural"),
        "attached by structure: {line}"
    );
    let _ = idle.kill();
    let _ = idle.wait();
}

#[test]
fn openssl_static_stripped_usage_is_exact_on_two_minors() {
    if !privileged() {
        return;
    }
    let clients = openssl::clients();
    for c in clients {
        assert_structural_is_the_symbol_table(c);
    }
    let mock = MockLlm::start();
    let mut d = Daemon::start("openssl-llm");
    for c in clients {
        hook_first(&mut d, &mock, c);
    }
    let mut runs = Vec::new();
    for c in clients {
        for enc in ["", "gzip"] {
            let run = run_client(&mut openssl::llm(&c.stripped, &mock, enc));
            assert_eq!(run.calls.len(), 5, "OpenSSL {}", c.openssl);
            let want = (!enc.is_empty()).then(|| enc.to_string());
            assert!(
                run.calls.iter().all(|x| x.encoding == want),
                "{enc:?}: {:#?}",
                run.calls
            );
            runs.push(run);
        }
    }
    let events = d.stop();
    let all = exchanges(&events);
    for run in &runs {
        assert_usage_matches(&all, run);
        let conns = connections_of(&events, run.pid);
        assert_eq!(conns.len(), 1, "one keep-alive connection");
        for (_, c) in conns {
            assert_eq!(c.gaps, 0);
            // The openssl crate calls SSL_write_ex and SSL_read_ex: every chunk came from them.
            assert_only_funcs(&c, TlsFunc::SslWriteEx, TlsFunc::SslReadEx);
        }
    }
}

#[test]
fn openssl_static_stripped_five_hundred_requests_each_seen_once() {
    if !privileged() {
        return;
    }
    // The mock answers in two TCP writes, so each request waits out a delayed ACK (~40 ms).
    const N: u32 = 500;
    let c = &openssl::clients()[1];
    let mock = MockLlm::start();
    let mut d = Daemon::start("openssl-loop");
    let mut child = openssl::repeat(&c.stripped, &mock, N)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    d.wait_for(
        &format!("{}/osslclient-stripped", c.tag),
        Duration::from_secs(120),
    );
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the client failed under the probes: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), N.to_string());
    let events = d.stop();
    let seen = client_exchanges(&events, pid);
    assert_eq!(seen.len(), N as usize, "every request seen once");
    assert!(seen.iter().all(|x| x.path.as_deref() == Some("/v1/models")
        && x.status == Some(200)
        && x.complete
        && !x.inference));
}
