//! Audit records: one per destructive command, secrets redacted ([`redact`]). The writer that
//! appends them to a file is in the daemon's sinks.

pub mod record;
pub mod redact;

pub use record::{Action, AuditRecord, ProposedBy, Subject};
