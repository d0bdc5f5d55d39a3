//! `[otlp]`: OpenTelemetry export. Every key matches a standard `OTEL_*` variable; a key set here
//! wins over the variable, and a variable fills a key left out (see docs/otel.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// `true` exports even to the default endpoint, `false` never exports. Unset: export when an
    /// endpoint is configured, here or in `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub enabled: Option<bool>,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL (`http://collector:4318` for
    /// `http/protobuf`, which appends `/v1/metrics`, …; `http://collector:4317` for `grpc`).
    pub endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf` (the default) or `grpc`.
    pub protocol: Option<String>,
    /// `OTEL_EXPORTER_OTLP_HEADERS`, added to it: sent with every export (an API key, a tenant).
    /// Never logged.
    pub headers: BTreeMap<String, String>,
    /// `OTEL_METRIC_EXPORT_INTERVAL`, in milliseconds (default 60000).
    pub metric_export_interval_ms: Option<u64>,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, in milliseconds (default 10000): one export's bound.
    pub timeout_ms: Option<u64>,
    /// `OTEL_RESOURCE_ATTRIBUTES`, added to it: attributes of every signal (`deployment.environment`, …).
    pub resource_attributes: BTreeMap<String, String>,
    /// One span per LLM exchange.
    pub spans: bool,
    /// Audit records as OTLP log records.
    pub logs: bool,
    /// Spans and log records waiting for export; past it they are dropped and counted
    /// (`guard_otlp_dropped_total`), so a slow collector never holds the daemon.
    pub queue: usize,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            endpoint: None,
            protocol: None,
            headers: BTreeMap::new(),
            metric_export_interval_ms: None,
            timeout_ms: None,
            resource_attributes: BTreeMap::new(),
            spans: false,
            logs: false,
            queue: 2048,
        }
    }
}
