//! The request heads handed to the request rules (`crate::requests`): a client's requests that
//! may change something (not GET/HEAD/OPTIONS) and are not inference calls, each as soon as it
//! is whole, or as soon as the body prefix the rules may read is full. Never at the response:
//! the judge must not wait for the server.

use crate::requests::{ApiRequest, BODY_PREFIX_CAP, read_only, wants_body};

use super::http1::{Framing, Head, Headers, Kind, MessageReader, Step};

/// A request being read, until it is handed over.
#[derive(Debug, Default)]
pub(crate) struct HeldRequest(Option<ApiRequest>);

impl HeldRequest {
    /// Holds the request `method target` if the rules may judge it; `no_body`: it has none, so
    /// it is whole now.
    pub(crate) fn start(method: &str, target: &str, host: Option<&str>, h: &Headers, ts: u64, no_body: bool) -> Self {
        if read_only(method) {
            return Self(None);
        }
        Self(Some(ApiRequest {
            ts_ns: ts,
            method: method.chars().take(16).collect(),
            host: host.map(str::to_owned),
            target: target.to_owned(),
            amz_target: h.amz_target.clone(),
            content_type: h.content_type.clone(),
            body: Vec::new(),
            body_complete: no_body,
        }))
    }

    /// Keeps what the rules may read of a body chunk; true once nothing more is wanted.
    pub(crate) fn push_body(&mut self, data: &[u8]) -> bool {
        let Some(r) = &mut self.0 else { return false };
        if !wants_body(r.content_type.as_deref()) {
            return true;
        }
        let room = BODY_PREFIX_CAP.saturating_sub(r.body.len());
        r.body.extend_from_slice(&data[..data.len().min(room)]);
        data.len() > room
    }

    /// Hands the request over: `complete` when its body (if any) ended within the bound.
    pub(crate) fn take(&mut self, complete: bool, out: &mut Vec<ApiRequest>) {
        if let Some(mut r) = self.0.take() {
            r.body_complete |= complete && r.body.len() <= BODY_PREFIX_CAP;
            out.push(r);
        }
    }
}

/// What a paused write (`guard_common::gate::RequestStop`) holds: the bytes a process was about to
/// send on a TLS connection, read from its memory while it waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PausedWrite {
    /// A request the rules may judge: it may change something and is no inference call.
    Request(ApiRequest),
    /// An inference call (the LLM API itself): never judged, and its connection is the agent's
    /// own model traffic.
    Inference,
    /// A read-only method, or bytes that do not start an HTTP/1.1 request head.
    Other,
}

/// Reads the HTTP/1.1 request a write starts, with the body prefix the rules may read of what
/// follows the head in the same write. The head must be whole in `bytes` (clients write head
/// and body together, or the head alone); a head cut short is [`PausedWrite::Other`].
pub fn paused_write(bytes: &[u8], ts_ns: u64) -> PausedWrite {
    let mut reader = MessageReader::new(bytes.len().max(1));
    reader.expect(Kind::Request);
    let (used, step) = reader.step(bytes);
    let Step::Head(Head::Request(r)) = step else { return PausedWrite::Other };
    if crate::providers::route(&r.method, &r.target).inference {
        return PausedWrite::Inference;
    }
    let framing = r.headers.framing(Kind::Request);
    let no_body = matches!(framing, Framing::None | Framing::Length(0));
    let mut held = HeldRequest::start(&r.method, &r.target, r.headers.host.as_deref(), &r.headers, ts_ns, no_body);
    let mut rest = &bytes[used..];
    let mut complete = no_body;
    if !no_body {
        reader.set_framing(framing);
        while !rest.is_empty() {
            let (n, step) = reader.step(rest);
            rest = &rest[n..];
            match step {
                Step::Body(data) => {
                    if held.push_body(data) {
                        break;
                    }
                    complete = reader.end_pending();
                }
                Step::End => complete = true,
                Step::NeedMore | Step::Head(_) | Step::Error(_) => break,
            }
            if complete {
                break;
            }
        }
    }
    let mut out = Vec::new();
    held.take(complete, &mut out);
    out.pop().map_or(PausedWrite::Other, PausedWrite::Request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(bytes: &[u8]) -> ApiRequest {
        match paused_write(bytes, 7) {
            PausedWrite::Request(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_delete_head_is_whole_without_a_body() {
        let r = request(b"DELETE /api/v1/namespaces/prod HTTP/1.1\r\nHost: k8s.local:6443\r\nAuthorization: Bearer x\r\n\r\n");
        assert_eq!((r.method.as_str(), r.host.as_deref(), r.target.as_str(), r.body_complete, r.ts_ns), ("DELETE", Some("k8s.local:6443"), "/api/v1/namespaces/prod", true, 7));
    }

    #[test]
    fn a_form_body_in_the_same_write_is_read_for_the_judge() {
        let body = b"Action=TerminateInstances&InstanceId.1=i-0abc&Version=2016-11-15";
        let mut w = format!("POST / HTTP/1.1\r\nHost: ec2.us-east-1.amazonaws.com\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        w.extend_from_slice(body);
        let r = request(&w);
        assert_eq!((r.body.as_slice(), r.body_complete, r.operation().as_deref()), (&body[..], true, Some("TerminateInstances")));
        // The body in a later write: judged on the head alone.
        let r = request(&w[..w.len() - body.len()]);
        assert_eq!((r.body.len(), r.body_complete), (0, false));
    }

    #[test]
    fn inference_reads_and_fragments_are_not_requests() {
        assert_eq!(paused_write(b"POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\nContent-Length: 2\r\n\r\n{}", 1), PausedWrite::Inference);
        assert_eq!(paused_write(b"GET /api/v1/pods HTTP/1.1\r\nHost: k\r\n\r\n", 1), PausedWrite::Other);
        assert_eq!(paused_write(b"DELETE /api/v1/namespaces/prod HTTP/1.1\r\nHo", 1), PausedWrite::Other);
        assert_eq!(paused_write(b"POST is a word in a body chunk", 1), PausedWrite::Other);
        assert_eq!(paused_write(b"", 1), PausedWrite::Other);
    }
}
