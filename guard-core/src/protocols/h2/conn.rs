//! One HTTP/2 connection: both directions' frames, one HPACK decoder per direction, and one
//! exchange per client stream, through the same body and provider decoding as HTTP/1.1.
//!
//! Lost bytes (a gap, or capture that began mid-connection) cost the frame position, which is
//! found again by [`find_chain`], and the HPACK table's history, which is never guessed: header
//! blocks that refer to it fail, and their streams are marked [`IncompleteReason::HeadersUnknown`]
//! and recognised by what the path and the request body's shape still tell.

use std::collections::{BTreeMap, VecDeque};

use crate::{events::Direction, providers::Shape};

use super::{
    frames::{self, Chain, FrameEvent, FrameHead, FrameReader, PREFACE, find_chain, header_fragment},
    hpack::HeaderDecoder,
};
use crate::protocols::{
    api_head::HeldRequest,
    DecoderConfig, DecoderStats,
    body::BodyDecoder,
    exchange::{Exchange, IncompleteReason, Protocol, Role},
    http1::{Headers, conn::other},
    pending::{Pending, abandoned},
};

/// Bytes kept while looking for frame boundaries; three frames of the largest plausible
/// length fit, so the search never gives up for lack of room.
const RESYNC_CAP: usize = 256 * 1024;
/// Closed stream ids remembered, so late frames of a finished stream open nothing.
const CLOSED_MEMORY: usize = 1024;

enum Input {
    /// At the start of a direction: the client's connection preface may come first.
    Preface(usize),
    Frames(FrameReader),
    /// Looking for a frame boundary; offsets before `from` start none.
    Resync(Vec<u8>),
}

/// A header block being collected from HEADERS/PUSH_PROMISE and CONTINUATION frames.
struct Block {
    stream: u32,
    push: bool,
    end_stream: bool,
    ts: u64,
    buf: Vec<u8>,
    /// Part of the block was not kept (too large, or a frame was skipped): it cannot decode.
    broken: bool,
}

struct Stream {
    p: Pending,
    ended: [bool; 2],
    /// A direction lost bytes of this stream: its body is not decoded any more.
    body_lost: [bool; 2],
    /// The response head: content type and coding.
    response_headers: Option<Headers>,
}

/// What one decoded header block said.
#[derive(Default)]
struct Fields {
    method: Option<String>,
    path: Option<String>,
    authority: Option<String>,
    status: Option<u16>,
    headers: Headers,
}

pub(crate) struct H2Conn {
    cfg: DecoderConfig,
    input: [Input; 2],
    /// Decodes the header blocks sent in each direction.
    hpack: [HeaderDecoder; 2],
    block: [Option<Block>; 2],
    streams: BTreeMap<u32, Stream>,
    closed: VecDeque<u32>,
    /// Which direction carries requests: the preface's, else the first block with `:method`.
    request_dir: Option<Direction>,
    /// Bytes were lost: DATA of a stream never opened in view may still be an exchange.
    lossy: bool,
    seen: [bool; 2],
    next_id: u64,
    finished: Vec<Exchange>,
    /// Start times of inference requests this process sent, known by their path.
    pub(crate) inference_requests: Vec<u64>,
    /// Requests for the request rules, each once it is whole (`api_head`).
    pub(crate) api_requests: Vec<crate::requests::ApiRequest>,
    pub stats: DecoderStats,
}

impl H2Conn {
    /// `clean`: both directions are seen from the connection's start.
    pub(crate) fn new(cfg: DecoderConfig, clean: bool) -> Self {
        let input = |_| if clean { Input::Preface(0) } else { Input::Resync(Vec::new()) };
        Self {
            cfg,
            input: [input(0), input(1)],
            hpack: [HeaderDecoder::new(clean), HeaderDecoder::new(clean)],
            block: [None, None],
            streams: BTreeMap::new(),
            closed: VecDeque::new(),
            request_dir: None,
            lossy: !clean,
            seen: [false, false],
            next_id: 0,
            finished: Vec::new(),
            inference_requests: Vec::new(),
            api_requests: Vec::new(),
            stats: DecoderStats::default(),
        }
    }

