//! Requests the kernel paused at an agent's descendant's TLS write (issue 21,
//! `guard_common::gate::RequestStop`): read the bytes from the stopped process, judge them with
//! the request rules, and kill it (a blocking rule in enforce mode: not a byte of the request
//! left) or let it go. A request that goes on is recorded by the decoder like any other; a
//! refused one never reaches it, so its record comes from here.
//!
//! A head whose body the rules may read comes alone from some clients (Python's http.client,
//! hence boto3): it goes on, and the kernel pauses the connection's next write, judged with the
//! head. A refusal then leaves the server a head without its body, a request it never acts on.

use std::{
    collections::HashMap as StdHashMap,
    time::{Duration, Instant},
};

use aya::maps::{HashMap, MapData};
use guard_common::gate::{CONN_PASS, CONN_PAUSE_NEXT, ConnKey, RequestStop, StopEvent};
use guard_core::{
    enforce::{Decision, GateRecord, Mechanism, Mode, PausedRequest},
    requests::{ApiMatch, BODY_PREFIX_CAP, PausedWrite, RequestRuleSet, paused_write},
    rules::RuleAction,
};

use super::{Shared, caller::Remote, monotonic_ns, release};

/// The most read of a paused write: a request head and the body prefix the rules read.
const READ_CAP: usize = (16 << 10) + BODY_PREFIX_CAP;
/// Heads kept while their bodies are awaited; past it, the oldest are forgotten (their bodies
/// are then judged alone, and go on).
const HEADS_CAP: usize = 1024;

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

fn blocks(mode: Mode, m: &ApiMatch) -> bool {
    mode == Mode::Enforce && m.action == RuleAction::Block
}

/// The stop thread's state for paused requests.
pub(super) struct Pauses {
    conns: HashMap<MapData, ConnKey, u8>,
    /// Heads let go while their bodies are awaited, by connection.
    heads: StdHashMap<ConnKey, Vec<u8>>,
}

impl Pauses {
    pub(super) fn new(conns: HashMap<MapData, ConnKey, u8>) -> Self {
        Self { conns, heads: StdHashMap::new() }
    }

    /// One paused write, from `GATE_EVENTS`.
    pub(super) fn handle(&mut self, s: &Shared, p: &RequestStop, stopped: &mut HashMap<MapData, u32, StopEvent>) {
        #[cfg(debug_assertions)]
        if let Some(d) = s.test_pause_delay {
            std::thread::sleep(d);
        }
        let ev = &p.stop;
        let key = ConnKey { tgid: ev.tgid, _pad: 0, conn: p.conn };
        let head = self.heads.remove(&key);
        let Some(st) = release::open(ev) else {
            let _ = stopped.remove(&ev.tgid);
            return;
        };
        let len = usize::try_from(p.len).unwrap_or(usize::MAX).min(READ_CAP);
        let mut bytes = Remote { pid: ev.tgid as libc::pid_t }.read_bytes(p.buf, len);
        if let Some(mut h) = head {
            h.append(&mut bytes);
            bytes = h;
        }
        let mut a = answer(&s.requests, s.judge.config().mode, &bytes, ev.enter_ns);
        let mut slot = ev.slot;
        if a.decision == Decision::Deny && slot == 0 {
            slot = settle(s, ev);
            if slot == 0 {
                // The root is no agent (or nobody said so in time): not the gate's business.
                a = Answer { decision: Decision::Allow, refused: None, next: Next::Judge };
            }
        }
        self.next(key, a.next, bytes);
        release::let_go(&st, a.decision);
        let _ = stopped.remove(&ev.tgid);
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

    /// Tells the kernel what to do with the connection's next writes, before the process goes on.
    fn next(&mut self, key: ConnKey, next: Next, head: Vec<u8>) {
        let mark = match next {
            Next::Judge => return,
            Next::Pass => CONN_PASS,
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
