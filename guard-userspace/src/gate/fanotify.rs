//! A thin, safe wrapper over fanotify for exec permission events (`FAN_OPEN_EXEC_PERM`).
//!
//! Nothing here decides anything: the listener reads events, the judges answer them. Each
//! [`PermEvent`] owns the event's file descriptor, so an event that is dropped without an answer
//! only leaks until the group's fd closes, when the kernel allows it (FACTS: listener death).

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsFd, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Size of `struct fanotify_event_metadata` (version 3): event_len u32, vers u8, reserved u8,
/// metadata_len u16, mask u64, fd i32, pid i32.
const METADATA_LEN: usize = 24;

/// One fanotify group (one fd). Closing it makes the kernel allow every pending and queued event.
pub(crate) struct Fanotify {
    fd: OwnedFd,
    /// Queue-overflow events seen. With `FAN_UNLIMITED_QUEUE` there should be none.
    overflows: AtomicU64,
}

/// A permission event read from the queue. `fd` is the file being opened for exec; it closes on
/// drop. With `FAN_REPORT_TID`, `tid` is the calling thread (0 if outside our pid namespace).
#[derive(Debug)]
pub(crate) struct PermEvent {
    pub(crate) fd: OwnedFd,
    pub(crate) tid: u32,
    pub(crate) mask: u64,
}

/// One record of the read buffer, before its fd is owned.
#[derive(Debug, PartialEq, Eq)]
struct RawEvent {
    mask: u64,
    fd: i32,
    pid: i32,
}

fn last_err() -> io::Error {
    io::Error::last_os_error()
}

