//! Brings the gauges and the cumulative loss counters up to date, every few seconds and at stop.

use std::{collections::HashSet, sync::atomic::Ordering::Relaxed};

use guard_common::event::{LOSS_SLOTS, LossSlot};
use guard_core::{
    Engine,
    hooks::{Library, Strategy},
};

use super::tls::Tls;
use crate::{
    kernel::{Kernel, reader::ReaderStats},
    sinks::{
        Sinks,
        metrics::{LossSource, Metrics},
    },
};

/// (library, strategy) pairs that have had a `guard_tls_targets_attached` series: each keeps
/// one, at 0 once its files are gone.
#[derive(Default)]
pub(crate) struct Gauges {
    tls_seen: HashSet<(Library, Strategy)>,
}

impl Gauges {
    pub(crate) fn refresh(&mut self, kernel: &Kernel, reader: &ReaderStats, engine: &Engine, tls: &Tls, sinks: &Sinks) {
        let m: &Metrics = &sinks.metrics;
        let counts = engine.table().agent_counts();
        m.set_agent_processes(counts.into_iter().map(|(a, n)| (a.to_string(), n)));
        if let Ok(totals) = kernel.losses() {
            kernel_losses(m, &totals);
        }
        m.set_lost_total(LossSource::ChannelFull, reader.channel_full.load(Relaxed));
        let s = engine.stats();
        m.set_lost_total(LossSource::DecodeError, s.decode_errors);
        m.set_lost_total(LossSource::StreamGap, s.pipeline.stream_gaps);
        m.set_lost_total(LossSource::ExecDropped, s.pipeline.execs_dropped);
        m.set_lost_total(LossSource::UnverifiedHook, s.verify.dropped_events);
        let d = s.decoder;
        m.set_lost_total(LossSource::DecoderError, d.http_errors + d.decode_errors + d.bad_payloads + d.dropped_events);
        m.set_lost_total(LossSource::ToolCalls, d.tool_calls_dropped + d.tool_args_capped + s.link.calls_evicted);
        m.set_tls_blind(tls.blind(kernel, engine));
        for ((library, reason), n) in tls.attach_failures() {
            m.set_attach_failures_total(library.as_label(), reason.as_str(), n);
        }
        let by_strategy = kernel.attached_by_strategy();
        self.tls_seen.extend(by_strategy.keys().copied());
        for key @ (library, strategy) in &self.tls_seen {
            let n = by_strategy.get(key).copied().unwrap_or(0) as i64;
            m.set_tls_targets(library.as_label(), strategy.as_label(), n);
        }
    }
}

/// Every kernel loss slot, each as its own `guard_events_lost_total` source.
fn kernel_losses(m: &Metrics, totals: &[u64; LOSS_SLOTS as usize]) {
    for slot in LossSlot::ALL {
        m.set_lost_total(slot.into(), totals[slot as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::metrics::LabelCaps;

    #[test]
    fn every_kernel_loss_slot_is_exported() {
        let m = Metrics::new(&LabelCaps::default());
        // A distinct total per slot, so a slot exported under another's source shows.
        let totals = std::array::from_fn(|i| 100 + i as u64);
        kernel_losses(&m, &totals);
        let text = m.encode();
        for slot in LossSlot::ALL {
            let line = format!("guard_events_lost_total{{source=\"{}\"}} {}\n", LossSource::from(slot).as_str(), 100 + slot as u64);
            assert!(text.contains(&line), "{slot:?}: no `{line}` in\n{text}");
        }
    }
}
