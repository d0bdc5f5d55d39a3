//! The `guard` binary as a new user meets it: mistakes in flags, `GUARD_LOG` and arguments are
//! named and stop it at once, and its logs carry colours only to a terminal. No root needed; as
//! root, `guard run` with a bad argument must still stop before it loads anything, so every run
//! here is bounded in time.
#![allow(clippy::unwrap_used, reason = "test")]

use std::{
    io::Read as _,
    os::fd::{FromRawFd as _, OwnedFd},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use guard_tests::{daemon::guard_bin, temp_path};

/// Longer than any argument check takes; a `guard run` still alive by then is loading BPF.
const DEADLINE: Duration = Duration::from_secs(5);

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `guard ARGS` with `env` on top of a clean logging environment, stdout and stderr captured.
fn guard(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = command(args, env);
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_bounded(&mut child, args);
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    Out { code: child.wait().unwrap().code(), stdout, stderr }
}

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(guard_bin());
    cmd.args(args).env_remove("GUARD_LOG").env_remove("NO_COLOR").stdin(Stdio::null());
    cmd.envs(env.iter().copied());
    cmd
}

/// Waits for the child to exit, killing it (and failing) past [`DEADLINE`].
fn wait_bounded(child: &mut Child, args: &[&str]) {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("guard {args:?} still ran after {DEADLINE:?}: the argument was not checked first");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A config file of its own, so that a host's /etc/guard/guard.toml cannot change the result.
fn config(name: &str, text: &str) -> String {
    let p = temp_path(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn a_bad_flag_is_named_as_the_flag() {
    let empty = config("empty.toml", "");
    let cases = [
        (["--metrics-addr", "nonsense"], "flag `--metrics-addr`: \"nonsense\" is not an IP:PORT address"),
        (["--ring-mib", "3"], "flag `--ring-mib`: must be a power of two from 1 to 1024, not 3"),
        (["--audit-log", ""], "flag `--audit-log`: empty"),
    ];
    for (flag, want) in cases {
        let out = guard(&["run", "--config", &empty, flag[0], flag[1]], &[]);
        assert!(out.stderr.contains(want), "{flag:?}: {}", out.stderr);
        assert!(!out.stderr.contains("key `"), "{flag:?} is not a config key: {}", out.stderr);
        assert_eq!(out.code, Some(2), "{flag:?}: {}", out.stderr);
    }
}

#[test]
fn a_bad_key_in_the_file_is_named_with_the_file() {
    let file = config("bad-addr.toml", "[metrics]\naddr = \"nonsense\"\n");
    let out = guard(&["run", "--config", &file], &[]);
    let want = format!("config {file}: key `metrics.addr`: \"nonsense\" is not an IP:PORT address");
    assert!(out.stderr.contains(&want), "{}", out.stderr);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
}

#[test]
fn a_bad_guard_log_stops_every_subcommand() {
    let empty = config("empty.toml", "");
    let commands: [&[&str]; 6] = [
        &["run", "--config", &empty],
        &["doctor"],
        &["rules", "list"],
        &["prices", "--config", &empty],
        &["replay", "/nonexistent/recording.jsonl"],
        &["hooks", "/nonexistent/file"],
    ];
    for args in commands {
        let out = guard(args, &[("GUARD_LOG", "guard=loud")]);
        assert!(out.stderr.starts_with("guard: GUARD_LOG=\"guard=loud\" is not a log filter"), "{args:?}: {}", out.stderr);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, "", "{args:?} did its work anyway");
    }
}

#[test]
fn a_valid_guard_log_still_works() {
    let out = guard(&["rules", "list", "--json"], &[("GUARD_LOG", "guard=debug,warn")]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()) && !out.stdout.is_empty(), "{}", out.stdout);
}

/// `guard prices`: the dated built-in table, the config's entries first (with their origin), and
/// a broken entry named.
#[test]
fn prices_lists_the_dated_table_with_the_configs_entries_first() {
    let empty = config("empty.toml", "");
    let out = guard(&["prices", "--config", &empty], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let first = out.stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with("prices updated 20") && first.contains("USD per million tokens"), "{first}");
    assert!(out.stdout.lines().any(|l| l.starts_with("Claude Haiku 4.5 ") && l.contains("anthropic,bedrock")), "{}", out.stdout);
    let entry = "[[prices.model]]\nname = \"house model\"\nproviders = [\"openai_chat\"]\nmatch = \"house-*\"\ninput = 0.5\ncache_read = 0.05\noutput = 1.5\n";
    let file = config("prices.toml", entry);
    let out = guard(&["prices", "--json", "--config", &file], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["models"][0]["name"], "house model");
    assert_eq!(v["models"][0]["origin"], file.as_str());
    assert_eq!(v["models"][0]["providers"], serde_json::json!(["openai_chat"]));
    assert_eq!(v["models"][1]["origin"], "builtin");
    let broken = config("bad-prices.toml", &entry.replace("input = 0.5", "input = -0.5"));
    let out = guard(&["prices", "--config", &broken], &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("key `prices.model`: price entry `house model`: `input` must be a price of 0 or more"), "{}", out.stderr);
    assert_eq!(out.stdout, "");
}

#[test]
fn hooks_without_a_file_is_a_usage_error() {
    let out = guard(&["hooks"], &[]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("Usage: guard hooks"), "{}", out.stderr);
    assert_eq!(out.stdout, "");
}

#[test]
fn hooks_reports_a_file_it_cannot_read_on_its_line_and_fails() {
    let out = guard(&["hooks", "/nonexistent/file", "/bin/true", "/"], &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let lines: Vec<serde_json::Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    let err = |i: usize| lines[i]["analysis"]["Err"].as_str().unwrap_or_default().to_owned();
    assert_eq!(lines[0]["path"], "/nonexistent/file");
    assert!(err(0).contains("No such file"), "{}", lines[0]);
    // A readable ELF file is analysed, not an error, and the files after a failure still are.
    assert_eq!(lines[1]["analysis"]["Ok"], serde_json::json!({ "miss": "no_tls" }), "{}", lines[1]);
    assert!(!err(2).is_empty(), "a directory cannot be analysed: {}", lines[2]);
}

/// Text logs written to a pipe (or a file) carry no escape codes.
#[test]
fn logs_to_a_pipe_have_no_colours() {
    let out = guard(&["replay", "/nonexistent/recording.jsonl"], &[]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("ERROR") && out.stderr.contains("cannot open /nonexistent/recording.jsonl"), "{}", out.stderr);
    assert!(!out.stderr.contains('\x1b'), "{:?}", out.stderr);
}

/// A terminal gets colours, unless `NO_COLOR` says otherwise.
#[test]
fn logs_to_a_terminal_have_colours_unless_no_color() {
    assert!(on_a_terminal(&[]).contains("\x1b["), "a terminal gets colours");
    let plain = on_a_terminal(&[("NO_COLOR", "1")]);
    assert!(plain.contains("ERROR") && !plain.contains('\x1b'), "{plain:?}");
}

/// What `guard replay MISSING` writes to stderr when stderr is a pseudo-terminal.
fn on_a_terminal(env: &[(&str, &str)]) -> String {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two new descriptors into the two ints; the other arguments may be null.
    let rc = unsafe { libc::openpty(&raw mut master, &raw mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned by nothing else.
    let (master, slave) = unsafe { (std::fs::File::from(OwnedFd::from_raw_fd(master)), OwnedFd::from_raw_fd(slave)) };
    let args = ["replay", "/nonexistent/recording.jsonl"];
    let mut cmd = command(&args, env);
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::from(slave)).spawn().unwrap();
    // Our copy of the slave must close, so that the master reads end once the child is gone.
    drop(cmd);
    wait_bounded(&mut child, &args);
    child.wait().unwrap();
    read_all(master)
}

/// Everything buffered in a pty master whose slave is closed (the read then fails with EIO).
fn read_all(mut master: std::fs::File) -> String {
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = master.read(&mut buf) {
        text.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&text).into_owned()
}
