//! Which enforcement mechanisms this kernel allows. Where it is cheap and safe, guard asks the
//! kernel directly: it loads a tiny program that uses the mechanism (never attached, closed at
//! once), or places an fanotify mark on a temporary file of its own. Otherwise it infers from
//! what the kernel exposes, and says so.

use std::{fs, os::fd::{FromRawFd as _, OwnedFd}, path::Path};

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Method {
    /// The kernel was asked (a program load or an fanotify mark).
    Probed,
    /// Deduced from kernel files (lockdown, PMUs); not tried.
    Inferred,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Mechanism {
    /// Stable name: bpf_send_signal, bpf_lsm, fentry, bpf_override_return, bpf_probe_write_user,
    /// fanotify_exec_perm, fanotify_fs_exec_perm, exec_stop, cap_kill, stop_registry,
    /// bpf_lsm_unlink, delete_kill, io_uring_closed.
    pub mechanism: &'static str,
    pub available: bool,
    pub method: Method,
    /// What it would do for guard, and why it is or is not available.
    pub detail: String,
}

// BPF program types, attach types and helpers (linux/bpf.h).
const PROG_KPROBE: u32 = 2;
const PROG_TRACEPOINT: u32 = 5;
const PROG_TRACING: u32 = 26;
const PROG_LSM: u32 = 29;
const ATTACH_TRACE_FENTRY: u32 = 24;
const ATTACH_LSM_MAC: u32 = 27;
const HELPER_PROBE_WRITE_USER: i32 = 36;
const HELPER_OVERRIDE_RETURN: i32 = 58;
const HELPER_SEND_SIGNAL: i32 = 109;
const BPF_PROG_LOAD: libc::c_long = 5;

/// One BPF instruction, encoded.
const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    (code as u64) | (((dst | (src << 4)) as u64) << 8) | (((off as u16) as u64) << 16) | ((imm as u32 as u64) << 32)
}
const fn mov_imm(dst: u8, imm: i32) -> u64 {
    insn(0xb7, dst, 0, 0, imm)
}
const fn call(helper: i32) -> u64 {
    insn(0x85, 0, 0, 0, helper)
}
const EXIT: u64 = insn(0x95, 0, 0, 0, 0);

/// The part of `union bpf_attr` that BPF_PROG_LOAD reads, up to attach_btf_obj_fd.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_btf_obj_fd: u32,
    pad: u32,
}

/// Loads (verifies) a program and closes it at once. Err: the errno text.
fn try_load(prog_type: u32, attach_type: u32, attach_btf_id: u32, insns: &[u64]) -> Result<(), String> {
    let license = c"GPL";
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        expected_attach_type: attach_type,
        attach_btf_id,
        ..ProgLoadAttr::default()
    };
    attr.prog_name[..12].copy_from_slice(b"guard_doctor");
    // SAFETY: `attr` is a valid, zero-padded BPF_PROG_LOAD attribute whose pointers (insns,
    // license) outlive the call; the kernel only reads them.
    let fd = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, &raw mut attr, std::mem::size_of::<ProgLoadAttr>() as libc::c_uint)
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: the syscall returned a new file descriptor that nothing else owns.
    drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    Ok(())
}

/// What the host gives the probes: read by the caller from `/proc` and `/sys` (a fake tree in
/// tests).
pub(crate) struct Host<'a> {
    pub sys: &'a Path,
    /// The proc root, for sysctls.
    pub proc: &'a Path,
    /// The kernel's lockdown mode when it could be read ([`super::lockdown`]).
    pub lockdown: Option<&'a str>,
    /// The parsed kernel BTF when available (LSM and fentry programs name the kernel function
    /// they attach to).
    pub btf: Option<&'a crate::kernel::btf::Btf>,
    /// CapEff of this process.
    pub cap_eff: Option<u64>,
    /// `/proc/mounts`.
    pub mounts: Option<&'a str>,
    /// False without CAP_BPF or on a fake root: everything is then inferred.
    pub may_probe: bool,
}

