//! `guard replay` without root, on a recording written the way `guard run --record` writes one:
//! it ends, it answers the engine's lookups from the recorded facts (a relative `rm -rf` is
//! judged in the cwd the run saw), its metrics are the run's, and the site's config applies.
#![allow(clippy::unwrap_used, reason = "test")]

use std::{
    collections::HashMap,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use bytes::Bytes;
use guard_core::{
    events::{
        ConnId, Direction, Event, Exec, ExecArgv, ExecResult, ExecSyscall, Fork, TlsClose, TlsData, TlsFunc,
        record::{Fact, Line, Recorder},
    },
    govern::{Host, User},
    process::SeedProcess,
};
use guard_tests::{daemon::guard_bin, temp_path};

const PID: u32 = 4242;
const CHILD: u32 = 4243;

/// A run's recording: the host, a seeded agent (pid 4242), its Chat Completions call, and then
/// `rm -rf ../data` run by its child in /srv/app (a cwd only the recorded fact tells).
fn recording() -> std::path::PathBuf {
    let req = b"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nContent-Length: 18\r\n\r\n{\"model\":\"gpt-4o\"}";
    let body = br#"{"model":"gpt-4o","usage":{"prompt_tokens":9,"completion_tokens":4}}"#;
    let resp = [format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(), body].concat();
    let conn = ConnId { pid: PID, conn: 0xabc };
    let tls = |ts_ns, dir, data: &[u8]| {
        Event::TlsData(TlsData { ts_ns, tid: PID, conn, dir, func: TlsFunc::SslWrite, offset: 0, call_len: data.len() as u32, target: 0, paused: false, data: Bytes::copy_from_slice(data) })
    };
    let host = Host { name: "ws1".into(), users: HashMap::from([(1000, User { name: "dev".into(), home: Some("/home/dev".into()) })]) };
    let shell = SeedProcess { pid: PID, ppid: 1, start_ticks: 100, uid: Some(1000), exe: Some("/usr/bin/python3".into()), argv: vec!["python3".into(), "review-bot.py".into()], comm: Some("python3".into()), ..SeedProcess::default() };
    let fork = Fork { ts_ns: 2_900, parent_pid: PID, parent_tid: PID, parent_start_time_ns: 1_000_000_000, child_pid: CHILD, child_start_time_ns: 2_000_000_000, uid: 1000, comm: "python3".into() };
    let argv = ExecArgv { ts_ns: 3_000, pid: CHILD, tid: CHILD, syscall: ExecSyscall::Execve, filename: "/usr/bin/rm".into(), argv: vec!["rm".into(), "-rf".into(), "../data".into()], truncated: false, gated: false };
    let exec = Exec { ts_ns: 3_001, pid: CHILD, tid: CHILD, old_tid: CHILD, ppid: PID, uid: 1000, start_time_ns: 2_000_000_000, comm: "rm".into(), filename: "/usr/bin/rm".into() };
    let lines = [
        Line::Fact(Fact::host(&host)),
        Line::Fact(Fact::Seed { processes: vec![shell] }),
        Line::Event(tls(1_000, Direction::Write, req)),
        Line::Event(tls(2_000, Direction::Read, &resp)),
        Line::Event(Event::TlsClose(TlsClose { ts_ns: 2_500, conn })),
        Line::Event(Event::Fork(fork)),
        Line::Event(Event::ExecArgv(argv)),
        Line::Event(Event::Exec(exec)),
        Line::Event(Event::ExecResult(ExecResult { ts_ns: 3_002, pid: CHILD, tid: CHILD, ret: 0 })),
        Line::Fact(Fact::Cwd { pid: CHILD, cwd: Some("/srv/app".into()) }),
    ];
    let path = temp_path("replay.jsonl");
    let mut r = Recorder::new(std::fs::File::create(&path).unwrap());
    for l in &lines {
        r.write(l).unwrap();
    }
    r.flush().unwrap();
    path
}

/// `guard replay ARGS`, which must end within seconds: (exit code, stdout, stderr).
fn replay(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(guard_bin()).arg("replay").args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("guard replay {args:?} did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn a_replay_ends_answers_from_facts_and_serves_the_runs_metrics() {
    let rec = recording();
    let empty = temp_path("replay-empty.toml");
    std::fs::write(&empty, "").unwrap();
    let (code, out, err) = replay(&["--config", empty.to_str().unwrap(), rec.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let exchange = lines.iter().find(|l| l["record"] == "exchange").expect("the exchange");
    assert_eq!((exchange["agent"].as_str(), exchange["usage"]["input"].as_u64()), (Some("review-bot"), Some(9)));
    // Priced by the built-in table: GPT-4o, 9 × 2.50 + 4 × 10 = 62.5 µ$.
    let usd = exchange["cost"]["usd"].as_f64().unwrap_or_default();
    assert!((usd - 0.000_062_5).abs() < 1e-12, "{exchange}");
    let rm = lines.iter().find(|l| l["record"] == "destructive").expect("the rm -rf");
    assert_eq!(rm["rule_id"], "fs.rm-rf-outside-worktree");
    assert_eq!(rm["cwd"], "/srv/app", "the cwd comes from the recorded fact");
    assert_eq!(rm["agent"], "review-bot", "the agent's child");
    assert_eq!(rm["user"], "dev", "the account comes from the recorded host");

    let (code, metrics, err) = replay(&["--metrics", "--config", empty.to_str().unwrap(), rec.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(metrics.ends_with("# EOF\n") && !metrics.contains(r#""record""#), "{metrics}");
    for series in [
        r#"guard_llm_tokens_total{agent="review-bot",provider="openai_chat",model="gpt-4o",type="input"} 9"#,
        r#"guard_llm_tokens_total{agent="review-bot",provider="openai_chat",model="gpt-4o",type="output"} 4"#,
        r#"guard_destructive_commands_total{agent="review-bot",rule="fs.rm-rf-outside-worktree",severity="high",action="observed"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series}\n{metrics}");
    }
}

#[test]
fn a_replay_applies_the_sites_rules() {
    let rec = recording();
    let cfg = temp_path("replay-disable.toml");
    std::fs::write(&cfg, "[rules]\ndisable = [\"fs.rm-rf-outside-worktree\"]\n").unwrap();
    let (code, out, err) = replay(&["--config", cfg.to_str().unwrap(), rec.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(r#""record":"exchange""#), "{out}");
    assert!(!out.contains("fs.rm-rf-outside-worktree"), "a disabled rule still matched: {out}");
}

#[test]
fn a_replay_applies_the_sites_prices() {
    let rec = recording();
    let cfg = temp_path("replay-prices.toml");
    let entry = "[[prices.model]]\nname = \"gpt-4o (test)\"\nproviders = [\"openai_chat\"]\nmatch = \"gpt-4o\"\ninput = 100000.0\ncache_read = 0.0\noutput = 250000.0\n";
    std::fs::write(&cfg, entry).unwrap();
    // 9 × 0.1 + 4 × 0.25 = 1.9 USD, in the JSON line and in the metrics.
    let (code, out, err) = replay(&["--config", cfg.to_str().unwrap(), rec.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(r#""cost":{"usd":1.9}"#), "{out}");
    let (code, metrics, err) = replay(&["--metrics", "--config", cfg.to_str().unwrap(), rec.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let series = r#"guard_llm_cost_usd_total{agent="review-bot",provider="openai_chat",model="gpt-4o"} 1.9"#;
    assert!(metrics.contains(series), "{series}\n{metrics}");
}
