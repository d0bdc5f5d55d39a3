//! A run with recording on, replayed: the same records.

use std::{collections::HashMap, time::UNIX_EPOCH};

use super::*;
use crate::{
    events::{Exec, ExecArgv, ExecResult, ExecSyscall},
    govern::User,
};

/// The system as `guard run` would see it: pid 9 is Claude Code (found only by asking),
/// and every process works in /srv/app.
struct Live;

impl Lookup for Live {
    fn process(&mut self, pid: u32) -> Option<SeedProcess> {
        (pid == 9).then(|| SeedProcess {
            pid: 9,
            ppid: 1,
            start_ticks: 100,
            exe: Some("/usr/bin/claude".into()),
            argv: vec!["claude".into()],
            comm: Some("claude".into()),
            ..SeedProcess::default()
        })
    }
    fn cwd(&mut self, _: u32) -> Option<String> {
        Some("/srv/app".into())
    }
}

/// `rm -rf ../other` run by pid 10, a child of pid 9, which the table has never seen.
fn rm(pid: u32, ts_ns: u64) -> Vec<Event> {
    let argv = ExecArgv {
        ts_ns,
        pid,
        tid: pid,
        syscall: ExecSyscall::Execve,
        filename: "/usr/bin/rm".into(),
        argv: vec!["rm".into(), "-rf".into(), "../other".into()],
        truncated: false,
        gated: false,
    };
    let exec = Exec {
        ts_ns: ts_ns + 1,
        pid,
        tid: pid,
        old_tid: pid,
        ppid: 9,
        uid: 1000,
        start_time_ns: ts_ns,
        comm: "rm".into(),
        filename: "/usr/bin/rm".into(),
    };
    let result = ExecResult { ts_ns: ts_ns + 2, pid, tid: pid, ret: 0 };
    vec![Event::ExecArgv(argv), Event::Exec(exec), Event::ExecResult(result)]
}

fn config(record: bool) -> EngineConfig {
    let users = HashMap::from([(1000, User { name: "dev".into(), home: Some("/home/dev".into()) })]);
    EngineConfig { host: Host { name: "ws1".into(), users }, record, ..EngineConfig::default() }
}

#[test]
fn a_replay_of_a_recording_gives_what_the_run_gave() {
    let mut run = Engine::new(config(true));
    let mut out = Outputs::default();
    run.start(vec![SeedProcess { pid: 1, comm: Some("systemd".into()), ..SeedProcess::default() }], &mut out);
    let (mut recorded, mut governed) = (std::mem::take(&mut out.recorded), Vec::new());
    for ev in rm(10, 5_000_000_000) {
        out.clear();
        run.push(ev, UNIX_EPOCH, &mut Live, &mut out);
        recorded.append(&mut out.recorded);
        governed.append(&mut out.governed);
    }
    // The run asked for pid 10's cwd, and kept the answer.
    assert!(recorded.iter().any(|l| matches!(l, Line::Fact(Fact::Cwd { pid: 10, .. }))));
    let agents: Vec<_> = governed.iter().filter_map(|g| match g {
        Governed::Destructive(r) => Some((r.agent.clone(), r.cwd.clone())),
        _ => None,
    }).collect();
    assert!(!agents.is_empty(), "{governed:?}");

    let mut replayed = Engine::new(EngineConfig::default());
    let (mut replay, mut again) = (Replay::default(), Vec::new());
    for line in recorded {
        out.clear();
        replay.push(line, &mut replayed, UNIX_EPOCH, &mut out);
        again.append(&mut out.governed);
    }
    out.clear();
    replay.flush(&mut replayed, UNIX_EPOCH, &mut out);
    again.append(&mut out.governed);
    assert_eq!(again, governed);

    // Without the facts, the same events judge differently: the facts are what made it equal.
    let mut bare = Engine::new(EngineConfig::default());
    let mut blind = Vec::new();
    for ev in rm(10, 5_000_000_000) {
        out.clear();
        bare.push(ev, UNIX_EPOCH, &mut crate::govern::NoLookup, &mut out);
        blind.append(&mut out.governed);
    }
    assert_ne!(blind, governed);
}

