//! The working directory of each new program, read soon after its exec record leaves the ring.
//! The kernel does not send it (a path walk there costs verifier complexity), and by the time the
//! engine reaches the record a short-lived command (`bash -c 'rm -rf x'`) may be gone, taking its
//! /proc entry with it. The reader only hands the exec's pid to a thread of its own (a bounded
//! queue: when full, the engine's lookup reads /proc itself, later); that thread reads the link,
//! so no /proc read sits in the reader's hot loop.

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        mpsc::{Receiver, SyncSender, sync_channel},
    },
};

use guard_common::event::EventKind;

type Noted = Arc<Mutex<(HashMap<u32, String>, VecDeque<u32>)>>;

/// Bounded: entries the engine never asks for are dropped oldest first.
pub(crate) struct CwdCache {
    tx: SyncSender<u32>,
    noted: Noted,
}

impl CwdCache {
    /// Starts the thread that reads `proc_root/PID/cwd` for each exec noted.
    pub(crate) fn spawn(proc_root: PathBuf, cap: usize) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(cap.max(1));
        let noted = Noted::default();
        let shared = noted.clone();
        std::thread::Builder::new()
            .name("guard-cwd".into())
            .spawn(move || read_loop(&proc_root, cap.max(1), &rx, &shared))?;
        Ok(Self { tx, noted })
    }

    /// Looks at a raw ring record; for a `sched_process_exec` record, queues its pid.
    pub(crate) fn note(&self, raw: &[u8]) {
        let word = |at: usize| raw.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_ne_bytes);
        let (Some(kind), Some(tgid)) = (word(0), word(8)) else { return };
        if kind == EventKind::Exec as u32 {
            // Full (or the thread gone): the lookup reads /proc itself when the engine asks.
            let _ = self.tx.try_send(tgid);
        }
    }

    /// The cwd noted for `pid`'s last exec, if any (and forgets it).
    pub(crate) fn take(&self, pid: u32) -> Option<String> {
        let mut g = self.noted.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, order) = &mut *g;
        let cwd = map.remove(&pid)?;
        order.retain(|p| *p != pid);
        Some(cwd)
    }
}

fn read_loop(proc_root: &Path, cap: usize, rx: &Receiver<u32>, noted: &Noted) {
    while let Ok(tgid) = rx.recv() {
        let Ok(cwd) = std::fs::read_link(proc_root.join(tgid.to_string()).join("cwd")) else { continue };
        let mut g = noted.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, order) = &mut *g;
        if map.insert(tgid, cwd.to_string_lossy().into_owned()).is_none() {
            order.push_back(tgid);
        }
        while map.len() > cap {
            let Some(old) = order.pop_front() else { break };
            map.remove(&old);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test")]
mod tests {
    use super::*;

    fn record(kind: EventKind, tgid: u32) -> Vec<u8> {
        let mut r = vec![0u8; 24];
        r[0..4].copy_from_slice(&(kind as u32).to_ne_bytes());
        r[8..12].copy_from_slice(&tgid.to_ne_bytes());
        r
    }

    /// Waits for the reading thread to note `pid` (or gives up after a second).
    fn take_soon(c: &CwdCache, pid: u32) -> Option<String> {
        for _ in 0..100 {
            if let Some(cwd) = c.take(pid) {
                return Some(cwd);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        None
    }

    #[test]
    fn exec_records_note_the_cwd_and_others_do_not() {
        let root = tempfile::tempdir().unwrap();
        for (pid, cwd) in [(42, "/srv/project"), (43, "/srv/other")] {
            let dir = root.path().join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::os::unix::fs::symlink(cwd, dir.join("cwd")).unwrap();
        }
        let c = CwdCache::spawn(root.path().into(), 2).unwrap();
        c.note(&record(EventKind::Fork, 42));
        c.note(&[1, 0]); // short: ignored
        c.note(&record(EventKind::Exec, 7)); // no such process: nothing noted
        c.note(&record(EventKind::Exec, 43));
        assert_eq!(take_soon(&c, 43).as_deref(), Some("/srv/other"));
        // The fork of 42 was never queued: only its exec is.
        assert_eq!(c.take(42), None);
        c.note(&record(EventKind::Exec, 42));
        assert_eq!(take_soon(&c, 42).as_deref(), Some("/srv/project"));
        assert_eq!(c.take(42), None);
        assert_eq!(c.take(7), None);
    }
}
