//! One connection's HTTP/1.1 exchanges: both directions' readers, request/response pairing,
//! and the per-exchange body decoders. Sans-IO: bytes and timestamps in, [`Exchange`]s out.
//!
//! Pairing is first-in first-out, as HTTP/1.1 requires, with two rules for lost bytes:
//! - a gap on the request side while between requests leaves a placeholder in the queue (the
//!   response to a lost request must not be given to the next request);
//! - after a gap on the response side, the next response goes to the newest request (a client
//!   that waits for each response sends the next request only after the last response), and
//!   older unanswered requests are closed as incomplete.

use std::collections::VecDeque;

use crate::{
    events::Direction,
    requests::ApiRequest,
    providers::{self, Observed, Shape},
};

use super::{CloseOutcome, Framing, Head, Http1Error, Kind, MessageReader, RequestHead, ResponseHead, Step};
use crate::protocols::{
    DecoderConfig, DecoderStats,
    api_head::HeldRequest,
    body::BodyDecoder,
    exchange::{Exchange, IncompleteReason, Protocol, Role},
    pending::{Pending, abandoned},
};

/// What the dispatcher needs to go on after a `101 Switching Protocols` to WebSocket.
#[derive(Clone, Debug)]
pub(crate) struct Upgrade {
    pub request_dir: Direction,
    pub path: Option<String>,
    pub host: Option<String>,
    /// The `Sec-WebSocket-Extensions` the server accepted (what is in force).
    pub extensions: Option<String>,
}

pub(crate) struct Http1Conn {
    cfg: DecoderConfig,
    readers: [MessageReader; 2],
    /// Which direction carries requests; decided by the first head seen.
    request_dir: Option<Direction>,
    queue: VecDeque<Pending>,
    next_id: u64,
    /// The request whose body is arriving.
    request_cur: Option<u64>,
    /// The front of the queue is receiving its response body.
    response_active: bool,
    /// Bytes were lost on a direction since its last head (with the reason to report).
    lost: [Option<IncompleteReason>; 2],
    seen_data: [bool; 2],
    /// Some direction's first event was data (from offset 0), not a gap.
    clean_start: bool,
    /// When the head now being read began, per direction.
    head_ts: [Option<u64>; 2],
    /// The connection stopped speaking HTTP/1.1 (HTTP/2, an upgrade): ignore it from here on.
    dead: bool,
    /// Set when the connection switched to WebSocket.
    pub upgrade: Option<Upgrade>,
    finished: Vec<Exchange>,
    /// Start times of inference requests this process sent, known by their path.
    pub(crate) inference_requests: Vec<u64>,
    /// Requests for the request rules, each once it is whole (`api_head`).
    pub(crate) api_requests: Vec<ApiRequest>,
    pub stats: DecoderStats,
}

impl Http1Conn {
    pub(crate) fn new(cfg: DecoderConfig) -> Self {
        let readers = [MessageReader::new(cfg.max_head), MessageReader::new(cfg.max_head)];
        Self {
            cfg,
            readers,
            request_dir: None,
            queue: VecDeque::new(),
            next_id: 0,
            request_cur: None,
            response_active: false,
            lost: [None, None],
            seen_data: [false, false],
            clean_start: false,
            head_ts: [None, None],
            dead: false,
            upgrade: None,
            finished: Vec::new(),
            inference_requests: Vec::new(),
            api_requests: Vec::new(),
            stats: DecoderStats::default(),
        }
    }

    /// Moves finished exchanges into `out`.
    pub(crate) fn drain(&mut self, out: &mut Vec<Exchange>) {
        out.append(&mut self.finished);
    }

    /// The exchanges in flight.
    pub(crate) fn pending(&mut self) -> impl Iterator<Item = &mut Pending> {
        self.queue.iter_mut()
    }

    /// The process's side of the connection, once a request has been seen.
    pub(crate) fn role(&self) -> Option<Role> {
        self.request_dir.map(|d| match d {
            Direction::Write => Role::Client,
            Direction::Read => Role::Server,
        })
    }

