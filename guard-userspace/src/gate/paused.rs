//! Requests the kernel paused at an agent's descendant's TLS write (issue 21,
//! `guard_common::gate::RequestStop`): read the bytes from the stopped process, judge them with
//! the request rules, and kill it (a blocking rule in enforce mode: not a byte of the request
//! left) or let it go. A request that goes on is recorded by the decoder like any other; a
//! refused one never reaches it, so its record comes from here.
//!
//! A head whose body the rules may read comes alone from some clients (Python's http.client,
//! hence boto3): it goes on, and the kernel pauses the connection's next write, judged with the
//! head. A refusal then leaves the server a head without its body, a request it never acts on.
//!
//! HTTP/2 (`STOP_H2`): the kernel pauses every write of the connection, and each is fed, whole
//! and in order, to the connection's [`PausedH2`] (the decoder's framing and HPACK, one
//! direction). A request is judged in the write that completes it: a DELETE in the write of its
//! HEADERS frame, a form POST in the write that ends its body.

use std::{
    collections::HashMap as StdHashMap,
    time::{Duration, Instant},
};

use aya::maps::{HashMap, MapData};
use guard_common::gate::{CONN_PASS, CONN_PAUSE_NEXT, ConnKey, OFFSET_UNKNOWN, RequestStop, STOP_ANSWERED, STOP_H2, StopEvent};
use guard_core::{
    enforce::{Decision, GateRecord, Mechanism, Mode, PausedRequest},
    requests::{ApiMatch, BODY_PREFIX_CAP, H2Write, PausedH2, PausedWrite, RequestRuleSet, paused_write},
    rules::RuleAction,
};

use super::{Shared, caller::Remote, monotonic_ns, release};

/// The most read of a paused write: a request head and the body prefix the rules read.
const READ_CAP: usize = (16 << 10) + BODY_PREFIX_CAP;
/// Heads kept while their bodies are awaited; past it, the oldest are forgotten (their bodies
/// are then judged alone, and go on).
const HEADS_CAP: usize = 1024;
/// The most read of an HTTP/2 write. Its frames must be followed whole; a longer write (no
/// client seen writes more than a TLS record's 16 KiB at once) loses the connection's header
/// table: later requests that refer to it are not judged.
const H2_READ_CAP: usize = 1 << 20;
/// HTTP/2 connections followed; past it, the oldest is forgotten (its next requests are judged
/// only as far as they decode without the table's history).
const H2_CAP: usize = 256;

/// What the pause does with one write.
#[derive(Debug, PartialEq)]
pub(super) struct Answer {
    pub decision: Decision,
    pub refused: Option<PausedRequest>,
    pub next: Next,
}

/// What the kernel does with the connection's next writes.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) enum Next {
    /// As before: pause the next request start.
    Judge,
    /// Never pause it again.
    Pass,
    /// Pause the next write, whatever it starts with: the body of this head.
    Body,
}

/// Judges a paused write's bytes (sans-IO: the tests give bytes, the daemon what it read).
pub(super) fn answer(rules: &RequestRuleSet, mode: Mode, bytes: &[u8], ts_ns: u64) -> Answer {
    let allow = |next| Answer { decision: Decision::Allow, refused: None, next };
    match paused_write(bytes, ts_ns) {
        // A descendant's own model traffic (a sub-agent): never paused again.
        PausedWrite::Inference => allow(Next::Pass),
        PausedWrite::Other => allow(Next::Judge),
        PausedWrite::Request(r) if rules.never_judged(&r) => allow(Next::Pass),
        PausedWrite::Request(r) => match rules.check(&r) {
            Some(m) if blocks(mode, &m) => Answer { decision: Decision::Deny, refused: Some(PausedRequest { request: r, matched: m }), next: Next::Judge },
            // Let go: the decoder records it (`would_block` or `observed`) as the bytes flow.
            Some(_) => allow(Next::Judge),
            None if r.body_pending() => allow(Next::Body),
            None => allow(Next::Judge),
        },
    }
}

/// Judges what one HTTP/2 write completed (sans-IO, as [`answer`]).
pub(super) fn answer_h2(rules: &RequestRuleSet, mode: Mode, w: H2Write) -> Answer {
    let allow = |next| Answer { decision: Decision::Allow, refused: None, next };
    if w.inference || w.hosts.iter().any(|h| rules.never_judged_host(h)) {
        return allow(Next::Pass);
    }
    for request in w.requests {
        if let Some(matched) = rules.check(&request)
            && blocks(mode, &matched)
        {
            return Answer { decision: Decision::Deny, refused: Some(PausedRequest { request, matched }), next: Next::Judge };
        }
    }
    allow(Next::Judge)
}

