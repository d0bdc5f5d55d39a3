//! What a new large executable costs the running daemon: its CPU time (user + system, from
//! /proc/PID/stat) over a fixed window in which Codex CLI (294 MB, stripped, rustls and a static
//! OpenSSL) starts and is hooked, against the same window with nothing new starting (the
//! periodic passes over /proc). The difference is the analysis and attach of one new file; it
//! showed the two scan lanes analysing each new file once each before they shared a Scanner.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result};

use super::{Env, Guard, hooks::npm_tool, median, procfs, wait_until_quiet};

const CODEX_VERSION: &str = "0.169.0";
/// Windows per condition, interleaved.
const RUNS: usize = 5;
/// From the start of Codex to the end of the sample: the attach plus several periodic passes
/// (every 2 s), so a second analysis by the other lane would fall inside it.
const WINDOW: Duration = Duration::from_secs(12);

pub(super) fn run(env: &Env) -> Result<String> {
    let codex = npm_tool(
        env,
        "codex",
        CODEX_VERSION,
        &format!("@openai/codex@{CODEX_VERSION}-linux-x64"),
        "package/vendor/x86_64-unknown-linux-musl/bin/codex",
    )?;
    let home = env.out.join("scan-codex-home");
    std::fs::create_dir_all(&home)?;
    let (mut idle, mut new) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        idle.push(window(env, None)?);
        new.push(window(env, Some((&codex, &home)))?);
    }
    let (idle, new) = (median(&idle), median(&new));
    Ok(format!(
        "\n## A new large executable, in the running daemon\n\n\
         `guard run` (release) CPU time, user + system, over a {}-second window, median of {RUNS} \
         windows per condition, interleaved, each in a fresh daemon started 3 s before.\n\n\
         | window | daemon CPU |\n|---|---|\n\
         | nothing new starts (periodic passes only) | {idle:.2} s |\n\
         | Codex CLI {CODEX_VERSION} (294 MB) starts and is hooked | {new:.2} s |\n\
         | difference: one new file | **{:.2} s** |\n",
        WINDOW.as_secs(),
        new - idle
    ))
}

/// Daemon CPU seconds over one window, with Codex started at its beginning if given.
fn window(env: &Env, codex: Option<(&Path, &Path)>) -> Result<f64> {
    wait_until_quiet()?;
    let guard = Guard::start(env, &["--audit-log", "off", "--metrics-addr", "127.0.0.1:0"])?;
    std::thread::sleep(Duration::from_secs(3));
    let before = procfs::cpu_ticks(guard.pid());
    // `exec -` reads its prompt from stdin: idle until stdin closes.
    let child = codex
        .map(|(bin, home)| {
            Command::new(bin)
                .args(["exec", "--skip-git-repo-check", "-"])
                .env("CODEX_HOME", home)
                .env("OPENAI_API_KEY", "sk-bench")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting codex")
        })
        .transpose()?;
    std::thread::sleep(WINDOW);
    let after = procfs::cpu_ticks(guard.pid());
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
        let path = codex.map(|(bin, _)| bin.display().to_string()).unwrap_or_default();
        guard.wait_for(&["attached TLS target", &path], Duration::from_secs(1)).context("Codex was not hooked within the window")?;
    }
    guard.stop()?;
    // /proc counts in USER_HZ, 100 per second.
    Ok(after.saturating_sub(before) as f64 / 100.0)
}
