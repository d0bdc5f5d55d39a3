//! Privileged end-to-end (issue 17): a program guard has never seen makes its LLM calls at once,
//! and still every call is seen. Each client is a fresh copy (a new inode, made after guard
//! started) that calls the mock server with no delay: its first exec waits until guard has
//! analysed it and attached its probes (`gate::first_run`), so nothing it sends is missed.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc::{Receiver, channel},
    time::{Duration, Instant},
};

use guard_tests::{
    bun,
    daemon::Daemon,
    exchanges, go,
    mock::{MockLlm, assert_usage_matches, run_client},
    openssl, privileged, rustls,
    scrape::{metrics_addr, samples, scrape},
    temp_path,
};

/// A copy of `src` under a new name: a file guard has not analysed.
fn fresh_copy(src: &Path, name: &str) -> PathBuf {
    let dst = temp_path(name);
    std::fs::copy(src, &dst).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    dst
}

/// The client's calls start at once: no delay for guard to find the new program.
fn at_once(mut c: Command) -> Command {
    c.env("MOCK_CLIENT_DELAY_MS", "0");
    c
}

#[test]
fn a_new_program_is_hooked_before_its_first_call_for_every_tls_stack() {
    if !privileged() {
        return;
    }
    // Built before guard starts (the builds run programs of their own).
    let buns: Vec<PathBuf> = bun::VERSIONS.iter().map(|v| bun::bun(v)).collect();
    let compiled = temp_path("compiled-src");
    bun::compile(&buns[1], &compiled);
    let go_stripped = go::clients().1.clone();
    let ossl = openssl::clients().iter().map(|c| c.stripped.clone()).collect::<Vec<_>>();
    let rls = rustls::clients().iter().find(|c| c.aws_lc).unwrap().stripped.clone();
    let mock = MockLlm::start();
    let d = Daemon::start_with("first-call", &["--metrics-addr", "127.0.0.1:0", "--log-format", "json"]);
    let addr = metrics_addr(&d);

    let mut runs = Vec::new();
    let mut names = Vec::new();
    for (i, b) in buns.iter().enumerate() {
        let bin = fresh_copy(b, &format!("bun-{}", bun::VERSIONS[i]));
        runs.push(run_client(&mut at_once(bun::fetch(&bin, true, &mock, ""))));
        names.push(format!("bun {}", bun::VERSIONS[i]));
    }
    let bin = fresh_copy(&compiled, "bun-compiled");
    runs.push(run_client(&mut at_once(bun::fetch(&bin, false, &mock, ""))));
    names.push("bun build --compile".into());
    let bin = fresh_copy(&go_stripped, "go-stripped");
    runs.push(run_client(&mut at_once(go::llm(&bin, &mock, ""))));
    names.push("go stripped".into());
    let bin = fresh_copy(&rls, "rustls-stripped");
    runs.push(run_client(&mut at_once(rustls::llm(&bin, &mock, "", false, false))));
    names.push("rustls stripped".into());
    for (i, o) in ossl.iter().enumerate() {
        let bin = fresh_copy(o, &format!("openssl-{i}"));
        runs.push(run_client(&mut at_once(openssl::llm(&bin, &mock, ""))));
        names.push(format!("openssl vendored {}", openssl::BUILDS[i].1));
    }

    let m = samples(&scrape(&addr).1);
    let all = exchanges(&d.stop());
    for (run, name) in runs.iter().zip(&names) {
        assert!(!run.calls.is_empty(), "{name} made no call");
        eprintln!("{name}: {} calls", run.calls.len());
        assert_usage_matches(&all, run);
    }
    let count = |outcome: &str| m.get(&format!("guard_tls_first_exec_total{{outcome=\"{outcome}\"}}")).copied().unwrap_or(0.0);
    let programs = runs.len() as f64;
    assert!(count("hooked") >= programs, "each new program hooked before it ran: {m:#?}");
    assert_eq!((count("late"), count("unheld")), (0.0, 0.0), "no new program ran before its hooks");
}

/// A fresh copy of /bin/true: a program guard has never seen.
fn fresh_true(name: &str) -> PathBuf {
    fresh_copy(Path::new("/bin/true"), name)
}