fn blocks(mode: Mode, m: &ApiMatch) -> bool {
    mode == Mode::Enforce && m.action == RuleAction::Block
}

/// The stop thread's state for paused requests.
pub(super) struct Pauses {
    conns: HashMap<MapData, ConnKey, u8>,
    /// Heads let go while their bodies are awaited, by connection.
    heads: StdHashMap<ConnKey, Vec<u8>>,
    /// HTTP/2 connections, each followed from the first of its writes seen.
    h2: StdHashMap<ConnKey, PausedH2>,
}

impl Pauses {
    pub(super) fn new(conns: HashMap<MapData, ConnKey, u8>) -> Self {
        Self { conns, heads: StdHashMap::new(), h2: StdHashMap::new() }
    }

    /// One paused write, from `GATE_EVENTS`.
    pub(super) fn handle(&mut self, s: &Shared, p: &RequestStop, stopped: &mut HashMap<MapData, u32, StopEvent>) {
        #[cfg(debug_assertions)]
        if let Some(d) = s.test_pause_delay {
            std::thread::sleep(d);
        }
        let ev = &p.stop;
        let key = ConnKey { tgid: ev.tgid, _pad: 0, conn: p.conn };
        let Some(mut st) = release::open_bare(ev) else {
            let _ = stopped.remove(&ev.tgid);
            self.forget(&key);
            return;
        };
        let (mut a, bytes) = if ev.scope_flags & STOP_H2 == 0 { self.http1(s, p, key) } else { (self.http2(s, p, key), Vec::new()) };
        let mut slot = ev.slot;
        if a.decision == Decision::Deny && slot == 0 {
            slot = settle(s, ev);
            if slot == 0 {
                // The root is no agent (or nobody said so in time): not the gate's business.
                a = Answer { decision: Decision::Allow, refused: None, next: Next::Judge };
            }
        }
        self.next(key, a.next, bytes);
        if a.decision == Decision::Deny {
            // For the record, read before the kill takes the process away.
            st.cwd = release::cwd_of(ev.tgid);
            release::let_go(&st, a.decision);
            self.forget(&key);
            let _ = stopped.remove(&ev.tgid);
        } else {
            // Marked, not removed: the process may pause again the moment it runs, and that
            // pause takes the entry's place (`STOP_ANSWERED`). `sweep` removes it once the
            // process is gone.
            let _ = stopped.insert(ev.tgid, StopEvent { scope_flags: ev.scope_flags | STOP_ANSWERED, ..*ev }, 0);
            release::let_go(&st, a.decision);
        }
        s.metrics.request_pauses[usize::from(a.decision == Decision::Deny)].inc();
        if let Some(refused) = a.refused {
            s.record(GateRecord {
                ts_ns: ev.enter_ns,
                pid: ev.tgid,
                tid: ev.tid,
                uid: Some(ev.uid),
                agent: s.agents.name(slot).map(|a| a.to_string()),
                cwd: st.cwd,
                argv: Vec::new(),
                mechanism: Mechanism::Stop,
                decision: a.decision,
                matches: Vec::new(),
                timed_out: false,
                latency_ns: monotonic_ns().saturating_sub(ev.enter_ns),
                request: Some(Box::new(refused)),
            });
        }
    }

    /// An HTTP/1.1 write: the request it starts, with the head kept for it if any. Also the
    /// bytes, kept if the answer awaits the body.
    fn http1(&mut self, s: &Shared, p: &RequestStop, key: ConnKey) -> (Answer, Vec<u8>) {
        let head = self.heads.remove(&key);
        let len = usize::try_from(p.len).unwrap_or(usize::MAX).min(READ_CAP);
        let mut bytes = Remote { pid: p.stop.tgid as libc::pid_t }.read_bytes(p.buf, len);
        if let Some(mut h) = head {
            h.append(&mut bytes);
            bytes = h;
        }
        (answer(&s.requests, s.judge.config().mode, &bytes, p.stop.enter_ns), bytes)
    }

