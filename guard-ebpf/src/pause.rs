//! The pause of an agent's request before its bytes leave (issue 21, `guard_common::gate`'s
//! `RequestStop`). At the entry of a TLS write, a descendant of an identified agent whose buffer
//! starts a request that may change something (`POST`, `PUT`, `PATCH`, `DELETE`) is stopped
//! with SIGSTOP; userspace reads the request from the stopped process, judges it, and kills it
//! or lets it go. Not paused: processes outside agents' trees (one array read and one hash
//! lookup), the agent's own process (its LLM traffic), connections userspace passed for good,
//! every other write.
//!
//! HTTP/2 is told by its client preface at the start of a write: the connection is marked
//! `CONN_H2` and from then on every write of it pauses (a HEADERS frame can sit anywhere in a
//! write, and userspace's HPACK decoder must see every header block in order).

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_uid_gid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::map,
    maps::LruHashMap,
};
use guard_common::{
    event::Direction,
    gate::{CONN_H2, CONN_PASS, CONN_PAUSE_NEXT, CTL_REQ_PAUSE, ConnKey, OFFSET_UNKNOWN, REQ_CONNS_MAX, RequestStop, SCOPE_PROVISIONAL, STOP_H2, STOP_REQUEST, StopEvent},
};

use crate::{gate, maps, task};

/// Connections userspace passed for good (LRU: a forgotten one is paused and passed again), or
/// whose next write it wants to see.
#[map]
pub static REQ_CONNS: LruHashMap<ConnKey, u8> = LruHashMap::with_max_entries(REQ_CONNS_MAX, 0);

/// The methods that pause, as the little-endian bytes a buffer starts with.
const POST: u64 = word(b"POST ");
const PUT: u64 = word(b"PUT ");
const PATCH: u64 = word(b"PATCH ");
const DELETE: u64 = word(b"DELETE ");
/// The first 8 bytes of the HTTP/2 client preface (`PRI * HTTP/2.0...`).
const PREFACE: u64 = word(b"PRI * HT");

const fn word(m: &[u8]) -> u64 {
    let mut w = 0u64;
    let mut i = 0;
    while i < m.len() {
        w |= (m[i] as u64) << (8 * i);
        i += 1;
    }
    w
}

/// At the entry of a TLS write of `len` bytes at `buf` on connection `conn`; true when the
/// write's process was stopped for userspace to judge it.
#[inline(always)]
pub fn on_write(tid: u32, tgid: u32, conn: u64, buf: u64, len: u64) -> bool {
    if len == 0 || !gate::ctl(CTL_REQ_PAUSE) {
        return false;
    }
    // SAFETY: the value is copied out at once.
    let Some(scope) = (unsafe { gate::AGENT_TGIDS.get(&tgid) }).copied() else {
        return false;
    };
    // Only an agent's descendants: the agent's own process speaks to its model. A provisional
    // tree's (a TLS writer not yet known as an agent) too: userspace waits, within the deadline,
    // for the engine to say whether its root is an agent.
    if scope.root == tgid || (scope.slot == 0 && scope.flags & SCOPE_PROVISIONAL == 0) {
        return false;
    }
    let key = ConnKey { tgid, _pad: 0, conn };
    let mut flags = scope.flags | STOP_REQUEST;
    // SAFETY: the value is copied out at once.
    match unsafe { REQ_CONNS.get(&key) }.copied() {
        Some(CONN_PASS) => return false,
        // Userspace wants this write whatever it starts with: the body of a head it saw.
        Some(CONN_PAUSE_NEXT) => {
            let _ = REQ_CONNS.remove(&key);
        }
        Some(CONN_H2) => flags |= STOP_H2,
        _ => {
            // SAFETY: reads user memory through the checked helper; a bad address is an error.
            let Ok(head) = (unsafe { bpf_probe_read_user(buf as *const u64) }) else {
                return false;
            };
            if len >= 8 && head == PREFACE {
                // A full map evicts its least used entry: never an error worth stopping for.
                let _ = REQ_CONNS.insert(&key, &CONN_H2, 0);
                flags |= STOP_H2;
            } else if !starts_request(head, len) {
                return false;
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
        scope_flags: flags,
    };
    let offset = written(tgid, conn);
    // A thread of a process already paused stops with it (SIGSTOP stops the whole group).
    gate::stop_current(&stop, &RequestStop { stop, conn, buf, len, offset }, BPF_NOEXIST as u64)
}

/// Bytes of the connection's write direction captured so far.
#[inline(always)]
fn written(tgid: u32, conn: u64) -> u64 {
    let key = maps::ConnKey { tgid, _pad: 0, conn };
    // SAFETY: the value is copied out at once.
    unsafe { maps::TLS_OFFSETS.get(&key) }.map_or(OFFSET_UNKNOWN, |v| v[Direction::Write as usize & 1])
}

/// Whether a write's first 8 bytes (`head`, little-endian) start a request that may change
/// something.
#[inline(always)]
fn starts_request(head: u64, len: u64) -> bool {
    // `n` < 8: the mask never shifts out of range.
    let is = |w: u64, n: u64| len >= n && head & ((1u64 << (8 * n)) - 1) == w;
    is(POST, 5) || is(PUT, 4) || is(PATCH, 6) || is(DELETE, 7)
}
