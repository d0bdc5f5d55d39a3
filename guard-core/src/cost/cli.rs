//! `guard prices [--json]` as a function of the table and an output, so the binary's clap wiring
//! stays thin and the text is testable.

use std::io::Write;

use super::{Entry, PriceTable, Rates};

/// The output could not be written.
pub const EXIT_WRITE: i32 = 2;

/// Prints the effective table: one JSON document, or a line per entry (and one more per long
/// context tier) under a dated header.
pub fn list(table: &PriceTable, json: bool, out: &mut dyn Write) -> i32 {
    let written = if json { write_json(table, out) } else { write_text(table, out) };
    if written.is_err() { EXIT_WRITE } else { 0 }
}

fn write_json(table: &PriceTable, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, table)?;
    writeln!(out)
}

fn write_text(table: &PriceTable, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "prices updated {} (USD per million tokens; first match wins)", table.updated)?;
    for (name, url) in &table.sources {
        writeln!(out, "source {name}: {url}")?;
    }
    writeln!(
        out,
        "{:<40} {:>8} {:>10} {:>11} {:>11} {:>8}  {:<8} {:<34} match",
        "model", "input", "cache_read", "cache_write", "write_1h", "output", "origin", "providers"
    )?;
    for e in &table.models {
        write_entry(e, out)?;
    }
    Ok(())
}

fn write_entry(e: &Entry, out: &mut dyn Write) -> std::io::Result<()> {
    let p = &e.price;
    // The names the price files use (serde's).
    let providers: Vec<String> =
        p.providers.iter().filter_map(|p| serde_json::to_value(p).ok()?.as_str().map(str::to_owned)).collect();
    writeln!(out, "{:<40} {}  {:<8} {:<34} {}", p.name, rates(&p.rates()), e.origin, providers.join(","), p.pattern)?;
    if let Some(l) = &p.long_context {
        writeln!(out, "{:<40} {}", format!("  prompt > {} tokens", l.above), rates(&l.rates()))?;
    }
    Ok(())
}

fn rates(r: &Rates) -> String {
    format!("{:>8} {:>10} {:>11} {:>11} {:>8}", r.input, r.cache_read, r.cache_write(), r.cache_write_1h(), r.output)
}
