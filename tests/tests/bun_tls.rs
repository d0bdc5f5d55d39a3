//! Privileged end-to-end: Bun from npm (two releases, and a `bun build --compile` executable),
//! whose BoringSSL is statically linked and stripped. guard finds SSL_write/SSL_read by their
//! structure and must decode exactly the usage the mock server sent, for plain and compressed
//! bodies, streamed and not.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use guard_core::events::Event;
use guard_tests::{
    bun,
    daemon::Daemon,
    exchanges,
    mock::{MockLlm, assert_usage_matches, run_client},
    privileged,
    scrape::{metrics_addr, samples, scrape},
    server::TlsServer,
    temp_path,
};

/// Starts an idle process of `bin` and waits until guard has attached to it: analysing a new
/// 100 MB binary takes seconds in a debug build, and no call may precede the hooks.
fn hook(d: &mut Daemon, bin: &std::path::Path, name: &str) {
    // BUN_BE_BUN makes a compiled executable act as the bun CLI instead of its script.
    let mut idle = Command::new(bin).env("BUN_BE_BUN", "1").args(["-e", "setTimeout(() => {}, 120000)"]).spawn().unwrap();
    d.wait_for(name, Duration::from_secs(120));
    let _ = idle.kill();
    let _ = idle.wait();
}

#[test]
fn bun_fetch_usage_is_exact_on_two_releases_and_a_compiled_executable() {
    if !privileged() {
        return;
    }
    let bins: Vec<_> = bun::VERSIONS.iter().map(|v| bun::bun(v)).collect();
    let compiled = temp_path("bun-fetch-compiled");
    bun::compile(&bins[1], &compiled);
    let mock = MockLlm::start();
    let mut d = Daemon::start("bun");
    let programs = [
        (bins[0].as_path(), bun::VERSIONS[0]),
        (bins[1].as_path(), bun::VERSIONS[1]),
        (compiled.as_path(), "bun-fetch-compiled"),
    ];
    for (bin, name) in programs {
        hook(&mut d, bin, name);
    }
    let mut runs = Vec::new();
    for (bin, script) in bins
        .iter()
        .map(|b| (b.as_path(), true))
        .chain([(compiled.as_path(), false)])
    {
        for enc in ["", "gzip"] {
            let run = run_client(&mut bun::fetch(bin, script, &mock, enc));
            assert_eq!(run.calls.len(), 10, "{}", bin.display());
            runs.push(run);
        }
    }
    let (events, log) = d.stop_with_log();
    assert!(
        log.iter().any(|l| l.contains("Structural")),
        "attached by structure"
    );
    // The two releases are two files (the compiled executable shares 1.4.5's build but is its
    // own file): each guessed hook was verified by its own traffic before any of it counted.
    let verified = log.iter().filter(|l| l.contains("TLS hook verified")).count();
    assert_eq!(verified, 3, "one verification per hooked file");
    assert!(!log.iter().any(|l| l.contains("TLS hook rejected")));
    let all = exchanges(&events);
    for run in &runs {
        assert_usage_matches(&all, run);
    }
}

/// A client that speaks a line protocol, not HTTP, over TLS: what a wrong hook would also yield.
const NOT_HTTP: &str = r#"
const tls = require("node:tls");
const fs = require("node:fs");
const [port, ca] = process.argv.slice(2);
const line = "HELO guard-test this is not HTTP at all, 0123456789\n";
function once() {
  return new Promise((ok, fail) => {
    const s = tls.connect({ host: "127.0.0.1", port: +port, ca: fs.readFileSync(ca), servername: "localhost" }, () => s.write(line));
    s.once("data", () => ok(s));
    s.once("error", fail);
  });
}
(async () => {
  for (let i = 0; i < 10; i++) (await once()).end();
  const held = await once();
  console.log("held");
  process.stdin.on("data", () => {});
  process.stdin.on("end", () => { held.end(); process.exit(0); });
})();
"#;

#[test]
fn non_http_traffic_through_a_guessed_hook_never_reaches_the_pipeline_and_shows_as_a_blind_spot() {
    if !privileged() {
        return;
    }
    let bin = bun::bun(bun::VERSIONS[1]);
    let server = TlsServer::start_echo();
    let mut d = Daemon::start_with("bun-verify", &["--metrics-addr", "127.0.0.1:0", "--audit-log", "off", "--log-format", "json"]);
    let addr = metrics_addr(&d);
    hook(&mut d, &bin, bun::VERSIONS[1]);

    let script = temp_path("not-http.cjs");
    std::fs::write(&script, NOT_HTTP).unwrap();
    // Installed as `claude` (a hard link: the same file, so the same hooks), it is Claude Code.
    let claude = bin.with_file_name("claude");
    if !claude.exists() {
        std::fs::hard_link(&bin, &claude).unwrap();
    }
    let mut client = Command::new(&claude)
        .arg(&script)
        .arg(server.port.to_string())
        .arg(&server.ca_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(client.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert_eq!(first.trim(), "held", "the client connected 11 times");
    d.wait_for("TLS hook rejected", Duration::from_secs(30));

    // The gauge is refreshed every 2 s: the client still holds its 11th connection.
    let blind = r#"guard_tls_blind_processes{agent="claude-code",reason="hook_rejected"}"#;
    let deadline = Instant::now() + Duration::from_secs(20);
    let m = loop {
        let m = samples(&scrape(&addr).1);
        if m.get(blind) == Some(&1.0) || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(m.get(blind), Some(&1.0), "{m:#?}");
    // 8 foreign connections were held (a write and a read each, but the 8th's read came after
    // the verdict) and then dropped.
    let dropped = m[r#"guard_events_lost_total{source="unverified_hook"}"#];
    assert!(dropped >= 15.0, "{dropped}");

    client.stdin.take().unwrap().write_all(b"").unwrap();
    assert!(client.wait().unwrap().success());
    let pid = client.id();
    let (events, _) = d.stop_with_log();
    let leaked: Vec<_> = events.iter().filter(|e| matches!(e, Event::TlsData(t) if t.conn.pid == pid)).collect();
    assert!(leaked.is_empty(), "bytes of a rejected hook reached the pipeline: {leaked:?}");
    assert!(server.transcripts().len() >= 10, "the server saw the connections");
}
