//! guard's own families (destructive commands, losses, blind spots, enforcement, …) go out over
//! OTLP under their Prometheus names, read from the same registry `/metrics` serves: one source
//! of truth, and a family added to the registry is exported with no change here.
//!
//! The registry is read through its OpenMetrics text. prometheus-client has no other public way
//! to read values back (its protobuf encoder needs `protoc` at build time), and the text here is
//! only what that encoder writes, so the parser below reads that and nothing more.
//! Counters and gauges are bridged as observable instruments; histograms are not (the SDK has no
//! observable histogram), and the GenAI histograms cover the LLM ones.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use opentelemetry::{KeyValue, metrics::Meter};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    /// `info`: a gauge of 1 whose labels are the information.
    Info,
    /// Not bridged.
    Other,
}

#[derive(Debug, PartialEq)]
pub(crate) struct Family {
    pub name: String,
    pub kind: Kind,
    pub help: String,
    pub samples: Vec<Sample>,
}

#[derive(Debug, PartialEq)]
pub(crate) struct Sample {
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Families of an OpenMetrics text, in order. Lines that do not parse are skipped.
pub(crate) fn parse(text: &str) -> Vec<Family> {
    let mut out: Vec<Family> = Vec::new();
    let mut help: HashMap<&str, &str> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, h)) = rest.split_once(' ') {
                help.insert(name, h);
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let Some((name, kind)) = rest.split_once(' ') else { continue };
            let kind = match kind {
                "counter" => Kind::Counter,
                "gauge" => Kind::Gauge,
                "info" => Kind::Info,
                _ => Kind::Other,
            };
            let help = help.get(name).map(|h| unescape(h)).unwrap_or_default();
            out.push(Family { name: name.to_owned(), kind, help, samples: Vec::new() });
        } else if !line.starts_with('#')
            && let Some(f) = out.last_mut()
            && let Some(s) = sample(line, f)
        {
            f.samples.push(s);
        }
    }
    out
}

/// One sample line of the family `f`: its own name (`_total` for a counter, `_info` for info),
/// optional labels, a value.
fn sample(line: &str, f: &Family) -> Option<Sample> {
    let suffix = match f.kind {
        Kind::Counter => "_total",
        Kind::Info => "_info",
        Kind::Gauge => "",
        Kind::Other => return None,
    };
    let rest = line.strip_prefix(f.name.as_str())?.strip_prefix(suffix)?;
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(r) => labels(r)?,
        None => (Vec::new(), rest),
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample { labels, value })
}

/// `a="x",b="y"}` and what follows the closing brace.
fn labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut out = Vec::new();
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return Some((out, rest));
        }
        let (name, rest) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        out.push((name.trim_start_matches(',').to_owned(), value));
        s = rest[end + 1..].trim_start_matches(',');
    }
}

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\\\", "\\")
}

/// The values the observable instruments report, refreshed from the registry before each
/// collection (the callbacks run inside it, on the export thread).
#[derive(Clone, Default)]
pub(crate) struct Snapshot(Arc<Mutex<HashMap<String, Points>>>);

/// The samples of one family: attributes and value.
type Points = Vec<(Vec<KeyValue>, f64)>;

impl Snapshot {
    pub(crate) fn refresh(&self, text: &str) {
        let fresh = parse(text)
            .into_iter()
            .map(|f| {
                let points = f.samples.into_iter().map(|s| (attributes(s.labels), s.value)).collect();
                (f.name, points)
            })
            .collect();
        if let Ok(mut m) = self.0.lock() {
            *m = fresh;
        }
    }

    fn each(&self, name: &str, mut f: impl FnMut(f64, &[KeyValue])) {
        if let Ok(m) = self.0.lock()
            && let Some(points) = m.get(name)
        {
            for (attrs, v) in points {
                f(*v, attrs);
            }
        }
    }
}

