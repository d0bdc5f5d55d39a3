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
    ebpf::{Kernel, LoadError, LoadOptions, targets::Scanner},
    events::{self, Event, reader, record::{RecordError, Recorder}},
    pipeline::{Limits, Output, Pipeline},
};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("cannot set up {what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub load: LoadOptions,
    pub record: Option<PathBuf>,
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
}

pub async fn run(opts: RunOptions) -> Result<(), DaemonError> {
    let mut kernel = Kernel::load(&opts.load)?;
    for p in &kernel.probes {
        tracing::info!(program = p.program, attached = p.attached, error = p.error.as_deref(), "probe");
    }
    let mut scanner = Scanner::default();
    let mut found = scanner.scan_system();
    found.extend(scanner.scan_all());
    for t in &found {
        attach(&mut kernel, t);
    }

    let ring = kernel.take_ring()?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(opts.channel_capacity.max(1));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stats = Arc::new(reader::ReaderStats::default());
    let reader = tokio::spawn(reader::run(ring, tx, stats.clone(), stop_rx));

    let io = |what| move |source| DaemonError::Io { what, source };
    let mut sigterm = signal(SignalKind::terminate()).map_err(io("SIGTERM handler"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(io("SIGINT handler"))?;
    let mut recorder = opts.record.as_deref().map(Recorder::create).transpose()?;
    let mut pipeline = Pipeline::new(&opts.limits);
    let mut counters = Counters::default();
    let mut rescans: VecDeque<(Instant, u32)> = VecDeque::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last_full_scan = Instant::now();
    let mut out = Vec::new();
    tracing::info!(targets = kernel.attached_targets().count(), "guard ready");

    loop {
        tokio::select! {
            raw = rx.recv() => {
                let Some(raw) = raw else { break };
                handle(&raw, &mut pipeline, recorder.as_mut(), &mut counters, &mut out)?;
                let now = Instant::now();
                for pid in out.drain(..).filter_map(|o| log_output(&o)) {
                    // Look at the new program's executable now, and at its libraries shortly.
                    for t in scanner.scan_pid(pid) {
                        attach(&mut kernel, &t);
                    }
                    rescans.extend(EXEC_RESCANS.iter().map(|d| (now + *d, pid)));
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                while rescans.front().is_some_and(|(at, _)| *at <= now) {
                    let Some((_, pid)) = rescans.pop_front() else { break };
                    for t in scanner.scan_pid(pid) {
                        attach(&mut kernel, &t);
                    }
                }
                if now.duration_since(last_full_scan) >= opts.rescan_every {
                    last_full_scan = now;
                    for t in scanner.scan_all() {
                        attach(&mut kernel, &t);
                    }
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
        handle(&raw, &mut pipeline, recorder.as_mut(), &mut counters, &mut out)?;
        for o in out.drain(..) {
            log_output(&o);
        }
    }
    if let Some(r) = recorder.as_mut() {
        r.flush()?;
    }
    let losses = kernel.losses().unwrap_or_default();
    tracing::info!(
        records = stats.records.load(Relaxed),
        bytes = stats.bytes.load(Relaxed),
        channel_full = stats.channel_full.load(Relaxed),
        kernel_ring_full = losses[guard_common::event::LOSS_RING_FULL as usize],
        kernel_tls_truncated = losses[guard_common::event::LOSS_TLS_TRUNCATED as usize],
        decode_errors = counters.decode_errors,
        stream_gaps = pipeline.stats().stream_gaps,
        "stopped"
    );
    drop(kernel);
    Ok(())
}

fn attach(kernel: &mut Kernel, t: &crate::ebpf::targets::TlsTarget) {
    match kernel.attach_tls(t) {
        Ok(0) => {}
        Ok(hooks) => tracing::info!(path = %t.path, kind = ?t.kind, hooks, "attached TLS target"),
        Err(e) => tracing::warn!(error = %e, "TLS target not attached"),
    }
}

fn handle(
    raw: &[u8],
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
    if let Some(r) = recorder {
        r.write(&ev)?;
    }
    pipeline.push(ev, out);
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
        Output::Stream(crate::streams::StreamEvent::Gap { conn, dir, missing, .. }) => {
            tracing::debug!(pid = conn.pid, ?dir, missing, "stream gap");
            None
        }
        _ => None,
    }
}
