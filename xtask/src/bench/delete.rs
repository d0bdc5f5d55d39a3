//! Agents' deletions (issue 18): what an unlink costs with guard's deletion programs attached,
//! for a process outside every agent tree (one map lookup) and for an agent's own process (the
//! path walk, the place lookup and a ring record), against no guard. `bench/unlink_loop.c` times
//! only its unlinks; the conditions alternate round by round.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    path::Path,
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use super::{Env, Guard, median, output};
use crate::sh;

const ROUNDS: usize = 5;
const FILES: u32 = 100_000;
const METRICS: &str = "127.0.0.1:19478";

pub(super) fn run(env: &Env) -> Result<String> {
    let exe = env.out.join("unlink_loop");
    sh(Command::new("gcc").args(["-O2", "-o"]).arg(&exe).arg(env.root.join("bench/unlink_loop.c")))?;
    // The same program under a catalog agent's name: guard puts it in an agent's scope at exec.
    let agent_dir = env.out.join("delete-agent");
    std::fs::create_dir_all(&agent_dir)?;
    let agent = agent_dir.join("claude");
    std::fs::copy(&exe, &agent)?;
    let (mut none, mut outside, mut inside) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        none.push(ns_per_unlink(&exe, &env.out)?);
        let g = Guard::start(env, &["--audit-log", "off", "--metrics-addr", METRICS])?;
        outside.push(ns_per_unlink(&exe, &env.out)?);
        let before = deleted()?;
        inside.push(ns_per_unlink(&agent, &env.out)?);
        // The agent's unlinks must all have been seen, or the figure measured something else.
        std::thread::sleep(Duration::from_millis(500));
        let seen = deleted()? - before;
        g.stop()?;
        if seen < f64::from(FILES) {
            bail!("the agent loop's unlinks were not all seen as an agent's deletions ({seen} of {FILES})");
        }
    }
    let (n, o, i) = (median(&none), median(&outside), median(&inside));
    Ok(format!(
        "\n## Deletions\n\nunlinkat of an empty file (bench/unlink_loop.c), {FILES} per round, {ROUNDS} rounds, ns per unlink:\n\
         none {n:.0} | guard, outside any agent tree {o:.0} ({:+.0} ns) | guard, an agent's own process {i:.0} ({:+.0} ns)\n",
        o - n,
        i - n
    ))
}

/// One run of the loop in a fresh directory under `out`.
fn ns_per_unlink(exe: &Path, out: &Path) -> Result<f64> {
    let dir = out.join("unlink-loop");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let text = output(Command::new(exe).arg(FILES.to_string()).arg(&dir));
    std::fs::remove_dir_all(&dir)?;
    let text = text?;
    text.trim().parse().with_context(|| format!("unlink_loop printed {text:?}"))
}

/// `guard_agent_files_deleted_total`, summed over its series.
fn deleted() -> Result<f64> {
    let mut stream = TcpStream::connect(METRICS).context("guard's /metrics")?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {METRICS}\r\nConnection: close\r\n\r\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    Ok(body
        .lines()
        .filter(|l| l.starts_with("guard_agent_files_deleted_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}
