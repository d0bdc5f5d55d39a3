//! The request corpus (`tests/data/requests_corpus.toml`): every destructive case is judged by
//! its rule, no routine case matches anything, and every built-in rule has a case.

use serde::Deserialize;

use super::{ApiRequest, RequestRuleSet};

#[derive(Deserialize)]
struct Corpus {
    destructive: Vec<Case>,
    routine: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    method: String,
    host: String,
    target: String,
    amz_target: Option<String>,
    content_type: Option<String>,
    body: Option<String>,
    rule: Option<String>,
    /// A known gap, kept in the corpus with the reason: the case must NOT match yet.
    skip: Option<String>,
}

fn corpus() -> Corpus {
    toml::from_str(include_str!("../../tests/data/requests_corpus.toml")).unwrap()
}

fn request(c: &Case) -> ApiRequest {
    ApiRequest {
        ts_ns: 0,
        method: c.method.clone(),
        host: Some(c.host.clone()),
        target: c.target.clone(),
        amz_target: c.amz_target.clone(),
        content_type: c.content_type.clone(),
        body: c.body.clone().unwrap_or_default().into_bytes(),
        body_complete: true,
    }
}

#[test]
fn every_destructive_case_hits_its_rule() {
    let rules = RequestRuleSet::builtin();
    let mut wrong = Vec::new();
    for c in corpus().destructive {
        let got = rules.check(&request(&c)).map(|m| m.rule_id);
        let want = if c.skip.is_some() { None } else { c.rule.clone() };
        if got != want {
            wrong.push(format!("{} {}{}: want {want:?}, got {got:?}", c.method, c.host, c.target));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_routine_case_matches() {
    let rules = RequestRuleSet::builtin();
    let hits: Vec<String> = corpus()
        .routine
        .iter()
        .filter_map(|c| rules.check(&request(c)).map(|m| format!("{} {}{} -> {}", c.method, c.host, c.target, m.rule_id)))
        .collect();
    assert!(hits.is_empty(), "{}", hits.join("\n"));
}

#[test]
fn every_rule_has_a_destructive_case_and_the_corpus_has_look_alikes() {
    let c = corpus();
    let rules = RequestRuleSet::builtin();
    let untested: Vec<&str> = rules
        .rules()
        .iter()
        .map(|r| r.id.as_str())
        .filter(|id| !c.destructive.iter().any(|d| d.skip.is_none() && d.rule.as_deref() == Some(*id)))
        .collect();
    assert!(untested.is_empty(), "rules without a destructive case: {untested:?}");
    assert!(c.destructive.len() >= 80 && c.routine.len() >= 60, "{} / {}", c.destructive.len(), c.routine.len());
}

#[test]
fn a_cut_form_body_or_json_body_does_not_match_on_a_guess() {
    let rules = RequestRuleSet::builtin();
    let mut r = request(&corpus().destructive.into_iter().find(|c| c.rule.as_deref() == Some("github.force-update-ref")).unwrap());
    assert!(rules.check(&r).is_some());
    r.body_complete = false;
    assert_eq!(rules.check(&r), None, "a body past the bound is not read");
}

#[test]
fn admin_files_add_replace_disable_and_set_actions() {
    use crate::rules::{RuleAction, Severity};
    let extra = r#"
        disabled = ["k8s.api-delete"]
        never_hosts = ["127.0.0.2"]
        [actions]
        "github.delete-repo" = "observe"
        [[rule]]
        id = "internal.drop-tenant"
        category = "database"
        severity = "critical"
        description = "Drop a tenant through the admin API"
        methods = ["POST"]
        hosts = ["admin.internal.example"]
        paths = ["/tenants/*/drop"]
    "#;
    let rules = RequestRuleSet::builtin().merged(extra, &["gcp.delete-project".into()]).unwrap();
    let r = |m: &str, h: &str, t: &str| ApiRequest { method: m.into(), host: Some(h.into()), target: t.into(), ..Default::default() };
    let m = rules.check(&r("POST", "admin.internal.example", "/tenants/42/drop")).unwrap();
    assert_eq!((m.rule_id.as_str(), m.severity, m.action), ("internal.drop-tenant", Severity::Critical, RuleAction::Block));
    assert_eq!(rules.check(&r("DELETE", "api.github.com", "/repos/o/r")).unwrap().action, RuleAction::Observe);
    assert_eq!(rules.check(&r("DELETE", "127.0.0.1", "/api/v1/namespaces/p/pods/x")), None);
    assert_eq!(rules.check(&r("DELETE", "127.0.0.2", "/api/v1/namespaces/p")), None);
    assert_eq!(rules.check(&r("DELETE", "cloudresourcemanager.googleapis.com", "/v3/projects/p")), None);
    let bad = |t: &str| RequestRuleSet::builtin().merged(t, &[]).unwrap_err().to_string();
    assert!(bad("disabled = [\"nope\"]").contains("nope"));
    assert!(bad("[actions]\nnope = \"block\"").contains("nope"));
    let rule = "[[rule]]\nid = \"x\"\ncategory = \"cloud\"\nseverity = \"low\"\ndescription = \"d\"\n";
    assert!(bad(&format!("{rule}methods = [\"GET\"]")).contains("only reads"));
    assert!(bad(&format!("{rule}methods = [\"DELETE\"]\npaths = [\"api\"]")).contains("must start"));
    assert!(bad(&format!("{rule}methods = [\"DELETE\"]\nbogus = 1")).contains("bogus"));
}


#[test]
fn why_names_the_operation_but_no_value() {
    let c = corpus().destructive.into_iter().find(|c| c.rule.as_deref() == Some("aws.ec2-terminate") && c.body.is_some()).unwrap();
    let m = RequestRuleSet::builtin().check(&request(&c)).unwrap();
    assert_eq!(m.why, "POST ec2.us-east-1.amazonaws.com/ (operation TerminateInstances)");
}
