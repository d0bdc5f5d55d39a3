//! `guard run`: kernel → reader → [`Engine`] → sinks, until SIGTERM or SIGINT. On shutdown it
//! stops the reader, drains what the kernel already delivered, and flushes the recording, so no
//! event already captured is lost.

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use guard_core::{
    Engine,
    engine::{EngineConfig, Outputs},
    enforce::{Decision, GateRecord, Judge, Mode},
};
use tokio::{signal::unix::{SignalKind, signal}, sync::{mpsc, watch}};

pub(crate) use super::options::RunOptions;
use super::{gate_queue::GateQueue, gauges::Gauges, tls::Tls};
use crate::{
    gate::{Gate, GateError, GateOptions, first_run::FirstRunOptions},
    kernel::{Kernel, LoadError, reader},
    sinks::{Sinks, metrics::LossSource, audit::{AuditError, AuditWriter}, metrics::{Metrics, MetricsError}, otlp::{Otlp, OtlpError}, record::{Recording, RecordingError}},
    sys::{host, places::PlacesWatch, proc::Proc},
};

#[derive(Debug, thiserror::Error)]
pub(crate) enum DaemonError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Record(#[from] RecordingError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error(transparent)]
    Otlp(#[from] OtlpError),
    #[error("cannot set up {what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
}

/// How often gauges and loss totals are brought up to date.
const GAUGES_EVERY: Duration = Duration::from_secs(2);

pub(crate) async fn run(opts: RunOptions) -> Result<(), DaemonError> {
    let io = |what| move |source| DaemonError::Io { what, source };
    let fan = crate::gate::early_fanotify(opts.enforce.mode);
    crate::sys::limits::raise_and_log();
    let mut kernel = Kernel::load(&opts.load)?;
    kernel.wake_on(&opts.engine.rules);
    for p in &kernel.probes {
        tracing::info!(program = p.program, attached = p.attached, error = p.error.as_deref(), "probe");
    }
    let markers = opts.engine.catalog.marker_names().into_iter().map(str::to_owned).collect();
    let mut proc = Proc::new("/proc", markers, opts.engine.rules.clone()).map_err(io("the cwd thread"))?;
    let host = host::read();
    let judge = Judge::new(Arc::new(opts.engine.rules.clone()), Arc::new(host.clone()), opts.enforce.judge_config());
    let request_rules = Arc::new(opts.engine.requests.clone());
    let host_name = host.name.clone();
    let tmpdir = std::env::var_os("TMPDIR").map(std::path::PathBuf::from);
    let mut places = PlacesWatch::new(opts.deletions.clone(), host.clone(), tmpdir);
    let mut engine = Engine::new(EngineConfig { host, record: opts.record.is_some(), ..opts.engine });
    let metrics = Arc::new(Metrics::new(&opts.labels));
    let otlp = match &opts.otlp {
        Some(s) => Some(Otlp::start(s, metrics.clone(), &host_name)?),
        None => None,
    };
    let mut sinks = Sinks {
        metrics,
        otlp,
        audit: opts.audit_log.as_deref().map(AuditWriter::open).transpose()?,
        recording: opts.record.as_deref().map(Recording::create).transpose()?,
        audit_errors: 0,
    };
    let mut out = Outputs::default();
    engine.start(proc.running(), &mut out);
    sinks.take(&out)?;
    refresh_places(&mut places, &mut engine, None, &mut sinks, &mut out)?;
    let mut tls = Tls::start(&mut kernel, &mut engine, opts.rescan_every).map_err(io("the scanning threads"))?;
    tls.count_late_in(sinks.metrics.first_exec().late);
    let (attach_tx, mut attach_rx) = mpsc::unbounded_channel();
    let first_run = FirstRunOptions { scanner: tls.scanner(), attach: attach_tx, metrics: sinks.metrics.first_exec() };
    let mut gate = match fan {
        Some(fan) => {
            let gate_opts = GateOptions {
                fan,
                judge,
                marks: opts.enforce.mark.clone(),
                metrics: sinks.metrics.enforce(),
                first_run: Some(first_run),
                deletions: opts.deletions.enabled,
                requests: request_rules,
            };
            start_gate(&mut kernel, gate_opts, opts.enforce.mode, &out)?
        }
        None => None,
    };
    if let Some(g) = gate.as_mut() {
        g.set_places(places.current());
    }

    let ring = kernel.take_ring()?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(opts.channel_capacity.max(1));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stats = Arc::new(reader::ReaderStats::default());
    let server = opts.metrics.map(|l| {
        tracing::info!(addr = %l.local_addr(), "serving /metrics");
        tokio::spawn(l.serve(sinks.metrics.clone(), stop_rx.clone()))
    });
    let reader = tokio::spawn(reader::run(ring, tx, stats.clone(), proc.cwds.clone(), stop_rx));
    let mut sigterm = signal(SignalKind::terminate()).map_err(io("SIGTERM handler"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(io("SIGINT handler"))?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let (mut gauges, mut last_gauges) = (Gauges::default(), Instant::now());
    gauges.refresh(&kernel, &stats, &engine, &tls, &sinks);
    // Ready once the events queued while guard started are handled: an agent started after
    // "ready" is then judged on what guard knows now, not behind a backlog.
    let mut ready = false;
    let mut held = GateQueue::default();

    loop {
        tokio::select! {
            raw = rx.recv() => {
                let Some(raw) = raw else { break };
                push(&raw, &mut engine, &mut proc, &mut out);
                sinks.take(&out)?;
                tls.on_outputs(&mut kernel, &out);
                if let Some(g) = gate.as_mut() {
                    g.on_outputs(&out);
                }
                // A new agent: its work tree joins the places before its first deletions.
                if out.scope.iter().any(|a| places.is_new_root(a.root)) {
                    refresh_places(&mut places, &mut engine, gate.as_mut(), &mut sinks, &mut out)?;
                }
                held.saw(&raw);
                judged(&mut held, false, &mut engine, &mut sinks, &mut out)?;
                if rx.is_empty() {
                    tls.flush();
                }
            }
            Some(r) = next_gate_record(&mut gate) => {
                held.hold(r, Instant::now());
                judged(&mut held, false, &mut engine, &mut sinks, &mut out)?;
            }
            Some(r) = tls.report() => tls.on_report(&mut kernel, &mut engine, r),
            Some(a) = attach_rx.recv() => tls.attach_now(&mut kernel, &mut engine, a),
            _ = tick.tick() => {
                judged(&mut held, false, &mut engine, &mut sinks, &mut out)?;
                if !ready && rx.is_empty() {
                    ready = true;
                    tracing::info!(targets = kernel.attached_targets().count(), "guard ready");
                    crate::gate::notify::ready();
                }
                let now = Instant::now();
                tls.tick(now);
                tls.retry(&mut kernel, &mut engine, now);
                match gate.as_mut() {
                    Some(g) => {
                        g.tick();
                        sinks.metrics.set_lost_total(LossSource::GateRecords, g.lost_records());
                    }
                    // With a gate, its deadline thread pings systemd's watchdog; without, the loop.
                    None => crate::gate::notify::watchdog(),
                }
                if now.duration_since(last_gauges) >= GAUGES_EVERY {
                    last_gauges = now;
                    gauges.refresh(&kernel, &stats, &engine, &tls, &sinks);
                    refresh_places(&mut places, &mut engine, gate.as_mut(), &mut sinks, &mut out)?;
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }

    // Disarm first: nothing waits on guard from here on.
    if let Some(g) = gate.take() {
        for r in g.stop() {
            held.hold(r, Instant::now());
        }
    }
    tracing::info!("stopping: draining events already captured");
    let _ = stop_tx.send(true);
    match reader.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "reader stopped with an error"),
        Err(e) => tracing::warn!(error = %e, "reader task failed"),
        Ok(Ok(())) => {}
    }
    // What the drain decides is acted on too: a guess verified by its last events is logged.
    while let Ok(raw) = rx.try_recv() {
        push(&raw, &mut engine, &mut proc, &mut out);
        sinks.take(&out)?;
        tls.on_outputs(&mut kernel, &out);
    }
    judged(&mut held, true, &mut engine, &mut sinks, &mut out)?;
    if let Some(r) = sinks.recording.as_mut() {
        r.flush()?;
    }
    gauges.refresh(&kernel, &stats, &engine, &tls, &sinks);
    if let Some(o) = sinks.otlp.take() {
        o.shutdown();
    }
    if let Some(server) = server {
        match server.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "metrics server task failed"),
            Ok(Ok(())) => {}
        }
    }
    let s = engine.stats();
    tracing::info!(
        records = stats.records.load(Relaxed),
        bytes = stats.bytes.load(Relaxed),
        channel_full = stats.channel_full.load(Relaxed),
        kernel_losses = ?kernel.losses().unwrap_or_default(),
        decode_errors = s.decode_errors,
        audit_errors = sinks.audit_errors,
        stream_gaps = s.pipeline.stream_gaps,
        unverified_dropped = s.verify.dropped_events,
        unverified_held = s.unverified_held,
        "stopped"
    );
    Ok(())
}

/// The exec gate (`enforce.mode` is not off). A gate that cannot start stops `guard run` in
/// enforce mode (the admin asked for refusals); in monitor mode guard runs on without it.
fn start_gate(kernel: &mut Kernel, opts: GateOptions, mode: Mode, running: &Outputs) -> Result<Option<Gate>, DaemonError> {
    match Gate::start(kernel, opts, running) {
        Ok(g) => Ok(Some(g)),
        Err(e) if mode == Mode::Enforce => Err(e.into()),
        Err(e) => {
            tracing::error!(error = %e, "the exec gate did not start: commands are recorded, not judged before they run");
            Ok(None)
        }
    }
}

async fn next_gate_record(gate: &mut Option<Gate>) -> Option<GateRecord> {
    match gate {
        Some(g) => g.records().recv().await,
        None => std::future::pending().await,
    }
}

/// The gate's decisions the engine may take now (see [`GateQueue`]), to audit, metrics and log.
fn judged(held: &mut GateQueue, all: bool, engine: &mut Engine, sinks: &mut Sinks, out: &mut Outputs) -> Result<(), DaemonError> {
    for r in held.ready(Instant::now(), all) {
        out.clear();
        engine.gate_record(&r, SystemTime::now(), out);
        sinks.take(out)?;
        log_refusal(&r);
    }
    Ok(())
}

/// One warn line per refusal: who, which rule, which process; never the argv or the request's
/// path, headers or body.
fn log_refusal(r: &GateRecord) {
    if r.decision != Decision::Deny {
        return;
    }
    let agent = r.agent.as_deref().unwrap_or("none");
    if let Some(p) = &r.request {
        let (rule, method) = (p.matched.rule_id.as_str(), p.request.method.as_str());
        tracing::warn!(agent, rule, method, pid = r.pid, "request refused before it was sent");
        return;
    }
    let rule = r.matches.first().map_or("enforce.fail", |m| m.m.rule_id.as_str());
    tracing::warn!(agent, rule, pid = r.pid, mechanism = r.mechanism.as_str(), timed_out = r.timed_out, "exec refused");
}

/// One ring record through the engine; the outputs of the last push are cleared first.
fn push(raw: &Bytes, engine: &mut Engine, proc: &mut Proc, out: &mut Outputs) {
    out.clear();
    if let Err(e) = engine.push_record(raw, SystemTime::now(), proc, out) {
        tracing::debug!(error = %e, "undecodable record skipped");
    }
}

/// Gives the engine the places list again when agents' work trees came or went (a recorded
/// fact), and the kernel's `PLACES` trie the same list.
fn refresh_places(places: &mut PlacesWatch, engine: &mut Engine, gate: Option<&mut Gate>, sinks: &mut Sinks, out: &mut Outputs) -> Result<(), DaemonError> {
    let agents = engine.table().agent_roots();
    if let Some(roots) = places.update(&agents) {
        tracing::debug!(roots = roots.len(), "places list");
        if let Some(g) = gate {
            g.set_places(roots);
        }
        out.clear();
        engine.set_places(roots.to_vec(), out);
        sinks.take(out)?;
    }
    Ok(())
}
