//! The first exec of a file guard has not analysed (issue 17): held until its TLS hooks are in
//! place. Handles are clones of the series, for the gate's threads.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

/// From a script's quick miss to a 300 MB binary's analysis.
const HOLD_BUCKETS: [f64; 12] = [100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 250e-3, 1.0, 2.5];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabel {
    pub outcome: &'static str,
}

pub(crate) struct FirstExecMetrics {
    outcomes: Family<OutcomeLabel, Counter>,
    loads: Family<OutcomeLabel, Counter>,
    hold: Histogram,
}

/// The same outcomes for a library a running program maps for execution (the library-load
/// stop), counted apart: a first exec and a first load are different events.
#[derive(Clone)]
pub(crate) struct Outcomes {
    pub hooked: Counter,
    pub no_hooks: Counter,
    pub late: Counter,
    pub unheld: Counter,
}

/// Where the first-exec threads count.
#[derive(Clone)]
pub(crate) struct FirstExecHandles {
    /// Analysed and its probes attached before it ran.
    pub hooked: Counter,
    /// Analysed: nothing to hook (no TLS, a script, or a TLS library guard cannot hook).
    pub no_hooks: Counter,
    /// A program ran before its hooks (a loss, not silence): the hold ran out, or a scan found
    /// the file after it started (no hold: the gate off, a library loaded with dlopen).
    pub late: Counter,
    /// The analysis queue was full: the program ran unanalysed.
    pub unheld: Counter,
    pub hold: Histogram,
    /// Libraries loaded by running programs.
    pub loads: Outcomes,
}

impl FirstExecMetrics {
    pub(crate) fn register(reg: &mut Registry) -> Self {
        let outcomes: Family<OutcomeLabel, Counter> = Family::default();
        reg.register(
            "guard_tls_first_exec",
            "First execs of a file guard had not analysed, held until its TLS hooks were in place, by outcome (hooked, no_hooks, late: hooked after a program of it ran, unheld)",
            outcomes.clone(),
        );
        let loads: Family<OutcomeLabel, Counter> = Family::default();
        reg.register(
            "guard_tls_first_load",
            "Libraries a running program mapped for execution that guard had not analysed, held until their TLS hooks were in place, by outcome (hooked, no_hooks, late: the hold ran out, unheld)",
            loads.clone(),
        );
        let hold = Histogram::new(HOLD_BUCKETS);
        reg.register(
            "guard_tls_first_exec_hold_seconds",
            "How long a file's first exec waited for its analysis and attach",
            hold.clone(),
        );
        Self { outcomes, loads, hold }
    }

    pub(crate) fn handles(&self) -> FirstExecHandles {
        let c = |outcome| self.outcomes.get_or_create(&OutcomeLabel { outcome }).clone();
        let l = |outcome| self.loads.get_or_create(&OutcomeLabel { outcome }).clone();
        let loads = Outcomes { hooked: l("hooked"), no_hooks: l("no_hooks"), late: l("late"), unheld: l("unheld") };
        FirstExecHandles { hooked: c("hooked"), no_hooks: c("no_hooks"), late: c("late"), unheld: c("unheld"), hold: self.hold.clone(), loads }
    }
}
