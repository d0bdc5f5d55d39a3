//! `cargo xtask bench-probe`: the per-call cost of SSL_write under no probes, the empty
//! uprobe+uretprobe floor, and guard's own probes (the real daemon), side by side in one run.
//! Conditions are interleaved round by round so machine drift hits all of them alike.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, setup, sh, workspace_root};

const LIBSSL: &str = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
const ROUNDS: usize = 5;
const CALLS: &str = "20000";
const REPS: &str = "5";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cond {
    None,
    Floor,
    Guard,
}

pub fn probe_cost() -> Result<()> {
    let toolchain = setup::run(&setup::Options { for_tests: true })?;
    setup::apt_extra(&["libssl-dev", "gcc"])?;
    let root = workspace_root();
    sh(cargo(&toolchain).args(["build", "--release", "-p", "guard-userspace", "--bin", "guard", "-p", "guard-tests", "--bin", "probe_floor"]))?;
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out)?;
    let harness = out.join("probe_cost");
    sh(Command::new("gcc").args(["-O2", "-o"]).arg(&harness).arg(root.join("bench/probe_cost.c")).args(["-lssl", "-lcrypto"]))?;
    let (cert, key) = (out.join("cert.pem"), out.join("key.pem"));
    if !cert.exists() {
        sh(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30", "-subj", "/CN=bench"])
            .arg("-keyout").arg(&key).arg("-out").arg(&cert).stderr(Stdio::null()))?;
    }
    let mut report = String::from("# SSL_write per-call cost (ns), median of repetitions\n");
    for size in ["64", "16384"] {
        let mut samples: Vec<(Cond, Vec<f64>)> = [Cond::None, Cond::Floor, Cond::Guard].map(|c| (c, vec![])).into();
        for _ in 0..ROUNDS {
            for (cond, vals) in samples.iter_mut() {
                let holder = start(*cond, &root)?;
                let o = Command::new(&harness).arg(&cert).arg(&key).args([size, CALLS, REPS]).output()?;
                stop(holder)?;
                if !o.status.success() {
                    bail!("probe_cost failed: {}", String::from_utf8_lossy(&o.stderr));
                }
                vals.extend(String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| l.trim().parse::<f64>().ok()));
            }
        }
        let med = |c: Cond| samples.iter().find(|s| s.0 == c).map(|s| median(&s.1)).unwrap_or(f64::NAN);
        let (none, floor, guard) = (med(Cond::None), med(Cond::Floor), med(Cond::Guard));
        report += &format!(
            "size {size} B: none {none:.0} ns | empty uprobe+uretprobe {floor:.0} ns (+{:.0}) | guard {guard:.0} ns (+{:.0}) | guard overhead / floor overhead = {:.2}\n",
            floor - none,
            guard - none,
            (guard - none) / (floor - none)
        );
    }
    print!("{report}");
    std::fs::write(out.join("probe-cost.txt"), &report)?;
    println!("written to {}", out.join("probe-cost.txt").display());
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn start(cond: Cond, root: &Path) -> Result<Option<Child>> {
    let bin = |name: &str| -> PathBuf { root.join("target/release").join(name) };
    Ok(match cond {
        Cond::None => None,
        Cond::Floor => {
            let mut c = Command::new(bin("probe_floor")).arg(LIBSSL).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
            wait_line(c.stdout.take().context("stdout")?, "ready")?;
            Some(c)
        }
        Cond::Guard => {
            let mut c = Command::new(bin("guard")).arg("run").env("GUARD_LOG", "info").stdin(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
            wait_line(c.stderr.take().context("stderr")?, "guard ready")?;
            Some(c)
        }
    })
}

fn wait_line(r: impl std::io::Read + Send + 'static, needle: &str) -> Result<()> {
    let mut lines = BufReader::new(r).lines();
    for line in lines.by_ref() {
        if line?.contains(needle) {
            // Keep draining in the background so the child never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(());
        }
    }
    bail!("the probe holder exited before saying {needle:?}")
}

fn stop(c: Option<Child>) -> Result<()> {
    let Some(mut c) = c else { return Ok(()) };
    // SIGTERM for the daemon (clean detach); closing stdin ends the floor holder.
    sh(Command::new("kill").arg("-TERM").arg(c.id().to_string()))?;
    drop(c.stdin.take());
    c.wait()?;
    Ok(())
}
