//! Content-Encoding decoders (gzip, deflate, br, zstd), fed as bytes arrive.
//!
//! Each decoder writes into a `CappedSink`, so a decompression bomb stops at the cap instead of
//! growing memory: the sink refuses bytes past the cap and the decoder reports [`EncodingError::Cap`].

use std::io::{self, Write};

use serde::Serialize;
use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    Identity,
    Gzip,
    Deflate,
    Br,
    Zstd,
}

impl Encoding {
    /// Parses a Content-Encoding value. A list of several codings is not supported (`None`).
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim();
        if v.contains(',') {
            return None;
        }
        Some(match v.to_ascii_lowercase().as_str() {
            "" | "identity" => Self::Identity,
            "gzip" | "x-gzip" => Self::Gzip,
            "deflate" => Self::Deflate,
            "br" => Self::Br,
            "zstd" => Self::Zstd,
            _ => return None,
        })
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EncodingError {
    #[error("decoded body exceeds the cap of {cap} bytes")]
    Cap { cap: usize },
    #[error("corrupt {encoding:?} stream: {detail}")]
    Corrupt { encoding: Encoding, detail: String },
    #[error("{encoding:?} stream ended early")]
    Truncated { encoding: Encoding },
}

/// Collects decoded bytes for the caller to take, refusing anything past `remaining`.
#[derive(Debug, Default)]
struct CappedSink {
    buf: Vec<u8>,
    remaining: usize,
    hit: bool,
}

impl Write for CappedSink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if b.len() > self.remaining {
            self.hit = true;
            return Err(io::Error::other("decoded body cap"));
        }
        self.remaining -= b.len();
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Inner {
    Identity(CappedSink),
    /// Deflate before its first two bytes: zlib-wrapped or raw is decided from the header.
    DeflateSniff(CappedSink, Vec<u8>),
    Gzip(flate2::write::MultiGzDecoder<CappedSink>),
    Zlib(flate2::write::ZlibDecoder<CappedSink>),
    Raw(flate2::write::DeflateDecoder<CappedSink>),
    Br(Option<Box<brotli::DecompressorWriter<CappedSink>>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, CappedSink>>),
    Failed,
}

/// An incremental decoder for one body.
pub struct ContentDecoder {
    encoding: Encoding,
    cap: usize,
    inner: Inner,
}

impl ContentDecoder {
    /// `cap` bounds the decoded bytes of the whole body.
    pub fn new(encoding: Encoding, cap: usize) -> Self {
        let sink = CappedSink { buf: Vec::new(), remaining: cap, hit: false };
        let inner = match encoding {
            Encoding::Identity => Inner::Identity(sink),
            Encoding::Gzip => Inner::Gzip(flate2::write::MultiGzDecoder::new(sink)),
            Encoding::Deflate => Inner::DeflateSniff(sink, Vec::new()),
            Encoding::Br => Inner::Br(Some(Box::new(brotli::DecompressorWriter::new(sink, 4096)))),
            Encoding::Zstd => match zstd::stream::write::Decoder::new(sink) {
                Ok(d) => Inner::Zstd(Box::new(d)),
                Err(_) => Inner::Failed,
            },
        };
        Self { encoding, cap, inner }
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Decodes `input` and hands whatever came out to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut dyn FnMut(&[u8])) -> Result<(), EncodingError> {
        if let Inner::DeflateSniff(sink, head) = &mut self.inner {
            head.extend_from_slice(input);
            if head.len() < 2 {
                return Ok(());
            }
            // RFC 1950: CM = 8 in the low nibble and the 16-bit header a multiple of 31.
            let zlib = head[0] & 0x0f == 8 && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
            let sink = std::mem::take(sink);
            let head = std::mem::take(head);
            self.inner = if zlib {
                Inner::Zlib(flate2::write::ZlibDecoder::new(sink))
            } else {
                Inner::Raw(flate2::write::DeflateDecoder::new(sink))
            };
            return self.push(&head, out);
        }
        let res = match &mut self.inner {
            Inner::Identity(s) => s.write_all(input),
            Inner::Gzip(d) => d.write_all(input).and_then(|()| d.flush()),
            Inner::Zlib(d) => d.write_all(input).and_then(|()| d.flush()),
            Inner::Raw(d) => d.write_all(input).and_then(|()| d.flush()),
            Inner::Br(Some(d)) => d.write_all(input).and_then(|()| d.flush()),
            Inner::Zstd(d) => d.write_all(input).and_then(|()| d.flush()),
            Inner::Br(None) | Inner::DeflateSniff(..) | Inner::Failed => return Err(self.corrupt("decoder unusable")),
        };
        self.drain(out);
        res.map_err(|e| self.fail(e))
    }

