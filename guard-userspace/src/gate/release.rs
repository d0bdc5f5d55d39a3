//! Processes the exec gate stopped at `sys_exit_execve`: who they are, and letting them go.
//! The kernel records each in `GATE_STOPPED`, pinned at [`PIN`], so a guard that died leaves a
//! list: the next guard judges what is on it at start, the watchdog lets it all go when guard
//! dies, and `guard gate release` (the systemd unit's `ExecStopPost`) does the same by hand.

use std::{
    fs,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
    process::ExitCode,
};

use aya::maps::{HashMap, Map, MapData};
use guard_common::gate::{STOP_ANSWERED, STOP_LOAD, STOP_REQUEST, StopEvent};
use guard_core::enforce::{Decision, ExecRequest, Judge, Mechanism, Verdict};

pub(crate) const PIN: &str = "/sys/fs/bpf/guard/gate_stopped";

/// `/proc/PID/stat` start times are in USER_HZ ticks of 10 ms.
const NS_PER_TICK: u64 = 10_000_000;
/// Longest cmdline read from a stopped process.
const CMDLINE_CAP: usize = 256 << 10;

/// A stopped process, checked to be the very one the kernel stopped.
pub(super) struct Stopped {
    pidfd: OwnedFd,
    pub argv: Vec<String>,
    pub cwd: Option<String>,
}

/// Opens the process of a stop record; `None` when it is gone (or its pid now names another).
/// A process that is there is always returned, so that it is let go: what cannot be read of it
/// (its cmdline, its cwd) is left empty, and an empty argv is judged by the fail mode.
pub(super) fn open(ev: &StopEvent) -> Option<Stopped> {
    let mut st = open_bare(ev)?;
    let proc = format!("/proc/{}", ev.tgid);
    let raw = fs::read(format!("{proc}/cmdline")).unwrap_or_default();
    let raw = &raw[..raw.len().min(CMDLINE_CAP)];
    st.argv = raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    st.cwd = cwd_of(ev.tgid);
    Some(st)
}

/// [`open`] without reading the command line or the cwd: for a paused request, judged on its
/// bytes (every write of an HTTP/2 connection pauses, so the reads are worth saving).
pub(super) fn open_bare(ev: &StopEvent) -> Option<Stopped> {
    let pidfd = pidfd_open(ev.tgid).ok()?;
    // Checked after the pidfd is held: if the start time matches now, the pidfd is that process.
    if start_ticks(ev.tgid)? != ev.start_ns / NS_PER_TICK {
        return None;
    }
    Some(Stopped { pidfd, argv: Vec::new(), cwd: None })
}

/// Whether the process of a stop record is still there (its pid names the same process).
pub(super) fn alive(ev: &StopEvent) -> bool {
    start_ticks(ev.tgid).is_some_and(|t| t == ev.start_ns / NS_PER_TICK)
}

/// The cwd of process `pid`, while it is there.
pub(super) fn cwd_of(pid: u32) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/cwd")).ok().map(|p| p.display().to_string())
}

/// A pidfd of process `pid`: it names that process even if the pid is reused later.
pub(super) fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The fields of a `/proc/.../stat` line after the parenthesised comm (which may hold spaces
/// and parentheses), from the state on.
pub(super) fn after_comm(stat: &str) -> Option<&str> {
    stat.rsplit_once(')').map(|(_, rest)| rest.trim_start())
}

/// Field 22 of `/proc/PID/stat`, after the parenthesised comm (which may hold spaces).
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_ticks(&stat)
}

fn parse_start_ticks(stat: &str) -> Option<u64> {
    after_comm(stat)?.split_whitespace().nth(19)?.parse().ok()
}

pub(super) fn judge(judge: &Judge, ev: &StopEvent, st: &Stopped) -> Verdict {
    let in_agent_tree = ev.slot != 0;
    if st.argv.is_empty() {
        return Verdict { decision: judge.on_timeout(in_agent_tree), matches: Vec::new() };
    }
    judge.judge(&ExecRequest {
        pid: ev.tgid,
        tid: ev.tid,
        uid: Some(ev.uid),
        in_agent_tree,
        argv: &st.argv,
        argv_complete: true,
        cwd: st.cwd.as_deref().map(Path::new),
        mechanism: Mechanism::Stop,
    })
}

/// SIGCONT (allow) or SIGKILL (deny). A SIGCONT sent before the stop lands still wins: it
/// discards the pending SIGSTOP.
pub(super) fn let_go(st: &Stopped, d: Decision) {
    let sig = if d == Decision::Deny { libc::SIGKILL } else { libc::SIGCONT };
    // SAFETY: pidfd_send_signal with a pidfd we own, no siginfo.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, st.pidfd.as_raw_fd(), sig, std::ptr::null::<u8>(), 0) };
    if r < 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "signalling a stopped exec failed");
    }
}

