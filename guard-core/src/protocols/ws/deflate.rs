//! permessage-deflate (RFC 7692): the negotiated parameters and one direction's inflater.
//!
//! Each compressed message is raw DEFLATE whose final `00 00 ff ff` was removed by the sender.
//! With context takeover (the default) the LZ77 window carries over from message to message,
//! so every compressed message must be inflated in order, even those guard does not read.

use flate2::{Decompress, FlushDecompress, Status};
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DeflateError {
    #[error("compressed message did not inflate: {0}")]
    Corrupt(String),
}

/// One sender's side of the negotiated extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderParams {
    /// The window the sender compresses with (and so the receiver needs), 8..=15.
    pub window_bits: u8,
    /// The sender resets its compressor after each message.
    pub no_context_takeover: bool,
}

impl Default for SenderParams {
    fn default() -> Self {
        Self { window_bits: 15, no_context_takeover: false }
    }
}

/// The permessage-deflate parameters the server accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deflate {
    pub client: SenderParams,
    pub server: SenderParams,
}

impl Deflate {
    /// Reads the server's `Sec-WebSocket-Extensions` response value; `None` when
    /// permessage-deflate is not in force.
    pub fn from_extensions(value: &str) -> Option<Self> {
        let ext = value.split(',').find(|e| e.split(';').next().is_some_and(|n| n.trim() == "permessage-deflate"))?;
        let mut d = Self::default();
        for param in ext.split(';').skip(1) {
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            let bits = || v.trim().trim_matches('"').parse::<u8>().ok().filter(|b| (8..=15).contains(b));
            match k.trim() {
                "server_no_context_takeover" => d.server.no_context_takeover = true,
                "client_no_context_takeover" => d.client.no_context_takeover = true,
                "server_max_window_bits" => d.server.window_bits = bits().unwrap_or(15),
                "client_max_window_bits" => d.client.window_bits = bits().unwrap_or(15),
                _ => {}
            }
        }
        Some(d)
    }
}

pub struct Inflater {
    inner: Decompress,
    params: SenderParams,
    /// A message failed to inflate: with context takeover every later one is lost too.
    broken: bool,
}

impl Inflater {
    pub fn new(params: SenderParams) -> Self {
        Self { inner: Self::fresh(params), params, broken: false }
    }

    fn fresh(params: SenderParams) -> Decompress {
        // zlib has no 8-bit inflate window; a 9-bit one holds every stream an 8-bit sender makes.
        Decompress::new_with_window_bits(false, params.window_bits.clamp(9, 15))
    }

    /// Inflates part of a compressed message, handing out what it decodes.
    pub fn push(&mut self, mut input: &[u8], out: &mut impl FnMut(&[u8])) -> Result<(), DeflateError> {
        if self.broken {
            return Err(DeflateError::Corrupt("an earlier message failed".into()));
        }
        let mut buf = [0u8; 16 * 1024];
        loop {
            let (in0, out0) = (self.inner.total_in(), self.inner.total_out());
            let res = self.inner.decompress(input, &mut buf, FlushDecompress::Sync);
            let used = usize::try_from(self.inner.total_in() - in0).unwrap_or(input.len()).min(input.len());
            let made = usize::try_from(self.inner.total_out() - out0).unwrap_or(0).min(buf.len());
            input = &input[used..];
            out(&buf[..made]);
            match res {
                Ok(Status::StreamEnd) => {
                    // A final block: the sender ended its DEFLATE stream, so its next data
                    // starts a new one (RFC 7692 §7.2.3.3).
                    self.inner = Self::fresh(self.params);
                }
                Ok(_) => {}
                Err(e) => {
                    self.broken = !self.params.no_context_takeover;
                    self.inner = Self::fresh(self.params);
                    return Err(DeflateError::Corrupt(e.to_string()));
                }
            }
            // Done when the input is used up and the output did not fill (nothing left inside).
            if input.is_empty() && made < buf.len() {
                return Ok(());
            }
            if used == 0 && made == 0 {
                self.broken = !self.params.no_context_takeover;
                self.inner = Self::fresh(self.params);
                return Err(DeflateError::Corrupt("no progress".into()));
            }
        }
    }

    /// Ends a message: inflates the removed `00 00 ff ff` tail and, without context takeover,
    /// starts the next message from an empty window.
    pub fn finish(&mut self, out: &mut impl FnMut(&[u8])) -> Result<(), DeflateError> {
        let res = self.push(&[0, 0, 0xff, 0xff], out);
        if self.params.no_context_takeover {
            self.inner = Self::fresh(self.params);
            self.broken = false;
        }
        res
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use super::*;

    #[test]
    fn negotiated_parameters_are_read() {
        let d = Deflate::from_extensions(
            "x-other, permessage-deflate; server_no_context_takeover; client_max_window_bits=10; server_max_window_bits=\"9\"",
        )
        .unwrap();
        assert_eq!(d.server, SenderParams { window_bits: 9, no_context_takeover: true });
        assert_eq!(d.client, SenderParams { window_bits: 10, no_context_takeover: false });
        assert_eq!(Deflate::from_extensions("x-webkit-deflate-frame"), None);
    }

    #[test]
    fn rfc7692_example_with_context_takeover() {
        // RFC 7692 §7.2.3.2: "Hello" twice; the second message refers to the first.
        let mut i = Inflater::new(SenderParams::default());
        let mut got = Vec::new();
        for m in [&b"\xf2\x48\xcd\xc9\xc9\x07\x00"[..], &b"\xf2\x00\x11\x00\x00"[..]] {
            let mut out = Vec::new();
            i.push(m, &mut |b| out.extend_from_slice(b)).unwrap();
            i.finish(&mut |b| out.extend_from_slice(b)).unwrap();
            got.push(out);
        }
        assert_eq!(got, vec![b"Hello".to_vec(), b"Hello".to_vec()]);
    }
}
