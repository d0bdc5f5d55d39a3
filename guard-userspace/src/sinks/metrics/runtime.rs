//! guard's own state: agent processes, event losses, TLS targets, build.

use std::sync::Mutex;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, info::Info},
    registry::Registry,
};

use super::{commands::AgentLabel, labels::LossSource};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SourceLabel {
    pub source: LossSource,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LibraryLabel {
    pub library: String,
    pub strategy: String,
}

/// `reason` is a class of errno (`crate::kernel::errno::FailReason`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AttachFailureLabel {
    pub library: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub(crate) struct BlindLabel {
    pub agent: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

pub(crate) struct RuntimeMetrics {
    pub(super) agent_processes: Family<AgentLabel, Gauge>,
    pub(super) lost: Family<SourceLabel, Counter>,
    /// The last cumulative total seen per source, to turn totals into increments.
    pub(super) lost_seen: Mutex<[u64; LossSource::ALL.len()]>,
    pub(super) tls_targets: Family<LibraryLabel, Gauge>,
    pub(super) tls_attach_failures: Family<AttachFailureLabel, Counter>,
    pub(super) tls_blind: Family<BlindLabel, Gauge>,
    /// Every blind-spot series ever set, so that one that clears reads 0 rather than vanishing.
    pub(super) tls_blind_seen: Mutex<std::collections::BTreeSet<BlindLabel>>,
}

impl RuntimeMetrics {
    pub(crate) fn register(reg: &mut Registry) -> Self {
        let agent_processes = Family::default();
        reg.register(
            "guard_agent_processes",
            "Live processes attributed to each agent (the agent and its descendants)",
            agent_processes.clone(),
        );
        let lost: Family<SourceLabel, Counter> = Family::default();
        reg.register(
            "guard_events_lost",
            "Events or bytes guard could not process, by where they were lost",
            lost.clone(),
        );
        // Every source is present from the start, so that `rate()` sees a zero before the first loss.
        for source in LossSource::ALL {
            let _ = lost.get_or_create(&SourceLabel { source });
        }
        let tls_targets = Family::default();
        reg.register(
            "guard_tls_targets_attached",
            "Files whose TLS functions guard has hooked, by TLS library and by the strategy that found the hooks",
            tls_targets.clone(),
        );
        let tls_attach_failures = Family::default();
        reg.register(
            "guard_tls_attach_failures",
            "Attach calls to a TLS file that failed, by TLS library and by errno class (too_many_files, no_such_file, invalid, permission, other)",
            tls_attach_failures.clone(),
        );
        let tls_blind = Family::default();
        reg.register(
            "guard_tls_blind_processes",
            "Agent processes holding TCP connections while guard has no verified hook into their TLS, by agent and reason",
            tls_blind.clone(),
        );
        reg.register(
            "guard_build",
            "guard's version",
            Info::new(VersionLabel { version: env!("CARGO_PKG_VERSION") }),
        );
        Self {
            agent_processes,
            lost,
            lost_seen: Mutex::new([0; LossSource::ALL.len()]),
            tls_targets,
            tls_attach_failures,
            tls_blind,
            tls_blind_seen: Mutex::default(),
        }
    }
}
