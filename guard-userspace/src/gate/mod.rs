//! The exec gate (issue 16, docs/enforce.md): each exec of an agent's process tree waits until it
//! is judged, and the destructive ones are refused.
//!
//! The kernel keeps the agent scope and a ticket per in-scope exec (guard-ebpf `gate.rs`).
//! fanotify hands every exec's open to [`listener`], which allows an exec without a ticket at
//! once; [`judges`] read the caller's exact argv and answer the others; [`pending`] makes sure
//! each gets one answer within the deadline. An in-scope exec no fanotify answer covered is
//! stopped before its first instruction and judged by [`stops`]. A [`watchdog`] process kills
//! guard if it stops answering, and the kernel then allows everything pending. Decisions go to
//! the daemon loop through a bounded channel: nothing here waits on audit, logs or metrics.

pub(crate) mod caller;
pub(crate) mod fanotify;
pub(crate) mod first_run;
mod judges;
mod listener;
mod loads;
pub(crate) mod mounts;
pub(crate) mod notify;
mod pending;
pub(crate) mod places;
mod paused;
mod protect;
pub(super) mod provisional;
pub(crate) mod release;
pub(super) mod scope;
pub(super) mod stops;
pub(crate) mod watchdog;

#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use guard_common::gate::{CTL_BEAT_MS, CTL_DELETE_KILL, CTL_DELETE_ON, CTL_LOAD_STOP, CTL_ON, CTL_REQ_PAUSE, CTL_SCOPE_ALL, CTL_STALE_MS, CTL_STOP};
use guard_core::{
    engine::Outputs,
    pipeline::Output,
    protocols::Role,
    requests::RequestRuleSet,
    enforce::{Decision, GateRecord, Judge, Mode, Scope},
};
use tokio::sync::mpsc;

use self::{fanotify::Fanotify, pending::Pending, scope::{Agents, Marks}};
use crate::{kernel::Kernel, sinks::metrics::enforce::EnforceHandles};

