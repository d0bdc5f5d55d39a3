//! `guard replay`: a recording's lines back through an engine, its lookups answered from the
//! facts the run wrote down.

use std::{
    collections::{HashMap, VecDeque},
    time::SystemTime,
};

use super::{Engine, Outputs};
use crate::{
    events::{
        Event,
        record::{self, Fact, Line},
    },
    govern::Lookup,
    process::SeedProcess,
};

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
            Line::Fact(Fact::Places { roots }) => {
                self.flush(engine, wall, out);
                engine.set_places(roots, out);
            }
            Line::Fact(Fact::Seed { processes }) => {
                self.flush(engine, wall, out);
                engine.start(processes, out);
            }
            Line::Gate(r) => {
                self.flush(engine, wall, out);
                engine.gate_record(&r, wall, out);
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
