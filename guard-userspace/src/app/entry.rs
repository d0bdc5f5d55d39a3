//! `guard`'s command line: parse it, set up logging, and run the subcommand.

use std::process::ExitCode;

use clap::Parser as _;
use guard_core::engine::EngineConfig;

use super::{
    cli::{Cli, Cmd, LogFormat},
    commands::{self, ReplayPrint},
    config::Config,
    daemon::{self, RunOptions},
};

/// The binary's `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `guard run` reads its config first: it chooses the log format and level.
    let config = match &cli.cmd {
        Cmd::Run(args) => Some(Config::resolve(args.config.as_deref()).and_then(|mut c| c.apply_cli(args).map(|()| c))),
        _ => None,
    };
    let log = config.as_ref().and_then(|c| c.as_ref().ok()).map(|c| c.log.clone()).unwrap_or_default();
    init_tracing(cli.log_format.unwrap_or(log.format), &log.level);
    let result = match cli.cmd {
        Cmd::Run(args) => config
            .unwrap_or_else(|| Ok(Config::default()))
            .map_err(anyhow::Error::from)
            .and_then(|c| run(args.record, &c)),
        Cmd::Doctor { json, config } => Ok(super::doctor::main(json, config.as_deref())),
        Cmd::Replay { file, commands, metrics, config } => Config::resolve(config.as_deref())
            .map_err(anyhow::Error::from)
            .and_then(|c| commands::replay(&file, &c, ReplayPrint { commands, metrics })),
        Cmd::Rules { cmd, config } => {
            Config::resolve(config.as_deref()).map_err(anyhow::Error::from).and_then(|c| commands::rules(cmd, &c))
        }
        Cmd::Hooks { files } => commands::hooks(&files),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
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
            ..EngineConfig::default()
        },
        channel_capacity: config.capture.channel_capacity,
        rescan_every: config.rescan_interval(),
        audit_log: config.audit_target().map(str::to_owned),
        labels: config.labels.clone(),
        // Bound now, before anything is loaded: a taken port is a clear error at start.
        metrics: config.metrics_addr().map(crate::sinks::metrics::MetricsListener::bind).transpose()?,
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
