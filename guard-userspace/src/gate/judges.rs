//! The judge threads: read the caller's argv and cwd while its exec waits, judge them, answer.
//! And the deadline thread, which answers what the judges did not in time and proves to the
//! watchdog that guard is alive.

use std::{
    path::Path,
    sync::{Arc, Mutex, atomic::Ordering::Relaxed, mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel}},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use aya::maps::{Array, HashMap, Map, MapData, MapError};
use guard_common::gate::{CTL_BEAT_MS, GateExec, TICKET_SEEN};
use guard_core::enforce::{Decision, ExecRequest, GateRecord, Mechanism, Verdict};

use super::{
    GateError, Shared,
    caller::{ReadCaps, read_caller},
    fanotify::Fanotify,
    monotonic_ns, notify, provisional,
    pending::Entry,
    watchdog::Heartbeat,
};

/// Events waiting for a judge; past it, the fail mode answers at once.
const JOBS_CAP: usize = 1024;
const JUDGES: usize = 2;

pub(super) struct Job {
    pub id: u64,
    pub tid: u32,
    pub ticket: GateExec,
}

/// A handle of its own on the kernel's ticket map (handles are not shared across threads).
pub(super) fn open_execs(id: u32) -> Result<HashMap<MapData, u32, GateExec>, MapError> {
    HashMap::try_from(Map::HashMap(MapData::from_id(id)?))
}

pub(super) fn open_agents(id: u32) -> Result<HashMap<MapData, u32, guard_common::gate::AgentScope>, MapError> {
    HashMap::try_from(Map::HashMap(MapData::from_id(id)?))
}

pub(super) fn open_stopped(id: u32) -> Result<HashMap<MapData, u32, guard_common::gate::StopEvent>, MapError> {
    HashMap::try_from(Map::HashMap(MapData::from_id(id)?))
}

fn open_ctl(id: u32) -> Result<Array<MapData, u32>, MapError> {
    Array::try_from(Map::Array(MapData::from_id(id)?))
}

pub(super) fn start(s: &Arc<Shared>, threads: &mut Vec<JoinHandle<()>>) -> Result<SyncSender<Job>, GateError> {
    let (tx, rx) = sync_channel::<Job>(JOBS_CAP);
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..JUDGES {
        let (s, rx) = (s.clone(), rx.clone());
        let t = std::thread::Builder::new()
            .name(format!("guard-gate-judge-{i}"))
            .spawn(move || run(&s, &rx))
            .map_err(|source| GateError::Io { what: "starting a judge thread", source })?;
        threads.push(t);
    }
    Ok(tx)
}

fn run(s: &Shared, rx: &Mutex<Receiver<Job>>) {
    let (Some(fan), Ok(mut execs)) = (s.fan.as_ref(), open_execs(s.execs_map)) else { return };
    loop {
        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv_timeout(Duration::from_millis(100));
        match job {
            Ok(job) => judge(s, fan, &mut execs, &job),
            Err(RecvTimeoutError::Timeout) if !s.stop.load(Relaxed) => {}
            Err(_) => return,
        }
    }
}

fn judge(s: &Shared, fan: &Fanotify, execs: &mut HashMap<MapData, u32, GateExec>, job: &Job) {
    #[cfg(debug_assertions)]
    if let Some(d) = s.test_delay {
        std::thread::sleep(d);
    }
    let t = &job.ticket;
    let caller = read_caller(Path::new("/proc"), job.tid, &ReadCaps::default());
    let (verdict, argv, cwd) = match caller {
        Ok(c) => {
            let req = ExecRequest {
                pid: job.ticket.tgid,
                tid: job.tid,
                uid: Some(job.ticket.uid),
                in_agent_tree: t.slot != 0,
                argv: &c.argv,
                argv_complete: c.argv_complete,
                cwd: c.cwd.as_deref(),
                mechanism: Mechanism::Fanotify,
            };
            (s.judge.judge(&req), c.argv, c.cwd.map(|p| p.display().to_string()))
        }
        Err(e) => {
            tracing::debug!(error = %e, tid = job.tid, "the caller's argv could not be read: the fail mode answers");
            let maybe_agent = provisional::maybe_agent(&s.agents, t.slot, t.scope_flags, t.root);
            (Verdict { decision: s.judge.on_timeout(maybe_agent), matches: Vec::new() }, Vec::new(), None)
        }
    };
    // A provisional tree's refusal waits for the engine, leaving the deadline thread some room.
    let left = s.judge.config().deadline.saturating_sub(Duration::from_nanos(monotonic_ns().saturating_sub(t.enter_ns)));
    let (verdict, slot) = provisional::settle(&s.agents, verdict, t.slot, t.scope_flags, t.root, Instant::now() + left * 3 / 4);
    let mut verdict = verdict;
    let in_agent_tree = provisional::maybe_agent(&s.agents, slot, t.scope_flags, t.root);
    seen(execs, job.tid, &job.ticket);
    s.remember((job.tid, job.ticket.enter_ns), verdict.decision);
    let answered = s.pending.answer(fan, job.id, verdict.decision == Decision::Allow).is_some();
    let latency_ns = monotonic_ns().saturating_sub(job.ticket.enter_ns);
    if answered {
        s.count(verdict.decision, 0);
        s.metrics.latency.observe(latency_ns as f64 / 1e9);
    } else {
        // The deadline answered first; what the judge found is still worth the audit log.
        let given = s.judge.on_timeout(in_agent_tree);
        verdict = super::stops::as_given(verdict, given);
    }
    if verdict.decision == Decision::Deny || !verdict.matches.is_empty() || !answered {
        s.record(GateRecord {
            ts_ns: job.ticket.enter_ns,
            pid: job.ticket.tgid,
            tid: job.tid,
            uid: Some(job.ticket.uid),
            agent: s.agents.name(slot).map(|a| a.to_string()),
            cwd,
            argv,
            mechanism: Mechanism::Fanotify,
            decision: verdict.decision,
            matches: verdict.matches,
            timed_out: !answered,
            latency_ns,
            request: None,
        });
    }
}

