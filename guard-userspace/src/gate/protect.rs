//! Protected files (`~/.ssh`, `~/.aws`, `/etc`, ...): an agent's process that opens one of
//! their files for writing or truncation gets EPERM in enforce mode. fanotify's `FAN_OPEN_PERM`
//! fires before `O_TRUNC` truncates (FACTS.md); unlink and rename have no permission event, so
//! those are the deletion programs' (`guard_common::delete`).
//!
//! The marks are inode marks on each protected directory and its subdirectories, one level
//! down, with `FAN_EVENT_ON_CHILD`: never a whole filesystem, and placed only while an agent
//! lives, since every process's opens in `/etc` then pay a round trip to guard.

use std::{
    fs,
    path::{Path, PathBuf},
};

use aya::maps::{HashMap, MapData};
use guard_common::gate::AgentScope;
use guard_core::enforce::Mode;

use super::{
    Shared,
    caller::{Remote, SyscallLine, parse_syscall},
    fanotify::{Fanotify, PermEvent},
    pending::respond,
};

/// Marks per protected directory (itself and its subdirectories), at most.
const MAX_MARKS_PER_DIR: usize = 64;

pub(super) struct ProtectMarks {
    dirs: Vec<PathBuf>,
    armed: bool,
    /// Flushes of the group's inode marks so far: each one also removes its ignore marks.
    flushes: u64,
}

impl ProtectMarks {
    pub(super) fn new(dirs: Vec<PathBuf>) -> Self {
        Self { dirs, armed: false, flushes: 0 }
    }

    /// New directories; when armed, the old marks go (the next `sync` places the new ones).
    /// Returns whether they changed.
    pub(super) fn set_dirs(&mut self, fan: &Fanotify, dirs: Vec<PathBuf>) -> bool {
        if dirs == self.dirs {
            return false;
        }
        self.dirs = dirs;
        if self.armed {
            self.sync(fan, false);
        }
        true
    }

    pub(super) fn flushes(&self) -> u64 {
        self.flushes
    }

    /// Puts the hot files' ignore marks back while armed: `ldconfig` replaces the cache (a new
    /// inode) on every package install. For the periodic sweep.
    pub(super) fn keep_hot_ignored(&self, fan: &Fanotify) {
        if self.armed {
            ignore_hot(fan);
        }
    }

    /// Places the marks when `wanted` (an agent lives) and removes them when not. Returns
    /// whether armed.
    pub(super) fn sync(&mut self, fan: &super::fanotify::Fanotify, wanted: bool) -> bool {
        if wanted == self.armed {
            return self.armed;
        }
        if !wanted {
            if let Err(e) = fan.flush_inodes() {
                tracing::warn!(error = %e, "removing the protected files' marks failed");
            }
            self.flushes += 1;
            self.armed = false;
            tracing::info!("protected files unmarked: no agent lives");
            return false;
        }
        let mut marked = 0;
        for d in &self.dirs {
            for p in marks_under(d) {
                match fan.mark_open_perm(&p) {
                    Ok(()) => marked += 1,
                    Err(e) => tracing::debug!(path = %p.display(), error = %e, "protected directory not marked"),
                }
            }
        }
        self.armed = marked > 0;
        if self.armed {
            ignore_hot(fan);
        }
        tracing::info!(marks = marked, dirs = self.dirs.len(), "protected files marked: agents' writes to them are judged");
        self.armed
    }
}

/// An open in a protected directory: refused (enforce) or let through and counted (monitor)
/// when an identified agent's process opens for writing; allowed at once otherwise.
pub(super) fn on_open(s: &Shared, fan: &Fanotify, agents: &HashMap<MapData, u32, AgentScope>, ev: PermEvent) {
    let proc = Path::new("/proc");
    // Every process's opens here come through while an agent lives, nearly all of them reads by
    // processes outside any agent's tree: the cheap questions first. A thread that is not its
    // process's main thread needs `/proc/TID/status` (~10 µs) for its thread group, asked only
    // for a write.
    if opens_for_write(proc, ev.tid) != Some(true) {
        return respond(fan, &ev, true);
    }
    let scope = agents.get(&ev.tid, 0).ok().or_else(|| tgid_of(proc, ev.tid).and_then(|t| agents.get(&t, 0).ok()));
    let agent = scope.and_then(|sc| {
        let slot = if sc.slot != 0 { sc.slot } else { s.agents.resolution(sc.root).unwrap_or(0) };
        s.agents.name(slot)
    });
    let Some(agent) = agent else { return respond(fan, &ev, true) };
    let enforce = s.judge.config().mode == Mode::Enforce;
    respond(fan, &ev, !enforce);
    s.metrics.protected_writes[usize::from(!enforce)].inc();
    let path = fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&ev.fd))).unwrap_or_default();
    let action = if enforce { "blocked" } else { "would_block" };
    tracing::warn!(agent = %agent, tid = ev.tid, path = %path.display(), action, "an agent opened a protected file for writing");
}

