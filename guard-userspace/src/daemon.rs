//! `guard run`: loads the kernel programs, attaches them, and drives the pipeline from the ring
//! buffer until SIGTERM or SIGINT. On shutdown it detaches, drains what the kernel already
//! delivered, and flushes the recording, so no event already captured is lost.

use std::{
    collections::VecDeque,
    path::PathBuf,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, watch},
};

use crate::{
    audit::{AuditError, AuditWriter},
    ebpf::{
        Kernel, LoadError, LoadOptions,
        scan_worker::{Report, Request, ScanWorker},
        targets::{ProcessTls, Scanner},
    },
    events::{
        self, Event, reader,
        record::{RecordError, Recorder},
    },
    govern::{Governed, Governor, Host, Lookup},
    metrics::{LabelCaps, LossSource, Metrics, MetricsError, MetricsListener},
    pipeline::{Limits, Output, Pipeline},
    process::{Catalog, SeedProcess, seed},
    coverage::{self, BlindReason, HookState},
    rules::RuleSet,
    verify::{self, Verdict, Verifier},
};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("cannot set up {what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
}

#[derive(Debug)]
pub struct RunOptions {
    pub load: LoadOptions,
    pub record: Option<PathBuf>,
    /// The audit log: a path, or `-` for stdout.
    pub audit_log: Option<String>,
    pub catalog: Arc<Catalog>,
    pub rules: RuleSet,
    /// The `/metrics` listener, bound by the caller (so a taken port fails before anything loads).
    pub metrics: Option<MetricsListener>,
    pub labels: LabelCaps,
    pub limits: Limits,
    /// Records buffered between the reader and the pipeline.
    pub channel_capacity: usize,
    /// How often every process's mappings are rescanned for TLS libraries (catches dlopen).
    pub rescan_every: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            load: LoadOptions::default(),
            record: None,
            audit_log: None,
            catalog: Arc::new(Catalog::builtin()),
            rules: RuleSet::builtin(),
            metrics: None,
            labels: LabelCaps::default(),
            limits: Limits::default(),
            channel_capacity: 65_536,
            rescan_every: Duration::from_secs(2),
        }
    }
}

/// After an exec, the dynamic loader maps libraries a moment later: look again at these delays.
const EXEC_RESCANS: [Duration; 2] = [Duration::from_millis(250), Duration::from_millis(1500)];

#[derive(Debug, Default)]
struct Counters {
    decode_errors: u64,
    audit_errors: u64,
}

/// Logs a finished exchange: what was called and what it used, never its content.
fn log_exchange(agent: Option<&str>, x: &crate::protocols::Exchange) {
    tracing::info!(
        agent = agent.unwrap_or(NO_AGENT),
        role = ?x.role,
        provider = ?x.provider,
        endpoint = ?x.endpoint,
        model = x.model.as_deref(),
        status = x.status,
        streamed = x.streamed,
        complete = x.complete,
        reason = x.incomplete_reason.map(|r| format!("{r:?}")),
        input = x.usage.input,
        cache_read = x.usage.cache_read,
        cache_write = x.usage.cache_write,
        output = x.usage.output,
        reasoning = x.usage.reasoning,
        "exchange"
    );
}

/// The agent label of what no agent is behind.
const NO_AGENT: &str = "none";
/// How often gauges and loss totals are brought up to date.
const METRICS_EVERY: Duration = Duration::from_secs(2);

/// The /proc side of the governor.
struct Proc {
    markers: Vec<String>,
    clk_tck: u64,
    /// Cwds the reader noted as execs left the ring.
    cwds: Arc<crate::events::cwd::CwdCache>,
}

impl Proc {
    fn new(catalog: &Catalog) -> Self {
        Self {
            markers: catalog
                .marker_names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            clk_tck: seed::clk_tck(),
            cwds: Arc::new(crate::events::cwd::CwdCache::new("/proc", 4096)),
        }
    }

