//! A local HTTPS server on 127.0.0.1 that keeps the exact plaintext it received and sent.
//!
//! `GET|POST /bytes/N` answers with N bytes of a fixed pattern. One request per connection
//! (`Connection: close`), so each transcript is one connection. [`TlsServer::start_echo`] speaks
//! no HTTP at all: it echoes what it reads, the way a non-HTTP TLS protocol would look.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
};

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

#[derive(Clone, Debug, Default)]
pub struct Transcript {
    pub received: Vec<u8>,
    pub sent: Vec<u8>,
}

pub struct TlsServer {
    pub port: u16,
    /// PEM of the self-signed certificate, for the clients' trust store.
    pub ca_file: PathBuf,
    transcripts: Arc<Mutex<Vec<Transcript>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

/// The body pattern: not all one byte, so misordered chunks would show.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ (i / 251 % 256) as u8).collect()
}

type Handler = fn(TcpStream, Arc<rustls::ServerConfig>) -> Option<Transcript>;

impl TlsServer {
    pub fn start() -> Self {
        Self::start_serving(serve, &[])
    }

    /// A server that keeps whatever plaintext each connection sent, even a request cut short or
    /// none at all (a client killed before its first byte): one transcript per handshake. A
    /// whole request is answered `200` with `{}`.
    pub fn start_recording() -> Self {
        Self::start_serving(record, &[])
    }

    /// The same over HTTP/2 (ALPN `h2`): each connection's plaintext is kept until the client
    /// closes, and every request (a stream the client ended) is answered `:status 200` without
    /// a body. [`h2_frames`] reads a transcript back.
    pub fn start_h2_recording() -> Self {
        Self::start_serving(record_h2, &[b"h2"])
    }

    /// A server that echoes every byte back until the client closes.
    pub fn start_echo() -> Self {
        Self::start_serving(echo, &[])
    }

    fn start_serving(handler: Handler, alpn: &[&[u8]]) -> Self {
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        let ca_file = crate::temp_path(&format!("ca-{}.pem", std::process::id()));
        std::fs::write(&ca_file, ck.cert.pem()).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap();
        let mut config = config;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let transcripts = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (transcripts.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (config, t) = (config.clone(), t.clone());
                std::thread::spawn(move || {
                    if let Some(tr) = handler(stream, config) {
                        t.lock().unwrap().push(tr);
                    }
                });
            }
        });
        Self { port, ca_file, transcripts, stop, accept: Some(accept) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    pub fn transcripts(&self) -> Vec<Transcript> {
        self.transcripts.lock().unwrap().clone()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> Option<Transcript> {
    let conn = rustls::ServerConnection::new(config).ok()?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut tr = Transcript::default();
    let mut buf = [0u8; 16384];
    // Headers, then a Content-Length body.
    let head_end = loop {
        if let Some(i) = tr.received.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tls.read(&mut buf).ok().filter(|&n| n > 0)?;
        tr.received.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&tr.received[..head_end]).to_ascii_lowercase();
    let body_len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    while tr.received.len() < head_end + body_len {
        let n = tls.read(&mut buf).ok().filter(|&n| n > 0)?;
        tr.received.extend_from_slice(&buf[..n]);
    }
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let n: usize = path.strip_prefix("/bytes/").and_then(|n| n.parse().ok()).unwrap_or(0);
    let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n").into_bytes();
    resp.extend_from_slice(&pattern(n));
    tls.write_all(&resp).ok()?;
    tls.flush().ok()?;
    tr.sent = resp;
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Some(tr)
}

fn echo(tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> Option<Transcript> {
    let conn = rustls::ServerConnection::new(config).ok()?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut tr = Transcript::default();
    let mut buf = [0u8; 16384];
    while let Some(n) = tls.read(&mut buf).ok().filter(|&n| n > 0) {
        tr.received.extend_from_slice(&buf[..n]);
        tls.write_all(&buf[..n]).ok()?;
        tls.flush().ok()?;
        tr.sent.extend_from_slice(&buf[..n]);
    }
    Some(tr)
}

fn record(tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> Option<Transcript> {
    let conn = rustls::ServerConnection::new(config).ok()?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut tr = Transcript::default();
    let mut buf = [0u8; 16384];
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).ok()?;
    }
    let whole = |r: &[u8]| {
        let end = r.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&r[..end]).to_ascii_lowercase();
        let body: usize = head.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))).unwrap_or(0);
        (r.len() >= end + body).then_some(())
    };
    while whole(&tr.received).is_none() {
        match tls.read(&mut buf) {
            Ok(n) if n > 0 => tr.received.extend_from_slice(&buf[..n]),
            _ => return Some(tr),
        }
    }
    let resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec();
    if tls.write_all(&resp).and_then(|()| tls.flush()).is_ok() {
        tr.sent = resp;
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Some(tr)
}

/// HTTP/2 frame types and flags the recording server and [`h2_frames`] use (RFC 9113 §6).
pub mod h2 {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const SETTINGS: u8 = 0x4;
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
}

/// One HTTP/2 frame a client sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// The whole frames after the client preface in `received` (a cut last frame is left out).
pub fn h2_frames(received: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut at = 24.min(received.len());
    while let Some(h) = received.get(at..at + 9) {
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        let Some(payload) = received.get(at + 9..at + 9 + len) else { break };
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        out.push(Frame { kind: h[3], flags: h[4], stream, payload: payload.to_vec() });
        at += 9 + len;
    }
    out
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len() as u32;
    let mut f = n.to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn record_h2(tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> Option<Transcript> {
    let conn = rustls::ServerConnection::new(config).ok()?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut tr = Transcript::default();
    let send = |tls: &mut rustls::StreamOwned<rustls::ServerConnection, TcpStream>, tr: &mut Transcript, f: Vec<u8>| {
        let ok = tls.write_all(&f).and_then(|()| tls.flush()).is_ok();
        tr.sent.extend_from_slice(&f);
        ok
    };
    if !send(&mut tls, &mut tr, frame(h2::SETTINGS, 0, 0, &[])) {
        return Some(tr);
    }
    let mut buf = [0u8; 16384];
    let mut seen = 0;
    loop {
        match tls.read(&mut buf) {
            Ok(n) if n > 0 => tr.received.extend_from_slice(&buf[..n]),
            _ => return Some(tr),
        }
        let frames = h2_frames(&tr.received);
        for f in &frames[seen..] {
            let answer = match f.kind {
                h2::SETTINGS if f.flags & h2::ACK == 0 => frame(h2::SETTINGS, h2::ACK, 0, &[]),
                // `:status: 200` is entry 8 of HPACK's static table.
                h2::HEADERS | h2::DATA if f.flags & h2::END_STREAM != 0 => frame(h2::HEADERS, h2::END_HEADERS | h2::END_STREAM, f.stream, &[0x88]),
                _ => continue,
            };
            if !send(&mut tls, &mut tr, answer) {
                return Some(tr);
            }
        }
        seen = frames.len();
    }
}
