//! Load-time constants the daemon writes into the kernel programs' globals.
//!
//! Rust eBPF has no CO-RE, so kernel struct offsets are read from /sys/kernel/btf/vmlinux at start
//! and tracepoint field offsets from tracefs `format` files.

/// Global names in the eBPF object (each a `u32`).
pub mod globals {
    pub const TASK_REAL_PARENT: &str = "TASK_REAL_PARENT";
    pub const TASK_TGID: &str = "TASK_TGID";
    pub const TASK_PID: &str = "TASK_PID";
    pub const TASK_GROUP_LEADER: &str = "TASK_GROUP_LEADER";
    pub const TASK_START_BOOTTIME: &str = "TASK_START_BOOTTIME";
    pub const TASK_EXIT_CODE: &str = "TASK_EXIT_CODE";
    pub const TP_EXEC_FILENAME: &str = "TP_EXEC_FILENAME";
    pub const TP_EXEC_OLD_PID: &str = "TP_EXEC_OLD_PID";
    pub const TP_EXIT_GROUP_DEAD: &str = "TP_EXIT_GROUP_DEAD";
    /// The daemon's own tgid: its activity is not reported.
    pub const SELF_TGID: &str = "SELF_TGID";

    /// The deletion programs' path walk: (global, struct, member) from BTF.
    pub const PATH_WALK: [(&str, &str, &str); 16] = [
        ("TASK_FS", "task_struct", "fs"),
        ("TASK_FILES", "task_struct", "files"),
        ("FS_PWD", "fs_struct", "pwd"),
        ("FILES_FDT", "files_struct", "fdt"),
        ("FDT_MAX_FDS", "fdtable", "max_fds"),
        ("FDT_FD", "fdtable", "fd"),
        ("FILE_F_PATH", "file", "f_path"),
        ("PATH_MNT", "path", "mnt"),
        ("PATH_DENTRY", "path", "dentry"),
        ("DENTRY_D_PARENT", "dentry", "d_parent"),
        ("DENTRY_D_NAME", "dentry", "d_name"),
        ("QSTR_NAME", "qstr", "name"),
        ("MOUNT_MNT", "mount", "mnt"),
        ("MOUNT_MNT_PARENT", "mount", "mnt_parent"),
        ("MOUNT_MNT_MOUNTPOINT", "mount", "mnt_mountpoint"),
        ("VFSMOUNT_MNT_ROOT", "vfsmount", "mnt_root"),
    ];

    /// The library-load stop (`guard-ebpf/src/load.rs`), on top of [`PATH_WALK`]'s fd table:
    /// the mapped file's (dev, inode) and link count, and whether a job-control shell waits on
    /// the process.
    pub const LOAD_STOP: [(&str, &str, &str); 8] = [
        ("FILE_F_INODE", "file", "f_inode"),
        ("INODE_I_INO", "inode", "i_ino"),
        ("INODE_I_SB", "inode", "i_sb"),
        ("INODE_I_NLINK", "inode", "__i_nlink"),
        ("SB_S_DEV", "super_block", "s_dev"),
        ("TASK_SIGNAL", "task_struct", "signal"),
        ("SIGNAL_TTY", "signal_struct", "tty"),
        ("SIGNAL_PIDS", "signal_struct", "pids"),
    ];
}

/// A tracepoint field that this kernel does not have.
pub const FIELD_ABSENT: u32 = u32::MAX;
