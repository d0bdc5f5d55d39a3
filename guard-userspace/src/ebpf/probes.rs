//! The probe table: every kernel hook guard uses, whether it is required, and what it is for.
//! The loader walks this table in one loop; an optional probe that fails is reported, not fatal.

use crate::hooks::HookKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Tracepoint { category: &'static str, name: &'static str },
    RawTracepoint { name: &'static str },
}

#[derive(Clone, Copy, Debug)]
pub struct Probe {
    /// Program name in the eBPF object.
    pub program: &'static str,
    pub hook: Hook,
    pub required: bool,
    pub purpose: &'static str,
}

const fn tp(program: &'static str, category: &'static str, required: bool, purpose: &'static str) -> Probe {
    Probe { program, hook: Hook::Tracepoint { category, name: program }, required, purpose }
}

pub const PROBES: &[Probe] = &[
    tp("sched_process_exec", "sched", true, "program images that ran"),
    Probe {
        program: "sched_process_fork",
        hook: Hook::RawTracepoint { name: "sched_process_fork" },
        required: true,
        purpose: "new processes and their parents",
    },
    tp("sched_process_exit", "sched", true, "process exits and exit codes"),
    tp("sys_enter_execve", "syscalls", true, "argv of every exec"),
    tp("sys_exit_execve", "syscalls", true, "exec results (failed execs never ran)"),
    tp("sys_enter_execveat", "syscalls", false, "argv of execveat"),
    tp("sys_exit_execveat", "syscalls", false, "execveat results"),
];

/// Uprobe programs per hook kind: (entry program, whether the shared uretprobe is needed).
/// Go hooks never take a uretprobe: their returns are hooked at the RET instructions.
pub const TLS_PROGRAMS: &[(HookKind, &str, bool)] = {
    use HookKind::*;
    &[
        (SslWrite, "ssl_write", true),
        (SslRead, "ssl_read", true),
        (SslWriteEx, "ssl_write_ex", true),
        (SslReadEx, "ssl_read_ex", true),
        (SslFree, "ssl_free", false),
        (GoWrite, "go_tls_write", false),
        (GoRead, "go_tls_read", false),
        (GoReadRet, "go_tls_read_ret", false),
        (GoClose, "go_tls_close", false),
    ]
};

pub const TLS_RETURN_PROGRAM: &str = "ssl_return";
