//! An empty uprobe/uretprobe pair: the cost floor that no probe can beat. Only the benchmarks
//! load these (`probe_floor`, for `cargo xtask bench probe` and `bench hooks`), so they are built
//! only with the `bench-floor` feature, into an object of guard-tests' own; the daemon's object
//! does not have them.

use aya_ebpf::{
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};

#[uprobe]
pub fn floor_entry(_ctx: ProbeContext) -> u32 {
    0
}

#[uretprobe]
pub fn floor_return(_ctx: RetProbeContext) -> u32 {
    0
}
