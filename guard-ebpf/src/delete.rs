//! Deletions by processes in an agent's tree (`guard_common::delete`): the paths they remove, in
//! full, their place, and the kill when a protected place is hit and deletions are enforced.
//!
//! The cost for a process outside every agent tree is one array read and one hash lookup per
//! unlink, rmdir or rename. For an agent's process the kernel builds each operand's absolute
//! path at entry, while the directory it names still exists: `bpf_d_path` is refused for
//! tracepoints, so the directory (`dfd`'s file or the cwd) is walked up through its dentries
//! and mounts, as `d_path` does, at offsets the loader read from BTF.

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        generated::{bpf_loop, bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user_str, bpf_send_signal},
    },
    macros::{map, tracepoint},
    maps::{HashMap, LpmTrie, PerCpuArray, lpm_trie::Key},
    programs::TracePointContext,
};
use aya_ebpf::cty::c_void;
use guard_common::{
    delete::{
        DEL_DIR, DEL_DOTDOT, DEL_EXCHANGE, DEL_KILLED, DEL_NOREPLACE, DEL_PROVISIONAL, DEL_RELATIVE, DEL_TRUNCATED,
        DELETES_PENDING_MAX, DeleteEvent, DeleteSyscall, PATH_DEPTH, PLACE_KEY_LEN, PLACES_MAX, PlaceValue,
    },
    event::{EventKind, Header, LossSlot, PATH_LEN},
    gate::{CTL_DELETE_KILL, CTL_DELETE_ON, SCOPE_PROVISIONAL},
};

use crate::{
    gate::{self, AGENT_TGIDS},
    globals,
    maps::count_loss,
    ring::{self, Wake},
    task::{self, read},
};

/// Path prefixes and their places, filled by the daemon.
#[map]
pub static PLACES: LpmTrie<[u8; PLACE_KEY_LEN], PlaceValue> = LpmTrie::with_max_entries(PLACES_MAX, 0);

/// A deletion from entry to exit, by thread: the record is sent once its result is known.
#[map]
static DELETES_PENDING: HashMap<u32, DeleteEvent> = HashMap::with_max_entries(DELETES_PENDING_MAX, 0);

#[map]
static DELETE_SCRATCH: PerCpuArray<DeleteEvent> = PerCpuArray::with_max_entries(1, 0);

/// Room to build one path. Its head is an LPM key (`prefix_len`, then the first `PATH_LEN` bytes
/// of `data`); the rest of `data` is slack, so every write at a masked offset stays in bounds.
#[repr(C)]
pub struct PathBuild {
    prefix_len: u32,
    data: [u8; BUILD_LEN],
    dentries: [u64; PATH_DEPTH as usize],
}

const BUILD_LEN: usize = 1024;
/// Offsets are masked with this before each write (the write itself is at most `NAME_READ`).
const OFF_MASK: usize = 511;
const NAME_READ: u32 = 256;

#[map]
static PATH_SCRATCH: PerCpuArray<PathBuild> = PerCpuArray::with_max_entries(1, 0);

const AT_FDCWD: i64 = -100;
const AT_REMOVEDIR: u64 = 0x200;
const RENAME_NOREPLACE: u64 = 1;
const RENAME_EXCHANGE: u64 = 2;
const SIGKILL: u32 = 9;

/// Argument `i` of a syscall tracepoint record (8 bytes of common fields, `__syscall_nr` padded
/// to 8, then one u64 per argument).
#[inline(always)]
fn arg(ctx: &TracePointContext, i: usize) -> Result<u64, i64> {
    // SAFETY: within the syscall tracepoint record's argument array.
    unsafe { ctx.read_at::<u64>(16 + 8 * i) }.map_err(i64::from)
}

/// One program for the six syscalls, told apart by the record's syscall number: the path walk
/// is then verified once, not once per syscall (the verifier's time is guard's start-up time).
#[tracepoint]
pub fn sys_enter_delete(ctx: TracePointContext) -> u32 {
    let _ = try_enter(&ctx);
    0
}

