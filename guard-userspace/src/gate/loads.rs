//! Libraries loaded after a program started (issue 17): the kernel stops a process at an `mmap`
//! that maps a file for execution which guard has not analysed (`guard_common::gate::LoadStop`:
//! a `.node` addon extracted at first run and loaded with `dlopen`, a container's own libssl).
//! The file is opened through the stopped process's own fd, so it is the very file even if its
//! path is gone, analysed and attached by the first-exec threads, and the process is let go.
//!
//! The hold is bounded ([`first_run::HOLD`]): the stops thread lets go what is still held past
//! it, counted late. Whoever takes a hold out of [`LoadHolds`] first answers it, once.

use std::{
    collections::HashMap,
    fs::File,
    os::{fd::{AsFd as _, OwnedFd}, unix::fs::MetadataExt as _},
    sync::Mutex,
    time::Instant,
};

use aya::maps::{HashMap as BpfHashMap, MapData};
use guard_common::gate::{FileKey, LoadStop, STOP_ANSWERED, StopEvent};
use guard_core::enforce::Decision;

use super::{Shared, first_run, release};

/// A stopped process waiting for its library's hooks.
pub(super) struct Held {
    pub stop: StopEvent,
    st: release::Stopped,
    deadline: Instant,
}

/// The holds in progress, by job id.
#[derive(Default)]
pub(super) struct LoadHolds(Mutex<HashMap<u64, Held>>);

impl LoadHolds {
    fn insert(&self, id: u64, h: Held) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(id, h);
    }

    pub(super) fn take(&self, id: u64) -> Option<Held> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&id)
    }

    /// The holds past their bound, taken out.
    fn expired(&self, now: Instant) -> Vec<Held> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<u64> = m.iter().filter(|(_, h)| h.deadline <= now).map(|(id, _)| *id).collect();
        ids.into_iter().filter_map(|id| m.remove(&id)).collect()
    }
}

/// A load stop from the kernel: held for analysis when the file is new, let go at once otherwise.
pub(super) fn handle(s: &Shared, rec: &LoadStop, stopped: &mut BpfHashMap<MapData, u32, StopEvent>, next_id: &mut u64) {
    let ev = &rec.stop;
    let Some(st) = release::open_bare(ev) else {
        let _ = stopped.remove(&ev.tgid);
        return;
    };
    let held = Held { stop: *ev, st, deadline: Instant::now() + first_run::HOLD };
    let (Some(first), Some(file)) = (s.first_run.get(), open_mapped(rec)) else {
        return let_go(stopped, &held);
    };
    if !first.unknown(file.as_fd()) {
        // Analysed since the kernel looked (another process's load, a scan), or not a file
        // `consider` takes: either way nothing to wait for, and the kernel should not ask again.
        first.tell_kernel(&file);
        return let_go(stopped, &held);
    }
    *next_id += 1;
    s.loads.insert(*next_id, held);
    if !first.hold_load(*next_id, file) {
        first.metrics.loads.unheld.inc();
        if let Some(h) = s.loads.take(*next_id) {
            let_go(stopped, &h);
        }
    }
}

/// The stops thread's sweep: holds past their bound run now, counted late; at guard's stop
/// (`all`), every hold.
pub(super) fn expire(s: &Shared, stopped: &mut BpfHashMap<MapData, u32, StopEvent>, all: bool) {
    let until = if all { Instant::now() + first_run::HOLD } else { Instant::now() };
    for h in s.loads.expired(until) {
        if let Some(first) = s.first_run.get() {
            first.metrics.loads.late.inc();
        }
        tracing::warn!(pid = h.stop.tgid, hold_ms = first_run::HOLD.as_millis() as u64, "a program ran a library before guard finished analysing it: its first TLS calls may be missed");
        let_go(stopped, &h);
    }
}

/// Lets a held process run. Its registry entry is marked answered, not removed: the process may
/// stop again the moment it runs, and that stop takes the entry's place (see `STOP_ANSWERED`).
pub(super) fn let_go(stopped: &mut BpfHashMap<MapData, u32, StopEvent>, h: &Held) {
    let _ = stopped.insert(h.stop.tgid, StopEvent { scope_flags: h.stop.scope_flags | STOP_ANSWERED, ..h.stop }, 0);
    release::let_go(&h.st, Decision::Allow);
}

/// The mapped file, through the stopped process's fd, if that fd still names it.
fn open_mapped(rec: &LoadStop) -> Option<OwnedFd> {
    let f = File::open(format!("/proc/{}/fd/{}", rec.stop.tgid, rec.fd)).ok()?;
    let meta = f.metadata().ok()?;
    (FileKey::from_stat(meta.dev(), meta.ino()) == rec.file).then(|| f.into())
}