    pub(crate) fn on_gap(&mut self, dir: Direction, ts_ns: u64, missing: u64) {
        let _ = missing;
        self.stats.gaps += 1;
        if self.dead {
            return;
        }
        let d = dir.index();
        // Capture began mid-connection only if no direction has been seen from its start.
        let reason = if self.seen_data[d] || self.clean_start {
            IncompleteReason::Gap
        } else {
            IncompleteReason::MidStreamStart
        };
        self.seen_data[d] = true;
        self.readers[d].gap();
        self.head_ts[d] = None;
        if Some(dir) == self.request_dir {
            if let Some(id) = self.request_cur.take()
                && let Some(p) = self.queue.iter_mut().find(|p| p.id == id)
            {
                p.api.take(false, &mut self.api_requests);
                p.mark(reason);
                p.request_body = None;
                return;
            }
        } else if self.request_dir.is_some() && self.response_active {
            self.response_active = false;
            if let Some(mut p) = self.queue.pop_front() {
                p.cut(reason);
                self.emit(p, ts_ns);
            }
        }
        self.lost[d] = Some(reason);
    }

    pub(crate) fn on_close(&mut self, ts_ns: u64) {
        let role = self.role();
        if let Some(resp_dir) = self.request_dir.map(other) {
            let outcome = self.readers[resp_dir.index()].close();
            if self.response_active {
                self.response_active = false;
                if let Some(mut p) = self.queue.pop_front() {
                    match outcome {
                        CloseOutcome::BodyEnded => p.end_response(&mut self.stats),
                        _ => p.cut(abandoned(role)),
                    }
                    self.emit(p, ts_ns);
                }
            }
        }
        while let Some(mut p) = self.queue.pop_front() {
            p.cut(abandoned(role));
            self.emit(p, ts_ns);
        }
        self.request_cur = None;
        self.dead = true;
    }

    /// Returns how many bytes were HTTP/1.1: after an upgrade the rest belongs to the new protocol.
    pub(crate) fn on_data(&mut self, dir: Direction, ts_ns: u64, mut data: &[u8]) -> usize {
        let len = data.len();
        if self.dead {
            return len;
        }
        let d = dir.index();
        if !self.seen_data[d] {
            self.seen_data[d] = true;
            self.clean_start = true;
        }
        while (!data.is_empty() || self.readers[d].end_pending()) && !self.dead {
            if self.readers[d].awaiting_head() && self.head_ts[d].is_none() {
                self.head_ts[d] = Some(ts_ns);
            }
            let (used, step) = self.readers[d].step(data);
            let rest = &data[used..];
            match step {
                Step::NeedMore => {
                    if used == 0 {
                        break;
                    }
                    if self.readers[d].awaiting_head() && !self.readers[d].has_partial_head() {
                        self.head_ts[d] = None;
                    }
                }
                Step::Head(head) => {
                    let started = self.head_ts[d].take().unwrap_or(ts_ns);
                    self.on_head(dir, head, started, ts_ns);
                }
                Step::Body(b) => self.on_body(dir, ts_ns, b),
                Step::End => self.on_end(dir, ts_ns),
                Step::Error(e) => self.on_error(dir, e, ts_ns),
            }
            data = rest;
        }
        if self.upgrade.is_some() { len - data.len() } else { len }
    }

    fn on_head(&mut self, dir: Direction, head: Head, started: u64, ts_ns: u64) {
        match head {
            Head::Request(r) => {
                if self.request_dir.is_none() {
                    self.request_dir = Some(dir);
                    self.readers[dir.index()].expect(Kind::Request);
                    self.readers[other(dir).index()].expect(Kind::Response);
                }
                self.on_request(dir, r, started);
            }
            Head::Response(r) => {
                if self.request_dir.is_none() {
                    self.request_dir = Some(other(dir));
                    self.readers[dir.index()].expect(Kind::Response);
                    self.readers[other(dir).index()].expect(Kind::Request);
                }
                self.on_response(dir, r, started, ts_ns);
            }
        }
    }

