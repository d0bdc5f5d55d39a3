//! The one thread that reads fanotify events. It never reads /proc and never waits on a judge:
//! an exec outside every agent tree is answered here at once (one map lookup), an exec whose
//! verdict is known (the ld.so or interpreter event of an execve already judged) too, and the
//! rest go to the judges with a deadline.

use std::{
    os::fd::AsFd as _,
    sync::{atomic::Ordering::Relaxed, mpsc::{SyncSender, TrySendError}},
    time::{Duration, Instant},
};

use aya::maps::{HashMap, MapData};
use guard_common::gate::GateExec;
use guard_core::enforce::Decision;

use super::{
    Shared,
    fanotify::{Fanotify, PermEvent},
    first_run,
    judges::{self, Job},
    monotonic_ns,
    pending::{Entry, respond},
    protect, provisional,
};

/// One read takes every event queued, up to this many bytes (~2,700 events).
const READ_BUF: usize = 64 << 10;

pub(super) fn run(s: &Shared, jobs: SyncSender<Job>) {
    let Some(fan) = s.fan.as_ref() else { return };
    let execs = match judges::open_execs(s.execs_map) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "the exec gate cannot read its tickets: every exec is allowed unjudged");
            return;
        }
    };
    let agents = match judges::open_agents(s.agents_map) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::error!(error = %e, "the exec gate cannot read the agents' scope: protected files are not judged");
            None
        }
    };
    let maps = Maps { execs, agents };
    let mut buf = vec![0u8; READ_BUF];
    let mut events = Vec::with_capacity(256);
    let mut next_id = 0u64;
    let polls = match wake::arm(fan) {
        Ok(()) => false,
        Err(e) => {
            tracing::warn!(error = %e, "the exec gate's listener cannot wait in read: it polls every 100 ms");
            true
        }
    };
    while !s.stop.load(Relaxed) {
        if polls {
            match fan.wait(Duration::from_millis(100)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "waiting for fanotify events failed");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        if let Err(e) = fan.read(&mut buf, &mut events) {
            tracing::warn!(error = %e, "reading fanotify events failed");
        }
        s.progress.fetch_add(events.len() as u64 + 1, Relaxed);
        for ev in events.drain(..) {
            next_id += 1;
            on_event(s, fan, &maps, &jobs, ev, next_id);
        }
    }
}

fn on_event(s: &Shared, fan: &Fanotify, maps: &Maps, jobs: &SyncSender<Job>, ev: PermEvent, id: u64) {
    let execs = &maps.execs;
    // Only permission events wait for an answer (the group asks for no other kind).
    if ev.mask & libc::FAN_OPEN_EXEC_PERM == 0 {
        if ev.mask & libc::FAN_OPEN_PERM != 0 {
            match &maps.agents {
                Some(a) => protect::on_open(s, fan, a, ev),
                None => respond(fan, &ev, true),
            }
        }
        return;
    }
    if let Some(first) = s.first_run.get()
        && first.unknown(ev.fd.as_fd())
    {
        // Pending before the job is queued: the analysis may end before this thread goes on.
        let file = ev.fd.try_clone();
        s.pending.insert(id, first_run::entry(ev));
        if file.is_ok_and(|f| first.hold(id, f)) {
            return;
        }
        first.metrics.unheld.inc();
        let Some(e) = s.pending.take(id) else { return };
        return route(s, fan, execs, jobs, e.ev, id, false);
    }
    route(s, fan, execs, jobs, ev, id, false);
}

/// The listener waits in `read` (one syscall per wake-up, no timer); a signal whose handler
/// does nothing, without `SA_RESTART`, ends the wait at stop.
pub(super) mod wake {
    use std::{io, os::unix::thread::JoinHandleExt as _, sync::OnceLock, thread::JoinHandle, time::Duration};

    use super::Fanotify;

    /// A real-time signal glibc leaves to programs; nothing else in guard uses it.
    fn signal() -> libc::c_int {
        libc::SIGRTMIN() + 2
    }

    extern "C" fn nothing(_: libc::c_int) {}

    /// Installs the handler (once per process) and makes the group's reads wait.
    pub(in crate::gate) fn arm(fan: &Fanotify) -> io::Result<()> {
        static HANDLER: OnceLock<Result<(), i32>> = OnceLock::new();
        let installed = HANDLER.get_or_init(|| {
            // SAFETY: an all-zero sigaction is valid; the handler touches no state, so it is
            // async-signal-safe; sigaction only reads the struct.
            let rc = unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = nothing as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&raw mut sa.sa_mask);
                libc::sigaction(signal(), &raw const sa, std::ptr::null_mut())
            };
            if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error().raw_os_error().unwrap_or(0)) }
        });
        installed.map_err(io::Error::from_raw_os_error)?;
        fan.set_blocking()
    }

    /// Signals the listener until it has left its loop, then joins it. `stop` is set first; the
    /// signal is repeated because one sent before the thread enters `read` is lost.
    pub(in crate::gate) fn join(t: JoinHandle<()>) {
        while !t.is_finished() {
            // SAFETY: the thread is not joined yet, so its pthread_t is valid (an exited
            // thread answers ESRCH).
            unsafe { libc::pthread_kill(t.as_pthread_t(), signal()) };
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = t.join();
    }
}

/// The listener's own handles of the gate's maps.
struct Maps {
    execs: HashMap<MapData, u32, GateExec>,
    agents: Option<HashMap<MapData, u32, guard_common::gate::AgentScope>>,
}

/// The gate's path for an exec whose file guard knows: no ticket, allowed at once; a known
/// verdict, reused; else a judge. `held`: it waited for its hooks, and the judge's deadline
/// counts from now rather than from the execve call.
pub(super) fn route(s: &Shared, fan: &Fanotify, execs: &HashMap<MapData, u32, GateExec>, jobs: &SyncSender<Job>, ev: PermEvent, id: u64, held: bool) {
    let Ok(ticket) = execs.get(&ev.tid, 0) else {
        respond(fan, &ev, true);
        s.metrics.out_of_scope.inc();
        return;
    };
    if let Some(d) = s.verdict((ev.tid, ticket.enter_ns)) {
        respond(fan, &ev, d == Decision::Allow);
        return;
    }
    // The deadline counts from the execve call: time already spent in the queue is spent.
    let waited = if held { Duration::ZERO } else { Duration::from_nanos(monotonic_ns().saturating_sub(ticket.enter_ns)) };
    let deadline = Instant::now() + s.judge.config().deadline.saturating_sub(waited);
    let in_agent_tree = provisional::maybe_agent(&s.agents, ticket.slot, ticket.scope_flags, ticket.root);
    let tid = ev.tid;
    s.pending.insert(id, Entry { ev, deadline, tid, enter_ns: ticket.enter_ns, in_agent_tree, hooks: false });
    if let Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) = jobs.try_send(Job { id, tid, ticket }) {
        // No judge free for a thousand events: the fail mode answers, as at a deadline.
        judges::time_out(s, fan, job.id);
    }
}
