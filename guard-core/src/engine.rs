//! The one engine: kernel record bytes (or decoded events) in; verdicts on guessed hooks, decoded
//! exchanges, commands and destructive-command records out. `guard run` feeds it from the ring
//! buffer, `guard replay` from a recording, the tests and benchmarks from bytes they made; all
//! of them through [`Engine::push_record`] or [`Engine::push`].
//!
//! decode → [`Verifier`] → [`Pipeline`] → [`Governor`]. What the engine asks of the system goes
//! through a [`Lookup`], and with recording on, every answer is kept as a [`Fact`] after the
//! event that asked, so a replay gets the same answers ([`Replay`]).

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::SystemTime,
};

use serde::Serialize;

use crate::{
    events::{
        self, Event,
        record::{self, Fact, Line},
    },
    govern::{Governed, Governor, Host, Lookup},
    pipeline::{Limits, Output, Pipeline, PipelineStats},
    process::{Catalog, ProcessTable, SeedProcess, TableStats},
    protocols::DecoderStats,
    rules::RuleSet,
    verify::{self, Verdict, Verifier},
};

/// What the engine is built from.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub limits: Limits,
    pub verify: verify::Limits,
    pub catalog: Arc<Catalog>,
    pub rules: RuleSet,
    pub host: Host,
    /// Keep what a recording needs in [`Outputs::recorded`].
    pub record: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            verify: verify::Limits::default(),
            catalog: Arc::new(Catalog::builtin()),
            rules: RuleSet::builtin(),
            host: Host::default(),
            record: false,
        }
    }
}

/// What one push produced. Reused across pushes: the caller drains or [`clear`](Self::clear)s it.
#[derive(Debug, Default)]
pub struct Outputs {
    /// With recording on: each event that passed verification, then the facts it needed.
    pub recorded: Vec<Line>,
    /// The pipeline's records, in order: execs, forks, exits, exchanges, stream events.
    pub pipeline: Vec<Output>,
    /// The same, attributed and judged.
    pub governed: Vec<Governed>,
    /// Guessed hooks that were verified or rejected.
    pub verdicts: Vec<Verdict>,
}

impl Outputs {
    pub fn clear(&mut self) {
        self.recorded.clear();
        self.pipeline.clear();
        self.governed.clear();
        self.verdicts.clear();
    }
}

/// Counters over the engine's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    /// Records that were not an event (short, unknown kind, bad length).
    pub decode_errors: u64,
    pub pipeline: PipelineStats,
    pub decoder: DecoderStats,
    pub verify: verify::Stats,
    /// Events held back until their guessed hook is verified.
    pub unverified_held: u64,
    pub table: TableStats,
    /// Repeats of a destructive command that were suppressed.
    pub suppressed_repeats: u64,
}

