//! Privileged tests of the gate's syscall layer. Each marks only a tmpfs it mounted itself (never
//! `/` or another real filesystem, so a bug cannot wedge the machine), and unmounts it in a Drop
//! guard, so a failing assertion still cleans up. Without root they print a line and pass.

mod caller;
mod fanotify;
mod logic;
mod mounts;

use std::{
    ffi::CString,
    fs,
    io,
    ops::Range,
    os::unix::{ffi::OsStrExt as _, fs::PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::fanotify::{Fanotify, PermEvent};

pub(super) fn is_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("{test}: skipped (needs root)");
    }
    root
}

/// A fresh 16 MiB tmpfs on a temporary directory under /tmp (a short path: see `patch_interp`).
pub(super) struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub(super) fn mount(test: &str) -> Option<Self> {
        if !is_root(test) {
            return None;
        }
        let dir = tempfile::Builder::new().prefix("g").tempdir_in("/tmp").expect("tempdir");
        let target = CString::new(dir.path().as_os_str().as_bytes()).expect("path");
        // SAFETY: all arguments are valid NUL-terminated strings that outlive the call.
        let rc = unsafe { libc::mount(c"tmpfs".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, c"size=16m".as_ptr().cast()) };
        if rc != 0 {
            eprintln!("{test}: skipped (mount tmpfs: {})", io::Error::last_os_error());
            return None;
        }
        Some(Self { dir })
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let Ok(target) = CString::new(self.dir.path().as_os_str().as_bytes()) else { return };
        // Lazy: a child still running from the tmpfs must not leave it mounted. The TempDir then
        // removes the empty directory.
        // SAFETY: `target` is a valid NUL-terminated path for the call.
        if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
            eprintln!("umount {}: {}", self.dir.path().display(), io::Error::last_os_error());
        }
    }
}

pub(super) fn copy_exe(src: &Path, dst: &Path) {
    fs::copy(src, dst).unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dst.display()));
    fs::set_permissions(dst, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The byte range of an x86-64/aarch64 ELF64 file's PT_INTERP string, if it has one.
fn elf_interp(b: &[u8]) -> Option<Range<usize>> {
    if b.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?) as usize);
    let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?) as usize);
    let (phoff, phentsize, phnum) = (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?);
    (0..phnum).map(|i| phoff + i * phentsize).find(|&ph| b.get(ph..ph + 4) == Some(&3u32.to_le_bytes()[..])).and_then(|ph| {
        let (off, len) = (u64_at(ph + 8)?, u64_at(ph + 32)?);
        Some(off..off + len)
    })
}

/// A statically linked binary small enough for the tmpfs that runs harmlessly with `--version`.
pub(super) fn static_binary() -> Option<PathBuf> {
    ["/sbin/ldconfig", "/usr/sbin/ldconfig", "/bin/busybox"].into_iter().map(PathBuf::from).find(|p| {
        fs::read(p).is_ok_and(|b| b.len() < 8 << 20 && b.starts_with(b"\x7fELF") && elf_interp(&b).is_none())
    })
}

/// Copies /bin/true as `dir/tl` with its PT_INTERP rewritten to `dir/ld`, a copy of its dynamic
/// loader, so that both of a dynamic exec's opens hit the test tmpfs. None if /bin/true is not
/// dynamic or the new path does not fit in the old one's bytes.
pub(super) fn patch_interp(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let mut b = fs::read("/bin/true").ok()?;
    let r = elf_interp(&b)?;
    let old = std::str::from_utf8(b[r.clone()].split(|&c| c == 0).next()?).ok()?.to_owned();
    let (bin, ld) = (dir.join("tl"), dir.join("ld"));
    let new = ld.as_os_str().as_bytes();
    if new.len() >= r.len() {
        return None;
    }
    b[r.clone()].fill(0);
    b[r.start..r.start + new.len()].copy_from_slice(new);
    copy_exe(Path::new(&old), &ld);
    fs::write(&bin, &b).expect("write patched binary");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");
    Some((bin, ld))
}

/// Runs `cmd` on a child thread: `(pid, status)`; the spawn returns once the exec is done.
pub(super) fn spawn(mut cmd: Command) -> JoinHandle<io::Result<(u32, ExitStatus)>> {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    std::thread::spawn(move || {
        let mut child = cmd.spawn()?;
        Ok((child.id(), child.wait()?))
    })
}

/// Joins a spawner thread, failing the test instead of hanging past 20 s.
pub(super) fn join(h: JoinHandle<io::Result<(u32, ExitStatus)>>) -> io::Result<(u32, ExitStatus)> {
    let until = Instant::now() + Duration::from_secs(20);
    while !h.is_finished() {
        assert!(Instant::now() < until, "the exec did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
    h.join().expect("spawner thread")
}

/// The events that arrive within `timeout` of the first wait, returned as soon as some are read.
pub(super) fn next_events(fan: &Fanotify, timeout: Duration) -> Vec<PermEvent> {
    let until = Instant::now() + timeout;
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    while out.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || !fan.wait(left).expect("poll") {
            break;
        }
        fan.read(&mut buf, &mut out).expect("read");
    }
    out
}

/// The file an event's fd names.
pub(super) fn fd_path(ev: &PermEvent) -> PathBuf {
    use std::os::fd::AsRawFd as _;
    fs::read_link(format!("/proc/self/fd/{}", ev.fd.as_raw_fd())).expect("readlink event fd")
}
