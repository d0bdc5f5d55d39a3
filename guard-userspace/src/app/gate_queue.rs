//! The gate's decisions reach the daemon loop faster than the ring's records of the same exec:
//! the gate reads the caller itself, the engine waits for the reader. A decision is handed to the
//! engine once the engine has seen the ring up to the exec's own time, so the process table knows
//! the process (its chain, its agent, the shell's record it de-duplicates against), or after a
//! short bound when the ring is behind.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use guard_common::event::Header;
use guard_core::enforce::GateRecord;

/// The longest a decision waits for the ring to catch up.
const MAX_HOLD: Duration = Duration::from_millis(500);

#[derive(Default)]
pub(crate) struct GateQueue {
    held: VecDeque<(Instant, GateRecord)>,
    /// The kernel time of the newest ring record the engine was given.
    seen_ns: u64,
}

impl GateQueue {
    /// Notes a ring record the engine was just given.
    pub(crate) fn saw(&mut self, raw: &[u8]) {
        if let Some(h) = raw.get(..size_of::<Header>()).and_then(|b| bytemuck::try_pod_read_unaligned::<Header>(b).ok()) {
            self.seen_ns = self.seen_ns.max(h.ktime_ns);
        }
    }

    pub(crate) fn hold(&mut self, r: GateRecord, now: Instant) {
        self.held.push_back((now, r));
    }

    /// The decisions the engine may take now, in order; all of them with `all`.
    pub(crate) fn ready(&mut self, now: Instant, all: bool) -> Vec<GateRecord> {
        let mut out = Vec::new();
        while let Some((at, r)) = self.held.front() {
            if !(all || r.ts_ns <= self.seen_ns || now.duration_since(*at) >= MAX_HOLD) {
                break;
            }
            if let Some((_, r)) = self.held.pop_front() {
                out.push(r);
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use guard_core::enforce::{Decision, Mechanism};

    use super::*;

    fn record(ts_ns: u64) -> GateRecord {
        GateRecord {
            ts_ns,
            pid: 1,
            tid: 1,
            uid: None,
            agent: None,
            cwd: None,
            argv: Vec::new(),
            mechanism: Mechanism::Fanotify,
            decision: Decision::Allow,
            matches: Vec::new(),
            timed_out: false,
            latency_ns: 0,
            request: None,
        }
    }

    fn raw(ktime_ns: u64) -> Vec<u8> {
        bytemuck::bytes_of(&Header { kind: 1, tid: 1, tgid: 1, _pad: 0, ktime_ns }).to_vec()
    }

    #[test]
    fn a_decision_waits_for_the_ring_to_reach_its_exec_or_for_the_bound() {
        let t0 = Instant::now();
        let mut q = GateQueue::default();
        q.hold(record(100), t0);
        q.hold(record(200), t0);
        assert!(q.ready(t0, false).is_empty());
        q.saw(&raw(150));
        assert_eq!(q.ready(t0, false).iter().map(|r| r.ts_ns).collect::<Vec<_>>(), [100]);
        q.saw(&[0u8; 3]);
        assert!(q.ready(t0, false).is_empty(), "a short record says nothing");
        assert_eq!(q.ready(t0 + MAX_HOLD, false).len(), 1, "the bound lets it go");
        q.hold(record(900), t0);
        assert_eq!(q.ready(t0, true).len(), 1, "at shutdown everything goes");
    }
}
