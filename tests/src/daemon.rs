//! The real `guard run`, started and stopped the way a user would.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use guard_core::events::{Event, record::read_events};

pub struct Daemon {
    child: Child,
    record: PathBuf,
    log: mpsc::Receiver<String>,
    /// Every line the daemon logged so far.
    lines: Arc<Mutex<Vec<String>>>,
}

/// The guard binary: `GUARD_BIN`, or the workspace's debug build (`cargo xtask test` builds it).
pub fn guard_bin() -> PathBuf {
    std::env::var_os("GUARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/guard"))
}

impl Daemon {
    /// Starts `guard run --record` and waits until it says it is ready.
    pub fn start(name: &str) -> Self {
        Self::start_with(name, &[])
    }

    /// [`Self::start`] with more `guard run` arguments.
    pub fn start_with(name: &str, args: &[&str]) -> Self {
        Self::start_env(name, args, &[])
    }

    /// [`Self::start_with`] with more environment variables for the daemon.
    pub fn start_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let record = crate::temp_path(&format!("{name}.jsonl"));
        // guard records only to a new file, and a test may start a daemon of the same name twice.
        if let Err(e) = std::fs::remove_file(&record)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            panic!("cannot remove the stale recording {}: {e}", record.display());
        }
        let bin = guard_bin();
        let mut child = Command::new(&bin)
            .args(["run", "--record"])
            .arg(&record)
            .args(args)
            .env("GUARD_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let all = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                all.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut d = Self {
            child,
            record,
            log: rx,
            lines,
        };
        d.wait_for("guard ready", Duration::from_secs(60));
        d
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!("guard did not log {needle:?} within {timeout:?} (exit: {status:?})");
                }
            }
        }
    }

    /// Waits until the daemon attaches to `bin` (it logs the canonical path the process maps)
    /// and returns that log line.
    pub fn wait_attached(&mut self, bin: &std::path::Path, timeout: Duration) -> String {
        let path = std::fs::canonicalize(bin).unwrap().to_string_lossy().to_string();
        // Attached already, maybe before "guard ready" (the analysis ahead at start hooks agents
        // and node before any process of them runs).
        let attached = |l: &String| l.contains("attached TLS target") && l.contains(&path);
        if let Some(line) = self.log_lines().into_iter().find(attached) {
            return line;
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let line = self.wait_for("attached TLS target", deadline.saturating_duration_since(std::time::Instant::now()));
            if line.contains(&path) {
                return line;
            }
        }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the daemon to exit (killed by a test, say) and returns how it
    /// ended, or `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The recording the daemon writes (complete once it stopped).
    pub fn record_path(&self) -> PathBuf {
        self.record.clone()
    }

    /// Every line the daemon has logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// SIGTERM, wait for a clean exit, and return the recorded events.
    pub fn stop(self) -> Vec<Event> {
        self.stop_with_log().0
    }

    /// [`Self::stop`], also returning every line the daemon logged.
    pub fn stop_with_log(mut self) -> (Vec<Event>, Vec<String>) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "guard exited with {status}");
        let f = std::fs::File::open(&self.record).unwrap();
        let events = read_events(BufReader::new(f)).map(|e| e.unwrap()).collect();
        // The stderr reader ends with the process; give it a moment to take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        let lines = self.lines.lock().unwrap().clone();
        (events, lines)
    }
}

/// Runs `guard run ARGS`, which must refuse to start: exit with an error within `timeout`.
/// Returns what it wrote to stderr.
pub fn run_refused(args: &[&str], timeout: Duration) -> String {
    let bin = guard_bin();
    let mut child = Command::new(&bin)
        .arg("run")
        .args(args)
        .env("GUARD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut stderr = child.stderr.take().unwrap();
    let text = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("guard run {args:?} was still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = text.join().unwrap();
    eprintln!("[guard] {text}");
    assert!(!status.success(), "guard run {args:?} started and exited cleanly:\n{text}");
    text
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // The log goes after the panic message, not before it: a failing test's summary (CI
        // shows its head and tail) then starts with the assertion that failed.
        if std::thread::panicking() {
            eprintln!("---- guard's log ----");
            let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
            for line in lines {
                eprintln!("[guard] {line}");
            }
        }
    }
}
