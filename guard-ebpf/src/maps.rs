//! Maps shared by the programs. aya-ebpf's `#[map]` takes only a literal name, so each static
//! is named after its map; the names userspace opens are `guard_common::maps`.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use guard_common::event::{COMM_LEN, ExecArgvEvent, LOSS_SLOTS, LossSlot, TlsDataEvent, TlsFunc};

/// All events. 16 MiB carried ~30k events/s of 4 KiB with no drops here (FACTS.md); the loader
/// may resize it from the config.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 << 20, 0);

/// The programs whose cwd the daemon reads (rule commands, wrappers, shells), by `comm`: their
/// exec record wakes the reader at once (`ring::exec_wake`). Filled by the loader; a 0-bit
/// prefix wakes for every program.
#[map]
pub static WAKE_NAMES: LpmTrie<[u8; COMM_LEN], u8> = LpmTrie::with_max_entries(1024, 0);

/// Loss counters, indexed by `guard_common::event::LossSlot`.
#[map]
pub static LOSSES: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOSS_SLOTS, 0);

/// Scratch space for the large records: too big for the 512-byte BPF stack.
#[map]
pub static TLS_SCRATCH: PerCpuArray<TlsDataEvent> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static ARGV_SCRATCH: PerCpuArray<ExecArgvEvent> = PerCpuArray::with_max_entries(1, 0);

/// Arguments of an SSL call in flight, by thread (`pid_tgid`), from entry to return.
#[map]
pub static TLS_CALLS: HashMap<u64, TlsCall> = HashMap::with_max_entries(16_384, 0);

/// Arguments of a Go `(*tls.Conn).Read` in flight, by goroutine: a goroutine that blocks may
/// resume on another thread, so the thread id cannot tie the return to its entry.
#[map]
pub static GO_CALLS: LruHashMap<GoKey, TlsCall> = LruHashMap::with_max_entries(16_384, 0);

/// Next stream offset per connection and direction. LRU so dead connections age out.
#[map]
pub static TLS_OFFSETS: LruHashMap<ConnKey, [u64; 2]> = LruHashMap::with_max_entries(65_536, 0);

#[repr(C)]
#[derive(Clone, Copy)]
pub struct TlsCall {
    pub conn: u64,
    pub buf: u64,
    /// `size_t *` out-parameter of the `_ex` variants (0 otherwise).
    pub len_ptr: u64,
    pub func: TlsFunc,
    /// `TLS13` for an AEAD open of a TLS 1.3 record (its content type is at the end).
    pub flags: u8,
    pub _pad: [u8; 2],
    /// The attach cookie of the entry probe (see `TlsDataEvent::target`).
    pub target: u32,
}

/// `TlsCall::flags`.
pub const TLS13: u8 = 1;
/// `TlsCall::flags`: the request pause stopped this write at its entry (`TLS_DATA_PAUSED`).
pub const TLS_CALL_PAUSED: u8 = 2;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ConnKey {
    pub tgid: u32,
    pub _pad: u32,
    pub conn: u64,
}

#[inline(always)]
pub fn count_loss(slot: LossSlot) {
    if let Some(c) = LOSSES.get_ptr_mut(slot as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU while the program runs.
        unsafe { *c += 1 };
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoKey {
    pub tgid: u32,
    pub _pad: u32,
    /// The goroutine (`g` pointer, in R14 under Go's register ABI on amd64).
    pub g: u64,
}
