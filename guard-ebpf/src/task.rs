//! Reads from `struct task_struct` at offsets the loader found in the kernel's BTF.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};

use crate::globals;

/// The `T` at `base + off` in kernel memory; a null `base` is an error.
#[inline(always)]
pub fn read<T>(base: u64, off: u32) -> Result<T, i64> {
    if base == 0 {
        return Err(0);
    }
    // SAFETY: reading kernel memory through the checked helper; a bad address returns an error.
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const T) }.map_err(|e| e as i64)
}

#[inline(always)]
pub fn current() -> u64 {
    // SAFETY: no preconditions.
    unsafe { bpf_get_current_task() }
}

#[inline(always)]
pub fn tgid(task: u64) -> Result<u32, i64> {
    read::<i32>(task, globals::task_tgid()).map(|v| v as u32)
}

#[inline(always)]
pub fn pid(task: u64) -> Result<u32, i64> {
    read::<i32>(task, globals::task_pid()).map(|v| v as u32)
}

#[inline(always)]
pub fn start_time(task: u64) -> Result<u64, i64> {
    read::<u64>(task, globals::task_start_boottime())
}

/// The start time of the task's process (its thread group leader): a thread that forks or is
/// the last to exit has its own, later start time, which would name no process.
#[inline(always)]
pub fn process_start_time(task: u64) -> Result<u64, i64> {
    let leader: u64 = read(task, globals::task_group_leader())?;
    start_time(leader)
}

#[inline(always)]
pub fn exit_code(task: u64) -> Result<i32, i64> {
    read::<i32>(task, globals::task_exit_code())
}

/// The `struct file` the current task has open as `fd`.
#[inline(always)]
pub fn file_of_fd(fd: i64) -> Result<u64, i64> {
    if fd < 0 {
        return Err(0);
    }
    let files: u64 = read(current(), globals::task_files())?;
    let fdt: u64 = read(files, globals::files_fdt())?;
    let max: u32 = read(fdt, globals::fdt_max_fds())?;
    if fd as u64 >= max as u64 {
        return Err(0);
    }
    let fds: u64 = read(fdt, globals::fdt_fd())?;
    nonzero(read(fds, 8 * fd as u32)?)
}

#[inline(always)]
fn nonzero(p: u64) -> Result<u64, i64> {
    if p == 0 { Err(0) } else { Ok(p) }
}

/// Whether a job-control shell may be waiting on this process: it has a controlling terminal
/// and its process group is not its parent's (a shell puts each job in a group of its own).
/// Such a shell would see a stop (`waitpid(WUNTRACED)`), report the job as stopped and take the
/// terminal back; a stop is never worth that.
#[inline(always)]
pub fn shell_job(task: u64) -> Result<bool, i64> {
    let signal: u64 = read(task, globals::task_signal())?;
    let tty: u64 = read(signal, globals::signal_tty())?;
    if tty == 0 {
        return Ok(false);
    }
    let parent: u64 = read(task, globals::task_real_parent())?;
    let parent_signal: u64 = read(parent, globals::task_signal())?;
    // `pids[PIDTYPE_PGID]`: the `struct pid` of the process group.
    const PGID: u32 = 2 * 8;
    let pgrp: u64 = read(signal, globals::signal_pids() + PGID)?;
    let parent_pgrp: u64 = read(parent_signal, globals::signal_pids() + PGID)?;
    Ok(pgrp != parent_pgrp)
}

/// The parent process id (`real_parent->tgid`).
#[inline(always)]
pub fn ppid(task: u64) -> Result<u32, i64> {
    let parent: u64 = read(task, globals::task_real_parent())?;
    tgid(parent)
}
