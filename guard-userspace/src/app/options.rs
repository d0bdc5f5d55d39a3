//! What `guard run` is started with: the config file and the flags, resolved.

use std::{path::PathBuf, time::Duration};

use guard_core::engine::EngineConfig;

use super::config::EnforceSection;
use crate::{
    kernel::LoadOptions,
    sinks::metrics::{LabelCaps, MetricsListener},
};

#[derive(Debug)]
pub(crate) struct RunOptions {
    pub load: LoadOptions,
    /// The engine's catalog, rules and limits (`record` is set from [`Self::record`]).
    pub engine: EngineConfig,
    pub record: Option<PathBuf>,
    /// The audit log: a path, or `-` for stdout.
    pub audit_log: Option<String>,
    /// The `/metrics` listener, bound by the caller (so a taken port fails before anything loads).
    pub metrics: Option<MetricsListener>,
    pub labels: LabelCaps,
    /// Records buffered between the reader and the engine.
    pub channel_capacity: usize,
    /// How often every process's mappings are rescanned for TLS libraries (catches dlopen).
    pub rescan_every: Duration,
    /// The exec gate's settings.
    pub enforce: EnforceSection,
    /// OTLP export; `None` when off.
    pub otlp: Option<crate::sinks::otlp::settings::Settings>,
    /// `[deletions]`: the places list is built from it.
    pub deletions: super::config::DeletionsConfig,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            load: LoadOptions::default(),
            engine: EngineConfig::default(),
            record: None,
            audit_log: None,
            metrics: None,
            labels: LabelCaps::default(),
            channel_capacity: 65_536,
            rescan_every: Duration::from_secs(2),
            enforce: EnforceSection::default(),
            otlp: None,
            deletions: super::config::DeletionsConfig::default(),
        }
    }
}
