//! Load-time constants (see guard_common::config). Written by the loader before verification, so
//! the verifier sees them as constants and prunes dead branches.

#[unsafe(no_mangle)]
static TASK_REAL_PARENT: u32 = 0;
#[unsafe(no_mangle)]
static TASK_TGID: u32 = 0;
#[unsafe(no_mangle)]
static TASK_PID: u32 = 0;
#[unsafe(no_mangle)]
static TASK_GROUP_LEADER: u32 = 0;
#[unsafe(no_mangle)]
static TASK_START_BOOTTIME: u32 = 0;
#[unsafe(no_mangle)]
static TASK_EXIT_CODE: u32 = 0;
#[unsafe(no_mangle)]
static TP_EXEC_FILENAME: u32 = 8;
#[unsafe(no_mangle)]
static TP_EXEC_OLD_PID: u32 = 16;
#[unsafe(no_mangle)]
static TP_EXIT_GROUP_DEAD: u32 = u32::MAX;
#[unsafe(no_mangle)]
static SELF_TGID: u32 = 0;

#[inline(always)]
fn get(v: &'static u32) -> u32 {
    // SAFETY: a valid static; volatile so the compiler does not fold the placeholder value.
    unsafe { core::ptr::read_volatile(v) }
}

#[inline(always)]
pub fn task_real_parent() -> u32 {
    get(&TASK_REAL_PARENT)
}
#[inline(always)]
pub fn task_tgid() -> u32 {
    get(&TASK_TGID)
}
#[inline(always)]
pub fn task_pid() -> u32 {
    get(&TASK_PID)
}
#[inline(always)]
pub fn task_group_leader() -> u32 {
    get(&TASK_GROUP_LEADER)
}
#[inline(always)]
pub fn task_start_boottime() -> u32 {
    get(&TASK_START_BOOTTIME)
}
#[inline(always)]
pub fn task_exit_code() -> u32 {
    get(&TASK_EXIT_CODE)
}
#[inline(always)]
pub fn tp_exec_filename() -> u32 {
    get(&TP_EXEC_FILENAME)
}
#[inline(always)]
pub fn tp_exec_old_pid() -> u32 {
    get(&TP_EXEC_OLD_PID)
}
#[inline(always)]
pub fn tp_exit_group_dead() -> u32 {
    get(&TP_EXIT_GROUP_DEAD)
}
#[inline(always)]
pub fn self_tgid() -> u32 {
    get(&SELF_TGID)
}

/// Offsets for the deletion programs' path walk (`crate::delete`) and the library-load stop
/// (`crate::load`), each `static NAME: u32` with
/// its getter.
macro_rules! offsets {
    ($($name:ident => $get:ident,)+) => {$(
        #[unsafe(no_mangle)]
        static $name: u32 = 0;
        #[inline(always)]
        pub fn $get() -> u32 {
            get(&$name)
        }
    )+};
}

offsets! {
    TASK_FS => task_fs,
    TASK_FILES => task_files,
    FS_PWD => fs_pwd,
    FILES_FDT => files_fdt,
    FDT_MAX_FDS => fdt_max_fds,
    FDT_FD => fdt_fd,
    FILE_F_PATH => file_f_path,
    PATH_MNT => path_mnt,
    PATH_DENTRY => path_dentry,
    DENTRY_D_PARENT => dentry_d_parent,
    DENTRY_D_NAME => dentry_d_name,
    QSTR_NAME => qstr_name,
    MOUNT_MNT => mount_mnt,
    MOUNT_MNT_PARENT => mount_mnt_parent,
    MOUNT_MNT_MOUNTPOINT => mount_mnt_mountpoint,
    VFSMOUNT_MNT_ROOT => vfsmount_mnt_root,
    FILE_F_INODE => file_f_inode,
    INODE_I_INO => inode_i_ino,
    INODE_I_SB => inode_i_sb,
    INODE_I_NLINK => inode_i_nlink,
    SB_S_DEV => sb_s_dev,
    TASK_SIGNAL => task_signal,
    SIGNAL_TTY => signal_tty,
    SIGNAL_PIDS => signal_pids,
}
