//! The request pause's cost per `SSL_write` (issue 21, docs/api-calls.md): the probe harness's
//! write with guard in monitor mode (the pause off: the baseline), in enforce mode for a process
//! outside every agent's tree (one more hash lookup), and in enforce mode for an agent's
//! descendant on a connection that starts no request (the scope and connection lookups and an
//! 8-byte read of the buffer). The agent is a copy of `sh` named in an inline catalog entry; the
//! harness is its child. Conditions interleaved round by round, medians.

use std::{path::Path, process::Command};

use anyhow::{Context as _, Result};

use super::{Env, Guard, median, output};
use crate::sh;

const ROUNDS: usize = 11;
const CALLS: &str = "20000";
const REPS: &str = "3";
const AGENT: &str = "bench-agent";

#[derive(Clone, Copy, PartialEq)]
enum Cond {
    Monitor,
    EnforceOutside,
    EnforceDescendant,
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
         agent's descendant on a connection that starts no request, the scope and connection lookups and an 8-byte read.\n\n\
         | size | monitor | enforce, outside agents | enforce, agent's descendant | added outside | added descendant |\n|---|---|---|---|---|---|\n",
    );
    for size in ["64"] {
        let mut samples: [(Cond, Vec<f64>); 3] = [(Cond::Monitor, vec![]), (Cond::EnforceOutside, vec![]), (Cond::EnforceDescendant, vec![])];
        for round in 0..ROUNDS {
            samples.rotate_left(round % 3);
            for (cond, vals) in samples.iter_mut() {
                let cfg = if *cond == Cond::Monitor { &monitor } else { &enforce };
                let g = Guard::start(env, &["--config", cfg.to_str().context("config path")?, "--metrics-addr", "127.0.0.1:0"])?;
                let out = run_harness(env, &harness, &agent, *cond == Cond::EnforceDescendant, size);
                g.stop()?;
                vals.extend(out?.lines().filter_map(|l| l.trim().parse::<f64>().ok()));
            }
        }
        let med = |c: Cond| samples.iter().find(|s| s.0 == c).map_or(f64::NAN, |s| median(&s.1));
        let (m, o, d) = (med(Cond::Monitor), med(Cond::EnforceOutside), med(Cond::EnforceDescendant));
        let row = format!("| {size} B | {m:.0} | {o:.0} | {d:.0} | {:+.0} | {:+.0} |\n", o - m, d - m);
        print!("{row}");
        report += &row;
    }
    Ok(report)
}

/// One harness run; as the agent's child, after the agent is in guard's scope (it identifies a
/// catalog agent from its exec record, within milliseconds; the second's wait is ample).
fn run_harness(env: &Env, harness: &Path, agent: &Path, descendant: bool, size: &str) -> Result<String> {
    let args = [size, CALLS, REPS, "write"];
    if !descendant {
        return output(Command::new(harness).arg(&env.cert).arg(&env.key).args(args));
    }
    let script = format!("sleep 1; '{}' '{}' '{}' {}; true", harness.display(), env.cert.display(), env.key.display(), args.join(" "));
    output(Command::new(agent).args(["-c", &script]))
}
