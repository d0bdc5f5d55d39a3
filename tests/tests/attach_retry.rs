//! Privileged end-to-end (issue 17): two Bun executables of one Bun build whose code sits at
//! different file offsets each get their own hooks under one daemon (the cause of the issue: the
//! second got the first one's offsets from the analysis cache), and a TLS file whose attach
//! failed is tried again, through another path when its own vanished, with what happened shown in
//! `guard_tls_attach_failures_total` and, until the retry attaches, as `attach_failed` in
//! `guard_tls_blind_processes`.
//!
//! The failure is injected with the daemon's test-only `GUARD_TEST_ATTACH_FAIL=claude:3`
//! (`guard-userspace/src/app/attach_retry.rs`): guard's first three attempts at the file named
//! `claude` go through a path that does not exist, and the kernel answers ENOENT. Right after the
//! first failure the test renames the file for real, so the path guard found it by is gone
//! when the fourth attempt comes (0.5 + 2 + 8 s later): that one must go through the running
//! process (`/proc/PID/exe` or `/proc/PID/map_files/…`). The hooks must then capture the agent's
//! calls.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::TcpListener,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use guard_tests::{
    bun,
    daemon::Daemon,
    exchanges,
    mock::{MockLlm, assert_usage_matches, run_client},
    privileged,
    scrape::{metrics_addr, samples, scrape},
    temp_path,
};
use serde_json::Value;

/// An idle client that holds one TCP connection (what the blind-spot gauge looks for) until its
/// stdin closes.
const HOLD: &str = r#"
const s = require("node:net").connect(+process.env.HOLD_PORT, "127.0.0.1", () => console.log("held"));
process.stdin.on("data", () => {});
process.stdin.on("end", () => { s.end(); process.exit(0); });
"#;

const FAILURES: &str = r#"guard_tls_attach_failures_total{library="boringssl",reason="no_such_file"}"#;
const ATTACH_FAILED: &str = r#"guard_tls_blind_processes{agent="claude-code",reason="attach_failed"}"#;

/// The JSON log line's fields, if it is `message` about a file whose path ends with `/name`.
fn about(line: &str, message: &str, name: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(line).ok()?;
    let f = &v["fields"];
    (f["message"].as_str()?.starts_with(message) && f["path"].as_str()?.ends_with(&format!("/{name}"))).then(|| f.clone())
}

/// Waits for a log line about `name` starting with `message`, and returns its fields.
fn wait_about(d: &mut Daemon, message: &str, name: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let line = d.wait_for(message, deadline.saturating_duration_since(Instant::now()));
        if let Some(f) = about(&line, message, name) {
            return f;
        }
    }
}

