//! The request pause's cost per `SSL_write` (issue 21, docs/api-calls.md): the probe harness's
//! write with guard in monitor mode (the pause off: the baseline), in enforce mode for a process
//! outside every agent's tree (one more hash lookup), and in enforce mode for an agent's
//! descendant on a connection that starts no request (the scope and connection lookups and an
//! 8-byte read of the buffer), and in enforce mode for an agent's descendant on an HTTP/2
//! connection, where every write pauses (the stop, the read, the HTTP/2 state, the judge, the
//! SIGCONT). The agent is a copy of `sh` named in an inline catalog entry; the harness is its
//! child. Conditions interleaved round by round, medians.

use std::{path::Path, process::Command};

use anyhow::{Context as _, Result};

use super::{Env, Guard, median, output};
use crate::sh;

const ROUNDS: usize = 11;
const CALLS: &str = "20000";
/// Every one of these pauses: fewer keep the run short.
const CALLS_H2: &str = "2000";
const REPS: &str = "3";
const AGENT: &str = "bench-agent";

#[derive(Clone, Copy, PartialEq)]
enum Cond {
    Monitor,
    EnforceOutside,
    EnforceDescendant,
    EnforceH2,
}

pub(super) fn run(env: &Env) -> Result<String> {
    let harness = env.out.join("probe_cost");
    sh(Command::new("gcc").args(["-O2", "-o"]).arg(&harness).arg(env.root.join("bench/probe_cost.c")).args(["-lssl", "-lcrypto"]))?;
    let dir = env.out.join("pause");
    std::fs::create_dir_all(&dir)?;
    let agent = dir.join(AGENT);
    std::fs::copy("/bin/sh", &agent).context("copying /bin/sh")?;
    let config = |mode: &str| -> Result<std::path::PathBuf> {
        let path = dir.join(format!("{mode}.toml"));
        let text = format!("[enforce]\nmode = \"{mode}\"\n\n[[agents.agent]]\nid = \"{AGENT}\"\nname = \"bench agent\"\nexe = [\"{AGENT}\"]\n");
        std::fs::write(&path, text)?;
        Ok(path)
    };
    let (monitor, enforce) = (config("monitor")?, config("enforce")?);
    let mut report = String::from(
        "\n## Request pause\n\nSSL_write ns per call, median (`cargo xtask bench pause`); the baseline is guard in monitor mode \
         (the pause off). Enforce mode adds, per write: for a process outside every agent's tree, the scope lookup; for an \
         agent's descendant on a connection that starts no request, the scope and connection lookups and an 8-byte read; \
         on an HTTP/2 connection, every write pauses (a DATA frame of the size given).\n\n\
         | size | monitor | enforce, outside agents | enforce, agent's descendant | enforce, descendant's HTTP/2 write | added outside | added descendant | added HTTP/2 |\n|---|---|---|---|---|---|---|---|\n",
    );
    for size in ["64"] {
        let mut samples: [(Cond, Vec<f64>); 4] = [(Cond::Monitor, vec![]), (Cond::EnforceOutside, vec![]), (Cond::EnforceDescendant, vec![]), (Cond::EnforceH2, vec![])];
        for round in 0..ROUNDS {
            samples.rotate_left(round % 4);
            for (cond, vals) in samples.iter_mut() {
                let cfg = if *cond == Cond::Monitor { &monitor } else { &enforce };
                let g = Guard::start(env, &["--config", cfg.to_str().context("config path")?, "--metrics-addr", "127.0.0.1:0"])?;
                let out = run_harness(env, &harness, &agent, *cond, size);
                g.stop()?;
                vals.extend(out?.lines().filter_map(|l| l.trim().parse::<f64>().ok()));
            }
        }
        let med = |c: Cond| samples.iter().find(|s| s.0 == c).map_or(f64::NAN, |s| median(&s.1));
        let (m, o, d, h) = (med(Cond::Monitor), med(Cond::EnforceOutside), med(Cond::EnforceDescendant), med(Cond::EnforceH2));
        let row = format!("| {size} B | {m:.0} | {o:.0} | {d:.0} | {h:.0} | {:+.0} | {:+.0} | {:+.0} |\n", o - m, d - m, h - m);
        print!("{row}");
        report += &row;
    }
    Ok(report)
}

/// One harness run; as the agent's child, after the agent is in guard's scope (it identifies a
/// catalog agent from its exec record, within milliseconds; the second's wait is ample).
fn run_harness(env: &Env, harness: &Path, agent: &Path, cond: Cond, size: &str) -> Result<String> {
    let args = if cond == Cond::EnforceH2 { [size, CALLS_H2, REPS, "h2"] } else { [size, CALLS, REPS, "write"] };
    if !matches!(cond, Cond::EnforceDescendant | Cond::EnforceH2) {
        return output(Command::new(harness).arg(&env.cert).arg(&env.key).args(args));
    }
    let script = format!("sleep 1; '{}' '{}' '{}' {}; true", harness.display(), env.cert.display(), env.key.display(), args.join(" "));
    output(Command::new(agent).args(["-c", &script]))
}
