//! The daemon loop's cost of the OTLP export, for `cargo xtask bench otlp`: one counted exchange
//! through the sinks, Prometheus only vs Prometheus + OTLP (metrics; metrics and spans), the
//! conditions interleaved round by round; then guard's memory while a collector is down and
//! 200,000 spans are offered. The collector is a loopback HTTP server that answers 200 to every
//! export (its speed does not matter: export runs on guard's own thread), or a closed port.
//!
//! usage: otlp_sink [ROUNDS]

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpListener,
    time::{Duration, Instant},
};

use guard::testing::SinkBench;
use guard_core::{
    cost::Cost,
    protocols::{Exchange, Role, exchange::{Protocol, Timings}},
    providers::{Endpoint, Provider, Usage},
};

const PER_ROUND: u32 = 20_000;

fn exchange(model: &str) -> Exchange {
    Exchange {
        conn: None,
        role: Role::Client,
        protocol: Protocol::Http1,
        provider: Provider::Anthropic,
        endpoint: Endpoint::Messages,
        inference: true,
        method: Some("POST".into()),
        path: Some("/v1/messages".into()),
        host: Some("api.anthropic.com".into()),
        model: Some(model.into()),
        status: Some(200),
        streamed: true,
        complete: true,
        incomplete_reason: None,
        error_type: None,
        timings: Timings { start_ns: Some(1_000_000_000), first_byte_ns: Some(1_300_000_000), end_ns: 3_000_000_000 },
        usage: Usage { input: 10, cache_read: 2000, cache_write: 300, cache_write_1h: 0, output: 400, reasoning: 50 },
        usage_seen: true,
        tool_calls: Vec::new(),
        mcp_calls: Vec::new(),
    }
}

/// A collector that takes every export: reads the request, answers 200.
fn collector() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = format!("http://{}", l.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || serve(s));
        }
    });
    addr
}

fn serve(s: std::net::TcpStream) {
    let Ok(w) = s.try_clone() else { return };
    let mut r = BufReader::new(s);
    let mut w = w;
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() || w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_err() {
            return;
        }
    }
}

/// Nanoseconds per exchange over one round.
fn round(b: &SinkBench, models: &[String]) -> f64 {
    let t = Instant::now();
    for i in 0..PER_ROUND {
        let x = exchange(&models[i as usize % models.len()]);
        b.exchange("claude-code", &x, Some(Cost::Usd(0.01)));
    }
    t.elapsed().as_nanos() as f64 / f64::from(PER_ROUND)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").parse().ok()))
        .unwrap_or(0)
}

fn main() -> Result<(), String> {
    let rounds: usize = std::env::args().nth(1).map(|r| r.parse().map_err(|_| "ROUNDS: a number")).transpose()?.unwrap_or(15);
    let up = collector();
    // Ten models: the label sets a busy host has, not one.
    let models: Vec<String> = (0..10).map(|i| format!("claude-sonnet-4-{i}")).collect();
    let benches = [
        ("Prometheus only", SinkBench::new(None, false)?),
        ("+ OTLP metrics", SinkBench::new(Some(&up), false)?),
        ("+ OTLP metrics and spans", SinkBench::new(Some(&up), true)?),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); benches.len()];
    for _ in 0..rounds {
        for (i, (_, b)) in benches.iter().enumerate() {
            times[i].push(round(b, &models));
        }
    }
    let base = median(times[0].clone());
    println!("| sinks, per counted exchange | ns | vs Prometheus only |\n|---|---|---|");
    for ((name, _), t) in benches.iter().zip(&times) {
        let m = median(t.clone());
        println!("| {name} | {m:.0} | {:.2}× |", m / base);
    }
    for (_, b) in benches {
        b.finish();
    }

    // A collector that is gone: the queue holds at most its bound, the rest is counted.
    let down = {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        format!("http://{}", l.local_addr().map_err(|e| e.to_string())?)
    };
    let b = SinkBench::new(Some(&down), true)?;
    round(&b, &models);
    let before = rss_kib();
    for _ in 0..10 {
        round(&b, &models);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib();
    let dropped = b
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix("guard_otlp_dropped_total{signal=\"spans\"} ").map(str::to_owned))
        .unwrap_or_default();
    b.finish();
    println!(
        "\nCollector down, {} more spans offered: RSS {before} KiB → {after} KiB ({:+} KiB); dropped and counted: {dropped}",
        10 * PER_ROUND,
        after as i64 - before as i64
    );
    Ok(())
}