/// Tells the kernel a fanotify answer covered this exec, so it is not stopped at exit too.
fn seen(execs: &mut HashMap<MapData, u32, GateExec>, tid: u32, ticket: &GateExec) {
    let t = GateExec { state: TICKET_SEEN, ..*ticket };
    // BPF_EXIST: if the exec already ended, do not leave a ticket behind.
    let _ = execs.insert(tid, t, 2);
}

/// Answers entry `id` by the fail mode: no judge was free. Its ticket stays pending, so the stop
/// at exec exit judges it after all.
pub(super) fn time_out(s: &Shared, fan: &Fanotify, id: u64) {
    if let Some(e) = s.pending.take(id) {
        fail_answer(s, fan, &e);
    }
}

/// Answers by `enforce.fail`, and counts it as a timeout. The caller marks the ticket seen
/// first, if it should be: the exec may reach its exit as soon as the answer is written.
fn fail_answer(s: &Shared, fan: &Fanotify, e: &Entry) -> Decision {
    let given = s.judge.on_timeout(e.in_agent_tree);
    super::pending::respond(fan, &e.ev, given == Decision::Allow);
    s.remember((e.tid, e.enter_ns), given);
    s.metrics.timeouts.inc();
    s.count(given, 0);
    s.metrics.latency.observe(monotonic_ns().saturating_sub(e.enter_ns) as f64 / 1e9);
    given
}

/// The deadline thread. Also the heartbeat: it stops when guard is stopped or starved, and the
/// watchdog then kills guard so the kernel allows what is pending.
pub(super) fn deadline(s: &Shared, beat: Heartbeat) {
    let d = s.judge.config().deadline;
    let mut execs = s.fan.as_ref().and_then(|_| open_execs(s.execs_map).ok());
    let mut ctl = open_ctl(s.ctl_map).ok();
    let mut last_beat = Instant::now();
    beat.beat();
    let mut stuck = Stuck::default();
    let mut last_warn: Option<Instant> = None;
    let mut timeouts_since_warn = 0u64;
    while !s.stop_deadline.load(Relaxed) {
        let now = Instant::now();
        if let (Some(fan), Some(execs)) = (s.fan.as_ref(), execs.as_mut()) {
            for (_, e) in s.pending.expired(now, d / 4) {
                if e.hooks {
                    super::first_run::ran_out(s, fan, &e);
                    continue;
                }
                seen_by_key(execs, e.tid, e.enter_ns);
                fail_answer(s, fan, &e);
                timeouts_since_warn += 1;
            }
            if timeouts_since_warn > 0 && last_warn.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                tracing::warn!(count = timeouts_since_warn, deadline_ms = d.as_millis() as u64, "exec gate: no verdict within the deadline, answered by enforce.fail");
                (last_warn, timeouts_since_warn) = (Some(now), 0);
            }
            stuck.check(s, fan, now, d);
        } else {
            std::thread::sleep(d / 4);
        }
        if now.duration_since(last_beat) >= d / 4 {
            if now.duration_since(last_beat) > d {
                tracing::warn!(late_ms = now.duration_since(last_beat).as_millis() as u64, "exec gate heartbeat late");
            }
            beat.beat();
            if let Some(ctl) = ctl.as_mut() {
                let _ = ctl.set(CTL_BEAT_MS, super::beat_ms(), 0);
            }
            notify::watchdog();
            last_beat = now;
        }
    }
}

fn seen_by_key(execs: &mut HashMap<MapData, u32, GateExec>, tid: u32, enter_ns: u64) {
    if let Ok(t) = execs.get(&tid, 0)
        && t.enter_ns == enter_ns
    {
        seen(execs, tid, &t);
    }
}

/// A listener that stops reading leaves events queued where no deadline sees them: guard then
/// kills itself, and the kernel allows them (fapolicyd's "deadman's switch" does the same).
#[derive(Default)]
struct Stuck {
    since: Option<(Instant, u64)>,
}

impl Stuck {
    fn check(&mut self, s: &Shared, fan: &Fanotify, now: Instant, d: Duration) {
        let progress = s.progress.load(Relaxed);
        if !fan.has_queued() {
            self.since = None;
            return;
        }
        match self.since {
            Some((t, p)) if p == progress && now.duration_since(t) > d * 2 => {
                tracing::error!("the exec gate's listener has stopped reading: guard kills itself so the kernel allows the waiting execs");
                // SAFETY: no preconditions.
                unsafe { libc::raise(libc::SIGKILL) };
            }
            Some((_, p)) if p == progress => {}
            _ => self.since = Some((now, progress)),
        }
    }
}
