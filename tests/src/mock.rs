//! The mock LLM server (`tests/mock_llm/server.py`) and its real clients: the `openai` and
//! `anthropic` SDKs from PyPI and node's `fetch`. Each client prints, per call, the usage the
//! server reported in its `x-mock-usage-normalised` header: what guard must decode.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use serde_json::Value;

fn mock_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mock_llm")
}

pub struct MockLlm {
    child: Child,
    pub base: String,
    pub ca_file: PathBuf,
}

impl MockLlm {
    /// Starts the server on a free loopback port with a fresh self-signed certificate.
    pub fn start() -> Self {
        Self::start_script("server.py", &[])
    }

    /// The mock whose first Responses request offering a shell tool gets a call of that tool
    /// running `cmd`; the output the client returns for it is written to `output`.
    pub fn start_tool_call(cmd: &str, output: &std::path::Path) -> Self {
        Self::start_script(
            "server.py",
            &["--tool-call".as_ref(), cmd.as_ref(), "--tool-output".as_ref(), output.as_os_str()],
        )
    }

    /// The same mock speaking HTTP/2 (ALPN h2).
    pub fn start_h2() -> Self {
        Self::start_script("h2_server.py", &[])
    }

    fn start_script(script: &str, extra: &[&std::ffi::OsStr]) -> Self {
        // One certificate per server: two mocks in one test must not share the files.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (ca_file, key_file) = crate::self_signed(&format!("mock-{}-{n}", std::process::id()));
        let mut child = Command::new("python3")
            .arg(mock_dir().join(script))
            .args(["--port", "0", "--cert"])
            .arg(&ca_file)
            .arg("--key")
            .arg(&key_file)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the mock LLM server: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(
            base.starts_with("https://127.0.0.1:"),
            "mock server said {line:?}"
        );
        Self {
            child,
            base,
            ca_file,
        }
    }
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One call a client made, as it reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub client: String,
    pub provider: String,
    pub streamed: bool,
    pub encoding: Option<String>,
    /// An inference call (false: token counting, model lists; guard must not count these).
    pub inference: bool,
    /// input, cache_read, cache_write, output, reasoning.
    pub usage: [u64; 5],
}

/// A client run: its pid and the calls it printed.
pub struct ClientRun {
    pub pid: u32,
    pub calls: Vec<Call>,
}

/// Runs a client script to completion and parses the JSON line it prints per call.
pub fn run_client(cmd: &mut Command) -> ClientRun {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(parse_call)
        .collect();
    ClientRun { pid, calls }
}

fn parse_call(line: &str) -> Call {
    let v: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("client printed {line:?}: {e}"));
    let n = |k: &str| v["usage"][k].as_u64().unwrap_or(0);
    Call {
        client: v["client"].as_str().unwrap_or_default().to_string(),
        provider: v["provider"].as_str().unwrap_or_default().to_string(),
        streamed: v["streamed"].as_bool().unwrap_or(false),
        encoding: v["encoding"].as_str().map(str::to_string),
        inference: v["inference"].as_bool().unwrap_or(true),
        usage: [
            n("input"),
            n("cache_read"),
            n("cache_write"),
            n("output"),
            n("reasoning"),
        ],
    }
}

/// The Python SDK client (`openai` and `anthropic`), optionally asking for a content coding.
pub fn python_sdk(mock: &MockLlm, encoding: &str) -> Command {
    let mut c = Command::new("python3");
    c.arg(mock_dir().join("client_sdk.py"))
        .args(["--base", &mock.base, "--ca"])
        .arg(&mock.ca_file)
        .args(["--encoding", encoding]);
    c
}

/// node's own `fetch`, optionally asking for a content coding.
pub fn node_fetch(mock: &MockLlm, encoding: &str) -> Command {
    let mut c = Command::new("node");
    c.arg(mock_dir().join("client_fetch.mjs"))
        .arg(&mock.base)
        .arg(encoding)
        .env("NODE_EXTRA_CA_CERTS", &mock.ca_file)
        .env("MOCK_CLIENT_DELAY_MS", "700");
    c
}

/// Every call the client made is one complete inference exchange of its process, in order, with
/// exactly the server's usage.
pub fn assert_usage_matches(all: &[guard_core::protocols::Exchange], run: &ClientRun) {
    let mut mine: Vec<&guard_core::protocols::Exchange> = all
        .iter()
        .filter(|x| x.role == guard_core::protocols::Role::Client && x.conn.is_some_and(|c| c.pid == run.pid))
        .collect();
    mine.sort_by_key(|x| x.timings.start_ns);
    assert_eq!(
        mine.len(),
        run.calls.len(),
        "pid {}: decoded {mine:#?}\nclient made {:#?}",
        run.pid,
        run.calls
    );
    for (x, call) in mine.iter().zip(&run.calls) {
        if !call.inference {
            assert!(
                !x.inference && x.usage == Default::default(),
                "not inference, never counted: {x:#?}"
            );
            continue;
        }
        let provider = serde_json::to_value(x.provider).unwrap();
        assert_eq!(
            provider.as_str(),
            Some(call.provider.as_str()),
            "{x:#?}\n{call:#?}"
        );
        assert_eq!(x.streamed, call.streamed, "{x:#?}\n{call:#?}");
        assert!(x.inference && x.complete && x.usage_seen, "{x:#?}");
        assert_eq!(x.status, Some(200));
        let u = x.usage;
        assert_eq!(
            [u.input, u.cache_read, u.cache_write, u.output, u.reasoning],
            call.usage,
            "{x:#?}\n{call:#?}"
        );
    }
}
