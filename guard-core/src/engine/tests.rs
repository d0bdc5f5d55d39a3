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
