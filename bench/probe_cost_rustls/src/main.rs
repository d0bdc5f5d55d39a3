//! Per-call cost of rustls's record layer on aws-lc (`EVP_AEAD_CTX_seal` / `_open`), where guard
//! hooks stripped rustls binaries: the rustls twin of bench/probe_cost.c.
//!
//! A rustls client and server in one process over a Unix stream socketpair, driven by hand on one
//! thread, so the socket syscalls guard ties records with are real. Write mode times one client
//! `write` + `write_tls` (one record sealed and sent); the server then drains the raw bytes,
//! untimed. Read mode writes the client's record untimed and times the server's `read_tls` +
//! `process_new_packets` + `read` (one record received, opened and returned).
//!
//! Before the timed phase it prints "ready" and, when PROBE_COST_WAIT_STDIN is set, waits for a
//! line on stdin (so that a daemon can hook this binary first).
//!
//! usage: probe_cost_rustls CERT KEY SIZE CALLS REPS [write|read] -> one ns/call per repetition

use std::{
    io::{BufReader, Read, Write},
    os::unix::net::UnixStream,
    process::exit,
    sync::Arc,
    time::Instant,
};

use rustls::{ClientConnection, ServerConnection, pki_types::ServerName};

fn fail(msg: impl std::fmt::Debug) -> ! {
    eprintln!("probe_cost_rustls: {msg:?}");
    exit(2)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i).and_then(|v| v.parse().ok()).unwrap_or_else(|| fail("usage: probe_cost_rustls CERT KEY SIZE CALLS REPS [write|read]"))
}

#[derive(Debug)]
struct TrustAll(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for TrustAll {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn pair(cert: &str, key: &str) -> (ClientConnection, ServerConnection) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(std::fs::File::open(cert).unwrap_or_else(|e| fail(e))))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| fail(e));
    let key = rustls_pemfile::private_key(&mut BufReader::new(std::fs::File::open(key).unwrap_or_else(|e| fail(e))))
        .unwrap_or_else(|e| fail(e))
        .unwrap_or_else(|| fail("no private key"));
    // The bench certificate is a CA certificate, which webpki refuses as a server's: the harness
    // measures records, not verification, so it trusts the peer as is.
    let client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| fail(e))
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustAll(provider.clone())))
        .with_no_client_auth();
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| fail(e))
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap_or_else(|e| fail(e));
    let name = ServerName::try_from("localhost").unwrap_or_else(|e| fail(e));
    (
        ClientConnection::new(Arc::new(client), name).unwrap_or_else(|e| fail(e)),
        ServerConnection::new(Arc::new(server)).unwrap_or_else(|e| fail(e)),
    )
}

/// Moves everything either side has to send until both are idle.
fn pump(c: &mut ClientConnection, s: &mut ServerConnection, cs: &mut UnixStream, ss: &mut UnixStream) {
    loop {
        let mut moved = false;
        while c.wants_write() {
            c.write_tls(cs).unwrap_or_else(|e| fail(e));
            s.read_tls(ss).unwrap_or_else(|e| fail(e));
            s.process_new_packets().unwrap_or_else(|e| fail(e));
            moved = true;
        }
        while s.wants_write() {
            s.write_tls(ss).unwrap_or_else(|e| fail(e));
            c.read_tls(cs).unwrap_or_else(|e| fail(e));
            c.process_new_packets().unwrap_or_else(|e| fail(e));
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (size, calls, reps): (usize, usize, usize) = (arg(&args, 3), arg(&args, 4), arg(&args, 5));
    let reading = args.get(6).is_some_and(|m| m == "read");
    let (mut c, mut s) = pair(&args[1], &args[2]);
    let (mut cs, mut ss) = UnixStream::pair().unwrap_or_else(|e| fail(e));
    pump(&mut c, &mut s, &mut cs, &mut ss);
    if c.is_handshaking() || s.is_handshaking() {
        fail("handshake did not finish");
    }
    println!("ready");
    if std::env::var_os("PROBE_COST_WAIT_STDIN").is_some() {
        let _ = std::io::stdin().read_line(&mut String::new());
    }
    let msg = vec![b'x'; size];
    let mut got = vec![0u8; size];
    let mut raw = vec![0u8; size + 1024];
    for _ in 0..reps {
        let mut spent = std::time::Duration::ZERO;
        for _ in 0..calls {
            if reading {
                c.writer().write_all(&msg).unwrap_or_else(|e| fail(e));
                while c.wants_write() {
                    c.write_tls(&mut cs).unwrap_or_else(|e| fail(e));
                }
                let t = Instant::now();
                let mut n = 0;
                while n < size {
                    s.read_tls(&mut ss).unwrap_or_else(|e| fail(e));
                    s.process_new_packets().unwrap_or_else(|e| fail(e));
                    // rustls says WouldBlock while the record is still incomplete.
                    match s.reader().read(&mut got[n..]) {
                        Ok(k) => n += k,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => fail(e),
                    }
                }
                spent += t.elapsed();
            } else {
                let t = Instant::now();
                c.writer().write_all(&msg).unwrap_or_else(|e| fail(e));
                while c.wants_write() {
                    c.write_tls(&mut cs).unwrap_or_else(|e| fail(e));
                }
                spent += t.elapsed();
                // Drain the record, never decrypted (its length: header + payload + type + tag).
                let mut left = 5 + size + 1 + 16;
                while left > 0 {
                    left -= ss.read(&mut raw[..left]).unwrap_or_else(|e| fail(e));
                }
            }
        }
        println!("{:.1}", spent.as_nanos() as f64 / calls as f64);
    }
}
