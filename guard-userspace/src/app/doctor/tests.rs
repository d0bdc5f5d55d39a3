//! The report on a fake root: /proc and /sys trees written by the test.

use std::{fs, path::Path};

use super::*;
use crate::kernel::probes::{Hook, PROBES};

fn write(root: &Path, path: &str, text: &[u8]) {
    let p = root.join(path);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// A BTF blob with `struct task_struct { int real_parent, tgid, pid, start_boottime, exit_code; }`.
fn btf_blob() -> Vec<u8> {
    let names = ["task_struct", "real_parent", "tgid", "pid", "start_boottime", "exit_code", "int"];
    let mut strings = vec![0u8];
    let mut off = vec![];
    for n in names {
        off.push(strings.len() as u32);
        strings.extend_from_slice(n.as_bytes());
        strings.push(0);
    }
    let mut types: Vec<u32> = vec![off[6], 1 << 24, 4, 32]; // [1] int
    types.extend([off[0], (4 << 24) | 5, 20]); // [2] struct task_struct, 5 members
    for i in 0..5 {
        types.extend([off[i + 1], 1, (i as u32) * 32]);
    }
    let types: Vec<u8> = types.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut b = vec![0x9f, 0xeb, 1, 0];
    for v in [24u32, 0, types.len() as u32, types.len() as u32, strings.len() as u32] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend(types);
    b.extend(strings);
    b
}

fn stat(pid: u32, comm: &str, ppid: u32) -> String {
    format!("{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {} 0 0", 1000 + pid)
}

/// A host that can run guard, with Claude Code and a shell under it.
fn host(root: &Path, release: &str, cap_eff: &str) {
    write(root, "proc/sys/kernel/osrelease", format!("{release}\n").as_bytes());
    write(root, "proc/mounts", b"tracefs /sys/kernel/tracing tracefs rw 0 0\nbpf /sys/fs/bpf bpf rw 0 0\n");
    write(root, "proc/self/status", format!("Name:\tguard\nCapEff:\t{cap_eff}\n").as_bytes());
    write(root, "sys/kernel/btf/vmlinux", &btf_blob());
    write(root, "sys/bus/event_source/devices/uprobe/type", b"8\n");
    write(root, "sys/kernel/security/lockdown", b"none [integrity] confidentiality\n");
    for p in PROBES {
        let (cat, name) = match p.hook {
            Hook::Tracepoint { category, name } => (category, name),
            Hook::RawTracepoint { name } => ("sched", name),
        };
        if p.required {
            write(root, &format!("sys/kernel/tracing/events/{cat}/{name}/format"), b"name: x\n");
        }
    }
    write(root, "proc/1/stat", stat(1, "init", 0).as_bytes());
    write(root, "proc/100/stat", stat(100, "claude", 1).as_bytes());
    write(root, "proc/100/cmdline", b"claude\0--resume\0");
    write(root, "proc/101/stat", stat(101, "bash", 100).as_bytes());
    write(root, "proc/101/cmdline", b"bash\0-c\0ls\0");
}

fn report(root: &Path) -> serde_json::Value {
    let r = run(&Options { root: root.into(), live: false }, Ok(Config { origin: "(defaults)".into(), ..Config::default() }));
    serde_json::to_value(&r).unwrap()
}

#[test]
fn a_capable_host_reports_every_section() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path(), "6.18.0-test", "000001ffffffffff");
    let v = report(dir.path());
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["agents", "can_run", "checks", "config", "enforcement", "guard_version", "kernel", "problems", "schema", "tls_targets"]);
    assert_eq!(v["schema"], 1);
    assert_eq!(v["kernel"]["release"], "6.18.0-test");
    assert_eq!(v["kernel"]["lockdown"], "integrity");
    let checks: Vec<(String, String)> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c["status"].as_str().unwrap().to_owned()))
        .collect();
    let expect_object = if crate::EBPF_OBJECT.is_empty() { "fail" } else { "ok" };
    let want = [
        ("ebpf_object", expect_object),
        ("config", "ok"),
        ("kernel_version", "ok"),
        ("lockdown", "ok"),
        ("btf", "ok"),
        ("tracefs", "ok"),
        ("bpffs", "ok"),
        ("capabilities", "ok"),
        ("uprobes", "ok"),
        ("tracepoint:sched/sched_process_exec", "ok"),
        ("tracepoint:sched/sched_process_fork", "ok"),
        ("tracepoint:sched/sched_process_exit", "ok"),
        ("tracepoint:syscalls/sys_enter_execve", "ok"),
        ("tracepoint:syscalls/sys_exit_execve", "ok"),
        ("tracepoint:syscalls/sys_enter_execveat", "warn"),
        ("tracepoint:syscalls/sys_exit_execveat", "warn"),
        ("tracepoint:syscalls/sys_enter_unlink", "warn"),
        ("tracepoint:syscalls/sys_enter_unlinkat", "warn"),
        ("tracepoint:syscalls/sys_enter_rmdir", "warn"),
        ("tracepoint:syscalls/sys_enter_rename", "warn"),
        ("tracepoint:syscalls/sys_enter_renameat", "warn"),
        ("tracepoint:syscalls/sys_enter_renameat2", "warn"),
        ("tracepoint:syscalls/sys_exit_unlink", "warn"),
        ("tracepoint:syscalls/sys_exit_unlinkat", "warn"),
        ("tracepoint:syscalls/sys_exit_rmdir", "warn"),
        ("tracepoint:syscalls/sys_exit_rename", "warn"),
        ("tracepoint:syscalls/sys_exit_renameat", "warn"),
        ("tracepoint:syscalls/sys_exit_renameat2", "warn"),
        ("tracepoint:syscalls/sys_enter_io_uring_setup", "warn"),
        ("tracepoint:syscalls/sys_enter_mmap", "warn"),
    ];
    assert_eq!(checks, want.map(|(a, b)| (a.to_owned(), b.to_owned())));
    assert_eq!(v["can_run"], !crate::EBPF_OBJECT.is_empty());
    assert_eq!(v["problems"].as_array().unwrap().len(), usize::from(crate::EBPF_OBJECT.is_empty()));
    // Not live: nothing probed, nothing scanned.
    let mechs = v["enforcement"].as_array().unwrap();
    let names: Vec<&str> = mechs.iter().map(|m| m["mechanism"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "bpf_send_signal",
            "bpf_lsm",
            "delete_kill",
            "bpf_lsm_unlink",
            "io_uring_closed",
            "fentry",
            "bpf_override_return",
            "bpf_probe_write_user",
            "fanotify_exec_perm",
            "fanotify_fs_exec_perm",
            "exec_stop",
            "load_stop",
            "cap_kill",
            "stop_registry",
        ]
    );
    // Read from the fake host: CapEff has CAP_KILL, bpffs is mounted.
    let available: Vec<&str> = mechs.iter().filter(|m| m["available"] == true).map(|m| m["mechanism"].as_str().unwrap()).collect();
    assert_eq!(available, ["cap_kill", "stop_registry"]);
    assert!(mechs.iter().all(|m| m["method"] == "inferred" && m["available"].is_boolean() && m["detail"].is_string()));
    assert_eq!(v["tls_targets"], serde_json::json!([]));
    assert_eq!(
        v["agents"],
        serde_json::json!([{ "agent": "claude-code", "kind": "catalog", "pid": 100, "program": "claude", "processes": 2, "executable_tls": null }])
    );
}

