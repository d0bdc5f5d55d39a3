//! Names of the eBPF maps that userspace opens.
//!
//! aya-ebpf's `#[map]` takes its name only as a literal (it becomes the static's export name), so
//! guard-ebpf names each static after its map; guard-userspace's loader uses these constants, and
//! its test `every_map_name_is_a_map_of_the_object` checks each against the built object.

/// The ring buffer every record goes through.
pub const EVENTS: &str = "EVENTS";
/// Program names (an LPM trie on `comm`) whose exec record wakes the reader at once.
pub const WAKE_NAMES: &str = "WAKE_NAMES";
/// Per-CPU loss counters, indexed by `event::LossSlot`.
pub const LOSSES: &str = "LOSSES";
/// Processes whose sockets the rustls (AEAD) programs watch.
pub const AEAD_TRACKED: &str = "AEAD_TRACKED";

/// The exec gate (`crate::gate`): agent tgids, exec tickets, stops, stop records, switches.
pub const AGENT_TGIDS: &str = "AGENT_TGIDS";
pub const GATE_EXECS: &str = "GATE_EXECS";
pub const GATE_STOPPED: &str = "GATE_STOPPED";
pub const GATE_EVENTS: &str = "GATE_EVENTS";
pub const GATE_CTL: &str = "GATE_CTL";
/// What the request pause does with a connection's next writes (`crate::gate::ConnKey`).
pub const REQ_CONNS: &str = "REQ_CONNS";

/// Path prefixes and their places (`crate::delete::PlaceValue`), an LPM trie the daemon fills.
pub const PLACES: &str = "PLACES";
/// `guard_common::gate::FileKey` of every file guard has analysed (library loads, issue 17).
pub const KNOWN_FILES: &str = "KNOWN_FILES";

pub const ALL: [&str; 12] = [EVENTS, WAKE_NAMES, LOSSES, AEAD_TRACKED, AGENT_TGIDS, GATE_EXECS, GATE_STOPPED, GATE_EVENTS, GATE_CTL, REQ_CONNS, PLACES, KNOWN_FILES];
