//! `cargo xtask bench`: every benchmark in one run, each figure a median over repeated runs with
//! the conditions interleaved round by round (the machine is shared and noisy: ratios measured
//! side by side hold, absolute times drift). The report goes to `target/bench/report.md`;
//! BENCHMARKS.md explains each figure.

mod analysis;
mod delete;
mod e2e;
mod exec;
mod first_exec;
mod gate;
mod hooks;
mod otlp;
mod pause;
mod probe;
mod procfs;
mod scan;

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, setup, sh, workspace_root};

/// Where things are.
pub(crate) struct Env {
    pub root: PathBuf,
    pub out: PathBuf,
    pub release: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub(crate) fn run(only: &[String]) -> Result<()> {
    let toolchain = setup::run(&setup::Options { for_tests: true })?;
    setup::apt_extra(&["libssl-dev", "gcc"])?;
    let root = workspace_root();
    // GUARD_BENCH_FLOOR: probe_floor gets an object with the empty probes (guard-tests' build.rs);
    // guard's own object is the shipped one either way.
    sh(cargo(&toolchain)
        .args([
            "build", "--release", "-p", "guard-userspace", "--bin", "guard", "-p", "guard-tests", "--bin", "probe_floor", "--bin",
            "pipeline_throughput", "--bin", "otlp_sink",
        ])
        .env("GUARD_BENCH_FLOOR", "1"))?;
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out)?;
    let (cert, key) = (out.join("loopback-cert.pem"), out.join("loopback-key.pem"));
    if !cert.exists() {
        sh(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30"])
            .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null()))?;
    }
    let env = Env { release: root.join("target/release"), root, out, cert, key };
    let wants = |name: &str| only.is_empty() || only.iter().any(|o| o == name);

    let mut report = format!(
        "# guard benchmarks\n\nkernel {}, {} CPUs. Medians over interleaved rounds; see BENCHMARKS.md.\n",
        procfs::kernel_release(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut section = |name: &str, f: &dyn Fn(&Env) -> Result<String>| -> Result<()> {
        if wants(name) {
            println!("bench: {name}");
            let text = f(&env).with_context(|| format!("benchmark {name}"))?;
            print!("{text}");
            report += &text;
        }
        Ok(())
    };
    section("probe", &probe::run)?;
    section("hooks", &hooks::run)?;
    section("analysis", &analysis::run)?;
    section("scan", &scan::run)?;
    section("exec", &exec::run)?;
    section("gate", &gate::run)?;
    section("delete", &delete::run)?;
    section("pause", &pause::run)?;
    section("first", &first_exec::run)?;
    section("e2e", &e2e::run)?;
    section("otlp", &otlp::run)?;
    let path = env.out.join("report.md");
    std::fs::write(&path, &report)?;
    println!("report written to {}", path.display());
    Ok(())
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `bench/bare_listener.c` running, marked and answering: the floor of any fanotify exec gate
/// (the gate and exec benches run their loops beside it). Killed on drop; the kernel then allows
/// whatever it had pending.
pub(super) struct BareListener(Child);

impl BareListener {
    /// Builds the listener into `out` (once: again only when the source is newer) and starts
    /// it; returns once it says it is ready.
    pub(super) fn start(env: &Env) -> Result<Self> {
        let (exe, src) = (env.out.join("bare_listener"), env.root.join("bench/bare_listener.c"));
        let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if modified(&exe).is_none_or(|built| modified(&src).is_none_or(|changed| changed > built)) {
            sh(Command::new("gcc").args(["-O2", "-o"]).arg(&exe).arg(&src))?;
        }
        let mut child = Self(Command::new(&exe).stdout(Stdio::piped()).spawn().context("starting bare_listener")?);
        let mut line = String::new();
        let out = child.0.stdout.take().context("bare_listener's stdout")?;
        BufReader::new(out).read_line(&mut line)?;
        if line != "ready\n" {
            bail!("bare_listener did not get ready: {line:?}");
        }
        Ok(child)
    }

    pub(super) fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for BareListener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `guard run` (release build), its log lines kept.
pub(crate) struct Guard {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Guard {
    pub(crate) fn start(env: &Env, args: &[&str]) -> Result<Self> {
        let mut child = Command::new(env.release.join("guard"))
            .arg("run")
            .args(args)
            .env("GUARD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting guard")?;
        let stderr = child.stderr.take().context("guard stderr")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (all, (tx, rx)) = (lines.clone(), std::sync::mpsc::channel());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("guard ready") {
                    let _ = tx.send(());
                }
                if let Ok(mut v) = all.lock() {
                    v.push(line);
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = child.kill();
            bail!("guard did not become ready");
        }
        Ok(Self { child, lines })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a log line contains every one of `needles`.
    pub(crate) fn wait_for(&self, needles: &[&str], timeout: Duration) -> Result<()> {
        let t = Instant::now();
        while t.elapsed() < timeout {
            let seen = self.lines.lock().is_ok_and(|v| v.iter().any(|l| needles.iter().all(|n| l.contains(n))));
            if seen {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("guard logged no line with {needles:?} within {timeout:?}")
    }

    /// SIGTERM, wait, and return the "stopped" summary line's `key=value` counters.
    pub(crate) fn stop(mut self) -> Result<Vec<(String, u64)>> {
        sh(Command::new("kill").arg("-TERM").arg(self.child.id().to_string()))?;
        self.child.wait()?;
        std::thread::sleep(Duration::from_millis(100));
        let lines = self.lines.lock().map(|v| v.clone()).unwrap_or_default();
        let stopped = lines.iter().rev().find(|l| l.contains("stopped")).cloned().unwrap_or_default();
        Ok(counters(&stopped))
    }
}

/// `key=value` pairs with integer values from a log line (ANSI colours stripped).
fn counters(line: &str) -> Vec<(String, u64)> {
    let plain: String = strip_ansi(line);
    plain
        .split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for c in it.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn counter(cs: &[(String, u64)], key: &str) -> u64 {
    cs.iter().find(|(k, _)| k == key).map_or(0, |(_, v)| *v)
}

/// Runs a command to completion and returns its stdout, failing with its stderr.
pub(crate) fn output(cmd: &mut Command) -> Result<String> {
    let o = cmd.output().with_context(|| format!("could not start {cmd:?}"))?;
    if !o.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The mock LLM server (tests/mock_llm/server.py) on a free loopback port.
pub(crate) struct Mock {
    child: Child,
    pub port: u16,
}

impl Mock {
    pub(crate) fn start(env: &Env) -> Result<Self> {
        let mut child = Command::new("python3")
            .arg(env.root.join("tests/mock_llm/server.py"))
            .args(["--port", "0", "--cert"])
            .arg(&env.cert)
            .arg("--key")
            .arg(&env.key)
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("mock stdout")?).read_line(&mut line)?;
        let port = line.trim().rsplit(':').next().and_then(|p| p.parse().ok()).context("mock server port")?;
        Ok(Self { child, port })
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn bench_script(env: &Env, name: &str) -> PathBuf {
    env.root.join("bench").join(name)
}

/// Processes that hold uprobes this bench did not place: `guard run` daemons and floor holders
/// that are not our children. The machine is shared, and any guard daemon hooks every process's
/// TLS, the harnesses' included, so a sample taken while one lives measures its probes too.
pub(crate) fn foreign_probe_holders() -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let mut args = cmdline.split(|b| *b == 0).map(String::from_utf8_lossy);
        let prog = args.next().unwrap_or_default();
        let prog = prog.rsplit('/').next().unwrap_or_default();
        let holds = (prog == "guard" && args.next().as_deref() == Some("run")) || prog == "probe_floor";
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok());
        if holds && ppid != Some(me) {
            out.push(pid);
        }
    }
    out
}

/// Waits until no foreign probe holder runs and the machine is nearly idle (under `QUIET_CORES`
/// busy over one second) before a sample: the guard condition needs the daemon's core, so other
/// people's builds and tests skew it most. Gives up on quiet (not on foreign probes) after
/// `QUIET_PATIENCE` and says so.
/// Returns whether the sample starts on a busy machine after all.
pub(crate) fn wait_until_quiet() -> Result<bool> {
    const QUIET_CORES: f64 = 0.3;
    const QUIET_PATIENCE: Duration = Duration::from_secs(600);
    let t = Instant::now();
    let mut told = false;
    loop {
        let pids = foreign_probe_holders();
        let busy = procfs::busy_cores(Duration::from_secs(1));
        if pids.is_empty() && (busy < QUIET_CORES || t.elapsed() > QUIET_PATIENCE) {
            if busy >= QUIET_CORES {
                println!("bench: the machine stayed busy ({busy:.1} cores) for {QUIET_PATIENCE:?}; sampling anyway");
            }
            return Ok(busy >= QUIET_CORES);
        }
        if t.elapsed() > Duration::from_secs(3600) {
            bail!("other guard daemons or probe holders ran for an hour: {pids:?}");
        }
        if !told {
            println!("bench: waiting for a quiet machine (foreign probe holders {pids:?}, {busy:.1} cores busy)");
            told = true;
        }
    }
}

/// Watches, every 100 ms, for foreign probe holders while a sample is taken.
pub(crate) struct ForeignWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u32>>,
}

impl ForeignWatch {
    pub(crate) fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                seen.extend(foreign_probe_holders());
                std::thread::sleep(Duration::from_millis(100));
            }
            seen.extend(foreign_probe_holders());
            seen.sort_unstable();
            seen.dedup();
            seen
        });
        Self { stop, thread }
    }

    /// The foreign holders seen while it ran.
    pub(crate) fn finish(self) -> Vec<u32> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}
