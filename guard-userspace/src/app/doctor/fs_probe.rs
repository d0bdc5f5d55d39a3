//! The exec gate's production path, proven on a filesystem of the doctor's own: a forked child
//! unshares a private mount namespace, mounts a tmpfs there, copies `true` into it, marks the
//! tmpfs's superblock for `FAN_OPEN_EXEC_PERM` (`FAN_MARK_FILESYSTEM`, as `guard run` marks every
//! exec-capable filesystem), and execs the copy from a grandchild twice: answered DENY (expect
//! EPERM), then ALLOW (expect exit 0).
//!
//! Nothing outside the child changes: `/` is made rprivate before the mount, so the tmpfs (mounted
//! over `/tmp` in the child's namespace only) never propagates, and the mark is placed on a
//! directory fd that was checked to be the new tmpfs. The namespace, the mount and the mark die
//! with the child. Every wait is bounded, and the kernel answers ALLOW to whatever is pending when
//! the fanotify fd closes.

use std::{
    ffi::{CStr, CString},
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::{Duration, Instant},
};

/// What the child found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Denied exec: EPERM; allowed exec: exit 0.
    Works,
    /// The private mount was refused (no CAP_SYS_ADMIN over the mount namespace, a pod, seccomp):
    /// superblock marks could not be tried here.
    NoMount(String),
    /// The mount worked, the gate's path did not (the reason).
    Broken(String),
}

impl Outcome {
    /// One line, the child's message to the doctor.
    pub(crate) fn encode(&self) -> String {
        match self {
            Self::Works => "works".to_owned(),
            Self::NoMount(why) => format!("nomount {}", why.replace('\n', " ")),
            Self::Broken(why) => format!("broken {}", why.replace('\n', " ")),
        }
    }

    /// The inverse of [`Self::encode`]; anything else is a broken probe.
    pub(crate) fn decode(line: &str) -> Self {
        let line = line.trim_end();
        if line == "works" {
            return Self::Works;
        }
        match line.split_once(' ') {
            Some(("nomount", why)) => Self::NoMount(why.to_owned()),
            Some(("broken", why)) => Self::Broken(why.to_owned()),
            _ if line.is_empty() => Self::Broken("the probe process reported nothing".to_owned()),
            _ => Self::Broken(format!("unexpected report from the probe process: {line:?}")),
        }
    }
}

/// How long the whole probe may take before the child is killed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one exec of the copy may take (its event, then its exit).
const EXEC_TIMEOUT: Duration = Duration::from_secs(3);
/// Where the tmpfs is mounted, in the child's private namespace only.
const MOUNT_AT: &CStr = c"/tmp";

fn errno() -> io::Error {
    io::Error::last_os_error()
}

/// Runs the probe in a forked child and returns what it found. The caller must be
/// single-threaded (checked: a forked child of a multi-threaded process may only call
/// async-signal-safe functions, and the probe allocates); `Err` says why it was not run.
pub(crate) fn run() -> Result<Outcome, String> {
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse::<u32>().ok()));
    if threads != Some(1) {
        return Err(format!("the doctor is not single-threaded ({threads:?} threads), so it does not fork"));
    }
    // SAFETY: this process is single-threaded (checked above), so the child may allocate.
    unsafe { run_forked() }
}

/// Forks, runs [`child`] in the child and reads its one-line report through a pipe.
///
/// # Safety
/// The caller must be single-threaded, or accept that the child may deadlock on a lock another
/// thread held at fork (the wait is bounded and the child is then killed).
pub(crate) unsafe fn run_forked() -> Result<Outcome, String> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", errno()));
    }
    // SAFETY: both descriptors are new and owned here.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: see the function's contract.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", errno()));
    }
    if pid == 0 {
        drop(rd);
        // SAFETY: a plain prctl: the probe dies with the doctor, whatever happens to it.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        let line = std::panic::catch_unwind(child).unwrap_or_else(|_| Outcome::Broken("the probe panicked".into())).encode() + "\n";
        // SAFETY: wr is open; the buffer is valid for its length. The child never returns into
        // the doctor: _exit skips atexit handlers and stdio buffers inherited from the parent.
        unsafe {
            libc::write(wr.as_raw_fd(), line.as_ptr().cast(), line.len());
            libc::_exit(0)
        }
    }
    drop(wr);
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !readable(&rd, left) {
            kill_and_reap(pid);
            return Err(format!("the probe process did not answer within {}s and was killed", PROBE_TIMEOUT.as_secs()));
        }
        // SAFETY: rd is open; buf is valid for its length.
        let n = unsafe { libc::read(rd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => break,
            n if n > 0 => out.extend_from_slice(&buf[..n as usize]),
            _ if errno().kind() == io::ErrorKind::Interrupted => {}
            _ => {
                kill_and_reap(pid);
                return Err(format!("reading the probe's report: {}", errno()));
            }
        }
    }
    reap(pid, deadline);
    Ok(Outcome::decode(&String::from_utf8_lossy(&out)))
}