/// The gate's record of `rm -rf ../other` by pid 10, judged in monitor mode.
fn gate_rm(ts_ns: u64) -> GateRecord {
    use crate::enforce::{EnforceConfig, ExecRequest, Judge, Mechanism};
    let argv: Vec<String> = ["rm", "-rf", "../other"].iter().map(|s| s.to_string()).collect();
    let judge = Judge::new(Arc::new(RuleSet::builtin()), Arc::new(config(false).host), EnforceConfig::default());
    let req = ExecRequest {
        pid: 10,
        tid: 10,
        uid: Some(1000),
        in_agent_tree: true,
        argv: &argv,
        argv_complete: true,
        cwd: Some(std::path::Path::new("/srv/app")),
        mechanism: Mechanism::Stop,
    };
    let v = judge.judge(&req);
    GateRecord {
        ts_ns,
        pid: 10,
        tid: 10,
        uid: Some(1000),
        agent: Some("codex".into()),
        cwd: Some("/srv/app".into()),
        argv,
        mechanism: Mechanism::Stop,
        decision: v.decision,
        matches: v.matches,
        timed_out: false,
        latency_ns: 40_000,
        request: None,
    }
}

#[test]
fn gate_records_are_recorded_and_replayed() {
    use crate::{audit::Action, events::record::{Recorder, read_lines}};
    let mut run = Engine::new(config(true));
    let mut out = Outputs::default();
    run.start(vec![SeedProcess { pid: 1, comm: Some("systemd".into()), ..SeedProcess::default() }], &mut out);
    let (mut recorded, mut governed, mut scope) = (std::mem::take(&mut out.recorded), Vec::new(), Vec::new());
    let mut events = rm(10, 5_000_000_000);
    if let Event::ExecArgv(a) = &mut events[0] {
        a.gated = true;
    }
    for ev in events {
        out.clear();
        run.push(ev, UNIX_EPOCH, &mut Live, &mut out);
        recorded.append(&mut out.recorded);
        governed.append(&mut out.governed);
        scope.append(&mut out.scope);
    }
    // The exec was gated: the engine left its verdict to the gate.
    assert!(!governed.iter().any(|g| matches!(g, Governed::Destructive(_))), "{governed:?}");
    out.clear();
    run.gate_record(&gate_rm(5_000_000_000), UNIX_EPOCH, &mut out);
    recorded.append(&mut out.recorded);
    governed.append(&mut out.governed);
    let audits: Vec<_> = governed.iter().filter_map(|g| match g {
        Governed::Destructive(r) => Some((r.rule_id.as_str(), r.action, r.mechanism, r.agent.as_deref())),
        _ => None,
    }).collect();
    assert_eq!(audits, [("fs.rm-rf-outside-worktree", Action::WouldBlock, Some(crate::enforce::Mechanism::Stop), Some("codex"))]);
    assert!(matches!(recorded.last(), Some(Line::Gate(_))));

    // Through the file format and back.
    let mut bytes = Vec::new();
    let mut w = Recorder::new(&mut bytes);
    for l in &recorded {
        w.write(l).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let lines: Vec<Line> = read_lines(&bytes[..]).map(Result::unwrap).collect();
    assert_eq!(lines, recorded);

    let mut replayed = Engine::new(EngineConfig::default());
    let (mut replay, mut again, mut again_scope) = (Replay::default(), Vec::new(), Vec::new());
    for line in lines {
        out.clear();
        replay.push(line, &mut replayed, UNIX_EPOCH, &mut out);
        again.append(&mut out.governed);
        again_scope.append(&mut out.scope);
    }
    out.clear();
    replay.flush(&mut replayed, UNIX_EPOCH, &mut out);
    again.append(&mut out.governed);
    again_scope.append(&mut out.scope);
    assert_eq!(again, governed);
    assert_eq!(again_scope, scope);
}

/// A request the pause refused reaches the audit as `blocked` by `stop`, and a replay of the
/// recording gives the same record.
#[test]
fn a_refused_request_is_audited_blocked_and_replayed() {
    use crate::{
        audit::Action,
        enforce::{Decision, Mechanism, Mode, PausedRequest},
        events::record::{Recorder, read_lines},
        requests::{PausedWrite, RequestRuleSet, paused_write},
    };
    let PausedWrite::Request(request) = paused_write(b"DELETE /api/v1/namespaces/prod HTTP/1.1\r\nHost: kube.example\r\n\r\n", 7) else {
        panic!("not a request");
    };
    let matched = RequestRuleSet::builtin().check(&request).unwrap();
    let gate = GateRecord {
        ts_ns: 7,
        pid: 10,
        tid: 10,
        uid: Some(1000),
        agent: Some("codex".into()),
        cwd: None,
        argv: Vec::new(),
        mechanism: Mechanism::Stop,
        decision: Decision::Deny,
        matches: Vec::new(),
        timed_out: false,
        latency_ns: 1_000,
        request: Some(Box::new(PausedRequest { request, matched })),
    };
    let mut run = Engine::new(EngineConfig { mode: Mode::Enforce, ..config(true) });
    let mut out = Outputs::default();
    run.start(vec![SeedProcess { pid: 1, comm: Some("systemd".into()), ..SeedProcess::default() }], &mut out);
    let mut recorded = std::mem::take(&mut out.recorded);
    out.clear();
    run.gate_record(&gate, UNIX_EPOCH, &mut out);
    recorded.append(&mut out.recorded);
    let calls: Vec<_> = out.governed.iter().filter_map(|g| match g {
        Governed::ApiCall(r) => Some((r.rule_id.as_str(), r.action, r.mechanism, r.agent.as_deref(), r.request.method.as_str(), r.user.as_deref())),
        _ => None,
    }).collect();
    assert_eq!(calls, [("k8s.api-delete-namespace", Action::Blocked, Some(Mechanism::Stop), Some("codex"), "DELETE", Some("dev"))]);

    let mut bytes = Vec::new();
    let mut w = Recorder::new(&mut bytes);
    for l in &recorded {
        w.write(l).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let (governed, mut replayed, mut replay) = (out.governed.clone(), Engine::new(EngineConfig::default()), Replay::default());
    let mut again = Vec::new();
    for line in read_lines(&bytes[..]) {
        out.clear();
        replay.push(line.unwrap(), &mut replayed, UNIX_EPOCH, &mut out);
        again.append(&mut out.governed);
    }
    assert_eq!(again, governed);
}

/// A TLS write (`Write`) or read of `pid`'s connection 1, at `offset` in that direction.
fn tls(pid: u32, dir: crate::events::Direction, offset: u64, ts_ns: u64, data: &[u8]) -> Event {
    Event::TlsData(crate::events::TlsData {
        ts_ns,
        tid: pid,
        conn: crate::events::ConnId { pid, conn: 1 },
        dir,
        func: crate::events::TlsFunc::SslWrite,
        offset,
        call_len: data.len() as u32,
        target: 0,
        paused: false,
        data: bytes::Bytes::copy_from_slice(data),
    })
}

/// Engine with python3 programs running as pids 7 and 8, neither an agent yet.
fn with_scripts() -> (Engine, Outputs) {
    let mut e = Engine::new(config(false));
    let mut out = Outputs::default();
    let script = |pid, name: &str| SeedProcess {
        pid,
        ppid: 1,
        start_ticks: u64::from(pid),
        exe: Some("/usr/bin/python3".into()),
        argv: vec!["python3".into(), name.into()],
        ..SeedProcess::default()
    };
    e.start(vec![script(7, "agent.py"), script(8, "bot.py")], &mut out);
    assert!(out.scope.is_empty());
    (e, out)
}

fn pushed(e: &mut Engine, out: &mut Outputs, events: Vec<Event>) -> Vec<(u32, String)> {
    out.clear();
    for ev in events {
        e.push(ev, UNIX_EPOCH, &mut crate::govern::NoLookup, out);
    }
    assert!(!out.pipeline.iter().any(|o| matches!(o, Output::Exchange(_))), "no response was pushed");
    out.scope.iter().map(|s| (s.tgid, s.agent.to_string())).collect()
}

#[test]
fn an_http1_inference_request_puts_its_client_in_scope_before_the_response() {
    use crate::events::Direction::{Read, Write};
    let body = br#"{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[]}"#;
    let head = format!("POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\nContent-Length: {}\r\n\r\n", body.len());
    let req = [head.as_bytes(), body].concat();
    let (mut e, mut out) = with_scripts();
    // The head arrives in two writes: the signal comes once it is whole.
    assert!(pushed(&mut e, &mut out, vec![tls(7, Write, 0, 10, &req[..20])]).is_empty());
    let scope = pushed(&mut e, &mut out, vec![tls(7, Write, 20, 11, &req[20..])]);
    assert_eq!(scope, [(7, "agent".to_owned())]);
    assert!(out.pipeline.iter().any(|o| matches!(o, Output::InferenceRequest { conn, ts_ns: 10 } if conn.pid == 7)));
    // Not inference by its path, or received rather than sent: no agent.
    let models = b"GET /v1/models HTTP/1.1\r\nHost: api.anthropic.com\r\n\r\n";
    assert!(pushed(&mut e, &mut out, vec![tls(8, Write, 0, 12, models)]).is_empty());
    let (mut e, mut out) = with_scripts();
    assert!(pushed(&mut e, &mut out, vec![tls(8, Read, 0, 13, &req)]).is_empty());
    // A body that only looks like an inference call waits for its exchange.
    let custom = format!("POST /custom/llm HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n", body.len());
    let custom = [custom.as_bytes(), body].concat();
    assert!(pushed(&mut e, &mut out, vec![tls(7, Write, 0, 14, &custom)]).is_empty());
}

#[test]
fn an_http2_inference_request_puts_its_client_in_scope_before_the_response() {
    use crate::events::Direction::{Read, Write};
    // The first segments of a Python h2 capture: preface, SETTINGS both ways, then the request.
    let mut b: &[u8] = include_bytes!("../protocols/tests/captures/h2_padded.bin");
    let (mut offsets, mut events) = ([0u64; 2], Vec::new());
    while let [d, l0, l1, l2, l3, rest @ ..] = b
        && events.len() < 4
    {
        let n = u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize;
        let dir = if *d == b'W' { Write } else { Read };
        events.push(tls(8, dir, offsets[dir.index()], 20 + events.len() as u64, &rest[..n]));
        offsets[dir.index()] += n as u64;
        b = &rest[n..];
    }
    let (mut e, mut out) = with_scripts();
    assert_eq!(pushed(&mut e, &mut out, events), [(8, "bot".to_owned())]);
}

/// The price table of `EngineConfig` prices every exchange that counts, once, in what the
/// engine emits.
#[test]
fn the_configured_price_table_prices_each_counted_exchange() {
    use crate::{
        cost::{Cost, PriceFile, PriceTable},
        events::Direction::{Read, Write},
    };
    let body = br#"{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[]}"#;
    let head = format!("POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\nContent-Length: {}\r\n\r\n", body.len());
    let reply = br#"{"type":"message","model":"claude-sonnet-4-5","usage":{"input_tokens":1000,"output_tokens":100,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}"#;
    let reply = [format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", reply.len()).as_bytes(), reply].concat();
    let run = |prices: std::sync::Arc<PriceTable>| {
        let mut e = Engine::new(EngineConfig { prices, ..config(false) });
        let mut out = Outputs::default();
        e.push(tls(7, Write, 0, 10, &[head.as_bytes(), body].concat()), UNIX_EPOCH, &mut crate::govern::NoLookup, &mut out);
        e.push(tls(7, Read, 0, 20, &reply), UNIX_EPOCH, &mut crate::govern::NoLookup, &mut out);
        let costs: Vec<Option<Cost>> = out
            .governed
            .iter()
            .filter_map(|g| match g {
                Governed::Exchange { cost, .. } => Some(*cost),
                _ => None,
            })
            .collect();
        costs
    };
    // Built in: 1000×3 + 100×15 = 4500 µ$.
    assert!(matches!(run(PriceTable::builtin())[..], [Some(Cost::Usd(v))] if (v - 0.0045).abs() < 1e-12));
    // An admin entry in front: 1100 tokens at 1 $/M.
    let other = "[[model]]\nname = \"claude at 1\"\nproviders = [\"anthropic\"]\nmatch = \"claude-*\"\ninput = 1.0\ncache_read = 1.0\noutput = 1.0\n";
    let cheap = PriceTable::builtin().with_overrides(PriceFile::parse(other).unwrap(), "t").unwrap();
    assert!(matches!(run(std::sync::Arc::new(cheap))[..], [Some(Cost::Usd(v))] if (v - 0.0011).abs() < 1e-12));
    // A table that prices nothing: unpriced, with its 1100 tokens.
    let empty = PriceTable { models: Vec::new(), ..(*PriceTable::builtin()).clone() };
    assert_eq!(run(std::sync::Arc::new(empty)), [Some(Cost::Unpriced { tokens: 1100 })]);
}

/// `argv` exec'd by `pid`, a child of `ppid`.
fn exec(pid: u32, ppid: u32, ts_ns: u64, argv: &[&str]) -> Vec<Event> {
    let mut evs = rm(pid, ts_ns);
    for ev in &mut evs {
        match ev {
            Event::ExecArgv(a) => a.argv = argv.iter().map(|s| (*s).to_owned()).collect(),
            Event::Exec(e) => e.ppid = ppid,
            _ => {}
        }
    }
    evs
}

#[test]
fn a_tool_call_in_a_response_names_the_command_it_proposed_and_replays_the_same() {
    use crate::events::Direction::{Read, Write};
    let body = br#"{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[]}"#;
    let head = format!("POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\nContent-Length: {}\r\n\r\n", body.len());
    let reply = br#"{"type":"message","model":"claude-sonnet-4-5","content":[{"type":"tool_use","id":"toolu_engine","name":"Bash","input":{"command":"rm -rf ../other"}}],"usage":{"input_tokens":5,"output_tokens":7}}"#;
    let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", reply.len());
    let resp = [resp.as_bytes(), reply].concat();
    let mut events = vec![tls(7, Write, 0, 1_000, &[head.as_bytes(), body].concat()), tls(7, Read, 0, 2_000, &resp)];
    events.extend(exec(10, 7, 3_000_000_000, &["bash", "-c", "rm -rf ../other"]));
    events.extend(exec(11, 7, 4_000_000_000, &["rm", "-rf", "../else"]));

    let mut run = Engine::new(config(true));
    let mut out = Outputs::default();
    let seed = |pid, name: &str| SeedProcess {
        pid,
        ppid: 1,
        start_ticks: u64::from(pid),
        exe: Some("/usr/bin/python3".into()),
        argv: vec!["python3".into(), name.into()],
        ..SeedProcess::default()
    };
    run.start(vec![seed(7, "agent.py")], &mut out);
    let (mut recorded, mut governed) = (std::mem::take(&mut out.recorded), Vec::new());
    for ev in events {
        out.clear();
        run.push(ev, UNIX_EPOCH, &mut Live, &mut out);
        recorded.append(&mut out.recorded);
        governed.append(&mut out.governed);
    }
    let by: Vec<_> = governed
        .iter()
        .filter_map(|g| match g {
            Governed::Command { pid, proposed_by, .. } => Some((*pid, proposed_by.as_ref().map(|p| (p.tool.as_str(), p.call_id.as_str())))),
            _ => None,
        })
        .collect();
    assert_eq!(by, [(10, Some(("Bash", "toolu_engine"))), (11, None)], "{governed:#?}");
    let audit: Vec<_> = governed.iter().filter_map(|g| match g {
        Governed::Destructive(r) => Some(r.proposed_by.as_ref().map(|p| p.call_id.as_str())),
        _ => None,
    }).collect();
    assert_eq!(audit.first(), Some(&Some("toolu_engine")), "{governed:#?}");
    // A replay of the recording links the same way.
    let mut replayed = Engine::new(EngineConfig::default());
    let (mut replay, mut again) = (Replay::default(), Vec::new());
    for line in recorded {
        out.clear();
        replay.push(line, &mut replayed, UNIX_EPOCH, &mut out);
        again.append(&mut out.governed);
    }
    out.clear();
    replay.flush(&mut replayed, UNIX_EPOCH, &mut out);
    again.append(&mut out.governed);
    assert_eq!(again, governed);
}
