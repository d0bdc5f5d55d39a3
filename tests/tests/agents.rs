//! Privileged end-to-end: attribution and the audit log with the real daemon. A program that
//! makes an LLM call becomes a zero-config agent for the shell it spawns; the same program
//! installed as `claude` is recognised by catalog id; a shell the test itself runs belongs to no
//! agent. The audit lines are exact and carry no secret.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{os::unix::fs::PermissionsExt, path::Path, process::Command};

use guard_core::govern::Governed;
use guard_tests::{daemon::Daemon, governed, mock::MockLlm, privileged, temp_path};
use serde_json::Value;

const SECRET: &str = "ghp_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";

/// Runs the stand-in agent (`program` with `pre` arguments before the script) and returns the
/// pid of the shell it spawned.
fn run_agent(cmd: &mut Command, mock: &MockLlm, script: &str, cwd: &Path) -> u32 {
    let out = cmd
        .arg(&mock.base)
        .arg(&mock.ca_file)
        .arg(script)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["shell_pid"].as_u64().unwrap() as u32
}

/// The audit line for `rm -rf victim` run through `bash -c` as `pid`, with the chain and time
/// the daemon wrote (checked separately).
fn expected_line(
    line: &Value,
    agent: Option<&str>,
    pid: u32,
    cwd: &Path,
    script: &str,
    victim: &Path,
) -> String {
    // On defaults the exec gate runs in monitor mode: an agent's command is judged before it
    // runs and recorded as what enforce mode would block; anyone else's is only observed.
    let (action, mechanism) = if agent.is_some() { ("would_block", "\"fanotify\"") } else { ("observed", "null") };
    let host = guard::testing::hostname();
    let agent = agent.map_or("null".to_owned(), |a| format!("\"{a}\""));
    let chain = serde_json::to_string(&line["process_chain"]).unwrap();
    let argv = serde_json::to_string(&["bash", "-c", script]).unwrap();
    format!(
        concat!(
            r#"{{"time":"{}","host":"{}","agent":{},"process_chain":{},"pid":{},"uid":0,"user":"root","cwd":"{}","#,
            r#""argv":{},"rule_id":"fs.rm-rf-outside-worktree","category":"file_deletion","severity":"high","#,
            r#""why":"`rm -rf {}` (via bash): flags -r -f, path `{}` is outside the working tree","action":"{}","mechanism":{},"proposed_by":null}}"#
        ),
        line["time"].as_str().unwrap(),
        host,
        agent,
        chain,
        pid,
        cwd.display(),
        argv,
        victim.display(),
        victim.display(),
        action,
        mechanism,
    )
}

