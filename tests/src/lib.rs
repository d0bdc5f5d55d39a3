//! Harness for the privileged tests: start the real `guard` daemon, drive real TLS clients against
//! a local TLS server that keeps an exact transcript, stop the daemon and replay its recording.
//!
//! The server is rustls inside the test process, so none of its traffic goes through OpenSSL and
//! what guard captures comes from the client alone.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]


pub mod bun;
pub mod cargo_client;
pub mod codex;
pub mod daemon;
pub mod gate;
pub mod go;
pub mod mock;
pub mod npm;
pub mod openssl;
pub mod otlp;
pub mod rustls;
pub mod scrape;
pub mod server;

use std::collections::BTreeMap;

use guard_core::{
    Engine,
    engine::{EngineConfig, Outputs},
    events::{ConnId, Direction, Event, TlsFunc},
    govern::NoLookup,
    pipeline::Output,
    streams::StreamEvent,
};

/// Whether privileged tests can run. Under CI they must: not being root there is a failure.
pub fn privileged() -> bool {
    // SAFETY: no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("privileged tests must run as root under CI=true");
        }
        eprintln!(
            "\n*** SKIPPED: privileged eBPF test needs root (run `sudo -E cargo xtask test`) ***\n"
        );
    }
    root
}

/// What one connection carried, reassembled by guard's own pipeline.
#[derive(Debug, Default)]
pub struct Captured {
    pub write: Vec<u8>,
    pub read: Vec<u8>,
    pub gaps: u64,
    pub funcs: Vec<TlsFunc>,
}

/// The client-side exchanges of process `pid`, in the order they were decoded.
pub fn client_exchanges(events: &[Event], pid: u32) -> Vec<guard_core::protocols::Exchange> {
    exchanges(events)
        .into_iter()
        .filter(|x| x.role == guard_core::protocols::Role::Client && x.conn.is_some_and(|c| c.pid == pid))
        .collect()
}

/// Every chunk of the connection came through exactly these two functions, both of them used.
pub fn assert_only_funcs(c: &Captured, write: TlsFunc, read: TlsFunc) {
    assert!(
        c.funcs.contains(&write) && c.funcs.contains(&read) && c.funcs.iter().all(|f| *f == write || *f == read),
        "{:?}",
        c.funcs
    );
}

/// The pipeline records the engine makes of recorded events, in order, after each event's.
fn records(events: &[Event], mut each: impl FnMut(&Event, Vec<Output>)) {
    let mut engine = Engine::new(EngineConfig::default());
    let mut out = Outputs::default();
    for ev in events {
        out.clear();
        engine.push(ev.clone(), std::time::UNIX_EPOCH, &mut NoLookup, &mut out);
        each(ev, std::mem::take(&mut out.pipeline));
    }
}

/// What the engine makes of recorded events, attributed and judged, with no system to ask.
pub fn governed(events: &[Event]) -> Vec<guard_core::govern::Governed> {
    let mut engine = Engine::new(EngineConfig::default());
    let (mut out, mut all) = (Outputs::default(), Vec::new());
    for ev in events {
        out.clear();
        engine.push(ev.clone(), std::time::SystemTime::now(), &mut NoLookup, &mut out);
        all.append(&mut out.governed);
    }
    all
}

/// Runs recorded events through the engine and collects each connection of `pid`.
pub fn connections_of(events: &[Event], pid: u32) -> BTreeMap<ConnId, Captured> {
    let mut conns: BTreeMap<ConnId, Captured> = BTreeMap::new();
    records(events, |ev, out| {
        if let Event::TlsData(d) = ev
            && d.conn.pid == pid
        {
            let c = conns.entry(d.conn).or_default();
            if !c.funcs.contains(&d.func) {
                c.funcs.push(d.func);
            }
        }
        for o in out {
            let Output::Stream(s) = o else { continue };
            if s.conn().pid != pid {
                continue;
            }
            let c = conns.entry(s.conn()).or_default();
            match s {
                StreamEvent::Data {
                    dir: Direction::Write,
                    data,
                    ..
                } => c.write.extend_from_slice(&data),
                StreamEvent::Data {
                    dir: Direction::Read,
                    data,
                    ..
                } => c.read.extend_from_slice(&data),
                StreamEvent::Gap { missing, .. } => c.gaps += missing,
                StreamEvent::Closed { .. } => {}
            }
        }
    });
    conns
}

/// The exec records the engine makes of a recording, in order.
pub fn execs(events: &[Event]) -> Vec<guard_core::events::exec_join::ExecRecord> {
    let mut all = Vec::new();
    records(events, |_, out| all.extend(out.into_iter().filter_map(|o| match o {
        Output::Exec(e) => Some(e),
        _ => None,
    })));
    all
}

/// The exchanges the engine decodes from a recording, in the order it finished them.
pub fn exchanges(events: &[Event]) -> Vec<guard_core::protocols::Exchange> {
    let mut all = Vec::new();
    records(events, |_, out| all.extend(out.into_iter().filter_map(|o| match o {
        Output::Exchange(x) => Some(x),
        _ => None,
    })));
    all
}

/// A new self-signed certificate for 127.0.0.1 and localhost, written to the scratch directory as
/// `TAG-cert.pem` and `TAG-key.pem`: (certificate, key). The certificate is its own CA.
pub fn self_signed(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (temp_path(&format!("{tag}-cert.pem")), temp_path(&format!("{tag}-key.pem")));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// A path in this test binary's scratch directory, `$TMPDIR/guard-test-<test name>`. The directory
/// is emptied on first use, so every run reuses it: a directory per process left about 100 MB per
/// run behind (the compiled Bun client) and once filled the disk that CI builds on. Privileged
/// tests never run two at a time, so one directory per test name is enough. `cargo xtask test`
/// removes them all after a run that passed.
pub fn temp_path(name: &str) -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let stem = exe.file_stem().unwrap_or_default().to_string_lossy();
        // Cargo names test binaries `<test>-<hash>`.
        let test = stem.rsplit_once('-').map_or(&*stem, |(test, _hash)| test);
        let dir = std::env::temp_dir().join(format!("guard-test-{test}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
    .join(name)
}