/// Files under a protected directory that every process opens and nobody opens for writing:
/// the dynamic loader opens its cache at each exec of a dynamic program (`ldconfig` writes a new
/// file and renames it over the old). Their opens would cost every exec on the host a second
/// round trip to guard while an agent lives.
const HOT: [&str; 1] = ["/etc/ld.so.cache"];

fn ignore_hot(fan: &Fanotify) {
    for f in HOT {
        if let Err(e) = fan.ignore_open(Path::new(f))
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::debug!(path = f, error = %e, "open events not ignored");
        }
    }
}

/// `dir` and its subdirectories, one level down, that exist (symlinks are not followed).
fn marks_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(meta) = fs::symlink_metadata(dir) else { return Vec::new() };
    if !meta.is_dir() {
        return Vec::new();
    }
    let mut out = vec![dir.to_path_buf()];
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.filter_map(Result::ok) {
            if out.len() >= MAX_MARKS_PER_DIR {
                break;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(e.path());
            }
        }
    }
    out
}

/// Whether the open thread `tid` is blocked in writes or truncates: `Some(true)`, `Some(false)`
/// for a read-only open, `None` when its syscall cannot be read or is not an open.
pub(super) fn opens_for_write(proc_root: &Path, tid: u32) -> Option<bool> {
    let text = fs::read_to_string(proc_root.join(tid.to_string()).join("syscall")).ok()?;
    let SyscallLine::InSyscall { nr, args } = parse_syscall(&text).ok()? else { return None };
    let flags = match nr as i64 {
        libc::SYS_open => args[1],
        libc::SYS_openat => args[2],
        libc::SYS_creat => return Some(true),
        // `struct open_how`'s first field is the flags.
        libc::SYS_openat2 => Remote { pid: tid as libc::pid_t }.read_u64(args[2])?,
        _ => return None,
    };
    Some(is_write(flags))
}

fn is_write(flags: u64) -> bool {
    let f = flags as libc::c_int;
    f & libc::O_ACCMODE != libc::O_RDONLY || f & (libc::O_TRUNC | libc::O_APPEND) != 0
}

/// The thread group of `tid`, from `/proc/TID/status`.
pub(super) fn tgid_of(proc_root: &Path, tid: u32) -> Option<u32> {
    let text = fs::read_to_string(proc_root.join(tid.to_string()).join("status")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("Tgid:")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test")]
mod tests {
    use super::*;

    #[test]
    fn write_intent_is_the_access_mode_or_truncate_or_append() {
        assert!(!is_write(libc::O_RDONLY as u64));
        assert!(!is_write((libc::O_RDONLY | libc::O_CLOEXEC) as u64));
        assert!(is_write(libc::O_WRONLY as u64));
        assert!(is_write(libc::O_RDWR as u64));
        assert!(is_write((libc::O_RDONLY | libc::O_TRUNC) as u64));
        assert!(is_write((libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT) as u64));
    }

    #[test]
    fn the_open_flags_are_read_from_the_blocked_syscall() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("77");
        fs::create_dir(&t).unwrap();
        let line = |nr: i64, a: [u64; 3]| format!("{nr} {:#x} {:#x} {:#x} 0x0 0x0 0x0 0x7ffc 0x7f00\n", a[0], a[1], a[2]);
        fs::write(t.join("syscall"), line(libc::SYS_openat, [0xffffff9c, 0x1000, libc::O_WRONLY as u64 | libc::O_TRUNC as u64])).unwrap();
        assert_eq!(opens_for_write(dir.path(), 77), Some(true));
        fs::write(t.join("syscall"), line(libc::SYS_openat, [0xffffff9c, 0x1000, libc::O_RDONLY as u64])).unwrap();
        assert_eq!(opens_for_write(dir.path(), 77), Some(false));
        fs::write(t.join("syscall"), line(libc::SYS_open, [0x1000, libc::O_RDWR as u64, 0])).unwrap();
        assert_eq!(opens_for_write(dir.path(), 77), Some(true));
        fs::write(t.join("syscall"), line(libc::SYS_read, [3, 0x1000, 10])).unwrap();
        assert_eq!(opens_for_write(dir.path(), 77), None);
        fs::write(t.join("syscall"), "running\n").unwrap();
        assert_eq!(opens_for_write(dir.path(), 77), None);
        fs::write(t.join("status"), "Name:\tx\nTgid:\t70\nPid:\t77\n").unwrap();
        assert_eq!(tgid_of(dir.path(), 77), Some(70));
    }

    #[test]
    fn marks_cover_the_directory_and_its_subdirectories_only() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("f"), "").unwrap();
        let mut m = marks_under(dir.path());
        m.sort();
        assert_eq!(m, vec![dir.path().to_path_buf(), dir.path().join("a")]);
        assert!(marks_under(&dir.path().join("f")).is_empty());
        assert!(marks_under(&dir.path().join("missing")).is_empty());
    }
}
