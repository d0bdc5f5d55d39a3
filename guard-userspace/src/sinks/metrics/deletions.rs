//! Deletion metrics (issue 18): files agents' processes deleted, by place, and io_uring set-ups
//! (whose deletions no tracepoint sees).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use super::commands::AgentLabel;

/// `where`: `worktree`, `temp`, `cache`, `home`, `system`, `other_repo`, `outside`, `unknown`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DeletedLabels {
    pub agent: String,
    pub r#where: &'static str,
}

pub(crate) struct DeletionMetrics {
    pub(super) deleted: Family<DeletedLabels, Counter>,
    pub(super) io_uring: Family<AgentLabel, Counter>,
}

impl DeletionMetrics {
    pub(crate) fn register(reg: &mut Registry) -> Self {
        let deleted = Family::default();
        reg.register(
            "guard_agent_files_deleted",
            "Files agents' processes deleted (unlink, rmdir, or a rename out of its place), by where they were",
            deleted.clone(),
        );
        let io_uring = Family::default();
        reg.register(
            "guard_agent_io_uring_setups",
            "io_uring instances agents' processes set up: their deletions bypass the syscall tracepoints",
            io_uring.clone(),
        );
        Self { deleted, io_uring }
    }
}
