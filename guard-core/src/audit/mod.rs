//! Audit records: one per destructive command, secrets redacted ([`redact`]), and one per
//! destructive API call ([`api`]). The writer that appends them to a file is in the daemon's sinks.

pub mod api;
pub mod record;
pub mod redact;

pub use api::{ApiCallRecord, RequestLine, Sender};
pub use record::{Action, AuditRecord, ProposedBy, Subject};
