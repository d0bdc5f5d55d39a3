//! The watchdog: a separate process, because a thread of guard stops when guard is stopped.
//! guard's deadline thread writes a heartbeat byte to a pipe every quarter deadline; when none
//! comes for twice the deadline (guard stopped, starved or wedged), the watchdog SIGKILLs guard,
//! and the kernel answers ALLOW to every exec guard had pending. From then on (and whenever guard
//! died some other way, SIGKILL included) it lets go at every tick what the gate had stopped,
//! until guard has exited for good; then it removes the registry's pin and exits.

use super::release::{after_comm, pidfd_open};
use std::{
    io::{self, Read as _},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    process::{Child, Command, ExitCode, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

pub(crate) struct Watchdog {
    child: Child,
    beat: Heartbeat,
}

/// The write end of the heartbeat pipe (non-blocking: a full pipe already says "alive").
#[derive(Clone)]
pub(crate) struct Heartbeat(Option<Arc<OwnedFd>>);

impl Heartbeat {
    pub(crate) fn beat(&self) {
        self.send(BEAT);
    }

    fn send(&self, byte: u8) {
        if let Some(fd) = &self.0 {
            // SAFETY: writes one byte from a valid buffer to an fd we own.
            unsafe { libc::write(fd.as_raw_fd(), [byte].as_ptr().cast(), 1) };
        }
    }
}

impl Watchdog {
    /// Spawns `guard gate watchdog`: before the gate arms, as guard never execs while armed.
    pub(crate) fn spawn(timeout: Duration) -> io::Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two fds into the array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh fds that nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on an fd we own.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        let child = Command::new("/proc/self/exe")
            .args(["gate", "watchdog", "--pid", &std::process::id().to_string(), "--heartbeat-fd", "0"])
            .args(["--timeout-ms", &timeout.as_millis().to_string()])
            // The read end becomes the watchdog's stdin, the only fd it inherits.
            .stdin(Stdio::from(read))
            .stdout(Stdio::null())
            .spawn()?;
        Ok(Self { child, beat: Heartbeat(Some(Arc::new(write))) })
    }

    pub(crate) fn heartbeat(&self) -> Heartbeat {
        self.beat.clone()
    }
}

impl Drop for Watchdog {
    /// The pipe closes when the last heartbeat handle goes; the watchdog then exits on its own.
    fn drop(&mut self) {
        // A clean stop: the gate stops nothing any more, so the watchdog need not outlive guard.
        self.beat.send(BYE);
        self.beat.0 = None;
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each thread of guard as `name:state:wchan`, for the log line that says why it was killed.
fn threads(pid: u32) -> String {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return String::new() };
    let mut out = Vec::new();
    for t in dir.flatten() {
        let p = t.path();
        let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
        let stat = read("stat");
        let state = after_comm(&stat).and_then(|r| r.split_whitespace().next()).unwrap_or_default();
        out.push(format!("{}:{}:{}", read("comm").trim(), state, read("wchan").trim()));
    }
    out.join(" ")
}

/// `guard gate watchdog`: the process side.
pub(crate) fn main(pid: u32, fd: i32, timeout: Duration) -> anyhow::Result<ExitCode> {
    // SAFETY: the fd was handed to this process to own (its stdin).
    let pipe = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(pipe);
    // Readable once guard has exited for good: its programs are detached only by then, and they
    // can stop an exec until then. The pipe closes earlier in guard's exit.
    let gone = pidfd_open(pid)?;
    let mut buf = [0u8; 256];
    let mut last_beat = Instant::now();
    let (mut killed, mut pipe_open, mut released) = (false, true, 0);
    let mut registry = super::release::pinned();
    loop {
        let mut fds = [
            libc::pollfd { fd: gone.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: if pipe_open { file.as_raw_fd() } else { -1 }, events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: two valid pollfds (a negative fd is ignored by poll).
        unsafe { libc::poll(fds.as_mut_ptr(), 2, TICK_MS) };
        if fds[0].revents != 0 {
            break;
        }
        if fds[1].revents != 0 {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => pipe_open = false,
                Ok(n) if buf[..n].contains(&BYE) => break,
                Ok(_) => last_beat = Instant::now(),
            }
            continue;
        }
        let silent = last_beat.elapsed() >= timeout;
        if silent && pipe_open && !killed && !exiting(pid) && is_parent(pid) {
            tracing::error!(pid, timeout_ms = timeout.as_millis() as u64, threads = %threads(pid), "guard sent no heartbeat: killing it, so the kernel allows the execs it holds");
            // SAFETY: signals our parent, checked above to be guard.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            killed = true;
        }
        if let Some(map) = registry.as_mut() {
            released += if silent {
                // Killed above, or dying: an exit that detaches many probes takes seconds, and
                // what guard had stopped (a library load it was analysing too) waits for none
                // of it. Its programs stop nothing new once the heartbeat is stale.
                super::release::release_unanswered(map)
            } else {
                // A stop guard did not answer in time waits no longer than any exec may wait.
                super::release::release_stale(map, super::monotonic_ns(), timeout)
            };
        }
    }
    released += super::release::release_all(false);
    if released > 0 {
        tracing::warn!(processes = released, "guard is gone: let go the execs its gate had stopped");
    }
    // Nothing can be stopped any more: guard is gone (its programs detached with it), or it
    // stops cleanly and switched every stop off before it said BYE. Nothing is left either.
    if let Some(id) = registry.as_ref().and_then(registry_id) {
        super::release::unpin(id);
    }
    Ok(ExitCode::SUCCESS)
}

/// The registry's map id: [`super::release::unpin`] removes the pin only if it is still ours.
fn registry_id(map: &aya::maps::HashMap<aya::maps::MapData, u32, guard_common::gate::StopEvent>) -> Option<u32> {
    use aya::maps::IterableMap as _;
    map.map().info().ok().map(|i| i.id())
}

/// Heartbeat bytes: alive, and a clean stop.
const BEAT: u8 = 1;
const BYE: u8 = 0xff;

/// How often the watchdog looks at guard when no heartbeat comes.
const TICK_MS: i32 = 20;

fn is_parent(pid: u32) -> bool {
    // SAFETY: no preconditions.
    (unsafe { libc::getppid() }) as u32 == pid
}

/// Guard is exiting once its main thread is a zombie (other threads may still be finishing).
fn exiting(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|st| after_comm(&st).is_some_and(|r| r.starts_with('Z')))
}
