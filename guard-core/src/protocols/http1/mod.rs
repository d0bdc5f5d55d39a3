//! HTTP/1.1 message framing for one direction of a connection, as a pull-style state machine:
//! the caller hands in bytes and gets one [`Step`] at a time (a head, a piece of body, the end
//! of a message). Headers are parsed by `httparse`; bodies are framed by Content-Length, chunked
//! transfer coding (trailers included) or the end of the connection (RFC 9112 §6).
//!
//! After a gap or a parse error the reader resynchronises: it skips bytes until something that
//! starts like a request line or a status line appears at a line start (or right after the gap),
//! rather than guessing where the lost message ended.

use thiserror::Error;

/// Header bytes buffered for one head before we give up on it.
pub const DEFAULT_MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
const MAX_CHUNK_LINE: usize = 1024;
const MAX_TRAILERS: usize = 64 * 1024;
/// How a status line starts, then how request lines start: resync looks for these.
pub(crate) const RESYNC_STARTS: [&[u8]; 10] =
    [b"HTTP/1.", b"GET ", b"POST ", b"PUT ", b"DELETE ", b"HEAD ", b"OPTIONS ", b"PATCH ", b"CONNECT ", b"TRACE "];

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Http1Error {
    #[error("message head larger than {max} bytes")]
    HeadTooLarge { max: usize },
    #[error("malformed message head: {detail}")]
    BadHead { detail: &'static str },
    #[error("malformed chunked body")]
    BadChunk,
    #[error("HTTP/2 connection preface")]
    Http2,
    #[error("a {got} where a {want} was expected")]
    WrongKind { got: &'static str, want: &'static str },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Response => "response",
        }
    }
}

/// The headers guard uses. Everything else, credentials above all, is dropped while parsing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    pub content_length: Option<u64>,
    /// `Transfer-Encoding` ends in `chunked`.
    pub chunked: bool,
    /// `Transfer-Encoding` is present but does not end in `chunked`.
    pub other_transfer_coding: bool,
    pub content_encoding: Option<String>,
    pub content_type: Option<String>,
    pub host: Option<String>,
    pub upgrade: bool,
    /// `Upgrade: websocket`.
    pub websocket: bool,
    /// `Sec-WebSocket-Extensions` (every field, joined by commas).
    pub ws_extensions: Option<String>,
    pub anthropic_version: bool,
    /// Bedrock's token-count headers (invoke) and error type.
    pub amzn_input_tokens: Option<u64>,
    pub amzn_output_tokens: Option<u64>,
    pub amzn_cache_read_tokens: Option<u64>,
    pub amzn_cache_write_tokens: Option<u64>,
    pub amzn_error_type: Option<String>,
    /// `X-Amz-Target`: the operation of an AWS JSON API call (for the request rules).
    pub amz_target: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request target, query included (the caller strips the query before it goes anywhere).
    pub target: String,
    pub headers: Headers,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Headers,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Head {
    Request(RequestHead),
    Response(ResponseHead),
}

/// How the body after a head is delimited; the caller decides it (a response to HEAD has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
    /// The connection stopped speaking HTTP/1.1 (101 Switching Protocols, CONNECT).
    Tunnel,
}

impl Headers {
    /// The framing RFC 9112 §6.3 gives a message with these headers.
    pub fn framing(&self, kind: Kind) -> Framing {
        if self.chunked {
            Framing::Chunked
        } else if self.other_transfer_coding {
            match kind {
                Kind::Response => Framing::UntilClose,
                Kind::Request => Framing::None,
            }
        } else if let Some(n) = self.content_length {
            Framing::Length(n)
        } else {
            match kind {
                Kind::Response => Framing::UntilClose,
                Kind::Request => Framing::None,
            }
        }
    }
}

