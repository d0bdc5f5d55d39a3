//! Privileged end-to-end: what the model asked for. A minimal agent on the real `openai` and
//! `anthropic` SDKs offers a `bash` tool; the mock answers with a call of it (Messages, Chat
//! Completions and Responses, streamed and not) carrying a destructive command and a call id.
//! The agent runs it, then a command of its own. guard's audit records name the call id the mock
//! sent for the first, and `null` for the second. An MCP client on the official `mcp` package
//! calls two tools of a Streamable HTTP server: guard counts both, by tool and outcome.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use guard_tests::{
    daemon::Daemon,
    gate::{argv_of, audit_records, daemon_args},
    mock::MockLlm,
    privileged,
    scrape::{metrics_addr, samples, scrape},
    self_signed, temp_path,
};

/// (API, streamed, call id the mock sends, model the agent asks for).
const CASES: [(&str, bool, &str, &str); 6] = [
    ("anthropic", false, "toolu_e2e_plain", "claude-sonnet-4-5"),
    ("anthropic", true, "toolu_e2e_stream", "claude-sonnet-4-5"),
    ("openai_chat", false, "call_e2e_chat", "gpt-4o"),
    ("openai_chat", true, "call_e2e_chat_stream", "gpt-4o"),
    ("openai_responses", false, "call_e2e_resp", "gpt-5"),
    ("openai_responses", true, "call_e2e_resp_stream", "gpt-5"),
];

fn victim(tag: &str) -> PathBuf {
    let dir = Path::new("/srv").join(format!("guard-e2e-intent-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/file"), b"x").unwrap();
    dir
}

#[test]
fn every_sdks_tool_call_names_the_command_it_proposed() {
    if !privileged() {
        return;
    }
    let mock = MockLlm::start();
    let (args, audit) = daemon_args("intent", "monitor", &[], 250, "open");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = Daemon::start_with("intent", &args);
    let addr = metrics_addr(&d);
    // The agent's name is its script's: `intent-bot`.
    let agent = temp_path("intent-bot.py");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("mock_llm/tool_agent.py"), &agent).unwrap();
    let mut runs = Vec::new();
    for (i, (api, stream, id, _)) in CASES.iter().enumerate() {
        let (proposed, own) = (victim(&format!("{i}")), victim(&format!("own-{i}")));
        let mut cmd = Command::new("python3");
        cmd.arg(&agent)
            .args(["--base", &mock.base, "--ca"])
            .arg(&mock.ca_file)
            .args(["--api", api, "--call-id", id])
            .args(["--command", &format!("rm -rf {}", proposed.display())])
            .args(["--own", &format!("rm -rf {}", own.display())]);
        if *stream {
            cmd.arg("--stream");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{api}: {}", String::from_utf8_lossy(&out.stderr));
        let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(said["call_id"], *id, "the SDK parsed the mock's call");
        // Monitor mode: both ran.
        assert!(!proposed.exists() && !own.exists());
        runs.push((proposed, own));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let got = samples(&scrape(&addr).1);
    d.stop();

    let records = audit_records(&audit);
    for ((api, stream, id, model), (proposed, own)) in CASES.iter().zip(&runs) {
        let about = |dir: &Path| -> Vec<&serde_json::Value> {
            let dir = dir.display().to_string();
            records.iter().filter(|r| argv_of(r).iter().any(|a| a.split_whitespace().any(|w| w == dir))).collect()
        };
        let mine = about(proposed);
        assert!(!mine.is_empty(), "{api} stream={stream}: no audit record for {}: {records:#?}", proposed.display());
        for r in &mine {
            assert_eq!(r["rule_id"], "fs.rm-rf-outside-worktree", "{r:#}");
            assert_eq!(r["agent"], "intent-bot", "{r:#}");
            let by = &r["proposed_by"];
            assert_eq!(
                (by["provider"].as_str(), by["model"].as_str(), by["tool"].as_str(), by["call_id"].as_str()),
                (Some(*api), Some(*model), Some("bash"), Some(*id)),
                "{api} stream={stream}: {r:#}"
            );
            assert!(by["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{r:#}");
        }
        let theirs = about(own);
        assert!(!theirs.is_empty(), "{api}: no audit record for the agent's own command: {records:#?}");
        for r in theirs {
            assert!(r["proposed_by"].is_null(), "the agent ran it on its own: {r:#}");
        }
    }
    // Two calls of `bash` per API, and commands of both origins.
    for api in ["anthropic", "openai_chat", "openai_responses"] {
        let key = format!(r#"guard_llm_tool_calls_total{{agent="intent-bot",provider="{api}",tool="bash"}}"#);
        assert_eq!(got.get(&key), Some(&2.0), "{key}: {got:#?}");
    }
    for origin in ["model", "other"] {
        let key = format!(r#"guard_agent_commands_total{{agent="intent-bot",origin="{origin}"}}"#);
        assert!(got.get(&key).is_some_and(|n| *n >= 6.0), "{key}: {got:#?}");
    }
    // The arguments never leave memory: not in the audit log, the metrics or the log.
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains("{\"command\""), "tool arguments in the audit log");
}

/// A free loopback port (bound, then let go for the server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn mcp_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp/mcp_pair.py")
}

/// Starts the MCP server (JSON replies or SSE streams) and runs the client against it once.
fn mcp_round(cert: &Path, key: &Path, json: bool) {
    let port = free_port();
    let mut server = Command::new("python3");
    server.arg(mcp_script()).args(["server", "--port", &port.to_string(), "--cert"]).arg(cert).arg("--key").arg(key);
    if json {
        server.arg("--json");
    }
    let mut server = server.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let out = Command::new("python3")
        .arg(mcp_script())
        .args(["client", "--url", &format!("https://127.0.0.1:{port}/mcp"), "--ca"])
        .arg(cert)
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((said["add"].as_str(), said["fail_is_error"].as_bool()), (Some("5"), Some(true)), "{said}");
}

#[test]
fn mcp_tool_calls_are_counted_by_server_tool_and_outcome() {
    if !privileged() {
        return;
    }
    let (cert, key) = self_signed("mcp");
    let d = Daemon::start_with("mcp", &["--metrics-addr", "127.0.0.1:0", "--audit-log", "off", "--log-format", "json"]);
    let addr = metrics_addr(&d);
    mcp_round(&cert, &key, false);
    mcp_round(&cert, &key, true);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let got = samples(&scrape(&addr).1);
    d.stop();
    let count = |tool: &str, outcome: &str| -> f64 {
        got.iter()
            .filter(|(k, _)| {
                k.starts_with("guard_mcp_tool_calls_total{")
                    && k.contains(r#"server="127.0.0.1""#)
                    && k.contains(&format!(r#"tool="{tool}""#))
                    && k.contains(&format!(r#"outcome="{outcome}""#))
            })
            .map(|(_, v)| v)
            .sum()
    };
    // One `add` and one `fail` per round: SSE replies, then JSON replies.
    assert_eq!((count("add", "ok"), count("fail", "error")), (2.0, 2.0), "{got:#?}");
    let all: f64 = got.iter().filter(|(k, _)| k.starts_with("guard_mcp_tool_calls_total{")).map(|(_, v)| v).sum();
    assert_eq!(all, 4.0, "no other MCP call counted (the server's side is not a client's): {got:#?}");
}