    /// Ends the body: flushes what is buffered and checks the stream ended where it should.
    pub fn finish(&mut self, out: &mut dyn FnMut(&[u8])) -> Result<(), EncodingError> {
        let res = match &mut self.inner {
            Inner::Identity(_) | Inner::Failed => Ok(()),
            Inner::DeflateSniff(_, head) if head.is_empty() => Ok(()),
            Inner::DeflateSniff(..) => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Inner::Gzip(d) => d.try_finish(),
            Inner::Zlib(d) => d.try_finish(),
            Inner::Raw(d) => d.try_finish(),
            Inner::Zstd(d) => d.do_finish(),
            Inner::Br(d) => match d.take().map(|d| d.into_inner()) {
                Some(Ok(sink)) => {
                    out(&sink.buf);
                    Ok(())
                }
                Some(Err(sink)) => {
                    out(&sink.buf);
                    Err(io::Error::from(io::ErrorKind::UnexpectedEof))
                }
                None => Ok(()),
            },
        };
        self.drain(out);
        res.map_err(|e| self.fail(e))
    }

    fn sink(&mut self) -> Option<&mut CappedSink> {
        match &mut self.inner {
            Inner::Identity(s) | Inner::DeflateSniff(s, _) => Some(s),
            Inner::Gzip(d) => Some(d.get_mut()),
            Inner::Zlib(d) => Some(d.get_mut()),
            Inner::Raw(d) => Some(d.get_mut()),
            Inner::Br(Some(d)) => Some(d.get_mut()),
            Inner::Zstd(d) => Some(d.get_mut()),
            Inner::Br(None) | Inner::Failed => None,
        }
    }

    fn drain(&mut self, out: &mut dyn FnMut(&[u8])) {
        if let Some(s) = self.sink()
            && !s.buf.is_empty()
        {
            out(&s.buf);
            s.buf.clear();
        }
    }

    fn fail(&mut self, e: io::Error) -> EncodingError {
        let hit = self.sink().is_some_and(|s| s.hit);
        self.inner = Inner::Failed;
        if hit {
            EncodingError::Cap { cap: self.cap }
        } else if matches!(e.kind(), io::ErrorKind::UnexpectedEof) {
            EncodingError::Truncated { encoding: self.encoding }
        } else {
            self.corrupt(&e.to_string())
        }
    }

    fn corrupt(&self, detail: &str) -> EncodingError {
        EncodingError::Corrupt { encoding: self.encoding, detail: detail.chars().take(80).collect() }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use super::*;

    pub(crate) fn encode(enc: Encoding, data: &[u8]) -> Vec<u8> {
        crate::protocols::testutil::compress(enc, data)
    }

    fn decode_in_pieces(enc: Encoding, data: &[u8], piece: usize, cap: usize) -> Result<Vec<u8>, EncodingError> {
        let mut d = ContentDecoder::new(enc, cap);
        let mut got = Vec::new();
        for c in data.chunks(piece.max(1)) {
            d.push(c, &mut |b| got.extend_from_slice(b))?;
        }
        d.finish(&mut |b| got.extend_from_slice(b))?;
        Ok(got)
    }

    #[test]
    fn every_encoding_round_trips_at_any_piece_size() {
        let text: Vec<u8> = (0..20_000u32).flat_map(|i| format!("data: {{\"i\":{i}}}\n\n").into_bytes()).collect();
        for enc in [Encoding::Identity, Encoding::Gzip, Encoding::Deflate, Encoding::Br, Encoding::Zstd] {
            let z = encode(enc, &text);
            for piece in [1, 7, 4096, usize::MAX] {
                if piece == 1 && z.len() > 50_000 {
                    continue;
                }
                assert_eq!(decode_in_pieces(enc, &z, piece.min(z.len()), 1 << 24).unwrap(), text, "{enc:?} {piece}");
            }
        }
    }

    #[test]
    fn raw_deflate_is_accepted() {
        use std::io::Write as _;
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"hello raw deflate").unwrap();
        let z = e.finish().unwrap();
        assert_eq!(decode_in_pieces(Encoding::Deflate, &z, 1, 1000).unwrap(), b"hello raw deflate");
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        let zeros = vec![0u8; 10 << 20];
        for enc in [Encoding::Gzip, Encoding::Deflate, Encoding::Br, Encoding::Zstd] {
            let z = encode(enc, &zeros);
            assert_eq!(decode_in_pieces(enc, &z, 1024, 1 << 20), Err(EncodingError::Cap { cap: 1 << 20 }), "{enc:?}");
        }
    }

    #[test]
    fn truncated_and_corrupt_streams_are_errors() {
        for enc in [Encoding::Gzip, Encoding::Br, Encoding::Zstd] {
            let z = encode(enc, b"some text that compresses somewhat somewhat somewhat");
            assert!(decode_in_pieces(enc, &z[..z.len() / 2], 3, 1000).is_err(), "{enc:?}");
            assert!(decode_in_pieces(enc, b"\xff\xfe garbage garbage", 3, 1000).is_err(), "{enc:?}");
        }
    }
}
