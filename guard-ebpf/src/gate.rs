//! The exec gate's kernel half (`guard_common::gate`): which processes are in an agent's tree,
//! a ticket for each of their execs, and the stop at `sys_exit_execve` for an exec that no
//! fanotify answer covered. The cost for a process outside every agent tree is one hash lookup
//! per fork and per exec.

use aya_ebpf::{
    bindings::{BPF_EXIST, BPF_NOEXIST, BPF_RB_FORCE_WAKEUP},
    helpers::{bpf_ktime_get_ns, generated::bpf_send_signal},
    macros::map,
    maps::{Array, HashMap, RingBuf},
};
use guard_common::{
    event::LossSlot,
    gate::{
        AGENT_TGIDS_MAX, AgentScope, CTL_BEAT_MS, CTL_ON, CTL_STALE_MS, SCOPE_PROVISIONAL, CTL_SCOPE_ALL, CTL_SLOTS, CTL_STOP, GATE_EXECS_MAX,
        GATE_STOPPED_MAX, GateExec, STOP_ANSWERED, StopEvent, TICKET_PENDING,
    },
};

use crate::maps::count_loss;

/// Not LRU: an agent's process must never fall out of scope to make room.
#[map]
pub static AGENT_TGIDS: HashMap<u32, AgentScope> = HashMap::with_max_entries(AGENT_TGIDS_MAX, 0);

/// Exec tickets, by tid, from `sys_enter_execve` to `sys_exit_execve`.
#[map]
pub static GATE_EXECS: HashMap<u32, GateExec> = HashMap::with_max_entries(GATE_EXECS_MAX, 0);

/// Processes this gate stopped, by tgid. Pinned by the loader, so a restarted guard (or
/// `guard gate release`) finds and releases what a dead one left stopped.
#[map]
pub static GATE_STOPPED: HashMap<u32, StopEvent> = HashMap::with_max_entries(GATE_STOPPED_MAX, 0);

/// Stop records: few and urgent, so a ring of their own, always woken at once.
#[map]
pub static GATE_EVENTS: RingBuf = RingBuf::with_byte_size(256 << 10, 0);

/// Switches the daemon writes (`guard_common::gate::CTL_*`).
#[map]
pub static GATE_CTL: Array<u32> = Array::with_max_entries(CTL_SLOTS, 0);

const SIGSTOP: u32 = 19;
const SIGCONT: u32 = 18;

#[inline(always)]
pub fn ctl(i: u32) -> bool {
    ctl_value(i) != 0
}

#[inline(always)]
fn ctl_value(i: u32) -> u32 {
    GATE_CTL.get(i).copied().unwrap_or(0)
}

/// Whether guard's heartbeat is recent: a stop is only worth making if guard will answer it.
#[inline(always)]
fn guard_alive(now_ns: u64) -> bool {
    let now_ms = (now_ns / 1_000_000) as u32;
    now_ms.wrapping_sub(ctl_value(CTL_BEAT_MS)) <= ctl_value(CTL_STALE_MS)
}

/// A new process inherits its parent's scope. The fork tracepoint runs before the child is
/// woken, so the child cannot exec before its entry exists.
#[inline(always)]
pub fn on_fork(parent_tgid: u32, child_tgid: u32) {
    // SAFETY: the value is copied out at once; a concurrent delete cannot free it mid-read.
    let Some(s) = (unsafe { AGENT_TGIDS.get(&parent_tgid) }) else {
        return;
    };
    let child = AgentScope { slot: s.slot, flags: s.flags & SCOPE_PROVISIONAL, root: s.root, _pad: 0 };
    if AGENT_TGIDS.insert(&child_tgid, &child, BPF_NOEXIST as u64).is_err()
        // SAFETY: as above.
        && unsafe { AGENT_TGIDS.get(&child_tgid) }.is_none()
    {
        count_loss(LossSlot::GateAgentMapFull);
    }
}

#[inline(always)]
pub fn on_exit(tgid: u32) {
    let _ = AGENT_TGIDS.remove(&tgid);
    let _ = GATE_STOPPED.remove(&tgid);
}

/// At a TLS write by a process outside every agent tree: a provisional entry (see
/// `SCOPE_PROVISIONAL`), so that a zero-config agent's first tool call is not out of scope.
#[inline(always)]
pub fn on_tls_write(tgid: u32) {
    if !ctl(CTL_ON) {
        return;
    }
    // SAFETY: the value is only tested.
    if unsafe { AGENT_TGIDS.get(&tgid) }.is_some() {
        return;
    }
    let v = AgentScope { slot: 0, flags: SCOPE_PROVISIONAL, root: tgid, _pad: 0 };
    let _ = AGENT_TGIDS.insert(&tgid, &v, BPF_NOEXIST as u64);
}