#[derive(Debug, thiserror::Error)]
pub(crate) enum GateError {
    #[error(transparent)]
    Load(#[from] crate::kernel::LoadError),
    #[error("exec gate map {map}: {source}")]
    Map { map: &'static str, source: aya::maps::MapError },
    #[error("exec gate: {what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
}

pub(crate) struct GateOptions {
    /// The fanotify group, made by [`early_fanotify`] before anything else opens files.
    pub fan: std::io::Result<Fanotify>,
    pub judge: Judge,
    /// Filesystems to mark, by a path on each; empty: every one that can hold programs.
    pub marks: Vec<PathBuf>,
    pub metrics: EnforceHandles,
    /// Hold each file's first exec until its TLS hooks are attached.
    pub first_run: Option<first_run::FirstRunOptions>,
    /// Watch agents' deletions (and kill in a protected place in enforce mode).
    pub deletions: bool,
    /// The request rules: in enforce mode (and with rules), agents' descendants' requests that
    /// may change something are paused at their TLS write and judged (`paused`).
    pub requests: Arc<RequestRuleSet>,
}

/// Decision records waiting for the daemon loop; more are dropped and counted.
const RECORDS_CAP: usize = 4096;

/// How often agent entries of processes that are gone are swept from the kernel's scope.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// What the gate's threads share.
struct Shared {
    fan: Option<Fanotify>,
    judge: Judge,
    requests: Arc<RequestRuleSet>,
    pending: Pending,
    metrics: EnforceHandles,
    records: mpsc::Sender<GateRecord>,
    lost_records: AtomicU64,
    agents: Agents,
    /// Verdicts by (tid, enter_ns): the 2nd and 3rd event of one execve (ld.so, interpreter).
    verdicts: Mutex<HashMap<(u32, u64), Decision>>,
    stop: AtomicBool,
    /// The deadline thread ends last: its heartbeat keeps the watchdog off a guard that stops.
    stop_deadline: AtomicBool,
    /// Events the listener has read: the deadline thread's sign that it is alive.
    progress: AtomicU64,
    execs_map: u32,
    agents_map: u32,
    ctl_map: u32,
    /// `GATE_STOPPED`, for the first-exec threads that let held library loads go.
    stopped_map: u32,
    /// Library loads held for their hooks (`loads`).
    loads: loads::LoadHolds,
    /// The first-exec hold, once its threads run (none without fanotify or without a scanner).
    first_run: OnceLock<first_run::FirstRun>,
    #[cfg(debug_assertions)]
    test_delay: Option<Duration>,
    /// Tests only: how long a paused request waits before it is judged.
    #[cfg(debug_assertions)]
    test_pause_delay: Option<Duration>,
}

impl Shared {
    /// Hands a decision to the daemon loop, never waiting.
    fn record(&self, r: GateRecord) {
        if self.records.try_send(r).is_err() {
            self.lost_records.fetch_add(1, Relaxed);
        }
    }

    fn count(&self, d: Decision, mechanism: usize) {
        match d {
            Decision::Allow => self.metrics.allow[mechanism].inc(),
            Decision::Deny => self.metrics.deny[mechanism].inc(),
        };
    }

    fn remember(&self, key: (u32, u64), d: Decision) {
        let mut v = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        // The entries are needed for a few µs (until the exec's next event): drop them wholesale.
        if v.len() >= 4096 {
            v.clear();
        }
        v.insert(key, d);
    }

    fn verdict(&self, key: (u32, u64)) -> Option<Decision> {
        self.verdicts.lock().unwrap_or_else(|e| e.into_inner()).get(&key).copied()
    }
}

pub(crate) struct Gate {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// Waits in `read`: woken by a signal at stop (`listener::wake`).
    listener: Option<JoinHandle<()>>,
    deadline: Option<JoinHandle<()>>,
    records: mpsc::Receiver<GateRecord>,
    scope: scope::ScopeWriter,
    marks: Marks,
    ctl: aya::maps::Array<aya::maps::MapData, u32>,
    places: places::PlacesWriter,
    protect: protect::ProtectMarks,
    watchdog: Option<watchdog::Watchdog>,
    last_sweep: Instant,
    overflows_seen: u64,
    /// `ProtectMarks::flushes` when the loaders' ignore marks were last put back.
    flushes_seen: u64,
}

impl Gate {
    /// Starts the gate, armed last: the kernel's switches and the marks come after the threads
    /// that answer are running, and the watchdog is spawned before (guard never execs armed).
    pub(crate) fn start(kernel: &mut Kernel, opts: GateOptions, running_agents: &Outputs) -> Result<Self, GateError> {
        let cfg = opts.judge.config().clone();
        release::adopt(&opts.judge);
        let maps = kernel.take_gate(std::path::Path::new(release::PIN))?;
        let (stopped, pass) = (maps.stopped, maps.pass);
        let maps_pinned = maps.pinned;
        // Spawned while nothing is marked: a child holds guard's fanotify fd until its exec ends.
        let watchdog = watchdog::Watchdog::spawn(cfg.deadline * 2).map_err(|source| GateError::Io { what: "spawning the watchdog", source })?;
        let fan = match opts.fan {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(error = %e, "fanotify permission events unavailable: the exec gate falls back to stopping each in-scope exec");
                None
            }
        };
        let execs_map = maps.execs_id;
        // The library-load stop needs the first-exec threads (which need fanotify) and a kernel
        // list of the files they know, filled before the stop is switched on.
        let load_stop = cfg.mode != Mode::Off
            && fan.is_some()
            && match (opts.first_run.as_ref(), kernel.take_known_files()) {
                (Some(o), Some(known)) => {
                    o.scanner.mirror_to_kernel(known);
                    true
                }
                _ => false,
            };
        let (tx, records) = mpsc::channel(RECORDS_CAP);
        let shared = Arc::new(Shared {
            fan,
            judge: opts.judge,
            requests: opts.requests,
            pending: Pending::default(),
            metrics: opts.metrics,
            records: tx,
            lost_records: AtomicU64::new(0),
            agents: Agents::default(),
            verdicts: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            stop_deadline: AtomicBool::new(false),
            progress: AtomicU64::new(0),
            execs_map,
            agents_map: maps.agents_id,
            ctl_map: maps.ctl_id,
            stopped_map: maps.stopped_id,
            loads: loads::LoadHolds::default(),
            first_run: OnceLock::new(),
            #[cfg(debug_assertions)]
            test_delay: std::env::var("GUARD_GATE_TEST_JUDGE_DELAY_MS").ok().and_then(|v| v.parse().ok()).map(Duration::from_millis),
            #[cfg(debug_assertions)]
            test_pause_delay: std::env::var("GUARD_GATE_TEST_PAUSE_DELAY_MS").ok().and_then(|v| v.parse().ok()).map(Duration::from_millis),
        });
        let mut threads = Vec::new();
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new().name(name.into()).spawn(f).map_err(|source| GateError::Io { what: "starting a gate thread", source })
        };
        threads.push(spawn("guard-gate-stops", { let s = shared.clone(); Box::new(move || stops::run(&s, maps.events, stopped, pass)) })?);
        let mut listener = None;
        if shared.fan.is_some() {
            let jobs = judges::start(&shared, &mut threads)?;
            if let Some(o) = opts.first_run {
                let first = first_run::FirstRun::start(&shared, o, &jobs, &mut threads)?;
                let _ = shared.first_run.set(first);
            }
            listener = Some(spawn("guard-gate-listen", { let s = shared.clone(); Box::new(move || listener::run(&s, jobs)) })?);
        }
        let beat = watchdog.heartbeat();
        let deadline = spawn("guard-gate-deadline", { let s = shared.clone(); Box::new(move || judges::deadline(&s, beat)) })?;

        let mut scope = scope::ScopeWriter::new(maps.agents);
        scope.apply(&shared.agents, &running_agents.scope);
        let mut ctl = maps.ctl;
        let on = cfg.mode != Mode::Off;
        let set = |ctl: &mut aya::maps::Array<_, u32>, i, v: u32| ctl.set(i, v, 0).map_err(|source| GateError::Map { map: "GATE_CTL", source });
        let stale_ms = u32::try_from((cfg.deadline * 2).as_millis()).unwrap_or(u32::MAX);
        set(&mut ctl, CTL_STALE_MS, stale_ms)?;
        set(&mut ctl, CTL_BEAT_MS, beat_ms())?;
        set(&mut ctl, CTL_SCOPE_ALL, u32::from(cfg.scope == Scope::All))?;
        set(&mut ctl, CTL_STOP, u32::from(on))?;
        set(&mut ctl, CTL_DELETE_ON, u32::from(opts.deletions))?;
        set(&mut ctl, CTL_DELETE_KILL, u32::from(opts.deletions && cfg.mode == Mode::Enforce))?;
        let pause = cfg.mode == Mode::Enforce && !shared.requests.rules().is_empty();
        set(&mut ctl, CTL_REQ_PAUSE, u32::from(pause))?;
        set(&mut ctl, CTL_LOAD_STOP, u32::from(load_stop))?;
        set(&mut ctl, CTL_ON, u32::from(on))?;
        // fanotify is in use from here, its marks placed whenever an agent lives.
        shared.metrics.active[0].set(i64::from(on && shared.fan.is_some()));
        shared.metrics.active[1].set(i64::from(on));
        let marks = Marks::new(opts.marks);
        let places = places::PlacesWriter::new(maps.places);
        let protect = protect::ProtectMarks::new(Vec::new());
        shared.metrics.deletions_active[0].set(i64::from(opts.deletions && cfg.mode == Mode::Enforce));
        shared.metrics.request_pause_active.set(i64::from(pause));
        let mut gate = Self { shared, threads, listener, deadline: Some(deadline), records, scope, marks, ctl, places, protect, watchdog: Some(watchdog), last_sweep: Instant::now(), overflows_seen: 0, flushes_seen: 0 };
        gate.tick();
        tracing::info!(
            mode = ?cfg.mode,
            scope = ?cfg.scope,
            deadline_ms = cfg.deadline.as_millis() as u64,
            fanotify = gate.shared.fan.is_some(),
            stop = on,
            request_pause = pause,
            library_load_stop = load_stop,
            stop_registry_pinned = maps_pinned,
            "exec gate started"
        );
        Ok(gate)
    }

