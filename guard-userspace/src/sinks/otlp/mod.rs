//! OpenTelemetry export (docs/otel.md): GenAI metrics and guard's own families, optional spans
//! (one per LLM exchange) and optional logs (the audit records), over OTLP gRPC or
//! HTTP/protobuf. Off unless configured.
//!
//! The daemon loop only records into the SDK's in-memory instruments and offers spans and log
//! records to a bounded queue; one thread of its own does every network call. A collector that
//! is down or slow never holds the pipeline: what does not fit is dropped and counted.

pub(crate) mod bench;
mod bridge;
mod genai;
mod queue;
pub(crate) mod settings;
mod worker;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, SystemTime},
};

use opentelemetry::{
    KeyValue,
    logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity as LogSeverity},
    metrics::MeterProvider as _,
    trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _},
};
use opentelemetry_otlp::{LogExporter, MetricExporter, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::{
    Resource,
    logs::{SdkLogger, SdkLoggerProvider},
    resource::{EnvResourceDetector, TelemetryResourceDetector},
    metrics::{ManualReader, Pipeline, SdkMeterProvider, Temporality, reader::MetricReader},
    trace::{SdkTracer, SdkTracerProvider},
};

use guard_core::{
    audit::{Action, ApiCallRecord, AuditRecord, ProposedBy},
    cost::Cost,
    protocols::Exchange,
    rules::Severity,
};

/// What a log record of an audit line carries besides the line.
struct AuditHead<'a> {
    rule_id: &'a str,
    agent: Option<&'a str>,
    severity: Severity,
    action: Action,
}

use self::{
    bridge::Snapshot,
    genai::GenAi,
    queue::Queue,
    settings::{Protocol, Settings},
    worker::{MetricSide, Worker},
};
use crate::sinks::metrics::{Counted, Metrics};

