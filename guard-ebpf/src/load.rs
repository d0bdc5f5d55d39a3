//! The library-load stop (issue 17): a process that maps a file for execution that guard has not
//! analysed (a `.node` addon extracted at first run and loaded with `dlopen`, a container's own
//! libssl) is stopped before it can run a byte of it, while guard finds the file's TLS
//! functions and attaches its probes. The uprobes go into the mapping that already exists.
//!
//! The stop is queued at `sys_enter_mmap` and lands as the call returns to user mode, so the
//! mapping is complete and never runs before guard answers. Every `mmap` pays one array read;
//! one with `PROT_EXEC` of a file pays the fd table walk and one `KNOWN_FILES` lookup.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns},
    macros::{map, tracepoint},
    maps::LruHashMap,
    programs::TracePointContext,
};
use guard_common::gate::{CTL_LOAD_STOP, FileKey, KNOWN_FILES_MAX, LoadStop, STOP_LOAD, StopEvent};

use crate::{gate, globals, task::{self, read}};

/// Files guard has analysed, written by the daemon as it analyses them.
#[map]
pub static KNOWN_FILES: LruHashMap<FileKey, u8> = LruHashMap::with_max_entries(KNOWN_FILES_MAX, 0);

const PROT_EXEC: u64 = 4;
const MAP_ANONYMOUS: u64 = 0x20;

#[tracepoint]
pub fn sys_enter_mmap(ctx: TracePointContext) -> u32 {
    let _ = try_mmap(&ctx);
    0
}

#[inline(always)]
fn try_mmap(ctx: &TracePointContext) -> Result<(), i64> {
    if !gate::ctl(CTL_LOAD_STOP) {
        return Ok(());
    }
    // SAFETY (all three): within the syscall tracepoint record's argument array
    // (addr, len, prot, flags, fd, off after 16 bytes of common fields and the syscall number).
    let prot = unsafe { ctx.read_at::<u64>(16 + 8 * 2) }.map_err(i64::from)?;
    let flags = unsafe { ctx.read_at::<u64>(16 + 8 * 3) }.map_err(i64::from)?;
    let fd = unsafe { ctx.read_at::<u64>(16 + 8 * 4) }.map_err(i64::from)? as i64;
    if prot & PROT_EXEC == 0 || flags & MAP_ANONYMOUS != 0 || fd < 0 {
        return Ok(());
    }
    let id = bpf_get_current_pid_tgid();
    let (tid, tgid) = (id as u32, (id >> 32) as u32);
    if tgid == globals::self_tgid() {
        return Ok(());
    }
    let file = task::file_of_fd(fd)?;
    let inode: u64 = read(file, globals::file_f_inode())?;
    let key = FileKey { ino: read(inode, globals::inode_i_ino())?, dev: read(read::<u64>(inode, globals::inode_i_sb())?, globals::sb_s_dev())?, _pad: 0 };
    // SAFETY: the value is only tested.
    if unsafe { KNOWN_FILES.get(&key) }.is_some() {
        return Ok(());
    }
    // A file with no name (a memfd a JIT maps, a deleted file) is no library a rescan could find
    // either; stopping at each would cost such a program a stop per mapping.
    if read::<u32>(inode, globals::inode_i_nlink())? == 0 {
        return Ok(());
    }
    let me = task::current();
    if task::shell_job(me)? {
        return Ok(());
    }
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let stop = StopEvent {
        enter_ns: now,
        stopped_ns: now,
        start_ns: task::process_start_time(me).unwrap_or(0),
        tid,
        tgid,
        slot: 0,
        uid: bpf_get_current_uid_gid() as u32,
        root: 0,
        scope_flags: STOP_LOAD,
    };
    // Another thread of the process already stopped: the whole group stops with it.
    gate::stop_current(&stop, &LoadStop { stop, file: key, fd: fd as u32, _pad: 0 }, BPF_NOEXIST as u64);
    Ok(())
}