    /// The gate's decisions, for the daemon loop.
    pub(crate) fn records(&mut self) -> &mut mpsc::Receiver<GateRecord> {
        &mut self.records
    }

    /// Decisions dropped because the daemon loop was behind.
    pub(crate) fn lost_records(&self) -> u64 {
        self.shared.lost_records.load(Relaxed)
    }

    /// New agents into the kernel's scope; arms the marks if they were off.
    pub(crate) fn on_outputs(&mut self, out: &Outputs) {
        for o in &out.pipeline {
            if let Output::Exchange(x) = o
                && let (Role::Client, false, Some(c)) = (x.role, x.inference, x.conn)
            {
                self.scope.not_an_agent(&self.shared.agents, c.pid);
            }
        }
        self.scope.apply(&self.shared.agents, &out.scope);
        if !out.scope.is_empty() {
            self.sync_protect();
        }
    }

    /// Protected directories are marked while an identified agent lives.
    fn sync_protect(&mut self) {
        let Some(fan) = self.shared.fan.as_ref() else { return };
        let armed = self.protect.sync(fan, self.scope.has_roots());
        if self.protect.flushes() != self.flushes_seen {
            // A flush of the protected marks removed the loaders' ignore marks too.
            self.flushes_seen = self.protect.flushes();
            self.marks.keep_loaders_ignored(fan);
        }
        self.shared.metrics.deletions_active[1].set(i64::from(armed));
    }

