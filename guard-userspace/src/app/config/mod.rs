//! The daemon's configuration: a TOML file (`--config`, else `/etc/guard/guard.toml` when it
//! exists), every key optional with a working default, then `guard run` flags on top. Errors name
//! the key and the reason. Reference: docs/config.md; commented example: deploy/guard.toml.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use guard_core::{
    cost::{ModelPrice, PriceFile, PriceTable},
    enforce::{EnforceConfig, FailMode, Mode, Scope},
    govern::LinkLimits,
    pipeline::Limits,
    process::{ Catalog, agents::{AgentSpec, BUILTIN_AGENTS, CatalogFile}, },
    protocols::DecoderConfig,
    requests::RequestRuleSet,
    rules::RuleSet,
};
use crate::{
    app::cli::{LogFormat, RunArgs},
    sinks::{metrics::LabelCaps, otlp::settings::Settings as OtlpSettings},
};

mod deletions;
mod otlp;
pub(crate) use deletions::DeletionsConfig;
pub(crate) use otlp::OtlpConfig;

/// Read when `--config` is not given, if it exists.
pub(crate) const DEFAULT_PATH: &str = "/etc/guard/guard.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {origin}: {reason}")]
    Syntax { origin: String, reason: String },
    #[error("config {origin}: key `{key}`: {reason}")]
    Invalid { origin: String, key: String, reason: String },
    /// A `guard run` flag that overrides a key: the value came from the command line, not a file.
    #[error("flag `{flag}`: {reason}")]
    Flag { flag: &'static str, reason: String },
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub metrics: MetricsConfig,
    pub audit: AuditConfig,
    pub log: LogConfig,
    pub agents: AgentsConfig,
    pub rules: RulesConfig,
    pub requests: RequestsConfig,
    pub labels: LabelCaps,
    pub kernel: KernelConfig,
    pub capture: CaptureConfig,
    pub enforce: EnforceSection,
    pub otlp: OtlpConfig,
    pub prices: PricesConfig,
    pub deletions: DeletionsConfig,
    /// Where this config came from (for error messages); not a key.
    #[serde(skip)]
    pub origin: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `GET /metrics`.
    pub enabled: bool,
    /// Loopback by default: the metrics name agents and models, which is not for everyone.
    pub addr: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: true, addr: "127.0.0.1:9477".into() }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// A file (appended, created 0600, reopened after rotation), `-` for stdout, or `off`.
    /// Stdout by default: it works unprivileged, under systemd (the journal) and in Kubernetes
    /// (the pod log) without a writable path.
    pub log: String,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { log: "-".into() }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json` (`--log-format` overrides).
    pub format: LogFormat,
    /// A tracing filter: `info`, `debug`, `guard=debug,warn`, ... (`GUARD_LOG` overrides).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".into() }
    }
}

/// Agents added to the built-in catalog (same format as `agents.toml`; same id replaces).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsConfig {
    /// Catalog files, applied in order before the inline agents.
    pub files: Vec<PathBuf>,
    /// More interpreter globs (programs whose script is the agent).
    pub interpreters: Vec<String>,
    /// Inline agents: `[[agents.agent]]` tables.
    #[serde(rename = "agent")]
    pub agents: Vec<AgentSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Rule files (docs/rules.md format), applied in order over the built-in rules.
    pub extra_files: Vec<PathBuf>,
    /// Rule ids to switch off.
    pub disable: Vec<String>,
}

/// Rules on agents' HTTPS requests (docs/api-calls.md): the built-in catalog, then each file
/// (same format: adds, replaces by id, `disabled`, `[actions]`), minus `disable`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestsConfig {
    /// Judge agents' requests at all.
    pub enabled: bool,
    /// Request-rule files, applied in order over the built-in catalog.
    pub extra_files: Vec<PathBuf>,
    /// Request-rule ids to switch off.
    pub disable: Vec<String>,
}

impl Default for RequestsConfig {
    fn default() -> Self {
        Self { enabled: true, extra_files: Vec::new(), disable: Vec::new() }
    }
}

/// Prices added to or overriding the built-in table (docs/cost.md). Checked before it: inline
/// entries first, then the files in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PricesConfig {
    /// Price files in the format of the built-in one (`[[model]]` entries).
    pub files: Vec<PathBuf>,
    /// Inline entries: `[[prices.model]]` tables.
    #[serde(rename = "model")]
    pub models: Vec<ModelPrice>,
}

/// The exec gate (docs/enforce.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnforceSection {
    /// `off`, `monitor` (judge and record what would be blocked, never block) or `enforce`.
    pub mode: Mode,
    /// `agents` (the process trees of identified agents) or `all` (every exec on the host).
    pub scope: Scope,
    /// The longest an exec waits for guard's answer; past it, `fail` decides.
    pub deadline_ms: u64,
    /// `open` (allow) or `closed` (deny an agent's exec) when the deadline passes.
    pub fail: FailMode,
    /// Filesystems to mark, by a path on each; empty: every filesystem that can hold programs.
    pub mark: Vec<PathBuf>,
}

impl Default for EnforceSection {
    fn default() -> Self {
        Self { mode: Mode::Monitor, scope: Scope::Agents, deadline_ms: 250, fail: FailMode::Open, mark: Vec::new() }
    }
}

impl EnforceSection {
    pub fn judge_config(&self) -> EnforceConfig {
        EnforceConfig { mode: self.mode, scope: self.scope, deadline: Duration::from_millis(self.deadline_ms), fail: self.fail }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KernelConfig {
    /// Ring buffer size in MiB, a power of two. 16 MiB carried ~30k events/s of 4 KiB without
    /// loss on a 2-vCPU VM; 1 MiB lost 1.2%.
    pub ring_mib: u32,
    pub btf: PathBuf,
    pub tracefs: PathBuf,
}

impl Default for KernelConfig {
    fn default() -> Self {
        Self { ring_mib: 16, btf: "/sys/kernel/btf/vmlinux".into(), tracefs: crate::kernel::tracefs::TRACEFS.into() }
    }
}

/// Memory bounds of the userspace pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    /// TLS connections followed at once (the oldest idle one is forgotten beyond).
    pub max_connections: usize,
    /// Exec records waiting for their parts (argv, result, exec event).
    pub max_pending_execs: usize,
    /// Records buffered between the ring reader and the pipeline (overflow is counted as lost).
    pub channel_capacity: usize,
    /// Bytes of a request body kept to read its model (long agent contexts are megabytes).
    pub max_request_body_bytes: usize,
    /// Bytes of a non-streamed response body kept until it is parsed.
    pub max_response_body_bytes: usize,
    /// Decoded bytes of one body (stops decompression bombs).
    pub max_decoded_body_bytes: usize,
    /// Bytes of one SSE event, JSON array element or eventstream message.
    pub max_event_bytes: usize,
    /// Seconds between rescans of every process for TLS libraries loaded later (dlopen).
    pub rescan_interval_secs: u64,
    /// Seconds after a response during which a command can be linked to a tool call in it
    /// (docs/intent.md).
    pub tool_link_window_secs: u64,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        let d = DecoderConfig::default();
        let l = Limits::default();
        Self {
            max_connections: l.max_connections,
            max_pending_execs: l.max_pending_execs,
            channel_capacity: 65_536,
            max_request_body_bytes: d.max_request_body,
            max_response_body_bytes: d.max_buffered_body,
            max_decoded_body_bytes: d.max_decoded_body,
            max_event_bytes: d.max_event,
            rescan_interval_secs: 2,
            tool_link_window_secs: LinkLimits::default().window_ns / 1_000_000_000,
        }
    }
}

impl Config {
    /// `--config PATH` (must exist), else `DEFAULT_PATH` (/etc/guard/guard.toml) when it exists, else
    /// the defaults.
    pub fn resolve(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        match explicit {
            Some(p) => Self::load(p),
            None if Path::new(DEFAULT_PATH).exists() => Self::load(Path::new(DEFAULT_PATH)),
            None => Ok(Self { origin: "(defaults)".into(), ..Self::default() }),
        }
    }

    /// Reads, parses and validates one file (including the agent and rule files it names).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::new(text);
        let mut cfg: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let reason = match inner.span() {
                Some(span) => format!("{} (line {})", inner.message(), line_of(text, span.start)),
                None => inner.message().to_owned(),
            };
            // A syntax error has no key; serde_path_to_error then reports the root, `.`.
            if key == "." || key.is_empty() {
                ConfigError::Syntax { origin: origin.into(), reason }
            } else {
                ConfigError::Invalid { origin: origin.into(), key, reason }
            }
        })?;
        cfg.origin = origin.into();
        cfg.validate()?;
        Ok(cfg)
    }

    /// Flags of `guard run` override the file. Each flag is checked on its own so that an error
    /// names the flag: the file's values were checked when it was loaded.
    pub fn apply_cli(&mut self, args: &RunArgs) -> Result<(), ConfigError> {
        let flag = |flag, r: Result<(), String>| r.map_err(|reason| ConfigError::Flag { flag, reason });
        if let Some(a) = &args.metrics_addr {
            flag("--metrics-addr", check_metrics_addr(a))?;
            self.metrics.addr.clone_from(a);
            self.metrics.enabled = true;
        }
        if let Some(a) = &args.audit_log {
            flag("--audit-log", check_audit_log(a))?;
            self.audit.log.clone_from(a);
        }
        if args.enforce {
            self.enforce.mode = Mode::Enforce;
        }
        if let Some(r) = args.ring_mib {
            flag("--ring-mib", check_ring_mib(r))?;
            self.kernel.ring_mib = r;
        }
        Ok(())
    }

    fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { origin: self.origin.clone(), key: key.into(), reason: reason.into() }
    }

    /// Checks every value whose type alone does not make it valid.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_metrics_addr(&self.metrics.addr).map_err(|r| self.invalid("metrics.addr", r))?;
        check_audit_log(&self.audit.log).map_err(|r| self.invalid("audit.log", r))?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(self.invalid("log.level", format!("{:?} is not a log filter (e.g. info, debug, guard=debug)", self.log.level)));
        }
        if !(10..=5000).contains(&self.enforce.deadline_ms) {
            return Err(self.invalid("enforce.deadline_ms", format!("must be from 10 to 5000 (ms), not {}", self.enforce.deadline_ms)));
        }
        if let Some(p) = self.enforce.mark.iter().find(|p| !p.is_absolute()) {
            return Err(self.invalid("enforce.mark", format!("{} is not an absolute path", p.display())));
        }
        self.deletions.check().map_err(|(key, reason)| self.invalid(key, reason))?;
        let caps = [
            ("labels.max_models_per_provider", self.labels.max_models_per_provider),
            ("labels.max_agents", self.labels.max_agents),
            ("labels.max_rules", self.labels.max_rules),
            ("labels.max_tools", self.labels.max_tools),
            ("labels.max_mcp_servers", self.labels.max_mcp_servers),
        ];
        for (key, v) in caps {
            if v == 0 {
                return Err(self.invalid(key, "must be at least 1 (values past the cap are labelled `other`)"));
            }
            if v > 10_000 {
                return Err(self.invalid(key, format!("{v} is too many series; keep it at most 10000")));
            }
        }
        check_ring_mib(self.kernel.ring_mib).map_err(|r| self.invalid("kernel.ring_mib", r))?;
        let c = &self.capture;
        let sizes = [
            ("capture.max_connections", c.max_connections),
            ("capture.max_pending_execs", c.max_pending_execs),
            ("capture.channel_capacity", c.channel_capacity),
            ("capture.max_request_body_bytes", c.max_request_body_bytes),
            ("capture.max_response_body_bytes", c.max_response_body_bytes),
            ("capture.max_decoded_body_bytes", c.max_decoded_body_bytes),
            ("capture.max_event_bytes", c.max_event_bytes),
            ("capture.rescan_interval_secs", c.rescan_interval_secs as usize),
            ("capture.tool_link_window_secs", c.tool_link_window_secs as usize),
        ];
        if let Some((key, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(self.invalid(key, "must be at least 1"));
        }
        self.check_otlp()?;
        self.catalog()?;
        self.rule_set()?;
        self.request_rules()?;
        self.price_table()?;
        Ok(())
    }

    /// The `[otlp]` keys on their own (the `OTEL_*` variables are read when `guard run` starts).
    fn check_otlp(&self) -> Result<(), ConfigError> {
        let on = OtlpConfig { enabled: Some(true), ..self.otlp.clone() };
        OtlpSettings::resolve(&on, &|_| None).map_err(|e| self.invalid("otlp", e.to_string()))?;
        for (k, v) in &self.otlp.headers {
            let name_ok = !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !name_ok {
                return Err(self.invalid("otlp.headers", format!("{k:?} is not a header name")));
            }
            // The value is a credential: never repeated in the error.
            if !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(self.invalid("otlp.headers", format!("the value of {k:?} is not printable ASCII")));
            }
        }
        Ok(())
    }

    /// The metrics address, or `None` when metrics are off.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.enabled.then(|| self.metrics.addr.parse().ok()).flatten()
    }

    /// The audit target for `sinks::audit::AuditWriter::open`, or `None` when off.
    pub fn audit_target(&self) -> Option<&str> {
        (self.audit.log != "off").then_some(self.audit.log.as_str())
    }

    pub fn ring_bytes(&self) -> u32 {
        self.kernel.ring_mib.saturating_mul(1 << 20)
    }

    /// How commands are linked to tool calls.
    pub fn link(&self) -> LinkLimits {
        let secs = self.capture.tool_link_window_secs.min(86_400);
        LinkLimits { window_ns: secs * 1_000_000_000, ..LinkLimits::default() }
    }

    pub fn rescan_interval(&self) -> Duration {
        Duration::from_secs(self.capture.rescan_interval_secs)
    }

    /// The pipeline's bounds.
    pub fn limits(&self) -> Limits {
        let c = &self.capture;
        Limits {
            max_connections: c.max_connections,
            max_pending_execs: c.max_pending_execs,
            decoder: DecoderConfig {
                max_request_body: c.max_request_body_bytes,
                max_buffered_body: c.max_response_body_bytes,
                max_decoded_body: c.max_decoded_body_bytes,
                max_event: c.max_event_bytes,
                ..DecoderConfig::default()
            },
        }
    }

    /// The built-in agent catalog plus the configured files and inline agents.
    pub fn catalog(&self) -> Result<Catalog, ConfigError> {
        let mut extra = CatalogFile { interpreters: self.agents.interpreters.clone(), agents: Vec::new() };
        for (i, path) in self.agents.files.iter().enumerate() {
            let key = format!("agents.files[{i}]");
            let text = std::fs::read_to_string(path).map_err(|e| self.invalid(&key, format!("cannot read {}: {e}", path.display())))?;
            let file: CatalogFile = toml::from_str(&text).map_err(|e| self.invalid(&key, format!("{}: {}", path.display(), e.message())))?;
            // Check each file on its own so the error points at it.
            Catalog::load(BUILTIN_AGENTS, Some(&text)).map_err(|e| self.invalid(&key, format!("{}: {e}", path.display())))?;
            extra.interpreters.extend(file.interpreters);
            extra.agents.extend(file.agents);
        }
        extra.agents.extend(self.agents.agents.iter().cloned());
        let text = toml::to_string(&extra).map_err(|e| self.invalid("agents", e.to_string()))?;
        Catalog::load(BUILTIN_AGENTS, Some(&text)).map_err(|e| self.invalid("agents.agent", e.to_string()))
    }

    /// The built-in price table with the configured entries in front: inline ones first, then
    /// each file's, in order (so the files are laid on in reverse).
    pub fn price_table(&self) -> Result<PriceTable, ConfigError> {
        let mut table = (*PriceTable::builtin()).clone();
        for (i, path) in self.prices.files.iter().enumerate().rev() {
            let key = format!("prices.files[{i}]");
            let text = std::fs::read_to_string(path).map_err(|e| self.invalid(&key, format!("cannot read {}: {e}", path.display())))?;
            let origin = path.display().to_string();
            table = PriceFile::parse(&text)
                .and_then(|f| table.with_overrides(f, &origin))
                .map_err(|e| self.invalid(&key, format!("{origin}: {e}")))?;
        }
        let inline = PriceFile { models: self.prices.models.clone(), ..PriceFile::default() };
        table.with_overrides(inline, &self.origin).map_err(|e| self.invalid("prices.model", e.to_string()))
    }

    /// The built-in rules, then each extra file, minus the disabled ids.
    pub fn rule_set(&self) -> Result<RuleSet, ConfigError> {
        let mut set = RuleSet::builtin();
        for (i, path) in self.rules.extra_files.iter().enumerate() {
            let key = format!("rules.extra_files[{i}]");
            let text = std::fs::read_to_string(path).map_err(|e| self.invalid(&key, format!("cannot read {}: {e}", path.display())))?;
            set = set.merged(&text, &[]).map_err(|e| self.invalid(&key, format!("{}: {e}", path.display())))?;
        }
        set.merged("", &self.rules.disable).map_err(|e| self.invalid("rules.disable", e.to_string()))
    }
}

impl Config {
    /// The built-in request rules, then each extra file, minus the disabled ids; none when
    /// `[requests] enabled = false`.
    pub fn request_rules(&self) -> Result<RequestRuleSet, ConfigError> {
        if !self.requests.enabled {
            return Ok(RequestRuleSet::empty());
        }
        let mut set = RequestRuleSet::builtin();
        for (i, path) in self.requests.extra_files.iter().enumerate() {
            let key = format!("requests.extra_files[{i}]");
            let text = std::fs::read_to_string(path).map_err(|e| self.invalid(&key, format!("cannot read {}: {e}", path.display())))?;
            set = set.merged(&text, &[]).map_err(|e| self.invalid(&key, format!("{}: {e}", path.display())))?;
        }
        set.merged("", &self.requests.disable).map_err(|e| self.invalid("requests.disable", e.to_string()))
    }
}

// The checks of the values a flag can also set: the caller names the key or the flag.

fn check_metrics_addr(addr: &str) -> Result<(), String> {
    match addr.parse::<SocketAddr>() {
        Ok(_) => Ok(()),
        Err(_) => Err(format!("{addr:?} is not an IP:PORT address (e.g. 127.0.0.1:9477)")),
    }
}

fn check_audit_log(log: &str) -> Result<(), String> {
    if log.trim().is_empty() { Err("empty: give a file path, `-` for stdout, or `off`".into()) } else { Ok(()) }
}

fn check_ring_mib(r: u32) -> Result<(), String> {
    if r.is_power_of_two() && r <= 1024 { Ok(()) } else { Err(format!("must be a power of two from 1 to 1024, not {r}")) }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at).map_or(0, |s| s.matches('\n').count()) + 1
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests;
