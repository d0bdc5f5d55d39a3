//! The sans-IO pipeline: decoded events in, records out. `guard run` feeds it from the ring
//! buffer, `guard replay` and the tests from a recording; both go through [`Pipeline::push`].

use std::collections::HashMap;

use serde::Serialize;

use crate::{
    events::{ConnId, Event, Exit, Fork, exec_join::{ExecJoin, ExecRecord}},
    protocols::{ConnectionDecoder, DecoderConfig, DecoderStats, Exchange},
    streams::{Assembler, StreamEvent},
};

/// Bounds that keep memory flat under churn.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_pending_execs: usize,
    pub decoder: DecoderConfig,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_connections: 16_384, max_pending_execs: 4_096, decoder: DecoderConfig::default() }
    }
}

/// What the pipeline produces, in the order it learns it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Output {
    Exec(ExecRecord),
    Fork(Fork),
    Exit(Exit),
    /// A decoded request/response exchange (LLM call or not; see `inference`).
    Exchange(Exchange),
    #[serde(skip)]
    Stream(StreamEvent),
}

pub struct Pipeline {
    execs: ExecJoin,
    streams: Assembler,
    /// One decoder per open connection; the assembler bounds how many there are, and every
    /// connection it forgets reaches us as `Closed`.
    decoders: HashMap<ConnId, ConnectionDecoder>,
    decoder_cfg: DecoderConfig,
    /// Counters of connections already closed.
    closed_stats: DecoderStats,
}

impl Pipeline {
    pub fn new(limits: &Limits) -> Self {
        Self {
            execs: ExecJoin::new(limits.max_pending_execs),
            streams: Assembler::new(limits.max_connections),
            decoders: HashMap::new(),
            decoder_cfg: limits.decoder.clone(),
            closed_stats: DecoderStats::default(),
        }
    }

    /// Feeds one stream event to its connection's decoder and emits the exchanges it finished.
    fn decode(&mut self, ev: &StreamEvent, out: &mut Vec<Output>) {
        let conn = ev.conn();
        let dec = self.decoders.entry(conn).or_insert_with(|| ConnectionDecoder::new(self.decoder_cfg.clone()));
        match ev {
            StreamEvent::Data { dir, ts_ns, data, .. } => dec.on_data(*dir, *ts_ns, data),
            StreamEvent::Gap { dir, ts_ns, missing, .. } => dec.on_gap(*dir, *ts_ns, *missing),
            StreamEvent::Closed { ts_ns, .. } => dec.on_close(*ts_ns),
        }
        let mut done = Vec::new();
        dec.drain(&mut done);
        if matches!(ev, StreamEvent::Closed { .. })
            && let Some(dec) = self.decoders.remove(&conn)
        {
            self.closed_stats.add(&dec.stats);
        }
        out.extend(done.into_iter().map(|mut x| {
            x.conn = Some(conn);
            Output::Exchange(x)
        }));
    }

    /// Decoder counters over all connections, open and closed.
    pub fn decoder_stats(&self) -> DecoderStats {
        let mut s = self.closed_stats;
        for d in self.decoders.values() {
            s.add(&d.stats);
        }
        s
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
        for ev in streams {
            self.decode(&ev, out);
            out.push(Output::Stream(ev));
        }
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