/// An analysis slower than the hold: the program runs when the hold ends (2 s), counted late.
#[test]
fn a_hold_that_runs_out_lets_the_program_run_and_counts_it_late() {
    if !privileged() {
        return;
    }
    let env = [("GUARD_FIRST_RUN_TEST_DELAY_MS", "5000")];
    let d = Daemon::start_env("first-hold", &["--metrics-addr", "127.0.0.1:0", "--log-format", "json"], &env);
    let addr = metrics_addr(&d);
    let bin = fresh_true("true-held");
    let t = Instant::now();
    let status = Command::new(&bin).status().unwrap();
    let took = t.elapsed();
    assert!(status.success());
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_millis(4000), "held {took:?}, the hold is 2 s");
    let m = samples(&scrape(&addr).1);
    assert!(m.get("guard_tls_first_exec_total{outcome=\"late\"}").copied().unwrap_or(0.0) >= 1.0, "{m:#?}");
    // Known now (its analysis finished): the next exec is not held.
    std::thread::sleep(Duration::from_secs(4));
    let t = Instant::now();
    assert!(Command::new(&bin).status().unwrap().success());
    assert!(t.elapsed() < Duration::from_millis(500), "a known file waited {:?}", t.elapsed());
    d.stop();
}

/// `kill -9` of guard while a first exec is held: the kernel lets the exec go as guard's
/// fanotify fd closes; nothing waits for the hold's end.
#[test]
fn sigkill_of_guard_mid_hold_leaves_no_exec_waiting() {
    if !privileged() {
        return;
    }
    let env = [("GUARD_FIRST_RUN_TEST_DELAY_MS", "60000")];
    let mut d = Daemon::start_env("first-sigkill", &["--log-format", "json"], &env);
    let bin = fresh_true("true-sigkill");
    // std's spawn itself waits for the exec to succeed: run it on a thread of its own.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let status = Command::new(&bin).status();
        let _ = tx.send(status.map(|s| s.success()).unwrap_or(false));
    });
    assert!(rx.recv_timeout(Duration::from_millis(800)).is_err(), "the exec is held while guard analyses");
    // SAFETY: killing our own child.
    assert_eq!(unsafe { libc::kill(d.pid() as i32, libc::SIGKILL) }, 0);
    let ran = rx.recv_timeout(Duration::from_secs(3));
    assert_eq!(ran, Ok(true), "the exec still waits 3 s after guard died, or failed");
    let _ = d.wait_exit(Duration::from_secs(10));
}

/// Twenty new small programs one after another: each is analysed at once (no TLS) and runs; none
/// waits for the hold's bound. (A race once lost the hold's answer and let it run out.)
#[test]
fn new_programs_without_tls_run_after_their_quick_analysis() {
    if !privileged() {
        return;
    }
    let d = Daemon::start_with("first-quick", &["--metrics-addr", "127.0.0.1:0", "--log-format", "json"]);
    let addr = metrics_addr(&d);
    for i in 0..20 {
        let bin = fresh_true(&format!("true-{i}"));
        let t = Instant::now();
        assert!(Command::new(&bin).status().unwrap().success());
        assert!(t.elapsed() < Duration::from_millis(1000), "new program {i} waited {:?}", t.elapsed());
    }
    let m = samples(&scrape(&addr).1);
    let count = |o: &str| m.get(&format!("guard_tls_first_exec_total{{outcome=\"{o}\"}}")).copied().unwrap_or(0.0);
    assert!(count("no_hooks") >= 20.0, "{m:#?}");
    assert_eq!(count("late"), 0.0, "{m:#?}");
    d.stop();
}

