//! `guard doctor --json` on the real host, as root: the JSON a fleet tool would read, and the
//! exit status that says whether guard can run.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::process::Command;

use guard_tests::{daemon::guard_bin, privileged};

#[test]
fn doctor_json_reports_a_host_that_can_run_guard() {
    if !privileged() {
        return;
    }
    let out = Command::new(guard_bin()).args(["doctor", "--json"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"));
    eprintln!("{text}");

    assert_eq!(v["schema"], 1);
    assert!(v["guard_version"].is_string());
    assert!(v["kernel"]["release"].is_string());
    let checks = v["checks"].as_array().unwrap();
    let status = |name: &str| {
        checks.iter().find(|c| c["name"] == name).map(|c| c["status"].as_str().unwrap().to_owned()).unwrap_or_else(|| panic!("no check {name}"))
    };
    for name in ["kernel_version", "btf", "tracefs", "capabilities", "uprobes", "tracepoint:sched/sched_process_exec", "tracepoint:syscalls/sys_enter_execve"] {
        assert_eq!(status(name), "ok", "{name}");
    }
    // As root every mechanism is asked of the kernel, and send_signal is what guard relies on.
    let mechs = v["enforcement"].as_array().unwrap();
    let send_signal = mechs.iter().find(|m| m["mechanism"] == "bpf_send_signal").unwrap();
    assert_eq!(send_signal["method"], "probed");
    assert_eq!(send_signal["available"], true, "{send_signal}");
    // The system libssl is a target (the test set-up installs curl and python3).
    let targets = v["tls_targets"].as_array().unwrap();
    assert!(targets.iter().any(|t| t["library"] == "libssl" && t["symbols"].as_array().unwrap().iter().any(|s| s == "ssl_write" || s == "ssl_write_ex")), "{targets:?}");
    assert!(v["agents"].is_array());

    // A build without the eBPF object (AYA_BUILD_SKIP) cannot run, and must say exactly that.
    let problems: Vec<&str> = v["problems"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    if status("ebpf_object") == "fail" {
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI builds guard with its eBPF programs");
    } else {
        assert_eq!(problems, Vec::<&str>::new());
        assert_eq!(v["can_run"], true);
        assert_eq!(out.status.code(), Some(0));
    }
}
