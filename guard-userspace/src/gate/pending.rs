//! Events waiting for an answer, and the only place that answers them: the first answer wins, the
//! event's fd closes with it, and the deadline thread answers whatever a judge did not in time.

use std::{
    collections::HashMap,
    sync::{Condvar, Mutex, MutexGuard},
    time::Instant,
};

use super::fanotify::{Fanotify, PermEvent};

pub(super) struct Entry {
    pub ev: PermEvent,
    pub deadline: Instant,
    pub tid: u32,
    pub enter_ns: u64,
    pub in_agent_tree: bool,
    /// Held for its file's analysis (`first_run`), not yet for a verdict.
    pub hooks: bool,
}

#[derive(Default)]
pub(super) struct Pending {
    entries: Mutex<HashMap<u64, Entry>>,
    /// Woken when an entry with an earlier deadline may have arrived.
    changed: Condvar,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn insert(&self, id: u64, e: Entry) {
        self.lock().insert(id, e);
        self.changed.notify_one();
    }

    /// Answers entry `id` if nobody has; returns the entry (its fd already answered and closed).
    pub(super) fn answer(&self, fan: &Fanotify, id: u64, allow: bool) -> Option<(u32, u64)> {
        let e = self.lock().remove(&id)?;
        respond(fan, &e.ev, allow);
        Some((e.tid, e.enter_ns))
    }

    /// Takes entry `id` unanswered, if nobody has answered it.
    pub(super) fn take(&self, id: u64) -> Option<Entry> {
        self.lock().remove(&id)
    }

    /// Takes every entry past its deadline; the caller answers them. Waits up to `max` for the
    /// earliest deadline otherwise.
    pub(super) fn expired(&self, now: Instant, max: std::time::Duration) -> Vec<(u64, Entry)> {
        let mut g = self.lock();
        let due: Vec<u64> = g.iter().filter(|(_, e)| e.deadline <= now).map(|(id, _)| *id).collect();
        if due.is_empty() {
            let wait = g.values().map(|e| e.deadline.saturating_duration_since(now)).min().unwrap_or(max).min(max);
            let _ = self.changed.wait_timeout(g, wait);
            return Vec::new();
        }
        due.into_iter().filter_map(|id| g.remove(&id).map(|e| (id, e))).collect()
    }

}

/// Answers one event. A failed write is logged: the kernel allows the exec when the fd closes.
pub(super) fn respond(fan: &Fanotify, ev: &PermEvent, allow: bool) {
    use std::os::fd::AsFd as _;
    if let Err(e) = fan.respond(ev.fd.as_fd(), allow) {
        tracing::debug!(error = %e, tid = ev.tid, "fanotify response not written");
    }
}
