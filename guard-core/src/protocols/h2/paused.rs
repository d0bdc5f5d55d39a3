//! The client side of one HTTP/2 connection as the request pause sees it (issue 21): each write
//! of an agent's descendant, read from the stopped process, in order. The decoder's own
//! connection state ([`H2Conn`]) fed that one direction gives the gate the framing, the HPACK
//! table and the request heads exactly as the decoder will see them.

use crate::{events::Direction, protocols::DecoderConfig, requests::ApiRequest};

use super::conn::H2Conn;

/// What one write told.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct H2Write {
    /// Requests the write completed for the rules: head, and the body prefix they read.
    pub requests: Vec<ApiRequest>,
    /// The write carried an inference call: the connection is model traffic.
    pub inference: bool,
    /// The hosts (`:authority`) of the requests in flight, read-only ones included.
    pub hosts: Vec<String>,
}

pub struct PausedH2 {
    conn: H2Conn,
    /// What was fed, as stream offsets: from the last write's start (what the capture had
    /// counted sent then) to the end of the bytes fed.
    fed: Option<(u64, u64)>,
}

impl PausedH2 {
    /// `from_start`: the first write given starts with the client preface. Otherwise the frame
    /// position is found in what comes, and header blocks that refer to table entries never seen
    /// do not decode (their requests are not judged).
    pub fn new(from_start: bool) -> Self {
        Self { conn: H2Conn::new(DecoderConfig::default(), from_start), fed: None }
    }

    /// The write that starts at stream offset `offset` (the bytes the connection sent before
    /// it, as the capture counts them; `None`: not known). A write that starts within what was
    /// fed but not yet counted sent repeats those bytes (OpenSSL's retry after `WANT_WRITE`, the
    /// rest of a partial write): only its new bytes are fed, or HPACK would take a header block
    /// twice. One that starts anywhere else (a count that began again, bytes never seen) costs
    /// the connection's frame position and table.
    pub fn write_at(&mut self, offset: Option<u64>, bytes: &[u8], ts_ns: u64) -> H2Write {
        let Some(at) = offset else {
            self.fed = None;
            return self.write(bytes, ts_ns);
        };
        let fresh = match self.fed {
            Some((sent, end)) if (sent..end).contains(&at) => bytes.get(usize::try_from(end - at).unwrap_or(usize::MAX)..).unwrap_or_default(),
            Some((_, end)) if at != end => {
                self.lost(ts_ns);
                bytes
            }
            _ => bytes,
        };
        let end = at + bytes.len() as u64;
        self.fed = Some((at, self.fed.map_or(end, |(_, e)| e.max(end))));
        self.write(fresh, ts_ns)
    }

    /// The connection's next write.
    pub fn write(&mut self, bytes: &[u8], ts_ns: u64) -> H2Write {
        self.conn.on_data(Direction::Write, ts_ns, bytes);
        let inference = !self.conn.inference_requests.is_empty();
        self.conn.inference_requests.clear();
        let requests = std::mem::take(&mut self.conn.api_requests);
        let hosts = self.conn.forget_sent_requests();
        // No response is ever fed: nothing here becomes an exchange worth keeping.
        self.conn.drain(&mut Vec::new());
        H2Write { requests, inference, hosts }
    }