/// Whether `fd` becomes readable (or hung up) within `wait`.
fn readable(fd: &OwnedFd, wait: Duration) -> bool {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = i32::try_from(wait.as_millis().max(1)).unwrap_or(i32::MAX);
    // SAFETY: p is one valid pollfd.
    unsafe { libc::poll(&raw mut p, 1, ms) > 0 }
}

fn kill_and_reap(pid: libc::pid_t) {
    // SAFETY: pid is our own child, not yet reaped.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// Waits for our child until `deadline`, then kills it. Its exit status, when it exited.
fn reap(pid: libc::pid_t, deadline: Instant) -> Option<libc::c_int> {
    loop {
        let mut status = 0;
        // SAFETY: pid is our own child; status is a valid int.
        let r = unsafe { libc::waitpid(pid, &raw mut status, libc::WNOHANG) };
        if r == pid {
            return Some(status);
        }
        if r < 0 && errno().kind() != io::ErrorKind::Interrupted {
            return None;
        }
        if Instant::now() >= deadline {
            kill_and_reap(pid);
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The probe proper, in the single-threaded child.
fn child() -> Outcome {
    match steps() {
        Ok(o) | Err(o) => o,
    }
}

fn steps() -> Result<Outcome, Outcome> {
    let no_mount = |what: &str| Outcome::NoMount(format!("{what}: {}", errno()));
    let broken = |what: &str| Outcome::Broken(format!("{what}: {}", errno()));
    // SAFETY: plain syscalls with constant flags and NUL-terminated strings.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(no_mount("unshare(CLONE_NEWNS)"));
        }
        // From here on, mounts are this process's own and propagate nowhere.
        if libc::mount(c"none".as_ptr(), c"/".as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) != 0 {
            return Err(no_mount("making / rprivate"));
        }
    }
    let before = stat_path(MOUNT_AT).map_err(|e| Outcome::Broken(format!("stat {}: {e}", MOUNT_AT.to_string_lossy())))?;
    // SAFETY: as above.
    let rc = unsafe {
        libc::mount(c"tmpfs".as_ptr(), MOUNT_AT.as_ptr(), c"tmpfs".as_ptr(), libc::MS_NOSUID | libc::MS_NODEV, c"size=16m,mode=0700".as_ptr().cast())
    };
    if rc != 0 {
        return Err(no_mount("mounting a tmpfs"));
    }
    // SAFETY: a NUL-terminated path; the fd is owned right after.
    let dir = unsafe { libc::open(MOUNT_AT.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if dir < 0 {
        return Err(broken("opening the tmpfs"));
    }
    // SAFETY: a new descriptor nothing else owns.
    let dir = unsafe { OwnedFd::from_raw_fd(dir) };
    // Never mark anything but the tmpfs just mounted.
    let (st, sfs) = stat_fd(&dir).map_err(|e| Outcome::Broken(format!("stat of the tmpfs: {e}")))?;
    if sfs.f_type != libc::TMPFS_MAGIC || st.st_dev == before.st_dev {
        return Err(Outcome::Broken("the mount point is not the new tmpfs; nothing was marked".into()));
    }
    let source = ["/bin/true", "/usr/bin/true"].into_iter().find(|p| std::path::Path::new(p).is_file()).ok_or_else(|| Outcome::Broken("no /bin/true to copy".into()))?;
    let copy = format!("{}/true", MOUNT_AT.to_string_lossy());
    std::fs::copy(source, &copy).map_err(|e| Outcome::Broken(format!("copying {source}: {e}")))?;
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).map_err(|e| Outcome::Broken(format!("chmod {copy}: {e}")))?;
    let copy = CString::new(copy).map_err(|e| Outcome::Broken(e.to_string()))?;

    // SAFETY: plain syscall with constant flags; the fd is owned right after.
    let fan = unsafe {
        libc::fanotify_init(
            libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_UNLIMITED_QUEUE | libc::FAN_REPORT_TID,
            (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as libc::c_uint,
        )
    };
    if fan < 0 {
        return Err(broken("fanotify_init(FAN_CLASS_CONTENT | FAN_UNLIMITED_QUEUE | FAN_REPORT_TID)"));
    }
    // SAFETY: a new descriptor nothing else owns.
    let fan = unsafe { OwnedFd::from_raw_fd(fan) };
    // SAFETY: both fds are open; a NULL path marks the object `dir` names (the tmpfs checked above).
    let rc = unsafe {
        libc::fanotify_mark(fan.as_raw_fd(), libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM, libc::FAN_OPEN_EXEC_PERM, dir.as_raw_fd(), std::ptr::null())
    };
    if rc != 0 {
        return Err(broken("fanotify_mark(FAN_MARK_FILESYSTEM, FAN_OPEN_EXEC_PERM) on the tmpfs"));
    }
    let denied = exec_once(&fan, &copy, libc::FAN_DENY)?;
    let allowed = exec_once(&fan, &copy, libc::FAN_ALLOW)?;
    match (denied, allowed) {
        (Exec::Failed(libc::EPERM), Exec::Exited(0)) => Ok(Outcome::Works),
        (d, a) => Err(Outcome::Broken(format!("expected EPERM when denied and exit 0 when allowed; got {} and {}", d.describe(), a.describe()))),
    }
}

fn stat_path(p: &CStr) -> io::Result<libc::stat> {
    // SAFETY: a zeroed stat is a valid out-buffer; p is NUL-terminated.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::stat(p.as_ptr(), &raw mut st) != 0 {
            return Err(errno());
        }
        Ok(st)
    }
}

fn stat_fd(fd: &OwnedFd) -> io::Result<(libc::stat, libc::statfs)> {
    // SAFETY: zeroed structs are valid out-buffers; fd is open.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        let mut sfs: libc::statfs = std::mem::zeroed();
        if libc::fstat(fd.as_raw_fd(), &raw mut st) != 0 || libc::fstatfs(fd.as_raw_fd(), &raw mut sfs) != 0 {
            return Err(errno());
        }
        Ok((st, sfs))
    }
}

/// How one exec of the copy ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exec {
    /// execve failed with this errno (the grandchild exits with it).
    Failed(i32),
    /// The program ran and exited with this status.
    Exited(i32),
    Signalled(i32),
    /// No permission event came for it.
    NoEvent,
    TimedOut,
}

