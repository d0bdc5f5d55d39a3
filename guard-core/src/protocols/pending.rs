//! An exchange in flight, shared by the HTTP/1.1, HTTP/2 and WebSocket decoders: what the
//! request said, the response's body decoder and what the provider reported so far.

use crate::providers::{self, Endpoint, Observed, Provider, RequestBody, Route, Shape, ToolCall, mcp};

use super::{
    DecoderConfig, DecoderStats,
    api_head::HeldRequest,
    body::BodyDecoder,
    exchange::{Exchange, IncompleteReason, Protocol, Role, Timings},
};

/// Tool calls of a response still in flight, announced as soon as each is whole: an agent may
/// run one before its response's terminal event is read.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EarlyCalls {
    pub provider: Provider,
    pub model: Option<String>,
    pub calls: Vec<ToolCall>,
}

pub(crate) struct Pending {
    pub id: u64,
    pub protocol: Protocol,
    /// `None`: the request was lost (a placeholder) or never seen.
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub route: Route,
    pub anthropic_version: bool,
    pub request_model: Option<String>,
    pub request_stream: bool,
    pub request_body: Option<BodyDecoder>,
    pub start_ns: Option<u64>,
    pub status: Option<u16>,
    pub first_byte_ns: Option<u64>,
    pub response: Option<BodyDecoder>,
    pub obs: Observed,
    /// MCP `tools/call` requests in the request body.
    mcp: Vec<mcp::Request>,
    /// Tool calls already announced ([`Self::announce`]).
    announced: usize,
    pub reason: Option<IncompleteReason>,
    /// When the response's terminal event arrived (`obs.finished` while its body streamed in).
    terminal_ns: Option<u64>,
    /// The response body reached its own end (last chunk, length, END_STREAM).
    body_ended: bool,
    /// The request as the request rules will see it, until it is handed over.
    pub api: HeldRequest,
}

impl Pending {
    pub(super) fn unknown(id: u64, protocol: Protocol, reason: IncompleteReason) -> Self {
        Self {
            id,
            protocol,
            method: None,
            path: None,
            host: None,
            route: providers::route("", ""),
            anthropic_version: false,
            request_model: None,
            request_stream: false,
            request_body: None,
            start_ns: None,
            status: None,
            first_byte_ns: None,
            response: None,
            obs: Observed::default(),
            mcp: Vec::new(),
            announced: 0,
            reason: Some(reason),
            terminal_ns: None,
            body_ended: false,
            api: HeldRequest::default(),
        }
    }

    /// A request whose method and target were read; its body (if any) is kept as `keep` says.
    pub(super) fn request(id: u64, protocol: Protocol, method: &str, target: &str, started: u64) -> Self {
        let route = providers::route(method, target);
        let path = target.split('?').next().unwrap_or("").chars().take(256).collect();
        Self {
            method: Some(method.chars().take(16).collect()),
            path: Some(path),
            start_ns: Some(started),
            route,
            reason: None,
            ..Self::unknown(id, protocol, IncompleteReason::Gap)
        }
    }

    /// Whether a request body is worth reading: inference calls and unknown POSTs (their
    /// shape may tell what they are).
    pub(super) fn keeps_body(&self) -> bool {
        self.route.inference || (self.route.endpoint == Endpoint::Other && self.method.as_deref() == Some("POST"))
    }

    pub(super) fn mark(&mut self, reason: IncompleteReason) {
        self.reason.get_or_insert(reason);
    }

    /// The connection or stream ended (or lost bytes) before the response body's own end. Once
    /// the terminal event arrived nothing the exchange reports is missing, so it stays complete:
    /// clients that stop reading at `[DONE]` never read the closing chunk or END_STREAM. Cut
    /// before it, the exchange is incomplete for `reason` and keeps the usage seen so far.
    pub(super) fn cut(&mut self, reason: IncompleteReason) {
        if self.terminal_ns.is_none() {
            self.mark(reason);
        }
    }

    /// Feeds response body bytes that arrived at `ts`, noting when the terminal event came.
    pub(super) fn push_response(&mut self, data: &[u8], ts: u64, stats: &mut DecoderStats) {
        let Some(body) = &mut self.response else { return };
        body.push(data, &mut self.obs, stats);
        if self.obs.finished && self.terminal_ns.is_none() {
            self.terminal_ns = Some(ts);
        }
    }

    /// Ends the response body: flushes its decoders and notes a decoding failure.
    pub(super) fn end_response(&mut self, stats: &mut DecoderStats) {
        self.body_ended = true;
        if let Some(body) = &mut self.response {
            body.finish(&mut self.obs, stats);
            if let Some(r) = body.failure {
                self.mark(r);
            }
        }
    }

