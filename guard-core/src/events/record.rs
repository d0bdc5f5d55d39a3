//! Recordings: JSON lines of what the engine was given (`guard run --record`), read back by
//! `guard replay`. Most lines are [`Event`]s that passed verification. The rest are [`Fact`]s:
//! what the system answered when the engine asked (the processes running at start, a process or
//! a cwd looked up, the host's accounts), each written right after the event that asked for it.
//! So a replay gives the engine the same answers, and reproduces the run's records and metrics.
//! A recording holds captured plaintext; the daemon creates it readable by root only.

use std::io::{BufRead, BufWriter, Write};

use serde::{Deserialize, Serialize};

use super::Event;
use crate::{govern::Host, process::SeedProcess};

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
    Host(Host),
    /// Processes already running when the engine started.
    Seed { processes: Vec<SeedProcess> },
    /// A process the table had not seen, as /proc showed it (or gone).
    Process { pid: u32, found: Option<SeedProcess> },
    /// A process's working directory at its exec (or unknown).
    Cwd { pid: u32, cwd: Option<String> },
}

/// One line of a recording.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    Event(Event),
    Fact(Fact),
}

impl Line {
    fn parse(text: &str) -> Result<Self, serde_json::Error> {
        // A fact names itself in `fact`; everything else is an event (older recordings hold only
        // events), so an event's parse error is the one to report.
        let v: serde_json::Value = serde_json::from_str(text)?;
        if v.get("fact").is_some() {
            serde_json::from_value(v).map(Line::Fact)
        } else {
            serde_json::from_value(v).map(Line::Event)
        }
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
        Ok(Line::Fact(_)) => None,
        Err(e) => Some(Err(e)),
    })
}
