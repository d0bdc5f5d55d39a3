//! One connection's decoder: decides from the bytes (the HTTP/2 preface, a chain of HTTP/2
//! frames, an HTTP/1.1 request or status line, a `101` to WebSocket), never from the port,
//! which protocol it speaks, and hands the bytes to that protocol's decoder. Sans-IO: bytes and
//! timestamps in, [`Exchange`]s out.
//!
//! Until the protocol is known, events are held (bounded) and replayed once it is, so the
//! decision never depends on how the bytes were cut into pieces.

use crate::{events::Direction, requests::ApiRequest};

use super::{
    DecoderConfig, DecoderStats,
    exchange::{Exchange, Role},
    h2::{
        conn::H2Conn,
        frames::{Chain, FrameHead, PREFACE, SETTINGS, find_chain},
    },
    http1::{RESYNC_STARTS, conn::Http1Conn},
    pending::{EarlyCalls, Pending},
    ws::conn::WsConn,
};

/// Bytes held while the protocol is unknown; past this the connection is taken as HTTP/1.1,
/// whose own resynchronisation copes with anything.
const SNIFF_CAP: usize = 256 * 1024;

enum Held {
    Data(Direction, u64, Vec<u8>),
    Gap(Direction, u64, u64),
}

/// What one direction's bytes say about the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Undecided,
    Http1,
    /// The client's preface (clean start) or a chain of frames (after lost bytes).
    Http2,
    /// A server's first SETTINGS frame: HTTP/2 if the other side agrees.
    MaybeHttp2,
}

#[derive(Default)]
struct Sniff {
    held: Vec<Held>,
    held_bytes: usize,
    /// Bytes of each direction since its start or its last gap.
    buf: [Vec<u8>; 2],
    /// The direction's bytes follow a gap (or capture began mid-way) rather than its start.
    lossy: [bool; 2],
    /// Offsets before this one start neither HTTP/1.1 nor HTTP/2 (lossy directions).
    from: [usize; 2],
    verdict: [Option<Verdict>; 2],
}

enum Mode {
    Sniff(Sniff),
    Http1(Box<Http1Conn>),
    H2(Box<H2Conn>),
    Ws(Box<WsConn>),
}

pub struct ConnectionDecoder {
    cfg: DecoderConfig,
    mode: Mode,
    /// Counters of decoders this connection has left behind (HTTP/1.1 after an upgrade).
    base: DecoderStats,
    finished: Vec<Exchange>,
    /// Start times of inference requests the process sent, in order (see [`Self::drain_inference_requests`]).
    inference_requests: Vec<u64>,
    /// Requests for the request rules (see [`Self::drain_api_requests`]).
    api_requests: Vec<ApiRequest>,
    role: Option<Role>,
    pub stats: DecoderStats,
}

impl ConnectionDecoder {
    pub fn new(cfg: DecoderConfig) -> Self {
        Self {
            cfg,
            mode: Mode::Sniff(Sniff::default()),
            base: DecoderStats::default(),
            finished: Vec::new(),
            inference_requests: Vec::new(),
            api_requests: Vec::new(),
            role: None,
            stats: DecoderStats::default(),
        }
    }

    /// Moves finished exchanges into `out`.
    pub fn drain(&mut self, out: &mut Vec<Exchange>) {
        out.append(&mut self.finished);
    }

    /// Moves the start times of inference requests the process sent as a client (known by their
    /// path, when the request head is read) into `out`: the agent is known before any response.
    pub fn drain_inference_requests(&mut self, out: &mut Vec<u64>) {
        out.append(&mut self.inference_requests);
    }

    /// Moves the requests the process sent as a client that the request rules may judge (not
    /// read-only, not inference), each as soon as it is whole, into `out`.
    pub fn drain_api_requests(&mut self, out: &mut Vec<ApiRequest>) {
        out.append(&mut self.api_requests);
    }

    /// Moves the tool calls completed in responses still in flight into `out` (client side only).
    pub fn drain_tool_calls(&mut self, out: &mut Vec<EarlyCalls>) {
        if self.role() != Some(Role::Client) {
            return;
        }
        // Called per stream event: no allocation unless a call is new.
        match &mut self.mode {
            Mode::Sniff(_) => {}
            Mode::Http1(h) => out.extend(h.pending().filter_map(Pending::announce)),
            Mode::H2(h) => out.extend(h.pending().filter_map(Pending::announce)),
            Mode::Ws(w) => out.extend(w.pending().filter_map(Pending::announce)),
        }
    }