    pub(crate) fn drain(&mut self, out: &mut Vec<Exchange>) {
        out.append(&mut self.finished);
    }

    /// The exchanges in flight.
    pub(crate) fn pending(&mut self) -> impl Iterator<Item = &mut Pending> {
        self.streams.values_mut().map(|s| &mut s.p)
    }

    fn req_dir(&self) -> Direction {
        // Until a request head says otherwise, the captured process is taken as the client.
        self.request_dir.unwrap_or(Direction::Write)
    }

    fn role(&self) -> Role {
        match self.req_dir() {
            Direction::Write => Role::Client,
            Direction::Read => Role::Server,
        }
    }

    pub(crate) fn on_gap(&mut self, dir: Direction, ts_ns: u64) {
        let d = dir.index();
        self.stats.gaps += 1;
        let reason = if self.seen[d] || self.seen[1 - d] {
            IncompleteReason::Gap
        } else {
            IncompleteReason::MidStreamStart
        };
        self.seen[d] = true;
        self.lossy = true;
        self.input[d] = Input::Resync(Vec::new());
        self.block[d] = None;
        self.hpack[d].forget();
        for s in self.streams.values_mut() {
            if !s.ended[d] {
                s.p.cut(reason);
                s.body_lost[d] = true;
                if dir == self.request_dir.unwrap_or(Direction::Write) {
                    s.p.request_body = None;
                } else {
                    s.p.response = None;
                }
            }
        }
        let _ = ts_ns;
    }

