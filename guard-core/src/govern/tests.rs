//! The governor on recorded sequences: attribution of exchanges and commands, zero-config and
//! catalog agents, de-duplicated destructive commands with exact audit records.

use std::time::{Duration, SystemTime};

use super::*;
use crate::{
    events::{ConnId, Fork},
    protocols::Timings,
    providers::{Endpoint, Provider, Usage},
};

const S: u64 = 1_000_000_000;
const PROJ: &str = "/home/dev/proj";

fn governor() -> Governor {
    let host = Host {
        name: "ws1".into(),
        users: HashMap::from([(
            1000,
            User {
                name: "dev".into(),
                home: Some("/home/dev".into()),
            },
        )]),
    };
    let mut g = Governor::new(Arc::new(Catalog::builtin()), RuleSet::builtin(), host);
    g.seed(vec![SeedProcess {
        pid: 100,
        ppid: 1,
        start_ticks: 5,
        uid: Some(1000),
        exe: Some("/usr/bin/zsh".into()),
        argv: vec!["-zsh".into()],
        comm: Some("zsh".into()),
        cwd: Some(PROJ.into()),
        ..SeedProcess::default()
    }]);
    g
}

/// Tracks pids to start times so tests name processes by pid alone.
struct Run {
    g: Governor,
    out: Vec<Governed>,
    ts: u64,
}

impl Run {
    fn new() -> Self {
        Self {
            g: governor(),
            out: Vec::new(),
            ts: 10 * S,
        }
    }

    fn start(pid: u32) -> u64 {
        if pid == 100 {
            5 * NS_PER_TICK
        } else {
            u64::from(pid) * S
        }
    }

    fn push(&mut self, o: Output) -> Vec<Governed> {
        self.ts += S / 10;
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        self.g.push(&o, at, &mut NoLookup, &mut self.out);
        std::mem::take(&mut self.out)
    }

    /// fork + exec of `argv` as `pid` under `parent`.
    fn spawn(&mut self, parent: u32, pid: u32, exe: &str, argv: &[&str]) -> Vec<Governed> {
        let f = Fork {
            ts_ns: self.ts,
            parent_pid: parent,
            parent_tid: parent,
            parent_start_time_ns: Self::start(parent),
            child_pid: pid,
            child_start_time_ns: Self::start(pid),
            uid: 1000,
            comm: "x".into(),
        };
        self.push(Output::Fork(f));
        let r = ExecRecord {
            ts_ns: self.ts + 1,
            pid,
            tid: pid,
            ppid: Some(parent),
            uid: Some(1000),
            start_time_ns: Some(Self::start(pid)),
            filename: exe.into(),
            exe: Some(exe.into()),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            argv_truncated: false,
            outcome: ExecOutcome::Ran,
        };
        self.push(Output::Exec(r))
    }

    fn exchange(&mut self, pid: u32, inference: bool) -> Vec<Governed> {
        let x = Exchange {
            conn: Some(ConnId { pid, conn: 1 }),
            role: Role::Client,
            protocol: crate::protocols::exchange::Protocol::Http1,
            provider: Provider::Anthropic,
            endpoint: if inference {
                Endpoint::Messages
            } else {
                Endpoint::CountTokens
            },
            inference,
            method: Some("POST".into()),
            path: Some("/v1/messages".into()),
            host: None,
            model: Some("claude-sonnet-4-5".into()),
            status: Some(200),
            streamed: false,
            complete: true,
            incomplete_reason: None,
            error_type: None,
            timings: Timings {
                start_ns: Some(self.ts),
                first_byte_ns: Some(self.ts + 1),
                end_ns: self.ts + 2,
            },
            usage: Usage {
                input: 3,
                output: 4,
                ..Usage::default()
            },
            usage_seen: inference,
        };
        self.push(Output::Exchange(x))
    }
}

