//! Process table scenarios, as recorded event sequences.

use std::sync::Arc;

use super::{AgentKind, Catalog, ProcKey, ProcessTable, SeedProcess, TableLimits};
use crate::events::{
    Exit, Fork,
    exec_join::{ExecOutcome, ExecRecord},
};

const S: u64 = 1_000_000_000;

fn table() -> ProcessTable {
    ProcessTable::new(Arc::new(Catalog::builtin()), TableLimits::default())
}

fn fork(parent: (u32, u64), child: (u32, u64), ts: u64) -> Fork {
    Fork {
        ts_ns: ts,
        parent_pid: parent.0,
        parent_tid: parent.0,
        parent_start_time_ns: parent.1,
        child_pid: child.0,
        child_start_time_ns: child.1,
        uid: 1000,
        comm: "x".into(),
    }
}

fn exec(p: (u32, u64), ppid: u32, exe: &str, argv: &[&str], ts: u64) -> ExecRecord {
    ExecRecord {
        ts_ns: ts,
        pid: p.0,
        tid: p.0,
        ppid: Some(ppid),
        uid: Some(1000),
        start_time_ns: Some(p.1),
        filename: exe.into(),
        exe: Some(exe.into()),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        argv_truncated: false,
        gated: false,
        outcome: ExecOutcome::Ran,
    }
}

fn exit(p: (u32, u64), ts: u64) -> Exit {
    Exit {
        ts_ns: ts,
        pid: p.0,
        tid: p.0,
        start_time_ns: p.1,
        exit_code: 0,
        comm: "x".into(),
    }
}

/// fork + exec of `child` under `parent`.
fn spawn(t: &mut ProcessTable, parent: (u32, u64), child: (u32, u64), exe: &str, argv: &[&str]) {
    t.on_fork(&fork(parent, child, child.1));
    t.on_exec(&exec(child, parent.0, exe, argv, child.1 + 1));
}

fn agent(t: &ProcessTable, pid: u32) -> Option<String> {
    t.agent_of(pid).map(|a| a.id.to_string())
}

const INIT: (u32, u64) = (1, 0);

fn seeded_init(t: &mut ProcessTable) {
    t.seed(vec![SeedProcess {
        pid: 1,
        ppid: 0,
        exe: Some("/sbin/init".into()),
        argv: vec!["/sbin/init".into()],
        ..Default::default()
    }]);
}

#[test]
fn attribution_crosses_shells_sudo_env_xargs_and_interpreters() {
    let mut t = table();
    seeded_init(&mut t);
    let claude = (100, 10 * S);
    spawn(
        &mut t,
        INIT,
        claude,
        "/usr/bin/node",
        &[
            "node",
            "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js",
        ],
    );
    spawn(
        &mut t,
        claude,
        (101, 11 * S),
        "/bin/bash",
        &["bash", "-c", "sudo env X=1 xargs rm -rf"],
    );
    spawn(
        &mut t,
        (101, 11 * S),
        (102, 12 * S),
        "/usr/bin/sudo",
        &["sudo", "env", "X=1", "xargs", "rm", "-rf"],
    );
    // sudo forks; env and xargs exec in place, xargs forks rm.
    spawn(
        &mut t,
        (102, 12 * S),
        (103, 13 * S),
        "/usr/bin/env",
        &["env", "X=1", "xargs", "rm", "-rf"],
    );
    t.on_exec(&exec(
        (103, 13 * S),
        102,
        "/usr/bin/xargs",
        &["xargs", "rm", "-rf"],
        14 * S,
    ));
    spawn(
        &mut t,
        (103, 13 * S),
        (104, 15 * S),
        "/bin/rm",
        &["rm", "-rf", "x"],
    );
    spawn(
        &mut t,
        claude,
        (105, 16 * S),
        "/usr/bin/python3",
        &["python3", "tool.py"],
    );
    spawn(
        &mut t,
        (105, 16 * S),
        (106, 17 * S),
        "/bin/rm",
        &["rm", "y"],
    );
    for pid in [100, 101, 102, 103, 104, 105, 106] {
        assert_eq!(agent(&t, pid).as_deref(), Some("claude-code"), "pid {pid}");
    }
    let a = t.agent_of(104).expect("agent");
    assert_eq!(
        (a.kind, a.key),
        (AgentKind::Catalog, ProcKey::from_ns(100, 10 * S))
    );
    assert_eq!(
        t.chain(104),
        ["init", "node", "bash", "sudo", "xargs", "rm"]
    );
    assert_eq!(agent(&t, 1), None);
}

