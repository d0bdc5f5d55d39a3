//! The one engine: kernel record bytes (or decoded events) in; verdicts on guessed hooks, decoded
//! exchanges, commands and destructive-command records out. `guard run` feeds it from the ring
//! buffer, `guard replay` from a recording, the tests and benchmarks from bytes they made; all
//! of them through [`Engine::push_record`] or [`Engine::push`].
//!
//! decode → [`Verifier`] → [`Pipeline`] → [`Governor`]. What the engine asks of the system goes
//! through a [`Lookup`], and with recording on, every answer is kept as a [`Fact`] after the
//! event that asked, so a replay gets the same answers ([`Replay`]).

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod api_tests;
mod replay;
#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests;

use std::{sync::Arc, time::SystemTime};

use serde::Serialize;

pub use self::replay::Replay;

use crate::{
    cost::PriceTable,
    deletions::{DeletionConfig, DeletionStats},
    enforce::{GateRecord, Mode},
    events::{
        self, Event,
        record::{Fact, Line},
    },
    govern::{Governed, Governor, Host, LinkLimits, LinkStats, Lookup, ScopeAdd},
    pipeline::{Limits, Output, Pipeline, PipelineStats},
    places::{PlaceRoot, Places},
    process::{Catalog, ProcessTable, SeedProcess, TableStats},
    protocols::DecoderStats,
    requests::RequestRuleSet,
    rules::RuleSet,
    verify::{self, Verdict, Verifier},
};

/// What the engine is built from.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub limits: Limits,
    pub verify: verify::Limits,
    pub catalog: Arc<Catalog>,
    pub rules: RuleSet,
    pub host: Host,
    /// Keep what a recording needs in [`Outputs::recorded`].
    pub record: bool,
    /// What exchanges cost (the built-in table plus the config's entries).
    pub prices: Arc<PriceTable>,
    /// How commands are linked to the tool calls that proposed them.
    pub link: LinkLimits,
    /// Rules on the requests of agents' process trees.
    pub requests: RequestRuleSet,
    /// `[enforce] mode`: whether a blocking request rule's match is `would_block` or `observed`.
    pub mode: Mode,
    /// How agents' deletions are counted and audited.
    pub deletions: DeletionConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            verify: verify::Limits::default(),
            catalog: Arc::new(Catalog::builtin()),
            rules: RuleSet::builtin(),
            host: Host::default(),
            record: false,
            prices: PriceTable::builtin(),
            link: LinkLimits::default(),
            requests: RequestRuleSet::builtin(),
            mode: Mode::default(),
            deletions: DeletionConfig::default(),
        }
    }
}

/// What one push produced. Reused across pushes: the caller drains or [`clear`](Self::clear)s it.
#[derive(Debug, Default)]
pub struct Outputs {
    /// With recording on: each event that passed verification, then the facts it needed.
    pub recorded: Vec<Line>,
    /// The pipeline's records, in order: execs, forks, exits, exchanges, stream events.
    pub pipeline: Vec<Output>,
    /// The same, attributed and judged.
    pub governed: Vec<Governed>,
    /// Guessed hooks that were verified or rejected.
    pub verdicts: Vec<Verdict>,
    /// Processes the exec gate must now hold in an agent's scope.
    pub scope: Vec<ScopeAdd>,
}

impl Outputs {
    pub fn clear(&mut self) {
        self.recorded.clear();
        self.pipeline.clear();
        self.governed.clear();
        self.verdicts.clear();
        self.scope.clear();
    }
}

/// Counters over the engine's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    /// Records that were not an event (short, unknown kind, bad length).
    pub decode_errors: u64,
    pub pipeline: PipelineStats,
    pub decoder: DecoderStats,
    pub verify: verify::Stats,
    /// Events held back until their guessed hook is verified.
    pub unverified_held: u64,
    pub table: TableStats,
    /// Repeats of a destructive command that were suppressed.
    pub suppressed_repeats: u64,
    /// Tool calls kept for linking, dropped early, and commands linked.
    pub link: LinkStats,
    /// Agents' deletions counted, and records that were not.
    pub deletions: DeletionStats,
}