#[allow(
    clippy::large_enum_variant,
    reason = "a head is returned once per message and moved on at once: boxing it would cost an allocation per message"
)]
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// More input is needed.
    NeedMore,
    /// A message head; call [`MessageReader::set_framing`] before the next step.
    Head(Head),
    Body(&'a [u8]),
    /// The message ended.
    End,
    /// The bytes do not frame as HTTP/1.1; the reader is resynchronising.
    Error(Http1Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    DataCr,
    DataLf,
    Trailer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    /// A head was returned; waiting for [`MessageReader::set_framing`].
    AwaitFraming,
    Length(u64),
    Chunked(Chunk),
    UntilClose,
    Tunnel,
    /// Skipping to the next message start; `at_start` when the next byte follows a gap.
    Resync { at_start: bool },
}

/// What the end of the connection meant for the message in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseOutcome {
    /// Between messages.
    Idle,
    /// A body framed by the end of the connection is complete.
    BodyEnded,
    /// A message was cut short.
    Truncated,
}

#[derive(Debug)]
pub struct MessageReader {
    state: State,
    expect: Option<Kind>,
    head: Vec<u8>,
    /// `head` came from a resync guess: a parse failure is a miss, not an error.
    tentative: bool,
    line: Vec<u8>,
    trailer_bytes: usize,
    trailer_line_len: usize,
    max_head: usize,
}

impl MessageReader {
    pub fn new(max_head: usize) -> Self {
        Self {
            state: State::Head,
            expect: None,
            head: Vec::new(),
            tentative: false,
            line: Vec::new(),
            trailer_bytes: 0,
            trailer_line_len: 0,
            max_head,
        }
    }

    /// Restricts this direction to requests or to responses, once the roles are known.
    pub fn expect(&mut self, kind: Kind) {
        self.expect = Some(kind);
    }


    /// The message is complete and the next step reports its end, even without input.
    pub fn end_pending(&self) -> bool {
        self.state == State::Length(0)
    }

    /// Waiting for (or skipping to) the next message head.
    pub fn awaiting_head(&self) -> bool {
        matches!(self.state, State::Head | State::Resync { .. })
    }

    /// Part of a head is buffered.
    pub fn has_partial_head(&self) -> bool {
        !self.head.is_empty()
    }



    pub fn set_framing(&mut self, framing: Framing) {
        if self.state != State::AwaitFraming {
            return;
        }
        self.state = match framing {
            Framing::None | Framing::Length(0) => State::Length(0),
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(Chunk::Size),
            Framing::UntilClose => State::UntilClose,
            Framing::Tunnel => State::Tunnel,
        };
    }

    /// Bytes were lost: whatever was in progress is abandoned.
    pub fn gap(&mut self) {
        if self.state != State::Tunnel {
            self.reset(State::Resync { at_start: true });
        }
    }

    pub fn close(&mut self) -> CloseOutcome {
        let outcome = match self.state {
            State::UntilClose => CloseOutcome::BodyEnded,
            State::Head if self.head.is_empty() => CloseOutcome::Idle,
            State::Resync { .. } | State::Tunnel => CloseOutcome::Idle,
            _ => CloseOutcome::Truncated,
        };
        self.reset(State::Head);
        outcome
    }

    fn reset(&mut self, state: State) {
        self.state = state;
        self.head.clear();
        self.line.clear();
        self.tentative = false;
    }

    /// Errors are reported where a line ends, so the next byte may start a message.
    fn error<'a>(&mut self, e: Http1Error) -> Step<'a> {
        self.reset(State::Resync { at_start: true });
        Step::Error(e)
    }

