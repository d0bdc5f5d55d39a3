//! One WebSocket connection after its HTTP/1.1 upgrade: frames, fragmented messages,
//! permessage-deflate, and the OpenAI Responses WebSocket's exchanges: each client
//! `response.create` message opens one, and the server's `response.completed` (or
//! `.incomplete`, `.failed`, `error`) ends it with its usage.
//!
//! Other WebSocket APIs are framed and inflated (so compression state stays in step) but
//! produce no exchanges beyond the upgrade itself.

use std::collections::VecDeque;

use serde::Deserialize;

use crate::{
    events::Direction,
    providers::{RequestBody, openai_responses},
};

use super::{
    deflate::{Deflate, Inflater},
    frame::{self, FrameHeader, WsEvent, WsReader},
};
use crate::protocols::{
    DecoderConfig, DecoderStats,
    exchange::{Exchange, IncompleteReason, Protocol, Role},
    http1::conn::{Upgrade, other},
    pending::{Pending, abandoned},
};

/// The message being assembled from one direction's frames.
#[derive(Default)]
struct Message {
    /// Opcode of the first frame; `None` between messages.
    opcode: Option<u8>,
    compressed: bool,
    buf: Vec<u8>,
    /// The message passed its cap (or did not inflate): it is not read.
    dropped: Option<IncompleteReason>,
    start_ns: u64,
}

/// The few fields of a client message guard reads; the prompt is skipped unparsed.
#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(flatten)]
    body: RequestBody,
    /// The Realtime-style form nests the request under `response`.
    response: Option<RequestBody>,
}

#[derive(Deserialize)]
struct ServerMessage<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

pub(crate) struct WsConn {
    cfg: DecoderConfig,
    up: Upgrade,
    readers: [WsReader; 2],
    /// Inflaters for what each direction sends, when permessage-deflate is in force.
    inflaters: [Option<Inflater>; 2],
    msg: [Message; 2],
    /// The frame in progress is a control frame (its payload is not part of the message).
    in_control: [bool; 2],
    /// The data frame in progress is its message's last.
    fin: [bool; 2],
    /// Bytes of this direction were lost: its frame position is unknown from here on.
    lost: [Option<IncompleteReason>; 2],
    /// Open exchanges, oldest first (the server answers `response.create`s in order).
    queue: VecDeque<Pending>,
    next_id: u64,
    finished: Vec<Exchange>,
    pub stats: DecoderStats,
}

impl WsConn {
    pub(crate) fn new(cfg: DecoderConfig, up: Upgrade) -> Self {
        let deflate = up.extensions.as_deref().and_then(Deflate::from_extensions);
        let client = up.request_dir.index();
        let mut inflaters: [Option<Inflater>; 2] = [None, None];
        if let Some(d) = deflate {
            inflaters[client] = Some(Inflater::new(d.client));
            inflaters[1 - client] = Some(Inflater::new(d.server));
        }
        Self {
            cfg,
            up,
            readers: Default::default(),
            inflaters,
            msg: Default::default(),
            in_control: [false; 2],
            fin: [false; 2],
            lost: [None, None],
            queue: VecDeque::new(),
            next_id: 0,
            finished: Vec::new(),
            stats: DecoderStats::default(),
        }
    }

    pub(crate) fn drain(&mut self, out: &mut Vec<Exchange>) {
        out.append(&mut self.finished);
    }

    /// The exchanges in flight.
    pub(crate) fn pending(&mut self) -> impl Iterator<Item = &mut Pending> {
        self.queue.iter_mut()
    }

    fn role(&self) -> Role {
        match self.up.request_dir {
            Direction::Write => Role::Client,
            Direction::Read => Role::Server,
        }
    }

    pub(crate) fn on_gap(&mut self, dir: Direction, ts_ns: u64) {
        self.stats.gaps += 1;
        self.lose(dir, IncompleteReason::Gap, ts_ns);
    }

