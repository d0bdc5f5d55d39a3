//! Recordings: decoded events as JSON lines (`guard run --record`), read back by `guard replay`.
//! A recording holds captured plaintext, so it is created readable by its owner only.

use std::{
    fs::OpenOptions,
    io::{BufRead, BufWriter, Write},
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
};

use super::Event;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot open recording {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("cannot write recording: {0}")]
    Write(#[from] std::io::Error),
    #[error("line {line} of the recording is not an event: {source}")]
    Parse { line: usize, source: serde_json::Error },
}

pub struct Recorder<W: Write> {
    out: BufWriter<W>,
}

impl Recorder<std::fs::File> {
    pub fn create(path: &Path) -> Result<Self, RecordError> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| RecordError::Open { path: path.display().to_string(), source })?;
        Ok(Self { out: BufWriter::new(f) })
    }
}

impl<W: Write> Recorder<W> {
    pub fn new(w: W) -> Self {
        Self { out: BufWriter::new(w) }
    }
    pub fn write(&mut self, ev: &Event) -> Result<(), RecordError> {
        serde_json::to_writer(&mut self.out, ev).map_err(std::io::Error::other)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }
    pub fn flush(&mut self) -> Result<(), RecordError> {
        Ok(self.out.flush()?)
    }
}

/// Reads a recording, one event per line; blank lines are skipped.
pub fn read_events(r: impl BufRead) -> impl Iterator<Item = Result<Event, RecordError>> {
    r.lines().enumerate().filter_map(|(i, line)| match line {
        Err(e) => Some(Err(RecordError::Write(e))),
        Ok(l) if l.trim().is_empty() => None,
        Ok(l) => Some(serde_json::from_str(&l).map_err(|source| RecordError::Parse { line: i + 1, source })),
    })
}