    /// The places the deletion programs match paths against (`guard_common::delete`), and the
    /// protected directories whose files agents may not open for writing.
    pub(crate) fn set_places(&mut self, roots: &[guard_core::places::PlaceRoot]) {
        self.places.sync(roots.iter().map(|r| (r.prefix.clone(), r.value())));
        let dirs = roots.iter().filter(|r| r.sensitive).map(|r| PathBuf::from(r.prefix.trim_end_matches('/'))).collect();
        if let Some(fan) = self.shared.fan.as_ref()
            && self.protect.set_dirs(fan, dirs)
        {
            self.sync_protect();
        }
    }

    /// Marks new mounts, sweeps gone processes from the scope, reports overflows.
    pub(crate) fn tick(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.last_sweep = now;
            self.scope.sweep(std::path::Path::new("/proc"));
            self.sync_protect();
            // A package upgrade or `ldconfig` replaces an ignored file with a new inode.
            if let Some(fan) = self.shared.fan.as_ref() {
                self.marks.keep_loaders_ignored(fan);
                self.protect.keep_hot_ignored(fan);
            }
        }
        let Some(fan) = self.shared.fan.as_ref() else { return };
        if fan.overflows() > self.overflows_seen {
            self.overflows_seen = fan.overflows();
            tracing::warn!(total = self.overflows_seen, "fanotify queue overflowed: the kernel allowed execs unseen");
        }
        self.marks.sync(fan, true);
    }

    /// Disarms first: no new ticket, no mark; pending events are allowed as the fd closes.
    /// Returns the decisions the daemon loop has not taken yet.
    pub(crate) fn stop(mut self) -> Vec<GateRecord> {
        // Every switch that can stop a process, first: a stop made once the threads below are
        // gone would have nobody to answer it.
        let _ = self.ctl.set(CTL_ON, 0, 0);
        let _ = self.ctl.set(CTL_REQ_PAUSE, 0, 0);
        let _ = self.ctl.set(CTL_LOAD_STOP, 0, 0);
        let _ = self.ctl.set(CTL_DELETE_KILL, 0, 0);
        let _ = self.ctl.set(CTL_DELETE_ON, 0, 0);
        if let Some(fan) = self.shared.fan.as_ref() {
            self.protect.sync(fan, false);
            self.marks.sync(fan, false);
        }
        self.shared.stop.store(true, Relaxed);
        if let Some(t) = self.listener.take() {
            listener::wake::join(t);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.shared.stop_deadline.store(true, Relaxed);
        if let Some(t) = self.deadline.take() {
            let _ = t.join();
        }
        let _ = self.ctl.set(CTL_STOP, 0, 0);
        self.shared.metrics.active[0].set(0);
        self.shared.metrics.active[1].set(0);
        self.shared.metrics.deletions_active[0].set(0);
        self.shared.metrics.deletions_active[1].set(0);
        self.shared.metrics.request_pause_active.set(0);
        drop(self.watchdog.take());
        release::unpin(self.shared.stopped_map);
        let mut left = Vec::new();
        while let Ok(r) = self.records.try_recv() {
            left.push(r);
        }
        left
    }
}

/// The fanotify group, opened before the kernel programs (see `fanotify::high` for why its fd
/// number matters when guard dies).
pub(crate) fn early_fanotify(mode: Mode) -> Option<std::io::Result<Fanotify>> {
    (mode != Mode::Off).then(Fanotify::init)
}

/// The heartbeat the kernel reads (`CTL_BEAT_MS`): monotonic ms, wrapping.
fn beat_ms() -> u32 {
    (monotonic_ns() / 1_000_000) as u32
}

/// Now on the clock `bpf_ktime_get_ns` reads (CLOCK_MONOTONIC), in ns.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: writes only the struct passed.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}
