//! Compiles request-rule files and judges one request against them.

use std::collections::{BTreeMap, HashSet};

use super::{
    ApiMatch, BUILTIN_REQUEST_RULES, RequestRulesError,
    head::{ApiRequest, read_only},
    pattern::PathPattern,
    schema::{RequestRuleFile, RequestRuleSpec},
};
use crate::{
    glob,
    rules::{Category, RuleAction, Severity},
};

/// A compiled request rule.
#[derive(Clone, Debug)]
pub struct RequestRule {
    pub id: String,
    pub category: Category,
    pub severity: Severity,
    pub action: RuleAction,
    pub description: String,
    methods: Vec<String>,
    hosts: Vec<String>,
    paths: Vec<PathPattern>,
    query_any: Vec<String>,
    query_none: Vec<String>,
    operation: Vec<String>,
    operation_none: Vec<String>,
    body_true: Vec<String>,
}

/// The active request rules, in file order: the first that matches is the verdict, so specific
/// rules come before the catch-alls of their API.
#[derive(Clone, Debug)]
pub struct RequestRuleSet {
    rules: Vec<RequestRule>,
    never_hosts: Vec<String>,
    actions: BTreeMap<String, RuleAction>,
}

/// `pats` and `text` are both lower case already (rules at load, facts once per request).
fn any_glob(pats: &[String], text: &str) -> bool {
    pats.iter().any(|p| glob::matches(p, text))
}

impl RequestRule {
    fn compile(spec: RequestRuleSpec) -> Result<Self, RequestRulesError> {
        let invalid = |message: String| RequestRulesError::Invalid { id: spec.id.clone(), message };
        if spec.methods.is_empty() {
            return Err(invalid("`methods` is empty".into()));
        }
        if let Some(m) = spec.methods.iter().find(|m| read_only(m)) {
            return Err(invalid(format!("method `{m}` only reads: read-only calls are never judged")));
        }
        let paths = spec.paths.iter().map(|p| PathPattern::parse(p).map_err(|e| invalid(format!("path `{p}`: {e}")))).collect::<Result<_, _>>()?;
        let lower = |v: Vec<String>| v.into_iter().map(|s| s.to_ascii_lowercase()).collect::<Vec<_>>();
        Ok(Self {
            action: spec.action.unwrap_or(RuleAction::default_for(spec.severity)),
            methods: spec.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
            hosts: lower(spec.hosts),
            paths,
            query_any: lower(spec.query_any),
            query_none: lower(spec.query_none),
            operation: lower(spec.operation),
            operation_none: lower(spec.operation_none),
            body_true: spec.body_true,
            id: spec.id,
            category: spec.category,
            severity: spec.severity,
            description: spec.description,
        })
    }

    /// Every condition given holds. `facts` are computed once per request.
    fn matches(&self, r: &ApiRequest, f: &Facts) -> bool {
        self.methods.iter().any(|m| m.eq_ignore_ascii_case(&r.method))
            && (self.hosts.is_empty() || any_glob(&self.hosts, &f.host))
            && (self.paths.is_empty() || self.paths.iter().any(|p| p.matches(&f.segments)))
            && (self.query_any.is_empty() || f.keys.iter().any(|k| any_glob(&self.query_any, k)))
            && !f.keys.iter().any(|k| any_glob(&self.query_none, k))
            && (self.operation.is_empty() || f.operation.as_deref().is_some_and(|o| any_glob(&self.operation, o)))
            && !f.operation.as_deref().is_some_and(|o| any_glob(&self.operation_none, o))
            && self.body_true.iter().all(|k| r.body_flag(k))
    }

    /// Which parts matched, for humans: never a query value or body text.
    fn why(&self, r: &ApiRequest, f: &Facts) -> String {
        let mut why = format!("{} {}{}", r.method.to_ascii_uppercase(), f.host, r.redacted_path());
        if let Some(op) = r.operation().filter(|_| !self.operation.is_empty()) {
            why.push_str(&format!(" (operation {})", op.chars().take(64).collect::<String>()));
        }
        for k in &self.body_true {
            why.push_str(&format!(" (body `{k}: true`)"));
        }
        why
    }
}