fn try_enter(ctx: &TracePointContext) -> Result<(), i64> {
    // SAFETY: `__syscall_nr` follows the 8 bytes of common fields in every syscall record.
    let nr = unsafe { ctx.read_at::<i32>(8) }.map_err(i64::from)? as i64;
    let a = |i| arg(ctx, i);
    let cwd = |p: u64| (AT_FDCWD, p);
    let (syscall, flags, first, second) = match nr {
        NR_UNLINK => (DeleteSyscall::Unlink, 0, cwd(a(0)?), None),
        NR_RMDIR => (DeleteSyscall::Rmdir, DEL_DIR, cwd(a(0)?), None),
        NR_UNLINKAT => {
            let flags = if a(2)? & AT_REMOVEDIR != 0 { DEL_DIR } else { 0 };
            (DeleteSyscall::Unlinkat, flags, (a(0)? as i32 as i64, a(1)?), None)
        }
        NR_RENAME => (DeleteSyscall::Rename, 0, cwd(a(0)?), Some(cwd(a(1)?))),
        NR_RENAMEAT | NR_RENAMEAT2 => {
            let mut flags = 0;
            if nr == NR_RENAMEAT2 {
                let f = a(4)?;
                if f & RENAME_NOREPLACE != 0 {
                    flags |= DEL_NOREPLACE;
                }
                if f & RENAME_EXCHANGE != 0 {
                    flags |= DEL_EXCHANGE;
                }
            }
            let syscall = if nr == NR_RENAMEAT2 { DeleteSyscall::Renameat2 } else { DeleteSyscall::Renameat };
            (syscall, flags, (a(0)? as i32 as i64, a(1)?), Some((a(2)? as i32 as i64, a(3)?)))
        }
        _ => return Ok(()),
    };
    enter(syscall, flags, first, second)
}

// x86-64 syscall numbers (the only architecture guard's programs are built for).
const NR_RENAME: i64 = 82;
const NR_RMDIR: i64 = 84;
const NR_UNLINK: i64 = 87;
const NR_RENAMEAT: i64 = 264;
const NR_UNLINKAT: i64 = 263;
const NR_RENAMEAT2: i64 = 316;

/// `io_uring_setup` by an agent's process: reported at once, since io_uring's unlinks and
/// renames never reach the tracepoints above.
#[tracepoint]
pub fn sys_enter_io_uring_setup(_ctx: TracePointContext) -> u32 {
    let _ = try_io_uring();
    0
}

fn try_io_uring() -> Result<(), i64> {
    let ev = begin(DeleteSyscall::IoUringSetup, 0)?;
    ring::send_head(ev, core::mem::size_of::<DeleteEvent>(), Wake::Default)
}

/// The six syscalls' exits: the parked record goes out with its result.
#[tracepoint]
pub fn sys_exit_delete(ctx: TracePointContext) -> u32 {
    exit(&ctx)
}

/// The scratch record for an agent's process, its header filled; `Err` for everyone else.
#[inline(always)]
fn begin(syscall: DeleteSyscall, flags: u8) -> Result<&'static mut DeleteEvent, i64> {
    if !gate::ctl(CTL_DELETE_ON) {
        return Err(0);
    }
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    // SAFETY: the value is copied out at once.
    let scope = unsafe { AGENT_TGIDS.get(&tgid) }.copied().ok_or(0i64)?;
    let ev = DELETE_SCRATCH.get_ptr_mut(0).ok_or(0i64)?;
    // SAFETY: the per-CPU scratch value is ours for the duration of this program.
    let ev = unsafe { &mut *ev };
    ev.hdr = Header {
        kind: EventKind::Delete as u32,
        tid: id as u32,
        tgid,
        _pad: 0,
        // SAFETY: no preconditions.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
    };
    ev.ret = 0;
    ev.start_time_ns = task::process_start_time(task::current()).unwrap_or(0);
    ev.root = scope.root;
    ev.owner = 0;
    ev.syscall = syscall as u8;
    ev.flags = if scope.flags & SCOPE_PROVISIONAL != 0 { flags | DEL_PROVISIONAL } else { flags };
    ev.place = 0;
    ev.place2 = 0;
    ev.path_len = 0;
    ev.path2_len = 0;
    Ok(ev)
}

