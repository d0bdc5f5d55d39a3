//! Recordings: JSON lines of what the engine was given (`guard run --record`), read back by
//! `guard replay`. Most lines are [`Event`]s that passed verification. The rest are [`Fact`]s:
//! what the system answered when the engine asked (the processes running at start, a process or
//! a cwd looked up, the host's accounts), each written right after the event that asked for it.
//! So a replay gives the engine the same answers, and reproduces the run's records and metrics.
//! The exec gate's records ([`GateRecord`], `{"gate": …}`) are kept too, in the order the engine
//! took them.
//! A recording holds captured plaintext; the daemon creates it readable by root only.

use std::io::{BufRead, BufWriter, Write};

use serde::{Deserialize, Serialize};

use super::Event;
use crate::{
    enforce::GateRecord,
    govern::{Host, User},
    places::PlaceRoot,
    process::SeedProcess,
};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot write recording: {0}")]
    Write(#[from] std::io::Error),
    #[error("line {line} of the recording is neither an event nor a fact: {source}")]
    Parse { line: usize, source: serde_json::Error },
}

/// An answer the system gave the engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum Fact {
    /// The host name and local accounts (homes decide what `rm -rf ~` means).
    Host { name: String, accounts: Vec<Account> },
    /// Processes already running when the engine started.
    Seed { processes: Vec<SeedProcess> },
    /// A process the table had not seen, as /proc showed it (or gone).
    Process { pid: u32, found: Option<SeedProcess> },
    /// A process's working directory at its exec (or unknown).
    Cwd { pid: u32, cwd: Option<String> },
    /// The places list (`crate::places`) from here on: it changes as agents come and go.
    Places { roots: Vec<PlaceRoot> },
}

/// A local account, as a recording keeps it (a list: JSON maps cannot have numeric keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub uid: u32,
    #[serde(flatten)]
    pub user: User,
}

impl Fact {
    pub fn host(host: &Host) -> Self {
        let mut accounts: Vec<Account> = host.users.iter().map(|(uid, u)| Account { uid: *uid, user: u.clone() }).collect();
        accounts.sort_by_key(|a| a.uid);
        Fact::Host { name: host.name.clone(), accounts }
    }
}

/// The host a `Fact::Host` describes.
pub fn host(name: String, accounts: Vec<Account>) -> Host {
    Host { name, users: accounts.into_iter().map(|a| (a.uid, a.user)).collect() }
}

/// One line of a recording.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    Event(Event),
    Fact(Fact),
    /// An exec the gate answered ([`crate::Engine::gate_record`]).
    Gate(GateRecord),
}

/// How a gate record is written: under its own key, so no event or fact reads as one.
#[derive(Serialize, Deserialize)]
struct GateLine<R> {
    gate: R,
}

impl Line {
    fn parse(text: &str) -> Result<Self, serde_json::Error> {
        // Nearly every line is an event (older recordings hold nothing else), so it is tried
        // first, and its error is the one reported when the line is nothing else either.
        serde_json::from_str(text).map(Line::Event).or_else(|e| {
            serde_json::from_str(text)
                .map(Line::Fact)
                .or_else(|_| serde_json::from_str::<GateLine<GateRecord>>(text).map(|g| Line::Gate(g.gate)))
                .map_err(|_| e)
        })
    }
}

pub struct Recorder<W: Write> {
    out: BufWriter<W>,
}

impl<W: Write> Recorder<W> {
    pub fn new(w: W) -> Self {
        Self { out: BufWriter::new(w) }
    }
    pub fn write(&mut self, line: &Line) -> Result<(), RecordError> {
        match line {
            Line::Event(ev) => serde_json::to_writer(&mut self.out, ev),
            Line::Fact(f) => serde_json::to_writer(&mut self.out, f),
            Line::Gate(r) => serde_json::to_writer(&mut self.out, &GateLine { gate: r }),
        }
        .map_err(std::io::Error::other)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }
    pub fn flush(&mut self) -> Result<(), RecordError> {
        Ok(self.out.flush()?)
    }
}

/// Reads a recording, one line each; blank lines are skipped.
pub fn read_lines(r: impl BufRead) -> impl Iterator<Item = Result<Line, RecordError>> {
    r.lines().enumerate().filter_map(|(i, line)| match line {
        Err(e) => Some(Err(RecordError::Write(e))),
        Ok(l) if l.trim().is_empty() => None,
        Ok(l) => Some(Line::parse(&l).map_err(|source| RecordError::Parse { line: i + 1, source })),
    })
}

/// The events of a recording, its facts skipped.
pub fn read_events(r: impl BufRead) -> impl Iterator<Item = Result<Event, RecordError>> {
    read_lines(r).filter_map(|l| match l {
        Ok(Line::Event(ev)) => Some(Ok(ev)),
        Ok(Line::Fact(_) | Line::Gate(_)) => None,
        Err(e) => Some(Err(e)),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::events::{Event, Exit};

    #[test]
    fn events_and_facts_round_trip_through_a_recording() {
        let host = Host {
            name: "h".into(),
            users: HashMap::from([(1000, User { name: "dev".into(), home: Some("/home/dev".into()) })]),
        };
        let lines = vec![
            Line::Fact(Fact::host(&host)),
            Line::Fact(Fact::Seed { processes: vec![SeedProcess { pid: 1, argv: vec!["init".into()], ..SeedProcess::default() }] }),
            Line::Event(Event::Exit(Exit { ts_ns: 5, pid: 9, tid: 9, exit_code: 0, start_time_ns: 1, comm: "rm".into() })),
            Line::Fact(Fact::Process { pid: 9, found: None }),
            Line::Fact(Fact::Cwd { pid: 9, cwd: Some("/srv".into()) }),
            Line::Fact(Fact::Places { roots: vec![PlaceRoot { prefix: "/srv/app/".into(), place: crate::places::Place::Worktree, protect: false, owner: 9, sensitive: false }] }),
        ];
        let mut r = Recorder::new(Vec::new());
        for l in &lines {
            r.write(l).unwrap();
        }
        let bytes = r.out.into_inner().unwrap();
        let back: Vec<Line> = read_lines(&bytes[..]).map(Result::unwrap).collect();
        assert_eq!(back, lines);
        assert_eq!(read_events(&bytes[..]).count(), 1);
    }

    #[test]
    fn a_broken_line_reports_its_number_and_the_event_error() {
        let err = read_lines(&b"\n{\"type\":\"exit\"}\n"[..]).next().unwrap().unwrap_err();
        assert!(matches!(err, RecordError::Parse { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("missing field"), "{err}");
    }
}