/// What the rules look at, read once per request, lower case.
struct Facts {
    host: String,
    segments: Vec<String>,
    keys: Vec<String>,
    operation: Option<String>,
}

impl RequestRuleSet {
    /// The embedded built-in catalog.
    pub fn builtin() -> Self {
        match Self::empty().merged(BUILTIN_REQUEST_RULES, &[]) {
            Ok(set) => set,
            // The embedded file is checked by the tests, so this is a build defect.
            Err(e) => panic!("built-in request rules are invalid: {e}"),
        }
    }

    /// No rules at all (request judging off).
    pub fn empty() -> Self {
        Self { rules: Vec::new(), never_hosts: Vec::new(), actions: BTreeMap::new() }
    }

    pub fn rules(&self) -> &[RequestRule] {
        &self.rules
    }

    /// This set plus one more file (adding rules, replacing same ids in place), minus `disabled`.
    pub fn merged(mut self, toml_text: &str, disabled: &[String]) -> Result<Self, RequestRulesError> {
        let file: RequestRuleFile = toml::from_str(toml_text).map_err(|source| RequestRulesError::Toml { source })?;
        let mut seen = HashSet::new();
        for spec in file.rules {
            if !seen.insert(spec.id.clone()) {
                return Err(RequestRulesError::Duplicate { id: spec.id });
            }
            let rule = RequestRule::compile(spec)?;
            match self.rules.iter_mut().find(|r| r.id == rule.id) {
                Some(old) => *old = rule,
                None => self.rules.push(rule),
            }
        }
        self.never_hosts.extend(file.never_hosts.into_iter().map(|h| h.to_ascii_lowercase()));
        for id in file.disabled.iter().chain(disabled) {
            if !self.rules.iter().any(|r| &r.id == id) {
                return Err(RequestRulesError::UnknownDisabled { id: id.clone() });
            }
            self.rules.retain(|r| &r.id != id);
        }
        if let Some(id) = file.actions.keys().find(|id| !self.rules.iter().any(|r| &r.id == *id)) {
            return Err(RequestRulesError::UnknownAction { id: id.clone() });
        }
        self.actions.extend(file.actions);
        for r in &mut self.rules {
            if let Some(a) = self.actions.get(&r.id) {
                r.action = *a;
            }
        }
        Ok(self)
    }

    /// Whether `r` goes to a host never judged (the LLM APIs, package registries).
    pub fn never_judged(&self, r: &ApiRequest) -> bool {
        any_glob(&self.never_hosts, &r.host_name())
    }

    /// Whether requests to `authority` (a `Host` or `:authority`, port allowed) are never judged.
    pub fn never_judged_host(&self, authority: &str) -> bool {
        any_glob(&self.never_hosts, &super::head::host_name(authority))
    }

    /// The first rule `r` matches, if any. Read-only methods and the never-judged hosts (LLM
    /// APIs, package registries) match nothing, whatever the rules say.
    pub fn check(&self, r: &ApiRequest) -> Option<ApiMatch> {
        if read_only(&r.method) || self.rules.is_empty() {
            return None;
        }
        let host = r.host_name();
        if any_glob(&self.never_hosts, &host) {
            return None;
        }
        let lower = |v: Vec<String>| v.into_iter().map(|s| s.to_ascii_lowercase()).collect();
        let f = Facts {
            host,
            segments: lower(r.segments()),
            keys: lower(r.query_keys()),
            operation: r.operation().map(|o| o.to_ascii_lowercase()),
        };
        let rule = self.rules.iter().find(|rule| rule.matches(r, &f))?;
        Some(ApiMatch {
            rule_id: rule.id.clone(),
            category: rule.category,
            severity: rule.severity,
            action: rule.action,
            description: rule.description.clone(),
            why: rule.why(r, &f),
        })
    }
}