/// How long `guard run` waits at its end for the last export.
const FINAL_EXPORT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub(crate) enum OtlpError {
    #[error("OTLP {signal} exporter: {reason}")]
    Exporter { signal: &'static str, reason: String },
    #[error("OTLP export thread: {0}")]
    Thread(std::io::Error),
}

pub(crate) struct Otlp {
    meters: SdkMeterProvider,
    genai: GenAi,
    tracer: Option<(SdkTracerProvider, SdkTracer)>,
    logger: Option<(SdkLoggerProvider, SdkLogger)>,
    stop: Arc<AtomicBool>,
    worker: Option<(JoinHandle<()>, mpsc::Receiver<()>)>,
}

impl Otlp {
    /// Builds the exporters and starts the export thread. `host` names this machine in the
    /// resource (`host.name`).
    pub(crate) fn start(s: &Settings, registry: Arc<Metrics>, host: &str) -> Result<Self, OtlpError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(OtlpError::Thread)?;
        let resource = resource(s, host);
        let (tx, rx) = mpsc::sync_channel(s.queue);
        // tonic's channel is made inside a runtime.
        let exporters = {
            let _in = rt.enter();
            Exporters::build(s, &resource)?
        };
        let reader = Arc::new(ManualReader::builder().with_temporality(Temporality::Cumulative).build());
        let meters = SdkMeterProvider::builder().with_reader(SharedReader(reader.clone())).with_resource(resource.clone()).build();
        let meter = meters.meter("guard");
        let genai = GenAi::new(&meter);
        let snapshot = Snapshot::default();
        let bridged = bridge::register(&meter, &registry.encode(), &snapshot);
        let tracer = exporters.spans.is_some().then(|| {
            let p = SdkTracerProvider::builder()
                .with_span_processor(Queue::new(tx.clone(), registry.otlp("spans").dropped))
                .with_resource(resource.clone())
                .build();
            let t = p.tracer("guard");
            (p, t)
        });
        let logger = exporters.logs.is_some().then(|| {
            let p = SdkLoggerProvider::builder()
                .with_log_processor(Queue::new(tx.clone(), registry.otlp("logs").dropped))
                .with_resource(resource.clone())
                .build();
            let l = p.logger("guard");
            (p, l)
        });
        drop(tx);
        let stop = Arc::new(AtomicBool::new(false));
        let health = registry.otlp("metrics");
        let worker = Worker {
            rt,
            rx,
            stop: stop.clone(),
            interval: s.interval,
            bound: s.timeout.unwrap_or(Duration::from_secs(10)) + Duration::from_secs(1),
            metrics: MetricSide { reader, exporter: exporters.metrics, registry: registry.clone(), snapshot, health },
            spans: exporters.spans.map(|e| (e, registry.otlp("spans"))),
            logs: exporters.logs.map(|e| (e, registry.otlp("logs"))),
        };
        let (done_tx, done_rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("guard-otlp".into())
            .spawn(move || {
                worker.run();
                let _ = done_tx.send(());
            })
            .map_err(OtlpError::Thread)?;
        tracing::info!(
            protocol = s.protocol.as_str(),
            endpoint = s.endpoint.as_deref().unwrap_or("(from OTEL_EXPORTER_OTLP_*)"),
            interval_ms = s.interval.as_millis() as u64,
            bridged,
            spans = s.spans,
            logs = s.logs,
            "exporting OTLP"
        );
        Ok(Self { meters, genai, tracer, logger, stop, worker: Some((handle, done_rx)) })
    }

    /// One exchange the Prometheus sink counted, under the same labels.
    pub(crate) fn on_exchange(&self, c: &Counted, x: &Exchange, cost: Option<Cost>) {
        let attrs = genai::attributes(&c.agent, &c.model, x);
        self.genai.record(&attrs, x);
        if let Some((_, tracer)) = &self.tracer {
            exchange_span(tracer, &c.model, attrs, x, cost);
        }
    }

    /// One audit record as a log record: the same JSON line the audit log gets (argv redacted).
    pub(crate) fn on_audit(&self, rec: &AuditRecord) {
        let head = AuditHead { rule_id: &rec.rule_id, agent: rec.agent.as_deref(), severity: rec.severity, action: rec.action };
        self.emit_audit(rec, &head, rec.proposed_by.as_ref());
    }

    /// One destructive API call's audit record as a log record, like [`Self::on_audit`].
    pub(crate) fn on_api_audit(&self, rec: &ApiCallRecord) {
        let head = AuditHead { rule_id: &rec.rule_id, agent: rec.agent.as_deref(), severity: rec.severity, action: rec.action };
        self.emit_audit(rec, &head, rec.proposed_by.as_ref());
    }

    fn emit_audit(&self, rec: &impl serde::Serialize, h: &AuditHead<'_>, by: Option<&ProposedBy>) {
        let Some((_, logger)) = &self.logger else { return };
        let Ok(line) = serde_json::to_string(rec) else { return };
        let mut r = logger.create_log_record();
        r.set_timestamp(SystemTime::now());
        r.set_event_name("guard.audit");
        r.set_severity_number(log_severity(h.severity));
        r.set_severity_text(h.severity.as_str());
        r.set_body(AnyValue::from(line));
        r.add_attribute("guard.rule_id", h.rule_id.to_owned());
        r.add_attribute(genai::AGENT, h.agent.unwrap_or(crate::sinks::NO_AGENT).to_owned());
        r.add_attribute("guard.action", h.action.as_str());
        if let Some(by) = by {
            r.add_attribute("guard.proposed_by.call_id", by.call_id.clone());
        }
        logger.emit(r);
    }

    /// Stops the export thread after one last export, waiting at most [`FINAL_EXPORT`].
    pub(crate) fn shutdown(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some((handle, done)) = self.worker.take() {
            match done.recv_timeout(FINAL_EXPORT) {
                Ok(()) => {
                    let _ = handle.join();
                }
                Err(_) => tracing::warn!("OTLP: the last export did not finish in time; left behind"),
            }
        }
        let _ = self.meters.shutdown();
        if let Some((p, _)) = self.tracer.take() {
            let _ = p.shutdown();
        }
        if let Some((p, _)) = self.logger.take() {
            let _ = p.shutdown();
        }
    }
}

/// `service.name=guard`, the version and `host.name`, then `[otlp] resource_attributes`, then
/// the standard variables on top: `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` win, as
/// docs/otel.md says. (`Resource::builder()` would merge its detectors first, so anything added
/// after them would win instead; and its SDK detector names an unset service `unknown_service`.)
fn resource(s: &Settings, host: &str) -> Resource {
    let mut b = Resource::builder_empty()
        .with_service_name("guard")
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_attribute(KeyValue::new("host.name", host.to_owned()))
        .with_attributes(s.resource.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())))
        .with_detectors(&[Box::new(TelemetryResourceDetector), Box::new(EnvResourceDetector::new())]);
    if let Some(name) = std::env::var("OTEL_SERVICE_NAME").ok().filter(|n| !n.is_empty()) {
        b = b.with_service_name(name);
    }
    b.build()
}

