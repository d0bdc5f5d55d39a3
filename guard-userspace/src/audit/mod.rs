//! Audit log (issue 4): one JSON line per destructive command, secrets redacted ([`redact`]),
//! appended to a file that may be rotated under us ([`writer`]), or stdout.

pub mod host;
pub mod record;
pub mod redact;
pub mod writer;

pub use record::{Action, AuditRecord, Subject};
pub use writer::{AuditError, AuditWriter};