    /// Consumes a prefix of `input` and says what it was.
    pub fn step<'a>(&mut self, input: &'a [u8]) -> (usize, Step<'a>) {
        match self.state {
            State::Head => self.step_head(input),
            State::AwaitFraming => (0, Step::NeedMore),
            State::Length(0) => {
                self.state = State::Head;
                (0, Step::End)
            }
            State::Length(n) => {
                if input.is_empty() {
                    return (0, Step::NeedMore);
                }
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(input.len());
                self.state = State::Length(n - take as u64);
                (take, Step::Body(&input[..take]))
            }
            State::Chunked(c) => self.step_chunked(c, input),
            State::UntilClose => {
                if input.is_empty() {
                    (0, Step::NeedMore)
                } else {
                    (input.len(), Step::Body(input))
                }
            }
            State::Tunnel => (input.len(), Step::NeedMore),
            State::Resync { at_start } => self.step_resync(at_start, input),
        }
    }

    fn step_resync<'a>(&mut self, at_start: bool, input: &'a [u8]) -> (usize, Step<'a>) {
        let starts = at_start.then_some(0).into_iter().chain(memchr::memchr_iter(b'\n', input).map(|i| i + 1));
        for p in starts {
            match self.looks_like_start(&input[p..]) {
                Some(true) => {
                    self.state = State::Head;
                    let (n, step) = self.step_head(&input[p..]);
                    return (p + n, step);
                }
                Some(false) => {
                    // Too short to tell: keep it as a tentative head.
                    self.state = State::Head;
                    self.tentative = true;
                    self.head.extend_from_slice(&input[p..]);
                    return (input.len(), Step::NeedMore);
                }
                None => {}
            }
        }
        self.state = State::Resync { at_start: false };
        (input.len(), Step::NeedMore)
    }

    /// `Some(true)`: a message starts here; `Some(false)`: maybe, need more bytes; `None`: no.
    fn looks_like_start(&self, b: &[u8]) -> Option<bool> {
        let mut maybe = false;
        let candidates: &[&[u8]] = match self.expect {
            Some(Kind::Response) => &RESYNC_STARTS[..1],
            Some(Kind::Request) => &RESYNC_STARTS[1..],
            None => &RESYNC_STARTS,
        };
        for c in candidates {
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

    fn step_head<'a>(&mut self, input: &'a [u8]) -> (usize, Step<'a>) {
        let mut skipped = 0;
        if self.head.is_empty() {
            // RFC 9112 §2.2: ignore empty lines before a request line.
            skipped = input.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
        }
        let input_rest = &input[skipped..];
        if input_rest.is_empty() {
            return (skipped, Step::NeedMore);
        }
        let Some(end) = self.head_end(input_rest) else {
            if self.head.len() + input_rest.len() > self.max_head {
                return (input.len(), self.error(Http1Error::HeadTooLarge { max: self.max_head }));
            }
            self.head.extend_from_slice(input_rest);
            if self.tentative && self.looks_like_start(&self.head).is_none() {
                self.reset(State::Resync { at_start: false });
            }
            return (input.len(), Step::NeedMore);
        };
        if self.head.len() + end > self.max_head {
            return (skipped + end, self.error(Http1Error::HeadTooLarge { max: self.max_head }));
        }
        self.head.extend_from_slice(&input_rest[..end]);
        let consumed = skipped + end;
        let parsed = parse_head(&self.head);
        let tentative = std::mem::replace(&mut self.tentative, false);
        self.head.clear();
        match parsed {
            Ok(head) => {
                let kind = match head {
                    Head::Request(_) => Kind::Request,
                    Head::Response(_) => Kind::Response,
                };
                if let Some(want) = self.expect
                    && want != kind
                {
                    return (consumed, self.error(Http1Error::WrongKind { got: kind.name(), want: want.name() }));
                }
                self.state = State::AwaitFraming;
                (consumed, Step::Head(head))
            }
            Err(_) if tentative => {
                self.reset(State::Resync { at_start: false });
                (consumed, Step::NeedMore)
            }
            Err(e) => (consumed, self.error(e)),
        }
    }

    /// Where the blank line ending the head is, as an index just past it in `input`.
    fn head_end(&self, input: &[u8]) -> Option<usize> {
        let at = |k: isize| -> Option<u8> {
            if k >= 0 {
                input.get(k as usize).copied()
            } else {
                let j = self.head.len() as isize + k;
                (j >= 0).then(|| self.head[j as usize])
            }
        };
        for i in memchr::memchr_iter(b'\n', input) {
            let i = i as isize;
            match at(i - 1) {
                Some(b'\n') => return Some(i as usize + 1),
                Some(b'\r') if at(i - 2) == Some(b'\n') => return Some(i as usize + 1),
                _ => {}
            }
        }
        None
    }

    fn step_chunked<'a>(&mut self, c: Chunk, input: &'a [u8]) -> (usize, Step<'a>) {
        if input.is_empty() {
            return (0, Step::NeedMore);
        }
        match c {
            Chunk::Size => {
                let Some(nl) = memchr::memchr(b'\n', input) else {
                    if self.line.len() + input.len() > MAX_CHUNK_LINE {
                        return (input.len(), self.error(Http1Error::BadChunk));
                    }
                    self.line.extend_from_slice(input);
                    return (input.len(), Step::NeedMore);
                };
                if self.line.len() + nl > MAX_CHUNK_LINE {
                    return (nl + 1, self.error(Http1Error::BadChunk));
                }
                self.line.extend_from_slice(&input[..nl]);
                let size = parse_chunk_size(&self.line);
                self.line.clear();
                match size {
                    Some(0) => {
                        self.trailer_bytes = 0;
                        self.trailer_line_len = 0;
                        self.state = State::Chunked(Chunk::Trailer);
                    }
                    Some(n) => self.state = State::Chunked(Chunk::Data(n)),
                    None => return (nl + 1, self.error(Http1Error::BadChunk)),
                }
                (nl + 1, Step::NeedMore)
            }
            Chunk::Data(n) => {
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(input.len());
                let left = n - take as u64;
                self.state = State::Chunked(if left == 0 { Chunk::DataCr } else { Chunk::Data(left) });
                (take, Step::Body(&input[..take]))
            }
            Chunk::DataCr | Chunk::DataLf => match input[0] {
                b'\r' if c == Chunk::DataCr => {
                    self.state = State::Chunked(Chunk::DataLf);
                    (1, Step::NeedMore)
                }
                b'\n' => {
                    self.state = State::Chunked(Chunk::Size);
                    (1, Step::NeedMore)
                }
                _ => (0, self.error(Http1Error::BadChunk)),
            },
            Chunk::Trailer => {
                // Trailer fields are skipped; the message ends at the first empty line.
                for (i, &b) in input.iter().enumerate() {
                    self.trailer_bytes += 1;
                    match b {
                        b'\n' if self.trailer_line_len == 0 => {
                            self.state = State::Head;
                            return (i + 1, Step::End);
                        }
                        b'\n' => self.trailer_line_len = 0,
                        b'\r' => {}
                        _ => self.trailer_line_len += 1,
                    }
                    if self.trailer_bytes > MAX_TRAILERS {
                        return (i + 1, self.error(Http1Error::BadChunk));
                    }
                }
                (input.len(), Step::NeedMore)
            }
        }
    }
}

fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let hex = line.split(|&b| b == b';').next()?;
    let hex = hex.trim_ascii();
    if hex.is_empty() || hex.len() > 15 {
        return None;
    }
    let s = std::str::from_utf8(hex).ok()?;
    u64::from_str_radix(s, 16).ok()
}

fn parse_head(buf: &[u8]) -> Result<Head, Http1Error> {
    if buf.starts_with(b"PRI * HTTP/2") {
        return Err(Http1Error::Http2);
    }
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    if buf.starts_with(b"HTTP/") {
        let mut r = httparse::Response::new(&mut storage);
        match r.parse(buf) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(Http1Error::BadHead { detail: "incomplete" }),
            Err(e) => return Err(bad(e)),
        }
        let status = r.code.ok_or(Http1Error::BadHead { detail: "status" })?;
        Ok(Head::Response(ResponseHead { status, headers: collect(r.headers)? }))
    } else {
        let mut r = httparse::Request::new(&mut storage);
        match r.parse(buf) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(Http1Error::BadHead { detail: "incomplete" }),
            Err(e) => return Err(bad(e)),
        }
        let method = r.method.ok_or(Http1Error::BadHead { detail: "method" })?.to_string();
        let target = r.path.ok_or(Http1Error::BadHead { detail: "target" })?.chars().take(2048).collect();
        Ok(Head::Request(RequestHead { method, target, headers: collect(r.headers)? }))
    }
}

