//! Pipeline throughput over a recording (`guard run --record`), for `cargo xtask bench`: the
//! events are turned back into kernel record bytes, then pushed through the engine `guard run`
//! uses (decode, verify, pipeline, governor), on one thread, REPEAT times. Prints events/s and MB/s.
//!
//! usage: pipeline_throughput RECORDING [REPEAT]

use std::{io::BufReader, time::Instant};

use bytes::Bytes;
use guard_core::{
    Engine,
    engine::{EngineConfig, Outputs},
    events::{encode::encode, record::read_events},
    govern::{Governed, NoLookup},
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: pipeline_throughput RECORDING [REPEAT]")?;
    let repeat: u32 = args.next().map(|r| r.parse()).transpose()?.unwrap_or(10);
    let events = read_events(BufReader::new(std::fs::File::open(&path)?)).collect::<Result<Vec<_>, _>>()?;
    // `Bytes`, as the daemon's reader hands them over: TLS payloads share the record.
    let raw: Vec<Bytes> = events.iter().map(|e| Bytes::from(encode(e))).collect();
    let bytes: usize = raw.iter().map(Bytes::len).sum();
    let payload: usize = events
        .iter()
        .map(|e| if let guard_core::events::Event::TlsData(d) = e { d.data.len() } else { 0 })
        .sum();

    let (mut exchanges, mut best) = (0usize, f64::MAX);
    for _ in 0..repeat {
        let mut engine = Engine::new(EngineConfig::default());
        let mut out = Outputs::default();
        exchanges = 0;
        let t = Instant::now();
        for r in &raw {
            out.clear();
            engine.push_record(r, std::time::SystemTime::UNIX_EPOCH, &mut NoLookup, &mut out)?;
            exchanges += out.governed.iter().filter(|x| matches!(x, Governed::Exchange { .. })).count();
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{} events ({:.1} MB of records, {:.1} MB of TLS plaintext, {exchanges} exchanges), best of {repeat}: \
         {:.0} events/s, {:.0} MB/s of records, {:.0} MB/s of plaintext\n",
        events.len(),
        bytes as f64 / 1e6,
        payload as f64 / 1e6,
        events.len() as f64 / best,
        bytes as f64 / best / 1e6,
        payload as f64 / best / 1e6,
    );
    Ok(())
}