/// At entry: both paths built, placed and maybe enforced, then parked until the exit.
#[inline(always)]
fn enter(syscall: DeleteSyscall, flags: u8, first: (i64, u64), second: Option<(i64, u64)>) -> Result<(), i64> {
    let ev = begin(syscall, flags)?;
    // A raw pointer, never a reference held across `build`: its `bpf_loop` callbacks write the
    // same scratch through pointers of their own.
    let b = PATH_SCRATCH.get_ptr_mut(0).ok_or(0i64)?;
    let mut protect = false;

    let r = build(b, first.0, first.1);
    ev.flags |= r.flags;
    ev.path_len = r.len as u16;
    copy_path(&mut ev.path, b);
    if flags & DEL_DIR != 0 {
        as_dir(b, r.len);
    }
    if let Some(v) = place(b) {
        ev.place = v.place;
        ev.owner = v.owner;
        protect = v.protect != 0 && r.flags & DEL_DOTDOT == 0;
    }
    if let Some((dfd, p)) = second {
        let r = build(b, dfd, p);
        ev.flags |= r.flags;
        ev.path2_len = r.len as u16;
        copy_path(&mut ev.path2, b);
        let mut to = false;
        if let Some(v) = place(b) {
            ev.place2 = v.place;
            to = v.protect != 0 && r.flags & DEL_DOTDOT == 0;
        }
        // Into or out of a protected place: renames inside one are how its owners write it.
        protect = protect != to;
    }
    if protect && gate::ctl(CTL_DELETE_KILL) && ev.flags & (DEL_EXCHANGE | DEL_PROVISIONAL) == 0 {
        // The syscall in flight still completes: the kill lands on its return. One file per
        // thread is the bound (FACTS.md: 49 of 50 files survived a `shutil.rmtree`).
        // SAFETY: no preconditions; signals the current process.
        if unsafe { bpf_send_signal(SIGKILL) } == 0 {
            ev.flags |= DEL_KILLED;
        }
    }
    let tid = ev.hdr.tid;
    if DELETES_PENDING.insert(&tid, &*ev, 0).is_err() {
        count_loss(LossSlot::DeletePendingFull);
    }
    Ok(())
}

fn exit(ctx: &TracePointContext) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(ev) = DELETES_PENDING.get_ptr_mut(&tid) else { return 0 };
    // SAFETY: the entry is this thread's; only this thread's programs touch it.
    let ev = unsafe { &mut *ev };
    // SAFETY: `ret` follows the 8 bytes of common fields and the padded syscall number.
    ev.ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0);
    let _ = ring::send_head(ev, core::mem::size_of::<DeleteEvent>(), Wake::Default);
    let _ = DELETES_PENDING.remove(&tid);
    0
}

struct Built {
    len: usize,
    flags: u8,
}

/// Builds the absolute path of `path` (a user pointer) relative to `dfd` in `b.data`, and sets
/// `b.prefix_len` for the place lookup.
#[inline(always)]
fn build(b: *mut PathBuild, dfd: i64, path: u64) -> Built {
    // SAFETY (every deref of `b` below): the per-CPU scratch, ours for the duration of this
    // program; each access is a short one, none held across `walk`.
    let data = unsafe { (&raw mut (*b).data).cast::<u8>() };
    let mut flags = 0;
    // SAFETY: the helper bounds the write and checks the user address.
    let n = unsafe { bpf_probe_read_user_str(data.cast(), NAME_READ, path as *const _) };
    if n <= 0 {
        count_loss(LossSlot::DeletePathRead);
        unsafe { (*b).prefix_len = 0 };
        return Built { len: 0, flags: DEL_RELATIVE };
    }
    let mut len = (n - 1) as usize;
    if n as u32 >= NAME_READ {
        flags |= DEL_TRUNCATED;
    }
    if unsafe { *data } != b'/' {
        match dir_of(dfd).and_then(|(mnt, dentry)| walk(mnt, dentry)) {
            Ok(off) => {
                let off = off & OFF_MASK;
                unsafe { *data.add(off) = b'/' };
                let at = (off + 1) & OFF_MASK;
                // SAFETY: as above; the buffer has `NAME_READ` bytes of slack past any masked offset.
                let n = unsafe { bpf_probe_read_user_str(data.add(at).cast(), NAME_READ, path as *const _) };
                len = if n > 0 { at + (n - 1) as usize } else { at };
            }
            Err(_) => flags |= DEL_RELATIVE,
        }
    }
    if len >= PATH_LEN {
        flags |= DEL_TRUNCATED;
        len = PATH_LEN - 1;
    }
    if has_dotdot() {
        flags |= DEL_DOTDOT;
    }
    unsafe { (*b).prefix_len = if flags & DEL_RELATIVE != 0 { 0 } else { (len * 8) as u32 } };
    Built { len, flags }
}

