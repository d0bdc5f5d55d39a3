//! AWS `application/vnd.amazon.eventstream` framing (Bedrock converse-stream and
//! invoke-with-response-stream).
//!
//! A message is: total length (u32 BE), headers length (u32 BE), CRC32 of those 8 bytes, headers,
//! payload, CRC32 of everything before it. A bad CRC means the stream cannot be trusted or
//! resynchronised, so the decoder stops.

use thiserror::Error;

const PRELUDE: usize = 12;
const MIN_MESSAGE: usize = PRELUDE + 4;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EventStreamError {
    #[error("prelude CRC mismatch")]
    PreludeCrc,
    #[error("message CRC mismatch")]
    MessageCrc,
    #[error("message length {len} out of bounds")]
    Length { len: usize },
    #[error("malformed headers")]
    Headers,
}

/// One message: the string-valued headers we care about and the payload.
#[derive(Debug, PartialEq, Eq)]
pub struct EventMessage<'a> {
    /// `:message-type`: "event" or "exception" (or "error").
    pub message_type: &'a str,
    /// `:event-type`, or `:exception-type` / `:error-code` for exceptions.
    pub event_type: &'a str,
    pub payload: &'a [u8],
}

#[derive(Debug)]
pub struct EventStreamDecoder {
    buf: Vec<u8>,
    max_message: usize,
    failed: Option<EventStreamError>,
}

impl EventStreamDecoder {
    pub fn new(max_message: usize) -> Self {
        Self { buf: Vec::new(), max_message: max_message.max(MIN_MESSAGE), failed: None }
    }

    pub fn failed(&self) -> Option<&EventStreamError> {
        self.failed.as_ref()
    }

    /// Bytes of an unfinished message are still waiting.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    pub fn push(&mut self, mut input: &[u8], out: &mut dyn FnMut(EventMessage<'_>)) -> Result<(), EventStreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        while !input.is_empty() {
            // Fast path: a whole message inside `input` needs no copy.
            if self.buf.is_empty() {
                match self.message_len(Some(input))? {
                    Some(len) if input.len() >= len => {
                        self.emit(&input[..len], out)?;
                        input = &input[len..];
                        continue;
                    }
                    _ => {}
                }
            }
            let want = match self.message_len(None)? {
                Some(len) => len,
                None => PRELUDE,
            };
            let take = want.saturating_sub(self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if let Some(len) = self.message_len(None)?
                && self.buf.len() == len
            {
                let msg = std::mem::take(&mut self.buf);
                self.emit(&msg, out)?;
                self.buf = msg;
                self.buf.clear();
            }
        }
        Ok(())
    }

    /// The total length once the prelude is complete and checked.
    fn message_len(&mut self, at_input: Option<&[u8]>) -> Result<Option<usize>, EventStreamError> {
        let b = at_input.unwrap_or(&self.buf);
        if b.len() < PRELUDE {
            return Ok(None);
        }
        let total = be32(&b[0..4]) as usize;
        let headers = be32(&b[4..8]) as usize;
        let err = if crc32fast::hash(&b[0..8]) != be32(&b[8..12]) {
            EventStreamError::PreludeCrc
        } else if total < MIN_MESSAGE || total > self.max_message || headers > total - MIN_MESSAGE {
            EventStreamError::Length { len: total }
        } else {
            return Ok(Some(total));
        };
        Err(self.fail(err))
    }

    fn emit(&mut self, msg: &[u8], out: &mut dyn FnMut(EventMessage<'_>)) -> Result<(), EventStreamError> {
        let total = msg.len();
        if crc32fast::hash(&msg[..total - 4]) != be32(&msg[total - 4..]) {
            return Err(self.fail(EventStreamError::MessageCrc));
        }
        let headers_len = be32(&msg[4..8]) as usize;
        let headers = &msg[PRELUDE..PRELUDE + headers_len];
        let payload = &msg[PRELUDE + headers_len..total - 4];
        let (mut message_type, mut event_type, mut exception_type) = ("event", "", "");
        let parsed = parse_headers(headers, &mut |name, value| match name {
            ":message-type" => message_type = value,
            ":event-type" => event_type = value,
            ":exception-type" | ":error-code" => exception_type = value,
            _ => {}
        });
        if parsed.is_none() {
            return Err(self.fail(EventStreamError::Headers));
        }
        if message_type != "event" && !exception_type.is_empty() {
            event_type = exception_type;
        }
        out(EventMessage { message_type, event_type, payload });
        Ok(())
    }

    fn fail(&mut self, e: EventStreamError) -> EventStreamError {
        self.failed = Some(e.clone());
        self.buf = Vec::new();
        e
    }
}