#[test]
fn the_nearest_agent_wins() {
    let mut t = table();
    spawn(&mut t, INIT, (10, S), "/usr/local/bin/claude", &["claude"]);
    spawn(
        &mut t,
        (10, S),
        (11, 2 * S),
        "/bin/bash",
        &["bash", "-c", "codex exec hi"],
    );
    spawn(
        &mut t,
        (11, 2 * S),
        (12, 3 * S),
        "/usr/local/bin/codex",
        &["codex", "exec", "hi"],
    );
    spawn(
        &mut t,
        (12, 3 * S),
        (13, 4 * S),
        "/bin/rm",
        &["rm", "-rf", "x"],
    );
    assert_eq!(agent(&t, 13).as_deref(), Some("codex"));
    assert_eq!(agent(&t, 11).as_deref(), Some("claude-code"));
}

#[test]
fn a_reused_pid_never_inherits_the_old_identity() {
    let mut t = table();
    seeded_init(&mut t);
    let old = (500, 10 * S);
    spawn(&mut t, INIT, old, "/usr/local/bin/gemini", &["gemini"]);
    t.on_exit(&exit(old, 20 * S));
    // Same pid, new process (a plain shell) before the old entry's linger ends.
    let new = (500, 25 * S);
    spawn(&mut t, INIT, new, "/bin/bash", &["bash"]);
    assert_eq!(agent(&t, 500), None);
    assert_eq!(
        t.agent_of_key(ProcKey::from_ns(500, 10 * S))
            .map(|a| a.id.to_string())
            .as_deref(),
        Some("gemini-cli")
    );
    // The old incarnation's exit cleanup does not remove the new one.
    t.tick(60 * S);
    assert!(
        t.get(500)
            .is_some_and(|p| p.key == ProcKey::from_ns(500, 25 * S))
    );
    assert!(t.get_key(ProcKey::from_ns(500, 10 * S)).is_none());
}

#[test]
fn exec_before_fork_and_late_events_after_exit() {
    let mut t = table();
    let agent_p = (20, S);
    spawn(
        &mut t,
        INIT,
        agent_p,
        "/usr/local/bin/opencode",
        &["opencode"],
    );
    // The child's exec record completes before its fork event is processed.
    let child = (21, 2 * S);
    t.on_exec(&exec(child, 20, "/bin/rm", &["rm", "-rf", "/x"], 3 * S));
    assert_eq!(agent(&t, 21).as_deref(), Some("opencode"));
    t.on_fork(&fork(agent_p, child, 2 * S));
    assert_eq!(
        t.get(21).and_then(|p| p.exe.clone()).as_deref(),
        Some("/bin/rm"),
        "fork keeps the exec's image"
    );
    // Exit arrives before the fork of another child, which then still gets its parent.
    let late = (22, 4 * S);
    t.on_exit(&exit(late, 5 * S));
    t.on_fork(&fork(agent_p, late, 4 * S));
    assert_eq!(agent(&t, 22).as_deref(), Some("opencode"));
    // The agent exits; an exchange decoded afterwards still attributes during the linger.
    t.on_exit(&exit(agent_p, 6 * S));
    t.tick(10 * S);
    assert_eq!(agent(&t, 20).as_deref(), Some("opencode"));
    assert_eq!(agent(&t, 21).as_deref(), Some("opencode"));
    t.tick(6 * S + TableLimits::default().exit_linger_ns);
    assert_eq!(agent(&t, 20), None);
}

#[test]
fn a_failed_exec_keeps_the_image() {
    let mut t = table();
    spawn(&mut t, INIT, (30, S), "/usr/local/bin/amp", &["amp"]);
    let mut r = exec((30, S), 1, "/bin/nope", &["nope"], 2 * S);
    r.outcome = ExecOutcome::Failed { errno: 2 };
    t.on_exec(&r);
    assert_eq!(agent(&t, 30).as_deref(), Some("amp"));
}

