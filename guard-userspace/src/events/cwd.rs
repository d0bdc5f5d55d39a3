//! The working directory of each new program, read the moment its exec record leaves the ring.
//! The kernel does not send it (a path walk there costs verifier complexity), and by the time the
//! pipeline reaches the record a short-lived command (`bash -c 'rm -rf x'`) may be gone, taking
//! its /proc entry with it. The reader notes it here; the governor's lookup takes it.

use std::{
    collections::{HashMap, VecDeque},
    path::PathBuf,
    sync::Mutex,
};

use guard_common::event::EventKind;

/// Bounded: entries the governor never asks for are dropped oldest first.
pub struct CwdCache {
    proc_root: PathBuf,
    cap: usize,
    inner: Mutex<(HashMap<u32, String>, VecDeque<u32>)>,
}

impl CwdCache {
    pub fn new(proc_root: impl Into<PathBuf>, cap: usize) -> Self {
        Self { proc_root: proc_root.into(), cap: cap.max(1), inner: Mutex::new((HashMap::new(), VecDeque::new())) }
    }

    /// Looks at a raw ring record; for a `sched_process_exec` record, reads the process's cwd now.
    pub fn note(&self, raw: &[u8]) {
        let word = |at: usize| raw.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_ne_bytes);
        let (Some(kind), Some(tgid)) = (word(0), word(8)) else { return };
        if kind != EventKind::Exec as u32 {
            return;
        }
        let Ok(cwd) = std::fs::read_link(self.proc_root.join(tgid.to_string()).join("cwd")) else { return };
        let Ok(mut g) = self.inner.lock() else { return };
        let (map, order) = &mut *g;
        if map.insert(tgid, cwd.to_string_lossy().into_owned()).is_none() {
            order.push_back(tgid);
        }
        while map.len() > self.cap {
            let Some(old) = order.pop_front() else { break };
            map.remove(&old);
        }
    }

    /// The cwd noted for `pid`'s last exec, if any (and forgets it).
    pub fn take(&self, pid: u32) -> Option<String> {
        let mut g = self.inner.lock().ok()?;
        let (map, order) = &mut *g;
        let cwd = map.remove(&pid)?;
        order.retain(|p| *p != pid);
        Some(cwd)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(kind: EventKind, tgid: u32) -> Vec<u8> {
        let mut r = vec![0u8; 24];
        r[0..4].copy_from_slice(&(kind as u32).to_ne_bytes());
        r[8..12].copy_from_slice(&tgid.to_ne_bytes());
        r
    }

    #[test]
    fn exec_records_note_the_cwd_and_others_do_not() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("42");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("/srv/project", dir.join("cwd")).unwrap();
        let c = CwdCache::new(root.path(), 2);
        c.note(&record(EventKind::Fork, 42));
        assert_eq!(c.take(42), None);
        c.note(&record(EventKind::Exec, 42));
        c.note(&[1, 0]); // short: ignored
        assert_eq!(c.take(42).as_deref(), Some("/srv/project"));
        assert_eq!(c.take(42), None);
        c.note(&record(EventKind::Exec, 7)); // no such process: nothing noted
        assert_eq!(c.take(7), None);
    }
}
