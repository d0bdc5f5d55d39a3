//! The probe table: every kernel hook guard uses, whether it is required, and what it is for.
//! The loader walks this table in one loop; an optional probe that fails is reported, not fatal.

use guard_core::hooks::HookKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hook {
    Tracepoint { category: &'static str, name: &'static str },
    RawTracepoint { name: &'static str },
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe {
    /// Program name in the eBPF object.
    pub program: &'static str,
    pub hook: Hook,
    pub required: bool,
    pub purpose: &'static str,
}

/// A deletion program: one program serves several syscalls' tracepoints.
const fn del(program: &'static str, name: &'static str, purpose: &'static str) -> Probe {
    Probe { program, hook: Hook::Tracepoint { category: "syscalls", name }, required: false, purpose }
}

const fn tp(program: &'static str, category: &'static str, required: bool, purpose: &'static str) -> Probe {
    Probe { program, hook: Hook::Tracepoint { category, name: program }, required, purpose }
}

pub(crate) const PROBES: &[Probe] = &[
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
    del("sys_enter_delete", "sys_enter_unlink", "agents' deletions"),
    del("sys_enter_delete", "sys_enter_unlinkat", "agents' deletions"),
    del("sys_enter_delete", "sys_enter_rmdir", "agents' deletions"),
    del("sys_enter_delete", "sys_enter_rename", "agents' renames"),
    del("sys_enter_delete", "sys_enter_renameat", "agents' renames"),
    del("sys_enter_delete", "sys_enter_renameat2", "agents' renames"),
    del("sys_exit_delete", "sys_exit_unlink", "agents' deletion results"),
    del("sys_exit_delete", "sys_exit_unlinkat", "agents' deletion results"),
    del("sys_exit_delete", "sys_exit_rmdir", "agents' deletion results"),
    del("sys_exit_delete", "sys_exit_rename", "agents' rename results"),
    del("sys_exit_delete", "sys_exit_renameat", "agents' rename results"),
    del("sys_exit_delete", "sys_exit_renameat2", "agents' rename results"),
    tp("sys_enter_io_uring_setup", "syscalls", false, "agents' io_uring (deletes unseen by the tracepoints above)"),
    tp(LOAD_STOP, "syscalls", false, "libraries mapped for execution (held until their TLS hooks are in)"),
];

/// The library-load stop's program (`guard_common::gate::LoadStop`).
pub(crate) const LOAD_STOP: &str = "sys_enter_mmap";

/// Whether a probe of [`PROBES`] is one of the deletion programs (`guard_common::delete`): they
/// are left out when this kernel's BTF lacks a member of their path walk.
pub(crate) fn is_deletion(program: &str) -> bool {
    matches!(program, "sys_enter_delete" | "sys_exit_delete" | "sys_enter_io_uring_setup")
}

/// Uprobe programs per hook kind: (entry program, return program if any).
/// Go hooks never take a uretprobe: their returns are hooked at the RET instructions.
pub const TLS_PROGRAMS: &[(HookKind, &str, Option<&str>)] = {
    use HookKind::*;
    const RET: Option<&str> = Some("ssl_return");
    &[
        (SslWrite, "ssl_write", RET),
        (SslRead, "ssl_read", RET),
        (SslWriteEx, "ssl_write_ex", RET),
        (SslReadEx, "ssl_read_ex", RET),
        (SslFree, "ssl_free", None),
        (GoWrite, "go_tls_write", None),
        (GoRead, "go_tls_read", None),
        (GoReadRet, "go_tls_read_ret", None),
        (GoClose, "go_tls_close", None),
        (AeadSeal, "aead_seal", None),
        (AeadSealScatter, "aead_seal_scatter", None),
        (AeadOpen, "aead_open", Some("aead_open_ret")),
        (AeadInit, "aead_key_init", None),
        (AeadInitDefault, "aead_key_init", None),
        (ProgramStart, "aead_start", None),
    ]
};

/// Every uprobe program in [`TLS_PROGRAMS`], once each.
pub(crate) fn tls_program_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = TLS_PROGRAMS.iter().flat_map(|t| [Some(t.1), t.2]).flatten().collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The syscalls that tie rustls records to their sockets (see guard-ebpf's aead.rs): attached on
/// the first file hooked at aws-lc's AEAD functions, and then only processes whose AEAD hooks
/// fired do more than one map lookup in them.
pub(crate) const AEAD_SYSCALLS: &[(&str, &str)] = &[
    ("aead_sys_read", "sys_enter_read"),
    ("aead_sys_read", "sys_enter_recvfrom"),
    ("aead_sys_write", "sys_enter_write"),
    ("aead_sys_write", "sys_enter_sendto"),
    ("aead_sys_writev", "sys_enter_writev"),
    ("aead_sys_close", "sys_enter_close"),
];
