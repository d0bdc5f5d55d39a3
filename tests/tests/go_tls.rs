//! Privileged end-to-end: a Go client (crypto/tls, statically linked) against the local mock LLM
//! server, built with symbols and with `-ldflags="-s -w"`. guard finds `(*Conn).Write`/`.Read`
//! through `.gopclntab`, hooks Read's RET instructions (no uretprobe), and must decode exactly
//! the usage the server sent. Then 10,000 requests on one connection: none lost, no crash.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{
    io::Write as _,
    process::Stdio,
    time::{Duration, Instant},
};

use guard_core::{
    events::TlsFunc,
    protocols::Role,
};
use guard_tests::{
    assert_only_funcs, connections_of,
    daemon::Daemon,
    exchanges, go,
    mock::{MockLlm, assert_usage_matches, run_client},
    privileged,
};

#[test]
fn go_client_usage_is_exact_with_and_without_symbols() {
    if !privileged() {
        return;
    }
    let (full, stripped) = go::clients();
    let mock = MockLlm::start();
    let mut d = Daemon::start("go-llm");
    // Let guard hook each binary (an idle process of it, waiting on stdin) before the calls: a
    // debug build's scanning thread may be busy with other new binaries on a shared machine.
    for (bin, name) in [(full, "goclient "), (stripped, "goclient-stripped ")] {
        let mut idle = go::repeat(bin, &mock, 0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        d.wait_for(name, Duration::from_secs(120));
        let _ = idle.kill();
        let _ = idle.wait();
    }
    let mut runs = Vec::new();
    for bin in [full, stripped] {
        for enc in ["", "gzip"] {
            let run = run_client(&mut go::llm(bin, &mock, enc));
            assert_eq!(run.calls.len(), 5);
            let want = (!enc.is_empty()).then(|| enc.to_string());
            assert!(
                run.calls.iter().all(|c| c.encoding == want),
                "{enc:?}: {:#?}",
                run.calls
            );
            runs.push(run);
        }
    }
    let (events, log) = d.stop_with_log();
    assert!(
        log.iter().any(|l| l.contains("Gopclntab")),
        "attached through .gopclntab"
    );
    let all = exchanges(&events);
    for run in &runs {
        assert_usage_matches(&all, run);
        for (_, c) in connections_of(&events, run.pid) {
            assert_eq!(c.gaps, 0);
            assert_only_funcs(&c, TlsFunc::GoWrite, TlsFunc::GoRead);
        }
    }
}

#[test]
fn go_client_ten_thousand_requests_all_seen_no_crash() {
    if !privileged() {
        return;
    }
    const N: u32 = 10_000;
    let (_, stripped) = go::clients();
    let mock = MockLlm::start();
    let mut d = Daemon::start("go-loop");
    let mut child = go::repeat(stripped, &mock, N)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Start once guard has hooked this binary: what ran before is not the point here.
    d.wait_for("goclient-stripped", Duration::from_secs(60));
    let t = Instant::now();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    eprintln!("{N} requests in {:?}", t.elapsed());
    assert!(
        out.status.success(),
        "the Go client failed under the probes: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), N.to_string());
    let (events, log) = d.stop_with_log();
    let conns: Vec<_> = exchanges(&events)
        .into_iter()
        .filter(|x| x.role == Role::Client && x.conn.is_some_and(|c| c.pid == pid))
        .collect();
    // One extra exchange (no response, client abort) was what a doubled write looked like:
    // Write's entry probe sat before the stack check, which re-enters the function when the
    // goroutine's stack grows. Say where any difference went.
    if conns.len() != N as usize {
        let mut reasons = std::collections::BTreeMap::new();
        for x in &conns {
            *reasons.entry(format!("{:?}/{:?}", x.status, x.incomplete_reason)).or_insert(0) += 1;
        }
        let stopped = log.iter().rev().find(|l| l.contains("stopped"));
        panic!("{} exchanges for {N} requests: {reasons:?}; {stopped:?}", conns.len());
    }
    assert!(conns.iter().all(|x| x.path.as_deref() == Some("/v1/models")
        && x.status == Some(200)
        && x.complete
        && !x.inference));
}