    /// The process's side of the connection, once a request has been seen.
    pub fn role(&self) -> Option<Role> {
        match &self.mode {
            Mode::Http1(h) => h.role(),
            _ => self.role,
        }
    }

    pub fn on_gap(&mut self, dir: Direction, ts_ns: u64, missing: u64) {
        match &mut self.mode {
            Mode::Sniff(s) => {
                let d = dir.index();
                s.held.push(Held::Gap(dir, ts_ns, missing));
                s.buf[d].clear();
                s.lossy[d] = true;
                s.from[d] = 0;
                s.verdict[d] = None;
            }
            Mode::Http1(h) => h.on_gap(dir, ts_ns, missing),
            Mode::H2(h) => h.on_gap(dir, ts_ns),
            Mode::Ws(w) => w.on_gap(dir, ts_ns),
        }
        self.settle();
    }

    pub fn on_data(&mut self, dir: Direction, ts_ns: u64, data: &[u8]) {
        match &mut self.mode {
            Mode::Sniff(s) => {
                let d = dir.index();
                s.held_bytes += data.len();
                s.held.push(Held::Data(dir, ts_ns, data.to_vec()));
                if s.buf[d].len() < SNIFF_CAP {
                    s.buf[d].extend_from_slice(data);
                }
                if let Some(next) = decide(s, false) {
                    self.switch(next);
                } else if s.held_bytes > SNIFF_CAP {
                    self.switch(Verdict::Http1);
                }
            }
            Mode::Http1(h) => {
                let used = h.on_data(dir, ts_ns, data);
                if h.upgrade.is_some() {
                    self.upgrade(dir, ts_ns, &data[used..]);
                }
            }
            Mode::H2(h) => h.on_data(dir, ts_ns, data),
            Mode::Ws(w) => w.on_data(dir, ts_ns, data),
        }
        self.settle();
    }

    pub fn on_close(&mut self, ts_ns: u64) {
        if let Mode::Sniff(s) = &mut self.mode {
            let v = decide(s, true).unwrap_or(Verdict::Http1);
            self.switch(v);
        }
        match &mut self.mode {
            Mode::Sniff(_) => {}
            Mode::Http1(h) => h.on_close(ts_ns),
            Mode::H2(h) => h.on_close(ts_ns),
            Mode::Ws(w) => w.on_close(ts_ns),
        }
        self.settle();
    }

    /// Replays the held events into the decoder of the protocol decided on.
    fn switch(&mut self, v: Verdict) {
        let Mode::Sniff(s) = std::mem::replace(&mut self.mode, Mode::Sniff(Sniff::default())) else { return };
        let clean = !s.lossy[0] && !s.lossy[1];
        self.mode = match v {
            Verdict::Http2 | Verdict::MaybeHttp2 => {
                self.stats.http2 += 1;
                Mode::H2(Box::new(H2Conn::new(self.cfg.clone(), clean)))
            }
            _ => Mode::Http1(Box::new(Http1Conn::new(self.cfg.clone()))),
        };
        for ev in s.held {
            match ev {
                Held::Data(dir, ts, data) => self.on_data(dir, ts, &data),
                Held::Gap(dir, ts, missing) => self.on_gap(dir, ts, missing),
            }
        }
    }

    /// The HTTP/1.1 connection switched to WebSocket; `rest` are the first bytes after the 101.
    fn upgrade(&mut self, dir: Direction, ts_ns: u64, rest: &[u8]) {
        let Mode::Http1(h) = &mut self.mode else { return };
        let Some(up) = h.upgrade.take() else { return };
        h.drain(&mut self.finished);
        self.inference_requests.append(&mut h.inference_requests);
        self.api_requests.append(&mut h.api_requests);
        self.role = h.role();
        self.base.add(&h.stats);
        let ws = WsConn::new(self.cfg.clone(), up);
        self.mode = Mode::Ws(Box::new(ws));
        if !rest.is_empty() {
            self.on_data(dir, ts_ns, rest);
        }
    }

