//! The exec path (issue 16): a fork+exec+wait loop of /bin/true (`bench/exec_loop.c`) with and
//! without guard, and the daemon's CPU per exec from its threads' utime+stime. The machine is
//! shared: the daemon's CPU over an idle window as long as the loop (other users' processes
//! exec too, and guard sees them) is subtracted, and the conditions alternate round by round.
//! The same loop beside a bare fanotify listener (`bench/bare_listener.c`, allows every exec at
//! once) gives the floor that any exec gate built on fanotify pays here.

use std::{
    collections::BTreeMap,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use super::{BareListener, Env, Guard, median, procfs};
use crate::sh;

const ROUNDS: usize = 5;
const EXECS: u32 = 4000;

pub(super) fn run(env: &Env) -> Result<String> {
    let exe = env.out.join("exec_loop");
    sh(Command::new("gcc").args(["-O2", "-o"]).arg(&exe).arg(env.root.join("bench/exec_loop.c")))?;
    let (mut none, mut guard, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bare, mut bare_cpu) = (Vec::new(), Vec::new());
    let mut threads: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..ROUNDS {
        none.push(loop_secs(&exe)?);
        let g = Guard::start(env, &["--audit-log", "off", "--metrics-addr", "127.0.0.1:0"])?;
        // The start's analysis of what agents may run (~0.1 s of the pass lane's CPU) ends
        // before the loop: it counted as 15-20 µs per exec in runs that began without this wait.
        g.wait_for(&["ahead-of-time TLS analysis done"], Duration::from_secs(60))?;
        let (secs, per_thread) = daemon_cpu(g.pid(), &exe)?;
        g.stop()?;
        guard.push(secs);
        cpu.push(per_thread.values().sum::<f64>());
        for (name, us) in per_thread {
            threads.entry(name).or_default().push(us);
        }
        let (secs, us) = beside_bare_listener(env, &exe)?;
        bare.push(secs);
        bare_cpu.push(us);
    }
    let (n, g) = (median(&none), median(&guard));
    // Each round's own ratio: a burst of other users' work moves both of its loops, not the figure.
    let ratios: Vec<f64> = guard.iter().zip(&none).map(|(g, n)| g / n).collect();
    let bare_ratios: Vec<f64> = bare.iter().zip(&none).map(|(b, n)| b / n).collect();
    let per = |s: f64| s * 1e6 / f64::from(EXECS);
    let by_thread: Vec<String> = threads.iter().map(|(t, v)| format!("{t} {:.1}", median(v))).collect();
    Ok(format!(
        "\n## Exec path\n\nfork+exec+wait of /bin/true (bench/exec_loop.c), {EXECS} per round, {ROUNDS} rounds:\n\
         wall: none {:.0} µs | guard {:.0} µs per exec (median of the rounds' ratios: {:+.1} %)\n\
         daemon CPU per exec (utime+stime, idle window subtracted): {:.1} µs ({})\n\
         the floor, beside a bare fanotify listener that allows every exec at once (bench/bare_listener.c): \
         {:.0} µs per exec ({:+.1} %), its CPU {:.1} µs per exec\n",
        per(n),
        per(g),
        (median(&ratios) - 1.0) * 100.0,
        median(&cpu),
        by_thread.join(", "),
        per(median(&bare)),
        (median(&bare_ratios) - 1.0) * 100.0,
        median(&bare_cpu),
    ))
}

/// The loop beside the bare listener: its wall seconds, and the listener's CPU µs per exec.
fn beside_bare_listener(env: &Env, exe: &Path) -> Result<(f64, f64)> {
    let bare = BareListener::start(env)?;
    let before = procfs::cpu_ticks(bare.pid());
    let secs = loop_secs(exe)?;
    Ok((secs, (procfs::cpu_ticks(bare.pid()) - before) as f64 * 1e4 / f64::from(EXECS)))
}

/// Wall seconds of one loop.
fn loop_secs(exe: &Path) -> Result<f64> {
    let t = Instant::now();
    let status = Command::new(exe).arg(EXECS.to_string()).arg("/bin/true").status()?;
    if !status.success() {
        bail!("{} failed: {status}", exe.display());
    }
    Ok(t.elapsed().as_secs_f64())
}

/// The loop under guard: its wall seconds, and the daemon's CPU µs per exec by thread name,
/// less what the daemon spent over an idle window as long.
fn daemon_cpu(pid: u32, exe: &Path) -> Result<(f64, BTreeMap<String, f64>)> {
    let before = thread_ticks(pid);
    let secs = loop_secs(exe)?;
    // Rescans of the loop's last programs come up to 1.5 s later: wait them out, and take an
    // idle window of the loop's length plus the wait.
    let settle = Duration::from_secs(2);
    std::thread::sleep(settle);
    let mid = thread_ticks(pid);
    std::thread::sleep(settle + Duration::from_secs_f64(secs));
    let after = thread_ticks(pid);
    let tick_us = 1e6 / 100.0;
    let per_thread = mid
        .iter()
        .map(|(name, m)| {
            let (b, a) = (before.get(name).copied().unwrap_or(0), after.get(name).copied().unwrap_or(*m));
            let busy = m.saturating_sub(b) as f64 - a.saturating_sub(*m) as f64;
            (name.clone(), (busy * tick_us / f64::from(EXECS)).max(0.0))
        })
        .collect();
    Ok((secs, per_thread))
}

/// utime+stime in clock ticks of each of the process's threads, summed by name (digits at the
/// end of a name dropped: tokio numbers nothing, but pools may).
fn thread_ticks(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for t in tasks.filter_map(Result::ok) {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else { continue };
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let name = head.split_once('(').map_or("", |(_, n)| n).trim_end_matches(|c: char| c.is_ascii_digit());
        let f: Vec<&str> = rest.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        *out.entry(name.to_string()).or_default() += n(11) + n(12);
    }
    out
}
