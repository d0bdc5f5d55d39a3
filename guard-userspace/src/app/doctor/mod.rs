//! `guard doctor`: can guard run on this host, and what would it see? Checks the kernel, BTF,
//! tracefs, capabilities and probes ([`checks`]), which enforcement mechanisms the kernel allows
//! ([`enforce`]), the TLS libraries guard would hook and the agents running now. Read-only: it
//! attaches nothing. Exit 0 when guard can run, 1 otherwise. JSON schema: docs/doctor.md.

pub(crate) mod checks;
pub(crate) mod enforce;
pub(crate) mod fs_probe;
pub(crate) mod lockdown;

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use serde::Serialize;

use self::{
    checks::{Check, Status},
    enforce::Mechanism,
};
use guard_core::process::{AgentKind, ProcessTable, TableLimits};
use crate::sys::proc as seed;
use crate::{
    app::config::{Config, ConfigError},
    sys::targets::{LibraryKind, Scanner},
};

/// Bumped when a field changes meaning or disappears (adding fields does not bump it).
pub(crate) const SCHEMA: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Report {
    pub schema: u32,
    pub guard_version: &'static str,
    /// No check failed.
    pub can_run: bool,
    /// `name: detail` of every failed check.
    pub problems: Vec<String>,
    pub kernel: KernelInfo,
    /// The config file used (`(defaults)` when none).
    pub config: String,
    pub checks: Vec<Check>,
    pub enforcement: Vec<Mechanism>,
    pub tls_targets: Vec<Target>,
    pub agents: Vec<RunningAgent>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct KernelInfo {
    pub release: Option<String>,
    /// `none`, `integrity` or `confidentiality`; `None` when unreadable (the `lockdown` check
    /// says why and what it means for guard).
    pub lockdown: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Target {
    /// The path as the process that maps it sees it.
    pub path: String,
    pub library: LibraryKind,
    /// The TLS implementation and how its hooks were found (see `guard hooks`).
    pub tls: guard_core::hooks::Library,
    pub strategy: guard_core::hooks::Strategy,
    /// A second TLS library hooked in the same file (rustls next to OpenSSL in Codex CLI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub also: Option<(guard_core::hooks::Library, guard_core::hooks::Strategy)>,
    /// The functions hooked (a Go read's RET probes count once).
    pub symbols: Vec<guard_core::hooks::HookKind>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct RunningAgent {
    pub agent: String,
    pub kind: AgentKind,
    pub pid: u32,
    /// The program's name (no argv: it can carry secrets).
    pub program: String,
    /// Live processes attributed to this agent process (itself included).
    pub processes: u64,
    /// What guard found in the agent's executable: hooks and the strategy that found them, a
    /// blind spot (TLS inside but no verified hook), or no TLS of its own (then the shared
    /// libraries it loads are what is hooked). `None` when the scan did not reach it.
    pub executable_tls: Option<crate::sys::targets::FileStatus>,
}

/// Where to look. `live` is false for a fake root (tests): no kernel probing, no TLS scan.
pub(crate) struct Options {
    pub root: PathBuf,
    pub live: bool,
}

/// Builds the report.
pub(crate) fn run(opts: &Options, config: Result<Config, ConfigError>) -> Report {
    let at = |p: &Path| opts.root.join(p.strip_prefix("/").unwrap_or(p));
    let (proc_root, sys) = (at(Path::new("/proc")), at(Path::new("/sys")));
    let mut checks = Vec::new();
    checks.push(checks::ebpf_object());
    let cfg = match config {
        Ok(c) => {
            checks.push(Check { name: "config".into(), status: Status::Ok, detail: c.origin.clone() });
            c
        }
        Err(e) => {
            checks.push(Check { name: "config".into(), status: Status::Fail, detail: e.to_string() });
            Config { origin: "(invalid; defaults used below)".into(), ..Config::default() }
        }
    };
    let release = std::fs::read_to_string(proc_root.join("sys/kernel/osrelease")).ok().map(|s| s.trim().to_owned());
    checks.push(checks::kernel_version(release.as_deref()));
    let lockdown = lockdown::read(&sys);
    checks.push(lockdown::check(&lockdown));
    let (btf_check, btf) = checks::btf(&at(&cfg.kernel.btf));
    checks.push(btf_check);
    let tracefs = at(&cfg.kernel.tracefs);
    checks.push(checks::tracefs(&tracefs, &cfg.kernel.tracefs.display().to_string()));
    let mounts = std::fs::read_to_string(proc_root.join("mounts")).ok();
    checks.push(checks::bpffs(mounts.as_deref()));
    let cap_eff = std::fs::read_to_string(proc_root.join("self/status")).ok().as_deref().and_then(checks::cap_eff);
    let memlock_matters = release.as_deref().and_then(checks::parse_release).is_some_and(|v| v < (5, 11));
    checks.push(checks::capabilities(cap_eff, memlock_matters));
    checks.push(checks::uprobes(&sys));
    checks.extend(checks::tracepoints(&tracefs));
    if opts.live {
        checks.push(checks::metrics_port(cfg.metrics_addr()));
    }

    let has = |c: u32| cap_eff.is_some_and(|e| e & (1 << c) != 0);
    let may_probe = opts.live && (has(checks::CAP_BPF) || has(checks::CAP_SYS_ADMIN));
    let enforcement = enforce::mechanisms(&enforce::Host {
        sys: &sys,
        proc: &proc_root,
        lockdown: lockdown.mode(),
        btf: btf.as_ref(),
        cap_eff,
        mounts: mounts.as_deref(),
        may_probe,
    });
    let scanner = Scanner::default();
    let tls_targets = if opts.live { tls_targets(&scanner) } else { Vec::new() };
    let agents = cfg.catalog().map(|c| running_agents(&proc_root, c, &scanner)).unwrap_or_default();

    let problems: Vec<String> = checks.iter().filter(|c| c.status == Status::Fail).map(|c| format!("{}: {}", c.name, c.detail)).collect();
    Report {
        schema: SCHEMA,
        guard_version: env!("CARGO_PKG_VERSION"),
        can_run: problems.is_empty(),
        problems,
        kernel: KernelInfo { release, lockdown: lockdown.mode().map(str::to_owned) },
        config: cfg.origin.clone(),
        checks,
        enforcement,
        tls_targets,
        agents,
    }
}

/// What `guard run` would hook at start: system libssl files, then every process's mappings.
fn tls_targets(scanner: &Scanner) -> Vec<Target> {
    let mut found = scanner.scan_system();
    found.extend(scanner.scan_all());
    found
        .into_iter()
        .map(|t| {
            let mut symbols: Vec<_> = t.hooks.iter().map(|h| h.kind).collect();
            symbols.dedup();
            Target { path: t.path, library: t.kind, tls: t.library, strategy: t.strategy, also: t.also, symbols }
        })
        .collect()
}

/// The catalog's agents among the running processes, with their process counts.
fn running_agents(proc_root: &Path, catalog: guard_core::process::Catalog, scanner: &Scanner) -> Vec<RunningAgent> {
    let catalog = Arc::new(catalog);
    let Ok(procs) = seed::read_all(proc_root, &catalog.marker_names(), seed::clk_tck()) else { return Vec::new() };
    let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
    let mut table = ProcessTable::new(catalog.clone(), TableLimits::default());
    table.seed(procs);
    let mut per_agent: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    let mut roots = BTreeMap::new();
    for pid in pids {
        let Some(a) = table.agent_of(pid) else { continue };
        *per_agent.entry((a.key.pid, a.key.start_ticks)).or_default() += 1;
        roots.entry((a.key.pid, a.key.start_ticks)).or_insert(a);
    }
    roots
        .into_iter()
        .map(|(k, a)| RunningAgent {
            agent: a.id.to_string(),
            kind: a.kind,
            pid: a.key.pid,
            program: table.get_key(a.key).map(|p| p.name().to_owned()).unwrap_or_default(),
            processes: per_agent.get(&k).copied().unwrap_or(0),
            executable_tls: scanner.exe_status(a.key.pid),
        })
        .collect()
}

/// The human-readable report.
pub(crate) fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "guard doctor {} — kernel {} (lockdown: {}), config: {}\n",
        r.guard_version,
        r.kernel.release.as_deref().unwrap_or("unknown"),
        r.kernel.lockdown.as_deref().unwrap_or("unknown, see the lockdown check"),
        r.config
    );
    let _ = writeln!(s, "checks");
    for c in &r.checks {
        let st = match c.status {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        let _ = writeln!(s, "  {st:<5} {:<38} {}", c.name, c.detail);
    }
    let _ = writeln!(s, "\nenforcement mechanisms");
    for m in &r.enforcement {
        let method = match m.method {
            enforce::Method::Probed => "probed",
            enforce::Method::Inferred => "inferred",
        };
        let _ = writeln!(s, "  {:<4} {:<22} ({method}) {}", if m.available { "yes" } else { "no" }, m.mechanism, m.detail);
    }
    let _ = writeln!(s, "\nTLS targets guard would hook ({})", r.tls_targets.len());
    for t in &r.tls_targets {
        let kind = match t.library {
            LibraryKind::Libssl => "libssl",
            LibraryKind::Embedded => "embedded",
        };
        let names: Vec<String> = t.symbols.iter().map(|k| format!("{k:?}")).collect();
        let also = t.also.map(|(l, st)| format!(" + {l:?} by {st:?}")).unwrap_or_default();
        let _ = writeln!(s, "  {kind:<9} {}  {:?} by {:?}{also}  [{}]", t.path, t.tls, t.strategy, names.join(" "));
    }
    let _ = writeln!(s, "\nagents running ({})", r.agents.len());
    for a in &r.agents {
        let tls = match &a.executable_tls {
            Some(crate::sys::targets::FileStatus::Hooked { library, strategy }) => format!("hooked: {library:?} by {strategy:?}"),
            Some(crate::sys::targets::FileStatus::Miss(m)) if m.is_blind_spot() => format!("BLIND SPOT: {m:?}"),
            Some(crate::sys::targets::FileStatus::Miss(_)) => "no TLS of its own (shared libraries hooked)".to_owned(),
            Some(crate::sys::targets::FileStatus::Error) => "executable unreadable".to_owned(),
            None => "not scanned".to_owned(),
        };
        let _ = writeln!(s, "  {:<16} pid {} ({}), {} process(es); executable: {tls}", a.agent, a.pid, a.program, a.processes);
    }
    if r.can_run {
        let _ = writeln!(s, "\nresult: guard can run here");
    } else {
        let _ = writeln!(s, "\nresult: guard cannot run here:");
        for p in &r.problems {
            let _ = writeln!(s, "  - {p}");
        }
    }
    s
}

/// `guard doctor [--json] [--config FILE]`.
pub(crate) fn main(json: bool, config: Option<&Path>) -> ExitCode {
    let report = run(&Options { root: "/".into(), live: true }, Config::resolve(config));
    let out = if json {
        serde_json::to_string_pretty(&report).map(|s| s + "\n").unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}\n"))
    } else {
        render(&report)
    };
    print!("{out}");
    if report.can_run { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
