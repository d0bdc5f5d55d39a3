//! Reads from `struct task_struct` at offsets the loader found in the kernel's BTF.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};

use crate::globals;

#[inline(always)]
fn field<T>(task: u64, off: u32) -> Result<T, i64> {
    // SAFETY: reading kernel memory through the checked helper; a bad address returns an error.
    unsafe { bpf_probe_read_kernel((task + off as u64) as *const T) }.map_err(|e| e as i64)
}

#[inline(always)]
pub fn current() -> u64 {
    // SAFETY: no preconditions.
    unsafe { bpf_get_current_task() }
}

#[inline(always)]
pub fn tgid(task: u64) -> Result<u32, i64> {
    field::<i32>(task, globals::task_tgid()).map(|v| v as u32)
}

#[inline(always)]
pub fn pid(task: u64) -> Result<u32, i64> {
    field::<i32>(task, globals::task_pid()).map(|v| v as u32)
}

#[inline(always)]
pub fn start_time(task: u64) -> Result<u64, i64> {
    field::<u64>(task, globals::task_start_boottime())
}

/// The start time of the task's process (its thread group leader): a thread that forks or is
/// the last to exit has its own, later start time, which would name no process.
#[inline(always)]
pub fn process_start_time(task: u64) -> Result<u64, i64> {
    let leader: u64 = field(task, globals::task_group_leader())?;
    start_time(leader)
}

#[inline(always)]
pub fn exit_code(task: u64) -> Result<i32, i64> {
    field::<i32>(task, globals::task_exit_code())
}

/// The parent process id (`real_parent->tgid`).
#[inline(always)]
pub fn ppid(task: u64) -> Result<u32, i64> {
    let parent: u64 = field(task, globals::task_real_parent())?;
    tgid(parent)
}