    fn read_all(&self) -> Vec<SeedProcess> {
        let markers = self.markers.iter().map(String::as_str).collect();
        seed::read_all(std::path::Path::new("/proc"), &markers, self.clk_tck).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read running processes; attribution starts empty");
            Vec::new()
        })
    }
}

impl Lookup for Proc {
    fn process(&mut self, pid: u32) -> Option<SeedProcess> {
        let markers = self.markers.iter().map(String::as_str).collect();
        seed::read_one(std::path::Path::new("/proc"), pid, &markers, self.clk_tck)
    }
    fn cwd(&mut self, pid: u32) -> Option<String> {
        if let Some(cwd) = self.cwds.take(pid) {
            return Some(cwd);
        }
        seed::read_cwd(std::path::Path::new("/proc"), pid)
    }
}

/// Everything downstream of the pipeline.
struct Sinks {
    governor: Governor,
    proc: Proc,
    audit: Option<AuditWriter>,
    metrics: Arc<Metrics>,
    governed: Vec<Governed>,
    /// (library, strategy) pairs that have had a `guard_tls_targets_attached` series.
    tls_seen: std::collections::HashSet<(crate::hooks::Library, crate::hooks::Strategy)>,
}

impl Sinks {
    /// Attributes and judges one pipeline output, then logs and audits what came of it.
    fn take(&mut self, o: &Output, counters: &mut Counters) {
        self.governor.push(
            o,
            std::time::SystemTime::now(),
            &mut self.proc,
            &mut self.governed,
        );
        for g in self.governed.drain(..) {
            match g {
                Governed::Exchange { agent, exchange: x } => {
                    self.metrics.on_exchange(agent.as_deref().unwrap_or(NO_AGENT), &x);
                    log_exchange(agent.as_deref(), &x);
                }
                Governed::Command { pid, agent, name, .. } => {
                    if let Some(a) = agent.as_deref() {
                        self.metrics.on_agent_command(a);
                    }
                    tracing::debug!(pid, program = %name, agent = agent.as_deref().unwrap_or(NO_AGENT), "command");
                }
                Governed::Destructive(rec) => {
                    let agent = rec.agent.as_deref().unwrap_or(NO_AGENT);
                    self.metrics.on_destructive(agent, &rec.rule_id, rec.severity, rec.action);
                    tracing::warn!(
                        agent = rec.agent.as_deref().unwrap_or("none"),
                        rule = %rec.rule_id,
                        severity = ?rec.severity,
                        pid = rec.pid,
                        "destructive command"
                    );
                    if let Some(w) = self.audit.as_mut()
                        && let Err(e) = w.write(&rec)
                    {
                        counters.audit_errors += 1;
                        tracing::warn!(error = %e, "audit record not written");
                    }
                }
            }
        }
    }
}