    /// A direction's frame position is lost for good (no frame header is distinctive enough
    /// to find again, and with context takeover the inflater's window is gone too).
    fn lose(&mut self, dir: Direction, reason: IncompleteReason, ts_ns: u64) {
        let d = dir.index();
        if self.lost[d].is_some() {
            return;
        }
        self.lost[d] = Some(reason);
        self.msg[d] = Message::default();
        if dir != self.up.request_dir {
            // Every open exchange may have lost its end.
            while let Some(mut p) = self.queue.pop_front() {
                p.cut(reason);
                self.emit(p, ts_ns);
            }
        }
    }

    pub(crate) fn on_close(&mut self, ts_ns: u64) {
        let role = Some(self.role());
        while let Some(mut p) = self.queue.pop_front() {
            p.cut(abandoned(role));
            self.emit(p, ts_ns);
        }
    }

    pub(crate) fn on_data(&mut self, dir: Direction, ts_ns: u64, data: &[u8]) {
        let d = dir.index();
        if self.lost[d].is_some() {
            return;
        }
        let mut reader = std::mem::take(&mut self.readers[d]);
        let res = reader.push(data, &mut |ev| self.on_event(dir, ts_ns, ev));
        self.readers[d] = reader;
        if res.is_err() {
            self.stats.http_errors += 1;
            self.lose(dir, IncompleteReason::DecodeError, ts_ns);
        }
    }

    fn on_event(&mut self, dir: Direction, ts: u64, ev: WsEvent<'_>) {
        let d = dir.index();
        match ev {
            WsEvent::Header(h) => self.on_header(dir, ts, h),
            WsEvent::Payload(p) if !self.in_control[d] => self.on_payload(dir, p),
            WsEvent::Payload(_) => {}
            WsEvent::End if self.in_control[d] => self.in_control[d] = false,
            WsEvent::End => {
                if self.msg[d].opcode.is_some() && self.fin[d] {
                    self.on_message_end(dir, ts);
                }
            }
        }
    }

    fn on_header(&mut self, dir: Direction, ts: u64, h: FrameHeader) {
        let d = dir.index();
        if h.is_control() {
            // Ping, pong and close may arrive between a message's fragments; none is compressed.
            self.in_control[d] = true;
            return;
        }
        self.fin[d] = h.fin;
        let m = &mut self.msg[d];
        match (h.opcode, m.opcode) {
            (frame::CONTINUATION, Some(_)) => {}
            (frame::TEXT | frame::BINARY, None) => {
                *m = Message { opcode: Some(h.opcode), compressed: h.rsv1, start_ns: ts, ..Message::default() };
            }
            _ => {
                // A continuation with no message open, or a new message inside one.
                self.stats.http_errors += 1;
                *m = Message { opcode: Some(h.opcode), dropped: Some(IncompleteReason::DecodeError), start_ns: ts, ..Message::default() };
            }
        }
    }

    fn cap(&self, dir: Direction) -> usize {
        if dir == self.up.request_dir { self.cfg.max_request_body } else { self.cfg.max_buffered_body }
    }

    fn on_payload(&mut self, dir: Direction, p: &[u8]) {
        let d = dir.index();
        let cap = self.cap(dir);
        let Self { msg, inflaters, stats, .. } = self;
        let m = &mut msg[d];
        if m.compressed {
            let Some(inf) = &mut inflaters[d] else {
                // RSV1 without the extension negotiated.
                m.dropped.get_or_insert(IncompleteReason::DecodeError);
                return;
            };
            // Inflate even a dropped message: later messages depend on its window.
            let res = inf.push(p, &mut |b| append(m, b, cap));
            if res.is_err() && m.dropped.is_none() {
                stats.decode_errors += 1;
                m.dropped = Some(IncompleteReason::DecodeError);
            }
        } else {
            append(m, p, cap);
        }
    }

    fn on_message_end(&mut self, dir: Direction, ts: u64) {
        let d = dir.index();
        let cap = self.cap(dir);
        let mut m = std::mem::take(&mut self.msg[d]);
        if m.compressed
            && let Some(inf) = &mut self.inflaters[d]
            && inf.finish(&mut |b| append(&mut m, b, cap)).is_err()
            && m.dropped.is_none()
        {
            self.stats.decode_errors += 1;
            m.dropped = Some(IncompleteReason::DecodeError);
        }
        if m.dropped == Some(IncompleteReason::BodyCap) {
            self.stats.bodies_capped += 1;
        }
        if m.opcode != Some(frame::TEXT) {
            return;
        }
        if dir == self.up.request_dir {
            self.on_client_message(&m);
        } else {
            self.on_server_message(&m, ts);
        }
    }

