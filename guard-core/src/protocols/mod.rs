//! Sans-IO protocol decoders: HTTP/1.1, HTTP/2 (HPACK per connection), WebSocket
//! (permessage-deflate), SSE, JSON streams, AWS eventstream and content encodings. Which
//! protocol a connection speaks is decided from its bytes (`connection`). Bytes in,
//! [`Exchange`]s out: nothing here opens a file or socket or reads a clock.

pub(crate) mod api_head;
mod body;
pub mod connection;
pub mod encoding;
pub mod eventstream;
pub mod exchange;
pub mod h2;
pub mod http1;
pub mod json_stream;
mod pending;
pub mod sse;
pub mod ws;

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
pub(crate) mod testutil;
#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
#[allow(clippy::disallowed_methods, reason = "the split tests read the fuzz corpus")]
mod tests;

use serde::Serialize;

pub use connection::ConnectionDecoder;
pub use exchange::{Exchange, IncompleteReason, Protocol, Role, Timings};
pub use pending::EarlyCalls;

/// Bounds and switches for decoding; memory per connection stays under roughly
/// `max_head × 2 + max_request_body + max_buffered_body`.
#[derive(Clone, Debug)]
pub struct DecoderConfig {
    /// Bytes of one message head (request line or status line plus headers).
    pub max_head: usize,
    /// Bytes of a request body kept to read its model and stream flags.
    pub max_request_body: usize,
    /// Bytes of a non-streamed response body kept until it is parsed whole.
    pub max_buffered_body: usize,
    /// Decoded bytes of one body: a decompression bomb stops here.
    pub max_decoded_body: usize,
    /// Bytes of one SSE event, JSON array element or eventstream message.
    pub max_event: usize,
    /// Requests waiting for responses on one connection.
    pub max_pending: usize,
    /// Report exchanges that are not inference calls (with `inference: false`).
    pub emit_non_inference: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self {
            max_head: http1::DEFAULT_MAX_HEAD,
            // Long agent contexts make multi-megabyte request bodies.
            max_request_body: 16 << 20,
            max_buffered_body: 8 << 20,
            max_decoded_body: 64 << 20,
            max_event: 1 << 20,
            max_pending: 64,
            emit_non_inference: true,
        }
    }
}

/// Counters of what decoding skipped or could not do; never reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DecoderStats {
    pub exchanges: u64,
    pub incomplete: u64,
    pub gaps: u64,
    pub http_errors: u64,
    pub http2: u64,
    pub upgrades: u64,
    pub unpaired_responses: u64,
    pub pending_overflow: u64,
    pub bodies_capped: u64,
    pub decode_errors: u64,
    pub bad_payloads: u64,
    pub bad_request_bodies: u64,
    pub dropped_events: u64,
    /// Tool calls past the per-exchange cap.
    pub tool_calls_dropped: u64,
    /// Tool calls whose arguments passed the per-call cap (kept without them: never linked).
    pub tool_args_capped: u64,
}

impl DecoderStats {
    pub fn add(&mut self, o: &Self) {
        self.exchanges += o.exchanges;
        self.incomplete += o.incomplete;
        self.gaps += o.gaps;
        self.http_errors += o.http_errors;
        self.http2 += o.http2;
        self.upgrades += o.upgrades;
        self.unpaired_responses += o.unpaired_responses;
        self.pending_overflow += o.pending_overflow;
        self.bodies_capped += o.bodies_capped;
        self.decode_errors += o.decode_errors;
        self.bad_payloads += o.bad_payloads;
        self.bad_request_bodies += o.bad_request_bodies;
        self.dropped_events += o.dropped_events;
        self.tool_calls_dropped += o.tool_calls_dropped;
        self.tool_args_capped += o.tool_args_capped;
    }
}
