//! The working directory of each new program, read soon after its exec record leaves the ring.
//! The kernel does not send it (a path walk there costs verifier complexity), and by the time the
//! engine reaches the record a short-lived command (`bash -c 'rm -rf x'`) may be gone, taking its
//! /proc entry with it. The reader only hands the exec's pid to a thread of its own (a bounded
//! queue: when full, the engine's lookup reads /proc itself, later); that thread reads the link,
//! so no /proc read sits in the reader's hot loop. Only programs that can start a rule match
//! are read (`RuleSet::may_run`): the others' cwd is never asked for.

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        mpsc::{Receiver, SyncSender, sync_channel},
    },
};

use guard_common::event::{EventKind, ExecEvent};

type Noted = Arc<Mutex<(HashMap<u32, String>, VecDeque<u32>)>>;

/// Whether the cwd of a program exec'd from this path is wanted.
pub(crate) type Wanted = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// Bounded: entries the engine never asks for are dropped oldest first.
pub(crate) struct CwdCache {
    tx: SyncSender<u32>,
    noted: Noted,
    wanted: Wanted,
}

impl CwdCache {
    /// Starts the thread that reads `proc_root/PID/cwd` for each exec noted.
    pub(crate) fn spawn(proc_root: PathBuf, cap: usize, wanted: Wanted) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(cap.max(1));
        let noted = Noted::default();
        let shared = noted.clone();
        std::thread::Builder::new()
            .name("guard-cwd".into())
            .spawn(move || read_loop(&proc_root, cap.max(1), &rx, &shared))?;
        Ok(Self { tx, noted, wanted })
    }

    /// Looks at a raw ring record; for a `sched_process_exec` record of a wanted program,
    /// queues its pid.
    pub(crate) fn note(&self, raw: &[u8]) {
        let word = |at: usize| raw.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_ne_bytes);
        let (Some(kind), Some(tgid)) = (word(0), word(8)) else { return };
        if kind == EventKind::Exec as u32 && exec_path(raw).is_none_or(|p| (self.wanted)(p)) {
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

/// The path an exec record names; `None` when the record is short or the path not UTF-8.
fn exec_path(raw: &[u8]) -> Option<&str> {
    let len_at = std::mem::offset_of!(ExecEvent, filename_len);
    let len = u32::from_ne_bytes(raw.get(len_at..len_at + 4)?.try_into().ok()?) as usize;
    let at = std::mem::offset_of!(ExecEvent, filename);
    std::str::from_utf8(raw.get(at..at + len)?).ok()
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

    fn exec(tgid: u32, path: &str) -> Vec<u8> {
        let mut r = vec![0u8; size_of::<ExecEvent>()];
        r[..24].copy_from_slice(&record(EventKind::Exec, tgid));
        let (len_at, at) = (std::mem::offset_of!(ExecEvent, filename_len), std::mem::offset_of!(ExecEvent, filename));
        r[len_at..len_at + 4].copy_from_slice(&(path.len() as u32).to_ne_bytes());
        r[at..at + path.len()].copy_from_slice(path.as_bytes());
        r
    }

    #[test]
    fn only_wanted_programs_are_read() {
        let root = tempfile::tempdir().unwrap();
        for pid in [50, 51] {
            let dir = root.path().join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::os::unix::fs::symlink("/srv/x", dir.join("cwd")).unwrap();
        }
        let c = CwdCache::spawn(root.path().into(), 4, Box::new(|p| p.ends_with("/rm"))).unwrap();
        c.note(&exec(50, "/bin/true"));
        c.note(&exec(51, "/usr/bin/rm"));
        assert_eq!(take_soon(&c, 51).as_deref(), Some("/srv/x"));
        assert_eq!(c.take(50), None);
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
        let c = CwdCache::spawn(root.path().into(), 2, Box::new(|_| true)).unwrap();
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
