//! The record the decoder produces: one request/response exchange.

use serde::Serialize;

use crate::{
    events::ConnId,
    providers::{Endpoint, Provider, ToolCall, Usage, mcp::McpCall},
};

/// Which end of the connection the captured process is. Tokens are counted for clients only:
/// a local TLS server (a gateway, a mock) sees the same exchange from the other side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The process wrote the request (`SSL_write` carries requests).
    Client,
    /// The process read the request (`SSL_read` carries requests).
    Server,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncompleteReason {
    /// The client went away (closed or freed the connection, or reset its HTTP/2 stream) before
    /// the response's terminal event. A client that stops reading after it (at `[DONE]`, as
    /// the OpenAI SDK does) leaves a complete exchange.
    ClientAbort,
    /// Bytes of this exchange were lost.
    Gap,
    /// Capture began in the middle of the connection.
    MidStreamStart,
    /// The bytes did not decode (HTTP framing, content encoding, eventstream CRC).
    DecodeError,
    /// The decoded body passed its cap.
    BodyCap,
    /// A server's connection ended before the response did (before its terminal event, for a
    /// stream).
    ConnectionClosed,
    /// The body ended, but a stream that announces its end (`message_stop`, `[DONE]`,
    /// `response.completed`) never did.
    StreamTruncated,
    /// HTTP/2 header compression state was unknown (capture began mid-connection, or bytes
    /// were lost), so a header block could not be decoded. Headers are never guessed: what the
    /// path and body shape still tell is used.
    HeadersUnknown,
    /// The server reset the HTTP/2 stream (RST_STREAM) or refused it (GOAWAY) before the
    /// response ended (before its terminal event, for a stream).
    StreamReset,
}

/// Which protocol carried the exchange, decided from the bytes (preface, upgrade), never the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Http1,
    Http2,
    /// One request/response pair of messages on a WebSocket (OpenAI Responses over WebSocket).
    Websocket,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Timings {
    /// The first byte of the request (absent when the request was not seen).
    pub start_ns: Option<u64>,
    /// The first byte of the final response.
    pub first_byte_ns: Option<u64>,
    /// The last byte of the response; for a stream cut after its terminal event, that event;
    /// else when the exchange was abandoned.
    pub end_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exchange {
    /// The connection (and so the process); filled in by the pipeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conn: Option<ConnId>,
    pub role: Role,
    pub protocol: Protocol,
    pub provider: Provider,
    pub endpoint: Endpoint,
    /// An inference call: its usage counts. Token counting, model lists, telemetry and anything
    /// unrecognised are reported with `inference: false` and are never counted.
    pub inference: bool,
    pub method: Option<String>,
    /// The request path without its query string (queries can carry API keys).
    pub path: Option<String>,
    pub host: Option<String>,
    pub model: Option<String>,
    pub status: Option<u16>,
    pub streamed: bool,
    pub complete: bool,
    pub incomplete_reason: Option<IncompleteReason>,
    /// The error type a provider reported (`overloaded_error`, `rate_limit_exceeded`, …).
    pub error_type: Option<String>,
    pub timings: Timings,
    pub usage: Usage,
    /// Usage was reported by the provider (false: the numbers are zero because none came).
    pub usage_seen: bool,
    /// The tool calls the model asked for. Serialised as `{"tool", "call_id"}` only; the
    /// arguments are for `govern`'s linking and sinks get the calls without them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// MCP `tools/call` requests of this exchange (the host is the server), with outcomes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mcp_calls: Vec<McpCall>,
}
