//! The daemon's TLS side: which files are hooked, which guesses the engine verified or rejected,
//! what each process carries, and when to look at a process's mappings again.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    path::Path,
    time::{Duration, Instant},
};

use guard_core::{
    Engine,
    coverage::{self, BlindReason, HookState, ProcessTls},
    engine::Outputs,
    events::exec_join::ExecOutcome,
    pipeline::Output,
    verify::{self, Verdict},
};

use super::attach_retry::Attacher;
use crate::{
    gate::first_run::AttachNow,
    kernel::{Kernel, errno::FailReason},
    sys::{
        ahead::Ahead,
        scan_worker::{Report, Request, ScanWorker},
        sockets,
        targets::{Scanner, TlsTarget},
    },
};

/// After an exec, the dynamic loader maps libraries a moment later: look again at these delays.
const EXEC_RESCANS: [Duration; 2] = [Duration::from_millis(250), Duration::from_millis(1500)];

pub(crate) struct Tls {
    scans: ScanWorker,
    /// The scanner the lanes share, for the exec gate's first-exec hold.
    scanner: Scanner,
    /// The TLS files of each live process, as the scanner last saw them.
    procs: HashMap<u32, ProcessTls>,
    /// Files whose guessed hooks were rejected and detached, by (dev, inode).
    rejected: HashSet<(u64, u64)>,
    /// Programs that just started, scanned once the records waiting are handled: one that
    /// exits in the same batch (most short commands) is never scanned.
    fresh: Vec<u32>,
    /// (when, pid, which exec of it, last of its rescans); a rescan runs while `execs` still
    /// holds that exec, that is until the process exits or execs again.
    rescans: VecDeque<(Instant, u32, u64, bool)>,
    execs: HashMap<u32, u64>,
    next_exec: u64,
    last_pass: Instant,
    pass_every: Duration,
    /// Attaches, and retries the files that failed to attach.
    attacher: Attacher,
    /// Files hooked after a program of them already ran (found by a scan, not held at their first
    /// exec): its first TLS calls may be missed. `guard_tls_first_exec_total{outcome="late"}`.
    late: prometheus_client::metrics::counter::Counter,
}

impl Tls {
    /// Hooks what the system libraries and the running processes carry, then hands further
    /// analysis to the scanning threads.
    pub(crate) fn start(kernel: &mut Kernel, engine: &mut Engine, pass_every: Duration) -> std::io::Result<Self> {
        let scanner = Scanner::default();
        let mut found = scanner.scan_system();
        let mut procs = HashMap::new();
        for pid in Scanner::pids() {
            if let Some((targets, tls)) = scanner.scan_process(pid) {
                found.extend(targets);
                procs.insert(pid, tls);
            }
        }
        let mut tls = Self {
            // What agents are likely to run is analysed next, on the scanning threads.
            scans: ScanWorker::spawn(scanner.clone(), Some(Ahead::new(engine.table().catalog().clone())))?,
            scanner,
            procs,
            rejected: HashSet::new(),
            fresh: Vec::new(),
            rescans: VecDeque::new(),
            execs: HashMap::new(),
            next_exec: 0,
            last_pass: Instant::now(),
            pass_every,
            attacher: Attacher::new(),
            late: Default::default(),
        };
        for t in &found {
            tls.attach(kernel, engine, t);
        }
        Ok(tls)
    }

    /// The shared scanner: what is known of each file, for the exec gate's first-exec hold.
    pub(crate) fn scanner(&self) -> Scanner {
        self.scanner.clone()
    }

    /// Attaches a file whose first exec waits for it (`gate::first_run`).
    pub(crate) fn attach_now(&mut self, kernel: &mut Kernel, engine: &mut Engine, req: AttachNow) {
        let _ = self.attach(kernel, engine, &req.target);
        let _ = req.done.send(());
    }

    /// What the scanning threads found.
    pub(crate) async fn report(&mut self) -> Option<Report> {
        self.scans.found.recv().await
    }

    /// Where files hooked late are counted.
    pub(crate) fn count_late_in(&mut self, late: prometheus_client::metrics::counter::Counter) {
        self.late = late;
    }

    pub(crate) fn on_report(&mut self, kernel: &mut Kernel, engine: &mut Engine, r: Report) {
        match r {
            Report::Target(t) => {
                if self.attach(kernel, engine, &t) {
                    self.late.inc();
                }
            }
            Report::Ahead(t) => {
                let _ = self.attach(kernel, engine, &t);
            }
            Report::Process(pid, p) => {
                // A process of a rustls file is watched from now even if it started before the
                // file was hooked (its entry-point probe then never fired).
                if p.files.iter().any(|(key, _)| kernel.has_aead_hooks(key.0, key.1)) {
                    kernel.track_aead(pid);
                }
                self.procs.insert(pid, p);
            }
        }
    }