    fn on_request(&mut self, dir: Direction, r: RequestHead, started: u64) {
        let d = dir.index();
        if let Some(reason) = self.lost[d].take() {
            // Whole requests may have gone: hold their place so their responses pair with it.
            let id = self.new_id();
            self.push_pending(Pending::unknown(id, Protocol::Http1, reason));
        }
        let framing = r.headers.framing(Kind::Request);
        self.readers[d].set_framing(if r.headers.upgrade { Framing::None } else { framing });
        let id = self.new_id();
        let mut pending = Pending::request(id, Protocol::Http1, &r.method, &r.target, started);
        pending.host = r.headers.host.clone();
        pending.anthropic_version = r.headers.anthropic_version;
        let keep = pending.keeps_body();
        pending.request_body = Some(BodyDecoder::request(&self.cfg, r.headers.content_encoding.as_deref(), keep));
        if dir == Direction::Write && pending.route.inference {
            self.inference_requests.push(started);
        }
        if dir == Direction::Write && !pending.route.inference {
            let no_body = !r.headers.upgrade && matches!(framing, Framing::None | Framing::Length(0));
            pending.api = HeldRequest::start(&r.method, &r.target, r.headers.host.as_deref(), &r.headers, started, no_body);
            if no_body {
                pending.api.take(true, &mut self.api_requests);
            }
        }
        self.push_pending(pending);
        self.request_cur = Some(id);
    }

