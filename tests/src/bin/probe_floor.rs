//! Attaches the empty uprobe/uretprobe pair to SSL_write and SSL_read in the given library (where
//! guard hooks them), prints `ready`, and holds them until stdin closes. The floor condition of
//! `cargo xtask bench probe`.

use std::io::Read as _;

use aya::programs::{UProbe, uprobe::UProbeScope};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lib = std::env::args().nth(1).ok_or("usage: probe_floor LIBSSL")?;
    let mut ebpf = aya::Ebpf::load(guard::EBPF_OBJECT)?;
    for name in ["floor_entry", "floor_return"] {
        let p: &mut UProbe = ebpf.program_mut(name).ok_or("program missing")?.try_into()?;
        p.load()?;
        for func in ["SSL_write", "SSL_read"] {
            p.attach(func, &lib, UProbeScope::AllProcesses)?;
        }
    }
    println!("ready");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    Ok(())
}
