//! Output to the ring buffer (`maps::EVENTS`). Every record leaves through here, so a full ring
//! is always counted (`LossSlot::RingFull`), and when the reader is woken is decided in one place.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    maps::{lpm_trie::Key, ring_buf::RingBufEntry},
};
use guard_common::event::{COMM_LEN, LossSlot};

use crate::maps::{EVENTS, WAKE_NAMES, count_loss};

/// Unread bytes in the ring past which bulk data wakes the reader at once.
const WAKE_AT: u64 = 256 * 1024;

/// When a record wakes the reader.
#[derive(Clone, Copy)]
pub enum Wake {
    /// No wake-up of its own: the reader's 20 ms drain (or the next wake-up) takes it. The
    /// kernel's default woke the reader for nearly every record of a fork+exec loop, five
    /// wake-ups of the reader and the engine per exec (issue 16).
    Default,
    /// At once, even when bulk data is waiting unread.
    Now,
    /// Bulk TLS data: only once `WAKE_AT` bytes are waiting. The reader also drains on a short
    /// timer; a wake-up per record made the daemon's cost per small record mostly context
    /// switches.
    Bulk,
}

impl Wake {
    #[inline(always)]
    fn flags(self) -> u64 {
        let f = match self {
            Self::Now => BPF_RB_FORCE_WAKEUP,
            Self::Default | Self::Bulk if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= WAKE_AT => BPF_RB_FORCE_WAKEUP,
            Self::Default | Self::Bulk => BPF_RB_NO_WAKEUP,
        };
        f as u64
    }
}

/// How an exec record of the program named `comm` wakes the reader: at once when the daemon
/// reads its cwd (from /proc, before a short-lived command is gone), else with the next drain.
#[inline(always)]
pub fn exec_wake(comm: &[u8; COMM_LEN]) -> Wake {
    let key = Key::new((COMM_LEN * 8) as u32, *comm);
    if WAKE_NAMES.get(&key).is_some() { Wake::Now } else { Wake::Default }
}

/// Room for one `T`, to be filled in place and then [`submit`]ted.
#[inline(always)]
pub fn reserve<T: 'static>() -> Result<RingBufEntry<T>, i64> {
    EVENTS.reserve::<T>(0).ok_or_else(|| {
        count_loss(LossSlot::RingFull);
        0i64
    })
}

#[inline(always)]
pub fn submit<T: 'static>(slot: RingBufEntry<T>, wake: Wake) {
    slot.submit(wake.flags());
}

/// Sends a small record built on the stack.
#[inline(always)]
pub fn send<T: 'static>(record: T) -> Result<(), i64> {
    let mut slot = reserve::<T>()?;
    slot.write(record);
    submit(slot, Wake::Default);
    Ok(())
}

/// Copies the first `len` bytes of a large record (built in per-CPU scratch) into the ring: its
/// header and the used part of its trailing buffer.
#[inline(always)]
pub fn send_head<T>(record: &T, len: usize, wake: Wake) -> Result<(), i64> {
    let len = if len < size_of::<T>() { len } else { size_of::<T>() };
    // SAFETY: `record` is a valid `T` and `len` is at most its size.
    let bytes = unsafe { core::slice::from_raw_parts((record as *const T).cast::<u8>(), len) };
    EVENTS.output::<[u8]>(bytes, wake.flags()).map_err(|e| {
        count_loss(LossSlot::RingFull);
        e as i64
    })
}
