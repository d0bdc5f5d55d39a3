//! The bounded queue between the daemon loop and the export thread. The SDK's batch processors
//! drop silently when full; these processors hand each finished span or log record to the queue
//! without waiting, and count what does not fit (`guard_otlp_dropped_total`).

use std::{
    sync::mpsc::{SyncSender, TrySendError},
    time::Duration,
};

use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    logs::{LogProcessor, SdkLogRecord},
    trace::{Span, SpanData, SpanProcessor},
};
use prometheus_client::metrics::counter::Counter;

/// What the export thread receives.
pub(crate) enum Item {
    Span(Box<SpanData>),
    Log(Box<(SdkLogRecord, InstrumentationScope)>),
}

#[derive(Debug)]
pub(crate) struct Queue {
    tx: SyncSender<Item>,
    dropped: Counter,
}

impl Queue {
    pub(crate) fn new(tx: SyncSender<Item>, dropped: Counter) -> Self {
        Self { tx, dropped }
    }

    fn offer(&self, item: Item) {
        match self.tx.try_send(item) {
            Ok(()) => {}
            // Disconnected: the export thread is gone (stopping); the item is lost all the same.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }
}

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        self.offer(Item::Span(Box::new(span)));
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

impl LogProcessor for Queue {
    fn emit(&self, data: &mut SdkLogRecord, scope: &InstrumentationScope) {
        self.offer(Item::Log(Box::new((data.clone(), scope.clone()))));
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}