    /// Collects finished exchanges and keeps the counters current.
    fn settle(&mut self) {
        let mut stats = self.base;
        match &mut self.mode {
            Mode::Sniff(_) => {}
            Mode::Http1(h) => {
                h.drain(&mut self.finished);
                self.inference_requests.append(&mut h.inference_requests);
                self.api_requests.append(&mut h.api_requests);
                stats.add(&h.stats);
            }
            Mode::H2(h) => {
                h.drain(&mut self.finished);
                self.inference_requests.append(&mut h.inference_requests);
                self.api_requests.append(&mut h.api_requests);
                stats.add(&h.stats);
            }
            Mode::Ws(w) => {
                w.drain(&mut self.finished);
                stats.add(&w.stats);
            }
        }
        // Counts kept by the dispatcher itself (connections taken for HTTP/2).
        stats.http2 = stats.http2.max(self.stats.http2);
        self.stats = stats;
    }
}

/// Decides the protocol once either direction's bytes tell it.
fn decide(s: &mut Sniff, closing: bool) -> Option<Verdict> {
    for d in 0..2 {
        if s.verdict[d].is_none_or(|v| v == Verdict::Undecided) {
            let v = judge(s, d, closing);
            s.verdict[d] = Some(v);
        }
    }
    let vs = [s.verdict[0].unwrap_or(Verdict::Undecided), s.verdict[1].unwrap_or(Verdict::Undecided)];
    if vs.contains(&Verdict::Http2) {
        Some(Verdict::Http2)
    } else if vs.contains(&Verdict::Http1) {
        Some(Verdict::Http1)
    } else if vs == [Verdict::MaybeHttp2; 2] || (closing && vs.contains(&Verdict::MaybeHttp2)) {
        Some(Verdict::Http2)
    } else if closing {
        Some(Verdict::Http1)
    } else {
        None
    }
}

fn judge(s: &mut Sniff, d: usize, closing: bool) -> Verdict {
    let buf = &s.buf[d];
    if buf.is_empty() {
        return Verdict::Undecided;
    }
    if !s.lossy[d] {
        // From the start: the client's preface, or the server's first frame (SETTINGS).
        let n = buf.len().min(PREFACE.len());
        if buf[..n] == PREFACE[..n] {
            return if n == PREFACE.len() { Verdict::Http2 } else { Verdict::Undecided };
        }
        return match FrameHead::parse(buf) {
            Some(h) if h.kind == SETTINGS && h.plausible() && h.flags == 0 => Verdict::MaybeHttp2,
            None if buf.len() < 9 && looks_like_settings_start(buf) => Verdict::Undecided,
            _ => Verdict::Http1,
        };
    }
    // After lost bytes: whichever comes first, an HTTP/1.1 message start at a line start or a
    // chain of HTTP/2 frames.
    let chain = find_chain(buf, s.from[d], closing);
    let (h2_at, h2_sure) = match chain {
        Chain::At(p) => (p, true),
        Chain::Undecided(p) => (p, false),
    };
    for p in s.from[d]..=h2_at.min(buf.len().saturating_sub(1)) {
        if p > 0 && buf[p - 1] != b'\n' {
            continue;
        }
        match http1_start(&buf[p..]) {
            Some(true) => return Verdict::Http1,
            Some(false) if !closing => {
                s.from[d] = p;
                return Verdict::Undecided;
            }
            _ => {}
        }
    }
    if h2_sure {
        return Verdict::Http2;
    }
    s.from[d] = h2_at;
    Verdict::Undecided
}

/// `Some(true)`: an HTTP/1.1 request or status line starts here; `Some(false)`: maybe.
fn http1_start(b: &[u8]) -> Option<bool> {
    let mut maybe = false;
    for c in RESYNC_STARTS {
        let n = c.len().min(b.len());
        if b[..n] == c[..n] {
            if n == c.len() {
                return Some(true);
            }
            maybe = true;
        }
    }
    maybe.then_some(false)
}

/// Could these first bytes grow into a SETTINGS frame header on stream 0?
fn looks_like_settings_start(b: &[u8]) -> bool {
    let mut h = [0u8; 9];
    h[..b.len()].copy_from_slice(b);
    (b.len() <= 3 || h[3] == SETTINGS) && (b.len() <= 4 || h[4] == 0) && h[5..b.len().max(5)].iter().all(|&x| x == 0)
}