fn open_pin() -> Option<HashMap<MapData, u32, StopEvent>> {
    let data = MapData::from_pin(PIN).ok()?;
    HashMap::try_from(Map::HashMap(data)).ok()
}

/// Every entry of the pinned registry; entries are removed once handled.
fn drain(f: impl Fn(&StopEvent, &Stopped)) -> usize {
    let Some(mut map) = open_pin() else { return 0 };
    let entries: Vec<(u32, StopEvent)> = map.iter().filter_map(Result::ok).collect();
    let mut n = 0;
    for (tgid, ev) in entries {
        // An answered pause's entry names a process that runs: nothing to let go (or kill).
        if ev.scope_flags & STOP_ANSWERED == 0
            && let Some(st) = open(&ev)
        {
            f(&ev, &st);
            n += 1;
        }
        let _ = map.remove(&tgid);
    }
    n
}

/// At start, before arming: what an earlier guard left stopped is judged like a fresh stop;
/// then the old registry's pin goes, for this guard's own.
pub(super) fn adopt(j: &Judge) {
    // A paused request is let go: its bytes are not read again here (fail open).
    let n = drain(|ev, st| let_go(st, if ev.scope_flags & (STOP_REQUEST | STOP_LOAD) != 0 { Decision::Allow } else { judge(j, ev, st).decision }));
    if n > 0 {
        tracing::warn!(processes = n, "judged and let go the execs an earlier guard had stopped");
    }
    let _ = fs::remove_file(PIN);
    if let Some(dir) = Path::new(PIN).parent() {
        let _ = fs::create_dir_all(dir);
    }
}

/// Lets go (SIGCONT) every process stopped longer than `max_age` ago: guard answers a stop in
/// milliseconds, so an older one was left by a guard that stopped answering. Its exec waited
/// as long as the watchdog allows any exec to wait, and then runs (fail open).
pub(crate) fn release_stale(map: &mut HashMap<MapData, u32, StopEvent>, now_ns: u64, max_age: std::time::Duration) -> usize {
    release_where(map, |ev| {
        // A library load is held up to its own bound by guard (`loads`), then let go.
        let age = if ev.scope_flags & STOP_LOAD != 0 { max_age + super::first_run::HOLD } else { max_age };
        now_ns.saturating_sub(ev.stopped_ns) > age.as_nanos() as u64
    })
}

/// Lets go every stop guard has not answered, whatever its age: guard is silent, so no answer
/// will come.
pub(crate) fn release_unanswered(map: &mut HashMap<MapData, u32, StopEvent>) -> usize {
    release_where(map, |_| true)
}

fn release_where(map: &mut HashMap<MapData, u32, StopEvent>, due: impl Fn(&StopEvent) -> bool) -> usize {
    let old: Vec<(u32, StopEvent)> = map.iter().filter_map(Result::ok).filter(|(_, ev)| ev.scope_flags & STOP_ANSWERED == 0 && due(ev)).collect();
    for (tgid, ev) in &old {
        if let Some(st) = open(ev) {
            let_go(&st, Decision::Allow);
        }
        let _ = map.remove(tgid);
    }
    old.len()
}

/// The registry guard pinned, if there is one.
pub(crate) fn pinned() -> Option<HashMap<MapData, u32, StopEvent>> {
    open_pin()
}

/// Lets every stopped process go: SIGCONT, or SIGKILL with `kill`.
pub(crate) fn release_all(kill: bool) -> usize {
    let d = if kill { Decision::Deny } else { Decision::Allow };
    drain(|_, st| let_go(st, d))
}

/// At a clean stop, once the watchdog has let go what was left: removes the registry's pin (and
/// its directory, if empty) when the pinned map is this guard's own, not a later guard's. An
/// empty map pinned in bpffs would outlive guard for nothing.
pub(crate) fn unpin(ours: u32) {
    let Ok(pinned) = MapData::from_pin(PIN) else { return };
    if pinned.info().is_ok_and(|i| i.id() == ours) {
        let _ = fs::remove_file(PIN);
        if let Some(dir) = Path::new(PIN).parent() {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// `guard gate release`.
pub(crate) fn main(kill: bool) -> anyhow::Result<ExitCode> {
    if !Path::new(PIN).exists() {
        println!("no registry of stopped execs at {PIN}: nothing to release");
        return Ok(ExitCode::SUCCESS);
    }
    let n = release_all(kill);
    println!("{} {n} stopped exec(s)", if kill { "killed" } else { "released" });
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_start_ticks;

    #[test]
    fn start_time_is_field_22_even_with_spaces_and_parens_in_comm() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_start_ticks(stat), Some(98765));
        assert_eq!(parse_start_ticks("42 (x) S 1"), None);
        assert_eq!(parse_start_ticks("garbage"), None);
    }
}
