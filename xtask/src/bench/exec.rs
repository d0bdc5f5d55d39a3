//! Exec tracing cost: a fork+exec loop of /bin/true with and without guard.

use std::process::Command;

use anyhow::{Result, bail};

use super::{Env, Guard, median, timed};

const ROUNDS: usize = 5;
const EXECS: u32 = 500;

pub(super) fn run(env: &Env) -> Result<String> {
    let (mut none, mut guard) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        none.push(per_exec_us()?);
        let g = Guard::start(env, &[])?;
        guard.push(per_exec_us()?);
        g.stop()?;
    }
    let (n, g) = (median(&none), median(&guard));
    Ok(format!(
        "\n## Exec tracing\n\nfork+exec+wait of /bin/true, {EXECS} per round, {ROUNDS} rounds:\n\
         none {n:.0} µs | guard {g:.0} µs (+{:.0} µs, ×{:.2})\n",
        g - n,
        g / n
    ))
}

fn per_exec_us() -> Result<f64> {
    let secs = timed(|| {
        for _ in 0..EXECS {
            if !Command::new("/bin/true").status()?.success() {
                bail!("/bin/true failed");
            }
        }
        Ok(())
    })?;
    Ok(secs * 1e6 / f64::from(EXECS))
}