/// Probes every mechanism.
pub(crate) fn mechanisms(host: &Host<'_>) -> Vec<Mechanism> {
    let Host { sys, lockdown, btf, may_probe, .. } = *host;
    let kprobes = sys.join("bus/event_source/devices/kprobe").exists();
    let lsms = fs::read_to_string(sys.join("kernel/security/lsm")).ok();
    let probe = |m: &'static str, what: &str, f: &dyn Fn() -> Result<(), String>| {
        if !may_probe {
            return Mechanism { mechanism: m, available: false, method: Method::Inferred, detail: format!("{what}; not probed (needs root or CAP_BPF)") };
        }
        match f() {
            Ok(()) => Mechanism { mechanism: m, available: true, method: Method::Probed, detail: format!("{what}; the kernel loads it") },
            Err(e) => Mechanism { mechanism: m, available: false, method: Method::Probed, detail: format!("{what}; refused: {e}") },
        }
    };
    let by_btf = |name: &str| btf.and_then(|b| b.func_id(name)).ok_or_else(|| format!("kernel function {name} not in BTF"));

    let send_signal = probe("bpf_send_signal", "signal a task from a BPF program (the exec gate's stop at sys_exit_execve)", &|| {
        try_load(PROG_TRACEPOINT, 0, 0, &[mov_imm(1, 9), call(HELPER_SEND_SIGNAL), mov_imm(0, 0), EXIT])
    });
    let exec_stop = exec_stop(&send_signal);
    let mut out = vec![send_signal];
    let mut lsm = probe("bpf_lsm", "deny an exec in an LSM hook (bprm_check_security) with an errno", &|| {
        try_load(PROG_LSM, ATTACH_LSM_MAC, by_btf("bpf_lsm_bprm_check_security")?, &[mov_imm(0, 0), EXIT])
    });
    if lsm.available && lsms.as_deref().is_some_and(|l| !l.split(',').any(|x| x.trim() == "bpf")) {
        lsm.available = false;
        lsm.detail = format!("programs load, but `bpf` is not among the active LSMs ({}); boot with lsm=...,bpf", lsms.as_deref().unwrap_or("").trim());
    }
    out.push(lsm);
    let mut lsm_unlink = probe("bpf_lsm_unlink", "refuse an agent's deletion with EPERM before its first file (an LSM hook on inode_unlink)", &|| {
        try_load(PROG_LSM, ATTACH_LSM_MAC, by_btf("bpf_lsm_inode_unlink")?, &[mov_imm(0, 0), EXIT])
    });
    if lsm_unlink.available && lsms.as_deref().is_some_and(|l| !l.split(',').any(|x| x.trim() == "bpf")) {
        lsm_unlink.available = false;
        lsm_unlink.detail = format!("programs load, but `bpf` is not among the active LSMs ({}); boot with lsm=...,bpf", lsms.as_deref().unwrap_or("").trim());
    }
    out.push(delete_kill(&out[0], &lsm_unlink));
    out.push(lsm_unlink);
    out.push(io_uring(&host.proc.join("sys/kernel/io_uring_disabled")));
    out.push(probe("fentry", "trampolines on kernel functions (fentry/fexit), lower overhead than kprobes", &|| {
        try_load(PROG_TRACING, ATTACH_TRACE_FENTRY, by_btf("security_bprm_check")?, &[mov_imm(0, 0), EXIT])
    }));
    let mut ovr = probe("bpf_override_return", "make a kernel function fail (error injection)", &|| {
        try_load(PROG_KPROBE, 0, 0, &[mov_imm(2, -1), call(HELPER_OVERRIDE_RETURN), mov_imm(0, 0), EXIT])
    });
    if !kprobes {
        ovr.detail.push_str(" (this kernel has no kprobes: CONFIG_KPROBES off)");
        ovr.available = false;
    }
    out.push(ovr);
    // Loading a program with this helper logs a kernel warning, so it is only probed when the
    // lockdown mode cannot be read.
    let what = "rewrite a program's memory (e.g. its argv)";
    out.push(match lockdown {
        Some("none") => Mechanism { mechanism: "bpf_probe_write_user", available: true, method: Method::Inferred, detail: format!("{what}; kernel lockdown is none") },
        Some(mode) => Mechanism { mechanism: "bpf_probe_write_user", available: false, method: Method::Inferred, detail: format!("{what}; kernel lockdown is {mode}, which forbids it") },
        None => probe("bpf_probe_write_user", &format!("{what} (lockdown mode unknown)"), &|| {
            try_load(PROG_TRACEPOINT, 0, 0, &[
                mov_imm(1, 0),
                insn(0x7a, 10, 0, -8, 0), // *(u64 *)(r10 - 8) = 0
                insn(0xbf, 2, 10, 0, 0),  // r2 = r10
                insn(0x07, 2, 0, 0, -8),  // r2 += -8
                mov_imm(3, 8),
                call(HELPER_PROBE_WRITE_USER),
                mov_imm(0, 0),
                EXIT,
            ])
        }),
    });
    out.push(if may_probe { fanotify_exec_perm() } else {
        Mechanism { mechanism: "fanotify_exec_perm", available: false, method: Method::Inferred, detail: "approve or deny each exec from userspace (FAN_OPEN_EXEC_PERM); not probed (needs root)".into() }
    });
    out.push(if may_probe { fanotify_fs_exec_perm(super::fs_probe::run()) } else {
        Mechanism { mechanism: "fanotify_fs_exec_perm", available: false, method: Method::Inferred, detail: format!("{FS_WHAT}; not probed (needs root)") }
    });
    out.push(exec_stop);
    out.push(load_stop(&out[0], btf));
    out.push(cap_kill(host.cap_eff));
    out.push(stop_registry(host.mounts));
    out
}