fn agent_of(g: &[Governed]) -> Vec<Option<&str>> {
    g.iter()
        .map(|r| match r {
            Governed::Exchange { agent, .. } | Governed::Command { agent, .. } => agent.as_deref(),
            Governed::Destructive(a) => a.agent.as_deref(),
        })
        .collect()
}

fn audits(g: &[Governed]) -> Vec<&AuditRecord> {
    g.iter()
        .filter_map(|r| {
            if let Governed::Destructive(a) = r {
                Some(a)
            } else {
                None
            }
        })
        .collect()
}

use crate::process::table::NS_PER_TICK;

#[test]
fn an_inference_call_makes_its_program_a_zero_config_agent_for_what_it_runs() {
    let mut r = Run::new();
    assert_eq!(
        agent_of(&r.spawn(100, 200, "/usr/bin/python3", &["python3", "helper.py"])),
        [None]
    );
    // Not inference: no mark.
    assert_eq!(agent_of(&r.exchange(200, false)), [None]);
    assert_eq!(agent_of(&r.exchange(200, true)), [Some("helper")]);

    let bash = r.spawn(
        200,
        300,
        "/usr/bin/bash",
        &["bash", "-c", "rm -rf /home/dev; true"],
    );
    assert_eq!(
        agent_of(&bash),
        [Some("helper"), Some("helper")],
        "{bash:#?}"
    );
    let a = audits(&bash);
    let json = serde_json::to_string(a[0]).unwrap();
    assert_eq!(
        json,
        r#"{"time":"2023-11-14T22:13:20Z","host":"ws1","agent":"helper","process_chain":["zsh","python3","bash"],"pid":300,"uid":1000,"user":"dev","cwd":"/home/dev/proj","argv":["bash","-c","rm -rf /home/dev; true"],"rule_id":"fs.rm-rf-home","category":"file_deletion","severity":"critical","why":"`rm -rf /home/dev` (via bash): flags -r -f, path `/home/dev` is the home directory","action":"observed"}"#
    );
    // bash forks rm: the same action again, counted once.
    let rm = r.spawn(300, 301, "/usr/bin/rm", &["rm", "-rf", "/home/dev"]);
    assert_eq!(agent_of(&rm), [Some("helper")]);
    assert_eq!(r.g.suppressed_repeats(), 1);

    // Routine work inside the working tree is not flagged.
    assert_eq!(
        agent_of(&r.spawn(200, 302, "/usr/bin/rm", &["rm", "-rf", "./target"])),
        [Some("helper")]
    );
    assert_eq!(r.g.table().agent_counts().get("helper"), Some(&4));
}

#[test]
fn a_non_agent_shell_is_attributed_to_no_agent() {
    let mut r = Run::new();
    r.spawn(100, 200, "/usr/bin/python3", &["python3", "helper.py"]);
    r.exchange(200, true);
    let out = r.spawn(
        100,
        400,
        "/usr/bin/bash",
        &["bash", "-c", "rm -rf /home/dev"],
    );
    assert_eq!(agent_of(&out), [None, None]);
    assert_eq!(audits(&out)[0].process_chain, ["zsh", "bash"]);
    assert_eq!(agent_of(&r.spawn(100, 401, "/usr/bin/ls", &["ls"])), [None]);
}

#[test]
fn a_catalog_agent_is_known_before_any_call_and_through_sudo_and_env() {
    let mut r = Run::new();
    let cli = "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js";
    assert_eq!(
        agent_of(&r.spawn(100, 200, "/usr/bin/node", &["node", cli])),
        [Some("claude-code")]
    );
    let out = r.spawn(
        200,
        300,
        "/usr/bin/sudo",
        &[
            "sudo", "env", "A=1", "git", "push", "--force", "origin", "main",
        ],
    );
    assert_eq!(agent_of(&out), [Some("claude-code"), Some("claude-code")]);
    assert_eq!(audits(&out)[0].rule_id, "vcs.git-push-force");
    // Its own inference calls keep the catalog id.
    assert_eq!(agent_of(&r.exchange(200, true)), [Some("claude-code")]);
}