    /// Acts on one push's outputs: verdicts, exits, and programs that just started.
    pub(crate) fn on_outputs(&mut self, kernel: &mut Kernel, out: &Outputs) {
        for v in &out.verdicts {
            self.settle(kernel, *v);
        }
        let now = Instant::now();
        for o in &out.pipeline {
            match o {
                Output::Exit(x) => {
                    self.procs.remove(&x.pid);
                    self.fresh.retain(|p| *p != x.pid);
                    self.execs.remove(&x.pid);
                }
                // Look at the new program's executable soon, and at its libraries shortly after.
                Output::Exec(e) if matches!(e.outcome, ExecOutcome::Ran) => {
                    self.fresh.push(e.pid);
                    self.next_exec += 1;
                    self.execs.insert(e.pid, self.next_exec);
                    let last = EXEC_RESCANS.len() - 1;
                    let at = EXEC_RESCANS.iter().enumerate().map(|(i, d)| (now + *d, e.pid, self.next_exec, i == last));
                    self.rescans.extend(at);
                }
                _ => {}
            }
        }
    }

    /// Scans the programs started by the records handled so far (call when none are waiting).
    pub(crate) fn flush(&mut self) {
        for pid in self.fresh.drain(..) {
            self.scans.request(Request::Pid(pid));
        }
    }

    /// Due rescans of new programs still running, and the periodic pass over every process
    /// (catches dlopen).
    pub(crate) fn tick(&mut self, now: Instant) {
        self.flush();
        while self.rescans.front().is_some_and(|(at, ..)| *at <= now) {
            let Some((_, pid, exec, last)) = self.rescans.pop_front() else { break };
            if self.execs.get(&pid) != Some(&exec) {
                continue;
            }
            if last {
                self.execs.remove(&pid);
            }
            self.scans.request(Request::Pid(pid));
        }
        if now.duration_since(self.last_pass) >= self.pass_every {
            self.last_pass = now;
            self.scans.request(Request::All);
        }
    }

    /// Attaches a file's probes; true if it was newly attached.
    fn attach(&mut self, kernel: &mut Kernel, engine: &mut Engine, t: &TlsTarget) -> bool {
        // A rejected file stays detached until the daemon restarts, whatever offers it again.
        if self.rejected.contains(&(t.dev, t.ino)) {
            return false;
        }
        self.attacher.first(kernel, engine, t, Instant::now())
    }

    /// Tries again the files whose attach failed and whose time has come (see `attach_retry`),
    /// through any path that still leads to them, among them those of the processes mapping them.
    pub(crate) fn retry(&mut self, kernel: &mut Kernel, engine: &mut Engine, now: Instant) {
        let (rejected, procs) = (&self.rejected, &self.procs);
        let pids = |key| procs.iter().filter(|(_, p)| p.files.iter().any(|(k, _)| *k == key)).map(|(pid, _)| *pid).collect();
        self.attacher.retry(kernel, engine, now, |key| rejected.contains(&key), pids);
    }

    /// Failed attach calls so far, by library and reason (`guard_tls_attach_failures_total`).
    pub(crate) fn attach_failures(&self) -> impl Iterator<Item = ((guard_core::hooks::Library, FailReason), u64)> + '_ {
        self.attacher.failures()
    }

    /// A rejected guess is detached; a verified one is logged.
    fn settle(&mut self, kernel: &mut Kernel, v: Verdict) {
        match v.state {
            verify::State::Verified => {
                let path = kernel.attached_targets().find(|t| kernel.target_id(t.dev, t.ino) == Some(v.target)).map(|t| t.path.clone());
                tracing::info!(id = v.target, path, "TLS hook verified: its traffic is HTTP, HTTP/2 or WebSocket");
            }
            verify::State::Rejected => {
                let t = kernel.detach_tls(v.target);
                if let Some(t) = &t {
                    self.rejected.insert((t.dev, t.ino));
                }
                tracing::warn!(
                    id = v.target,
                    path = t.as_ref().map(|t| t.path.as_str()),
                    "TLS hook rejected and detached: its connections carried neither HTTP, HTTP/2 nor WebSocket"
                );
            }
            verify::State::Pending => {}
        }
    }

    /// Where a hooked file stands, for the blind-spot gauge.
    fn hook_state(&self, kernel: &Kernel, engine: &Engine, key: (u64, u64)) -> HookState {
        match kernel.target_id(key.0, key.1).map(|id| engine.hook_state(id)) {
            Some(None) => HookState::Named,
            Some(Some(verify::State::Pending)) => HookState::Pending,
            Some(Some(verify::State::Verified)) => HookState::Verified,
            Some(Some(verify::State::Rejected)) => HookState::Rejected,
            None if self.rejected.contains(&key) => HookState::Rejected,
            None => HookState::NotAttached,
        }
    }

    /// The agent processes that hold TCP connections guard cannot read, with the reason.
    pub(crate) fn blind(&self, kernel: &Kernel, engine: &Engine) -> Vec<(String, BlindReason)> {
        engine
            .table()
            .agent_processes()
            .into_iter()
            .filter(|(pid, _)| !sockets::established_tcp(Path::new("/proc"), *pid).is_empty())
            .filter_map(|(pid, agent)| {
                let reason = coverage::blind_reason(self.procs.get(&pid), |key| self.hook_state(kernel, engine, key))?;
                Some((agent.to_string(), reason))
            })
            .collect()
    }
}
