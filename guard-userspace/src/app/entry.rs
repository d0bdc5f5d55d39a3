//! `guard`'s command line: parse it, set up logging, and run the subcommand.

use std::process::ExitCode;

use clap::Parser as _;
use guard_core::engine::EngineConfig;

use super::{
    cli::{Cli, Cmd, GateCmd},
    commands::{self, ReplayPrint},
    config::{Config, ConfigError},
    daemon::{self, RunOptions},
    logging,
};

/// The binary's `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `guard run` reads its config file first: it chooses the log format and level.
    let file = match &cli.cmd {
        Cmd::Run(args) => Some(Config::resolve(args.config.as_deref())),
        _ => None,
    };
    let log = file.as_ref().and_then(|c| c.as_ref().ok()).map(|c| c.log.clone()).unwrap_or_default();
    if let Err(e) = logging::init(cli.log_format.unwrap_or(log.format), &log.level) {
        // No subscriber to log through: straight to stderr.
        eprintln!("guard: {e}");
        return usage_error();
    }
    match dispatch(cli.cmd, file) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{}", error_chain(&e));
            if matches!(e.downcast_ref(), Some(ConfigError::Flag { .. })) { usage_error() } else { ExitCode::FAILURE }
        }
    }
}

/// The exit status of a mistake in the invocation (a flag's value, `GUARD_LOG`), as for clap's
/// own usage errors: `guard rules check` gives 1 a meaning of its own (a rule matched).
fn usage_error() -> ExitCode {
    ExitCode::from(2)
}

/// Runs the command. `file`: the config file `guard run` read for its log settings.
fn dispatch(cmd: Cmd, file: Option<Result<Config, ConfigError>>) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Run(args) => {
            let mut c = file.unwrap_or_else(|| Ok(Config::default()))?;
            c.apply_cli(&args)?;
            run(args.record, &c)
        }
        Cmd::Doctor { json, config } => Ok(super::doctor::main(json, config.as_deref())),
        Cmd::Replay { file, commands, metrics, config } => {
            commands::replay(&file, &Config::resolve(config.as_deref())?, ReplayPrint { commands, metrics })
        }
        Cmd::Rules { cmd, config } => commands::rules(cmd, &Config::resolve(config.as_deref())?),
        Cmd::Prices { json, config } => commands::prices(json, &Config::resolve(config.as_deref())?),
        Cmd::Hooks { files } => commands::hooks(&files),
        Cmd::Gate { cmd: GateCmd::Release { kill } } => crate::gate::release::main(kill),
        Cmd::Gate { cmd: GateCmd::Watchdog { pid, heartbeat_fd, timeout_ms } } => {
            crate::gate::watchdog::main(pid, heartbeat_fd, std::time::Duration::from_millis(timeout_ms))
        }
    }
}

fn run(record: Option<std::path::PathBuf>, config: &Config) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    tracing::info!(config = %config.origin, "configuration");
    let mut opts = RunOptions {
        record,
        engine: EngineConfig {
            limits: config.limits(),
            catalog: std::sync::Arc::new(config.catalog()?),
            rules: config.rule_set()?,
            prices: std::sync::Arc::new(config.price_table()?),
            link: config.link(),
            requests: config.request_rules()?,
            mode: config.enforce.mode,
            deletions: config.deletions.engine(config.enforce.mode),
            ..EngineConfig::default()
        },
        enforce: config.enforce.clone(),
        deletions: config.deletions.clone(),
        channel_capacity: config.capture.channel_capacity,
        rescan_every: config.rescan_interval(),
        audit_log: config.audit_target().map(str::to_owned),
        labels: config.labels.clone(),
        // Bound now, before anything is loaded: a taken port is a clear error at start.
        metrics: config.metrics_addr().map(crate::sinks::metrics::MetricsListener::bind).transpose()?,
        otlp: crate::sinks::otlp::settings::Settings::resolve(&config.otlp, &|k| std::env::var(k).ok())
            .context("OpenTelemetry export ([otlp] and the OTEL_* variables)")?,
        ..RunOptions::default()
    };
    opts.load.ring_bytes = config.ring_bytes();
    opts.load.btf_path = config.kernel.btf.display().to_string();
    opts.load.tracefs = config.kernel.tracefs.display().to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(daemon::run(opts))?;
    Ok(ExitCode::SUCCESS)
}

/// The error and its causes, each cause once: most errors here already name their source.
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}
