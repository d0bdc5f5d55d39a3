//! What /proc says about a process: CPU time and memory.

/// utime + stime in clock ticks (USER_HZ, 100 per second).
pub(super) fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

/// A `VmRSS`/`VmHWM`-style line of /proc/PID/status, in KiB.
pub(super) fn status_kib(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub(super) fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// Cores busy (not idle, not waiting for I/O) machine-wide over `window`, from /proc/stat.
pub(super) fn busy_cores(window: std::time::Duration) -> f64 {
    let sample = || -> (u64, u64) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let f: Vec<u64> = stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
        let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
        (f.iter().take(8).sum(), idle)
    };
    let (t0, i0) = sample();
    std::thread::sleep(window);
    let (t1, i1) = sample();
    let busy = (t1 - t0).saturating_sub(i1 - i0);
    busy as f64 / 100.0 / window.as_secs_f64()
}