fn bad(e: httparse::Error) -> Http1Error {
    let detail = match e {
        httparse::Error::HeaderName => "header name",
        httparse::Error::HeaderValue => "header value",
        httparse::Error::NewLine => "line ending",
        httparse::Error::Status => "status",
        httparse::Error::Token => "token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "version",
    };
    Http1Error::BadHead { detail }
}

fn collect(raw: &[httparse::Header<'_>]) -> Result<Headers, Http1Error> {
    let mut h = Headers::default();
    for f in raw {
        h.observe(f.name, f.value)?;
    }
    Ok(h)
}

impl Headers {
    /// Notes one header field if guard uses it (names are matched case-insensitively, so the
    /// same code reads HTTP/2's lower-case fields). Authorization, x-api-key, api-key,
    /// x-goog-api-key, cookies and the rest stop here.
    pub fn observe(&mut self, name: &str, value: &[u8]) -> Result<(), Http1Error> {
        let h = self;
        let v = || String::from_utf8_lossy(value).trim().chars().take(256).collect::<String>();
        let num = || std::str::from_utf8(value).ok().and_then(|s| s.trim().parse::<u64>().ok());
        if name.eq_ignore_ascii_case("content-length") {
            let n = num().ok_or(Http1Error::BadHead { detail: "content-length" })?;
            if h.content_length.is_some_and(|m| m != n) {
                return Err(Http1Error::BadHead { detail: "conflicting content-length" });
            }
            h.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let value = v().to_ascii_lowercase();
            let last = value.rsplit(',').next().unwrap_or("").trim().to_string();
            h.chunked = last == "chunked";
            h.other_transfer_coding = !h.chunked;
        } else if name.eq_ignore_ascii_case("content-encoding") {
            h.content_encoding = Some(v());
        } else if name.eq_ignore_ascii_case("content-type") {
            h.content_type = Some(v().to_ascii_lowercase());
        } else if name.eq_ignore_ascii_case("host") {
            h.host = Some(v());
        } else if name.eq_ignore_ascii_case("upgrade") {
            h.upgrade = true;
            h.websocket |= v().to_ascii_lowercase().split(',').any(|p| p.trim() == "websocket");
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            let add = v();
            h.ws_extensions = Some(match h.ws_extensions.take() {
                Some(prev) => format!("{prev}, {add}"),
                None => add,
            });
        } else if name.eq_ignore_ascii_case("anthropic-version") {
            h.anthropic_version = true;
        } else if name.eq_ignore_ascii_case("x-amzn-bedrock-input-token-count") {
            h.amzn_input_tokens = num();
        } else if name.eq_ignore_ascii_case("x-amzn-bedrock-output-token-count") {
            h.amzn_output_tokens = num();
        } else if name.eq_ignore_ascii_case("x-amzn-bedrock-cache-read-input-token-count") {
            h.amzn_cache_read_tokens = num();
        } else if name.eq_ignore_ascii_case("x-amzn-bedrock-cache-write-input-token-count") {
            h.amzn_cache_write_tokens = num();
        } else if name.eq_ignore_ascii_case("x-amz-target") {
            h.amz_target = Some(v());
        } else if name.eq_ignore_ascii_case("x-amzn-errortype") {
            // "ThrottlingException:http://internal.amazon.com/..." → the part before the colon.
            h.amzn_error_type = Some(v().split(':').next().unwrap_or("").to_string());
        }
        Ok(())
    }
}

pub(crate) mod conn;

#[cfg(test)]
mod tests;