/// The (vfsmount, dentry) of the directory `dfd` names: the cwd, or an open directory.
#[inline(always)]
fn dir_of(dfd: i64) -> Result<(u64, u64), i64> {
    let path_at = if dfd == AT_FDCWD {
        let fs: u64 = read(task::current(), globals::task_fs())?;
        fs + globals::fs_pwd() as u64
    } else {
        let file = task::file_of_fd(dfd)?;
        file + globals::file_f_path() as u64
    };
    let mnt: u64 = read(path_at, globals::path_mnt())?;
    let dentry: u64 = read(path_at, globals::path_dentry())?;
    Ok((mnt, dentry))
}

/// Writes `/a/b/c` for the directory (`mnt`, `dentry`) at the start of `b.data`; returns its
/// length (0 for the root, whose slash the caller adds).
///
/// Both loops are `bpf_loop` callbacks: the verifier checks a callback once, where an unrolled
/// walk cost it about a second per program and its million-instruction limit when inlined twice.
#[inline(always)]
fn walk(mnt: u64, dentry: u64) -> Result<usize, i64> {
    let mut c = Walk { mnt, dentry, used: 0, off: 0, state: WALKING };
    // SAFETY: the callback and its context (on this stack) live through the call.
    unsafe { bpf_loop(PATH_DEPTH, up_step as *mut c_void, (&raw mut c).cast(), 0) };
    // Deeper than the walk goes, or unreadable: a path without its top would name another place.
    if c.state != TOP {
        return Err(0);
    }
    c.state = WALKING;
    // SAFETY: as above.
    unsafe { bpf_loop(PATH_DEPTH, down_step as *mut c_void, (&raw mut c).cast(), 0) };
    if c.state == FAILED {
        return Err(0);
    }
    Ok(c.off as usize)
}

const WALKING: u64 = 0;
const TOP: u64 = 1;
const FAILED: u64 = 2;

#[repr(C)]
struct Walk {
    mnt: u64,
    dentry: u64,
    /// Slots of `PathBuild::dentries` filled on the way up.
    used: u64,
    /// Bytes written on the way down.
    off: u64,
    state: u64,
}

/// One step up: a dentry into the next slot, or 0 for a mount crossed. Returns 1 to stop.
extern "C" fn up_step(_i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `walk` passes its `Walk`.
    let c = unsafe { &mut *ctx.cast::<Walk>() };
    let Some(b) = PATH_SCRATCH.get_ptr_mut(0) else {
        c.state = FAILED;
        return 1;
    };
    match up(c) {
        Ok(Some(slot)) => {
            // SAFETY: the per-CPU scratch value is ours for the duration of this program.
            unsafe { (*b).dentries[c.used as usize & (PATH_DEPTH as usize - 1)] = slot };
            c.used += 1;
            0
        }
        Ok(None) => {
            c.state = TOP;
            1
        }
        Err(_) => {
            c.state = FAILED;
            1
        }
    }
}

/// The slot for the current step (`Some(0)`: a mount crossed), or `None` at the root.
#[inline(always)]
fn up(c: &mut Walk) -> Result<Option<u64>, i64> {
    let mnt_root: u64 = read(c.mnt, globals::vfsmount_mnt_root())?;
    if c.dentry == mnt_root {
        let mount = c.mnt - globals::mount_mnt() as u64;
        let parent: u64 = read(mount, globals::mount_mnt_parent())?;
        if parent == mount {
            return Ok(None);
        }
        c.dentry = read(mount, globals::mount_mnt_mountpoint())?;
        c.mnt = parent + globals::mount_mnt() as u64;
        return Ok(Some(0));
    }
    let up: u64 = read(c.dentry, globals::dentry_d_parent())?;
    if up == c.dentry {
        return Ok(None);
    }
    let slot = c.dentry;
    c.dentry = up;
    Ok(Some(slot))
}

