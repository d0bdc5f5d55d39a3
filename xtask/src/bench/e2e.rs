//! Whole-system figures against the local mock LLM server: the end-to-end slowdown of a streaming
//! client (1,000 exchanges) with and without guard, the pipeline's throughput over the capture of
//! that run, and the daemon's memory with 1,000 concurrently open tracked connections.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use super::{Env, Guard, Mock, bench_script, median, output, procfs};

const ROUNDS: usize = 3;
const EXCHANGES: &str = "1000";
const CONNECTIONS: &str = "1000";

pub(super) fn run(env: &Env) -> Result<String> {
    let mock = Mock::start(env)?;
    let client = |mock: &Mock| -> Result<f64> {
        let out = output(
            Command::new("python3").arg(bench_script(env, "e2e_client.py")).arg(mock.port.to_string()).arg(&env.cert).arg(EXCHANGES),
        )?;
        out.trim().parse::<f64>().context("client output")
    };
    let (mut none, mut with) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        none.push(client(&mock)?);
        let g = Guard::start(env, &[])?;
        with.push(client(&mock)?);
        g.stop()?;
    }
    let (n, g) = (median(&none), median(&with));
    let mut report = format!(
        "\n## End-to-end slowdown\n\n{EXCHANGES} streamed Anthropic exchanges on one keep-alive TLS connection (python \
         http.client → mock server), {ROUNDS} rounds:\nnone {n:.2} s | guard {g:.2} s (×{:.3}, +{:.2} ms per exchange)\n",
        g / n,
        (g - n) * 1e3 / EXCHANGES.parse::<f64>()?
    );

    // One more run, recorded, for the pipeline throughput.
    let capture = env.out.join("capture.jsonl");
    // guard records only to a new file; the last bench left its capture here.
    if let Err(e) = std::fs::remove_file(&capture)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(e).context("removing the last capture");
    }
    let g = Guard::start(env, &["--record", capture.to_str().context("capture path")?])?;
    client(&mock)?;
    g.stop()?;
    report += "\n## Pipeline throughput\n\nOne core, over the capture of one end-to-end run (record bytes → decode → \
               streams → HTTP/SSE → providers → attribution):\n";
    report += &output(Command::new(env.release.join("pipeline_throughput")).arg(&capture).arg("20"))?;

    report += &memory(env, &mock)?;
    Ok(report)
}

/// The daemon's RSS before and while `CONNECTIONS` TLS connections are open and tracked.
fn memory(env: &Env, mock: &Mock) -> Result<String> {
    let g = Guard::start(env, &[])?;
    std::thread::sleep(std::time::Duration::from_secs(1));
    let before = procfs::status_kib(g.pid(), "VmRSS:");
    let mut hold = Command::new("python3")
        .arg(bench_script(env, "hold_connections.py"))
        .arg(mock.port.to_string())
        .arg(&env.cert)
        .arg(CONNECTIONS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(hold.stdout.take().context("stdout")?).lines();
    if !lines.any(|l| l.is_ok_and(|l| l == "ready")) {
        bail!("hold_connections.py did not get its connections up");
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let during = procfs::status_kib(g.pid(), "VmRSS:");
    if let Some(mut stdin) = hold.stdin.take() {
        let _ = stdin.write_all(b"");
    }
    hold.wait()?;
    g.stop()?;
    Ok(format!(
        "\n## Memory\n\nDaemon RSS: {:.1} MiB idle, {:.1} MiB with {CONNECTIONS} open tracked connections \
         (+{:.1} KiB per connection). The mock server's side of each connection is captured too, so {} connections \
         are tracked.\n",
        before as f64 / 1024.0,
        during as f64 / 1024.0,
        (during.saturating_sub(before)) as f64 / CONNECTIONS.parse::<f64>()?,
        2 * CONNECTIONS.parse::<u32>()?
    ))
}
