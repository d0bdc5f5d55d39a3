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
    providers::{self, Endpoint, Observed, Provider, RequestBody, Route, Shape},
};

use super::{
    DecoderConfig, DecoderStats,
    body::BodyDecoder,
    exchange::{Exchange, IncompleteReason, Role, Timings},
    http1::{CloseOutcome, Framing, Head, Http1Error, Kind, MessageReader, RequestHead, ResponseHead, Step},
};

/// An exchange in flight.
struct Pending {
    id: u64,
    /// `None`: the request was lost (a placeholder) or never seen.
    method: Option<String>,
    path: Option<String>,
    host: Option<String>,
    route: Route,
    anthropic_version: bool,
    request_model: Option<String>,
    request_stream: bool,
    request_body: Option<BodyDecoder>,
    start_ns: Option<u64>,
    status: Option<u16>,
    first_byte_ns: Option<u64>,
    response: Option<BodyDecoder>,
    obs: Observed,
    reason: Option<IncompleteReason>,
}

impl Pending {
    fn unknown(id: u64, reason: IncompleteReason) -> Self {
        Self {
            id,
            method: None,
            path: None,
            host: None,
            route: providers::route("", ""),
            anthropic_version: false,
            request_model: None,
            request_stream: false,
            request_body: None,
            start_ns: None,
            status: None,
            first_byte_ns: None,
            response: None,
            obs: Observed::default(),
            reason: Some(reason),
        }
    }

    fn mark(&mut self, reason: IncompleteReason) {
        self.reason.get_or_insert(reason);
    }
}

pub struct ConnectionDecoder {
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
    finished: Vec<Exchange>,
    pub stats: DecoderStats,
}

