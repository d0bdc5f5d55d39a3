//! `cargo xtask`: set-up of the machine and toolchain, the daemon on defaults, and the full test run.

mod bench;
mod setup;

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "guard's developer tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing: mounts, apt packages, the pinned eBPF toolchain, rust-src, bpf-linker.
    Setup {
        /// Also install what the test suite needs.
        #[arg(long)]
        tests: bool,
    },
    /// Set up, build, and run the daemon on defaults (`guard run`). Extra arguments go to `guard run`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run every benchmark (probe cost, probe cost on stripped binaries, their analysis, exec
    /// tracing, the exec gate, end-to-end, pipeline, memory) and write target/bench/report.md.
    /// Name sections to run only those: probe, hooks, analysis, scan, exec, gate, e2e.
    Bench {
        only: Vec<String>,
    },
    /// Set up and run every test, the privileged eBPF tests included.
    Test {
        /// Extra arguments for `cargo test` (for example a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Setup { tests } => setup::run(&setup::Options { for_tests: tests }).map(drop),
        Cmd::Run { args } => run(&args),
        Cmd::Test { args } => test(&args),
        Cmd::Bench { only } => bench::run(&only),
    }
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A cargo invocation that builds the eBPF object with the pinned toolchain.
fn cargo(toolchain: &str) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root()).env("GUARD_EBPF_TOOLCHAIN", toolchain);
    cmd
}

fn run(args: &[String]) -> Result<()> {
    let toolchain = setup::run(&setup::Options { for_tests: false })?;
    sh(cargo(&toolchain).args(["build", "--release", "--package", "guard-userspace", "--bin", "guard"]))?;
    let bin = workspace_root().join("target/release/guard");
    let mut cmd = Command::new(&bin);
    cmd.arg("run").args(args);
    // Replace this process so that signals (Ctrl-C, SIGTERM) reach the daemon directly.
    use std::os::unix::process::CommandExt as _;
    let err = cmd.exec();
    Err(err).with_context(|| format!("could not start {}", bin.display()))
}

fn test(args: &[String]) -> Result<()> {
    let toolchain = setup::run(&setup::Options { for_tests: true })?;
    // The whole run starts with the lints, warnings as errors (guard-core's sans-IO list among
    // them), so a change that breaks a rule fails before the long privileged run.
    if args.is_empty() {
        sh(cargo(&toolchain).args(["clippy", "--workspace", "--exclude", "guard-ebpf", "--all-targets", "--", "-D", "warnings"]))?;
    }
    // The guard binary is used by the end-to-end tests, so build it first.
    sh(cargo(&toolchain).args(["build", "--workspace", "--exclude", "guard-ebpf", "--bins"]))?;
    // Privileged tests share the kernel's probes: run them one at a time.
    let run = sh(cargo(&toolchain)
        .args(["test", "--workspace", "--exclude", "guard-ebpf", "--no-fail-fast"])
        .args(args)
        .args(["--", "--test-threads=1"]));
    clean_scratch(run.is_ok());
    run
}

/// The test binaries' scratch directories (`guard_tests::temp_path` and guard-core's Go clients:
/// hundreds of MB, and each binary empties its own only at its next start): removed after a run
/// that passed, kept after one that failed, for a look.
fn clean_scratch(passed: bool) {
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else { return };
    let scratch = |name: &str| ["guard-test-", "guard-hooks-"].iter().any(|p| name.starts_with(p));
    for e in dir.flatten().filter(|e| scratch(&e.file_name().to_string_lossy())) {
        if passed {
            let _ = std::fs::remove_dir_all(e.path());
        } else {
            eprintln!("kept for a look: {}", e.path().display());
        }
    }
}

/// Runs a command, streaming its output, and fails with the command line when it fails.
pub fn sh(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}
