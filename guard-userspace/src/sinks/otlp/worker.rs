//! The export thread: the only place that talks to the collector. It owns a current-thread
//! runtime (tonic needs one), batches spans and log records from the queue, and collects and
//! exports the metrics every interval. Each export is bounded by the timeout; a failure is
//! counted and the thread goes on.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{Receiver, RecvTimeoutError},
    },
    time::{Duration, Instant},
};

use opentelemetry_otlp::{LogExporter, MetricExporter, SpanExporter};
use opentelemetry_sdk::{
    logs::{LogBatch, LogExporter as _},
    metrics::{ManualReader, data::ResourceMetrics, exporter::PushMetricExporter as _, reader::MetricReader as _},
    trace::{SpanData, SpanExporter as _},
};

use super::{bridge::Snapshot, queue::Item};
use crate::sinks::metrics::{Metrics, otlp::SignalHandles};

/// A batch goes out when it is this big, or when the queue has been quiet this long.
const BATCH: usize = 512;
const QUIET: Duration = Duration::from_millis(200);

pub(crate) struct Worker {
    pub rt: tokio::runtime::Runtime,
    pub rx: Receiver<Item>,
    pub stop: Arc<AtomicBool>,
    pub interval: Duration,
    /// One export's bound: the exporter's own timeout plus a margin for its retries.
    pub bound: Duration,
    pub metrics: MetricSide,
    pub spans: Option<(SpanExporter, SignalHandles)>,
    pub logs: Option<(LogExporter, SignalHandles)>,
}

/// The metric side: the SDK's reader, the exporter, and guard's registry for the bridge.
pub(crate) struct MetricSide {
    pub reader: Arc<ManualReader>,
    pub exporter: MetricExporter,
    pub registry: Arc<Metrics>,
    pub snapshot: Snapshot,
    pub health: SignalHandles,
}

impl Worker {
    pub(crate) fn run(mut self) {
        let mut next = Instant::now() + self.interval;
        let mut spans: Vec<SpanData> = Vec::new();
        let mut logs = Vec::new();
        loop {
            let stopping = self.stop.load(Ordering::Acquire);
            let wait = next.saturating_duration_since(Instant::now()).min(QUIET);
            match self.rx.recv_timeout(wait) {
                Ok(Item::Span(s)) => spans.push(*s),
                Ok(Item::Log(l)) => logs.push(*l),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    self.flush(&mut spans, &mut logs);
                }
            }
            if spans.len() >= BATCH || logs.len() >= BATCH {
                self.flush(&mut spans, &mut logs);
            }
            if Instant::now() >= next {
                self.export_metrics();
                next = Instant::now() + self.interval;
            }
            if stopping {
                while let Ok(item) = self.rx.try_recv() {
                    match item {
                        Item::Span(s) => spans.push(*s),
                        Item::Log(l) => logs.push(*l),
                    }
                }
                self.flush(&mut spans, &mut logs);
                self.export_metrics();
                return;
            }
        }
    }

    fn flush(&mut self, spans: &mut Vec<SpanData>, logs: &mut Vec<(opentelemetry_sdk::logs::SdkLogRecord, opentelemetry::InstrumentationScope)>) {
        let bound = self.bound;
        if !spans.is_empty() {
            let batch = std::mem::take(spans);
            let n = batch.len() as u64;
            if let Some((exporter, health)) = &self.spans {
                let ok = self.rt.block_on(async { tokio::time::timeout(bound, exporter.export(batch)).await });
                lost(ok.ok().and_then(Result::ok).is_some(), n, health, "spans");
            }
        }
        if !logs.is_empty() {
            let batch = std::mem::take(logs);
            let n = batch.len() as u64;
            if let Some((exporter, health)) = &self.logs {
                let refs: Vec<_> = batch.iter().map(|(r, s)| (r, s)).collect();
                let ok = self.rt.block_on(async { tokio::time::timeout(bound, exporter.export(LogBatch::new(&refs))).await });
                lost(ok.ok().and_then(Result::ok).is_some(), n, health, "logs");
            }
        }
    }

    /// Cumulative metrics: a failed export loses nothing, the next one carries the totals.
    fn export_metrics(&mut self) {
        let m = &self.metrics;
        m.snapshot.refresh(&m.registry.encode());
        let mut rm = ResourceMetrics::default();
        if let Err(e) = m.reader.collect(&mut rm) {
            tracing::warn!(error = %e, "OTLP: metrics not collected");
            return;
        }
        let ok = self.rt.block_on(async { tokio::time::timeout(self.bound, m.exporter.export(&rm)).await });
        match ok {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed(&m.health, "metrics", &e.to_string()),
            Err(_) => failed(&m.health, "metrics", "timed out"),
        }
    }
}

fn lost(ok: bool, n: u64, health: &SignalHandles, signal: &str) {
    if !ok {
        health.dropped.inc_by(n);
        failed(health, signal, "failed or timed out");
    }
}

/// One warn line per failure; the error names the endpoint, never a header.
/// A collector that stays down would log every batch: only the 1st, 2nd, 4th, 8th, … failure is.
fn failed(health: &SignalHandles, signal: &str, error: &str) {
    let n = health.failed.inc() + 1;
    if n.is_power_of_two() {
        tracing::warn!(signal, error, failures = n, "OTLP export failed");
    }
}
