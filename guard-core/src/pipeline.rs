//! The sans-IO pipeline: decoded events in, records out. The [`Engine`](crate::Engine) feeds it
//! each event that passed verification, whether `guard run`, `guard replay` or a test drives the
//! engine; all of it goes through [`Pipeline::push`].

use std::collections::HashMap;

use serde::Serialize;

use crate::{
    events::{ConnId, Delete, Event, Exit, Fork, exec_join::{ExecJoin, ExecRecord}},
    requests::ApiRequest,
    protocols::{ConnectionDecoder, DecoderConfig, DecoderStats, EarlyCalls, Exchange},
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
    /// A process sent an inference request (known by its path), before its exchange ends: the
    /// governor marks a zero-config agent at once, so the tools it runs next are in scope.
    InferenceRequest { conn: ConnId, ts_ns: u64 },
    /// Tool calls a response still in flight has completed (its exchange repeats them): an
    /// agent may run a call before its response's terminal event is read.
    ToolCalls { conn: ConnId, ts_ns: u64, calls: EarlyCalls },
    /// A request of the process (as client) that the request rules may judge, as soon as it is
    /// whole: not read-only, not an inference call. Carries the raw query and a body prefix, so
    /// it is never serialised; only the governor's record of a match leaves the engine.
    #[serde(skip)]
    ApiRequest { conn: ConnId, request: ApiRequest },
    /// The request pause stopped a write of the connection at its entry, where its bytes were
    /// captured (Go): the gate judged them, and records a refusal itself.
    PausedWrite { conn: ConnId },
    /// A decoded request/response exchange (LLM call or not; see `inference`).
    Exchange(Exchange),
    /// A deletion (or rename, or io_uring set-up) by a process in an agent's scope, as sent.
    Delete(Delete),
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
        let mut requests = Vec::new();
        dec.drain_inference_requests(&mut requests);
        out.extend(requests.into_iter().map(|ts_ns| Output::InferenceRequest { conn, ts_ns }));
        let mut api = Vec::new();
        dec.drain_api_requests(&mut api);
        out.extend(api.into_iter().map(|request| Output::ApiRequest { conn, request }));
        let mut early = Vec::new();
        dec.drain_tool_calls(&mut early);
        let ts_ns = match ev {
            StreamEvent::Data { ts_ns, .. } | StreamEvent::Gap { ts_ns, .. } | StreamEvent::Closed { ts_ns, .. } => *ts_ns,
        };
        out.extend(early.into_iter().map(|calls| Output::ToolCalls { conn, ts_ns, calls }));
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
            Event::TlsData(d) => {
                if d.paused {
                    out.push(Output::PausedWrite { conn: d.conn });
                }
                self.streams.push(d, &mut streams);
            }
            Event::TlsClose(c) => self.streams.close(c.conn, c.ts_ns, &mut streams),
            Event::Fork(f) => out.push(Output::Fork(f)),
            Event::Delete(d) => out.push(Output::Delete(d)),
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

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::events::{Direction, TlsClose, TlsData, TlsFunc};

    fn tls(ts_ns: u64, dir: Direction, offset: u64, data: &[u8]) -> Event {
        Event::TlsData(TlsData {
            ts_ns,
            tid: 7,
            conn: ConnId { pid: 7, conn: 0xabc },
            dir,
            func: TlsFunc::SslWrite,
            offset,
            call_len: data.len() as u32,
            target: 0,
            paused: false,
            data: Bytes::copy_from_slice(data),
        })
    }

    #[test]
    fn tls_events_become_exchange_records() {
        let req = b"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nContent-Length: 18\r\n\r\n{\"model\":\"gpt-4o\"}";
        let body = br#"{"model":"gpt-4o","usage":{"prompt_tokens":9,"completion_tokens":4}}"#;
        let resp = [format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(), body].concat();
        let mut p = Pipeline::new(&Limits::default());
        let mut out = Vec::new();
        p.push(tls(1, Direction::Write, 0, req), &mut out);
        p.push(tls(2, Direction::Read, 0, &resp[..40]), &mut out);
        p.push(tls(3, Direction::Read, 40, &resp[40..]), &mut out);
        p.push(Event::TlsClose(TlsClose { ts_ns: 4, conn: ConnId { pid: 7, conn: 0xabc } }), &mut out);
        let xs: Vec<&Exchange> = out.iter().filter_map(|o| if let Output::Exchange(x) = o { Some(x) } else { None }).collect();
        assert_eq!(xs.len(), 1);
        assert_eq!(xs[0].conn, Some(ConnId { pid: 7, conn: 0xabc }));
        assert_eq!((xs[0].usage.input, xs[0].usage.output, xs[0].complete), (9, 4, true));
        assert_eq!(xs[0].model.as_deref(), Some("gpt-4o"));
        assert_eq!(xs[0].timings.start_ns, Some(1));
        assert_eq!(xs[0].timings.first_byte_ns, Some(2));
        assert_eq!(xs[0].timings.end_ns, 3);
        let json = serde_json::to_string(&Output::Exchange(xs[0].clone())).unwrap();
        assert!(json.starts_with(r#"{"record":"exchange","conn":{"pid":7"#), "{json}");
        assert_eq!(p.decoder_stats().exchanges, 1);
    }
}