impl Exec {
    fn describe(self) -> String {
        match self {
            Self::Failed(e) => format!("execve error {}", io::Error::from_raw_os_error(e)),
            Self::Exited(c) => format!("exit {c}"),
            Self::Signalled(s) => format!("killed by signal {s}"),
            Self::NoEvent => "no permission event".into(),
            Self::TimedOut => "no exit in time".into(),
        }
    }
}

/// Execs `prog` from a grandchild and answers its permission event with `answer`.
fn exec_once(fan: &OwnedFd, prog: &CStr, answer: u32) -> Result<Exec, Outcome> {
    let argv = [prog.as_ptr(), std::ptr::null()];
    // A pipe tells an execve failure from the program's own exit: CLOEXEC closes it on success,
    // and the grandchild writes its errno into it on failure.
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Outcome::Broken(format!("pipe: {}", errno())));
    }
    // SAFETY: both descriptors are new and owned here.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: this process is single-threaded (unshare(CLONE_NEWNS) succeeded, which the kernel
    // refuses to a process that shares its filesystem context with threads); the grandchild
    // calls only execv, write and _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Outcome::Broken(format!("fork: {}", errno())));
    }
    if pid == 0 {
        // SAFETY: async-signal-safe calls with valid arguments; never returns. The grandchild
        // closes its copy of the fanotify fd (a group kept alive by the very task waiting on
        // it would never answer) and dies with the probe.
        unsafe {
            libc::close(fan.as_raw_fd());
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            libc::execv(prog.as_ptr(), argv.as_ptr());
            let e: i32 = *libc::__errno_location();
            libc::write(wr.as_raw_fd(), (&raw const e).cast(), 4);
            libc::_exit(127)
        }
    }
    drop(wr);
    let deadline = Instant::now() + EXEC_TIMEOUT;
    let answered = answer_event(fan, pid, answer, deadline);
    let status = reap(pid, deadline + EXEC_TIMEOUT);
    let mut e = [0u8; 4];
    // SAFETY: rd is open; e is valid for 4 bytes. The writer is gone (exec'd or exited).
    let n = unsafe { libc::read(rd.as_raw_fd(), e.as_mut_ptr().cast(), 4) };
    if !answered {
        return Ok(Exec::NoEvent);
    }
    Ok(match status {
        _ if n == 4 => Exec::Failed(i32::from_ne_bytes(e)),
        Some(s) if libc::WIFEXITED(s) => Exec::Exited(libc::WEXITSTATUS(s)),
        Some(s) if libc::WIFSIGNALED(s) => Exec::Signalled(libc::WTERMSIG(s)),
        _ => Exec::TimedOut,
    })
}