pub struct Engine {
    verifier: Verifier,
    pipeline: Pipeline,
    governor: Governor,
    record: bool,
    decode_errors: u64,
    passed: Vec<Event>,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Self {
            verifier: Verifier::new(cfg.verify),
            pipeline: Pipeline::new(&cfg.limits),
            governor: Governor::new(cfg.catalog, cfg.rules, cfg.host),
            record: cfg.record,
            decode_errors: 0,
            passed: Vec::new(),
        }
    }

    /// Loads the processes already running, and records the host and them.
    pub fn start(&mut self, running: Vec<SeedProcess>, out: &mut Outputs) {
        if self.record {
            out.recorded.push(Line::Fact(Fact::host(self.governor.host())));
            out.recorded.push(Line::Fact(Fact::Seed { processes: running.clone() }));
        }
        self.governor.seed(running);
    }

    /// A hooked file whose hooks are a guess: its events wait until its traffic verifies it.
    pub fn guessed(&mut self, target: u32) {
        self.verifier.guessed(target);
    }

    /// Where a guessed file stands (`None`: not a guess).
    pub fn hook_state(&self, target: u32) -> Option<verify::State> {
        self.verifier.state(target)
    }

    pub fn table(&self) -> &ProcessTable {
        self.governor.table()
    }

    /// One ring-buffer record. An undecodable one is counted and skipped.
    pub fn push_record(
        &mut self,
        raw: &[u8],
        wall: SystemTime,
        lookup: &mut dyn Lookup,
        out: &mut Outputs,
    ) -> Result<(), events::DecodeError> {
        match events::decode(raw) {
            Ok(ev) => {
                self.push(ev, wall, lookup, out);
                Ok(())
            }
            Err(e) => {
                self.decode_errors += 1;
                Err(e)
            }
        }
    }

    /// One decoded event. `wall` stamps audit records; nothing else reads it.
    pub fn push(&mut self, ev: Event, wall: SystemTime, lookup: &mut dyn Lookup, out: &mut Outputs) {
        let mut passed = std::mem::take(&mut self.passed);
        self.verifier.push(ev, &mut passed, &mut out.verdicts);
        for ev in passed.drain(..) {
            if self.record {
                out.recorded.push(Line::Event(ev.clone()));
            }
            let first = out.pipeline.len();
            self.pipeline.push(ev, &mut out.pipeline);
            let mut tap = Tap { inner: lookup, lines: self.record.then_some(&mut out.recorded) };
            for o in &out.pipeline[first..] {
                self.governor.push(o, wall, &mut tap, &mut out.governed);
            }
        }
        self.passed = passed;
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            decode_errors: self.decode_errors,
            pipeline: self.pipeline.stats(),
            decoder: self.pipeline.decoder_stats(),
            verify: self.verifier.stats,
            unverified_held: self.verifier.held_events() as u64,
            table: self.governor.table().stats(),
            suppressed_repeats: self.governor.suppressed_repeats(),
        }
    }
}

/// A lookup whose answers are also written down as facts.
struct Tap<'a> {
    inner: &'a mut dyn Lookup,
    lines: Option<&'a mut Vec<Line>>,
}

impl Lookup for Tap<'_> {
    fn process(&mut self, pid: u32) -> Option<SeedProcess> {
        let found = self.inner.process(pid);
        if let Some(l) = self.lines.as_deref_mut() {
            l.push(Line::Fact(Fact::Process { pid, found: found.clone() }));
        }
        found
    }
    fn cwd(&mut self, pid: u32) -> Option<String> {
        let cwd = self.inner.cwd(pid);
        if let Some(l) = self.lines.as_deref_mut() {
            l.push(Line::Fact(Fact::Cwd { pid, cwd: cwd.clone() }));
        }
        cwd
    }
}

/// Drives an engine from a recording's lines: each event is pushed once the facts written after
/// it are known, and the lookups are answered from those facts alone.
#[derive(Default)]
pub struct Replay {
    answers: Answers,
    pending: Option<Event>,
}

impl Replay {
    pub fn push(&mut self, line: Line, engine: &mut Engine, wall: SystemTime, out: &mut Outputs) {
        match line {
            Line::Event(ev) => {
                self.flush(engine, wall, out);
                self.pending = Some(ev);
            }
            Line::Fact(Fact::Process { pid, found }) => self.answers.processes.entry(pid).or_default().push_back(found),
            Line::Fact(Fact::Cwd { pid, cwd }) => self.answers.cwds.entry(pid).or_default().push_back(cwd),
            Line::Fact(Fact::Host { name, accounts }) => {
                self.flush(engine, wall, out);
                engine.governor.set_host(record::host(name, accounts));
            }
            Line::Fact(Fact::Seed { processes }) => {
                self.flush(engine, wall, out);
                engine.start(processes, out);
            }
        }
    }

    /// Pushes the last event; call at the end of the recording.
    pub fn flush(&mut self, engine: &mut Engine, wall: SystemTime, out: &mut Outputs) {
        if let Some(ev) = self.pending.take() {
            engine.push(ev, wall, &mut self.answers, out);
        }
    }
}

/// Recorded answers, each given once, in the order they were recorded.
#[derive(Default)]
struct Answers {
    processes: HashMap<u32, VecDeque<Option<SeedProcess>>>,
    cwds: HashMap<u32, VecDeque<Option<String>>>,
}

impl Lookup for Answers {
    fn process(&mut self, pid: u32) -> Option<SeedProcess> {
        self.processes.get_mut(&pid)?.pop_front().flatten()
    }
    fn cwd(&mut self, pid: u32) -> Option<String> {
        self.cwds.get_mut(&pid)?.pop_front().flatten()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
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
}