const FS_WHAT: &str = "the exec gate's primary path: a filesystem-wide mark (FAN_MARK_FILESYSTEM) holds each exec until guard answers";

/// The superblock probe's report ([`super::fs_probe`]). Where no private mount was possible
/// (unprivileged, a pod), the inode probe stands in, and the detail says so.
fn fanotify_fs_exec_perm(probe: Result<super::fs_probe::Outcome, String>) -> Mechanism {
    use super::fs_probe::Outcome;
    let m = |available, method, detail| Mechanism { mechanism: "fanotify_fs_exec_perm", available, method, detail };
    match probe {
        Ok(Outcome::Works) => m(
            true,
            Method::Probed,
            format!("{FS_WHAT}; a tmpfs marked in a private mount namespace: a denied exec of a copy of `true` failed with EPERM, an allowed one exited 0"),
        ),
        Ok(Outcome::Broken(why)) => m(false, Method::Probed, format!("{FS_WHAT}; the probe on a private tmpfs failed: {why}")),
        Ok(Outcome::NoMount(why)) | Err(why) => {
            let inode = fanotify_exec_perm();
            m(
                inode.available,
                Method::Inferred,
                format!("{FS_WHAT}; not probed, no private tmpfs to mark ({why}); inferred from a mark on a file: {}", inode.detail),
            )
        }
    }
}

/// The catch-all: `bpf_send_signal(SIGSTOP)` at `sys_exit_execve` for an exec no fanotify
/// answer covered (memfd, an unmarked filesystem, no fanotify), judged then killed or continued.
fn exec_stop(send_signal: &Mechanism) -> Mechanism {
    let what = "stop an exec at sys_exit_execve, before the new program's first instruction, for the gate to judge (SIGKILL: exit 137; SIGCONT: it runs); the catch-all for execs fanotify did not answer (memfd, unmarked filesystems)";
    let how = if send_signal.available { "bpf_send_signal loads" } else { "needs bpf_send_signal, see above" };
    Mechanism { mechanism: "exec_stop", available: send_signal.available, method: send_signal.method.clone(), detail: format!("{what}; {how}") }
}

/// The library-load stop (`gate::loads`): `bpf_send_signal` at `sys_enter_mmap`, and the kernel
/// struct members its program reads to name the mapped file.
fn load_stop(send_signal: &Mechanism, btf: Option<&crate::kernel::btf::Btf>) -> Mechanism {
    use guard_common::config::globals::{LOAD_STOP, PATH_WALK};
    let what = "stop a process at the mmap of a library guard has not analysed (a dlopen'd addon), until its TLS hooks are attached";
    let m = |available, method, detail| Mechanism { mechanism: "load_stop", available, method, detail };
    let Some(btf) = btf else {
        return m(false, Method::Inferred, format!("{what}; no kernel BTF to find the members its program reads"));
    };
    let missing: Vec<String> = PATH_WALK
        .iter()
        .chain(&LOAD_STOP)
        .filter(|(_, strukt, member)| btf.member_offset(strukt, member).is_err())
        .map(|(_, strukt, member)| format!("{strukt}.{member}"))
        .collect();
    match (send_signal.available, missing.is_empty()) {
        (true, true) => m(true, send_signal.method.clone(), format!("{what}; bpf_send_signal loads and BTF has every member the program reads")),
        (false, _) => m(false, send_signal.method.clone(), format!("{what}; needs bpf_send_signal, see above")),
        (true, false) => m(false, Method::Inferred, format!("{what}; this kernel's BTF lacks {}", missing.join(", "))),
    }
}

