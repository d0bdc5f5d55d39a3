//! What `cargo xtask bench otlp` drives (through `guard::testing`): the sink path one counted
//! exchange takes in the daemon loop, with and without the OTLP export.

use std::sync::Arc;

use guard_core::{cost::Cost, protocols::Exchange};

use super::{Otlp, settings::Settings};
use crate::{app::config::OtlpConfig, sinks::metrics::Metrics};

pub struct SinkBench {
    metrics: Arc<Metrics>,
    otlp: Option<Otlp>,
}

impl SinkBench {
    /// Prometheus only (`endpoint: None`), or with OTLP to `endpoint` (metrics every second,
    /// spans when `spans`).
    pub fn new(endpoint: Option<&str>, spans: bool) -> Result<Self, String> {
        let metrics = Arc::new(Metrics::default());
        let otlp = match endpoint {
            Some(e) => {
                let cfg = OtlpConfig { endpoint: Some(e.into()), metric_export_interval_ms: Some(1000), spans, ..OtlpConfig::default() };
                let s = Settings::resolve(&cfg, &|_| None).map_err(|e| e.to_string())?.ok_or("otlp off")?;
                Some(Otlp::start(&s, metrics.clone(), "bench").map_err(|e| e.to_string())?)
            }
            None => None,
        };
        Ok(Self { metrics, otlp })
    }

    /// One exchange through the sinks, as `Sinks::take` serves a `Governed::Exchange`.
    pub fn exchange(&self, agent: &str, x: &Exchange, cost: Option<Cost>) {
        if let Some(c) = self.metrics.on_exchange(agent, x, cost)
            && let Some(o) = &self.otlp
        {
            o.on_exchange(&c, x, cost);
        }
    }

    /// The `/metrics` text (the OTLP health counters included).
    pub fn encode(&self) -> String {
        self.metrics.encode()
    }

    /// Stops the export thread.
    pub fn finish(self) {
        if let Some(o) = self.otlp {
            o.shutdown();
        }
    }
}
