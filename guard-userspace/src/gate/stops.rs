//! The catch-all: an in-scope exec that no fanotify answer covered (a memfd, a filesystem not
//! marked, a host without fanotify) is stopped by the kernel before its first instruction. This
//! thread judges what it now runs (`/proc/PID/cmdline`) and kills it or lets it go.

use std::{
    os::fd::AsRawFd as _,
    sync::atomic::Ordering::Relaxed,
    time::{Duration, Instant},
};

use aya::maps::{HashMap, MapData, RingBuf};
use guard_common::gate::{ConnKey, LoadStop, RequestStop, StopEvent};
use guard_core::{
    audit::Action,
    enforce::{Decision, GateRecord, Mechanism, Verdict},
};

use super::{Shared, monotonic_ns, provisional, release};

pub(super) fn run(s: &Shared, mut events: RingBuf<MapData>, mut stopped: HashMap<MapData, u32, StopEvent>, conns: HashMap<MapData, ConnKey, u8>) {
    let mut pauses = super::paused::Pauses::new(conns);
    let fd = events.as_raw_fd();
    let mut swept = Instant::now();
    let mut load_ids = 0u64;
    loop {
        // Read once more after the stop flag: a stop that raced the shutdown is not left behind.
        let last = s.stop.load(Relaxed);
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        while let Some(item) = events.next() {
            // Three kinds share the ring, told apart by size: a stopped exec, a paused request, a
            // library load.
            if let Ok(ev) = bytemuck::try_pod_read_unaligned::<StopEvent>(&item) {
                handle(s, &ev, &mut stopped);
            } else if let Ok(p) = bytemuck::try_pod_read_unaligned::<RequestStop>(&item) {
                pauses.handle(s, &p, &mut stopped);
            } else if let Ok(l) = bytemuck::try_pod_read_unaligned::<LoadStop>(&item) {
                super::loads::handle(s, &l, &mut stopped, &mut load_ids);
            } else {
                tracing::warn!(len = item.len(), "malformed stop record skipped");
            }
        }
        super::loads::expire(s, &mut stopped, last);
        if last {
            return;
        }
        if swept.elapsed() >= SWEEP_EVERY {
            super::paused::sweep(&mut stopped);
            swept = Instant::now();
        }
    }
}

/// How often the entries answered pauses leave are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

fn handle(s: &Shared, ev: &StopEvent, stopped: &mut HashMap<MapData, u32, StopEvent>) {
    let Some(st) = release::open(ev) else {
        let _ = stopped.remove(&ev.tgid);
        return;
    };
    let verdict = release::judge(&s.judge, ev, &st);
    let left = s.judge.config().deadline.saturating_sub(Duration::from_nanos(monotonic_ns().saturating_sub(ev.enter_ns)));
    let (verdict, slot) = provisional::settle(&s.agents, verdict, ev.slot, ev.scope_flags, ev.root, Instant::now() + left);
    release::let_go(&st, verdict.decision);
    let _ = stopped.remove(&ev.tgid);
    let latency_ns = monotonic_ns().saturating_sub(ev.enter_ns);
    s.count(verdict.decision, 1);
    s.metrics.latency.observe(latency_ns as f64 / 1e9);
    if verdict.decision == Decision::Deny || !verdict.matches.is_empty() {
        s.record(GateRecord {
            ts_ns: ev.enter_ns,
            pid: ev.tgid,
            tid: ev.tid,
            uid: Some(ev.uid),
            agent: s.agents.name(slot).map(|a| a.to_string()),
            cwd: st.cwd,
            argv: st.argv,
            mechanism: Mechanism::Stop,
            decision: verdict.decision,
            matches: verdict.matches,
            timed_out: false,
            latency_ns,
            request: None,
        });
    }
}

/// A verdict reported as what was actually answered: a block the fail mode allowed is a
/// `would_block`.
pub(super) fn as_given(mut v: Verdict, given: Decision) -> Verdict {
    v.decision = given;
    if given == Decision::Allow {
        for m in &mut v.matches {
            if m.outcome == Action::Blocked {
                m.outcome = Action::WouldBlock;
            }
        }
    }
    v
}
