//! The commands that need no root: `guard replay`, `guard rules`, `guard prices` and `guard hooks`.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    time::SystemTime,
};

use anyhow::Context as _;
use guard_core::{
    Engine,
    engine::{EngineConfig, Outputs, Replay},
    events::record::read_lines,
    govern::Governed,
};

use super::{cli::RulesCmd, config::Config};
use crate::sinks::{NO_AGENT, metrics::Metrics};

/// What `guard replay` prints.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReplayPrint {
    /// Every command that ran, with its agent (argv left out).
    pub commands: bool,
    /// The Prometheus metrics of the run, in OpenMetrics text, at the end.
    pub metrics: bool,
}

/// Runs a recording through the engine `guard run` uses, with the site's catalog and rules:
/// one JSON line per exchange (with its agent) and per destructive command.
pub(crate) fn replay(file: &Path, config: &Config, print: ReplayPrint) -> anyhow::Result<ExitCode> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut engine = Engine::new(EngineConfig {
        limits: config.limits(),
        catalog: std::sync::Arc::new(config.catalog()?),
        rules: config.rule_set()?,
        prices: std::sync::Arc::new(config.price_table()?),
        link: config.link(),
        requests: config.request_rules()?,
        mode: config.enforce.mode,
        deletions: config.deletions.engine(config.enforce.mode),
        ..EngineConfig::default()
    });
    let metrics = Metrics::new(&config.labels);
    let (mut replay, mut out) = (Replay::default(), Outputs::default());
    let mut stdout = std::io::stdout().lock();
    // Audit records are stamped with the replay's time; nothing else reads it.
    let wall = SystemTime::now();
    let mut emit = |out: &Outputs| -> anyhow::Result<()> {
        for g in &out.governed {
            count(&metrics, g);
            // One line per deleted file would drown the output: they show as metrics.
            if print.metrics || matches!(g, Governed::Deleted { .. }) || (matches!(g, Governed::Command { .. }) && !print.commands) {
                continue;
            }
            serde_json::to_writer(&mut stdout, g)?;
            stdout.write_all(b"\n")?;
        }
        Ok(())
    };
    for line in read_lines(std::io::BufReader::new(f)) {
        out.clear();
        replay.push(line?, &mut engine, wall, &mut out);
        emit(&out)?;
    }
    out.clear();
    replay.flush(&mut engine, wall, &mut out);
    emit(&out)?;
    if print.metrics {
        metrics.set_agent_processes(engine.table().agent_counts().into_iter().map(|(a, n)| (a.to_string(), n)));
        stdout.write_all(metrics.encode().as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The metric updates `guard run`'s sinks make for the same record.
fn count(m: &Metrics, g: &Governed) {
    match g {
        Governed::Exchange { agent, exchange, cost } => {
            m.on_exchange(agent.as_deref().unwrap_or(NO_AGENT), exchange, *cost);
        }
        Governed::Command { agent: Some(a), proposed_by, .. } => m.on_agent_command(a, proposed_by.is_some()),
        Governed::Command { agent: None, .. } => {}
        Governed::ApiCall(rec) => {
            m.on_api_call(rec.agent.as_deref().unwrap_or(NO_AGENT), &rec.rule_id, rec.severity, rec.action);
        }
        Governed::Deleted { agent, place } => m.on_file_deleted(agent, *place),
        Governed::IoUring { agent, .. } => m.on_io_uring(agent),
        Governed::Deletion(_) => {}
        Governed::Destructive(rec) => {
            m.on_destructive(rec.agent.as_deref().unwrap_or(NO_AGENT), &rec.rule_id, rec.severity, rec.action);
        }
    }
}

/// `guard rules check|list`, with the site's rules.
pub(crate) fn rules(cmd: RulesCmd, config: &Config) -> anyhow::Result<ExitCode> {
    let rules = config.rule_set()?;
    let mut out = std::io::stdout().lock();
    let code = match cmd {
        RulesCmd::Check { json, cwd, argv } => {
            let cwd = cwd.or_else(|| std::env::current_dir().ok());
            let home = std::env::var_os("HOME").map(PathBuf::from);
            guard_core::rules::cli::check(&argv, json, &rules, cwd, home, &mut out)
        }
        RulesCmd::List { json } => guard_core::rules::cli::list(&rules, json, &mut out),
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(2)))
}

/// `guard prices [--json]`: the built-in price table with the config's entries in front.
pub(crate) fn prices(json: bool, config: &Config) -> anyhow::Result<ExitCode> {
    let table = config.price_table()?;
    let code = guard_core::cost::cli::list(&table, json, &mut std::io::stdout().lock());
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(2)))
}

/// One JSON line per file: the analysis and its wall time. A file that cannot be analysed is
/// reported on its line, and the exit status is 1.
pub(crate) fn hooks(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut cache = guard_core::hooks::cache::Cache::default();
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for f in files {
        let start = std::time::Instant::now();
        let analysis = crate::sys::targets::inspect(f, &mut cache).map_err(|e| e.to_string());
        failed |= analysis.is_err();
        let line = serde_json::json!({ "path": f, "analysis": analysis, "ms": start.elapsed().as_secs_f64() * 1e3 });
        writeln!(out, "{line}").context("writing to stdout")?;
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