/// One name on the way down, root first. Returns 1 to stop.
extern "C" fn down_step(i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `walk` passes its `Walk`.
    let c = unsafe { &mut *ctx.cast::<Walk>() };
    if i >= c.used || c.off as usize >= PATH_LEN {
        return 1;
    }
    let Some(b) = PATH_SCRATCH.get_ptr_mut(0) else {
        c.state = FAILED;
        return 1;
    };
    // SAFETY: as in `up_step`.
    let b = unsafe { &mut *b };
    let d = b.dentries[(c.used - 1 - i) as usize & (PATH_DEPTH as usize - 1)];
    if d == 0 {
        return 0;
    }
    let Ok(name) = read::<u64>(d, globals::dentry_d_name() + globals::qstr_name()) else {
        c.state = FAILED;
        return 1;
    };
    let at = c.off as usize & OFF_MASK;
    b.data[at] = b'/';
    // SAFETY: kernel string through the checked helper, bounded by the slack after `at + 1`.
    let n = unsafe { bpf_probe_read_kernel_str(b.data.as_mut_ptr().add(at + 1).cast(), NAME_READ, name as *const _) };
    if n <= 0 {
        c.state = FAILED;
        return 1;
    }
    // The slash and the name, without its NUL.
    c.off = (at + (n as usize & OFF_MASK)) as u64;
    0
}

/// Whether the path (its first `PATH_LEN` bytes) has a `..` component.
#[inline(always)]
fn has_dotdot() -> bool {
    let mut found: u64 = 0;
    // SAFETY: as in `walk`.
    unsafe { bpf_loop((PATH_LEN - 3) as u32, dotdot_step as *mut c_void, (&raw mut found).cast(), 0) };
    found == 1
}

extern "C" fn dotdot_step(i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `has_dotdot` passes its flag.
    let found = unsafe { &mut *ctx.cast::<u64>() };
    let Some(b) = PATH_SCRATCH.get_ptr_mut(0) else { return 1 };
    // SAFETY: as in `up_step`.
    let d = unsafe { &(*b).data };
    let i = i as usize & (PATH_LEN - 1);
    if d[i] == 0 {
        return 1;
    }
    if d[i] == b'/' && d[i + 1] == b'.' && d[i + 2] == b'.' && matches!(d[i + 3], b'/' | 0) {
        *found = 1;
        return 1;
    }
    0
}

#[inline(always)]
fn place(b: *mut PathBuild) -> Option<PlaceValue> {
    // SAFETY: the scratch, as in `build`.
    if unsafe { (*b).prefix_len } == 0 {
        return None;
    }
    // SAFETY: `PathBuild` starts with an LPM key of `PLACE_KEY_LEN` bytes of data (repr(C)).
    let key = unsafe { &*b.cast::<Key<[u8; PLACE_KEY_LEN]>>() };
    PLACES.get(key).copied()
}

/// A directory is matched as its own content, with a trailing slash: `rmdir ~/.ssh` is in the
/// protected directory, not merely in the home above it (as the engine classifies it).
#[inline(always)]
fn as_dir(b: *mut PathBuild, len: usize) {
    // SAFETY: the scratch, as in `build`; `len < PATH_LEN` leaves room for the slash.
    unsafe {
        if (*b).prefix_len != 0 && len + 1 < PATH_LEN {
            (*b).data[len & (PATH_LEN - 1)] = b'/';
            (*b).prefix_len = ((len + 1) * 8) as u32;
        }
    }
}

#[inline(always)]
fn copy_path(dst: &mut [u8; PATH_LEN], b: *mut PathBuild) {
    // SAFETY: both are PATH_LEN bytes of map memory.
    unsafe { bpf_probe_read_kernel(dst.as_mut_ptr().cast(), PATH_LEN as u32, (&raw const (*b).data).cast()) };
}
