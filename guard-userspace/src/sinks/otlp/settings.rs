//! What the exporter does, from `[otlp]` and the standard `OTEL_*` variables: a key in the file
//! wins, a variable fills a key the file left out, then the specification's defaults.

use std::{collections::BTreeMap, time::Duration};

use crate::app::config::OtlpConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "grpc" => Some(Self::Grpc),
            "http/protobuf" => Some(Self::HttpProtobuf),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub protocol: Protocol,
    /// The base endpoint from `[otlp]`; `None` leaves it to the exporter, which reads
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` and the per-signal variables as the specification says.
    pub endpoint: Option<String>,
    /// From `[otlp]`; the exporter adds `OTEL_EXPORTER_OTLP_HEADERS` itself.
    pub headers: BTreeMap<String, String>,
    pub interval: Duration,
    /// From `[otlp]`; `None` leaves it to the exporter (`OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s).
    pub timeout: Option<Duration>,
    /// From `[otlp]`; the SDK adds `OTEL_RESOURCE_ATTRIBUTES` itself.
    pub resource: BTreeMap<String, String>,
    pub spans: bool,
    pub logs: bool,
    pub queue: usize,
}

/// Header values are credentials: never printed.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("protocol", &self.protocol)
            .field("endpoint", &self.endpoint)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("interval", &self.interval)
            .field("spans", &self.spans)
            .field("logs", &self.logs)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SettingsError {
    #[error("{key}: {value:?} is not a protocol guard exports (use `http/protobuf` or `grpc`)")]
    Protocol { key: &'static str, value: String },
    #[error("{key}: {value:?} is not a number of milliseconds from 1 to 86400000")]
    Millis { key: &'static str, value: String },
    #[error("otlp.endpoint: {0:?} is not an http:// URL")]
    Endpoint(String),
    #[error("{key}: {value:?}: guard exports in plain text (http://) to a collector on this host or node, which forwards over TLS; TLS from guard itself is not built in")]
    Tls { key: &'static str, value: String },
    #[error("otlp.queue must be at least 1")]
    Queue,
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
const ENDPOINT_VARS: [&str; 4] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
];

impl Settings {
    /// `None` when nothing asks for export. `env` reads a variable (the process environment in
    /// the daemon, a table in tests).
    pub(crate) fn resolve(cfg: &OtlpConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>, SettingsError> {
        let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let disabled = set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let wanted = match cfg.enabled {
            Some(on) => on,
            None => cfg.endpoint.is_some() || ENDPOINT_VARS.iter().any(|k| set(k).is_some()),
        };
        if disabled || !wanted {
            return Ok(None);
        }
        let protocol = match (&cfg.protocol, set("OTEL_EXPORTER_OTLP_PROTOCOL")) {
            (Some(p), _) => Protocol::parse(p).ok_or_else(|| SettingsError::Protocol { key: "otlp.protocol", value: p.clone() })?,
            (None, Some(p)) => Protocol::parse(&p).ok_or(SettingsError::Protocol { key: "OTEL_EXPORTER_OTLP_PROTOCOL", value: p })?,
            (None, None) => Protocol::HttpProtobuf,
        };
        if let Some(e) = &cfg.endpoint {
            if e.starts_with("https://") {
                return Err(SettingsError::Tls { key: "otlp.endpoint", value: e.clone() });
            }
            if !e.starts_with("http://") {
                return Err(SettingsError::Endpoint(e.clone()));
            }
        }
        // The exporter reads these itself when the file names no endpoint.
        if cfg.endpoint.is_none()
            && let Some((key, value)) = ENDPOINT_VARS.iter().find_map(|k| set(k).filter(|v| v.trim().starts_with("https://")).map(|v| (*k, v)))
        {
            return Err(SettingsError::Tls { key, value });
        }
        let interval = match (cfg.metric_export_interval_ms, set("OTEL_METRIC_EXPORT_INTERVAL")) {
            (Some(ms), _) => millis("otlp.metric_export_interval_ms", &ms.to_string())?,
            (None, Some(v)) => millis("OTEL_METRIC_EXPORT_INTERVAL", &v)?,
            (None, None) => DEFAULT_INTERVAL,
        };
        let timeout = cfg.timeout_ms.map(|ms| millis("otlp.timeout_ms", &ms.to_string())).transpose()?;
        if cfg.queue == 0 {
            return Err(SettingsError::Queue);
        }
        Ok(Some(Self {
            protocol,
            endpoint: cfg.endpoint.as_ref().map(|e| e.trim_end_matches('/').to_owned()),
            headers: cfg.headers.clone(),
            interval,
            timeout,
            resource: cfg.resource_attributes.clone(),
            spans: cfg.spans,
            logs: cfg.logs,
            queue: cfg.queue,
        }))
    }

    /// The URL one signal goes to when `[otlp]` named the endpoint: HTTP appends the signal's
    /// path to the base (as the specification does for `OTEL_EXPORTER_OTLP_ENDPOINT`), gRPC
    /// takes the base as it is.
    pub(crate) fn signal_endpoint(&self, path: &str) -> Option<String> {
        let base = self.endpoint.as_deref()?;
        Some(match self.protocol {
            Protocol::Grpc => base.to_owned(),
            Protocol::HttpProtobuf => format!("{base}{path}"),
        })
    }
}

fn millis(key: &'static str, v: &str) -> Result<Duration, SettingsError> {
    match v.trim().parse::<u64>() {
        Ok(ms) if (1..=86_400_000).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(SettingsError::Millis { key, value: v.to_owned() }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn off_unless_an_endpoint_is_configured() {
        let cfg = OtlpConfig::default();
        assert_eq!(Settings::resolve(&cfg, &env(&[])), Ok(None));
        let s = Settings::resolve(&cfg, &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])).unwrap().unwrap();
        assert_eq!(s.protocol, Protocol::HttpProtobuf);
        // The exporter reads the variable itself (and the per-signal ones).
        assert_eq!(s.endpoint, None);
        assert_eq!(s.interval, DEFAULT_INTERVAL);
        let on = OtlpConfig { enabled: Some(true), ..OtlpConfig::default() };
        assert!(Settings::resolve(&on, &env(&[])).unwrap().is_some());
        let off = OtlpConfig { enabled: Some(false), endpoint: Some("http://c:4318".into()), ..OtlpConfig::default() };
        assert_eq!(Settings::resolve(&off, &env(&[])), Ok(None));
        let cfg = OtlpConfig { endpoint: Some("http://c:4318".into()), ..OtlpConfig::default() };
        assert_eq!(Settings::resolve(&cfg, &env(&[("OTEL_SDK_DISABLED", "true")])), Ok(None));
    }

    #[test]
    fn the_file_wins_over_the_environment() {
        let cfg = OtlpConfig {
            endpoint: Some("http://file:4317/".into()),
            protocol: Some("grpc".into()),
            metric_export_interval_ms: Some(1500),
            ..OtlpConfig::default()
        };
        let vars = env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"), ("OTEL_METRIC_EXPORT_INTERVAL", "9000")]);
        let s = Settings::resolve(&cfg, &vars).unwrap().unwrap();
        assert_eq!(s.protocol, Protocol::Grpc);
        assert_eq!(s.interval, Duration::from_millis(1500));
        assert_eq!(s.signal_endpoint("/v1/metrics").as_deref(), Some("http://file:4317"));
        let cfg = OtlpConfig { endpoint: Some("http://file:4318".into()), ..OtlpConfig::default() };
        let s = Settings::resolve(&cfg, &vars).unwrap().unwrap();
        assert_eq!(s.protocol, Protocol::HttpProtobuf);
        assert_eq!(s.interval, Duration::from_millis(9000));
        assert_eq!(s.signal_endpoint("/v1/traces").as_deref(), Some("http://file:4318/v1/traces"));
    }

    #[test]
    fn bad_values_are_named() {
        let cfg = OtlpConfig { endpoint: Some("http://c".into()), ..OtlpConfig::default() };
        assert_eq!(
            Settings::resolve(&cfg, &env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")])),
            Err(SettingsError::Protocol { key: "OTEL_EXPORTER_OTLP_PROTOCOL", value: "http/json".into() })
        );
        assert_eq!(
            Settings::resolve(&cfg, &env(&[("OTEL_METRIC_EXPORT_INTERVAL", "soon")])),
            Err(SettingsError::Millis { key: "OTEL_METRIC_EXPORT_INTERVAL", value: "soon".into() })
        );
        let bad = OtlpConfig { endpoint: Some("collector:4317".into()), ..OtlpConfig::default() };
        assert_eq!(Settings::resolve(&bad, &env(&[])), Err(SettingsError::Endpoint("collector:4317".into())));
        let tls = OtlpConfig { endpoint: Some("https://collector:4318".into()), ..OtlpConfig::default() };
        assert_eq!(
            Settings::resolve(&tls, &env(&[])),
            Err(SettingsError::Tls { key: "otlp.endpoint", value: "https://collector:4318".into() })
        );
        assert_eq!(
            Settings::resolve(&OtlpConfig::default(), &env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://c/v1/traces")])),
            Err(SettingsError::Tls { key: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", value: "https://c/v1/traces".into() })
        );
        let bad = OtlpConfig { queue: 0, ..cfg };
        assert_eq!(Settings::resolve(&bad, &env(&[])), Err(SettingsError::Queue));
    }

    #[test]
    fn header_values_are_not_printed() {
        let cfg = OtlpConfig {
            endpoint: Some("http://c:4318".into()),
            headers: [("authorization".to_owned(), "Bearer sk-secret".to_owned())].into(),
            ..OtlpConfig::default()
        };
        let s = Settings::resolve(&cfg, &env(&[])).unwrap().unwrap();
        let shown = format!("{s:?}");
        assert!(shown.contains("authorization") && !shown.contains("sk-secret"), "{shown}");
    }
}