/// Scrapes until `series` reads `want`, or `timeout` passes; returns the last scrape.
fn scrape_until(addr: &str, series: &str, want: f64, timeout: Duration) -> std::collections::BTreeMap<String, f64> {
    let deadline = Instant::now() + timeout;
    loop {
        let m = samples(&scrape(addr).1);
        if m.get(series) == Some(&want) || Instant::now() > deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// OpenCode 1.18.33 then Kilo CLI 7.7.7 under one daemon left Kilo blind: both are Bun 1.3
/// executables with one build-id, and Kilo's code sits 0x2000 bytes further into the file. Here
/// the second executable is Bun itself with its code moved 64 KiB on: handed the first one's
/// offsets, its probes would sit inside other functions and nothing of its calls would be read.
#[test]
fn a_second_bun_of_one_build_with_its_code_elsewhere_gets_its_own_hooks() {
    if !privileged() {
        return;
    }
    let bun = bun::bun(bun::VERSIONS[1]);
    let shifted = temp_path("bun-shifted");
    bun::shift_code(&bun, &shifted, 0x10000);
    let mock = MockLlm::start();
    let mut d = Daemon::start("bun-layouts");
    let mut runs = Vec::new();
    for bin in [&bun, &shifted] {
        // Hooked while an idle run of it waits, before any call.
        let mut idle = Command::new(bin).args(["-e", "setTimeout(() => {}, 120000)"]).spawn().unwrap();
        d.wait_attached(bin, Duration::from_secs(120));
        let _ = idle.kill();
        let _ = idle.wait();
        let run = run_client(&mut bun::fetch(bin, true, &mock, ""));
        assert_eq!(run.calls.len(), 10, "{}", bin.display());
        runs.push(run);
    }
    let (events, log) = d.stop_with_log();
    assert!(!log.iter().any(|l| l.contains("TLS target not attached")), "every attach worked");
    let verified = log.iter().filter(|l| l.contains("TLS hook verified")).count();
    assert_eq!(verified, 2, "each file's guessed hooks were verified by its own traffic");
    let all = exchanges(&events);
    for run in &runs {
        assert_usage_matches(&all, run);
    }
}

#[test]
fn a_failed_attach_is_retried_through_another_path_and_counted_and_shown_until_then() {
    if !privileged() {
        return;
    }
    // A copy of Bun: a file (device, inode) of its own that no other test hooked, named `claude`
    // so that the catalog takes it for Claude Code.
    let dir = temp_path("attach-retry");
    std::fs::create_dir_all(&dir).unwrap();
    let claude = dir.join("claude");
    std::fs::copy(bun::bun(bun::VERSIONS[1]), &claude).unwrap();
    let mock = MockLlm::start();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let args = ["--metrics-addr", "127.0.0.1:0", "--audit-log", "off", "--log-format", "json"];
    let mut d = Daemon::start_env("attach-retry", &args, &[("GUARD_TEST_ATTACH_FAIL", "claude:3")]);
    let addr = metrics_addr(&d);
    assert!(d.log_lines().iter().any(|l| l.contains("open-file limit")), "guard logs its open-file limit");

    let mut agent = Command::new(&claude)
        .args(["-e", HOLD])
        .env("HOLD_PORT", listener.local_addr().unwrap().port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut held = String::new();
    BufReader::new(agent.stdout.take().unwrap()).read_line(&mut held).unwrap();
    assert_eq!(held.trim(), "held");

    // Analysing a new 100 MB binary takes seconds in a debug build.
    let first = wait_about(&mut d, "TLS target not attached", "claude", Duration::from_secs(120));
    let failed_at = Instant::now();
    assert_eq!((first["errno"].as_str(), first["reason"].as_str()), (Some("ENOENT"), Some("no_such_file")), "{first}");
    assert_eq!(first["attempt"].as_u64(), Some(1), "{first}");
    assert_eq!(first["retry_in_ms"].as_u64(), Some(500), "{first}");
    // The path guard found the file by vanishes for real; the agent runs on from the moved file.
    let moved = dir.join("claude-moved");
    std::fs::rename(&claude, &moved).unwrap();

    // Until the fourth attempt (10.5 s after the first), the agent is blind for that reason.
    let m = scrape_until(&addr, ATTACH_FAILED, 1.0, Duration::from_secs(9));
    assert_eq!(m.get(ATTACH_FAILED), Some(&1.0), "{m:#?}");
    assert!(failed_at.elapsed() < Duration::from_millis(10_500), "the gauge was read before the retry could attach");

    let done = wait_about(&mut d, "attached TLS target", "claude", Duration::from_secs(40));
    assert_eq!(done["retries"].as_u64(), Some(3), "{done}");
    let via = done["via"].as_str().unwrap_or_default().to_owned();
    assert!(via.starts_with("/proc/") && (via.ends_with("/exe") || via.contains("/map_files/")), "attached through the process: {done}");
    assert!(failed_at.elapsed() >= Duration::from_secs(10), "not before the backoff: {:?}", failed_at.elapsed());

    // Three failed calls, counted; the agent is no longer blind for a failed attach (its guessed
    // hook now waits for its traffic: hook_unverified).
    let m = scrape_until(&addr, ATTACH_FAILED, 0.0, Duration::from_secs(6));
    assert_eq!(m.get(ATTACH_FAILED), Some(&0.0), "{m:#?}");
    assert_eq!(m.get(FAILURES), Some(&3.0), "{m:#?}");
    assert_eq!(m.get(r#"guard_tls_blind_processes{agent="claude-code",reason="hook_unverified"}"#), Some(&1.0), "{m:#?}");
    let gave_up = d.log_lines().iter().any(|l| l.contains("given up"));
    assert!(!gave_up, "no file was given up");

    agent.stdin.take().unwrap().write_all(b"").unwrap();
    assert!(agent.wait().unwrap().success());
    // The hooks placed through /proc/PID/exe are on the file itself: a new run of it is captured.
    let run = run_client(&mut bun::fetch(&moved, true, &mock, ""));
    assert_eq!(run.calls.len(), 10);
    let (events, log) = d.stop_with_log();
    assert!(log.iter().any(|l| l.contains("TLS hook verified")), "its traffic verified the hook");
    assert_usage_matches(&exchanges(&events), &run);
    drop(listener);
}