/// How an agent's deletion in a protected place is stopped on this host: `bpf_send_signal`
/// from the syscall tracepoint (the syscall in flight completes: one file per thread), since
/// guard does not ship the LSM program (this kernel kind refuses it; see `bpf_lsm_unlink`).
fn delete_kill(send_signal: &Mechanism, lsm: &Mechanism) -> Mechanism {
    let what = "kill an agent's process at its deletion in a protected place (enforce mode), from the unlink/rmdir/rename tracepoints; the syscall in flight completes, so one file per thread is lost";
    let how = if send_signal.available { "bpf_send_signal loads" } else { "needs bpf_send_signal, see above" };
    let lsm_note = if lsm.available { "; this kernel would also take an LSM program, which guard does not ship yet" } else { "" };
    Mechanism { mechanism: "delete_kill", available: send_signal.available, method: send_signal.method.clone(), detail: format!("{what}; {how}{lsm_note}") }
}

/// io_uring's unlinkat and renameat never pass the syscall tracepoints: guard flags agents that
/// set io_uring up, and the sysctl closes the road.
fn io_uring(path: &Path) -> Mechanism {
    let what = "deletions through io_uring are unseen by the syscall tracepoints; guard flags agents that set it up";
    let value = fs::read_to_string(path).ok().and_then(|v| v.trim().parse::<u32>().ok());
    let (available, detail) = match value {
        Some(0) => (false, format!("{what}; kernel.io_uring_disabled is 0: consider `sysctl kernel.io_uring_disabled=2` (or 1 with kernel.io_uring_group) on hosts where agents run")),
        Some(v) => (true, format!("{what}; kernel.io_uring_disabled is {v}, so unprivileged processes cannot use it")),
        None => (false, format!("{what}; kernel.io_uring_disabled cannot be read (a kernel before 6.6?)")),
    };
    Mechanism { mechanism: "io_uring_closed", available, method: Method::Inferred, detail }
}

/// CAP_KILL: the stop's SIGKILL or SIGCONT to another user's process.
fn cap_kill(cap_eff: Option<u64>) -> Mechanism {
    let what = "send the stop's SIGKILL or SIGCONT to other users' processes (CAP_KILL)";
    let (available, detail) = match cap_eff {
        Some(eff) if eff & (1 << super::checks::CAP_KILL) != 0 => (true, format!("{what}; CapEff {eff:#x} has it")),
        Some(eff) => (false, format!("{what}; CapEff {eff:#x} lacks it: a stopped process of another user could be neither killed nor continued")),
        None => (false, format!("{what}; cannot read CapEff from /proc/self/status")),
    };
    Mechanism { mechanism: "cap_kill", available, method: Method::Inferred, detail }
}

/// bpffs at /sys/fs/bpf: the registry of stopped processes is pinned there, so it outlives
/// guard and a restarted guard (or `guard gate release`) finds what is still stopped.
fn stop_registry(mounts: Option<&str>) -> Mechanism {
    let what = "pin the registry of stopped processes in bpffs, so it survives guard for its restart or `guard gate release`";
    let (available, detail) = match mounts {
        Some(m) if super::checks::mounted(m, "/sys/fs/bpf", "bpf") => (true, format!("{what}; bpffs is mounted at /sys/fs/bpf")),
        Some(_) => (false, format!("{what}; bpffs is not mounted at /sys/fs/bpf, so the registry lives in guard's memory only (mount -t bpf bpf /sys/fs/bpf)")),
        None => (false, format!("{what}; cannot read /proc/mounts")),
    };
    Mechanism { mechanism: "stop_registry", available, method: Method::Inferred, detail }
}

