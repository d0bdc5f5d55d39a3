//! Process lifecycle: exec, fork and exit tracepoints, and argv at `execve`/`execveat` entry with
//! the result at exit, so a failed exec is never reported as run.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user, bpf_probe_read_user_str},
    },
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use guard_common::{
    config::FIELD_ABSENT,
    event::{
        ARG_MAX, ARGS_CAP, ARGV_GATED, ARGV_READ_FAILED, ARGV_TRUNCATED_ARG, ARGV_TRUNCATED_BYTES,
        ARGV_TRUNCATED_COUNT, EXEC_ARGV_FIXED, EventKind, ExecEvent, ExecResultEvent, ExitEvent,
        ForkEvent, Header, LossSlot, MAX_ARGS, PATH_LEN, SYSCALL_EXECVE, SYSCALL_EXECVEAT,
    },
};

use crate::{
    gate, globals,
    maps::{ARGV_SCRATCH, count_loss},
    ring::{self, Wake},
    task,
};

/// Offsets of the pointer arguments in the syscall tracepoint records (stable ABI:
/// 8 bytes of common fields, `__syscall_nr` padded to 8, then one u64 per argument).
const EXECVE_FILENAME: usize = 16;
const EXECVE_ARGV: usize = 24;
const EXECVEAT_FILENAME: usize = 24;
const EXECVEAT_ARGV: usize = 32;
const SYSCALL_RET: usize = 16;

#[inline(always)]
fn header(kind: EventKind) -> Header {
    let id = bpf_get_current_pid_tgid();
    Header {
        kind: kind as u32,
        tid: id as u32,
        tgid: (id >> 32) as u32,
        _pad: 0,
        // SAFETY: no preconditions.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
    }
}

#[inline(always)]
fn is_self() -> bool {
    (bpf_get_current_pid_tgid() >> 32) as u32 == globals::self_tgid()
}

#[tracepoint]
pub fn sys_enter_execve(ctx: TracePointContext) -> u32 {
    let _ = try_enter_exec(&ctx, SYSCALL_EXECVE, EXECVE_FILENAME, EXECVE_ARGV);
    0
}

#[tracepoint]
pub fn sys_enter_execveat(ctx: TracePointContext) -> u32 {
    let _ = try_enter_exec(&ctx, SYSCALL_EXECVEAT, EXECVEAT_FILENAME, EXECVEAT_ARGV);
    0
}

