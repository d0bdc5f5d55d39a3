//! One body on its way to a provider: content decoding, then framing (SSE, JSON array,
//! eventstream or a buffered JSON document), then the provider's extractor.

use crate::providers::{self, Observed, Payload, Shape};

use super::{
    encoding::{ContentDecoder, Encoding, EncodingError},
    eventstream::EventStreamDecoder,
    exchange::IncompleteReason,
    json_stream::JsonArrayStream,
    sse::SseParser,
    DecoderConfig, DecoderStats,
};

enum Format {
    Sse(SseParser),
    JsonArray(JsonArrayStream),
    EventStream(EventStreamDecoder),
    /// A whole JSON document, parsed at the end; `None` once it passed the cap.
    Buffered(Option<Vec<u8>>),
    /// The content type is unknown (its header could not be decoded): the first byte that is
    /// not white space tells SSE (`data:`, `event:`, `:`) from JSON (`{`, `[`).
    Sniff { json_array: bool },
    Discard,
}

pub(crate) struct BodyDecoder {
    content: ContentDecoder,
    format: Format,
    shape: Shape,
    cap: usize,
    pub failure: Option<IncompleteReason>,
}

impl BodyDecoder {
    /// A response body. `json_array`: the route streams a JSON array when not SSE.
    pub(super) fn response(
        cfg: &DecoderConfig,
        encoding: Option<&str>,
        content_type: Option<&str>,
        shape: Shape,
        json_array: bool,
        ok_status: bool,
    ) -> Self {
        let ct = content_type.unwrap_or("");
        let format = if shape == Shape::None {
            Format::Discard
        } else if ct.starts_with("text/event-stream") {
            Format::Sse(SseParser::new(cfg.max_event))
        } else if ct.starts_with("application/vnd.amazon.eventstream") {
            Format::EventStream(EventStreamDecoder::new(cfg.max_event))
        } else if json_array && ok_status {
            Format::JsonArray(JsonArrayStream::new(cfg.max_event))
        } else {
            Format::Buffered(Some(Vec::new()))
        };
        Self::with(cfg, encoding, format, shape, cfg.max_buffered_body)
    }

    /// A response body whose headers are unknown: its format is read from its first bytes and
    /// its content coding is taken as identity.
    pub(super) fn response_sniffed(cfg: &DecoderConfig, shape: Shape, json_array: bool) -> Self {
        let format = if shape == Shape::None { Format::Discard } else { Format::Sniff { json_array } };
        Self::with(cfg, None, format, shape, cfg.max_buffered_body)
    }

    /// A request body, kept (bounded) to read its model and stream flags.
    pub(super) fn request(cfg: &DecoderConfig, encoding: Option<&str>, keep: bool) -> Self {
        let format = if keep { Format::Buffered(Some(Vec::new())) } else { Format::Discard };
        Self::with(cfg, encoding, format, Shape::None, cfg.max_request_body)
    }

    fn with(cfg: &DecoderConfig, encoding: Option<&str>, format: Format, shape: Shape, cap: usize) -> Self {
        let enc = encoding.map_or(Some(Encoding::Identity), Encoding::parse);
        let (enc, failure, format) = match enc {
            Some(e) => (e, None, format),
            None => (Encoding::Identity, Some(IncompleteReason::DecodeError), Format::Discard),
        };
        // Only bodies we read are decoded: a discarded body costs no inflating.
        let enc = if matches!(format, Format::Discard) { Encoding::Identity } else { enc };
        Self { content: ContentDecoder::new(enc, cfg.max_decoded_body), format, shape, cap, failure }
    }

    pub(super) fn streamed(&self) -> bool {
        matches!(self.format, Format::Sse(_) | Format::JsonArray(_) | Format::EventStream(_))
    }

    pub(super) fn push(&mut self, data: &[u8], obs: &mut Observed, stats: &mut DecoderStats) {
        if self.failure.is_some() || matches!(self.format, Format::Discard) {
            return;
        }
        let Self { content, format, shape, cap, failure } = self;
        let mut fmt_failure = None;
        let res = content.push(data, &mut |b| feed(format, *shape, *cap, obs, b, &mut fmt_failure));
        Self::settle(failure, res, fmt_failure, stats);
    }

