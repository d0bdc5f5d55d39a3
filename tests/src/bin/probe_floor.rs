//! Attaches the empty probes where guard would attach its own in FILE, prints `ready`, and holds
//! them until stdin closes: the floor condition of `cargo xtask bench probe` and `bench hooks`.
//!
//! FILE is analysed by guard's own hook finder (dynsym, symtab, `.gopclntab`, structural), so the
//! floor has guard's offsets and guard's kinds of probe: `floor_entry` wherever guard puts an
//! entry program, plus `floor_return` (a uretprobe) wherever guard adds its return program. Go
//! therefore gets no uretprobe here either: an entry probe on each RET of `(*Conn).Read`.

use std::io::Read as _;

use aya::programs::{
    UProbe,
    uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope},
};
use guard::testing::{TLS_PROGRAMS, inspect};
use guard_core::hooks::{Analysis, cache::Cache};

/// guard's programs plus the empty pair (guard-ebpf's `bench-floor` feature), built by this
/// crate's build.rs when `GUARD_BENCH_FLOOR=1`; empty otherwise.
static FLOOR_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/guard"));

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = std::env::args().nth(1).ok_or("usage: probe_floor FILE")?;
    let found = match inspect(file.as_ref(), &mut Cache::default())? {
        Analysis::Found(found) => found,
        Analysis::Miss(miss) => return Err(format!("{file}: no hooks ({miss:?})").into()),
    };
    if FLOOR_OBJECT.is_empty() {
        return Err("built without the floor programs: build with GUARD_BENCH_FLOOR=1 (cargo xtask bench does)".into());
    }
    let mut ebpf = aya::Ebpf::load(FLOOR_OBJECT)?;
    for name in ["floor_entry", "floor_return"] {
        let p: &mut UProbe = ebpf.program_mut(name).ok_or("program missing")?.try_into()?;
        p.load()?;
    }
    let mut placed = 0;
    for hook in &found.hooks {
        let &(_, _, ret) = TLS_PROGRAMS.iter().find(|t| t.0 == hook.kind).ok_or("hook kind without a program")?;
        for name in ["floor_entry", "floor_return"].into_iter().take(if ret.is_some() { 2 } else { 1 }) {
            let p: &mut UProbe = ebpf.program_mut(name).ok_or("program missing")?.try_into()?;
            let point = UProbeAttachPoint { location: UProbeAttachLocation::AbsoluteOffset(hook.offset), cookie: None };
            p.attach(point, &file, UProbeScope::AllProcesses)?;
            placed += 1;
        }
    }
    println!("ready: {placed} empty probes on {} hooks ({:?})", found.hooks.len(), found.strategy);
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    Ok(())
}
