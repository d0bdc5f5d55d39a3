//! Hooks before a program's first instruction (issue 17). An exec of a file guard has not
//! analysed as it is now waits here, whoever runs it, until the file's TLS functions are found
//! and probed: a program that makes its one LLM call in its first milliseconds is then seen from
//! that call. The listener asks [`FirstRun::unknown`] for every exec (one fstat, one lookup),
//! so only a file's first exec, and its first after a rewrite, pays for the analysis.
//!
//! The probes are attached by the daemon loop, which owns the kernel handle and tells the engine
//! about a guessed hook before any of its events can arrive; this thread waits for that. The
//! hold is bounded ([`HOLD`]); past it the exec runs and the scan after it attaches late, which
//! `guard_tls_first_exec_total{outcome="late"}` counts.

use std::{
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::Ordering::Relaxed,
        mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tokio::sync::mpsc::UnboundedSender;

use super::{GateError, Shared, fanotify::{Fanotify, PermEvent}, judges, listener, pending::Entry};
use crate::{
    sinks::metrics::first_exec::FirstExecHandles,
    sys::targets::{Scanner, Stamp, TlsTarget},
};

/// How long a file's first exec may wait for its analysis and attach. Codex CLI's 294 MB
/// binary takes about half a second on a laptop core; a loaded CI runner, more.
pub(super) const HOLD: Duration = Duration::from_secs(2);

/// Files waiting for analysis; past it, a first exec runs unheld (and is counted).
const QUEUE: usize = 256;

/// Two threads: a large new binary does not hold up a small one behind it.
const THREADS: usize = 2;

/// A target for the daemon loop to attach now; `done` is answered once it is attached (or
/// failed: the exec then runs, and the retry and blind-spot paths take over).
pub(crate) struct AttachNow {
    pub target: TlsTarget,
    pub done: SyncSender<()>,
}

/// What the daemon gives the gate for the first-exec hold.
pub(crate) struct FirstRunOptions {
    pub scanner: Scanner,
    pub attach: UnboundedSender<AttachNow>,
    pub metrics: FirstExecHandles,
}

pub(super) struct FirstRun {
    scanner: Scanner,
    jobs: SyncSender<Job>,
    pub(super) metrics: FirstExecHandles,
}

pub(super) struct Job {
    id: u64,
    /// A library load (`id` is its key in `Shared::loads`), not an exec's fanotify event.
    load: bool,
    /// A copy of the event's fd: the event's own closes with its answer, maybe by the deadline
    /// thread while this one is still reading the file.
    file: OwnedFd,
    queued: Instant,
}

impl FirstRun {
    /// Starts the analysis threads; `jobs` is where a held exec goes once its hooks are in.
    pub(super) fn start(
        s: &Arc<Shared>,
        opts: FirstRunOptions,
        judge_jobs: &SyncSender<judges::Job>,
        threads: &mut Vec<JoinHandle<()>>,
    ) -> Result<Self, GateError> {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let (s, rx, judge_jobs, attach, scanner) = (s.clone(), rx.clone(), judge_jobs.clone(), opts.attach.clone(), opts.scanner.clone());
            let t = std::thread::Builder::new()
                .name(format!("guard-gate-first-{i}"))
                .spawn(move || run(&s, &rx, &judge_jobs, &attach, &scanner))
                .map_err(|source| GateError::Io { what: "starting a first-exec thread", source })?;
            threads.push(t);
        }
        Ok(Self { scanner: opts.scanner, jobs: tx, metrics: opts.metrics })
    }

    /// Whether the file of this event is new to guard as it is now.
    pub(super) fn unknown(&self, fd: BorrowedFd<'_>) -> bool {
        match stamp(fd) {
            Some(((dev, ino), stamp)) => !self.scanner.knows(dev, ino, stamp),
            None => false,
        }
    }

    /// Holds event `id` for analysis of `file` (a copy of its fd); `false` if it cannot be. The
    /// event must be in the pending set already.
    pub(super) fn hold(&self, id: u64, file: OwnedFd) -> bool {
        self.queue(Job { id, load: false, file, queued: Instant::now() })
    }

    /// Holds library load `id` (in `Shared::loads`) for analysis of `file`; `false` if it cannot be.
    pub(super) fn hold_load(&self, id: u64, file: OwnedFd) -> bool {
        self.queue(Job { id, load: true, file, queued: Instant::now() })
    }

    fn queue(&self, job: Job) -> bool {
        match self.jobs.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Tells the kernel's library-load stop that this file is known.
    pub(super) fn tell_kernel(&self, fd: &OwnedFd) {
        if let Some(((dev, ino), _)) = stamp(fd.as_fd()) {
            self.scanner.tell_kernel((dev, ino));
        }
    }
}

/// The pending entry of a held first exec.
pub(super) fn entry(ev: PermEvent) -> Entry {
    let tid = ev.tid;
    Entry { ev, deadline: Instant::now() + HOLD, tid, enter_ns: 0, in_agent_tree: false, hooks: true }
}

/// (device, inode) and stamp of an open file.
fn stamp(fd: BorrowedFd<'_>) -> Option<((u64, u64), Stamp)> {
    // std has no fstat on a borrowed fd without a dup, and this runs for every exec.
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes one struct stat into `st` and reads nothing else.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    let mtime_ns = i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec);
    Some(((st.st_dev, st.st_ino), Stamp { mtime_ns, size: st.st_size as u64 }))
}

