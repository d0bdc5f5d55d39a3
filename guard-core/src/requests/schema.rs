//! The request-rule file format (`rules/requests.toml`, and the files `[requests]` names); see
//! docs/api-calls.md.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::rules::{Category, RuleAction, Severity};

/// One TOML file of request rules.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestRuleFile {
    /// Hosts (globs) whose requests are never judged: the LLM APIs and package registries.
    pub never_hosts: Vec<String>,
    /// Rule ids to switch off (built-in or earlier files).
    pub disabled: Vec<String>,
    #[serde(rename = "rule")]
    pub rules: Vec<RequestRuleSpec>,
    /// What a match becomes, by rule id, as for command rules.
    pub actions: BTreeMap<String, RuleAction>,
}

/// A rule as written. Every condition given must hold. Globs use `*`, `?` and `a|b` and are
/// compared without regard to case.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestRuleSpec {
    pub id: String,
    pub category: Category,
    pub severity: Severity,
    pub description: String,
    /// `None`: from the severity, as for command rules.
    #[serde(default)]
    pub action: Option<RuleAction>,
    /// Methods (upper case); read-only ones are refused.
    pub methods: Vec<String>,
    /// Host globs (port removed, lower case); empty: any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Path patterns, one of which must match: segments separated by `/`, each a glob over
    /// one segment, `*` any one segment, `**` any number of segments. Empty: any path.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Some query key matches one of these globs (`delete` for S3's batch delete).
    #[serde(default)]
    pub query_any: Vec<String>,
    /// No query key matches any of these globs (`dryRun`).
    #[serde(default)]
    pub query_none: Vec<String>,
    /// The AWS operation (`X-Amz-Target`, else `Action` in the query or a form body) matches
    /// one of these globs.
    #[serde(default)]
    pub operation: Vec<String>,
    /// The AWS operation matches none of these globs.
    #[serde(default)]
    pub operation_none: Vec<String>,
    /// Top-level keys of a JSON body that must be `true` (the body is read up to 4 KiB).
    #[serde(default)]
    pub body_true: Vec<String>,
}
