//! Names of the eBPF maps that userspace opens.
//!
//! aya-ebpf's `#[map]` takes its name only as a literal (it becomes the static's export name), so
//! guard-ebpf names each static after its map; guard-userspace's loader uses these constants, and
//! its test `every_map_name_is_a_map_of_the_object` checks each against the built object.

/// The ring buffer every record goes through.
pub const EVENTS: &str = "EVENTS";
/// Per-CPU loss counters, indexed by `event::LossSlot`.
pub const LOSSES: &str = "LOSSES";
/// Processes whose sockets the rustls (AEAD) programs watch.
pub const AEAD_TRACKED: &str = "AEAD_TRACKED";

pub const ALL: [&str; 3] = [EVENTS, LOSSES, AEAD_TRACKED];