    pub(super) fn finish(&mut self, obs: &mut Observed, stats: &mut DecoderStats) {
        if self.failure.is_none() && !matches!(self.format, Format::Discard) {
            let Self { content, format, shape, cap, failure } = self;
            let mut fmt_failure = None;
            let res = content.finish(&mut |b| feed(format, *shape, *cap, obs, b, &mut fmt_failure));
            Self::settle(failure, res, fmt_failure, stats);
        }
        let shape = self.shape;
        match &mut self.format {
            Format::Sse(p) => {
                p.finish(&mut |ev| providers::extract(shape, obs, Payload::Sse { event: ev.event, data: ev.data }));
                stats.dropped_events += p.dropped_events;
            }
            Format::JsonArray(a) => {
                a.finish(&mut |el| providers::extract(shape, obs, Payload::Json(el)));
                stats.dropped_events += a.dropped_elements;
            }
            Format::EventStream(d) if d.has_partial() && self.failure.is_none() => {
                self.failure = Some(IncompleteReason::DecodeError);
            }
            Format::Buffered(Some(buf)) if shape != Shape::None && self.failure.is_none() => {
                providers::extract(shape, obs, Payload::Json(buf));
            }
            _ => {}
        }
        stats.bad_payloads += obs.bad_payloads;
        obs.bad_payloads = 0;
    }

    /// The buffered request body, if it was kept whole.
    pub(super) fn take_buffer(&mut self) -> Option<Vec<u8>> {
        if self.failure.is_some() {
            return None;
        }
        match &mut self.format {
            Format::Buffered(b) => b.take(),
            _ => None,
        }
    }

    fn settle(
        failure: &mut Option<IncompleteReason>,
        res: Result<(), EncodingError>,
        fmt_failure: Option<IncompleteReason>,
        stats: &mut DecoderStats,
    ) {
        let reason = match res {
            Err(EncodingError::Cap { .. }) => Some(IncompleteReason::BodyCap),
            Err(_) => Some(IncompleteReason::DecodeError),
            Ok(()) => fmt_failure,
        };
        if let Some(r) = reason {
            match r {
                IncompleteReason::BodyCap => stats.bodies_capped += 1,
                _ => stats.decode_errors += 1,
            }
            *failure = Some(r);
        }
    }
}

fn feed(format: &mut Format, shape: Shape, cap: usize, obs: &mut Observed, b: &[u8], failure: &mut Option<IncompleteReason>) {
    if let Format::Sniff { json_array } = *format {
        let Some(&first) = b.iter().find(|c| !c.is_ascii_whitespace()) else { return };
        *format = match first {
            b'd' | b'e' | b':' | b'i' | b'r' => Format::Sse(SseParser::new(cap.min(1 << 20))),
            b'[' if json_array => Format::JsonArray(JsonArrayStream::new(cap.min(1 << 20))),
            b'{' | b'[' => Format::Buffered(Some(Vec::new())),
            _ => Format::Discard,
        };
    }
    match format {
        Format::Sse(p) => p.push(b, &mut |ev| providers::extract(shape, obs, Payload::Sse { event: ev.event, data: ev.data })),
        Format::JsonArray(a) => a.push(b, &mut |el| providers::extract(shape, obs, Payload::Json(el))),
        Format::EventStream(d) => {
            let res = d.push(b, &mut |m| {
                providers::extract(
                    shape,
                    obs,
                    Payload::Aws { message_type: m.message_type, event_type: m.event_type, payload: m.payload },
                );
            });
            if res.is_err() && failure.is_none() {
                *failure = Some(IncompleteReason::DecodeError);
            }
        }
        Format::Buffered(slot) => {
            if let Some(buf) = slot {
                if buf.len() + b.len() > cap {
                    *slot = None;
                    *failure = Some(IncompleteReason::BodyCap);
                } else {
                    buf.extend_from_slice(b);
                }
            }
        }
        Format::Sniff { .. } | Format::Discard => {}
    }
}