#[test]
fn agents_are_attributed_and_their_destructive_commands_audited_exactly() {
    if !privileged() {
        return;
    }
    let mock = MockLlm::start();
    let id = std::process::id();
    // Victims outside the working tree and outside temporary space (deleting those is routine).
    let victims_root = Path::new("/srv").join(format!("guard-e2e-{id}"));
    let victim = |n: &str| victims_root.join(n);
    for n in ["zero", "catalog", "plain"] {
        std::fs::create_dir_all(victim(n).join("sub")).unwrap();
    }
    let work = temp_path("work");
    std::fs::create_dir_all(work.join("target")).unwrap();

    // The agent program, installed twice: as a script of its own, and as `claude` (npm-style bin).
    let agent_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("mock_llm/agent.py");
    let review_bot = temp_path("review-bot.py");
    std::fs::copy(&agent_src, &review_bot).unwrap();
    let bin = temp_path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let claude = bin.join("claude");
    std::fs::copy(&agent_src, &claude).unwrap();
    std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).unwrap();

    let audit = temp_path("audit.jsonl");
    let d = Daemon::start_with(
        "agents",
        &[
            "--audit-log",
            audit.to_str().unwrap(),
            "--log-format",
            "json",
        ],
    );

    let zero_script = format!("GITHUB_TOKEN={SECRET} rm -rf {}", victim("zero").display());
    let zero_pid = run_agent(
        Command::new("python3").arg(&review_bot),
        &mock,
        &zero_script,
        &work,
    );
    let catalog_script = format!(
        "rm -rf {}; true --token {SECRET}",
        victim("catalog").display()
    );
    let catalog_pid = run_agent(&mut Command::new(&claude), &mock, &catalog_script, &work);
    // The test itself is no agent: neither its destructive nor its routine commands are an agent's.
    let plain_script = format!("rm -rf {}", victim("plain").display());
    let plain = Command::new("bash")
        .args(["-c", &plain_script])
        .current_dir(&work)
        .spawn()
        .unwrap();
    let plain_pid = plain.id();
    assert!(plain.wait_with_output().unwrap().status.success());
    let routine = Command::new("bash")
        .args(["-c", "rm -rf ./target"])
        .current_dir(&work)
        .spawn()
        .unwrap();
    let routine_pid = routine.id();
    assert!(routine.wait_with_output().unwrap().status.success());
    let (events, log) = d.stop_with_log();

    for n in ["zero", "catalog", "plain"] {
        assert!(!victim(n).exists(), "{n} was not deleted");
    }
    let _ = std::fs::remove_dir_all(&victims_root);

    // The audit log: one line per destructive command, in order, exact.
    let text = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let redacted_zero = format!("GITHUB_TOKEN=*** rm -rf {}", victim("zero").display());
    let redacted_catalog = format!("rm -rf {}; true --token ***", victim("catalog").display());
    let want = [
        expected_line(
            &parsed[0],
            Some("review-bot"),
            zero_pid,
            &work,
            &redacted_zero,
            &victim("zero"),
        ),
        expected_line(
            &parsed[1],
            Some("claude-code"),
            catalog_pid,
            &work,
            &redacted_catalog,
            &victim("catalog"),
        ),
        expected_line(
            &parsed[2],
            None,
            plain_pid,
            &work,
            &plain_script,
            &victim("plain"),
        ),
    ];
    for (got, want) in lines.iter().zip(&want) {
        assert_eq!(got, want);
    }
    // The chain runs from the test's own ancestry down through the agent to the shell.
    let test_exe = std::env::current_exe().unwrap();
    let test_name = test_exe.file_name().unwrap().to_str().unwrap();
    let chain = |v: &Value| {
        v["process_chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(
        chain(&parsed[0]).ends_with(&[test_name.to_owned(), "python3".into(), "bash".into()]),
        "{:?}",
        chain(&parsed[0])
    );
    assert!(
        chain(&parsed[1]).ends_with(&[test_name.to_owned(), "python3".into(), "bash".into()]),
        "{:?}",
        chain(&parsed[1])
    );
    assert!(
        chain(&parsed[2]).ends_with(&[test_name.to_owned(), "bash".into()]),
        "{:?}",
        chain(&parsed[2])
    );
    for l in &parsed {
        let t = l["time"].as_str().unwrap();
        assert!(
            t.starts_with("20") && t.ends_with('Z') && t.len() >= 20,
            "{t}"
        );
    }

    // No secret anywhere: not in the audit log, not in the daemon's log.
    for secret in [SECRET, "sk-ant-api03-mocksecret", "clean up the build"] {
        assert!(!text.contains(secret), "{secret} in the audit log");
        assert!(
            !log.iter().any(|l| l.contains(secret)),
            "{secret} in the daemon log"
        );
    }
    // The daemon logged each exchange with its agent (JSON logs).
    let fields: Vec<Value> = log
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["fields"].clone())
        .collect();
    let client_agents: Vec<&str> = fields
        .iter()
        .filter(|f| f["message"] == "exchange" && f["role"] == "Client")
        .map(|f| f["agent"].as_str().unwrap())
        .collect();
    assert_eq!(client_agents, ["review-bot", "claude-code"], "{fields:#?}");

    // The same recording, replayed without root: every command's agent.
    let governed = governed(&events);
    let agent_of = |pid: u32| {
        let found: Vec<Option<String>> = governed
            .iter()
            .filter_map(|r| match r {
                Governed::Command { pid: p, agent, .. } if *p == pid => Some(agent.clone()),
                _ => None,
            })
            .collect();
        assert!(!found.is_empty(), "no command of pid {pid}");
        found
    };
    // bash, then rm exec'd in its place: both belong to the agent.
    assert_eq!(agent_of(zero_pid), vec![Some("review-bot".to_owned()); 2]);
    // This script has two commands: bash forks rm.
    assert_eq!(agent_of(catalog_pid), vec![Some("claude-code".to_owned())]);
    assert_eq!(agent_of(plain_pid), vec![None, None]);
    assert_eq!(agent_of(routine_pid), vec![None, None]);
    let xs: Vec<(Option<String>, u64)> = governed
        .iter()
        .filter_map(|r| match r {
            Governed::Exchange { agent, exchange, .. } if exchange.inference => {
                Some((agent.clone(), exchange.usage.input))
            }
            _ => None,
        })
        .collect();
    assert!(
        xs.contains(&(Some("review-bot".into()), 11))
            && xs.contains(&(Some("claude-code".into()), 11)),
        "{xs:?}"
    );
}
