//! The audit record of a destructive API call: the shape of a command's record ([`super::AuditRecord`]),
//! with the request (method, host, path with query keys only) where the command has its argv.
//! Headers, bodies and query values never reach it.

use std::time::SystemTime;

use serde::Serialize;

use super::{Action, ProposedBy, record::rfc3339};
use crate::{
    enforce::Mechanism,
    requests::{ApiMatch, ApiRequest},
    rules::{Category, Severity},
};

/// What was sent, as far as a record may say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestLine {
    pub method: String,
    /// Lower case, without port.
    pub host: String,
    /// The path, with the query's keys and without its values.
    pub path: String,
}

impl RequestLine {
    pub fn of(r: &ApiRequest) -> Self {
        Self { method: r.method.to_ascii_uppercase(), host: r.host_name().chars().take(256).collect(), path: r.redacted_path() }
    }
}

/// The process that sent the request, from the process table.
#[derive(Clone, Debug, Default)]
pub struct Sender {
    pub pid: u32,
    pub agent: Option<String>,
    pub process_chain: Vec<String>,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub cwd: Option<String>,
    pub proposed_by: Option<ProposedBy>,
}

/// One JSON line of the audit log. Field order is the line's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiCallRecord {
    /// RFC 3339, UTC.
    pub time: String,
    pub host: String,
    pub agent: Option<String>,
    pub process_chain: Vec<String>,
    pub pid: u32,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub cwd: Option<String>,
    pub request: RequestLine,
    pub rule_id: String,
    pub category: Category,
    pub severity: Severity,
    pub why: String,
    /// `blocked` (the pause refused it), `would_block` or `observed`.
    pub action: Action,
    /// `stop` when the pause held the request (`blocked`); `null` for what the decoder saw.
    pub mechanism: Option<Mechanism>,
    /// The tool call that proposed the process (or an ancestor) that sent the request.
    pub proposed_by: Option<ProposedBy>,
}

impl ApiCallRecord {
    pub fn new(at: SystemTime, host: &str, who: Sender, r: &ApiRequest, m: &ApiMatch, action: Action) -> Self {
        Self {
            time: rfc3339(at),
            host: host.to_owned(),
            agent: who.agent,
            process_chain: who.process_chain,
            pid: who.pid,
            uid: who.uid,
            user: who.user,
            cwd: who.cwd,
            request: RequestLine::of(r),
            rule_id: m.rule_id.clone(),
            category: m.category,
            severity: m.severity,
            why: m.why.clone(),
            action,
            mechanism: None,
            proposed_by: who.proposed_by,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::requests::RequestRuleSet;

    #[test]
    fn the_line_is_exact_and_keeps_query_keys_only() {
        let r = ApiRequest {
            method: "delete".into(),
            host: Some("Kube.Example:6443".into()),
            target: "/api/v1/namespaces/prod?propagationPolicy=Foreground&token=s3cret".into(),
            ..Default::default()
        };
        let m = RequestRuleSet::builtin().check(&r).unwrap();
        let who = Sender { pid: 42, agent: Some("claude-code".into()), process_chain: vec!["claude".into(), "python3".into()], ..Default::default() };
        let at = UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
        let line = serde_json::to_string(&ApiCallRecord::new(at, "build-01", who, &r, &m, Action::WouldBlock)).unwrap();
        assert_eq!(
            line,
            concat!(
                r#"{"time":"2026-01-01T00:00:00.123Z","host":"build-01","agent":"claude-code","process_chain":["claude","python3"],"#,
                r#""pid":42,"uid":null,"user":null,"cwd":null,"request":{"method":"DELETE","host":"kube.example","#,
                r#""path":"/api/v1/namespaces/prod?propagationPolicy&token"},"rule_id":"k8s.api-delete-namespace","#,
                r#""category":"kubernetes","severity":"critical","why":"DELETE kube.example/api/v1/namespaces/prod?propagationPolicy&token","#,
                r#""action":"would_block","mechanism":null,"proposed_by":null}"#
            )
        );
        assert!(!line.contains("s3cret") && !line.contains("Foreground"));
    }
}