    fn push_pending(&mut self, p: Pending) {
        if self.queue.len() >= self.cfg.max_pending {
            self.stats.pending_overflow += 1;
            if let Some(mut old) = self.queue.pop_front() {
                self.response_active = false;
                old.mark(IncompleteReason::DecodeError);
                let end = old.start_ns.unwrap_or(0);
                self.emit(old, end);
            }
        }
        self.queue.push_back(p);
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn on_response(&mut self, dir: Direction, r: ResponseHead, started: u64, ts_ns: u64) {
        let d = dir.index();
        let interim = (100..200).contains(&r.status) && r.status != 101;
        if interim {
            // 100 Continue and friends: the final response follows.
            self.readers[d].set_framing(Framing::None);
            return;
        }
        if let Some(reason) = self.lost[d].take() {
            // Responses may have been lost whole: answer the newest request, close the older.
            while self.queue.len() > 1 {
                if let Some(mut old) = self.queue.pop_front() {
                    old.mark(reason);
                    self.emit(old, ts_ns);
                }
            }
            if self.queue.is_empty() {
                let id = self.new_id();
                self.queue.push_back(Pending::unknown(id, Protocol::Http1, reason));
            }
        }
        if self.queue.is_empty() {
            self.stats.unpaired_responses += 1;
            // The request was lost: this response accounts for it.
            let reason = self.lost[other(dir).index()].take().unwrap_or(IncompleteReason::DecodeError);
            let id = self.new_id();
            self.queue.push_back(Pending::unknown(id, Protocol::Http1, reason));
        }
        let cfg = self.cfg.clone();
        let Some(p) = self.queue.front_mut() else {
            self.readers[d].set_framing(Framing::None);
            return;
        };
        p.status = Some(r.status);
        p.first_byte_ns = Some(started);
        let head_req = p.method.as_deref() == Some("HEAD");
        let connect = p.method.as_deref() == Some("CONNECT");
        let framing = if r.status == 101 || (connect && (200..300).contains(&r.status)) {
            Framing::Tunnel
        } else if head_req || r.status == 204 || r.status == 304 {
            Framing::None
        } else {
            r.headers.framing(Kind::Response)
        };
        let h = &r.headers;
        if p.route.shape == Shape::BedrockInvoke {
            providers::bedrock::apply_counts(
                &mut p.obs,
                h.amzn_input_tokens,
                h.amzn_output_tokens,
                h.amzn_cache_read_tokens,
                h.amzn_cache_write_tokens,
            );
        }
        if h.amzn_error_type.is_some() {
            p.obs.set_error(h.amzn_error_type.as_deref());
        }
        p.response = Some(BodyDecoder::response(
            &cfg,
            h.content_encoding.as_deref(),
            h.content_type.as_deref(),
            p.route.shape,
            p.route.json_array_stream,
            (200..300).contains(&r.status),
        ));
        self.readers[d].set_framing(framing);
        self.response_active = true;
        if framing == Framing::Tunnel {
            // The upgrade itself is reported (not inference); a WebSocket goes on in its own
            // decoder, other tunnels are not followed.
            self.response_active = false;
            if let Some(p) = self.queue.pop_front() {
                if r.status == 101 && r.headers.websocket {
                    self.upgrade = Some(Upgrade {
                        request_dir: other(dir),
                        path: p.path.clone(),
                        host: p.host.clone(),
                        extensions: r.headers.ws_extensions.clone(),
                    });
                }
                self.emit(p, ts_ns);
            }
            self.stats.upgrades += 1;
            self.dead = true;
        }
    }

    fn on_body(&mut self, dir: Direction, ts_ns: u64, b: &[u8]) {
        if Some(dir) == self.request_dir {
            let Some(id) = self.request_cur else { return };
            let Some(p) = self.queue.iter_mut().find(|p| p.id == id) else { return };
            if p.api.push_body(b) {
                p.api.take(false, &mut self.api_requests);
            }
            if let Some(body) = &mut p.request_body {
                let mut scratch = Observed::default();
                body.push(b, &mut scratch, &mut self.stats);
            }
        } else if self.response_active
            && let Some(p) = self.queue.front_mut()
        {
            p.push_response(b, ts_ns, &mut self.stats);
        }
    }

    fn on_end(&mut self, dir: Direction, ts_ns: u64) {
        if Some(dir) == self.request_dir {
            let Some(id) = self.request_cur.take() else { return };
            if let Some(p) = self.queue.iter_mut().find(|p| p.id == id) {
                p.api.take(true, &mut self.api_requests);
                p.finish_request(&mut self.stats);
            }
        } else if self.response_active {
            self.response_active = false;
            if let Some(mut p) = self.queue.pop_front() {
                p.end_response(&mut self.stats);
                self.emit(p, ts_ns);
            }
        }
    }

    fn on_error(&mut self, dir: Direction, e: Http1Error, ts_ns: u64) {
        self.stats.http_errors += 1;
        if e == Http1Error::Http2 {
            self.stats.http2 += 1;
            self.dead = true;
            return;
        }
        if Some(dir) == self.request_dir {
            if let Some(id) = self.request_cur.take()
                && let Some(p) = self.queue.iter_mut().find(|p| p.id == id)
            {
                p.api.take(false, &mut self.api_requests);
                p.mark(IncompleteReason::DecodeError);
                p.request_body = None;
            } else {
                self.lost[dir.index()] = Some(IncompleteReason::DecodeError);
            }
        } else if self.request_dir.is_some() {
            if self.response_active {
                self.response_active = false;
                if let Some(mut p) = self.queue.pop_front() {
                    p.mark(IncompleteReason::DecodeError);
                    self.emit(p, ts_ns);
                }
            }
            self.lost[dir.index()] = Some(IncompleteReason::DecodeError);
        }
    }

    fn emit(&mut self, mut p: Pending, end_ns: u64) {
        p.api.take(false, &mut self.api_requests);
        let role = self.role().unwrap_or(Role::Client);
        if let Some(x) = p.into_exchange(role, &self.cfg, &mut self.stats, end_ns) {
            self.finished.push(x);
        }
    }
}

pub(crate) fn other(d: Direction) -> Direction {
    match d {
        Direction::Write => Direction::Read,
        Direction::Read => Direction::Write,
    }
}