impl ConnectionDecoder {
    pub fn new(cfg: DecoderConfig) -> Self {
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
            finished: Vec::new(),
            stats: DecoderStats::default(),
        }
    }

    /// Moves finished exchanges into `out`.
    pub fn drain(&mut self, out: &mut Vec<Exchange>) {
        out.append(&mut self.finished);
    }

    /// The process's side of the connection, once a request has been seen.
    pub fn role(&self) -> Option<Role> {
        self.request_dir.map(|d| match d {
            Direction::Write => Role::Client,
            Direction::Read => Role::Server,
        })
    }

    pub fn on_gap(&mut self, dir: Direction, ts_ns: u64, missing: u64) {
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
                p.mark(reason);
                p.request_body = None;
                return;
            }
        } else if self.request_dir.is_some() && self.response_active {
            self.response_active = false;
            if let Some(mut p) = self.queue.pop_front() {
                p.mark(reason);
                self.emit(p, ts_ns);
            }
        }
        self.lost[d] = Some(reason);
    }

    pub fn on_close(&mut self, ts_ns: u64) {
        let role = self.role();
        if let Some(resp_dir) = self.request_dir.map(other) {
            let outcome = self.readers[resp_dir.index()].close();
            if self.response_active {
                self.response_active = false;
                if let Some(mut p) = self.queue.pop_front() {
                    match outcome {
                        CloseOutcome::BodyEnded => self.end_response(&mut p),
                        _ => p.mark(abandoned(role)),
                    }
                    self.emit(p, ts_ns);
                }
            }
        }
        while let Some(mut p) = self.queue.pop_front() {
            p.mark(abandoned(role));
            self.emit(p, ts_ns);
        }
        self.request_cur = None;
        self.dead = true;
    }

    pub fn on_data(&mut self, dir: Direction, ts_ns: u64, mut data: &[u8]) {
        if self.dead {
            return;
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
                Step::Body(b) => self.on_body(dir, b),
                Step::End => self.on_end(dir, ts_ns),
                Step::Error(e) => self.on_error(dir, e, ts_ns),
            }
            data = rest;
        }
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
            self.push_pending(Pending::unknown(id, reason));
        }
        let route = providers::route(&r.method, &r.target);
        let framing = r.headers.framing(Kind::Request);
        self.readers[d].set_framing(if r.headers.upgrade { Framing::None } else { framing });
        // The body is read for inference calls and for unknown POSTs (their shape may tell).
        let keep = route.inference || (route.endpoint == Endpoint::Other && r.method == "POST");
        let id = self.new_id();
        let path = r.target.split('?').next().unwrap_or("").chars().take(256).collect();
        let pending = Pending {
            method: Some(r.method.chars().take(16).collect()),
            path: Some(path),
            host: r.headers.host.clone(),
            anthropic_version: r.headers.anthropic_version,
            request_body: Some(BodyDecoder::request(&self.cfg, r.headers.content_encoding.as_deref(), keep)),
            start_ns: Some(started),
            route,
            reason: None,
            ..Pending::unknown(id, IncompleteReason::Gap)
        };
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
                self.queue.push_back(Pending::unknown(id, reason));
            }
        }
        if self.queue.is_empty() {
            self.stats.unpaired_responses += 1;
            // The request was lost: this response accounts for it.
            let reason = self.lost[other(dir).index()].take().unwrap_or(IncompleteReason::DecodeError);
            let id = self.new_id();
            self.queue.push_back(Pending::unknown(id, reason));
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
            // WebSocket and tunnels are another issue's protocols: report the upgrade and stop.
            self.response_active = false;
            if let Some(p) = self.queue.pop_front() {
                self.emit(p, ts_ns);
            }
            self.stats.upgrades += 1;
            self.dead = true;
        }
    }

    fn on_body(&mut self, dir: Direction, b: &[u8]) {
        if Some(dir) == self.request_dir {
            let Some(id) = self.request_cur else { return };
            if let Some(p) = self.queue.iter_mut().find(|p| p.id == id)
                && let Some(body) = &mut p.request_body
            {
                let mut scratch = Observed::default();
                body.push(b, &mut scratch, &mut self.stats);
            }
        } else if self.response_active
            && let Some(p) = self.queue.front_mut()
            && let Some(body) = &mut p.response
        {
            body.push(b, &mut p.obs, &mut self.stats);
        }
    }

    fn on_end(&mut self, dir: Direction, ts_ns: u64) {
        if Some(dir) == self.request_dir {
            let Some(id) = self.request_cur.take() else { return };
            if let Some(p) = self.queue.iter_mut().find(|p| p.id == id) {
                finish_request(p, &mut self.stats);
            }
        } else if self.response_active {
            self.response_active = false;
            if let Some(mut p) = self.queue.pop_front() {
                self.end_response(&mut p);
                self.emit(p, ts_ns);
            }
        }
    }

    fn end_response(&mut self, p: &mut Pending) {
        if let Some(body) = &mut p.response {
            body.finish(&mut p.obs, &mut self.stats);
            if let Some(r) = body.failure {
                p.mark(r);
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
        if p.request_body.is_some() {
            // The response came before the request body ended (an early error reply).
            finish_request(&mut p, &mut self.stats);
        }
        let Pending { route, obs, .. } = &p;
        let role = self.role().unwrap_or(Role::Client);
        let streamed = p.response.as_ref().map_or(p.request_stream, BodyDecoder::streamed);
        let mut reason = p.reason;
        if reason.is_none()
            && streamed
            && route.shape.has_terminal_event()
            && !obs.finished
            && p.status.is_some_and(|s| (200..300).contains(&s))
        {
            reason = Some(IncompleteReason::StreamTruncated);
        }
        let inference = route.inference && (!route.from_body_shape || obs.usage_seen);
        if !inference && !self.cfg.emit_non_inference {
            return;
        }
        let path_first = route.provider != Provider::Azure;
        let model = p
            .request_model
            .clone()
            .or_else(|| if path_first { route.path_model.clone() } else { None })
            .or_else(|| obs.model.clone())
            .or_else(|| route.path_model.clone());
        self.stats.exchanges += 1;
        if reason.is_some() {
            self.stats.incomplete += 1;
        }
        self.finished.push(Exchange {
            conn: None,
            role,
            provider: route.provider,
            endpoint: route.endpoint,
            inference,
            method: p.method.clone(),
            path: p.path.clone(),
            host: p.host.clone(),
            model: if route.endpoint == Endpoint::Other && !inference { None } else { model },
            status: p.status,
            streamed,
            complete: reason.is_none(),
            incomplete_reason: reason,
            error_type: obs.error_type.clone(),
            timings: Timings { start_ns: p.start_ns, first_byte_ns: p.first_byte_ns, end_ns },
            usage: if inference { obs.usage } else { Default::default() },
            usage_seen: inference && obs.usage_seen,
        });
    }
}

/// Reads the model and stream flags from a finished request body, then drops the body.
fn finish_request(p: &mut Pending, stats: &mut DecoderStats) {
    let Some(mut body) = p.request_body.take() else { return };
    let mut scratch = Observed::default();
    body.finish(&mut scratch, stats);
    let Some(buf) = body.take_buffer() else { return };
    if buf.is_empty() {
        return;
    }
    match serde_json::from_slice::<RequestBody>(&buf) {
        Ok(rb) => {
            p.route.refine(p.method.as_deref().unwrap_or(""), &rb, p.anthropic_version);
            p.request_model = rb.model.as_deref().and_then(|m| providers::clean_label(m, 128));
            p.request_stream = rb.stream.unwrap_or(false);
        }
        Err(_) => stats.bad_request_bodies += 1,
    }
}

fn other(d: Direction) -> Direction {
    match d {
        Direction::Write => Direction::Read,
        Direction::Read => Direction::Write,
    }
}

fn abandoned(role: Option<Role>) -> IncompleteReason {
    match role {
        Some(Role::Server) => IncompleteReason::ConnectionClosed,
        _ => IncompleteReason::ClientAbort,
    }
}