pub struct Engine {
    verifier: Verifier,
    pipeline: Pipeline,
    governor: Governor,
    record: bool,
    decode_errors: u64,
    passed: Vec<Event>,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Self {
            verifier: Verifier::new(cfg.verify),
            pipeline: Pipeline::new(&cfg.limits),
            governor: Governor::new(cfg.catalog, cfg.rules, cfg.host, cfg.link)
                .with_prices(cfg.prices)
                .with_requests(cfg.requests, cfg.mode)
                .with_deletions(cfg.deletions),
            record: cfg.record,
            decode_errors: 0,
            passed: Vec::new(),
        }
    }

    /// Loads the processes already running, and records the host and them. Every agent process
    /// among them goes to [`Outputs::scope`].
    pub fn start(&mut self, running: Vec<SeedProcess>, out: &mut Outputs) {
        if self.record {
            out.recorded.push(Line::Fact(Fact::host(self.governor.host())));
            out.recorded.push(Line::Fact(Fact::Seed { processes: running.clone() }));
        }
        self.governor.seed(running, &mut out.scope);
    }

    /// An exec the gate answered: one [`Governed::Destructive`] per match not seen just before
    /// (the engine's own records de-duplicate against it), and a recording line.
    pub fn gate_record(&mut self, r: &GateRecord, wall: SystemTime, out: &mut Outputs) {
        if self.record {
            out.recorded.push(Line::Gate(r.clone()));
        }
        self.governor.gate(r, wall, &mut out.governed);
    }

    /// The places list (`crate::places`) from now on, recorded as a fact: the daemon calls it at
    /// start and whenever agents' work trees come or go.
    pub fn set_places(&mut self, roots: Vec<PlaceRoot>, out: &mut Outputs) {
        if self.record {
            out.recorded.push(Line::Fact(Fact::Places { roots: roots.clone() }));
        }
        self.governor.set_places(Places::new(roots));
    }

    /// The places list in force.
    pub fn places(&self) -> &Places {
        self.governor.deletions().places()
    }

    /// A hooked file whose hooks are a guess: its events wait until its traffic verifies it.
    pub fn guessed(&mut self, target: u32) {
        self.verifier.guessed(target);
    }

    /// Where a guessed file stands (`None`: not a guess).
    pub fn hook_state(&self, target: u32) -> Option<verify::State> {
        self.verifier.state(target)
    }

    pub fn table(&self) -> &ProcessTable {
        self.governor.table()
    }

    /// One ring-buffer record. An undecodable one is counted and skipped. Given `Bytes`, TLS
    /// payloads share the record's buffer instead of being copied.
    pub fn push_record<R: events::RawRecord + ?Sized>(
        &mut self,
        raw: &R,
        wall: SystemTime,
        lookup: &mut dyn Lookup,
        out: &mut Outputs,
    ) -> Result<(), events::DecodeError> {
        match events::decode(raw) {
            Ok(ev) => {
                self.push(ev, wall, lookup, out);
                Ok(())
            }
            Err(e) => {
                self.decode_errors += 1;
                Err(e)
            }
        }
    }

    /// One decoded event. `wall` stamps audit records; nothing else reads it.
    pub fn push(&mut self, ev: Event, wall: SystemTime, lookup: &mut dyn Lookup, out: &mut Outputs) {
        let mut passed = std::mem::take(&mut self.passed);
        self.verifier.push(ev, &mut passed, &mut out.verdicts);
        for ev in passed.drain(..) {
            if self.record {
                out.recorded.push(Line::Event(ev.clone()));
            }
            let first = out.pipeline.len();
            self.pipeline.push(ev, &mut out.pipeline);
            let mut tap = Tap { inner: lookup, lines: self.record.then_some(&mut out.recorded) };
            for o in &out.pipeline[first..] {
                self.governor.push(o, wall, &mut tap, &mut out.governed, &mut out.scope);
            }
        }
        self.passed = passed;
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            decode_errors: self.decode_errors,
            pipeline: self.pipeline.stats(),
            decoder: self.pipeline.decoder_stats(),
            verify: self.verifier.stats,
            unverified_held: self.verifier.held_events() as u64,
            table: self.governor.table().stats(),
            suppressed_repeats: self.governor.suppressed_repeats(),
            link: self.governor.link_stats(),
            deletions: self.governor.deletions().stats,
        }
    }
}

/// A lookup whose answers are also written down as facts.
struct Tap<'a> {
    inner: &'a mut dyn Lookup,
    lines: Option<&'a mut Vec<Line>>,
}

impl Lookup for Tap<'_> {
    fn process(&mut self, pid: u32) -> Option<SeedProcess> {
        let found = self.inner.process(pid);
        if let Some(l) = self.lines.as_deref_mut() {
            l.push(Line::Fact(Fact::Process { pid, found: found.clone() }));
        }
        found
    }
    fn cwd(&mut self, pid: u32) -> Option<String> {
        let cwd = self.inner.cwd(pid);
        if let Some(l) = self.lines.as_deref_mut() {
            l.push(Line::Fact(Fact::Cwd { pid, cwd: cwd.clone() }));
        }
        cwd
    }
}