    /// Bytes of the connection were not seen (a write too long to read whole).
    pub fn lost(&mut self, ts_ns: u64) {
        self.conn.on_gap(Direction::Write, ts_ns);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use super::*;
    use crate::protocols::h2::frames::{END_HEADERS, END_STREAM, HEADERS, PREFACE};

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let n = payload.len() as u32;
        let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// A header block of literal fields with incremental indexing (RFC 7541 §6.2.1), new names:
    /// each enters the dynamic table, as a real encoder's would.
    fn block(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (n, v) in fields {
            b.push(0x40);
            b.push(n.len() as u8);
            b.extend_from_slice(n.as_bytes());
            b.push(v.len() as u8);
            b.extend_from_slice(v.as_bytes());
        }
        b
    }

    const SETTINGS: &[u8] = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00";

    fn request(stream: u32, method: &str, path: &str, flags: u8) -> Vec<u8> {
        let b = block(&[(":method", method), (":scheme", "https"), (":authority", "k8s.internal:6443"), (":path", path)]);
        frame(HEADERS, END_HEADERS | flags, stream, &b)
    }

    #[test]
    fn a_delete_in_any_write_position_is_a_request_and_a_get_is_not() {
        let mut c = PausedH2::new(true);
        let first = [PREFACE.as_slice(), SETTINGS].concat();
        assert_eq!(c.write(&first, 1), H2Write::default());
        let get = c.write(&request(1, "GET", "/api/v1/namespaces/prod/pods", END_STREAM), 2);
        assert_eq!((get.requests.len(), get.hosts.as_slice()), (0, ["k8s.internal:6443".to_owned()].as_slice()));
        // Two frames in one write, the DELETE second.
        let two = [SETTINGS, &request(3, "DELETE", "/api/v1/namespaces/prod", END_STREAM)].concat();
        let w = c.write(&two, 3);
        assert_eq!(w.requests.len(), 1, "{w:?}");
        let r = &w.requests[0];
        assert_eq!((r.method.as_str(), r.target.as_str(), r.host.as_deref(), r.ts_ns), ("DELETE", "/api/v1/namespaces/prod", Some("k8s.internal:6443"), 3));
    }

    #[test]
    fn a_frame_cut_between_writes_is_read_whole() {
        let mut c = PausedH2::new(true);
        let all = [PREFACE.as_slice(), SETTINGS, &request(1, "DELETE", "/api/v1/namespaces/prod", END_STREAM)].concat();
        for cut in 1..all.len() {
            let mut c2 = PausedH2::new(true);
            let a = c2.write(&all[..cut], 1);
            let b = c2.write(&all[cut..], 2);
            assert_eq!(a.requests.len() + b.requests.len(), 1, "cut at {cut}");
        }
        assert_eq!(c.write(&all, 1).requests.len(), 1);
    }

    #[test]
    fn a_body_the_rules_read_completes_the_request_at_its_end() {
        let mut c = PausedH2::new(true);
        let _ = c.write(&[PREFACE.as_slice(), SETTINGS].concat(), 1);
        let b = block(&[(":method", "POST"), (":scheme", "https"), (":authority", "ec2.us-east-1.amazonaws.com"), (":path", "/"), ("content-type", "application/x-www-form-urlencoded")]);
        let head = c.write(&frame(HEADERS, END_HEADERS, 1, &b), 2);
        assert!(head.requests.is_empty(), "{head:?}");
        let body = c.write(&frame(0, END_STREAM, 1, b"Action=TerminateInstances&InstanceId.1=i-1"), 3);
        assert_eq!(body.requests.len(), 1);
        assert_eq!(body.requests[0].operation().as_deref(), Some("TerminateInstances"));
    }

    #[test]
    fn an_inference_call_marks_the_connection_as_model_traffic() {
        let mut c = PausedH2::new(true);
        let _ = c.write(&[PREFACE.as_slice(), SETTINGS].concat(), 1);
        let b = block(&[(":method", "POST"), (":scheme", "https"), (":authority", "api.anthropic.com"), (":path", "/v1/messages")]);
        let w = c.write(&frame(HEADERS, END_HEADERS, 1, &b), 2);
        assert!(w.inference && w.requests.is_empty(), "{w:?}");
    }

    #[test]
    fn a_retried_or_partial_write_feeds_only_its_new_bytes() {
        let start = [PREFACE.as_slice(), SETTINGS].concat();
        let delete = request(1, "DELETE", "/api/v1/namespaces/prod", END_STREAM);
        let get = request(3, "GET", "/api/v1/namespaces/prod", END_STREAM);
        let at = start.len() as u64;
        // Retried whole after WANT_WRITE: the same bytes at the same offset, one request.
        let mut c = PausedH2::new(true);
        assert!(c.write_at(Some(0), &start, 1).requests.is_empty());
        assert_eq!(c.write_at(Some(at), &delete, 2).requests.len(), 1);
        assert!(c.write_at(Some(at), &delete, 3).requests.is_empty(), "the retry is the same request");
        // A partial write: 5 bytes went, the rest comes with the next frame.
        let later = [&delete[5..], get.as_slice()].concat();
        let w = c.write_at(Some(at + 5), &later, 4);
        assert!(w.requests.is_empty() && w.hosts == ["k8s.internal:6443"], "{w:?}");
        // The next write after them: in step, its block decodes against the right table.
        let again = request(5, "DELETE", "/api/v1/namespaces/prod", END_STREAM);
        assert_eq!(c.write_at(Some(at + delete.len() as u64 + get.len() as u64), &again, 5).requests.len(), 1);
    }

    #[test]
    fn a_block_that_refers_to_entries_never_seen_is_not_guessed() {
        let mut c = PausedH2::new(true);
        let _ = c.write(&[PREFACE.as_slice(), SETTINGS].concat(), 1);
        let _ = c.write(&request(1, "GET", "/x", END_STREAM), 2);
        c.lost(3);
        // Index 62: the newest dynamic entry, unknown once bytes were lost.
        let w = c.write(&frame(HEADERS, END_HEADERS | END_STREAM, 3, b"\xbe\x84"), 4);
        assert!(w.requests.is_empty(), "{w:?}");
    }
}