/// The library-load stop (`gate::loads`): a Node program extracts a native addon with OpenSSL
/// linked in into a new directory, loads it with dlopen and makes its five calls at once. The
/// process is stopped at the mmap of the addon's code until guard has hooked it: every call is
/// seen on the first run.
#[test]
fn a_library_loaded_with_dlopen_is_hooked_before_its_first_call() {
    if !privileged() {
        return;
    }
    let addon = openssl::addon();
    let mock = MockLlm::start();
    let d = Daemon::start_with("first-load", &["--metrics-addr", "127.0.0.1:0", "--log-format", "json"]);
    let addr = metrics_addr(&d);
    let run = run_client(&mut openssl::node_addon(addon, &temp_path("addon-cache"), &mock));
    let m = samples(&scrape(&addr).1);
    let all = exchanges(&d.stop());
    assert_eq!(run.calls.len(), 5, "the addon made its five calls");
    assert_usage_matches(&all, &run);
    let count = |o: &str| m.get(&format!("guard_tls_first_load_total{{outcome=\"{o}\"}}")).copied().unwrap_or(0.0);
    assert!(count("hooked") >= 1.0, "the addon was hooked while its loader was stopped: {m:#?}");
    assert_eq!((count("late"), count("unheld")), (0.0, 0.0), "{m:#?}");
}

/// python3 started before guard (so guard knows its program), loading each library path it
/// reads on stdin with ctypes and printing `loaded`.
struct Loader {
    child: Child,
    lines: Receiver<String>,
}

impl Loader {
    fn start() -> Self {
        let script = "import ctypes, sys\nfor l in sys.stdin:\n    ctypes.CDLL(l.strip())\n    print('loaded', flush=True)\n";
        let mut child = Command::new("python3").args(["-c", script]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = channel();
        std::thread::spawn(move || out.lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
        Self { child, lines }
    }

    /// Loads a fresh copy of zlib (a library guard has never seen); returns when the load is
    /// under way.
    fn load_fresh(&mut self, name: &str) {
        let lib = fresh_copy(Path::new("/lib/x86_64-linux-gnu/libz.so.1"), name);
        writeln!(self.child.stdin.as_mut().unwrap(), "{}", lib.display()).unwrap();
    }

    fn loaded_within(&self, t: Duration) -> bool {
        self.lines.recv_timeout(t).is_ok_and(|l| l == "loaded")
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A library whose analysis outlasts the hold (slowed to 5 s, test builds only): the process runs
/// on when the hold ends (2 s), and the load is counted late.
#[test]
fn a_load_held_past_its_bound_runs_and_counts_late() {
    if !privileged() {
        return;
    }
    let mut py = Loader::start();
    let env = [("GUARD_FIRST_RUN_TEST_DELAY_MS", "5000")];
    let d = Daemon::start_env("load-hold", &["--metrics-addr", "127.0.0.1:0", "--log-format", "json"], &env);
    let addr = metrics_addr(&d);
    let t = Instant::now();
    py.load_fresh("libz-held.so");
    assert!(py.loaded_within(Duration::from_secs(10)), "the loader never went on");
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(1800) && took < Duration::from_millis(4500), "held {took:?}, the hold is 2 s");
    let m = samples(&scrape(&addr).1);
    assert_eq!(m.get("guard_tls_first_load_total{outcome=\"late\"}").copied(), Some(1.0), "{m:#?}");
    d.stop();
}

/// `kill -9` of guard while a load is held: the process is let go once guard is gone (the
/// watchdog lets every unanswered stop go once guard's heartbeat is stale), within 2 s.
#[test]
fn sigkill_of_guard_mid_load_hold_leaves_no_process_stopped() {
    if !privileged() {
        return;
    }
    let mut py = Loader::start();
    let env = [("GUARD_FIRST_RUN_TEST_DELAY_MS", "60000")];
    let mut d = Daemon::start_env("load-sigkill", &["--log-format", "json"], &env);
    py.load_fresh("libz-sigkill.so");
    assert!(!py.loaded_within(Duration::from_millis(800)), "the load is held while guard analyses");
    let t = Instant::now();
    // SAFETY: killing our own child.
    assert_eq!(unsafe { libc::kill(d.pid() as i32, libc::SIGKILL) }, 0);
    assert!(py.loaded_within(Duration::from_secs(2)), "the loader is still stopped {:?} after guard died", t.elapsed());
    eprintln!("let go {:?} after guard's SIGKILL", t.elapsed());
    let _ = d.wait_exit(Duration::from_secs(10));
}
