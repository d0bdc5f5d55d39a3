//! Command-line interface of the `guard` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "guard",
    version,
    about = "See what AI coding agents send to LLMs and what they run, from the kernel"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the daemon (needs root: loads eBPF programs).
    Run(RunArgs),
    /// Run the userspace pipeline over a recording made with `guard run --record`, without root.
    Replay {
        /// The recording (JSON lines of events).
        file: PathBuf,
        /// Also print every command that ran, with its agent (argv left out).
        #[arg(long)]
        commands: bool,
    },
    /// Destructive-command rules.
    #[command(subcommand)]
    Rules(RulesCmd),
    /// Where `guard run` would hook TLS in these ELF files, which strategy found it (or why none
    /// did), and how long the analysis took. No root needed.
    Hooks {
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RulesCmd {
    /// Which rule matches ARGV and why. Exit 0: none, 1: a rule matched, 2: usage error.
    Check {
        /// `[--json] [--cwd DIR] -- ARGV...`
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print the rule catalog.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Write every decoded event to FILE (JSON lines; holds captured plaintext, mode 0600).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Append one JSON line per destructive command to PATH (`-`: stdout).
    #[arg(long, value_name = "PATH|-")]
    pub audit_log: Option<String>,
    /// Ring buffer size in MiB (power of two).
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    pub ring_mib: u32,
}
