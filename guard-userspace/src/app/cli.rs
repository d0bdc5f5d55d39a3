//! Command-line interface of the `guard` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "guard", version, about = "See what AI coding agents send to LLMs and what they run, from the kernel")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
    /// Log format (default: `log.format` of the config file, else text).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Run the daemon (needs root: loads eBPF programs).
    Run(RunArgs),
    /// Run the engine `guard run` uses over a recording made with `guard run --record`, without root.
    Replay {
        /// The recording (JSON lines of events and facts).
        file: PathBuf,
        /// Also print every command that ran, with its agent (argv left out).
        #[arg(long)]
        commands: bool,
        /// Print only the metrics `guard run` served for the recorded events (OpenMetrics text).
        #[arg(long)]
        metrics: bool,
        /// Config file whose agents, rules and label caps apply (default: /etc/guard/guard.toml if present).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Check that guard can run here: kernel, BTF, tracefs, capabilities, probes, enforcement
    /// mechanisms, TLS targets and running agents. Exit 0: it can run; 1: it cannot (reasons given).
    Doctor {
        /// Print the report as JSON (schema in docs/doctor.md).
        #[arg(long)]
        json: bool,
        /// Config file to check and take agents from (default: /etc/guard/guard.toml if present).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// The exec gate's housekeeping (docs/enforce.md).
    Gate {
        #[command(subcommand)]
        cmd: GateCmd,
    },
    /// Destructive-command rules (the built-in ones, with the config file's changes).
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
        /// Config file whose extra and disabled rules apply (default: /etc/guard/guard.toml if present).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
    },
    /// The price table that costs LLM calls (USD per million tokens): the built-in one, dated,
    /// with the config file's entries in front (docs/cost.md).
    Prices {
        /// Print the table as one JSON document.
        #[arg(long)]
        json: bool,
        /// Config file whose `[prices]` apply (default: /etc/guard/guard.toml if present).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Where `guard run` would hook TLS in these ELF files, which strategy found it (or why none
    /// did), and how long the analysis took. No root needed. Exit 1 if a file cannot be analysed.
    Hooks {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum RulesCmd {
    /// Which rule matches ARGV and why. Exit 0: none, 1: a rule matched, 2: usage error.
    Check {
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
        /// The directory the command runs in (default: the current one).
        #[arg(long, value_name = "DIR")]
        cwd: Option<PathBuf>,
        /// The command, after `--`.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGV")]
        argv: Vec<String>,
    },
    /// Print the rule catalog.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// Options of `guard run`. Each one given here overrides the config file.
#[derive(clap::Args, Debug, Default)]
pub struct RunArgs {
    /// Config file (TOML). Default: /etc/guard/guard.toml when it exists, else built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the Prometheus endpoint (`GET /metrics`) [config: metrics.addr, default 127.0.0.1:9477].
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Audit log of destructive commands: a regular file only guard may access (mode 0600), `-` for stdout, or `off` [config: audit.log, default -].
    #[arg(long, value_name = "PATH|-")]
    pub audit_log: Option<String>,
    /// Record every event the engine is given, and what it asked of /proc, to FILE, a new file (JSON
    /// lines; holds captured plaintext, mode 0600); `guard replay FILE` reproduces the run.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Ring buffer size in MiB, a power of two [config: kernel.ring_mib, default 16].
    #[arg(long, value_name = "MIB")]
    pub ring_mib: Option<u32>,
    /// Refuse the destructive execs of agents (EPERM) instead of only recording them [config: enforce.mode = "enforce", default monitor].
    #[arg(long)]
    pub enforce: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum GateCmd {
    /// Let go of every process the exec gate stopped and did not answer (after guard died):
    /// SIGCONT, or SIGKILL with `--kill`. The systemd unit runs it after guard stops.
    Release {
        /// Kill them instead (for `enforce.fail = "closed"`).
        #[arg(long)]
        kill: bool,
    },
    /// The watchdog `guard run` starts for its exec gate (internal).
    #[command(hide = true)]
    Watchdog {
        /// The daemon to watch.
        #[arg(long)]
        pid: u32,
        /// The read end of the heartbeat pipe, inherited.
        #[arg(long)]
        heartbeat_fd: i32,
        /// SIGKILL the daemon when no heartbeat came for this long.
        #[arg(long)]
        timeout_ms: u64,
    },
}
