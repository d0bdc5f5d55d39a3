//! The OTLP export's own health: what it dropped and which exports failed. Handles are clones
//! of the series, for the export thread and the queue.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SignalLabel {
    pub signal: &'static str,
}

pub(crate) struct OtlpMetrics {
    dropped: Family<SignalLabel, Counter>,
    failed: Family<SignalLabel, Counter>,
}

/// Counters of one signal (`metrics`, `spans`, `logs`).
#[derive(Clone)]
pub(crate) struct SignalHandles {
    /// Items lost: the queue was full, or the export that carried them failed.
    pub dropped: Counter,
    /// Export calls that failed or ran out of time.
    pub failed: Counter,
}

impl OtlpMetrics {
    pub(crate) fn register(reg: &mut Registry) -> Self {
        let dropped = Family::default();
        reg.register(
            "guard_otlp_dropped",
            "Spans and log records the OTLP export dropped: its queue was full (a slow or absent collector) or the export that carried them failed. Metrics are cumulative and never dropped: the next export carries them",
            dropped.clone(),
        );
        let failed = Family::default();
        reg.register(
            "guard_otlp_export_failures",
            "OTLP export calls that failed or ran out of time, by signal",
            failed.clone(),
        );
        Self { dropped, failed }
    }

    /// Creates the signal's series at 0, so a dashboard sees them before the first loss.
    pub(crate) fn signal(&self, signal: &'static str) -> SignalHandles {
        let l = SignalLabel { signal };
        SignalHandles { dropped: self.dropped.get_or_create(&l).clone(), failed: self.failed.get_or_create(&l).clone() }
    }
}
