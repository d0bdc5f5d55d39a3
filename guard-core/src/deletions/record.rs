//! The audit record of an agent's deletions: the shape of the command records
//! ([`crate::audit::AuditRecord`]: time, host, agent, process chain, pid, user, cwd, redacted argv,
//! rule, category, severity, why, action), then where, how many files, and the top directories.

use std::time::SystemTime;

use serde::Serialize;

use super::Report;
use crate::{
    audit::{Action, Subject, record::rfc3339, redact::redact_argv},
    places::{Place, place_name},
    rules::{Category, Severity},
};

/// A directory and how many of the record's files were in it. Paths only, never contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopDir {
    pub dir: String,
    pub files: u64,
}

/// One JSON line of the audit log. Field order is the line's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeletionRecord {
    pub time: String,
    pub host: String,
    pub agent: Option<String>,
    /// Program names from the oldest known ancestor down to the deleting process.
    pub process_chain: Vec<String>,
    pub pid: u32,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub cwd: Option<String>,
    /// The deleting program's argv, secrets masked as in command records.
    pub argv: Vec<String>,
    /// `deletion.home`, `deletion.system`, `deletion.protected`, `deletion.io_uring`, ...
    pub rule_id: &'static str,
    pub category: Category,
    pub severity: Severity,
    pub why: String,
    /// `blocked` (the kernel killed the process), `would_block` (a protected place in monitor
    /// mode), else `observed`.
    pub action: Action,
    #[serde(rename = "where", with = "place_name")]
    pub place: Place,
    /// Files this record counts (since the process's previous record for the rule, if any).
    pub files: u64,
    pub top_dirs: Vec<TopDir>,
    /// Sums what the process deleted there after its first record.
    pub summary: bool,
}

impl DeletionRecord {
    /// Builds the record; argv is redacted here, so no caller can forget.
    pub fn new(at: SystemTime, host: &str, subject: Subject, r: &Report) -> Self {
        Self {
            time: rfc3339(at),
            host: host.to_owned(),
            agent: subject.agent,
            process_chain: subject.process_chain,
            pid: subject.pid,
            uid: subject.uid,
            user: subject.user,
            cwd: subject.cwd,
            argv: redact_argv(&subject.argv),
            rule_id: r.rule.id(),
            category: Category::FileDeletion,
            severity: r.rule.severity(),
            why: why(r),
            action: r.action,
            place: r.place,
            files: r.files,
            top_dirs: r.top_dirs.clone(),
            summary: r.summary,
        }
    }
}

fn why(r: &Report) -> String {
    let place = crate::places::place_str(r.place);
    match (r.rule, r.action) {
        (super::DeletionRule::IoUring, _) => "set up io_uring, whose deletions no syscall tracepoint sees".to_owned(),
        (_, Action::Blocked) => format!("killed for deleting in {place} (protected)"),
        _ if r.summary => format!("{} more files deleted in {place}", r.files),
        _ => format!("{} files deleted in {place}, outside the agent's work tree", r.files),
    }
}