    /// An HTTP/2 write: fed whole to its connection's state.
    fn http2(&mut self, s: &Shared, p: &RequestStop, key: ConnKey) -> Answer {
        let len = usize::try_from(p.len).unwrap_or(usize::MAX);
        let bytes = Remote { pid: p.stop.tgid as libc::pid_t }.read_bytes(p.buf, len.min(H2_READ_CAP));
        if !self.h2.contains_key(&key) && self.h2.len() >= H2_CAP {
            // Any one: the connections of processes gone are the likely ones, and none is worth a scan.
            if let Some(k) = self.h2.keys().next().copied() {
                self.h2.remove(&k);
            }
        }
        let from_start = bytes.starts_with(guard_core::protocols::h2::frames::PREFACE);
        let conn = self.h2.entry(key).or_insert_with(|| PausedH2::new(from_start));
        let offset = (p.offset != OFFSET_UNKNOWN).then_some(p.offset);
        let w = conn.write_at(offset, &bytes, p.stop.enter_ns);
        if bytes.len() < len {
            tracing::debug!(read = bytes.len(), len, "an HTTP/2 write was not read whole: its header table is lost");
            conn.lost(p.stop.enter_ns);
        }
        answer_h2(&s.requests, s.judge.config().mode, w)
    }

    /// Forgets what is kept of a connection (its process goes, or it is passed for good).
    fn forget(&mut self, key: &ConnKey) {
        self.heads.remove(key);
        self.h2.remove(key);
    }

    /// Tells the kernel what to do with the connection's next writes, before the process goes on.
    fn next(&mut self, key: ConnKey, next: Next, head: Vec<u8>) {
        let mark = match next {
            Next::Judge => return,
            Next::Pass => {
                self.forget(&key);
                CONN_PASS
            }
            Next::Body => {
                if self.heads.len() >= HEADS_CAP {
                    self.heads.clear();
                }
                self.heads.insert(key, head);
                CONN_PAUSE_NEXT
            }
        };
        if let Err(e) = self.conns.insert(key, mark, 0) {
            tracing::debug!(error = %e, "a connection's pause mark was not set");
        }
    }
}

/// Removes the entries of answered pauses whose process is gone (`STOP_ANSWERED`). A process
/// that is there keeps its entry: removing it could race the process's next pause, which takes
/// its place.
pub(super) fn sweep(stopped: &mut HashMap<MapData, u32, StopEvent>) {
    let gone: Vec<u32> = stopped
        .iter()
        .filter_map(Result::ok)
        .filter(|(_, ev)| ev.scope_flags & STOP_ANSWERED != 0 && !release::alive(ev))
        .map(|(tgid, _)| tgid)
        .collect();
    for tgid in gone {
        let _ = stopped.remove(&tgid);
    }
}

