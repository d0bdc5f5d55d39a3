use std::{io::Write as _, process::ExitCode};

use anyhow::Context as _;
use clap::Parser as _;
use guard::{
    cli::{Cli, Cmd, LogFormat, RulesCmd},
    config::Config,
    daemon::{self, RunOptions},
    events::record::read_events,
    pipeline::{Limits, Pipeline},
};

fn main() -> ExitCode {
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
        Cmd::Doctor { json, config } => Ok(guard::doctor::main(json, config.as_deref())),
        Cmd::Replay { file, commands } => replay(&file, commands),
        Cmd::Rules(cmd) => Ok(rules(cmd)),
        Cmd::Hooks { files } => hooks(&files),
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
    tracing::info!(config = %config.origin, "configuration");
    let mut opts = RunOptions {
        record,
        limits: config.limits(),
        channel_capacity: config.capture.channel_capacity,
        rescan_every: config.rescan_interval(),
        ..RunOptions::default()
    };
    opts.load.ring_bytes = config.ring_bytes();
    opts.audit_log = config.audit_target().map(str::to_owned);
    opts.catalog = std::sync::Arc::new(config.catalog()?);
    opts.rules = config.rule_set()?;
    opts.labels = config.labels.clone();
    // Bound now, before anything is loaded: a taken port is a clear error at start.
    opts.metrics = config.metrics_addr().map(guard::metrics::MetricsListener::bind).transpose()?;
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

fn rules(cmd: RulesCmd) -> ExitCode {
    let rules = guard::rules::RuleSet::builtin();
    let mut out = std::io::stdout().lock();
    let code = match cmd {
        RulesCmd::Check { args } => {
            let cwd = std::env::current_dir().ok();
            let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
            guard::rules::cli::check(&args, &rules, cwd, home, &mut out)
        }
        RulesCmd::List { json } => guard::rules::cli::list(&rules, json, &mut out),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

/// Prints one JSON line per exchange (with its agent) and per destructive command.
fn replay(file: &std::path::Path, commands: bool) -> anyhow::Result<ExitCode> {
    use guard::govern::{Governed, Governor, Host, NoLookup};
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut pipeline = Pipeline::new(&Limits::default());
    let catalog = std::sync::Arc::new(guard::process::Catalog::builtin());
    let mut governor = Governor::new(catalog, guard::rules::RuleSet::builtin(), Host::read());
    let (mut out, mut governed) = (Vec::new(), Vec::new());
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    for ev in read_events(std::io::BufReader::new(f)) {
        pipeline.push(ev?, &mut out);
        for o in out.drain(..) {
            governor.push(&o, std::time::SystemTime::now(), &mut NoLookup, &mut governed);
        }
        for g in governed.drain(..) {
            if matches!(g, Governed::Command { .. }) && !commands {
                continue;
            }
            serde_json::to_writer(&mut stdout, &g)?;
            stdout.write_all(b"\n")?;
        }
    }
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

/// One JSON line per file: the analysis and its wall time.
fn hooks(files: &[std::path::PathBuf]) -> anyhow::Result<ExitCode> {
    let mut cache = guard::hooks::cache::Cache::default();
    let mut out = std::io::stdout().lock();
    for f in files {
        let start = std::time::Instant::now();
        let analysis = guard::ebpf::targets::inspect(f, &mut cache).map_err(|e| e.to_string());
        let ms = start.elapsed().as_secs_f64() * 1e3;
        // Hooks found that `guard run` does not attach yet (no kernel program): rustls's aws-lc.
        let start = std::time::Instant::now();
        let candidates = guard::ebpf::targets::candidates(f).map_err(|e| e.to_string());
        let line = serde_json::json!({
            "path": f,
            "analysis": analysis,
            "ms": ms,
            "candidates": candidates,
            "candidates_ms": start.elapsed().as_secs_f64() * 1e3,
        });
        writeln!(out, "{line}").context("writing to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}