fn be32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

/// Walks the headers, reporting string values; `None` when they are malformed.
fn parse_headers<'a>(mut h: &'a [u8], f: &mut dyn FnMut(&'a str, &'a str)) -> Option<()> {
    while !h.is_empty() {
        let name_len = usize::from(*h.first()?);
        let name = std::str::from_utf8(h.get(1..1 + name_len)?).ok()?;
        let ty = *h.get(1 + name_len)?;
        h = h.get(2 + name_len..)?;
        let fixed = match ty {
            0 | 1 => 0,
            2 => 1,
            3 => 2,
            4 => 4,
            5 | 8 => 8,
            9 => 16,
            6 | 7 => {
                let len = usize::from(u16::from_be_bytes([*h.first()?, *h.get(1)?]));
                let value = h.get(2..2 + len)?;
                if ty == 7 {
                    f(name, std::str::from_utf8(value).ok()?);
                }
                h = &h[2 + len..];
                continue;
            }
            _ => return None,
        };
        h = h.get(fixed..)?;
    }
    Some(())
}

/// Builds one message; used by tests, fixtures and fuzzing seeds.
pub fn encode_message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut hb = Vec::new();
    for (name, value) in headers {
        hb.push(name.len() as u8);
        hb.extend_from_slice(name.as_bytes());
        hb.push(7);
        hb.extend_from_slice(&(value.len() as u16).to_be_bytes());
        hb.extend_from_slice(value.as_bytes());
    }
    let total = PRELUDE + hb.len() + payload.len() + 4;
    let mut m = Vec::with_capacity(total);
    m.extend_from_slice(&(total as u32).to_be_bytes());
    m.extend_from_slice(&(hb.len() as u32).to_be_bytes());
    let crc = crc32fast::hash(&m);
    m.extend_from_slice(&crc.to_be_bytes());
    m.extend_from_slice(&hb);
    m.extend_from_slice(payload);
    let crc = crc32fast::hash(&m);
    m.extend_from_slice(&crc.to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Vec<u8> {
        let mut s = encode_message(&[(":message-type", "event"), (":event-type", "messageStart")], b"{\"role\":\"assistant\"}");
        s.extend(encode_message(&[(":event-type", "metadata"), (":message-type", "event")], b"{\"usage\":{}}"));
        s.extend(encode_message(&[(":message-type", "exception"), (":exception-type", "throttlingException")], b"{}"));
        s
    }

    type Decoded = (Vec<(String, String, Vec<u8>)>, Result<(), EventStreamError>);

    fn decode(pieces: &[&[u8]]) -> Decoded {
        let mut d = EventStreamDecoder::new(1 << 20);
        let mut got = Vec::new();
        let mut res = Ok(());
        for p in pieces {
            res = res.and_then(|()| {
                d.push(p, &mut |m| got.push((m.message_type.into(), m.event_type.into(), m.payload.to_vec())))
            });
        }
        (got, res)
    }

    #[test]
    fn messages_decode_at_every_split() {
        let s = stream();
        let (whole, ok) = decode(&[&s]);
        assert_eq!(ok, Ok(()));
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[1].1, "metadata");
        assert_eq!(whole[2], ("exception".into(), "throttlingException".into(), b"{}".to_vec()));
        for i in 0..=s.len() {
            assert_eq!(decode(&[&s[..i], &s[i..]]).0, whole, "cut {i}");
        }
    }

    #[test]
    fn crc_damage_is_detected() {
        let mut s = stream();
        let last = s.len() - 1;
        s[last] ^= 1;
        assert_eq!(decode(&[&s]).1, Err(EventStreamError::MessageCrc));
        let mut s = stream();
        s[9] ^= 1;
        assert_eq!(decode(&[&s]).1, Err(EventStreamError::PreludeCrc));
    }
}
