//! The deployment files, checked with the tools a user would use: `systemd-analyze verify` for
//! the unit, a Kubernetes schema validator (offline, bundled OpenAPI schemas) for the manifest.
//! A missing tool skips the test loudly, except under CI=true where `cargo xtask setup --tests`
//! installs it.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use guard_tests::{daemon::guard_bin, temp_path};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tool(name: &str, candidates: &[PathBuf]) -> Option<PathBuf> {
    let found = candidates.iter().find(|p| p.is_file()).cloned().or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{name} is missing under CI=true: `cargo xtask setup --tests` installs it");
        }
        eprintln!("\n*** SKIPPED: {name} not found (`cargo xtask setup --tests` installs it) ***\n");
    }
    found
}

#[test]
fn systemd_unit_verifies() {
    let Some(analyze) = tool("systemd-analyze", &[]) else { return };
    // As installed: ExecStart must name the real binary, so point it at the one we built.
    let unit = std::fs::read_to_string(workspace().join("deploy/systemd/guard.service")).unwrap();
    let bin = guard_bin();
    assert!(bin.is_file(), "build guard first: {}", bin.display());
    let unit = unit.replace("/usr/local/bin/guard", &bin.canonicalize().unwrap().display().to_string());
    let path = temp_path("guard.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(analyze).arg("verify").arg(&path).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Unknown keys and bad values are only warnings: any output is a failure.
    assert!(out.status.success() && stdout.trim().is_empty() && stderr.trim().is_empty(), "systemd-analyze verify:\n{stdout}{stderr}");
}

/// What keeps the exec gate from hanging a host or leaving processes stopped (docs/enforce.md,
/// "Failure behaviour"), and the capabilities its stop needs, in both deployments.
#[test]
fn deployments_keep_the_gate_safeguards() {
    let unit = std::fs::read_to_string(workspace().join("deploy/systemd/guard.service")).unwrap();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for want in ["Type=notify", "NotifyAccess=main", "WatchdogSec=5s", "WatchdogSignal=SIGKILL", "ExecStopPost=/usr/local/bin/guard gate release"] {
        assert!(lines.contains(&want), "guard.service lacks `{want}`");
    }
    for key in ["CapabilityBoundingSet=", "AmbientCapabilities="] {
        let caps = lines.iter().find_map(|l| l.strip_prefix(key)).unwrap();
        for cap in ["CAP_KILL", "CAP_SYS_PTRACE", "CAP_SYS_ADMIN"] {
            assert!(caps.split_whitespace().any(|c| c == cap), "{key} lacks {cap}: {caps}");
        }
    }
    let manifest = std::fs::read_to_string(workspace().join("deploy/kubernetes/daemonset.yaml")).unwrap();
    let add = manifest.lines().find_map(|l| l.trim().strip_prefix("add: ")).unwrap();
    for cap in ["\"KILL\"", "\"SYS_PTRACE\"", "\"SYS_ADMIN\""] {
        assert!(add.contains(cap), "the DaemonSet does not add {cap}: {add}");
    }
}

#[test]
fn kubernetes_manifest_validates_against_the_schema() {
    let venv = workspace().join("target/tools/venv/bin/kubernetes-validate");
    let Some(validate) = tool("kubernetes-validate", &[venv]) else { return };
    let manifest = workspace().join("deploy/kubernetes/daemonset.yaml");
    let out = Command::new(&validate).args(["--strict", "--quiet"]).arg(&manifest).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    // The validator does reject a wrong field (so a pass means something).
    let text = std::fs::read_to_string(&manifest).unwrap().replace("hostPID: true", "hostPid: true");
    let bad = temp_path("bad-daemonset.yaml");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(&validate).args(["--strict", "--quiet"]).arg(&bad).output().unwrap();
    assert!(!out.status.success(), "a misspelt field passed validation");

    // The ConfigMap's guard.toml is a valid guard config.
    let yaml = std::fs::read_to_string(&manifest).unwrap();
    let toml: String = yaml
        .split("  guard.toml: |\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let cfg = guard::testing::Config::parse(&toml, "daemonset ConfigMap").unwrap();
    assert_eq!(cfg.metrics_addr(), Some("0.0.0.0:9477".parse().unwrap()));
}
