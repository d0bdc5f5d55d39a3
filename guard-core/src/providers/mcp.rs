//! MCP over Streamable HTTP: an agent's JSON-RPC `tools/call` requests (a POST whose body is one
//! request or a batch) and their results (a JSON reply, or an SSE stream whose events carry the
//! JSON-RPC responses among server notifications). What is kept: the tool's name and whether
//! the call failed (`result.isError`, or a JSON-RPC `error`). The arguments and the result's
//! content are never read into memory beyond the parse.

use memchr::memmem;
use serde::{Deserialize, Serialize};

use super::{Observed, Payload, parse};
use crate::labels;

/// Calls (and replies) kept per exchange: a batch past it is counted as one `dropped`.
pub const MAX_CALLS: usize = 64;

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// `result.isError: true`, or a JSON-RPC `error`.
    Error,
    /// No reply was seen for it (the stream was cut, or the reply was not JSON-RPC).
    NoReply,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::NoReply => "no_reply",
        }
    }
}

/// One `tools/call` of an exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct McpCall {
    /// Sanitised like an identifier; `unknown` when absent.
    pub tool: String,
    pub outcome: Outcome,
}

/// A request of the batch, waiting for its reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Request {
    /// The JSON-RPC id as JSON text (`1` and `"1"` differ).
    id: String,
    tool: String,
}

#[derive(Deserialize)]
struct Params {
    name: Option<String>,
}

#[derive(Deserialize)]
struct RpcRequest {
    id: Option<serde_json::Value>,
    method: Option<String>,
    params: Option<Params>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrBatch<T> {
    One(T),
    Batch(Vec<T>),
}

impl<T> OneOrBatch<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(t) => vec![t],
            Self::Batch(v) => v,
        }
    }
}

/// The `tools/call` requests of a POST body; `None` when it has none (it is not MCP, or
/// another MCP method). Cheap for other bodies: no parse without the method's name in it.
pub(crate) fn requests(body: &[u8]) -> Option<Vec<Request>> {
    memmem::find(body, b"tools/call")?;
    let all = serde_json::from_slice::<OneOrBatch<RpcRequest>>(body).ok()?.into_vec();
    let calls: Vec<Request> = all
        .into_iter()
        .filter(|r| r.method.as_deref() == Some("tools/call"))
        .take(MAX_CALLS)
        .map(|r| Request {
            id: r.id.map_or_else(String::new, |v| v.to_string()),
            tool: r
                .params
                .and_then(|p| p.name)
                .and_then(|n| labels::clean(labels::Kind::Ident, &n))
                .unwrap_or_else(|| "unknown".into()),
        })
        .collect();
    (!calls.is_empty()).then_some(calls)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcResult {
    is_error: Option<bool>,
}

#[derive(Deserialize)]
struct RpcResponse {
    id: Option<serde_json::Value>,
    result: Option<RpcResult>,
    error: Option<serde::de::IgnoredAny>,
}

/// A JSON-RPC reply seen in the response: its id and whether it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    id: String,
    error: bool,
}

/// One response payload: a whole JSON body or one SSE event's data. Notifications and
/// server requests (no `result`, no `error`) are skipped.
pub fn extract(o: &mut Observed, p: Payload<'_>) {
    let data = match p {
        Payload::Json(d) | Payload::Sse { data: d, .. } => d,
        Payload::Aws { .. } => return,
    };
    if data.trim_ascii().is_empty() {
        return;
    }
    let Some(all) = parse::<OneOrBatch<RpcResponse>>(o, data) else { return };
    for r in all.into_vec() {
        if (r.result.is_none() && r.error.is_none()) || o.mcp.len() >= MAX_CALLS {
            continue;
        }
        let error = r.error.is_some() || r.result.and_then(|x| x.is_error).unwrap_or(false);
        o.mcp.push(Reply { id: r.id.map_or_else(String::new, |v| v.to_string()), error });
    }
}

/// Each request with its outcome, from the replies seen.
pub(crate) fn outcomes(requests: &[Request], replies: &[Reply]) -> Vec<McpCall> {
    requests
        .iter()
        .map(|q| {
            let outcome = match replies.iter().find(|r| r.id == q.id) {
                Some(r) if r.error => Outcome::Error,
                Some(_) => Outcome::Ok,
                None => Outcome::NoReply,
            };
            McpCall { tool: q.tool.clone(), outcome }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_read_and_matched_by_id() {
        let body = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":1}}},
            {"jsonrpc":"2.0","method":"notifications/initialized"},
            {"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"fail","arguments":{}}},
            {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"slow"}}]"#;
        let q = requests(body).unwrap();
        let mut o = Observed::default();
        extract(&mut o, Payload::Sse { event: "message", data: br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"# });
        extract(&mut o, Payload::Json(br#"[{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}},{"jsonrpc":"2.0","id":"x","result":{"isError":true}}]"#));
        let got: Vec<_> = outcomes(&q, &o.mcp).into_iter().map(|c| (c.tool, c.outcome)).collect();
        assert_eq!(
            got,
            [("add".into(), Outcome::Ok), ("fail".into(), Outcome::Error), ("slow".into(), Outcome::NoReply)]
        );
    }

    #[test]
    fn other_bodies_are_not_mcp_calls() {
        assert!(requests(br#"{"model":"m","messages":[]}"#).is_none());
        assert!(requests(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).is_none());
        assert!(requests(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call""#).is_none());
    }

    #[test]
    fn a_json_rpc_error_is_an_error() {
        let q = requests(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}"#).unwrap();
        let mut o = Observed::default();
        extract(&mut o, Payload::Json(br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"Unknown tool"}}"#));
        assert_eq!(outcomes(&q, &o.mcp)[0].outcome, Outcome::Error);
    }
}
