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
}

/// A tracepoint field that this kernel does not have.
pub const FIELD_ABSENT: u32 = u32::MAX;