fn log_severity(s: Severity) -> LogSeverity {
    match s {
        Severity::Low => LogSeverity::Info,
        Severity::Medium => LogSeverity::Warn,
        Severity::High => LogSeverity::Error,
        Severity::Critical => LogSeverity::Fatal,
    }
}

/// One CLIENT span per exchange, `{operation} {model}` as the conventions name it. The times
/// are wall clock: the end is now (the exchange just finished), the start its duration before.
fn exchange_span(tracer: &SdkTracer, model: &str, mut attrs: Vec<KeyValue>, x: &Exchange, cost: Option<Cost>) {
    let end = SystemTime::now();
    let took = x.timings.start_ns.and_then(|s| x.timings.end_ns.checked_sub(s)).map(Duration::from_nanos).unwrap_or_default();
    let op = genai::operation_name(x.endpoint);
    if x.usage_seen {
        let u = &x.usage;
        attrs.extend([
            KeyValue::new("gen_ai.usage.input_tokens", (u.input + u.cache_read + u.cache_write) as i64),
            KeyValue::new("gen_ai.usage.output_tokens", (u.output + u.reasoning) as i64),
            KeyValue::new("gen_ai.usage.cache_read.input_tokens", u.cache_read as i64),
            KeyValue::new("gen_ai.usage.cache_creation.input_tokens", u.cache_write as i64),
            KeyValue::new("gen_ai.usage.reasoning.output_tokens", u.reasoning as i64),
        ]);
    }
    if let Some(h) = &x.host {
        attrs.push(KeyValue::new("server.address", h.clone()));
    }
    if let Some(s) = x.status {
        attrs.push(KeyValue::new("http.response.status_code", i64::from(s)));
    }
    attrs.push(KeyValue::new("guard.streamed", x.streamed));
    // The calls the model asked for: a command's audit record names the same call id in
    // `proposed_by`, which links the command to this span.
    if !x.tool_calls.is_empty() {
        let ids: Vec<opentelemetry::StringValue> = x.tool_calls.iter().map(|c| c.call_id.clone().into()).collect();
        let tools: Vec<opentelemetry::StringValue> = x.tool_calls.iter().map(|c| c.tool.clone().into()).collect();
        attrs.push(KeyValue::new("guard.tool_call.ids", opentelemetry::Value::Array(ids.into())));
        attrs.push(KeyValue::new("guard.tool_call.names", opentelemetry::Value::Array(tools.into())));
    }
    match cost {
        Some(Cost::Usd(usd)) => attrs.push(KeyValue::new("guard.cost.usd", usd)),
        Some(Cost::Unpriced { .. }) => attrs.push(KeyValue::new("guard.cost.unpriced", true)),
        None => {}
    }
    let error = genai::error_type(x);
    if let Some(e) = &error {
        attrs.push(KeyValue::new("error.type", e.clone()));
    }
    let mut span = tracer
        .span_builder(format!("{op} {model}"))
        .with_kind(SpanKind::Client)
        .with_start_time(end.checked_sub(took).unwrap_or(end))
        .with_attributes(attrs)
        .start(tracer);
    if let Some(e) = error {
        span.set_status(Status::error(e));
    }
    span.end_with_timestamp(end);
}