pub async fn run(opts: RunOptions) -> Result<(), DaemonError> {
    let mut kernel = Kernel::load(&opts.load)?;
    for p in &kernel.probes {
        tracing::info!(
            program = p.program,
            attached = p.attached,
            error = p.error.as_deref(),
            "probe"
        );
    }
    let proc = Proc::new(&opts.catalog);
    let mut governor = Governor::new(opts.catalog.clone(), opts.rules.clone(), Host::read());
    governor.seed(proc.read_all());
    let audit = opts
        .audit_log
        .as_deref()
        .map(AuditWriter::open)
        .transpose()?;
    let metrics = Arc::new(Metrics::new(&opts.labels));
    let mut sinks = Sinks { governor, proc, audit, metrics: metrics.clone(), governed: Vec::new(), tls_seen: Default::default() };
    let scanner = Scanner::default();
    let mut found = scanner.scan_system();
    let mut procs = std::collections::HashMap::new();
    for pid in Scanner::pids() {
        if let Some((targets, tls)) = scanner.scan_process(pid) {
            found.extend(targets);
            procs.insert(pid, tls);
        }
    }
    let mut tls = Tls {
        verifier: Verifier::new(verify::Limits::default()),
        verdicts: Vec::new(),
        procs,
        rejected: Default::default(),
    };
    for t in &found {
        tls.attach(&mut kernel, t);
    }
    // From here on files are analysed off the event loop.
    let mut scans = ScanWorker::spawn(scanner).map_err(|source| DaemonError::Io {
        what: "the scanning thread",
        source,
    })?;

    let ring = kernel.take_ring()?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(opts.channel_capacity.max(1));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stats = Arc::new(reader::ReaderStats::default());
    let server = opts.metrics.map(|l| {
        tracing::info!(addr = %l.local_addr(), "serving /metrics");
        tokio::spawn(l.serve(metrics.clone(), stop_rx.clone()))
    });
    let reader = tokio::spawn(reader::run(ring, tx, stats.clone(), sinks.proc.cwds.clone(), stop_rx));

    let io = |what| move |source| DaemonError::Io { what, source };
    let mut sigterm = signal(SignalKind::terminate()).map_err(io("SIGTERM handler"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(io("SIGINT handler"))?;
    let mut recorder = opts.record.as_deref().map(Recorder::create).transpose()?;
    let mut pipeline = Pipeline::new(&opts.limits);
    let mut counters = Counters::default();
    let mut rescans: VecDeque<(Instant, u32)> = VecDeque::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last_full_scan = Instant::now();
    let mut last_metrics = Instant::now();
    update_metrics(&metrics, &kernel, &stats, &pipeline, &tls, &mut sinks, &counters);
    let mut out = Vec::new();
    tracing::info!(targets = kernel.attached_targets().count(), "guard ready");

    loop {
        tokio::select! {
            raw = rx.recv() => {
                let Some(raw) = raw else { break };
                handle(&raw, &mut tls, &mut pipeline, recorder.as_mut(), &mut counters, &mut out)?;
                tls.settle(&mut kernel);
                let now = Instant::now();
                for o in &out {
                    sinks.take(o, &mut counters);
                    if let Output::Exit(x) = o {
                        tls.procs.remove(&x.pid);
                    }
                }
                for pid in out.drain(..).filter_map(|o| log_output(&o)) {
                    // Look at the new program's executable now, and at its libraries shortly.
                    scans.request(Request::Pid(pid));
                    rescans.extend(EXEC_RESCANS.iter().map(|d| (now + *d, pid)));
                }
            }
            Some(r) = scans.found.recv() => match r {
                Report::Target(t) => tls.attach(&mut kernel, &t),
                Report::Process(pid, p) => {
                    // A process of a rustls file is watched from now even if it started before
                    // the file was hooked (its entry-point probe then never fired).
                    if p.files.iter().any(|(key, _)| kernel.has_aead_hooks(key.0, key.1)) {
                        kernel.track_aead(pid);
                    }
                    tls.procs.insert(pid, p);
                }
            },
            _ = tick.tick() => {
                let now = Instant::now();
                while rescans.front().is_some_and(|(at, _)| *at <= now) {
                    let Some((_, pid)) = rescans.pop_front() else { break };
                    scans.request(Request::Pid(pid));
                }
                if now.duration_since(last_metrics) >= METRICS_EVERY {
                    last_metrics = now;
                    update_metrics(&metrics, &kernel, &stats, &pipeline, &tls, &mut sinks, &counters);
                }
                if now.duration_since(last_full_scan) >= opts.rescan_every {
                    last_full_scan = now;
                    scans.request(Request::All);
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }

    tracing::info!("stopping: draining events already captured");
    let _ = stop_tx.send(true);
    match reader.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "reader stopped with an error"),
        Err(e) => tracing::warn!(error = %e, "reader task failed"),
        Ok(Ok(())) => {}
    }
    while let Ok(raw) = rx.try_recv() {
        handle(
            &raw,
            &mut tls,
            &mut pipeline,
            recorder.as_mut(),
            &mut counters,
            &mut out,
        )?;
        for o in out.drain(..) {
            sinks.take(&o, &mut counters);
            log_output(&o);
        }
    }
    if let Some(r) = recorder.as_mut() {
        r.flush()?;
    }
    update_metrics(&metrics, &kernel, &stats, &pipeline, &tls, &mut sinks, &counters);
    if let Some(server) = server {
        match server.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "metrics server task failed"),
            Ok(Ok(())) => {}
        }
    }
    let losses = kernel.losses().unwrap_or_default();
    tracing::info!(
        records = stats.records.load(Relaxed),
        bytes = stats.bytes.load(Relaxed),
        channel_full = stats.channel_full.load(Relaxed),
        kernel_ring_full = losses[guard_common::event::LOSS_RING_FULL as usize],
        kernel_tls_truncated = losses[guard_common::event::LOSS_TLS_TRUNCATED as usize],
        decode_errors = counters.decode_errors,
        audit_errors = counters.audit_errors,
        stream_gaps = pipeline.stats().stream_gaps,
        unverified_dropped = tls.verifier.stats.dropped_events,
        unverified_held = tls.verifier.held_events(),
        "stopped"
    );
    drop(kernel);
    Ok(())
}

/// Brings the gauges and the cumulative loss counters up to date.
fn update_metrics(
    m: &Metrics,
    kernel: &Kernel,
    stats: &reader::ReaderStats,
    pipeline: &Pipeline,
    tls: &Tls,
    sinks: &mut Sinks,
    counters: &Counters,
) {
    use guard_common::event::{LOSS_AEAD_UNBOUND, LOSS_RING_FULL, LOSS_TLS13_PADDING, LOSS_TLS_TRUNCATED};

    let counts = sinks.governor.table().agent_counts();
    m.set_agent_processes(counts.into_iter().map(|(a, n)| (a.to_string(), n)));
    if let Ok(k) = kernel.losses() {
        m.set_lost_total(LossSource::KernelRingFull, k[LOSS_RING_FULL as usize]);
        m.set_lost_total(LossSource::KernelTlsTruncated, k[LOSS_TLS_TRUNCATED as usize]);
        m.set_lost_total(LossSource::KernelAeadUnbound, k[LOSS_AEAD_UNBOUND as usize]);
        m.set_lost_total(LossSource::KernelTls13Padding, k[LOSS_TLS13_PADDING as usize]);
    }
    m.set_lost_total(LossSource::ChannelFull, stats.channel_full.load(Relaxed));
    m.set_lost_total(LossSource::DecodeError, counters.decode_errors);
    let p = pipeline.stats();
    m.set_lost_total(LossSource::StreamGap, p.stream_gaps);
    m.set_lost_total(LossSource::ExecDropped, p.execs_dropped);
    m.set_lost_total(LossSource::UnverifiedHook, tls.verifier.stats.dropped_events);
    let d = pipeline.decoder_stats();
    m.set_lost_total(LossSource::DecoderError, d.http_errors + d.decode_errors + d.bad_payloads + d.dropped_events);
    m.set_tls_blind(tls.blind(kernel, &sinks.governor));
    // Every (library, strategy) ever attached keeps a series, at 0 once its files are gone.
    let by_strategy = kernel.attached_by_strategy();
    sinks.tls_seen.extend(by_strategy.keys().copied());
    for key @ (library, strategy) in &sinks.tls_seen {
        let n = by_strategy.get(key).copied().unwrap_or(0) as i64;
        m.set_tls_targets(&label(library), &label(strategy), n);
    }
}

/// The snake_case name a closed serde enum serialises to.
fn label(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The hooked files, the verification of the guessed ones, and what each process carries.
struct Tls {
    verifier: Verifier,
    verdicts: Vec<Verdict>,
    /// The TLS files of each live process, as the scanner last saw them.
    procs: std::collections::HashMap<u32, ProcessTls>,
    /// Files whose guessed hooks were rejected and detached, by (dev, inode).
    rejected: std::collections::HashSet<(u64, u64)>,
}

impl Tls {
    fn attach(&mut self, kernel: &mut Kernel, t: &crate::ebpf::targets::TlsTarget) {
        // A rejected file stays detached until the daemon restarts, whatever offers it again.
        if self.rejected.contains(&(t.dev, t.ino)) {
            return;
        }
        match kernel.attach_tls(t) {
            Ok(None) => {}
            Ok(Some((id, hooks))) => {
                let guess = t.strategy.is_guess();
                if guess {
                    self.verifier.guessed(id);
                }
                tracing::info!(
                    path = %t.path,
                    kind = ?t.kind,
                    library = ?t.library,
                    strategy = ?t.strategy,
                    also = ?t.also,
                    hooks,
                    id,
                    verified = !guess,
                    "attached TLS target"
                );
            }
            Err(e) => tracing::warn!(error = %e, "TLS target not attached"),
        }
    }

    /// Acts on the verdicts the last events brought: a rejected guess is detached.
    fn settle(&mut self, kernel: &mut Kernel) {
        for v in self.verdicts.drain(..) {
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
    }

    /// Where a hooked file stands, for the blind-spot gauge.
    fn hook_state(&self, kernel: &Kernel, key: (u64, u64)) -> HookState {
        match kernel.target_id(key.0, key.1).map(|id| self.verifier.state(id)) {
            Some(None) => HookState::Named,
            Some(Some(verify::State::Pending)) => HookState::Pending,
            Some(Some(verify::State::Verified)) => HookState::Verified,
            Some(Some(verify::State::Rejected)) => HookState::Rejected,
            None if self.rejected.contains(&key) => HookState::Rejected,
            None => HookState::NotAttached,
        }
    }

    /// The agent processes that hold TCP connections guard cannot read, with the reason.
    fn blind(&self, kernel: &Kernel, governor: &Governor) -> Vec<(String, BlindReason)> {
        governor
            .table()
            .agent_processes()
            .into_iter()
            .filter(|(pid, _)| !crate::process::sockets::established_tcp(std::path::Path::new("/proc"), *pid).is_empty())
            .filter_map(|(pid, agent)| {
                let reason = coverage::blind_reason(self.procs.get(&pid), |key| self.hook_state(kernel, key))?;
                Some((agent.to_string(), reason))
            })
            .collect()
    }
}

fn handle(
    raw: &[u8],
    tls: &mut Tls,
    pipeline: &mut Pipeline,
    recorder: Option<&mut Recorder<std::fs::File>>,
    counters: &mut Counters,
    out: &mut Vec<Output>,
) -> Result<(), DaemonError> {
    let ev: Event = match events::decode(raw) {
        Ok(ev) => ev,
        Err(e) => {
            counters.decode_errors += 1;
            tracing::debug!(error = %e, "undecodable record skipped");
            return Ok(());
        }
    };
    // A guessed hook's events wait here until verified, so recordings hold only what the
    // pipeline saw.
    let mut passed = Vec::new();
    tls.verifier.push(ev, &mut passed, &mut tls.verdicts);
    let mut recorder = recorder;
    for ev in passed {
        if let Some(r) = recorder.as_deref_mut() {
            r.write(&ev)?;
        }
        pipeline.push(ev, out);
    }
    Ok(())
}

/// Logs what the pipeline learnt; returns the pid of a program that just started running.
/// Never logs argv or payload bytes: they can carry secrets and prompt text.
fn log_output(o: &Output) -> Option<u32> {
    match o {
        Output::Exec(e) => {
            tracing::debug!(pid = e.pid, ppid = e.ppid, file = %e.filename, argc = e.argv.len(), outcome = ?e.outcome, "exec");
            matches!(e.outcome, events::exec_join::ExecOutcome::Ran).then_some(e.pid)
        }
        Output::Stream(crate::streams::StreamEvent::Gap {
            conn, dir, missing, ..
        }) => {
            tracing::debug!(pid = conn.pid, ?dir, missing, "stream gap");
            None
        }
        _ => None,
    }
}
