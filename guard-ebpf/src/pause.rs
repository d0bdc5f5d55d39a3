//! The pause of an agent's request before its bytes leave (issue 21, `guard_common::gate`'s
//! `RequestStop`). At the entry of a TLS write, a descendant of an identified agent whose buffer
//! starts a request that may change something (`POST`, `PUT`, `PATCH`, `DELETE`) is stopped
//! with SIGSTOP; userspace reads the request from the stopped process, judges it, and kills it
//! or lets it go. Not paused: processes outside agents' trees (one array read and one hash
//! lookup), the agent's own process (its LLM traffic), connections userspace passed for good,
//! every other write.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_uid_gid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::map,
    maps::LruHashMap,
};
use guard_common::gate::{CONN_PASS, CONN_PAUSE_NEXT, CTL_REQ_PAUSE, ConnKey, REQ_CONNS_MAX, RequestStop, SCOPE_PROVISIONAL, STOP_REQUEST, StopEvent};

use crate::{gate, task};

/// Connections userspace passed for good (LRU: a forgotten one is paused and passed again), or
/// whose next write it wants to see.
#[map]
pub static REQ_CONNS: LruHashMap<ConnKey, u8> = LruHashMap::with_max_entries(REQ_CONNS_MAX, 0);

/// The methods that pause, as the little-endian bytes a buffer starts with.
const POST: u64 = word(b"POST ");
const PUT: u64 = word(b"PUT ");
const PATCH: u64 = word(b"PATCH ");
const DELETE: u64 = word(b"DELETE ");

const fn word(m: &[u8]) -> u64 {
    let mut w = 0u64;
    let mut i = 0;
    while i < m.len() {
        w |= (m[i] as u64) << (8 * i);
        i += 1;
    }
    w
}

/// At the entry of a TLS write of `len` bytes at `buf` on connection `conn`.
#[inline(always)]
pub fn on_write(tid: u32, tgid: u32, conn: u64, buf: u64, len: u64) {
    if len == 0 || !gate::ctl(CTL_REQ_PAUSE) {
        return;
    }
    // SAFETY: the value is copied out at once.
    let Some(scope) = (unsafe { gate::AGENT_TGIDS.get(&tgid) }).copied() else {
        return;
    };
    // Only an agent's descendants: the agent's own process speaks to its model. A provisional
    // tree's (a TLS writer not yet known as an agent) too: userspace waits, within the deadline,
    // for the engine to say whether its root is an agent.
    if scope.root == tgid || (scope.slot == 0 && scope.flags & SCOPE_PROVISIONAL == 0) {
        return;
    }
    let key = ConnKey { tgid, _pad: 0, conn };
    // SAFETY: the value is copied out at once.
    match unsafe { REQ_CONNS.get(&key) }.copied() {
        Some(CONN_PASS) => return,
        // Userspace wants this write whatever it starts with: the body of a head it saw.
        Some(CONN_PAUSE_NEXT) => {
            let _ = REQ_CONNS.remove(&key);
        }
        _ => {
            // SAFETY: reads user memory through the checked helper; a bad address is an error.
            let Ok(head) = (unsafe { bpf_probe_read_user(buf as *const u64) }) else {
                return;
            };
            if !starts_request(head, len) {
                return;
            }
        }
    }
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let stop = StopEvent {
        enter_ns: now,
        stopped_ns: now,
        start_ns: task::process_start_time(task::current()).unwrap_or(0),
        tid,
        tgid,
        slot: scope.slot,
        uid: bpf_get_current_uid_gid() as u32,
        root: scope.root,
        scope_flags: scope.flags | STOP_REQUEST,
    };
    // A thread of a process already paused stops with it (SIGSTOP stops the whole group).
    let _ = gate::stop_current(&stop, &RequestStop { stop, conn, buf, len }, BPF_NOEXIST as u64);
}

/// Whether a write's first 8 bytes (`head`, little-endian) start a request that may change
/// something.
#[inline(always)]
fn starts_request(head: u64, len: u64) -> bool {
    // `n` < 8: the mask never shifts out of range.
    let is = |w: u64, n: u64| len >= n && head & ((1u64 << (8 * n)) - 1) == w;
    is(POST, 5) || is(PUT, 4) || is(PATCH, 6) || is(DELETE, 7)
}
