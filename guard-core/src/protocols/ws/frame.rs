//! WebSocket framing (RFC 6455 §5) for one direction: a push-style reader that reports each
//! frame's header and then its payload, unmasked, piece by piece (a message can be megabytes;
//! nothing here buffers it).

use thiserror::Error;

pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum WsError {
    #[error("reserved opcode {0:#x}")]
    Opcode(u8),
    #[error("control frame fragmented or longer than 125 bytes")]
    Control,
    #[error("payload length with the top bit set")]
    Length,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1: with permessage-deflate, the message is compressed (set on its first frame).
    pub rsv1: bool,
    pub opcode: u8,
    pub len: u64,
    pub mask: Option<[u8; 4]>,
}

impl FrameHeader {
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }

    /// Parses a header from the start of `b`: `Ok(None)` when more bytes are needed, else the
    /// header and its length in bytes.
    pub fn parse(b: &[u8]) -> Result<Option<(Self, usize)>, WsError> {
        let [b0, b1, ..] = *b else { return Ok(None) };
        let opcode = b0 & 0x0f;
        if matches!(opcode, 0x3..=0x7 | 0xB..=0xF) {
            return Err(WsError::Opcode(opcode));
        }
        let masked = b1 & 0x80 != 0;
        let (len, mut at) = match b1 & 0x7f {
            126 => match b.get(2..4) {
                Some(x) => (u64::from(u16::from_be_bytes([x[0], x[1]])), 4),
                None => return Ok(None),
            },
            127 => match b.get(2..10).and_then(|x| <[u8; 8]>::try_from(x).ok()) {
                Some(x) => (u64::from_be_bytes(x), 10),
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        if len >> 63 != 0 {
            return Err(WsError::Length);
        }
        let fin = b0 & 0x80 != 0;
        let h = Self { fin, rsv1: b0 & 0x40 != 0, opcode, len, mask: None };
        if h.is_control() && (!fin || len > 125) {
            return Err(WsError::Control);
        }
        let mask = if masked {
            let Some(m) = b.get(at..at + 4).and_then(|x| <[u8; 4]>::try_from(x).ok()) else { return Ok(None) };
            at += 4;
            Some(m)
        } else {
            None
        };
        Ok(Some((Self { mask, ..h }, at)))
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum WsEvent<'a> {
    Header(FrameHeader),
    /// Unmasked payload bytes of the current frame.
    Payload(&'a [u8]),
    /// The current frame ended.
    End,
}

#[derive(Debug)]
enum State {
    Head,
    Payload { left: u64, mask: Option<[u8; 4]>, pos: usize },
}

#[derive(Debug)]
pub struct WsReader {
    state: State,
    head: Vec<u8>,
    scratch: Vec<u8>,
}

impl Default for WsReader {
    fn default() -> Self {
        Self { state: State::Head, head: Vec::with_capacity(14), scratch: Vec::new() }
    }
}

impl WsReader {
    /// Consumes all of `input`; after an error the frame position is lost for good.
    pub fn push(&mut self, mut input: &[u8], f: &mut impl FnMut(WsEvent<'_>)) -> Result<(), WsError> {
        loop {
            match &mut self.state {
                State::Head => {
                    if input.is_empty() {
                        return Ok(());
                    }
                    // Headers are at most 14 bytes: copy enough to parse, then drop the surplus.
                    let have = self.head.len();
                    let take = (14 - have).min(input.len());
                    self.head.extend_from_slice(&input[..take]);
                    match FrameHeader::parse(&self.head)? {
                        None => {
                            input = &input[take..];
                        }
                        Some((h, n)) => {
                            input = &input[n - have..];
                            self.head.clear();
                            f(WsEvent::Header(h));
                            self.state = State::Payload { left: h.len, mask: h.mask, pos: 0 };
                        }
                    }
                }
                State::Payload { left, mask, pos } => {
                    if *left == 0 {
                        f(WsEvent::End);
                        self.state = State::Head;
                        continue;
                    }
                    if input.is_empty() {
                        return Ok(());
                    }
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(input.len());
                    let chunk = &input[..take];
                    input = &input[take..];
                    *left -= take as u64;
                    match mask {
                        None => f(WsEvent::Payload(chunk)),
                        Some(m) => {
                            self.scratch.clear();
                            self.scratch.extend(chunk.iter().enumerate().map(|(i, b)| b ^ m[(*pos + i) % 4]));
                            *pos = (*pos + take) % 4;
                            f(WsEvent::Payload(&self.scratch));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use super::*;

    fn run(bytes: &[u8], cut: usize) -> Vec<String> {
        let mut r = WsReader::default();
        let mut out: Vec<String> = Vec::new();
        let mut f = |e: WsEvent<'_>| match e {
            WsEvent::Payload(p) => match out.last_mut() {
                Some(s) if s.starts_with("payload ") => s.push_str(&String::from_utf8_lossy(p)),
                _ => out.push(format!("payload {}", String::from_utf8_lossy(p))),
            },
            WsEvent::Header(h) => out.push(format!("op {} fin {}", h.opcode, h.fin)),
            WsEvent::End => out.push("end".into()),
        };
        r.push(&bytes[..cut], &mut f).unwrap();
        r.push(&bytes[cut..], &mut f).unwrap();
        out
    }

    #[test]
    fn masked_frames_unmask_at_every_cut() {
        // RFC 6455 §5.7: a masked "Hello", then an unmasked empty ping.
        let bytes = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58\x89\x00";
        let want = vec!["op 1 fin true", "payload Hello", "end", "op 9 fin true", "end"];
        for cut in 0..=bytes.len() {
            assert_eq!(run(bytes, cut), want, "cut {cut}");
        }
    }

    #[test]
    fn reserved_opcodes_and_long_control_frames_are_errors() {
        assert_eq!(FrameHeader::parse(b"\x83\x00"), Err(WsError::Opcode(3)));
        assert_eq!(FrameHeader::parse(b"\x09\x00"), Err(WsError::Control));
    }
}
