//! The governor on recorded sequences: attribution of exchanges and commands, zero-config and
//! catalog agents, de-duplicated destructive commands with exact audit records.

use std::time::{Duration, SystemTime};

use super::*;
use crate::{
    enforce::Mechanism,
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
    let mut g = Governor::new(Arc::new(Catalog::builtin()), RuleSet::builtin(), host, super::LinkLimits::default());
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
    }], &mut Vec::new());
    g
}

/// Tracks pids to start times so tests name processes by pid alone.
struct Run {
    g: Governor,
    out: Vec<Governed>,
    scope: Vec<ScopeAdd>,
    /// (tgid, root) of every scope addition taken by `scope()`.
    roots: Vec<(u32, u32)>,
    ts: u64,
}

impl Run {
    fn new() -> Self {
        Self {
            g: governor(),
            out: Vec::new(),
            scope: Vec::new(),
            roots: Vec::new(),
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
        self.g.push(&o, at, &mut NoLookup, &mut self.out, &mut self.scope);
        std::mem::take(&mut self.out)
    }

    /// fork + exec of `argv` as `pid` under `parent`.
    fn spawn(&mut self, parent: u32, pid: u32, exe: &str, argv: &[&str]) -> Vec<Governed> {
        self.spawn_with(parent, pid, exe, argv, false)
    }

    /// [`Self::spawn`], the exec held by the gate or not.
    fn spawn_with(&mut self, parent: u32, pid: u32, exe: &str, argv: &[&str], gated: bool) -> Vec<Governed> {
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
            gated,
            outcome: ExecOutcome::Ran,
        };
        self.push(Output::Exec(r))
    }

    fn exchange(&mut self, pid: u32, inference: bool) -> Vec<Governed> {
        self.exchange_calls(pid, inference, &[])
    }

    /// An exchange whose response asked for `calls` (tool, call id, arguments).
    fn exchange_calls(&mut self, pid: u32, inference: bool, calls: &[(&str, &str, &str)]) -> Vec<Governed> {
        let tool_calls = calls
            .iter()
            .map(|(tool, id, args)| crate::providers::ToolCall {
                tool: (*tool).into(),
                call_id: (*id).into(),
                args: crate::providers::Args::new(args),
            })
            .collect();
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
            tool_calls,
            mcp_calls: Vec::new(),
        };
        self.push(Output::Exchange(x))
    }
}

