//! The request heads handed to the request rules (`crate::requests`): a client's requests that
//! may change something (not GET/HEAD/OPTIONS) and are not inference calls, each as soon as it
//! is whole, or as soon as the body prefix the rules may read is full. Never at the response:
//! the judge must not wait for the server.

use crate::requests::{ApiRequest, BODY_PREFIX_CAP, read_only, wants_body};

use super::http1::Headers;

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
