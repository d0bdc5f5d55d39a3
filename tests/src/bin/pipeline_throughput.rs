//! Pipeline throughput over a recording (`guard run --record`), for `cargo xtask bench`: the
//! events are turned back into kernel record bytes, then decoded and pushed through the pipeline
//! and the governor, on one thread, REPEAT times. Prints events/s and MB/s.
//!
//! usage: pipeline_throughput RECORDING [REPEAT]

use std::{io::BufReader, sync::Arc, time::Instant};

use guard::{
    events::{decode, encode::encode, record::read_events},
    govern::{Governed, Governor, Host, NoLookup},
    pipeline::{Limits, Output, Pipeline},
    process::Catalog,
    rules::RuleSet,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: pipeline_throughput RECORDING [REPEAT]")?;
    let repeat: u32 = args.next().map(|r| r.parse()).transpose()?.unwrap_or(10);
    let events = read_events(BufReader::new(std::fs::File::open(&path)?)).collect::<Result<Vec<_>, _>>()?;
    let raw: Vec<Vec<u8>> = events.iter().map(encode).collect();
    let bytes: usize = raw.iter().map(Vec::len).sum();
    let payload: usize = events
        .iter()
        .map(|e| if let guard::events::Event::TlsData(d) = e { d.data.len() } else { 0 })
        .sum();

    let catalog = Arc::new(Catalog::builtin());
    let (mut exchanges, mut best) = (0usize, f64::MAX);
    for _ in 0..repeat {
        let mut p = Pipeline::new(&Limits::default());
        let mut g = Governor::new(catalog.clone(), RuleSet::builtin(), Host::default());
        let (mut out, mut governed) = (Vec::new(), Vec::new());
        exchanges = 0;
        let t = Instant::now();
        for r in &raw {
            p.push(decode(r)?, &mut out);
            for o in out.drain(..) {
                if !matches!(o, Output::Stream(_)) {
                    g.push(&o, std::time::SystemTime::UNIX_EPOCH, &mut NoLookup, &mut governed);
                }
            }
            exchanges += governed.drain(..).filter(|x| matches!(x, Governed::Exchange { .. })).count();
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
