//! The checks that decide whether guard can run here. Each reads files under a root directory
//! (`/` normally, a fake tree in tests).

use std::{fs, path::Path};

use serde::Serialize;

use crate::kernel::{
    btf::Btf,
    probes::{Hook, PROBES},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Ok,
    /// guard runs, with less (a feature off, a limit).
    Warn,
    /// guard cannot run.
    Fail,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Check {
    /// Stable name (docs/doctor.md lists them).
    pub name: String,
    pub status: Status,
    pub detail: String,
}

fn check(name: &str, status: Status, detail: impl Into<String>) -> Check {
    Check { name: name.into(), status, detail: detail.into() }
}

/// Ring buffer maps (5.8) and `bpf_loop` (5.17).
pub(crate) const MIN_KERNEL: (u32, u32) = (5, 17);

/// `6.18.0-foo` → (6, 18).
pub(crate) fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

pub(crate) fn kernel_version(release: Option<&str>) -> Check {
    let Some(release) = release else {
        return check("kernel_version", Status::Fail, "cannot read /proc/sys/kernel/osrelease");
    };
    match parse_release(release) {
        Some(v) if v >= MIN_KERNEL => check("kernel_version", Status::Ok, format!("{release} (needs >= {}.{})", MIN_KERNEL.0, MIN_KERNEL.1)),
        Some(_) => check("kernel_version", Status::Fail, format!("{release} is older than {}.{} (ring buffer, bpf_loop)", MIN_KERNEL.0, MIN_KERNEL.1)),
        None => check("kernel_version", Status::Warn, format!("cannot parse kernel release {release:?}")),
    }
}

/// BTF, and the `task_struct` members the programs need (their offsets are read at load).
pub(crate) fn btf(path: &Path) -> (Check, Option<Btf>) {
    let raw = match fs::read(path) {
        Ok(r) => r,
        Err(e) => return (check("btf", Status::Fail, format!("cannot read {}: {e} (kernel needs CONFIG_DEBUG_INFO_BTF)", path.display())), None),
    };
    let btf = match Btf::parse(&raw) {
        Ok(b) => b,
        Err(e) => return (check("btf", Status::Fail, format!("{}: {e}", path.display())), None),
    };
    let missing: Vec<&str> = ["real_parent", "tgid", "pid", "start_boottime", "exit_code"]
        .into_iter()
        .filter(|m| btf.member_offset("task_struct", m).is_err())
        .collect();
    let c = if missing.is_empty() {
        check("btf", Status::Ok, format!("{} ({} KiB), task_struct fields found", path.display(), raw.len() / 1024))
    } else {
        check("btf", Status::Fail, format!("task_struct lacks {}", missing.join(", ")))
    };
    (c, Some(btf))
}

/// Mount points and types from a mounts file.
pub(crate) fn mounted(mounts: &str, dir: &str, fstype: &str) -> bool {
    mounts.lines().any(|l| {
        let mut f = l.split_whitespace();
        let (_, mnt, ty) = (f.next(), f.next(), f.next());
        mnt == Some(dir) && ty == Some(fstype)
    })
}

/// tracefs: the tracepoint `format` files are read at start.
pub(crate) fn tracefs(tracefs: &Path, shown: &str) -> Check {
    let probe = tracefs.join("events/sched/sched_process_exec/format");
    match fs::read_to_string(&probe) {
        Ok(_) => check("tracefs", Status::Ok, format!("{shown} readable")),
        Err(e) => check("tracefs", Status::Fail, format!("cannot read {shown}/events: {e}; mount it: mount -t tracefs tracefs {shown}")),
    }
}

/// bpffs is not needed to run, but the exec gate pins its registry of stopped processes there
/// (the `stop_registry` mechanism), and tools such as bpftool expect it.
pub(crate) fn bpffs(mounts: Option<&str>) -> Check {
    match mounts {
        Some(m) if mounted(m, "/sys/fs/bpf", "bpf") => check("bpffs", Status::Ok, "mounted at /sys/fs/bpf"),
        Some(_) => check("bpffs", Status::Warn, "not mounted at /sys/fs/bpf (the exec gate's stop registry then lives in guard's memory only; bpftool wants it too: mount -t bpf bpf /sys/fs/bpf)"),
        None => check("bpffs", Status::Warn, "cannot read /proc/mounts"),
    }
}

// Capability numbers (linux/capability.h).
pub(crate) const CAP_DAC_READ_SEARCH: u32 = 2;
pub(crate) const CAP_KILL: u32 = 5;
pub(crate) const CAP_SYS_PTRACE: u32 = 19;
pub(crate) const CAP_SYS_ADMIN: u32 = 21;
pub(crate) const CAP_SYS_RESOURCE: u32 = 24;
pub(crate) const CAP_PERFMON: u32 = 38;
pub(crate) const CAP_BPF: u32 = 39;

/// CapEff from a `/proc/PID/status`.
pub(crate) fn cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Names of the capabilities guard uses that `eff` lacks, split by whether guard needs them.
/// `memlock_matters`: kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
pub(crate) fn capabilities(eff: Option<u64>, memlock_matters: bool) -> Check {
    let Some(eff) = eff else {
        return check("capabilities", Status::Fail, "cannot read CapEff from /proc/self/status");
    };
    let has = |c: u32| eff & (1 << c) != 0;
    // CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON (and is all there is before 5.8).
    let bpf = has(CAP_BPF) || has(CAP_SYS_ADMIN);
    let perfmon = has(CAP_PERFMON) || has(CAP_SYS_ADMIN);
    let mut missing_required = vec![];
    if !bpf {
        missing_required.push("CAP_BPF (load programs and maps)");
    }
    if !perfmon {
        missing_required.push("CAP_PERFMON (attach tracepoints and uprobes, read user memory)");
    }
    let recommended = [
        (CAP_SYS_PTRACE, "CAP_SYS_PTRACE (read other users' /proc/PID maps, exe, environ)", true),
        (CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH (open libraries inside containers through /proc/PID/root)", true),
        (CAP_SYS_RESOURCE, "CAP_SYS_RESOURCE (raise RLIMIT_MEMLOCK for BPF maps on this pre-5.11 kernel)", memlock_matters),
    ];
    let missing_recommended: Vec<&str> = recommended.iter().filter(|(c, _, wanted)| *wanted && !has(*c)).map(|(_, n, _)| *n).collect();
    if !missing_required.is_empty() {
        let also = if missing_recommended.is_empty() { String::new() } else { format!("; also recommended: {}", missing_recommended.join(", ")) };
        check("capabilities", Status::Fail, format!("missing {} — run as root or grant them{also}", missing_required.join(", ")))
    } else if !missing_recommended.is_empty() {
        check("capabilities", Status::Warn, format!("CapEff {eff:#x}; missing {}", missing_recommended.join(", ")))
    } else {
        check("capabilities", Status::Ok, format!("CapEff {eff:#x}: has what guard uses"))
    }
}

/// The uprobe PMU: TLS capture needs it; exec tracing does not.
pub(crate) fn uprobes(sys: &Path) -> Check {
    match fs::read_to_string(sys.join("bus/event_source/devices/uprobe/type")) {
        Ok(t) => check("uprobes", Status::Ok, format!("uprobe PMU type {}", t.trim())),
        Err(_) => check("uprobes", Status::Warn, "no uprobe PMU (CONFIG_UPROBE_EVENTS off): LLM traffic cannot be captured, commands still are"),
    }
}

/// Every tracepoint of the probe table exists (required ones are fatal).
pub(crate) fn tracepoints(tracefs: &Path) -> Vec<Check> {
    PROBES
        .iter()
        .map(|p| {
            let (category, name) = match p.hook {
                Hook::Tracepoint { category, name } => (category, name),
                Hook::RawTracepoint { name } => ("sched", name),
            };
            let present = tracefs.join("events").join(category).join(name).join("format").exists();
            let name_s = format!("tracepoint:{category}/{name}");
            match (present, p.required) {
                (true, _) => check(&name_s, Status::Ok, p.purpose),
                (false, true) => check(&name_s, Status::Fail, format!("missing; needed for {}", p.purpose)),
                (false, false) => check(&name_s, Status::Warn, format!("missing; without it no {}", p.purpose)),
            }
        })
        .collect()
}

/// This binary carries its eBPF programs (a build with AYA_BUILD_SKIP=1 does not).
pub(crate) fn ebpf_object() -> Check {
    if crate::EBPF_OBJECT.is_empty() {
        check("ebpf_object", Status::Fail, "this guard was built without its eBPF programs (AYA_BUILD_SKIP); rebuild with `cargo xtask run`")
    } else {
        check("ebpf_object", Status::Ok, format!("{} KiB of eBPF programs embedded", crate::EBPF_OBJECT.len() / 1024))
    }
}

/// Whether the metrics address is free (it is taken when guard already runs).
pub(crate) fn metrics_port(addr: Option<std::net::SocketAddr>) -> Check {
    let Some(addr) = addr else {
        return check("metrics_port", Status::Ok, "metrics disabled in the config");
    };
    match std::net::TcpListener::bind(addr) {
        Ok(_) => check("metrics_port", Status::Ok, format!("{addr} is free")),
        Err(e) => check("metrics_port", Status::Warn, format!("cannot bind {addr}: {e} (is guard already running?)")),
    }
}