/// Reads events until `pid`'s exec-permission event comes, and answers it with `answer`; any
/// other event is allowed. Whether `pid`'s event came before `deadline`.
fn answer_event(fan: &OwnedFd, pid: libc::pid_t, answer: u32, deadline: Instant) -> bool {
    // u64s: fanotify_event_metadata is 8-byte aligned.
    let mut buf = [0u64; 512];
    let meta_len = std::mem::size_of::<libc::fanotify_event_metadata>();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !readable(fan, left) {
            return false;
        }
        // SAFETY: fan is open; buf is valid for its byte length.
        let n = unsafe { libc::read(fan.as_raw_fd(), buf.as_mut_ptr().cast(), std::mem::size_of_val(&buf)) };
        if n <= 0 {
            continue;
        }
        let n = n as usize;
        let mut off = 0;
        let mut found = false;
        while off + meta_len <= n {
            // SAFETY: off + meta_len is within the n bytes read; read_unaligned copes with any offset.
            let m: libc::fanotify_event_metadata = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<u8>().add(off).cast()) };
            if m.vers != libc::FANOTIFY_METADATA_VERSION || (m.event_len as usize) < meta_len {
                return found;
            }
            off += m.event_len as usize;
            if m.fd < 0 {
                continue;
            }
            let mine = m.pid == pid && m.mask & libc::FAN_OPEN_EXEC_PERM != 0;
            let response = libc::fanotify_response { fd: m.fd, response: if mine { answer } else { libc::FAN_ALLOW } };
            // SAFETY: fan is open; response is a valid struct; m.fd is the event's fd, ours to close.
            unsafe {
                libc::write(fan.as_raw_fd(), (&raw const response).cast(), std::mem::size_of_val(&response));
                libc::close(m.fd);
            }
            found |= mine;
        }
        if found {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_survive_the_pipe() {
        for o in [Outcome::Works, Outcome::NoMount("mounting a tmpfs: EPERM".into()), Outcome::Broken("x y".into())] {
            assert_eq!(Outcome::decode(&(o.encode() + "\n")), o);
        }
        assert_eq!(Outcome::decode("nomount a\nb"), Outcome::NoMount("a\nb".into()));
        assert!(matches!(Outcome::decode(""), Outcome::Broken(_)));
        assert!(matches!(Outcome::decode("running 0 tests"), Outcome::Broken(_)));
    }

    /// The real thing: a private mount namespace, a tmpfs, a superblock mark, two execs. Needs
    /// root; it marks only the child's own tmpfs.
    #[test]
    fn the_superblock_probe_denies_then_allows() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("\n*** SKIPPED: the fanotify superblock probe needs root ***\n");
            return;
        }
        // SAFETY: the test runner is multi-threaded; the child only allocates and makes syscalls,
        // and run_forked kills it if a lock held at fork ever blocks it.
        let outcome = unsafe { run_forked() }.expect("the probe process");
        match outcome {
            Outcome::Works => {}
            // A container without the right to mount: the fallback's case, not a failure.
            Outcome::NoMount(why) => eprintln!("\n*** SKIPPED: no private mount here ({why}) ***\n"),
            Outcome::Broken(why) => panic!("{why}"),
        }
    }
}
