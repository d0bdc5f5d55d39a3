//! Probe cost: the per-call time of SSL_write and SSL_read (64 B and 16 KiB) with no probes, with
//! the empty uprobe+uretprobe pair (the floor no probe can beat), and with guard's probes on a
//! captured connection. Then the daemon's CPU, peak RSS and losses while the probes fire at the
//! harness's maximum rate.

use std::{
    ffi::OsString,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use super::{Env, ForeignWatch, Guard, counter, median, output, procfs, wait_until_quiet};
use crate::sh;

const LIBSSL: &str = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
const ROUNDS: usize = 5;
const CALLS: &str = "20000";
const REPS: &str = "3";

#[derive(Clone, Copy, PartialEq)]
enum Cond {
    None,
    Floor,
    Guard,
}

pub(super) fn run(env: &Env) -> Result<String> {
    let harness = env.out.join("probe_cost");
    sh(Command::new("gcc").args(["-O2", "-o"]).arg(&harness).arg(env.root.join("bench/probe_cost.c")).args(["-lssl", "-lcrypto"]))?;
    let libssl = Harness { cmd: vec![harness.clone().into()], hooked: LIBSSL.into(), calls: ["SSL_write", "SSL_read"], gated: false };
    let mut report = String::from(
        "\n## Probe cost\n\nPer-call ns, median; overhead = condition − none. guard has no fast path for connections it \
         is not interested in: every call on a hooked library is copied to the ring.\n\n",
    );
    report += &per_call(env, &libssl)?;
    report += &max_rate(env, &harness)?;
    Ok(report)
}

/// A per-call cost harness. It takes `CERT KEY SIZE CALLS REPS write|read` after `cmd` and prints
/// one ns/call figure per repetition.
pub(super) struct Harness {
    /// The program and its leading arguments.
    pub cmd: Vec<OsString>,
    /// The file whose hooks the calls go through: probe_floor mirrors guard's probes on it, and
    /// guard logs it when it attaches.
    pub hooked: PathBuf,
    /// The write and read rows' names.
    pub calls: [&'static str; 2],
    /// The harness prints `ready`, then waits for a line on stdin (PROBE_COST_WAIT_STDIN) before
    /// the timed phase. Needed where guard hooks the harness's own binary once it runs; a system
    /// libssl is hooked before `guard ready`.
    pub gated: bool,
}

/// The table of one harness: write and read, 64 B and 16 KiB, under the three conditions
/// interleaved round by round.
pub(super) fn per_call(env: &Env, h: &Harness) -> Result<String> {
    let mut report = String::from(
        "| call | size | none | floor (empty probes) | guard | floor overhead | guard overhead | guard/floor |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let mut busy_runs = Vec::new();
    for (op, call) in ["write", "read"].into_iter().zip(h.calls) {
        for size in ["64", "16384"] {
            let mut samples: [(Cond, Vec<f64>); 3] = [(Cond::None, vec![]), (Cond::Floor, vec![]), (Cond::Guard, vec![])];
            let mut busy = 0;
            for _ in 0..ROUNDS {
                for (cond, vals) in samples.iter_mut() {
                    // Another guard on this shared machine would probe the harness too: such
                    // samples are taken again. Each starts on a quiet machine.
                    let out = loop {
                        busy += usize::from(wait_until_quiet()?);
                        let watch = ForeignWatch::start();
                        let holder = Holder::start(*cond, env, &h.hooked)?;
                        let out = run_harness(env, h, holder.1.as_ref(), &[size, CALLS, REPS, op]);
                        holder.stop()?;
                        let foreign = watch.finish();
                        if foreign.is_empty() {
                            break out?;
                        }
                        println!("bench: sample discarded: other probe holders ran meanwhile ({foreign:?})");
                    };
                    vals.extend(out.lines().filter_map(|l| l.trim().parse::<f64>().ok()));
                }
            }
            let med = |c: Cond| samples.iter().find(|s| s.0 == c).map_or(f64::NAN, |s| median(&s.1));
            let (none, floor, guard) = (med(Cond::None), med(Cond::Floor), med(Cond::Guard));
            let row = format!(
                "| {call} | {size} B | {none:.0} | {floor:.0} | {guard:.0} | +{:.0} | +{:.0} | {:.2} |\n",
                floor - none,
                guard - none,
                (guard - none) / (floor - none),
            );
            if busy > 0 {
                busy_runs.push(format!("{call} {size} B: {busy} of {}", 3 * ROUNDS));
            }
            print!("{row}");
            report += &row;
        }
    }
    if !busy_runs.is_empty() {
        report += &format!(
            "\nRuns that started on a busy machine (other work over 0.3 cores for 10 minutes): {}.\n",
            busy_runs.join("; ")
        );
    }
    Ok(report)
}

/// One run of the harness; when gated and guard holds the probes, the timed phase starts only
/// once guard has logged the attach to `h.hooked`.
fn run_harness(env: &Env, h: &Harness, guard: Option<&Guard>, args: &[&str]) -> Result<String> {
    let (program, lead) = h.cmd.split_first().context("empty harness command")?;
    let mut cmd = Command::new(program);
    cmd.args(lead).arg(&env.cert).arg(&env.key).args(args);
    if !h.gated {
        return output(&mut cmd);
    }
    let mut child = cmd.env("PROBE_COST_WAIT_STDIN", "1").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let result = (|| -> Result<String> {
        let mut stdout = BufReader::new(child.stdout.take().context("harness stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        if line.trim() != "ready" {
            bail!("harness {program:?} did not get ready (said {line:?})");
        }
        if let Some(g) = guard {
            let path = h.hooked.to_str().context("hooked path")?;
            g.wait_for(&["attached TLS target", path], Duration::from_secs(120))?;
        }
        child.stdin.take().context("harness stdin")?.write_all(b"go\n")?;
        let mut rest = String::new();
        stdout.read_to_string(&mut rest)?;
        Ok(rest)
    })();
    if result.is_err() {
        let _ = child.kill();
    }
    let status = child.wait()?;
    let rest = result?;
    if !status.success() {
        bail!("harness {program:?} {args:?} failed: {status}");
    }
    Ok(rest)
}

/// The daemon under the harness's maximum SSL_write rate: its CPU, peak RSS and losses.
fn max_rate(env: &Env, harness: &Path) -> Result<String> {
    let mut report = String::from(
        "\n### Daemon at the maximum probe rate\n\nDaemon CPU is counted from the harness's start until the daemon is idle again \
         (it keeps draining after the harness ends), as a share of one core over the harness's wall time.\n\n\
         | size | calls/s | MB/s captured | daemon CPU | CPU ns per captured KiB | peak RSS | lost (ring, channel, truncated) |\n|---|---|---|---|---|---|---|\n",
    );
    for (size, calls) in [("64", "200000"), ("16384", "40000")] {
        let g = Guard::start(env, &[])?;
        let pid = g.pid();
        let t0 = std::time::Instant::now();
        let cpu0 = procfs::cpu_ticks(pid);
        let out = output(Command::new(harness).arg(&env.cert).arg(&env.key).args([size, calls, "1", "write"]))?;
        let wall = t0.elapsed().as_secs_f64();
        // Wait until the daemon has drained what the harness produced (its CPU time stops rising).
        let mut last = procfs::cpu_ticks(pid);
        for _ in 0..50 {
            std::thread::sleep(std::time::Duration::from_millis(300));
            let now = procfs::cpu_ticks(pid);
            if now == last {
                break;
            }
            last = now;
        }
        let cpu = (last - cpu0) as f64 / 100.0;
        let hwm = procfs::status_kib(pid, "VmHWM:");
        let cs = g.stop()?;
        let ns: f64 = out.trim().parse().context("harness output")?;
        let n: f64 = calls.parse()?;
        let size_b: f64 = size.parse()?;
        report += &format!(
            "| {size} B | {:.0} (harness {:.2} s of {wall:.2} s wall) | {:.1} | {:.0}% of one core ({cpu:.2} s) | {:.0} | {:.1} MiB | {}, {}, {} |\n",
            1e9 / ns,
            ns * n / 1e9,
            n * size_b / wall / 1e6,
            cpu / wall * 100.0,
            cpu * 1e9 / (n * size_b / 1024.0),
            hwm as f64 / 1024.0,
            counter(&cs, "kernel_ring_full"),
            counter(&cs, "channel_full"),
            counter(&cs, "kernel_tls_truncated"),
        );
    }
    Ok(report)
}

/// Whatever holds the probes for a condition.
struct Holder(Option<Child>, Option<Guard>);

impl Holder {
    fn start(cond: Cond, env: &Env, hooked: &Path) -> Result<Self> {
        Ok(match cond {
            Cond::None => Self(None, None),
            Cond::Guard => Self(None, Some(Guard::start(env, &[])?)),
            Cond::Floor => {
                let mut c = Command::new(env.release.join("probe_floor"))
                    .arg(hooked)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()?;
                let mut lines = BufReader::new(c.stdout.take().context("stdout")?).lines();
                if !lines.any(|l| l.is_ok_and(|l| l.contains("ready"))) {
                    bail!("probe_floor exited before it was ready");
                }
                Self(Some(c), None)
            }
        })
    }

    fn stop(self) -> Result<()> {
        if let Some(mut c) = self.0 {
            drop(c.stdin.take()); // closing stdin ends the floor holder
            c.wait()?;
        }
        if let Some(g) = self.1 {
            g.stop()?;
        }
        Ok(())
    }
}