    fn on_client_message(&mut self, m: &Message) {
        if m.dropped.is_some() {
            // A message too large or undecodable: if it was a request, its answer will come
            // unpaired and be counted against a placeholder.
            return;
        }
        let Ok(cm) = serde_json::from_slice::<ClientMessage>(&m.buf) else {
            self.stats.bad_request_bodies += 1;
            return;
        };
        if cm.kind.as_deref() != Some("response.create") {
            return;
        }
        let body = cm.response.unwrap_or(cm.body);
        self.next_id += 1;
        let mut p = self.open(self.next_id, m.start_ns);
        p.route.refine("POST", &body, false);
        p.request_model = body.model.as_deref().and_then(|m| crate::labels::clean(crate::labels::Kind::Model, m));
        if let Some(r) = self.lost[other(self.up.request_dir).index()] {
            p.mark(r);
        }
        if self.queue.len() >= self.cfg.max_pending
            && let Some(mut old) = self.queue.pop_front()
        {
            self.stats.pending_overflow += 1;
            old.mark(IncompleteReason::DecodeError);
            self.emit(old, m.start_ns);
        }
        self.queue.push_back(p);
    }

    /// A Responses exchange on this connection; the path decides the API when it can.
    fn open(&self, id: u64, start_ns: u64) -> Pending {
        let path = self.up.path.clone().unwrap_or_default();
        let mut p = Pending::request(id, Protocol::Websocket, "POST", &path, start_ns);
        // Messages are not HTTP requests: no method is reported.
        p.method = None;
        p.host = self.up.host.clone();
        p.request_stream = true;
        p
    }

    fn on_server_message(&mut self, m: &Message, ts: u64) {
        if let Some(reason) = m.dropped {
            if let Some(p) = self.queue.front_mut() {
                p.mark(reason);
            }
            return;
        }
        let kind = match serde_json::from_slice::<ServerMessage<'_>>(&m.buf) {
            Ok(sm) => sm.kind.map(|k| k.into_owned()).unwrap_or_default(),
            Err(_) => {
                self.stats.bad_payloads += 1;
                return;
            }
        };
        if !kind.starts_with("response.") && kind != "error" {
            return;
        }
        if self.queue.is_empty() {
            if kind != "response.created" {
                return;
            }
            // Its `response.create` was lost (bytes of the client's side went missing).
            self.stats.unpaired_responses += 1;
            self.next_id += 1;
            let mut p = self.open(self.next_id, m.start_ns);
            p.start_ns = None;
            p.mark(self.lost[self.up.request_dir.index()].unwrap_or(IncompleteReason::DecodeError));
            self.queue.push_back(p);
        }
        let Some(p) = self.queue.front_mut() else { return };
        p.first_byte_ns.get_or_insert(m.start_ns);
        let mut obs = std::mem::take(&mut p.obs);
        openai_responses::on_event_json(&mut obs, &m.buf);
        self.stats.bad_payloads += obs.bad_payloads;
        obs.bad_payloads = 0;
        let done = obs.finished;
        p.obs = obs;
        if done && let Some(p) = self.queue.pop_front() {
            self.emit(p, ts);
        }
    }

    fn emit(&mut self, p: Pending, end_ns: u64) {
        let role = self.role();
        if let Some(x) = p.into_exchange(role, &self.cfg, &mut self.stats, end_ns) {
            self.finished.push(x);
        }
    }
}

/// Adds decoded bytes to a message, dropping it (but not its decoding) past the cap.
fn append(m: &mut Message, b: &[u8], cap: usize) {
    if m.dropped.is_some() {
        return;
    }
    if m.buf.len() + b.len() > cap {
        m.buf = Vec::new();
        m.dropped = Some(IncompleteReason::BodyCap);
    } else {
        m.buf.extend_from_slice(b);
    }
}
