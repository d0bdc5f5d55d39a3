//! HTTP/2 framing (RFC 9113 §4, §6) for one direction: a push-style reader that hands out
//! whole control and header frames, and DATA frames piece by piece with padding removed, so a
//! large body is never buffered. Also the check that finds frame boundaries in bytes that start
//! mid-connection (after a gap, or when capture began late).

use thiserror::Error;

pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEAD_LEN: usize = 9;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

/// Frames longer than this are taken as misaligned when looking for frame boundaries. Real
/// senders keep to 16 KiB unless the peer raised SETTINGS_MAX_FRAME_SIZE; 64 KiB leaves room.
const PLAUSIBLE_LEN: u32 = 64 * 1024;
/// Consecutive plausible frame headers that prove a frame boundary.
const CHAIN: usize = 3;

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    #[error("padding longer than the frame ({kind:#x} on stream {stream})")]
    BadPadding { kind: u8, stream: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHead {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHead {
    pub fn parse(b: &[u8]) -> Option<Self> {
        let b: &[u8; HEAD_LEN] = b.get(..HEAD_LEN)?.try_into().ok()?;
        Some(Self {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            // The reserved bit is kept: a set bit makes the header implausible below.
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
        })
    }

    /// A header a conforming sender could have written: a known type, only that type's flags,
    /// the stream (zero or not) and length rules its type has (RFC 9113 §6).
    pub fn plausible(&self) -> bool {
        let (s, n, f) = (self.stream, self.len, self.flags);
        if s & 0x8000_0000 != 0 || n > PLAUSIBLE_LEN {
            return false;
        }
        match self.kind {
            DATA => s != 0 && f & !(END_STREAM | PADDED) == 0,
            HEADERS => s != 0 && f & !(END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG) == 0,
            PRIORITY => s != 0 && n == 5 && f == 0,
            RST_STREAM => s != 0 && n == 4 && f == 0,
            SETTINGS => s == 0 && n % 6 == 0 && f & !ACK == 0 && (f == 0 || n == 0),
            PUSH_PROMISE => s != 0 && s % 2 == 1 && n >= 4 && f & !(END_HEADERS | PADDED) == 0,
            PING => s == 0 && n == 8 && f & !ACK == 0,
            GOAWAY => s == 0 && n >= 8 && f == 0,
            WINDOW_UPDATE => n == 4 && f == 0,
            CONTINUATION => s != 0 && f & !END_HEADERS == 0,
            _ => false,
        }
    }
}

/// Where frames start in `buf`, looking at offsets from `from` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chain {
    /// A chain of plausible frame headers starts here.
    At(usize),
    /// Offsets before this one start no chain; this one needs more bytes to tell.
    Undecided(usize),
}

/// Finds the first offset where `CHAIN` plausible frame headers follow one another. Two
/// frames that end exactly where the bytes so far end also count (a writer's call ends at a
/// frame boundary, and waiting for a third frame would let the other direction's frames be
/// handled first), and so does one at the end of the capture (`closing`).
pub fn find_chain(buf: &[u8], from: usize, closing: bool) -> Chain {
    for p in from..buf.len() {
        let mut at = p;
        let mut frames = 0;
        let verdict = loop {
            if frames == CHAIN {
                break Some(true);
            }
            if at == buf.len() && (frames >= 2 || (closing && frames > 0)) {
                break Some(true);
            }
            let Some(h) = FrameHead::parse(&buf[at..]) else {
                break if closing { Some(false) } else { None };
            };
            if !h.plausible() {
                break Some(false);
            }
            at += HEAD_LEN + h.len as usize;
            frames += 1;
            if at > buf.len() {
                // The chain so far is plausible; its next header is not here yet.
                break if closing { Some(false) } else { None };
            }
        };
        match verdict {
            Some(true) => return Chain::At(p),
            Some(false) => {}
            None => return Chain::Undecided(p),
        }
    }
    Chain::Undecided(buf.len())
}

/// What the reader found in the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent<'a> {
    /// A whole frame other than DATA.
    Frame { head: FrameHead, payload: &'a [u8] },
    /// Some of a DATA frame's data, padding removed.
    Data { stream: u32, data: &'a [u8] },
    /// A DATA frame ended.
    DataEnd { stream: u32, end_stream: bool },
    /// A non-DATA frame larger than the reader keeps was skipped unread.
    Skipped { head: FrameHead },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    /// Buffering a non-DATA frame's payload.
    Payload(FrameHead),
    /// A padded DATA frame; its first byte (the pad length) is next.
    PadLen(FrameHead),
    Data { stream: u32, data: u32, pad: u32, end_stream: bool },
    Skip { head: FrameHead, left: u32 },
}

#[derive(Debug)]
pub struct FrameReader {
    state: State,
    head: Vec<u8>,
    payload: Vec<u8>,
    max_payload: usize,
}

impl FrameReader {
    pub fn new(max_payload: usize) -> Self {
        Self { state: State::Head, head: Vec::with_capacity(HEAD_LEN), payload: Vec::new(), max_payload }
    }


    /// Consumes all of `input`, reporting what it completes. After an error the reader's
    /// position in the frame stream is unknown and it must not be fed again.
    /// On an error, also says how many bytes of `input` came before the point of failure.
    pub fn push(&mut self, mut input: &[u8], f: &mut impl FnMut(FrameEvent<'_>)) -> Result<(), (usize, FrameError)> {
        let total = input.len();
        loop {
            match self.state {
                State::Head => {
                    if input.is_empty() {
                        return Ok(());
                    }
                    let take = (HEAD_LEN - self.head.len()).min(input.len());
                    self.head.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    let Some(h) = FrameHead::parse(&self.head) else { continue };
                    self.head.clear();
                    self.state = self.start(h, f).map_err(|e| (total - input.len(), e))?;
                }
                State::Payload(h) => {
                    let take = (h.len as usize - self.payload.len()).min(input.len());
                    self.payload.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.payload.len() < h.len as usize {
                        return Ok(());
                    }
                    f(FrameEvent::Frame { head: h, payload: &self.payload });
                    self.payload.clear();
                    self.state = State::Head;
                }
                State::PadLen(h) => {
                    let Some((&pad, rest)) = input.split_first() else { return Ok(()) };
                    input = rest;
                    let pad = u32::from(pad);
                    if pad + 1 > h.len {
                        return Err((total - input.len(), FrameError::BadPadding { kind: h.kind, stream: h.stream }));
                    }
                    let end_stream = h.flags & END_STREAM != 0;
                    self.state = State::Data { stream: h.stream, data: h.len - 1 - pad, pad, end_stream };
                }
                State::Data { stream, data, pad, end_stream } => {
                    if data == 0 && pad == 0 {
                        f(FrameEvent::DataEnd { stream, end_stream });
                        self.state = State::Head;
                        continue;
                    }
                    if input.is_empty() {
                        return Ok(());
                    }
                    if data > 0 {
                        let take = (data as usize).min(input.len());
                        f(FrameEvent::Data { stream, data: &input[..take] });
                        input = &input[take..];
                        self.state = State::Data { stream, data: data - take as u32, pad, end_stream };
                    } else {
                        let take = (pad as usize).min(input.len());
                        input = &input[take..];
                        self.state = State::Data { stream, data, pad: pad - take as u32, end_stream };
                    }
                }
                State::Skip { head, left } => {
                    if left == 0 {
                        f(FrameEvent::Skipped { head });
                        self.state = State::Head;
                        continue;
                    }
                    if input.is_empty() {
                        return Ok(());
                    }
                    let take = (left as usize).min(input.len());
                    input = &input[take..];
                    self.state = State::Skip { head, left: left - take as u32 };
                }
            }
        }
    }

    fn start(&mut self, h: FrameHead, f: &mut impl FnMut(FrameEvent<'_>)) -> Result<State, FrameError> {
        Ok(if h.kind == DATA {
            if h.flags & PADDED != 0 {
                if h.len == 0 {
                    return Err(FrameError::BadPadding { kind: h.kind, stream: h.stream });
                }
                State::PadLen(h)
            } else {
                State::Data { stream: h.stream, data: h.len, pad: 0, end_stream: h.flags & END_STREAM != 0 }
            }
        } else if h.len as usize > self.max_payload {
            State::Skip { head: h, left: h.len }
        } else if h.len == 0 {
            f(FrameEvent::Frame { head: h, payload: &[] });
            State::Head
        } else {
            State::Payload(h)
        })
    }
}

/// Splits a HEADERS or PUSH_PROMISE payload into its header block fragment, removing padding,
/// priority fields and the promised stream id. `None`: the frame is malformed.
pub fn header_fragment<'a>(head: &FrameHead, payload: &'a [u8]) -> Option<(Option<u32>, &'a [u8])> {
    let mut p = payload;
    let mut pad = 0usize;
    if head.kind != CONTINUATION && head.flags & PADDED != 0 {
        let (&n, rest) = p.split_first()?;
        pad = usize::from(n);
        p = rest;
    }
    let mut promised = None;
    if head.kind == HEADERS && head.flags & PRIORITY_FLAG != 0 {
        p = p.get(5..)?;
    } else if head.kind == PUSH_PROMISE {
        let id = p.get(..4)?;
        promised = Some(u32::from_be_bytes([id[0], id[1], id[2], id[3]]) & 0x7fff_ffff);
        p = &p[4..];
    }
    let end = p.len().checked_sub(pad)?;
    Some((promised, &p[..end]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let n = payload.len() as u32;
        let mut v = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
        v.extend_from_slice(&stream.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn events(bytes: &[u8], cut: usize) -> Vec<String> {
        let mut r = FrameReader::new(1024);
        let mut got: Vec<String> = Vec::new();
        let mut f = |e: FrameEvent<'_>| match e {
            FrameEvent::Data { stream, data } => match got.last_mut() {
                Some(s) if s.starts_with(&format!("data {stream} ")) => s.push_str(&String::from_utf8_lossy(data)),
                _ => got.push(format!("data {stream} {}", String::from_utf8_lossy(data))),
            },
            e => got.push(format!("{e:?}")),
        };
        r.push(&bytes[..cut], &mut f).unwrap();
        r.push(&bytes[cut..], &mut f).unwrap();
        got
    }

    #[test]
    fn padded_data_and_frames_at_every_cut() {
        let mut bytes = frame(DATA, PADDED | END_STREAM, 1, b"\x03abc\0\0\0");
        bytes.extend(frame(PING, 0, 0, b"12345678"));
        bytes.extend(frame(DATA, 0, 3, b""));
        let whole = events(&bytes, 0);
        assert_eq!(whole.len(), 4, "{whole:?}");
        assert_eq!(whole[0], "data 1 abc");
        for cut in 0..=bytes.len() {
            assert_eq!(events(&bytes, cut), whole, "cut {cut}");
        }
    }

    #[test]
    fn padding_longer_than_the_frame_is_an_error() {
        let mut r = FrameReader::new(1024);
        assert!(r.push(&frame(DATA, PADDED, 1, b"\x05ab"), &mut |_| {}).is_err());
    }

    #[test]
    fn a_chain_is_found_after_garbage_and_not_in_text() {
        let mut bytes = b"xx tail of an earlier frame".to_vec();
        let start = bytes.len();
        bytes.extend(frame(DATA, 0, 1, b"{}"));
        bytes.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
        bytes.extend(frame(DATA, END_STREAM, 1, b""));
        assert_eq!(find_chain(&bytes, 0, false), Chain::At(start));
        assert!(matches!(find_chain(b"data: {\"a\":1}\n\nevent: x\n", 0, false), Chain::Undecided(p) if p > 9));
    }
}