#[test]
fn daemon_start_with_agents_already_running() {
    let mut t = table();
    let ticks = |s: u64| s * S / super::table::NS_PER_TICK;
    t.seed(vec![
        SeedProcess {
            pid: 1,
            ppid: 0,
            start_ticks: 0,
            exe: Some("/sbin/init".into()),
            ..Default::default()
        },
        SeedProcess {
            pid: 900,
            ppid: 1,
            start_ticks: ticks(100),
            exe: Some("/usr/bin/node".into()),
            argv: vec![
                "node".into(),
                "/usr/lib/node_modules/@google/gemini-cli/dist/index.js".into(),
            ],
            ..Default::default()
        },
        SeedProcess {
            pid: 901,
            ppid: 900,
            start_ticks: ticks(101),
            exe: Some("/bin/bash".into()),
            ..Default::default()
        },
        // A shell the agent started, since re-parented to init: only its marker tells.
        SeedProcess {
            pid: 950,
            ppid: 1,
            start_ticks: ticks(102),
            exe: Some("/bin/bash".into()),
            markers: vec![("CLAUDECODE".into(), "1".into())],
            ..Default::default()
        },
    ]);
    // Live events after the seed use nanosecond start times; keys agree at tick granularity.
    spawn(
        &mut t,
        (901, 101 * S + 3_000_000),
        (902, 200 * S),
        "/bin/rm",
        &["rm", "-rf", "/"],
    );
    assert_eq!(agent(&t, 902).as_deref(), Some("gemini-cli"));
    spawn(
        &mut t,
        (950, 102 * S),
        (951, 201 * S),
        "/usr/bin/git",
        &["git", "push", "-f"],
    );
    let a = t.agent_of(951).expect("marker");
    assert_eq!(
        (a.id.as_ref(), a.kind),
        ("claude-code", AgentKind::EnvMarker)
    );
    assert_eq!(agent(&t, 1), None);
}

#[test]
fn zero_config_marks_the_caller_not_its_shell() {
    let mut t = table();
    seeded_init(&mut t);
    spawn(&mut t, INIT, (40, S), "/bin/bash", &["bash"]);
    spawn(
        &mut t,
        (40, S),
        (41, 2 * S),
        "/usr/bin/python3.12",
        &["python3", "/home/u/my_agent.py"],
    );
    spawn(
        &mut t,
        (41, 2 * S),
        (42, 3 * S),
        "/bin/bash",
        &["bash", "-c", "rm -rf /tmp/x"],
    );
    assert_eq!(agent(&t, 42), None);
    let a = t.mark_inference(41, 2 * S, 4 * S).expect("marked");
    assert_eq!((a.id.as_ref(), a.kind), ("my_agent", AgentKind::ZeroConfig));
    assert_eq!(agent(&t, 42).as_deref(), Some("my_agent"));
    assert_eq!(agent(&t, 40), None, "the shell above is not an agent");
    // A native program is labelled by its executable.
    spawn(
        &mut t,
        INIT,
        (50, 5 * S),
        "/opt/tools/My-Bot.v2",
        &["My-Bot.v2"],
    );
    assert_eq!(
        t.mark_inference(50, 5 * S, 6 * S)
            .map(|a| a.id.to_string())
            .as_deref(),
        Some("my-bot_v2")
    );
}

#[test]
fn a_catalog_agents_helper_interpreter_is_not_a_new_agent() {
    let mut t = table();
    spawn(&mut t, INIT, (60, S), "/usr/local/bin/claude", &["claude"]);
    spawn(
        &mut t,
        (60, S),
        (61, 2 * S),
        "/usr/bin/node",
        &["node", "helper.js"],
    );
    let a = t.mark_inference(61, 2 * S, 3 * S).expect("agent");
    assert_eq!(
        (a.id.as_ref(), a.kind, a.key.pid),
        ("claude-code", AgentKind::Catalog, 60)
    );
    // A non-interpreter under an agent that calls an LLM is its own agent (nearest wins).
    spawn(&mut t, (60, S), (62, 4 * S), "/usr/bin/curl", &["curl"]);
    assert_eq!(
        t.mark_inference(62, 4 * S, 5 * S)
            .map(|a| a.id.to_string())
            .as_deref(),
        Some("curl")
    );
}