/// A provisional tree's agent slot, once the engine says whether its root is an agent (0: not,
/// or not within the deadline, counted from the pause).
fn settle(s: &Shared, ev: &StopEvent) -> u32 {
    let until = Instant::now() + s.judge.config().deadline.saturating_sub(Duration::from_nanos(monotonic_ns().saturating_sub(ev.enter_ns)));
    loop {
        match s.agents.resolution(ev.root) {
            Some(slot) => return slot,
            None if Instant::now() >= until => return 0,
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use super::*;

    fn rules() -> RequestRuleSet {
        RequestRuleSet::builtin()
    }

    fn allow(next: Next) -> Answer {
        Answer { decision: Decision::Allow, refused: None, next }
    }

    const DELETE_NS: &[u8] = b"DELETE /api/v1/namespaces/prod HTTP/1.1\r\nHost: 127.0.0.1:6443\r\nAuthorization: Bearer t0ken\r\n\r\n";
    const TERMINATE_BODY: &[u8] = b"Action=TerminateInstances&InstanceId.1=i-0abc";
    const DESCRIBE_BODY: &[u8] = b"Action=DescribeInstances&Version=2016-11-15";

    fn form_head(body: &[u8]) -> Vec<u8> {
        format!("POST / HTTP/1.1\r\nHost: ec2.us-east-1.amazonaws.com\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes()
    }

    #[test]
    fn a_blocking_rule_refuses_in_enforce_mode_only() {
        let a = answer(&rules(), Mode::Enforce, DELETE_NS, 5);
        assert_eq!((a.decision, a.next), (Decision::Deny, Next::Judge));
        let r = a.refused.unwrap();
        assert_eq!((r.matched.rule_id.as_str(), r.request.method.as_str(), r.request.ts_ns), ("k8s.api-delete-namespace", "DELETE", 5));
        assert_eq!(answer(&rules(), Mode::Monitor, DELETE_NS, 5), allow(Next::Judge));
    }

    #[test]
    fn a_head_alone_waits_for_its_body_and_is_judged_with_it() {
        assert_eq!(answer(&rules(), Mode::Enforce, &form_head(TERMINATE_BODY), 1), allow(Next::Body));
        let whole = [form_head(TERMINATE_BODY).as_slice(), TERMINATE_BODY].concat();
        let a = answer(&rules(), Mode::Enforce, &whole, 1);
        assert_eq!((a.decision, a.refused.unwrap().matched.rule_id.as_str()), (Decision::Deny, "aws.ec2-terminate"));
        // A describe call's body: let go, and the connection is judged again at its next request.
        let describe = [form_head(DESCRIBE_BODY).as_slice(), DESCRIBE_BODY].concat();
        assert_eq!(answer(&rules(), Mode::Enforce, &describe, 1), allow(Next::Judge));
        // Half a body: still waiting for the rest.
        assert_eq!(answer(&rules(), Mode::Enforce, &describe[..describe.len() - 4], 1), allow(Next::Body));
    }

    /// A client's HTTP/2 write: one HEADERS frame of literal fields (RFC 7541 §6.2.1).
    fn h2_headers(stream: u32, end_stream: bool, fields: &[(&str, &str)]) -> Vec<u8> {
        let mut block = Vec::new();
        for (n, v) in fields {
            block.extend_from_slice(&[0x40, n.len() as u8]);
            block.extend_from_slice(n.as_bytes());
            block.push(v.len() as u8);
            block.extend_from_slice(v.as_bytes());
        }
        let mut f = (block.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[0x1, 0x4 | u8::from(end_stream)]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(&block);
        f
    }

    fn h2_conn() -> PausedH2 {
        let mut c = PausedH2::new(true);
        let start = [guard_core::protocols::h2::frames::PREFACE.as_slice(), b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"].concat();
        assert_eq!(answer_h2(&rules(), Mode::Enforce, c.write(&start, 1)), allow(Next::Judge));
        c
    }

    fn req(method: &str, host: &str, path: &str) -> [(&'static str, String); 4] {
        [(":method", method.to_owned()), (":scheme", "https".to_owned()), (":authority", host.to_owned()), (":path", path.to_owned())]
    }

    fn fields<'a>(f: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        f.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    #[test]
    fn an_http2_delete_is_refused_in_the_write_of_its_headers() {
        let mut c = h2_conn();
        let get = req("GET", "127.0.0.1:6443", "/api/v1/namespaces/prod");
        assert_eq!(answer_h2(&rules(), Mode::Enforce, c.write(&h2_headers(1, true, &fields(&get)), 2)), allow(Next::Judge));
        let delete = req("DELETE", "127.0.0.1:6443", "/api/v1/namespaces/prod");
        let w = c.write(&h2_headers(3, true, &fields(&delete)), 3);
        let a = answer_h2(&rules(), Mode::Enforce, w);
        assert_eq!((a.decision, a.refused.map(|r| r.matched.rule_id)), (Decision::Deny, Some("k8s.api-delete-namespace".to_owned())));
        // Monitor mode: judged the same, let go.
        let mut c = h2_conn();
        assert_eq!(answer_h2(&rules(), Mode::Monitor, c.write(&h2_headers(1, true, &fields(&delete)), 2)), allow(Next::Judge));
    }

    #[test]
    fn http2_model_calls_and_registries_pass_their_connection() {
        let mut c = h2_conn();
        let llm = req("POST", "127.0.0.1:8443", "/v1/messages");
        assert_eq!(answer_h2(&rules(), Mode::Enforce, c.write(&h2_headers(1, false, &fields(&llm)), 2)), allow(Next::Pass));
        let mut c = h2_conn();
        let npm = req("GET", "registry.npmjs.org", "/left-pad");
        assert_eq!(answer_h2(&rules(), Mode::Enforce, c.write(&h2_headers(1, true, &fields(&npm)), 2)), allow(Next::Pass));
    }

    #[test]
    fn model_calls_and_registries_pass_their_connection_and_the_rest_goes_on() {
        let llm = b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(answer(&rules(), Mode::Enforce, llm, 1), allow(Next::Pass));
        let npm = b"PUT /-/package/x/dist-tags/latest HTTP/1.1\r\nHost: registry.npmjs.org\r\n\r\n";
        assert_eq!(answer(&rules(), Mode::Enforce, npm, 1), allow(Next::Pass));
        let create = b"POST /api/v1/namespaces/dev/pods HTTP/1.1\r\nHost: 127.0.0.1:6443\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(answer(&rules(), Mode::Enforce, create, 1), allow(Next::Judge));
        assert_eq!(answer(&rules(), Mode::Enforce, b"POST garbage", 1), allow(Next::Judge));
        assert_eq!(answer(&rules(), Mode::Enforce, b"", 1), allow(Next::Judge));
    }
}