impl Fanotify {
    /// A new group: content class (permission events), non-blocking reads, an unlimited queue
    /// (a full bounded queue drops permission events and allows them, FACTS) and thread ids.
    pub(crate) fn init() -> io::Result<Self> {
        let flags = libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK | libc::FAN_UNLIMITED_QUEUE | libc::FAN_REPORT_TID;
        let event_flags = (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as libc::c_uint;
        // SAFETY: plain syscall with constant arguments; no memory is passed.
        let fd = unsafe { libc::fanotify_init(flags, event_flags) };
        if fd < 0 {
            return Err(last_err());
        }
        // SAFETY: fanotify_init returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd: high(fd), overflows: AtomicU64::new(0) })
    }

    fn mark(&self, flags: libc::c_uint, mask: u64, path: &Path) -> io::Result<()> {
        let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        // SAFETY: the group fd is open for the call, and `path` is a NUL-terminated string that
        // outlives it; the kernel only reads it.
        let rc = unsafe { libc::fanotify_mark(self.fd.as_raw_fd(), flags, mask, libc::AT_FDCWD, path.as_ptr()) };
        if rc < 0 {
            return Err(last_err());
        }
        Ok(())
    }

    /// Asks for an exec permission event on every exec from the superblock holding `path`.
    pub(crate) fn mark_fs(&self, path: &Path) -> io::Result<()> {
        self.mark(libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM, libc::FAN_OPEN_EXEC_PERM, path)
    }

    /// No exec permission event for the file at `path` (followed if a symlink), whatever marks
    /// its filesystem: an inode ignore mark, kept when the file is written.
    pub(crate) fn ignore_exec(&self, path: &Path) -> io::Result<()> {
        self.mark(libc::FAN_MARK_ADD | libc::FAN_MARK_IGNORED_MASK | libc::FAN_MARK_IGNORED_SURV_MODIFY, libc::FAN_OPEN_EXEC_PERM, path)
    }

    /// No open permission event for the file at `path`, whatever marks its directory.
    pub(crate) fn ignore_open(&self, path: &Path) -> io::Result<()> {
        self.mark(libc::FAN_MARK_ADD | libc::FAN_MARK_IGNORED_MASK | libc::FAN_MARK_IGNORED_SURV_MODIFY, libc::FAN_OPEN_PERM, path)
    }

    /// Asks for an open permission event on `dir` and on the files directly in it
    /// (`crate::gate::protect`).
    pub(crate) fn mark_open_perm(&self, dir: &Path) -> io::Result<()> {
        self.mark(libc::FAN_MARK_ADD | libc::FAN_MARK_DONT_FOLLOW, libc::FAN_OPEN_PERM | libc::FAN_EVENT_ON_CHILD, dir)
    }

    /// Removes every inode mark of this group (the protected directories'), not the
    /// filesystem marks.
    pub(crate) fn flush_inodes(&self) -> io::Result<()> {
        self.mark(libc::FAN_MARK_FLUSH, 0, Path::new("/"))
    }

    /// Removes every filesystem mark of this group. Events already queued stay queued.
    pub(crate) fn flush(&self) -> io::Result<()> {
        // The kernel ignores the path of a flush; "/" is only a valid pointer.
        self.mark(libc::FAN_MARK_FLUSH | libc::FAN_MARK_FILESYSTEM, 0, Path::new("/"))
    }

    /// Queue-overflow events seen so far.
    pub(crate) fn overflows(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
    }

    /// Reads what is queued into `buf` and appends the events that carry a file to `out`.
    /// Returns how many were appended; `Ok(0)` when nothing is queued or a signal came. `buf` must hold at least
    /// one event (4 KiB is plenty for ~170). Every appended event needs an answer ([`respond`]).
    ///
    /// [`respond`]: Fanotify::respond
    pub(crate) fn read(&self, buf: &mut [u8], out: &mut Vec<PermEvent>) -> io::Result<usize> {
        if buf.len() < METADATA_LEN {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "fanotify read buffer smaller than one event"));
        }
        // SAFETY: `buf` is a writable buffer of `buf.len()` bytes for the whole call.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = last_err();
            return match e.kind() {
                // A signal is how the listener's waiting read is woken at stop.
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        let before = out.len();
        let mut bad = None;
        for ev in parse(&buf[..n.min(buf.len())]) {
            match ev {
                Ok(ev) if ev.mask & libc::FAN_Q_OVERFLOW != 0 => {
                    self.overflows.fetch_add(1, Ordering::Relaxed);
                    // An overflow carries FAN_NOFD; own a real fd anyway rather than leak it.
                    if ev.fd >= 0 {
                        // SAFETY: the kernel installed this fd in our table for this event only.
                        drop(unsafe { OwnedFd::from_raw_fd(ev.fd) });
                    }
                }
                Ok(ev) if ev.fd < 0 => {} // FAN_NOFD: nothing to answer
                Ok(ev) => out.push(PermEvent {
                    // SAFETY: the kernel installed this fd in our table for this event, and each
                    // record names a distinct fd; we are its only owner.
                    fd: unsafe { OwnedFd::from_raw_fd(ev.fd) },
                    tid: u32::try_from(ev.pid).unwrap_or(0),
                    mask: ev.mask,
                }),
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        // The events parsed before a bad record are returned to the caller through `out`; the
        // rest of the buffer cannot be trusted, and its fds stay unowned (an ABI mismatch).
        match bad {
            Some(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            None => Ok(out.len() - before),
        }
    }

    /// Answers one permission event. The caller closes `ev_fd` afterwards (drop the [`PermEvent`]).
    pub(crate) fn respond(&self, ev_fd: BorrowedFd<'_>, allow: bool) -> io::Result<()> {
        let resp = libc::fanotify_response { fd: ev_fd.as_raw_fd(), response: if allow { libc::FAN_ALLOW } else { libc::FAN_DENY } };
        let len = std::mem::size_of::<libc::fanotify_response>();
        // SAFETY: `resp` is a live, initialised fanotify_response of `len` bytes.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), (&raw const resp).cast(), len) };
        if n < 0 {
            return Err(last_err());
        }
        if n as usize != len {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short fanotify response write"));
        }
        Ok(())
    }

    /// Makes [`Self::read`] wait for an event (the group is opened non-blocking). A waiting read
    /// costs one syscall per wake-up where `poll` with a timeout and then `read` cost two and an
    /// armed timer: 22 against 30 µs of CPU per exec for a bare listener on this VM.
    pub(crate) fn set_blocking(&self) -> io::Result<()> {
        // SAFETY: fcntl on an fd this group owns; F_GETFL/F_SETFL pass no memory.
        let flags = unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_GETFL) };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
            return Err(last_err());
        }
        Ok(())
    }

    /// Waits up to `timeout` for the queue to become readable. `Ok(false)` on timeout or signal.
    pub(crate) fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // Rounded up so that a 0.5 ms wait is not a busy poll.
        let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&raw mut pfd, 1, ms) };
        if rc < 0 {
            let e = last_err();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(false) } else { Err(e) };
        }
        Ok(rc > 0 && pfd.revents & libc::POLLIN != 0)
    }

    /// Whether events are queued and unread (the deadline thread's "listener stuck" check; FIONREAD
    /// left its int unwritten here, poll does not).
    pub(crate) fn has_queued(&self) -> bool {
        self.wait(Duration::ZERO).unwrap_or(false)
    }
}