#[test]
fn an_inference_mark_before_the_process_is_parked() {
    let mut t = table();
    assert_eq!(t.mark_inference(70, 7 * S, 8 * S), None);
    assert_eq!(t.stats().parked, 1);
    spawn(&mut t, INIT, (70, 7 * S), "/opt/x/llmbot", &["llmbot"]);
    assert_eq!(agent(&t, 70).as_deref(), Some("llmbot"));
    // Expired parks are forgotten.
    t.mark_inference(71, 9 * S, 9 * S);
    t.tick(9 * S + TableLimits::default().park_ttl_ns);
    spawn(&mut t, INIT, (71, 9 * S), "/opt/x/late", &["late"]);
    assert_eq!(agent(&t, 71), None);
    assert_eq!(t.stats().parked_expired, 1);
}

#[test]
fn zero_config_labels_are_capped() {
    let mut t = ProcessTable::new(
        Arc::new(Catalog::builtin()),
        TableLimits {
            max_labels: 3,
            ..Default::default()
        },
    );
    let mut labels = Vec::new();
    for i in 0..6u32 {
        let p = (1000 + i, u64::from(i + 1) * S);
        let exe = format!("/opt/bot{i}");
        spawn(&mut t, INIT, p, &exe, &[exe.as_str()]);
        labels.push(
            t.mark_inference(p.0, p.1, 0)
                .map(|a| a.id.to_string())
                .expect("marked"),
        );
    }
    assert_eq!(labels, ["bot0", "bot1", "bot2", "other", "other", "other"]);
    assert_eq!(t.stats().label_overflow, 3);
}

#[test]
fn a_script_on_stdin_or_inline_code_is_labelled_by_its_interpreter() {
    let mut t = table();
    let runs: &[(&str, &[&str])] = &[
        ("/usr/bin/python3.12", &["python3", "-", "run-8f3a"]),
        ("/usr/bin/python3.12", &["python3", "-", "run-77c1"]),
        ("/usr/bin/python3.12", &["python3", "-c", "import x", "run-1d2e"]),
        ("/usr/bin/node", &["node", "-", "run-5b6c"]),
        ("/usr/bin/node", &["node", "-e", "fetch(u)", "run-9e0f"]),
        ("/usr/bin/bash", &["bash", "-s", "run-0a1b"]),
    ];
    let mut labels = Vec::new();
    for (i, (exe, argv)) in runs.iter().enumerate() {
        let p = (2000 + i as u32, (i as u64 + 1) * S);
        spawn(&mut t, INIT, p, exe, argv);
        labels.push(
            t.mark_inference(p.0, p.1, 0)
                .map(|a| a.id.to_string())
                .expect("marked"),
        );
    }
    assert_eq!(
        labels,
        ["python3_12", "python3_12", "python3_12", "node", "node", "bash"]
    );
    // A script file still names its agent.
    spawn(
        &mut t,
        INIT,
        (2100, 9 * S),
        "/usr/bin/python3.12",
        &["python3", "-W", "ignore", "/home/u/bot.py"],
    );
    assert_eq!(
        t.mark_inference(2100, 9 * S, 0).map(|a| a.id.to_string()).as_deref(),
        Some("bot")
    );
}

#[test]
fn memory_stays_bounded_under_churn() {
    let limits = TableLimits {
        max_entries: 100,
        ..Default::default()
    };
    let mut t = ProcessTable::new(Arc::new(Catalog::builtin()), limits);
    let agent_p = (2, S);
    spawn(&mut t, INIT, agent_p, "/usr/local/bin/claude", &["claude"]);
    for i in 0..20_000u32 {
        let child = (10_000 + (i % 5_000), (10 + u64::from(i)) * S);
        spawn(&mut t, agent_p, child, "/bin/true", &["true"]);
        // Half the exits are lost (ring-buffer drops): eviction must still hold the bound.
        if i % 2 == 0 {
            t.on_exit(&exit(child, (11 + u64::from(i)) * S));
        }
        assert!(t.len() <= 100, "{} entries at {i}", t.len());
    }
    assert!(t.stats().evictions > 19_000);
    assert_eq!(
        agent(&t, 2).as_deref(),
        Some("claude-code"),
        "the agent survives eviction"
    );
    // The latest child is still attributed.
    assert_eq!(
        agent(&t, 10_000 + (19_999 % 5_000)).as_deref(),
        Some("claude-code")
    );
}
