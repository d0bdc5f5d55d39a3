//! The sans-IO pipeline: decoded events in, records out. `guard run` feeds it from the ring
//! buffer, `guard replay` and the tests from a recording; both go through [`Pipeline::push`].

use serde::Serialize;

use crate::{
    events::{Event, Exit, Fork, exec_join::{ExecJoin, ExecRecord}},
    streams::{Assembler, StreamEvent},
};

/// Bounds that keep memory flat under churn.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_pending_execs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_connections: 16_384, max_pending_execs: 4_096 }
    }
}

/// What the pipeline produces, in the order it learns it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Output {
    Exec(ExecRecord),
    Fork(Fork),
    Exit(Exit),
    #[serde(skip)]
    Stream(StreamEvent),
}

pub struct Pipeline {
    execs: ExecJoin,
    streams: Assembler,
}

impl Pipeline {
    pub fn new(limits: &Limits) -> Self {
        Self { execs: ExecJoin::new(limits.max_pending_execs), streams: Assembler::new(limits.max_connections) }
    }

    pub fn push(&mut self, ev: Event, out: &mut Vec<Output>) {
        let mut streams = Vec::new();
        match ev {
            Event::TlsData(d) => self.streams.push(d, &mut streams),
            Event::TlsClose(c) => self.streams.close(c.conn, c.ts_ns, &mut streams),
            Event::Fork(f) => out.push(Output::Fork(f)),
            Event::Exit(x) => {
                self.streams.close_process(x.pid, x.ts_ns, &mut streams);
                out.push(Output::Exit(x));
            }
            ev @ (Event::Exec(_) | Event::ExecArgv(_) | Event::ExecResult(_)) => {
                if let Some(rec) = self.execs.push(&ev) {
                    out.push(Output::Exec(rec));
                }
            }
        }
        out.extend(streams.into_iter().map(Output::Stream));
    }

    pub fn stats(&self) -> PipelineStats {
        PipelineStats {
            stream_gaps: self.streams.stats.gaps,
            stream_gap_bytes: self.streams.stats.gap_bytes,
            connections: self.streams.len() as u64,
            execs_dropped: self.execs.dropped,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PipelineStats {
    pub stream_gaps: u64,
    pub stream_gap_bytes: u64,
    pub connections: u64,
    pub execs_dropped: u64,
}