impl Run {
    /// The gate's record of `argv` run by `pid`, judged in `mode`.
    fn gate(&mut self, pid: u32, argv: &[&str], mode: Mode, agent: Option<&str>) -> Vec<Governed> {
        use crate::enforce::{EnforceConfig, ExecRequest, GateRecord, Judge, Mechanism};
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let judge = Judge::new(
            Arc::new(RuleSet::builtin()),
            Arc::new(self.g.host().clone()),
            EnforceConfig { mode, ..EnforceConfig::default() },
        );
        let req = ExecRequest {
            pid,
            tid: pid,
            uid: Some(1000),
            in_agent_tree: true,
            argv: &argv,
            argv_complete: true,
            cwd: Some(std::path::Path::new(PROJ)),
            mechanism: Mechanism::Fanotify,
        };
        let v = judge.judge(&req);
        let rec = GateRecord {
            ts_ns: self.ts,
            pid,
            tid: pid,
            uid: Some(1000),
            agent: agent.map(str::to_owned),
            cwd: Some(PROJ.into()),
            argv: argv.clone(),
            mechanism: Mechanism::Fanotify,
            decision: v.decision,
            matches: v.matches,
            timed_out: false,
            latency_ns: 1_000,
            request: None,
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        self.g.gate(&rec, at, &mut self.out);
        std::mem::take(&mut self.out)
    }

    fn inference_request(&mut self, pid: u32) {
        self.push(Output::InferenceRequest { conn: ConnId { pid, conn: 1 }, ts_ns: self.ts });
    }

    fn scope(&mut self) -> Vec<(u32, String)> {
        self.roots.extend(self.scope.iter().map(|s| (s.tgid, s.root)));
        self.scope.drain(..).map(|s| (s.tgid, s.agent.to_string())).collect()
    }
}

use crate::enforce::Mode;

fn agent_of(g: &[Governed]) -> Vec<Option<&str>> {
    g.iter()
        .map(|r| match r {
            Governed::Exchange { agent, .. } | Governed::Command { agent, .. } => agent.as_deref(),
            Governed::Destructive(a) => a.agent.as_deref(),
            Governed::ApiCall(a) => a.agent.as_deref(),
            Governed::Deleted { agent, .. } | Governed::IoUring { agent, .. } => Some(agent.as_str()),
            Governed::Deletion(d) => d.agent.as_deref(),
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
        r#"{"time":"2023-11-14T22:13:20Z","host":"ws1","agent":"helper","process_chain":["zsh","python3","bash"],"pid":300,"uid":1000,"user":"dev","cwd":"/home/dev/proj","argv":["bash","-c","rm -rf /home/dev; true"],"rule_id":"fs.rm-rf-home","category":"file_deletion","severity":"critical","why":"`rm -rf /home/dev` (via bash): flags -r -f, path `/home/dev` is the home directory","action":"observed","mechanism":null,"proposed_by":null}"#
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

#[test]
fn scope_grows_when_an_agent_is_identified_and_only_then() {
    let mut r = Run::new();
    let cli = "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js";
    r.spawn(100, 200, "/usr/bin/node", &["node", cli]);
    assert_eq!(r.scope(), [(200, "claude-code".to_owned())]);
    // Its children inherit scope in the kernel, but one forked before the parent's entry was
    // written would not: each fork in an agent's tree is added again (a duplicate is harmless).
    r.spawn(200, 300, "/usr/bin/bash", &["bash", "-c", "ls"]);
    r.spawn(300, 301, "/usr/bin/node", &["node", cli]);
    assert_eq!(r.scope(), [(300, "claude-code".to_owned()), (301, "claude-code".to_owned())]);

    // A zero-config agent: its tree joins at its first inference request.
    r.spawn(100, 400, "/usr/bin/python3", &["python3", "helper.py"]);
    r.spawn(400, 401, "/usr/bin/sleep", &["sleep", "5"]);
    r.spawn(100, 500, "/usr/bin/vim", &["vim"]);
    assert_eq!(r.scope(), Vec::<(u32, String)>::new());
    r.inference_request(400);
    assert_eq!(r.scope(), [(400, "helper".to_owned()), (401, "helper".to_owned())]);
    // The exchange that follows, and later requests, change nothing.
    r.exchange(400, true);
    r.inference_request(400);
    assert_eq!(r.scope(), Vec::<(u32, String)>::new());
    // A helper script of an agent is no agent of its own: its fork is re-added under the
    // agent, its own request adds nothing.
    r.spawn(200, 600, "/usr/bin/python3", &["python3", "tool.py"]);
    assert_eq!(r.scope(), [(600, "claude-code".to_owned())]);
    r.inference_request(600);
    assert_eq!(r.scope(), Vec::<(u32, String)>::new());
    // Each names the agent's own process, the one the request pause never holds.
    assert_eq!(r.roots, [(200, 200), (300, 200), (301, 200), (400, 400), (401, 400), (600, 200)]);
}

#[test]
fn seeding_puts_running_agents_in_scope() {
    let mut g = governor();
    let mut scope = Vec::new();
    let cli = "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js";
    let seed = |pid, ppid, argv: &[&str]| SeedProcess {
        pid,
        ppid,
        start_ticks: u64::from(pid),
        exe: Some("/usr/bin/node".into()),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        ..SeedProcess::default()
    };
    g.seed(vec![seed(700, 100, &["node", cli]), seed(701, 700, &["node", "x.js"]), seed(702, 100, &["node", "y.js"])], &mut scope);
    let got: Vec<(u32, &str)> = scope.iter().map(|s| (s.tgid, &*s.agent)).collect();
    assert_eq!(got, [(700, "claude-code"), (701, "claude-code")]);
}

#[test]
fn a_gate_record_is_audited_once_with_its_outcome_and_mechanism() {
    let mut r = Run::new();
    let cli = "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js";
    r.spawn(100, 200, "/usr/bin/node", &["node", cli]);
    // The gate held the shell's exec: the engine does not judge it again.
    let script = ["bash", "-c", "make && rm -rf /srv/x"];
    let out = r.spawn_with(200, 300, "/usr/bin/bash", &script, true);
    assert_eq!(agent_of(&out), [Some("claude-code")]);
    let out = r.gate(300, &script, Mode::Monitor, None);
    let a = audits(&out);
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].rule_id.as_str(), a[0].action, a[0].mechanism), ("fs.rm-rf-outside-worktree", Action::WouldBlock, Some(Mechanism::Fanotify)));
    assert_eq!((a[0].agent.as_deref(), a[0].user.as_deref()), (Some("claude-code"), Some("dev")));
    assert_eq!(a[0].process_chain, ["zsh", "node", "bash"]);
    // The child's own exec, judged by the engine (not gated) or by the gate: one record in all.
    assert!(audits(&r.spawn(300, 301, "/usr/bin/rm", &["rm", "-rf", "/srv/x"])).is_empty());
    assert!(audits(&r.gate(301, &["rm", "-rf", "/srv/x"], Mode::Monitor, None)).is_empty());
    assert_eq!(r.g.suppressed_repeats(), 2);
    // A process the table does not know: the gate's agent name, a chain of the command alone.
    let out = r.gate(900, &["terraform", "destroy"], Mode::Enforce, Some("codex"));
    let a = audits(&out);
    assert_eq!((a[0].agent.as_deref(), a[0].action, a[0].process_chain.clone()), (Some("codex"), Action::Blocked, vec!["terraform".to_owned()]));
    // An engine record of an exec the gate did not hold.
    let a = r.spawn(100, 901, "/usr/bin/dropdb", &["dropdb", "prod"]);
    assert_eq!((audits(&a)[0].action, audits(&a)[0].mechanism), (Action::Observed, None));
}

fn cost_of(out: &[Governed]) -> Vec<Option<crate::cost::Cost>> {
    out.iter()
        .filter_map(|g| match g {
            Governed::Exchange { cost, .. } => Some(*cost),
            _ => None,
        })
        .collect()
}

fn proposed(g: &[Governed]) -> Vec<Option<&str>> {
    g.iter()
        .map(|r| match r {
            Governed::Command { proposed_by, .. } => proposed_by.as_ref().map(|p| p.call_id.as_str()),
            Governed::Destructive(a) => a.proposed_by.as_ref().map(|p| p.call_id.as_str()),
            Governed::Exchange { .. } => Some("exchange"),
            Governed::ApiCall(a) => a.proposed_by.as_ref().map(|p| p.call_id.as_str()),
            Governed::Deleted { .. } | Governed::IoUring { .. } | Governed::Deletion(_) => None,
        })
        .collect()
}

#[test]
fn a_counted_exchange_carries_its_cost_and_others_none() {
    use crate::cost::{Cost, PriceFile, PriceTable};
    let mut r = Run::new();
    r.spawn(100, 200, "/usr/bin/python3", &["python3", "helper.py"]);
    // claude-sonnet-4-5 at 3 $/M input and 15 $/M output: 3×3 + 4×15 = 69 µ$.
    let [Some(Cost::Usd(usd))] = cost_of(&r.exchange(200, true))[..] else { panic!("no cost") };
    assert!((usd - 0.000_069).abs() < 1e-15, "{usd}");
    // Token counting is not inference: no cost at all (not even "unpriced").
    assert_eq!(cost_of(&r.exchange(200, false)), [None]);
    // The table the engine was given is the one that prices.
    let file = PriceFile::parse("[[model]]\nname = \"x\"\nproviders = [\"anthropic\"]\nmatch = \"claude-*\"\ninput = 1.0\ncache_read = 1.0\noutput = 1.0\n").unwrap();
    r.g = governor().with_prices(Arc::new(PriceTable::builtin().with_overrides(file, "test").unwrap()));
    r.spawn(100, 200, "/usr/bin/python3", &["python3", "helper.py"]);
    let [Some(Cost::Usd(usd))] = cost_of(&r.exchange(200, true))[..] else { panic!("no cost") };
    assert!((usd - 0.000_007).abs() < 1e-15, "{usd}");
}

#[test]
fn a_proposed_command_and_its_children_are_linked_to_the_call() {
    let mut r = Run::new();
    let cli = "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js";
    r.spawn(100, 200, "/usr/bin/node", &["node", cli]);
    let script = r#"{"command":"rm -rf /srv/x &&   make","description":"Clean up"}"#;
    let x = r.exchange_calls(200, true, &[("Read", "toolu_0", r#"{"path":"/srv"}"#), ("Bash", "toolu_1", script)]);
    // Sinks get the calls without their arguments.
    let line = serde_json::to_string(&x[0]).unwrap();
    assert!(line.contains(r#""tool_calls":[{"tool":"Read","call_id":"toolu_0"},{"tool":"Bash","call_id":"toolu_1"}]"#), "{line}");
    assert!(!line.contains("Clean up") && !format!("{x:?}").contains("Clean up"));

    let bash = r.spawn(200, 300, "/usr/bin/bash", &["bash", "-c", "-l", "rm -rf /srv/x && make"]);
    assert_eq!(proposed(&bash), [Some("toolu_1"), Some("toolu_1")], "{bash:#?}");
    let a = audits(&bash);
    let json = serde_json::to_string(a[0]).unwrap();
    assert!(
        json.ends_with(r#""proposed_by":{"provider":"anthropic","model":"claude-sonnet-4-5","tool":"Bash","call_id":"toolu_1","at":"2023-11-14T22:13:20Z"}}"#),
        "{json}"
    );
    // The shell's children inherit, the one it runs in its place (exec) too.
    assert_eq!(proposed(&r.spawn(300, 301, "/usr/bin/make", &["make"])), [Some("toolu_1")]);
    assert_eq!(proposed(&r.spawn(301, 302, "/usr/bin/cc", &["cc", "-c", "a.c"])), [Some("toolu_1")]);
    // The same call may propose several commands; an unrelated one is nobody's.
    assert_eq!(proposed(&r.spawn(200, 303, "/usr/bin/make", &["make"])), [Some("toolu_1")]);
    assert_eq!(proposed(&r.spawn(200, 304, "/usr/bin/git", &["git", "status"])), [None]);
    // A human's shell outside the agent is never linked, even to the same command.
    assert_eq!(proposed(&r.spawn(100, 305, "/usr/bin/make", &["make"])), [None]);
}

#[test]
fn a_command_after_the_window_or_before_the_response_is_not_linked() {
    let mut r = Run::new();
    r.spawn(100, 200, "/usr/bin/python3", &["python3", "agent.py"]);
    r.exchange_calls(200, true, &[("shell", "call_1", r#"{"command":["bash","-lc","ls -la"]}"#)]);
    assert_eq!(proposed(&r.spawn(200, 300, "/usr/bin/ls", &["ls", "-la"])), [Some("call_1")]);
    r.ts += LinkLimits::default().window_ns + S;
    assert_eq!(proposed(&r.spawn(200, 301, "/usr/bin/ls", &["ls", "-la"])), [None]);
    // A later response proposes it again: linked to the newer call.
    r.exchange_calls(200, true, &[("shell", "call_2", r#"{"command":["bash","-lc","ls -la"]}"#)]);
    assert_eq!(proposed(&r.spawn(200, 302, "/usr/bin/ls", &["ls", "-la"])), [Some("call_2")]);
}

#[test]
fn a_gate_record_names_the_call_before_the_exec_runs() {
    let mut r = Run::new();
    let cli = "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js";
    r.spawn(100, 200, "/usr/bin/node", &["node", cli]);
    r.exchange_calls(200, true, &[("Bash", "toolu_9", r#"{"command":"terraform destroy"}"#)]);
    r.spawn_with(200, 300, "/usr/bin/bash", &["bash", "-c", "echo"], true);
    let a = r.gate(300, &["terraform", "destroy"], Mode::Monitor, None);
    assert_eq!(proposed(&a), [Some("toolu_9")]);
}

#[test]
fn the_linker_stays_bounded_under_a_flood() {
    let limits = LinkLimits { window_ns: 1_000 * S, max_calls: 100, max_linked: 50 };
    let mut l = link::Linker::new(limits);
    let by = ProposedBy { provider: Provider::OpenaiChat, model: None, tool: String::new(), call_id: String::new(), at: String::new() };
    for i in 0..5_000u64 {
        let args = format!(r#"{{"cmd":"echo {i}"}}"#);
        let call = crate::providers::ToolCall { tool: "bash".into(), call_id: format!("c{i}"), args: crate::providers::Args::new(&args) };
        l.propose(1, i, &[call], &by);
    }
    for pid in 0..5_000u32 {
        let key = ProcKey::from_ns(pid, 1);
        let argv = ["echo".to_owned(), "4999".to_owned()];
        assert!(l.link(key, 1, &argv, 10_000, std::iter::empty(), true).is_some());
    }
    assert_eq!(l.held(), (100, 50));
    assert_eq!((l.stats.calls, l.stats.calls_evicted, l.stats.commands_linked), (5_000, 4_900, 5_000));
    // The oldest calls went first: the newest is still there, the first is not.
    let old = ["echo".to_owned(), "0".to_owned()];
    assert!(l.link(ProcKey::from_ns(9, 9), 1, &old, 10_000, std::iter::empty(), false).is_none());
}

#[test]
fn a_call_announced_while_its_response_streams_links_the_command_run_before_the_response_ends() {
    let mut r = Run::new();
    r.spawn(100, 200, "/usr/bin/codex", &["codex"]);
    let call = crate::providers::ToolCall {
        tool: "shell".into(),
        call_id: "call_early".into(),
        args: crate::providers::Args::new(r#"{"command":["bash","-lc","cargo build"]}"#),
    };
    let calls = crate::protocols::EarlyCalls { provider: Provider::OpenaiResponses, model: Some("gpt-5-codex".into()), calls: vec![call] };
    r.push(Output::ToolCalls { conn: ConnId { pid: 200, conn: 1 }, ts_ns: r.ts, calls });
    let out = r.spawn(200, 300, "/usr/bin/bash", &["bash", "-lc", "cargo build"]);
    assert_eq!(proposed(&out), [Some("call_early")]);
    // The exchange repeats the call: still one call held.
    r.exchange_calls(200, true, &[("shell", "call_early", r#"{"command":["bash","-lc","cargo build"]}"#)]);
    assert_eq!(r.g.linker.held().0, 1);
    assert_eq!(proposed(&r.spawn(200, 301, "/usr/bin/cargo", &["cargo", "build"])), [Some("call_early")]);
}

fn api_calls(g: &[Governed]) -> Vec<&crate::audit::ApiCallRecord> {
    g.iter().filter_map(|g| if let Governed::ApiCall(r) = g { Some(r) } else { None }).collect()
}

#[test]
fn an_api_call_of_a_proposed_script_names_the_call_and_outsiders_are_not_judged() {
    let mut r = Run::new();
    let cli = "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js";
    r.spawn(100, 200, "/usr/bin/node", &["node", cli]);
    r.exchange_calls(200, true, &[("Bash", "toolu_9", r#"{"command":"python3 cleanup.py"}"#)]);
    r.spawn(200, 300, "/usr/bin/python3", &["python3", "cleanup.py"]);
    r.spawn(100, 301, "/usr/bin/python3", &["python3", "cleanup.py"]);
    let delete = |pid| Output::ApiRequest {
        conn: ConnId { pid, conn: 7 },
        request: crate::requests::ApiRequest {
            method: "DELETE".into(),
            host: Some("10.0.0.1:6443".into()),
            target: "/api/v1/namespaces/prod".into(),
            ..Default::default()
        },
    };
    let out = r.push(delete(300));
    let calls = api_calls(&out);
    assert_eq!(calls.len(), 1, "{out:?}");
    let c = calls[0];
    assert_eq!((c.agent.as_deref(), c.rule_id.as_str(), c.action), (Some("claude-code"), "k8s.api-delete-namespace", Action::WouldBlock));
    assert_eq!(c.process_chain.last().map(String::as_str), Some("python3"));
    assert_eq!(c.proposed_by.as_ref().map(|p| p.call_id.as_str()), Some("toolu_9"));
    assert_eq!((c.user.as_deref(), c.cwd.as_deref()), (Some("dev"), Some(PROJ)));
    // The same request from a human's shell: no agent, not judged.
    assert!(r.push(delete(301)).is_empty());
    // `[enforce] mode = "off"`: recorded as observed.
    r.g.mode = Mode::Off;
    assert_eq!(api_calls(&r.push(delete(300)))[0].action, Action::Observed);
}

#[test]
fn a_refusal_captured_before_its_pause_is_left_to_the_gate_record() {
    let mut r = Run::new();
    let cli = "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js";
    r.spawn(100, 200, "/usr/bin/node", &["node", cli]);
    r.spawn(200, 300, "/usr/local/bin/kubectl", &["kubectl", "delete", "ns", "prod"]);
    r.g.mode = Mode::Enforce;
    let request = |method: &str| crate::requests::ApiRequest {
        method: method.into(),
        host: Some("10.0.0.1:6443".into()),
        target: "/api/v1/namespaces/prod".into(),
        ..Default::default()
    };
    let on = |conn, method| Output::ApiRequest { conn: ConnId { pid: 300, conn }, request: request(method) };
    // Go's write is captured at its entry, flagged: the pause stopped it there.
    assert!(r.push(Output::PausedWrite { conn: ConnId { pid: 300, conn: 7 } }).is_empty());
    assert!(api_calls(&r.push(on(7, "DELETE"))).is_empty(), "the gate records the refusal");
    // Another connection of the process, never paused (a stack the pause does not hold): its
    // match still went out, and is recorded.
    assert_eq!(api_calls(&r.push(on(8, "DELETE")))[0].action, Action::WouldBlock);
    // Monitor mode: the pause never refuses, the decoder's record is the one.
    r.g.mode = Mode::Monitor;
    assert_eq!(api_calls(&r.push(on(7, "DELETE")))[0].action, Action::WouldBlock);
}