impl AsFd for Fanotify {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Splits a read buffer into records. Stops with an error at the first record that is not
/// version 3 or whose length does not fit; everything before it is yielded.
fn parse(buf: &[u8]) -> impl Iterator<Item = Result<RawEvent, String>> + '_ {
    let mut off = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || off >= buf.len() {
            return None;
        }
        let rest = &buf[off..];
        if rest.len() < METADATA_LEN {
            failed = true;
            return Some(Err(format!("{} trailing bytes, shorter than an event", rest.len())));
        }
        let event_len = u32_at(rest, 0) as usize;
        let vers = rest[4];
        let metadata_len = u16::from_ne_bytes([rest[6], rest[7]]) as usize;
        if vers != libc::FANOTIFY_METADATA_VERSION {
            failed = true;
            return Some(Err(format!("fanotify metadata version {vers}, expected {}", libc::FANOTIFY_METADATA_VERSION)));
        }
        if event_len < METADATA_LEN || event_len > rest.len() || metadata_len < METADATA_LEN || metadata_len > event_len {
            failed = true;
            return Some(Err(format!("fanotify event_len {event_len} (metadata_len {metadata_len}) out of bounds ({} bytes left)", rest.len())));
        }
        let mut mask = [0u8; 8];
        mask.copy_from_slice(&rest[8..16]);
        let ev = RawEvent { mask: u64::from_ne_bytes(mask), fd: u32_at(rest, 16) as i32, pid: u32_at(rest, 20) as i32 };
        off += event_len;
        Some(Ok(ev))
    })
}

/// The group's fd moved to a number above every other fd guard will open. A dying process
/// closes its fds in number order and the kernel releases them last-closed first; only when this
/// one is released are the execs waiting on guard allowed. Below it, each BPF link guard holds
/// waits for an RCU grace period as it goes: a second or more in all, measured here, during
/// which a killed guard's execs would still wait. On failure the fd stays where it is.
fn high(fd: OwnedFd) -> OwnedFd {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: writes only the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 || lim.rlim_cur < 256 {
        return fd;
    }
    let at = (lim.rlim_cur.min(1 << 20) - 1) as libc::c_int;
    // SAFETY: duplicates an open fd to the lowest free number >= `at`; no memory is passed.
    let high = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, at) };
    if high < 0 {
        return fd;
    }
    // SAFETY: a new descriptor that nothing else owns; the old one closes as `fd` drops.
    unsafe { OwnedFd::from_raw_fd(high) }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn record(event_len: u32, vers: u8, mask: u64, fd: i32, pid: i32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&event_len.to_ne_bytes());
        v.push(vers);
        v.push(0);
        v.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
        v.extend_from_slice(&mask.to_ne_bytes());
        v.extend_from_slice(&fd.to_ne_bytes());
        v.extend_from_slice(&pid.to_ne_bytes());
        v.resize(event_len.max(METADATA_LEN as u32) as usize, 0);
        v
    }

    #[test]
    fn layout_matches_libc() {
        assert_eq!(std::mem::size_of::<libc::fanotify_event_metadata>(), METADATA_LEN);
    }

    #[test]
    fn parses_records_and_skips_info_tails() {
        let mut buf = record(24, 3, libc::FAN_OPEN_EXEC_PERM, 7, 100);
        buf.extend(record(40, 3, libc::FAN_OPEN_EXEC_PERM, 8, 101)); // 16 bytes of info records
        buf.extend(record(24, 3, libc::FAN_Q_OVERFLOW, -1, 0));
        let got: Vec<_> = parse(&buf).collect();
        assert_eq!(got, vec![
            Ok(RawEvent { mask: libc::FAN_OPEN_EXEC_PERM, fd: 7, pid: 100 }),
            Ok(RawEvent { mask: libc::FAN_OPEN_EXEC_PERM, fd: 8, pid: 101 }),
            Ok(RawEvent { mask: libc::FAN_Q_OVERFLOW, fd: -1, pid: 0 }),
        ]);
    }

    #[test]
    fn stops_at_bad_records() {
        let ok = record(24, 3, libc::FAN_OPEN_EXEC_PERM, 7, 1);
        for bad in [record(24, 2, 0, 9, 1), record(16, 3, 0, 9, 1), record(4096, 3, 0, 9, 1)[..24].to_vec(), vec![0u8; 10]] {
            let mut buf = ok.clone();
            buf.extend(&bad);
            buf.extend(&ok);
            let got: Vec<_> = parse(&buf).collect();
            assert_eq!(got.len(), 2, "{got:?}");
            assert!(got[0].is_ok() && got[1].is_err(), "{got:?}");
        }
        assert_eq!(parse(&[]).count(), 0);
    }
}