/// Marks a temporary file of our own for FAN_OPEN_EXEC_PERM: nothing else is affected.
fn fanotify_exec_perm() -> Mechanism {
    let what = "approve or deny each exec from userspace (FAN_OPEN_EXEC_PERM)";
    let result = (|| -> Result<(), String> {
        let file = tempfile::NamedTempFile::new().map_err(|e| format!("temporary file: {e}"))?;
        let path = std::ffi::CString::new(file.path().as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: plain syscalls with valid arguments; the fd is owned right after.
        let fd = unsafe { libc::fanotify_init(libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC, libc::O_RDONLY as u32) };
        if fd < 0 {
            return Err(format!("fanotify_init: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        use std::os::fd::AsRawFd as _;
        // SAFETY: fd is valid, path is a NUL-terminated string that outlives the call.
        let rc = unsafe { libc::fanotify_mark(fd.as_raw_fd(), libc::FAN_MARK_ADD, libc::FAN_OPEN_EXEC_PERM, libc::AT_FDCWD, path.as_ptr()) };
        if rc < 0 {
            return Err(format!("fanotify_mark: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    })();
    match result {
        Ok(()) => Mechanism { mechanism: "fanotify_exec_perm", available: true, method: Method::Probed, detail: format!("{what}; the kernel accepts the mark") },
        Err(e) => Mechanism { mechanism: "fanotify_exec_perm", available: false, method: Method::Probed, detail: format!("{what}; refused: {e}") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_encode_like_the_kernel_expects() {
        assert_eq!(mov_imm(1, 9), 0x0000_0009_0000_01b7);
        assert_eq!(call(109), 0x0000_006d_0000_0085);
        assert_eq!(EXIT, 0x95);
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 120);
    }

    #[test]
    fn cap_kill_is_read_from_cap_eff() {
        let eff = |status: &str| super::super::checks::cap_eff(status);
        assert!(cap_kill(eff("Name:\tguard\nCapEff:\t000001ffffffffff\n")).available);
        // Everything guard otherwise uses (BPF, PERFMON, SYS_ADMIN, SYS_PTRACE, DAC_READ_SEARCH), not KILL.
        let without = cap_kill(eff("CapEff:\t000000c001280004\n"));
        assert!(!without.available && without.detail.contains("lacks it"), "{}", without.detail);
        assert!(cap_kill(eff("CapEff:\t0000000000000020\n")).available);
        let unreadable = cap_kill(eff("Name:\tguard\n"));
        assert!(!unreadable.available && unreadable.detail.contains("cannot read CapEff"));
        assert_eq!(cap_kill(None).method, Method::Inferred);
    }

    #[test]
    fn the_stop_registry_needs_bpffs_at_its_place() {
        assert!(stop_registry(Some("sysfs /sys sysfs rw 0 0\nbpf /sys/fs/bpf bpf rw,nosuid 0 0\n")).available);
        let elsewhere = stop_registry(Some("bpf /mnt/bpf bpf rw 0 0\n"));
        assert!(!elsewhere.available && elsewhere.detail.contains("guard's memory only"), "{}", elsewhere.detail);
        assert!(!stop_registry(None).available);
    }

    #[test]
    fn the_stop_follows_bpf_send_signal() {
        let signal = |available| Mechanism { mechanism: "bpf_send_signal", available, method: Method::Probed, detail: String::new() };
        let stop = exec_stop(&signal(true));
        assert!(stop.available && stop.method == Method::Probed && stop.detail.contains("sys_exit_execve"));
        assert!(!exec_stop(&signal(false)).available);
    }

    #[test]
    fn without_a_private_mount_the_superblock_probe_is_inferred_and_says_why() {
        use super::super::fs_probe::Outcome;
        let m = fanotify_fs_exec_perm(Ok(Outcome::NoMount("unshare(CLONE_NEWNS): Operation not permitted (os error 1)".into())));
        assert_eq!(m.method, Method::Inferred);
        assert!(m.detail.contains("not probed, no private tmpfs to mark (unshare(CLONE_NEWNS): Operation not permitted"), "{}", m.detail);
        assert!(m.detail.contains("inferred from a mark on a file"), "{}", m.detail);
        let broken = fanotify_fs_exec_perm(Ok(Outcome::Broken("no /bin/true to copy".into())));
        assert!(!broken.available && broken.method == Method::Probed);
        let works = fanotify_fs_exec_perm(Ok(Outcome::Works));
        assert!(works.available && works.method == Method::Probed);
    }
}
