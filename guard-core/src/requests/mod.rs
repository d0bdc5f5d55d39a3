//! Rules on the HTTPS requests of agents' process trees (issue 21): a DELETE of a namespace, a
//! `TerminateInstances`, a repository deletion, sent by a script or tool an agent ran, judged on
//! the decoded request head (and, for AWS query APIs and GitHub's `force`, a bounded body
//! prefix). Rules are data: `rules/requests.toml` is embedded, and admin files in the same
//! format add, replace (same id) or disable rules. See docs/api-calls.md.
//!
//! [`RequestRuleSet::check`] is sans-IO over one [`ApiRequest`] and returns the first matching
//! rule, so a kernel-side pause of `SSL_write` can later call it with only what it read.

mod head;
mod pattern;
pub mod schema;
mod set;

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod corpus_tests;

use serde::{Deserialize, Serialize};

pub use head::{ApiRequest, BODY_PREFIX_CAP, read_only};
pub(crate) use head::wants_body;
pub use set::{RequestRule, RequestRuleSet};
pub use crate::protocols::{
    api_head::{PausedWrite, paused_write},
    h2::paused::{H2Write, PausedH2},
};

use crate::rules::{Category, RuleAction, Severity};

/// The built-in request rules.
pub const BUILTIN_REQUEST_RULES: &str = include_str!("../../rules/requests.toml");

/// One rule matched by one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiMatch {
    pub rule_id: String,
    pub category: Category,
    pub severity: Severity,
    pub action: RuleAction,
    pub description: String,
    /// Method, host, path with query keys only, and the operation or body flag that matched.
    pub why: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestRulesError {
    #[error("request rule file is not valid: {source}")]
    Toml {
        #[source]
        source: toml::de::Error,
    },
    #[error("request rule `{id}`: {message}")]
    Invalid { id: String, message: String },
    #[error("request rule `{id}` appears twice in one file")]
    Duplicate { id: String },
    #[error("cannot disable unknown request rule `{id}`")]
    UnknownDisabled { id: String },
    #[error("cannot set the action of unknown request rule `{id}`")]
    UnknownAction { id: String },
}
