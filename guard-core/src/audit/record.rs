//! One audit record: a destructive command, who ran it, and what guard did.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::redact::{redact_argv, redact_text};
use crate::{
    enforce::Mechanism,
    providers::Provider,
    rules::{Category, Match, Severity},
};

/// The model's tool call that proposed a command (`govern::link`). Names only: the call's
/// arguments never reach a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProposedBy {
    pub provider: Provider,
    pub model: Option<String>,
    /// The tool's name, sanitised like an identifier.
    pub tool: String,
    pub call_id: String,
    /// When guard saw the response that carried the call (RFC 3339, UTC).
    pub at: String,
}

/// What guard did about the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Seen and logged: the rule only observes, the gate is off, or the exec was not held.
    Observed,
    /// The gate refused the exec.
    Blocked,
    /// The gate in monitor mode let through an exec it would have refused.
    WouldBlock,
}

impl Action {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Observed => "observed",
            Self::Blocked => "blocked",
            Self::WouldBlock => "would_block",
        }
    }
}

/// One JSON line of the audit log. Field order is the line's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// RFC 3339, UTC.
    pub time: String,
    pub host: String,
    /// Catalog id or zero-config label; `null` when no agent is behind the command.
    pub agent: Option<String>,
    /// Program names from the oldest known ancestor down to the command.
    pub process_chain: Vec<String>,
    pub pid: u32,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub cwd: Option<String>,
    /// The exec's argv, secrets masked.
    pub argv: Vec<String>,
    pub rule_id: String,
    pub category: Category,
    pub severity: Severity,
    /// Which normalised command matched (secrets masked).
    pub why: String,
    pub action: Action,
    /// How the gate held the exec; `null` when the gate did not (the record is the engine's).
    pub mechanism: Option<Mechanism>,
    /// The tool call that proposed the command; `null` when none did (a human, a script, a hook).
    pub proposed_by: Option<ProposedBy>,
}

/// The facts about the process, gathered by the caller from the process table.
#[derive(Clone, Debug, Default)]
pub struct Subject {
    pub pid: u32,
    pub agent: Option<String>,
    pub process_chain: Vec<String>,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub cwd: Option<String>,
    pub argv: Vec<String>,
    pub proposed_by: Option<ProposedBy>,
}

impl AuditRecord {
    /// Builds the record; argv and the "why" are redacted here, so no caller can forget.
    pub fn new(
        at: SystemTime,
        host: &str,
        subject: Subject,
        m: &Match,
        action: Action,
        mechanism: Option<Mechanism>,
    ) -> Self {
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
            rule_id: m.rule_id.clone(),
            category: m.category,
            severity: m.severity,
            why: redact_text(&m.why),
            action,
            mechanism,
            proposed_by: subject.proposed_by,
        }
    }
}

/// RFC 3339 in UTC with millisecond precision; the epoch if the clock is unrepresentable.
pub fn rfc3339(at: SystemTime) -> String {
    let t = OffsetDateTime::from(at);
    let t = t
        .replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::rules::{Context, RuleSet};

    #[test]
    fn the_line_is_exact_and_secret_free() {
        let argv: Vec<String> = [
            "bash",
            "-c",
            "PGPASSWORD=hunter2 psql postgres://app:s3cret@db/app -c 'DROP TABLE users'",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let ctx = Context {
            cwd: Some("/home/dev/proj".into()),
            home: Some("/home/dev".into()),
            worktree: None,
        };
        let m = RuleSet::builtin().check(&argv, &ctx).remove(0);
        let subject = Subject {
            pid: 4242,
            agent: Some("claude-code".into()),
            process_chain: vec!["systemd".into(), "node".into(), "bash".into()],
            uid: Some(1000),
            user: Some("dev".into()),
            cwd: Some("/home/dev/proj".into()),
            argv,
            proposed_by: None,
        };
        let at = UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
        let rec = AuditRecord::new(at, "build-01", subject.clone(), &m, Action::Observed, None);
        let line = serde_json::to_string(&rec).expect("json");
        assert_eq!(
            line,
            concat!(
                r#"{"time":"2026-01-01T00:00:00.123Z","host":"build-01","agent":"claude-code","#,
                r#""process_chain":["systemd","node","bash"],"pid":4242,"uid":1000,"user":"dev","cwd":"/home/dev/proj","#,
                r#""argv":["bash","-c","PGPASSWORD=*** psql postgres://app:***@db/app -c 'DROP TABLE users'"],"#,
                r#""rule_id":"db.sql-drop","category":"database","severity":"critical","#,
                r#""why":"`psql postgres://app:***@db/app -c DROP TABLE users` (via bash): text `DROP TABLE`","action":"observed","mechanism":null,"proposed_by":null}"#
            )
        );
        assert!(!line.contains("hunter2") && !line.contains("s3cret"));
        let proposed_by = Some(ProposedBy {
            provider: Provider::OpenaiResponses,
            model: Some("gpt-5-codex".into()),
            tool: "shell".into(),
            call_id: "call_1".into(),
            at: "2026-01-01T00:00:00.100Z".into(),
        });
        let gated = AuditRecord::new(at, "build-01", Subject { proposed_by, ..subject }, &m, Action::WouldBlock, Some(Mechanism::Stop));
        let line = serde_json::to_string(&gated).expect("json");
        assert!(
            line.ends_with(concat!(
                r#""action":"would_block","mechanism":"stop","proposed_by":{"provider":"openai_responses","#,
                r#""model":"gpt-5-codex","tool":"shell","call_id":"call_1","at":"2026-01-01T00:00:00.100Z"}}"#
            )),
            "{line}"
        );
    }
}
