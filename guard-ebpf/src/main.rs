//! guard's kernel programs. They capture and bound; they never parse. Each program is a thin
//! wrapper over a `try_*` function, and every failure is counted or dropped, never a panic.
#![no_std]
#![no_main]

mod aead;
mod delete;
mod exec;
// The benchmarks' empty probes: built only for them, never in the shipped object.
#[cfg(feature = "bench-floor")]
mod floor;
mod gate;
mod globals;
mod go;
mod load;
mod maps;
mod pause;
mod ring;
mod task;
mod tls;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable panic, so this is never linked into a loaded program.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