fn attributes(labels: Vec<(String, String)>) -> Vec<KeyValue> {
    labels.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect()
}

/// One observable instrument per bridged family of `text` (the registry at start: every family
/// is registered before guard runs). Returns how many were registered.
pub(crate) fn register(meter: &Meter, text: &str, snap: &Snapshot) -> usize {
    let mut n = 0;
    for f in parse(text) {
        let s = snap.clone();
        let name = f.name.clone();
        match f.kind {
            Kind::Counter => {
                meter
                    .f64_observable_counter(f.name)
                    .with_description(f.help)
                    .with_callback(move |o| s.each(&name, |v, a| o.observe(v, a)))
                    .build();
            }
            Kind::Gauge | Kind::Info => {
                meter
                    .f64_observable_gauge(f.name)
                    .with_description(f.help)
                    .with_callback(move |o| s.each(&name, |v, a| o.observe(v, a)))
                    .build();
            }
            Kind::Other => continue,
        }
        n += 1;
    }
    n
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use super::*;

    const TEXT: &str = concat!(
        "# HELP guard_destructive_commands Destructive commands.\n",
        "# TYPE guard_destructive_commands counter\n",
        "guard_destructive_commands_total{agent=\"claude-code\",rule=\"rm \\\"q\\\" \\\\ x\",severity=\"critical\"} 3\n",
        "# HELP guard_agent_processes Live processes.\n",
        "# TYPE guard_agent_processes gauge\n",
        "guard_agent_processes{agent=\"codex\"} 2\n",
        "guard_agent_processes{agent=\"none\"} 0\n",
        "# HELP guard_llm_request_duration_seconds Duration.\n",
        "# TYPE guard_llm_request_duration_seconds histogram\n",
        "guard_llm_request_duration_seconds_bucket{le=\"0.1\"} 0\n",
        "# HELP guard_build Build.\n",
        "# TYPE guard_build info\n",
        "guard_build_info{version=\"0.1.0\"} 1\n",
        "# HELP guard_cost_usd Cost.\n",
        "# TYPE guard_cost_usd counter\n",
        "guard_cost_usd_total 0.0125\n",
        "# EOF\n",
    );

    #[test]
    fn reads_what_prometheus_client_writes() {
        let fams = parse(TEXT);
        let names: Vec<_> = fams.iter().map(|f| (f.name.as_str(), f.kind, f.samples.len())).collect();
        assert_eq!(
            names,
            [
                ("guard_destructive_commands", Kind::Counter, 1),
                ("guard_agent_processes", Kind::Gauge, 2),
                ("guard_llm_request_duration_seconds", Kind::Other, 0),
                ("guard_build", Kind::Info, 1),
                ("guard_cost_usd", Kind::Counter, 1),
            ]
        );
        let d = &fams[0].samples[0];
        assert_eq!(d.value, 3.0);
        assert_eq!(d.labels[1], ("rule".to_owned(), "rm \"q\" \\ x".to_owned()));
        assert_eq!(d.labels[2], ("severity".to_owned(), "critical".to_owned()));
        assert_eq!(fams[0].help, "Destructive commands.");
        assert_eq!(fams[4].samples[0], Sample { labels: vec![], value: 0.0125 });
    }

    #[test]
    fn the_real_registry_parses_whole() {
        let m = crate::sinks::metrics::Metrics::default();
        m.on_destructive("codex", "rm-rf-home", guard_core::rules::Severity::Critical, guard_core::audit::Action::Observed);
        let fams = parse(&m.encode());
        let d = fams.iter().find(|f| f.name == "guard_destructive_commands").expect("destructive family");
        assert_eq!(d.samples.len(), 1);
        assert_eq!(d.samples[0].value, 1.0);
        // Every family of the text is read (none swallowed by a line the parser misread).
        let typed = m.encode().lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(fams.len(), typed);
        assert!(fams.iter().filter(|f| f.kind != Kind::Other).count() >= 10);
    }
}
