//! The rustls test client (`tests/rustls_client`): reqwest + rustls on tokio's multi-threaded
//! runtime, like Codex CLI, in three configurations, each built from crates.io with a committed
//! Cargo.lock into `target/test-tools/rustls/TAG` and stripped.

use std::{path::PathBuf, process::Command, sync::OnceLock};

use crate::mock::MockLlm;

/// One configuration of the client.
pub struct Client {
    pub tag: &'static str,
    /// The rustls release its Cargo.lock pins.
    pub rustls: &'static str,
    /// Whether its crypto provider is aws-lc-rs (else ring: a blind spot).
    pub aws_lc: bool,
    pub full: PathBuf,
    pub stripped: PathBuf,
}

/// (directory under tests/rustls_client, rustls release, aws-lc-rs provider).
pub const BUILDS: [(&str, &str, bool); 3] = [("r23_aws", "0.23.46", true), ("r22_aws", "0.22.4", true), ("r23_ring", "0.23.46", false)];

/// Every configuration, compiled on first use in this process (a cold build compiles aws-lc or
/// ring from C, a few minutes each).
pub fn clients() -> &'static [Client] {
    static BUILT: OnceLock<Vec<Client>> = OnceLock::new();
    BUILT.get_or_init(|| {
        BUILDS
            .iter()
            .map(|&(tag, rustls, aws_lc)| {
                let b = crate::cargo_client::build("rustls_client", "rustls", tag, "rustlsclient", "aws-lc-sys and ring need a C compiler");
                Client { tag, rustls, aws_lc, full: b.full, stripped: b.stripped }
            })
            .collect()
    })
}

/// `rustlsclient llm`: the five LLM calls on one keep-alive connection, one JSON line each.
pub fn llm(bin: &std::path::Path, mock: &MockLlm, encoding: &str, http2: bool, tls12: bool) -> Command {
    let mut c = Command::new(bin);
    c.arg("llm").arg(&mock.base).arg(&mock.ca_file).arg(encoding).env("MOCK_CLIENT_DELAY_MS", "300");
    if http2 {
        c.env("RUSTLSCLIENT_HTTP2", "1");
    }
    if tls12 {
        c.env("RUSTLSCLIENT_TLS12", "1");
    }
    c
}

/// `rustlsclient loop`: `n` GETs over `conc` connections, started by a line on its stdin (an
/// idle process of the binary until then); prints how many got a 200.
pub fn repeat(bin: &std::path::Path, mock: &MockLlm, n: u32, conc: u32) -> Command {
    let mut c = Command::new(bin);
    c.arg("loop")
        .arg(&mock.base)
        .arg(&mock.ca_file)
        .arg(n.to_string())
        .arg(conc.to_string())
        .env("RUSTLSCLIENT_WAIT_STDIN", "1");
    c
}

/// `rustlsclient ws-server`: the Responses WebSocket with permessage-deflate over TLS, in its own
/// process.
pub fn ws_server(bin: &std::path::Path, cert: &std::path::Path, key: &std::path::Path) -> std::process::Child {
    Command::new(bin)
        .arg("ws-server")
        .arg(cert)
        .arg(key)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// [`ws_server`] whose first turn offering a shell tool gets a call of it running `cmd`.
pub fn ws_server_calling(bin: &std::path::Path, cert: &std::path::Path, key: &std::path::Path, cmd: &str) -> std::process::Child {
    Command::new(bin)
        .arg("ws-server")
        .arg(cert)
        .arg(key)
        .env("WS_TOOL_CALL", cmd)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The server's `wss://` URL of the Responses endpoint, from its first line.
pub fn ws_url(server: &mut std::process::Child) -> String {
    use std::io::BufRead as _;
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
    assert!(base.starts_with("wss://127.0.0.1:"), "ws server said {line:?}");
    format!("{base}/v1/responses")
}

/// `rustlsclient ws`: `turns` turns on one connection, one JSON line each.
pub fn ws(bin: &std::path::Path, url: &str, ca: &std::path::Path, turns: usize) -> Command {
    let mut c = Command::new(bin);
    c.arg("ws").arg(url).arg(ca).arg(turns.to_string()).env("MOCK_CLIENT_DELAY_MS", "300");
    c
}