#[tracepoint]
pub fn sys_exit_execve(ctx: TracePointContext) -> u32 {
    let _ = try_exit_exec(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_execveat(ctx: TracePointContext) -> u32 {
    let _ = try_exit_exec(&ctx);
    0
}

fn try_enter_exec(
    ctx: &TracePointContext,
    syscall: u32,
    filename_off: usize,
    argv_off: usize,
) -> Result<(), i64> {
    if is_self() {
        return Ok(());
    }
    // SAFETY: offsets within the syscall tracepoint record (see the constants above).
    let filename: u64 = unsafe { ctx.read_at(filename_off) }?;
    let argv: u64 = unsafe { ctx.read_at(argv_off) }?;
    let ev = ARGV_SCRATCH.get_ptr_mut(0).ok_or(0i64)?;
    // SAFETY: the per-CPU scratch value is ours for the duration of this program.
    let ev = unsafe { &mut *ev };
    let head = &mut ev.head;
    head.hdr = header(EventKind::ExecArgv);
    head.syscall = syscall;
    head.flags = 0;
    if gate::on_enter_exec(head.hdr.tid, head.hdr.tgid, bpf_get_current_uid_gid() as u32) {
        head.flags |= ARGV_GATED;
    }
    head.argc = 0;
    head.args_len = 0;
    // SAFETY: the helper bounds the write by its size argument and checks the user address.
    let n = unsafe {
        bpf_probe_read_user_str(
            head.filename.as_mut_ptr().cast(),
            PATH_LEN as u32,
            filename as *const _,
        )
    };
    head.filename_len = if n > 0 { (n - 1) as u32 } else { 0 };

    let mut off: usize = 0;
    let mut i: u32 = 0;
    while i < MAX_ARGS {
        let mut ptr: u64 = 0;
        // SAFETY: reads one pointer of the user's argv array through the checked helper.
        let r = unsafe {
            bpf_probe_read_user(
                (&mut ptr as *mut u64).cast(),
                8,
                (argv + 8 * i as u64) as *const _,
            )
        };
        if r < 0 {
            ev.head.flags |= ARGV_READ_FAILED;
            count_loss(LossSlot::ArgvRead);
            break;
        }
        if ptr == 0 {
            break;
        }
        if off >= ARGS_CAP {
            ev.head.flags |= ARGV_TRUNCATED_BYTES;
            break;
        }
        // The mask is a no-op (off < ARGS_CAP) that lets the verifier prove the bound.
        let dst = unsafe { ev.args.as_mut_ptr().add(off & (ARGS_CAP - 1)) };
        // SAFETY: writes at most ARG_MAX bytes; the buffer has ARGS_CAP + ARG_MAX bytes.
        let n = unsafe { bpf_probe_read_user_str(dst.cast(), ARG_MAX as u32, ptr as *const _) };
        if n <= 0 {
            ev.head.flags |= ARGV_READ_FAILED;
            count_loss(LossSlot::ArgvRead);
            break;
        }
        if n as usize >= ARG_MAX {
            ev.head.flags |= ARGV_TRUNCATED_ARG;
        }
        off += (n as usize) & (ARG_MAX * 2 - 1);
        ev.head.argc += 1;
        i += 1;
    }
    if i == MAX_ARGS {
        let mut ptr: u64 = 0;
        // SAFETY: as above; one more pointer tells whether argv went on.
        let r = unsafe {
            bpf_probe_read_user(
                (&mut ptr as *mut u64).cast(),
                8,
                (argv + 8 * MAX_ARGS as u64) as *const _,
            )
        };
        if r == 0 && ptr != 0 {
            ev.head.flags |= ARGV_TRUNCATED_COUNT;
        }
    }
    let len = off.min(ARGS_CAP + ARG_MAX);
    ev.head.args_len = len as u32;
    ring::send_head(ev, EXEC_ARGV_FIXED + len, Wake::Default)
}

fn try_exit_exec(ctx: &TracePointContext) -> Result<(), i64> {
    if is_self() {
        return Ok(());
    }
    // SAFETY: `ret` is at a fixed offset in every sys_exit record.
    let ret: i64 = unsafe { ctx.read_at(SYSCALL_RET) }?;
    let id = bpf_get_current_pid_tgid();
    let start = task::process_start_time(task::current()).unwrap_or(0);
    gate::on_exit_exec(id as u32, (id >> 32) as u32, ret, start);
    ring::send(ExecResultEvent { hdr: header(EventKind::ExecResult), ret })
}

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let _ = try_exec(&ctx);
    0
}

fn try_exec(ctx: &TracePointContext) -> Result<(), i64> {
    if is_self() {
        return Ok(());
    }
    let cur = task::current();
    let mut slot = ring::reserve::<ExecEvent>()?;
    let ev = slot.as_mut_ptr();
    // SAFETY: `ev` is the reserved slot, exclusively ours until submit/discard.
    let ev = unsafe { &mut *ev };
    ev.hdr = header(EventKind::Exec);
    // SAFETY: the offset comes from this kernel's tracepoint format file.
    ev.old_tid =
        unsafe { ctx.read_at::<i32>(globals::tp_exec_old_pid() as usize) }.unwrap_or(0) as u32;
    gate::on_exec_rekey(ev.old_tid, ev.hdr.tid);
    ev.ppid = task::ppid(cur).unwrap_or(0);
    ev.uid = bpf_get_current_uid_gid() as u32;
    ev.start_time_ns = task::process_start_time(cur).unwrap_or(0);
    ev.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    ev.filename_len = 0;
    // __data_loc: low 16 bits are the offset of the string in the record, high 16 its length.
    // SAFETY: as above.
    let loc = unsafe { ctx.read_at::<u32>(globals::tp_exec_filename() as usize) }.unwrap_or(0);
    let src = (ctx.as_ptr() as u64 + (loc & 0xffff) as u64) as *const _;
    // SAFETY: reads a kernel string from the tracepoint record, bounded by the buffer.
    let n =
        unsafe { bpf_probe_read_kernel_str(ev.filename.as_mut_ptr().cast(), PATH_LEN as u32, src) };
    if n > 0 {
        ev.filename_len = (n - 1) as u32;
    }
    // A program that can start a rule match wakes the reader even when bulk TLS data is waiting
    // unread: it reads the new program's cwd as this record arrives.
    let wake = ring::exec_wake(&ev.comm);
    ring::submit(slot, wake);
    Ok(())
}

/// A raw tracepoint, because it hands over the child's task: a new thread and a new process are
/// told apart by the child's pid and tgid, which the classic tracepoint does not carry.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> u32 {
    let _ = try_fork(&ctx);
    0
}

fn try_fork(ctx: &RawTracePointContext) -> Result<(), i64> {
    let child: u64 = ctx.arg(1);
    let child_tgid = task::tgid(child)?;
    if task::pid(child)? != child_tgid || is_self() {
        return Ok(());
    }
    let parent = task::current();
    gate::on_fork((bpf_get_current_pid_tgid() >> 32) as u32, child_tgid);
    ring::send(ForkEvent {
        hdr: header(EventKind::Fork),
        child_tgid,
        uid: bpf_get_current_uid_gid() as u32,
        child_start_time_ns: task::start_time(child).unwrap_or(0),
        parent_start_time_ns: task::process_start_time(parent).unwrap_or(0),
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    })
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let _ = try_exit(&ctx);
    0
}

fn try_exit(ctx: &TracePointContext) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    let (tid, tgid) = (id as u32, (id >> 32) as u32);
    let group_dead = match globals::tp_exit_group_dead() {
        // Kernels without the field: report the leader's exit.
        FIELD_ABSENT => tid == tgid,
        // SAFETY: the offset comes from this kernel's tracepoint format file.
        off => unsafe { ctx.read_at::<u8>(off as usize) }.unwrap_or(0) != 0,
    };
    if !group_dead || tgid == globals::self_tgid() {
        return Ok(());
    }
    gate::on_exit(tgid);
    let cur = task::current();
    ring::send(ExitEvent {
        hdr: header(EventKind::Exit),
        exit_code: task::exit_code(cur).unwrap_or(0),
        _pad: 0,
        start_time_ns: task::process_start_time(cur).unwrap_or(0),
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    })
}