    /// Reads the model and stream flags from a finished request body, then drops the body.
    pub(super) fn finish_request(&mut self, stats: &mut DecoderStats) {
        let Some(mut body) = self.request_body.take() else { return };
        let mut scratch = Observed::default();
        body.finish(&mut scratch, stats);
        let Some(buf) = body.take_buffer() else { return };
        if buf.is_empty() {
            return;
        }
        if self.route.endpoint == Endpoint::Other
            && let Some(calls) = mcp::requests(&buf)
        {
            // An MCP call: its response is read for the replies (usage never counts).
            self.mcp = calls;
            self.route.shape = Shape::Mcp;
            return;
        }
        match serde_json::from_slice::<RequestBody>(&buf) {
            Ok(rb) => self.apply_request_body(&rb),
            Err(_) => stats.bad_request_bodies += 1,
        }
    }

    pub(super) fn apply_request_body(&mut self, rb: &RequestBody) {
        // Headers that could not be decoded leave the method unknown; a request with a JSON
        // body is a POST for the purpose of recognising its shape (nothing is reported as one).
        let method = self.method.as_deref().unwrap_or(if self.path.is_none() { "POST" } else { "" });
        self.route.refine(method, rb, self.anthropic_version);
        self.request_model = rb.model.as_deref().and_then(|m| crate::labels::clean(crate::labels::Kind::Model, m));
        self.request_stream = rb.stream.unwrap_or(false);
    }

    /// The tool calls completed since the last announcement, for an inference call.
    pub(super) fn announce(&mut self) -> Option<EarlyCalls> {
        let calls = self.obs.tools.calls.get(self.announced..).filter(|c| !c.is_empty() && self.route.inference)?.to_vec();
        self.announced = self.obs.tools.calls.len();
        Some(EarlyCalls { provider: self.route.provider, model: self.model(), calls })
    }

    /// The model: the request's, the path's (Azure: the deployment only as a last resort), the
    /// response's.
    fn model(&self) -> Option<String> {
        let route = &self.route;
        let path_first = route.provider != Provider::Azure;
        self.request_model
            .clone()
            .or_else(|| if path_first { route.path_model.clone() } else { None })
            .or_else(|| self.obs.model.clone())
            .or_else(|| route.path_model.clone())
    }

    /// The exchange record, or `None` when it is not inference and those are not reported.
    pub(super) fn into_exchange(
        mut self,
        role: Role,
        cfg: &DecoderConfig,
        stats: &mut DecoderStats,
        end_ns: u64,
    ) -> Option<Exchange> {
        if self.request_body.is_some() {
            // The response came before the request body ended (an early error reply).
            self.finish_request(stats);
        }
        self.obs.tools.close_all();
        stats.tool_calls_dropped += self.obs.tools.dropped;
        stats.tool_args_capped += self.obs.tools.capped;
        let mcp_calls = mcp::outcomes(&self.mcp, &self.obs.mcp);
        let Self { route, obs, .. } = &self;
        let streamed = self.response.as_ref().map_or(self.request_stream, BodyDecoder::streamed);
        let mut reason = self.reason;
        if reason.is_none()
            && streamed
            && route.shape.has_terminal_event()
            && !obs.finished
            && self.status.is_some_and(|s| (200..300).contains(&s))
        {
            reason = Some(IncompleteReason::StreamTruncated);
        }
        let inference = route.inference && (!route.from_body_shape || obs.usage_seen);
        if !inference && !cfg.emit_non_inference && mcp_calls.is_empty() {
            return None;
        }
        // A stream that was cut after its terminal event ended there.
        let end_ns = if self.body_ended { end_ns } else { self.terminal_ns.unwrap_or(end_ns) };
        let model = self.model();
        stats.exchanges += 1;
        if reason.is_some() {
            stats.incomplete += 1;
        }
        Some(Exchange {
            conn: None,
            role,
            protocol: self.protocol,
            provider: route.provider,
            endpoint: route.endpoint,
            inference,
            method: self.method.clone(),
            path: self.path.clone(),
            host: self.host.clone(),
            model: if route.endpoint == Endpoint::Other && !inference { None } else { model },
            status: self.status,
            streamed,
            complete: reason.is_none(),
            incomplete_reason: reason,
            error_type: obs.error_type.clone(),
            timings: Timings { start_ns: self.start_ns, first_byte_ns: self.first_byte_ns, end_ns },
            usage: if inference { obs.usage } else { Default::default() },
            usage_seen: inference && obs.usage_seen,
            tool_calls: if inference { std::mem::take(&mut self.obs.tools.calls) } else { Vec::new() },
            mcp_calls,
        })
    }
}

/// Why exchanges still open at the end of a connection are incomplete.
pub(crate) fn abandoned(role: Option<Role>) -> IncompleteReason {
    match role {
        Some(Role::Server) => IncompleteReason::ConnectionClosed,
        _ => IncompleteReason::ClientAbort,
    }
}
