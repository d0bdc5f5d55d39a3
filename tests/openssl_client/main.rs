//! An HTTP/1.1 client on the `openssl` crate with OpenSSL statically linked (`vendored`), for
//! guard's end-to-end tests: the way a Rust program (reqwest + native-tls) carries OpenSSL 3.
//! Built twice, pinning two OpenSSL 3 minors (`v3_2/`, `v3_5/`), and stripped by the tests.
//!
//!   osslclient llm  BASE CA_FILE [encoding]  one JSON line per call, like the Go client
//!   osslclient loop BASE CA_FILE N           N GETs of /v1/models on one keep-alive connection;
//!                                            prints how many got a 200
//!
//! `OSSLCLIENT_WAIT_STDIN=1`: wait for a line on stdin before any connection (the tests start a
//! process, let guard hook its binary, then let it go). `MOCK_CLIENT_DELAY_MS`: sleep first.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::exit,
};

use openssl::ssl::{SslConnector, SslMethod, SslStream};

type Conn = BufReader<SslStream<TcpStream>>;

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("osslclient: {msg}");
    exit(1)
}

/// `https://HOST:PORT` → (host, port).
fn host_port(base: &str) -> (String, u16) {
    let rest = base
        .strip_prefix("https://")
        .unwrap_or_else(|| fail("BASE must be https://HOST:PORT"));
    let (host, port) = rest
        .trim_end_matches('/')
        .rsplit_once(':')
        .unwrap_or_else(|| fail("BASE must name a port"));
    let port = port.parse().unwrap_or_else(|e| fail(e));
    (host.to_string(), port)
}

fn connect(base: &str, ca_file: &str) -> Conn {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap_or_else(|e| fail(e));
    b.set_ca_file(ca_file).unwrap_or_else(|e| fail(e));
    // HTTP/1.1 only, as the mock speaks.
    b.set_alpn_protos(b"\x08http/1.1")
        .unwrap_or_else(|e| fail(e));
    let (host, port) = host_port(base);
    let tcp = TcpStream::connect((host.as_str(), port)).unwrap_or_else(|e| fail(e));
    let tls = b.build().connect(&host, tcp).unwrap_or_else(|e| fail(e));
    BufReader::new(tls)
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on the connection, and its whole response (the mock always sends Content-Length).
fn exchange(c: &mut Conn, head: &str, body: &[u8]) -> Response {
    let mut req = head.as_bytes().to_vec();
    req.extend_from_slice(body);
    // One SSL_write_ex per request, as a client library with a write buffer does.
    c.get_mut().write_all(&req).unwrap_or_else(|e| fail(e));
    let mut line = String::new();
    c.read_line(&mut line).unwrap_or_else(|e| fail(e));
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fail(format!("bad status line {line:?}")));
    let mut headers = Vec::new();
    loop {
        line.clear();
        c.read_line(&mut line).unwrap_or_else(|e| fail(e));
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut r = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = r
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fail("no content-length"));
    r.body.resize(len, 0);
    c.read_exact(&mut r.body).unwrap_or_else(|e| fail(e));
    r
}

fn request(method: &str, base: &str, path: &str, extra: &[(&str, &str)], body: &str) -> String {
    let (host, port) = host_port(base);
    let mut h =
        format!("{method} {path} HTTP/1.1\r\nhost: {host}:{port}\r\nuser-agent: osslclient\r\n");
    for (k, v) in extra {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        h.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    h.push_str("\r\n");
    h
}

pub(crate) fn llm(base: &str, ca: &str, enc: &str) {
    let msg = r#""messages":[{"role":"user","content":"Hi"}]"#;
    let calls = [
        (
            "anthropic",
            false,
            "/v1/messages",
            format!(r#"{{"model":"claude-sonnet-4-5","max_tokens":64,{msg}}}"#),
        ),
        (
            "anthropic",
            true,
            "/v1/messages",
            format!(r#"{{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,{msg}}}"#),
        ),
        (
            "openai_chat",
            false,
            "/v1/chat/completions",
            format!(r#"{{"model":"gpt-4o",{msg}}}"#),
        ),
        (
            "openai_chat",
            true,
            "/v1/chat/completions",
            format!(
                r#"{{"model":"gpt-4o","stream":true,"stream_options":{{"include_usage":true}},{msg}}}"#
            ),
        ),
        (
            "openai_responses",
            true,
            "/v1/responses",
            r#"{"model":"gpt-5","input":"Hi","stream":true}"#.to_string(),
        ),
    ];
    let mut c = connect(base, ca);
    for (provider, streamed, path, body) in calls {
        let mut extra = vec![(
            "x-mock-usage",
            "input=300,output=40,cache_read=100,reasoning=12",
        )];
        if !enc.is_empty() {
            extra.push(("accept-encoding", enc));
            extra.push(("x-mock-encoding", enc));
        }
        let head = request("POST", base, path, &extra, &body);
        let r = exchange(&mut c, &head, body.as_bytes());
        let usage = r
            .header("x-mock-usage-normalised")
            .unwrap_or_else(|| fail("no x-mock-usage-normalised"))
            .to_string();
        let encoding = r
            .header("content-encoding")
            .map_or("null".to_string(), |e| format!("\"{e}\""));
        println!(
            r#"{{"client":"openssl","provider":"{provider}","streamed":{streamed},"status":{},"encoding":{encoding},"inference":true,"usage":{usage},"body_bytes":{}}}"#,
            r.status,
            r.body.len()
        );
    }
}

fn repeat(base: &str, ca: &str, n: u64) {
    let mut c = connect(base, ca);
    let mut ok = 0u64;
    for _ in 0..n {
        let head = request("GET", base, "/v1/models", &[], "");
        if exchange(&mut c, &head, b"").status == 200 {
            ok += 1;
        }
    }
    println!("{ok}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        fail("usage: osslclient llm|loop BASE CA_FILE [encoding|N]");
    }
    if let Some(ms) = std::env::var("MOCK_CLIENT_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    if std::env::var_os("OSSLCLIENT_WAIT_STDIN").is_some() {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    let (mode, base, ca) = (&args[1], &args[2], &args[3]);
    match mode.as_str() {
        "llm" => llm(base, ca, args.get(4).map_or("", String::as_str)),
        "loop" => {
            let n = args
                .get(4)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| fail("loop needs N"));
            repeat(base, ca, n);
        }
        other => fail(format!("unknown mode {other:?}")),
    }
}