    pub(crate) fn on_close(&mut self, ts_ns: u64) {
        for dir in [Direction::Write, Direction::Read] {
            if let Input::Resync(buf) = &mut self.input[dir.index()] {
                let buf = std::mem::take(buf);
                if let Chain::At(p) = find_chain(&buf, 0, true) {
                    self.input[dir.index()] = Input::Frames(FrameReader::new(self.max_payload()));
                    self.feed_frames(dir, ts_ns, &buf[p..]);
                }
            }
        }
        let role = Some(self.role());
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            if let Some(mut s) = self.streams.remove(&id) {
                s.p.cut(abandoned(role));
                self.emit(id, s, ts_ns);
            }
        }
    }

    pub(crate) fn on_data(&mut self, dir: Direction, ts_ns: u64, data: &[u8]) {
        let d = dir.index();
        self.seen[d] = true;
        match &mut self.input[d] {
            Input::Preface(k) => {
                let k0 = *k;
                let n = (PREFACE.len() - k0).min(data.len());
                if data[..n] == PREFACE[k0..k0 + n] {
                    *k += n;
                    if *k == PREFACE.len() {
                        self.request_dir = Some(dir);
                        self.input[d] = Input::Frames(FrameReader::new(self.max_payload()));
                        self.feed_frames(dir, ts_ns, &data[n..]);
                    }
                } else {
                    // Not the client's side: what matched so far were frame bytes.
                    self.input[d] = Input::Frames(FrameReader::new(self.max_payload()));
                    let replay = [&PREFACE[..k0], data].concat();
                    self.feed_frames(dir, ts_ns, &replay);
                }
            }
            Input::Frames(_) => self.feed_frames(dir, ts_ns, data),
            Input::Resync(buf) => {
                buf.extend_from_slice(data);
                self.resync(dir, ts_ns);
            }
        }
    }

    fn resync(&mut self, dir: Direction, ts_ns: u64) {
        let d = dir.index();
        let Input::Resync(buf) = &mut self.input[d] else { return };
        match find_chain(buf, 0, false) {
            Chain::At(p) => {
                let rest = buf.split_off(p);
                self.input[d] = Input::Frames(FrameReader::new(self.max_payload()));
                self.feed_frames(dir, ts_ns, &rest);
            }
            Chain::Undecided(p) => {
                buf.drain(..p);
                if buf.len() > RESYNC_CAP {
                    // Unreachable for plausible lengths; bounds memory all the same.
                    buf.clear();
                }
            }
        }
    }

    fn max_payload(&self) -> usize {
        self.cfg.max_head.max(1 << 16)
    }

    fn feed_frames(&mut self, dir: Direction, ts_ns: u64, data: &[u8]) {
        let d = dir.index();
        let Input::Frames(mut reader) = std::mem::replace(&mut self.input[d], Input::Preface(0)) else { return };
        let res = reader.push(data, &mut |ev| self.on_event(dir, ts_ns, ev));
        match res {
            Ok(()) => self.input[d] = Input::Frames(reader),
            Err((at, _)) => {
                // The frame position is lost from here: look for it again in what follows.
                self.stats.http_errors += 1;
                self.on_gap(dir, ts_ns);
                self.stats.gaps -= 1;
                self.input[d] = Input::Resync(data[at..].to_vec());
                self.resync(dir, ts_ns);
            }
        }
    }

    fn on_event(&mut self, dir: Direction, ts: u64, ev: FrameEvent<'_>) {
        let d = dir.index();
        if let FrameEvent::Frame { head, .. } | FrameEvent::Skipped { head } = &ev
            && self.block[d].as_ref().is_some_and(|b| head.kind != frames::CONTINUATION || head.stream != b.stream)
        {
            // A header block must not be interrupted (RFC 9113 §6.10): its state is lost.
            self.abandon_block(dir);
        }
        match ev {
            FrameEvent::Data { stream, data } => self.on_body(dir, stream, ts, data),
            FrameEvent::DataEnd { stream, end_stream } => {
                if end_stream {
                    self.on_stream_end(dir, stream, ts);
                }
            }
            FrameEvent::Frame { head, payload } => self.on_frame(dir, ts, head, payload),
            FrameEvent::Skipped { head } => match head.kind {
                frames::HEADERS | frames::PUSH_PROMISE | frames::CONTINUATION => {
                    if head.kind != frames::CONTINUATION {
                        self.block[d] = Some(Block {
                            stream: head.stream,
                            push: head.kind == frames::PUSH_PROMISE,
                            end_stream: head.flags & frames::END_STREAM != 0,
                            ts,
                            buf: Vec::new(),
                            broken: true,
                        });
                    } else if let Some(b) = &mut self.block[d] {
                        b.broken = true;
                    }
                    if head.flags & frames::END_HEADERS != 0 {
                        self.finish_block(dir);
                    }
                }
                _ => {}
            },
        }
    }

    fn on_frame(&mut self, dir: Direction, ts: u64, head: FrameHead, payload: &[u8]) {
        let d = dir.index();
        match head.kind {
            frames::HEADERS | frames::PUSH_PROMISE => {
                let (buf, broken) = match header_fragment(&head, payload) {
                    Some((_, frag)) => (frag.to_vec(), false),
                    None => (Vec::new(), true),
                };
                self.block[d] = Some(Block {
                    stream: head.stream,
                    push: head.kind == frames::PUSH_PROMISE,
                    end_stream: head.kind == frames::HEADERS && head.flags & frames::END_STREAM != 0,
                    ts,
                    buf,
                    broken,
                });
                if head.flags & frames::END_HEADERS != 0 {
                    self.finish_block(dir);
                }
            }
            frames::CONTINUATION => {
                let max = self.cfg.max_head;
                let Some(b) = &mut self.block[d] else {
                    // A continuation of a block we never saw the start of.
                    self.hpack[d].forget();
                    return;
                };
                if b.buf.len() + payload.len() > max {
                    b.broken = true;
                    b.buf.clear();
                } else if !b.broken {
                    b.buf.extend_from_slice(payload);
                }
                if head.flags & frames::END_HEADERS != 0 {
                    self.finish_block(dir);
                }
            }
            frames::RST_STREAM => {
                // The client resetting its own stream is a client that stopped reading.
                let reason =
                    if dir == self.req_dir() { IncompleteReason::ClientAbort } else { IncompleteReason::StreamReset };
                if let Some(mut s) = self.streams.remove(&head.stream) {
                    s.p.cut(reason);
                    self.emit(head.stream, s, ts);
                }
            }
            frames::GOAWAY => {
                let Some(last) = payload.get(..4) else { return };
                let last = u32::from_be_bytes([last[0], last[1], last[2], last[3]]) & 0x7fff_ffff;
                // Streams the sender of GOAWAY never processed (RFC 9113 §6.8).
                if dir != self.req_dir() {
                    let refused: Vec<u32> = self.streams.range(last.saturating_add(1)..).map(|(k, _)| *k).collect();
                    for id in refused {
                        if let Some(mut s) = self.streams.remove(&id) {
                            s.p.cut(IncompleteReason::StreamReset);
                            self.emit(id, s, ts);
                        }
                    }
                }
            }
            frames::SETTINGS if head.flags & frames::ACK == 0 => {
                for kv in payload.chunks_exact(6) {
                    let id = u16::from_be_bytes([kv[0], kv[1]]);
                    let v = u32::from_be_bytes([kv[2], kv[3], kv[4], kv[5]]);
                    if id == 0x1 {
                        // SETTINGS_HEADER_TABLE_SIZE bounds the *other* direction's encoder.
                        self.hpack[other(dir).index()].set_limit(v);
                    }
                }
            }
            // PING, WINDOW_UPDATE, PRIORITY, SETTINGS acks and unknown types carry nothing here.
            _ => {}
        }
    }

    fn abandon_block(&mut self, dir: Direction) {
        let d = dir.index();
        if let Some(b) = self.block[d].take() {
            self.hpack[d].forget();
            self.stats.http_errors += 1;
            if let Some(s) = self.streams.get_mut(&b.stream) {
                s.p.mark(IncompleteReason::HeadersUnknown);
            }
        }
    }

    fn finish_block(&mut self, dir: Direction) {
        let d = dir.index();
        let Some(b) = self.block[d].take() else { return };
        let mut f = Fields::default();
        let ok = if b.broken {
            self.hpack[d].forget();
            false
        } else {
            let res = self.hpack[d].decode(&b.buf, &mut |n, v| read_field(&mut f, n, v));
            res.is_ok()
        };
        if !ok {
            self.stats.http_errors += 1;
        }
        if b.push || b.stream.is_multiple_of(2) {
            // Server push: decoded only to keep the table in step.
            return;
        }
        if f.method.is_some() && self.request_dir.is_none() {
            self.request_dir = Some(dir);
        } else if f.status.is_some() && self.request_dir.is_none() {
            self.request_dir = Some(other(dir));
        }
        let is_request = if f.method.is_some() {
            true
        } else if f.status.is_some() {
            false
        } else if ok {
            // Trailers: nothing to read but the end of the stream.
            if b.end_stream {
                self.on_stream_end(dir, b.stream, b.ts);
            }
            return;
        } else {
            dir == self.req_dir()
        };
        if is_request {
            self.on_request_head(dir, &b, f, ok);
        } else {
            self.on_response_head(&b, f, ok);
        }
        if b.end_stream {
            self.on_stream_end(dir, b.stream, b.ts);
        }
    }

    /// The hosts of the streams in flight; then forgets those whose request side ended. For a
    /// caller that feeds the request direction only (the request pause): no response would ever
    /// end them.
    pub(crate) fn forget_sent_requests(&mut self) -> Vec<String> {
        let req = self.req_dir().index();
        let mut hosts: Vec<String> = self.streams.values().filter_map(|s| s.p.host.clone()).collect();
        hosts.dedup();
        let done: Vec<u32> = self.streams.iter().filter(|(_, s)| s.ended[req]).map(|(id, _)| *id).collect();
        for id in done {
            self.streams.remove(&id);
            if self.closed.len() >= CLOSED_MEMORY {
                self.closed.pop_front();
            }
            self.closed.push_back(id);
        }
        hosts
    }

    fn is_closed(&self, id: u32) -> bool {
        self.closed.contains(&id)
    }

    fn on_request_head(&mut self, dir: Direction, b: &Block, f: Fields, ok: bool) {
        if self.streams.contains_key(&b.stream) || self.is_closed(b.stream) {
            return;
        }
        self.next_id += 1;
        let mut p = match (&f.method, &f.path) {
            (Some(m), Some(path)) => Pending::request(self.next_id, Protocol::Http2, m, path, b.ts),
            _ => {
                let mut p = Pending::unknown(self.next_id, Protocol::Http2, IncompleteReason::HeadersUnknown);
                p.method = f.method.as_ref().map(|m| m.chars().take(16).collect());
                p.start_ns = Some(b.ts);
                p
            }
        };
        if !ok {
            p.mark(IncompleteReason::HeadersUnknown);
        }
        p.host = f.authority.or(f.headers.host.clone());
        p.anthropic_version = f.headers.anthropic_version;
        // Without the headers, the body's shape is all there is to go on.
        let keep = !ok || p.keeps_body();
        p.request_body = Some(BodyDecoder::request(&self.cfg, f.headers.content_encoding.as_deref(), keep));
        if dir == Direction::Write && p.path.is_some() && p.route.inference {
            self.inference_requests.push(b.ts);
        }
        if let (Direction::Write, true, Some(m), Some(target)) = (dir, ok && !p.route.inference, &f.method, &f.path) {
            p.api = HeldRequest::start(m, target, p.host.as_deref(), &f.headers, b.ts, b.end_stream);
            if b.end_stream {
                p.api.take(true, &mut self.api_requests);
            }
        }
        self.open(b.stream, p);
    }

    fn open(&mut self, id: u32, p: Pending) {
        let cap = self.cfg.max_pending.saturating_mul(4).max(1);
        if self.streams.len() >= cap
            && let Some((&oldest, _)) = self.streams.iter().next()
            && let Some(mut s) = self.streams.remove(&oldest)
        {
            self.stats.pending_overflow += 1;
            s.p.mark(IncompleteReason::DecodeError);
            let end = s.p.start_ns.unwrap_or(0);
            self.emit(oldest, s, end);
        }
        let s = Stream { p, ended: [false; 2], body_lost: [false; 2], response_headers: None };
        self.streams.insert(id, s);
    }

    /// A stream first seen mid-way (its request head was lost) after bytes went missing.
    fn open_unknown(&mut self, id: u32, ts: u64) -> bool {
        if !self.lossy || id.is_multiple_of(2) || self.is_closed(id) {
            return false;
        }
        self.next_id += 1;
        let reason = if self.hpack.iter().all(HeaderDecoder::known) {
            IncompleteReason::Gap
        } else {
            IncompleteReason::MidStreamStart
        };
        let mut p = Pending::unknown(self.next_id, Protocol::Http2, reason);
        p.first_byte_ns = None;
        let _ = ts;
        self.open(id, p);
        // Its request body is gone at least in part: neither side's body start was seen.
        let req = self.req_dir().index();
        if let Some(s) = self.streams.get_mut(&id) {
            s.body_lost[req] = true;
        }
        true
    }

    fn on_response_head(&mut self, b: &Block, f: Fields, ok: bool) {
        if !self.streams.contains_key(&b.stream) && !self.open_unknown(b.stream, b.ts) {
            return;
        }
        let Some(s) = self.streams.get_mut(&b.stream) else { return };
        if let Some(st) = f.status
            && (100..200).contains(&st)
        {
            return;
        }
        if !ok {
            s.p.mark(IncompleteReason::HeadersUnknown);
        }
        s.p.status = f.status;
        s.p.first_byte_ns = Some(b.ts);
        let h = &f.headers;
        if s.p.route.shape == Shape::BedrockInvoke {
            crate::providers::bedrock::apply_counts(
                &mut s.p.obs,
                h.amzn_input_tokens,
                h.amzn_output_tokens,
                h.amzn_cache_read_tokens,
                h.amzn_cache_write_tokens,
            );
        }
        if h.amzn_error_type.is_some() {
            s.p.obs.set_error(h.amzn_error_type.as_deref());
        }
        s.response_headers = ok.then_some(f.headers);
    }

    fn on_body(&mut self, dir: Direction, id: u32, ts: u64, data: &[u8]) {
        if !self.streams.contains_key(&id) && !self.open_unknown(id, ts) {
            return;
        }
        let req = dir == self.req_dir();
        let cfg = &self.cfg;
        let Some(s) = self.streams.get_mut(&id) else { return };
        if s.body_lost[dir.index()] {
            return;
        }
        if req {
            if s.p.api.push_body(data) {
                s.p.api.take(false, &mut self.api_requests);
            }
            if let Some(body) = &mut s.p.request_body {
                let mut scratch = crate::providers::Observed::default();
                body.push(data, &mut scratch, &mut self.stats);
            }
            return;
        }
        if s.p.first_byte_ns.is_none() {
            s.p.first_byte_ns = Some(ts);
        }
        if s.p.response.is_none() {
            // The response decoder needs the route, which the request body may refine.
            if s.p.request_body.is_some() {
                s.p.finish_request(&mut self.stats);
            }
            s.p.response = Some(response_decoder(cfg, &s.p, s.response_headers.as_ref()));
        }
        s.p.push_response(data, ts, &mut self.stats);
    }

    fn on_stream_end(&mut self, dir: Direction, id: u32, ts: u64) {
        let req = dir == self.req_dir();
        let Some(s) = self.streams.get_mut(&id) else { return };
        s.ended[dir.index()] = true;
        if req {
            s.p.api.take(true, &mut self.api_requests);
            s.p.finish_request(&mut self.stats);
            return;
        }
        if s.p.response.is_none() && !s.body_lost[dir.index()] && s.p.status.is_some() {
            // A response without a body (or one that ended with its headers).
            if s.p.request_body.is_some() {
                s.p.finish_request(&mut self.stats);
            }
            s.p.response = Some(response_decoder(&self.cfg, &s.p, s.response_headers.as_ref()));
        }
        if let Some(mut s) = self.streams.remove(&id) {
            s.p.end_response(&mut self.stats);
            self.emit(id, s, ts);
        }
    }

    fn emit(&mut self, id: u32, mut s: Stream, end_ns: u64) {
        s.p.api.take(false, &mut self.api_requests);
        if self.closed.len() >= CLOSED_MEMORY {
            self.closed.pop_front();
        }
        self.closed.push_back(id);
        let role = self.role();
        if let Some(x) = s.p.into_exchange(role, &self.cfg, &mut self.stats, end_ns) {
            self.finished.push(x);
        }
    }
}

fn response_decoder(cfg: &DecoderConfig, p: &Pending, h: Option<&Headers>) -> BodyDecoder {
    let ok = p.status.is_some_and(|s| (200..300).contains(&s));
    match h {
        Some(h) => BodyDecoder::response(
            cfg,
            h.content_encoding.as_deref(),
            h.content_type.as_deref(),
            p.route.shape,
            p.route.json_array_stream,
            ok,
        ),
        None => BodyDecoder::response_sniffed(cfg, p.route.shape, p.route.json_array_stream && ok),
    }
}

/// Keeps the fields guard uses; credentials and everything else are dropped here.
fn read_field(f: &mut Fields, name: &[u8], value: &[u8]) {
    let text = || String::from_utf8_lossy(value).chars().take(2048).collect::<String>();
    match name {
        b":method" => f.method = Some(text()),
        b":path" => f.path = Some(text()),
        b":authority" => f.authority = Some(text().chars().take(256).collect()),
        b":status" => f.status = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()),
        _ => {
            if let Ok(n) = std::str::from_utf8(name) {
                // A malformed content-length does not matter on HTTP/2 (DATA frames delimit).
                let _ = f.headers.observe(n, value);
            }
        }
    }
}