/// At `sys_enter_execve`: a ticket if the caller is in scope. Returns whether it got one.
#[inline(always)]
pub fn on_enter_exec(tid: u32, tgid: u32, uid: u32) -> bool {
    if !ctl(CTL_ON) {
        return false;
    }
    // SAFETY: the value is copied out at once.
    let scope = match unsafe { AGENT_TGIDS.get(&tgid) } {
        Some(s) => *s,
        None if ctl(CTL_SCOPE_ALL) => AgentScope { slot: 0, flags: 0, root: 0, _pad: 0 },
        None => return false,
    };
    let ticket = GateExec {
        // SAFETY: no preconditions.
        enter_ns: unsafe { bpf_ktime_get_ns() },
        tgid,
        slot: scope.slot,
        uid,
        state: TICKET_PENDING,
        root: scope.root,
        scope_flags: scope.flags,
    };
    if GATE_EXECS.insert(&tid, &ticket, 0).is_err() {
        count_loss(LossSlot::GateExecMapFull);
        return false;
    }
    true
}

/// At `sched_process_exec`: an exec by a non-leader thread takes the leader's tid, so the
/// ticket moves with it for `sys_exit_execve` to find.
#[inline(always)]
pub fn on_exec_rekey(old_tid: u32, tid: u32) {
    if old_tid == tid || old_tid == 0 {
        return;
    }
    // SAFETY: the value is copied out at once.
    if let Some(t) = unsafe { GATE_EXECS.get(&old_tid) }.copied() {
        let _ = GATE_EXECS.insert(&tid, &t, 0);
        let _ = GATE_EXECS.remove(&old_tid);
    }
}

/// At `sys_exit_execve`: the ticket ends here. An exec that succeeded without any fanotify
/// answer (memfd, an unmarked filesystem, no fanotify) stops before its first instruction.
#[inline(always)]
pub fn on_exit_exec(tid: u32, tgid: u32, ret: i64, start_ns: u64) {
    // SAFETY: the value is copied out at once.
    let Some(t) = (unsafe { GATE_EXECS.get(&tid) }).copied() else {
        return;
    };
    let _ = GATE_EXECS.remove(&tid);
    if ret != 0 || t.state != TICKET_PENDING || !ctl(CTL_STOP) {
        return;
    }
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let ev = StopEvent {
        enter_ns: t.enter_ns,
        stopped_ns: now,
        start_ns,
        tid,
        tgid,
        slot: t.slot,
        uid: t.uid,
        root: t.root,
        scope_flags: t.scope_flags,
    };
    stop_current(&ev, &ev, 0);
}

/// Whether a request stop takes the place of its process's entry that userspace answered and
/// left (`STOP_ANSWERED`: the process runs again, and its next write may pause at once, before
/// userspace could remove the entry without racing this).
#[inline(always)]
fn replaces_answered(ev: &StopEvent, flags: u64) -> bool {
    // SAFETY: the value is copied out at once.
    let answered = flags == BPF_NOEXIST as u64 && unsafe { GATE_STOPPED.get(&ev.tgid) }.is_some_and(|e| e.scope_flags & STOP_ANSWERED != 0);
    answered && GATE_STOPPED.insert(&ev.tgid, ev, BPF_EXIST as u64).is_ok()
}

/// Stops the current process and tells guard: `ev` goes into `GATE_STOPPED` (with `flags`, e.g.
/// `BPF_NOEXIST`), `record` to `GATE_EVENTS`. Returns whether the process is stopped. Checks
/// guard's heartbeat first: a stop nobody answers would last until the watchdog.
#[inline(always)]
pub fn stop_current<T>(ev: &StopEvent, record: &T, flags: u64) -> bool {
    if !guard_alive(ev.stopped_ns) {
        count_loss(LossSlot::GateStale);
        return false;
    }
    // Record first: a stop nobody hears of would last until a restart. No room, no stop.
    if GATE_STOPPED.insert(&ev.tgid, ev, flags).is_err() && !replaces_answered(ev, flags) {
        if flags == 0 {
            count_loss(LossSlot::GateStopRingFull);
        }
        return false;
    }
    // Stop before telling guard: told first, guard may answer (SIGCONT) before the SIGSTOP is
    // queued, and the stop would then last. Seen here: a vCPU preempted between the two.
    // SAFETY: no preconditions; signals the current process (every thread of it).
    if unsafe { bpf_send_signal(SIGSTOP) } != 0 {
        let _ = GATE_STOPPED.remove(&ev.tgid);
        return false;
    }
    if GATE_EVENTS.output::<T>(record, BPF_RB_FORCE_WAKEUP as u64).is_err() {
        // Nobody will hear of it: let it run at once (SIGCONT discards the pending SIGSTOP).
        // SAFETY: as above.
        unsafe { bpf_send_signal(SIGCONT) };
        let _ = GATE_STOPPED.remove(&ev.tgid);
        count_loss(LossSlot::GateStopRingFull);
        return false;
    }
    true
}