fn run(s: &Shared, rx: &Mutex<Receiver<Job>>, judge_jobs: &SyncSender<judges::Job>, attach: &UnboundedSender<AttachNow>, scanner: &Scanner) {
    let (Some(fan), Ok(execs), Ok(mut stopped)) = (s.fan.as_ref(), judges::open_execs(s.execs_map), judges::open_stopped(s.stopped_map)) else { return };
    // Test builds only: an analysis as slow as this, to test the hold's bound and a SIGKILL mid-hold.
    #[cfg(debug_assertions)]
    let delay = std::env::var("GUARD_FIRST_RUN_TEST_DELAY_MS").ok().and_then(|v| v.parse().ok()).map(Duration::from_millis);
    loop {
        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv_timeout(Duration::from_millis(100));
        match job {
            Ok(job) => {
                #[cfg(debug_assertions)]
                if let Some(d) = delay {
                    std::thread::sleep(d);
                }
                let outcome = prepare(scanner, attach, &job);
                if job.load {
                    loaded(s, &mut stopped, &job, outcome);
                } else {
                    release(s, fan, &execs, judge_jobs, &job, outcome);
                }
            }
            Err(RecvTimeoutError::Timeout) if !s.stop.load(Relaxed) => {}
            Err(_) => return,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Hooked,
    NoHooks,
    /// The loop did not attach within the hold.
    Late,
}

/// Analyses the file and has its probes attached, within what is left of the hold.
fn prepare(scanner: &Scanner, attach: &UnboundedSender<AttachNow>, job: &Job) -> Outcome {
    let fd_path = PathBuf::from(format!("/proc/self/fd/{}", job.file.as_fd().as_raw_fd()));
    let path = std::fs::read_link(&fd_path).map_or_else(|_| fd_path.display().to_string(), |p| p.display().to_string());
    let Some(target) = scanner.consider(&fd_path, &path) else { return Outcome::NoHooks };
    let (done, wait) = sync_channel(1);
    if attach.send(AttachNow { target, done }).is_err() {
        return Outcome::Late;
    }
    match wait.recv_timeout((job.queued + HOLD).saturating_duration_since(Instant::now())) {
        Ok(()) => Outcome::Hooked,
        Err(_) => Outcome::Late,
    }
}

/// Counts the outcome and sends the exec on to the gate's usual path, if the deadline thread
/// has not let it run already.
fn release(
    s: &Shared,
    fan: &Fanotify,
    execs: &aya::maps::HashMap<aya::maps::MapData, u32, guard_common::gate::GateExec>,
    judge_jobs: &SyncSender<judges::Job>,
    job: &Job,
    outcome: Outcome,
) {
    let Some(first) = s.first_run.get() else { return };
    let Some(e) = s.pending.take(job.id) else {
        // The hold ended first: the deadline thread counted it late and let the exec run.
        return;
    };
    first.metrics.hold.observe(job.queued.elapsed().as_secs_f64());
    match outcome {
        Outcome::Hooked => first.metrics.hooked.inc(),
        Outcome::NoHooks => first.metrics.no_hooks.inc(),
        Outcome::Late => first.metrics.late.inc(),
    };
    listener::route(s, fan, execs, judge_jobs, e.ev, job.id, true);
}

/// Counts a library load's outcome and lets its process run, unless the hold ran out first.
fn loaded(s: &Shared, stopped: &mut aya::maps::HashMap<aya::maps::MapData, u32, guard_common::gate::StopEvent>, job: &Job, outcome: Outcome) {
    let Some(first) = s.first_run.get() else { return };
    // Known to the kernel whatever the outcome: a file `consider` skips (not a regular file) is
    // not in the scanner's table, and would stop its every load.
    first.tell_kernel(&job.file);
    let Some(h) = s.loads.take(job.id) else { return };
    let m = &first.metrics.loads;
    match outcome {
        Outcome::Hooked => m.hooked.inc(),
        Outcome::NoHooks => m.no_hooks.inc(),
        Outcome::Late => m.late.inc(),
    };
    super::loads::let_go(stopped, &h);
}

/// The deadline thread's answer to a hold that ran out: the exec runs now. A ticket it has stays
/// pending, so the stop at exec exit still judges it.
pub(super) fn ran_out(s: &Shared, fan: &Fanotify, e: &Entry) {
    // Counted before the answer: once the program has run, a scrape must already see it late.
    if let Some(first) = s.first_run.get() {
        first.metrics.late.inc();
        first.metrics.hold.observe(HOLD.as_secs_f64());
    }
    super::pending::respond(fan, &e.ev, true);
    tracing::warn!(tid = e.tid, hold_ms = HOLD.as_millis() as u64, "a new program ran before guard finished analysing it: its first TLS calls may be missed");
}