#[test]
fn an_old_kernel_without_privileges_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path(), "5.10.0", "0000000000000000");
    fs::remove_dir_all(dir.path().join("sys/kernel/tracing")).unwrap();
    let r = run(&Options { root: dir.path().into(), live: false }, Ok(Config::default()));
    assert!(!r.can_run);
    let failed: Vec<&str> = r.problems.iter().map(|p| p.split(':').next().unwrap()).filter(|n| *n != "ebpf_object").collect();
    assert_eq!(
        failed,
        ["kernel_version", "tracefs", "capabilities", "tracepoint", "tracepoint", "tracepoint", "tracepoint", "tracepoint"]
    );
    let text = render(&r);
    assert!(text.contains("result: guard cannot run here:\n  - "), "{text}");
    assert!(text.contains("mount -t tracefs tracefs /sys/kernel/tracing"), "{text}");
    assert!(text.contains("CAP_SYS_RESOURCE"), "pre-5.11 kernels need the memlock capability: {text}");
}

#[test]
fn a_bad_config_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path(), "6.18.0", "000001ffffffffff");
    let bad = Config::parse("[kernel]\nring_mib = 3\n", "guard.toml");
    let r = run(&Options { root: dir.path().into(), live: false }, bad);
    assert!(r.problems.iter().any(|p| p.starts_with("config: config guard.toml: key `kernel.ring_mib`")), "{:?}", r.problems);
}

#[test]
fn lockdown_confidentiality_stops_guard_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path(), "6.18.0", "000001ffffffffff");
    write(dir.path(), "sys/kernel/security/lockdown", b"none integrity [confidentiality]\n");
    let r = run(&Options { root: dir.path().into(), live: false }, Ok(Config::default()));
    assert!(!r.can_run);
    assert!(r.problems.iter().any(|p| p.starts_with("lockdown: confidentiality: the kernel refuses BPF reads of kernel memory")), "{:?}", r.problems);
}

/// An unreadable mode is no bare `?`: the header points at the check, which says why.
#[test]
fn an_unreadable_lockdown_mode_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path(), "6.18.0", "000001ffffffffff");
    fs::remove_dir_all(dir.path().join("sys/kernel/security")).unwrap();
    let r = run(&Options { root: dir.path().into(), live: false }, Ok(Config::default()));
    assert_eq!(r.kernel.lockdown, None);
    let text = render(&r);
    assert!(text.contains("(lockdown: unknown, see the lockdown check)"), "{text}");
    assert!(text.contains("warn  lockdown"), "{text}");
    assert!(text.contains("cannot read /sys/kernel/security/lockdown: securityfs is not mounted"), "{text}");
    assert!(!text.contains("lockdown: ?"), "{text}");
}

#[test]
fn release_versions_parse() {
    assert_eq!(checks::parse_release("6.18.44-fc-v782"), Some((6, 18)));
    assert_eq!(checks::parse_release("5.4"), Some((5, 4)));
    assert_eq!(checks::parse_release("x"), None);
    assert_eq!(checks::cap_eff("CapInh:\t0\nCapEff:\t000001ffffffffff\n"), Some(0x1ff_ffff_ffff));
}