/// The three exporters, built from the settings (the crate reads the `OTEL_*` variables the
/// settings leave to it).
struct Exporters {
    metrics: MetricExporter,
    spans: Option<SpanExporter>,
    logs: Option<LogExporter>,
}

impl Exporters {
    fn build(s: &Settings, resource: &Resource) -> Result<Self, OtlpError> {
        let err = |signal| move |e: opentelemetry_otlp::ExporterBuildError| OtlpError::Exporter { signal, reason: e.to_string() };
        let metrics = match s.protocol {
            Protocol::Grpc => grpc(MetricExporter::builder().with_tonic(), s, "/v1/metrics").build(),
            Protocol::HttpProtobuf => http(MetricExporter::builder().with_http(), s, "/v1/metrics").build(),
        }
        .map_err(err("metrics"))?;
        let spans = s
            .spans
            .then(|| match s.protocol {
                Protocol::Grpc => grpc(SpanExporter::builder().with_tonic(), s, "/v1/traces").build(),
                Protocol::HttpProtobuf => http(SpanExporter::builder().with_http(), s, "/v1/traces").build(),
            })
            .transpose()
            .map_err(err("spans"))?;
        let logs = s
            .logs
            .then(|| match s.protocol {
                Protocol::Grpc => grpc(LogExporter::builder().with_tonic(), s, "/v1/logs").build(),
                Protocol::HttpProtobuf => http(LogExporter::builder().with_http(), s, "/v1/logs").build(),
            })
            .transpose()
            .map_err(err("logs"))?;
        let mut spans = spans;
        let mut logs = logs;
        // The SDK's batch processors pass the resource on; guard's queue does not, so here.
        if let Some(e) = spans.as_mut() {
            opentelemetry_sdk::trace::SpanExporter::set_resource(e, resource);
        }
        if let Some(e) = logs.as_mut() {
            opentelemetry_sdk::logs::LogExporter::set_resource(e, resource);
        }
        Ok(Self { metrics, spans, logs })
    }
}

fn grpc<B: WithExportConfig + WithTonicConfig>(mut b: B, s: &Settings, path: &str) -> B {
    if let Some(e) = s.signal_endpoint(path) {
        b = b.with_endpoint(e);
    }
    if let Some(t) = s.timeout {
        b = b.with_timeout(t);
    }
    if !s.headers.is_empty() {
        let mut md = tonic::metadata::MetadataMap::new();
        for (k, v) in &s.headers {
            // Names and values were checked when the config was read.
            if let (Ok(k), Ok(v)) = (tonic::metadata::AsciiMetadataKey::from_bytes(k.as_bytes()), v.parse()) {
                md.insert(k, v);
            }
        }
        b = b.with_metadata(md);
    }
    b
}

fn http<B: WithExportConfig + WithHttpConfig>(mut b: B, s: &Settings, path: &str) -> B {
    if let Some(e) = s.signal_endpoint(path) {
        b = b.with_endpoint(e);
    }
    if let Some(t) = s.timeout {
        b = b.with_timeout(t);
    }
    b = b.with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
    if !s.headers.is_empty() {
        b = b.with_headers(s.headers.clone().into_iter().collect());
    }
    b
}

/// The SDK's provider takes its reader by value; the export thread needs the same reader to
/// collect from, so the provider gets this shared handle.
#[derive(Debug)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut opentelemetry_sdk::metrics::data::ResourceMetrics) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: opentelemetry_sdk::metrics::InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

#[cfg(test)]
mod tests;
