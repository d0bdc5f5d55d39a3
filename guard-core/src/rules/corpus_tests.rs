//! The rules corpus (`tests/data/rules_corpus.toml`): every destructive case must be caught by its
//! rule, and no routine case may match anything.

use serde::Deserialize;

use super::{Context, RuleSet};

#[derive(Deserialize)]
struct Corpus {
    destructive: Vec<Case>,
    routine: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    cmd: String,
    rule: Option<String>,
    cwd: Option<String>,
}

fn corpus() -> Corpus {
    toml::from_str(include_str!("../../tests/data/rules_corpus.toml")).expect("corpus parses")
}

fn run(case: &Case, rules: &RuleSet) -> Vec<String> {
    let argv = shlex::split(&case.cmd).expect("corpus command splits");
    let ctx = Context {
        cwd: Some(case.cwd.as_deref().unwrap_or("/home/dev/proj").into()),
        home: Some("/home/dev".into()),
        worktree: None,
    };
    rules
        .check(&argv, &ctx)
        .into_iter()
        .map(|m| m.rule_id)
        .collect()
}

#[test]
fn corpus_is_big_enough_and_covers_every_rule() {
    let c = corpus();
    assert!(
        c.destructive.len() >= 200,
        "{} destructive cases",
        c.destructive.len()
    );
    assert!(c.routine.len() >= 200, "{} routine cases", c.routine.len());
    let rules = RuleSet::builtin();
    let untested: Vec<&str> = rules
        .rules()
        .iter()
        .map(|r| r.id.as_str())
        .filter(|id| !c.destructive.iter().any(|d| d.rule.as_deref() == Some(*id)))
        .collect();
    assert!(
        untested.is_empty(),
        "rules without a destructive case: {untested:?}"
    );
}

#[test]
fn every_destructive_case_is_caught_by_its_rule() {
    let rules = RuleSet::builtin();
    let c = corpus();
    let missed: Vec<String> = c
        .destructive
        .iter()
        .filter_map(|case| {
            let want = case.rule.as_deref().expect("destructive cases name a rule");
            let got = run(case, &rules);
            (!got.iter().any(|g| g == want))
                .then(|| format!("  {:?}: want {want}, got {got:?}", case.cmd))
        })
        .collect();
    println!(
        "destructive: {} cases, {} caught",
        c.destructive.len(),
        c.destructive.len() - missed.len()
    );
    assert!(
        missed.is_empty(),
        "missed {} destructive cases:\n{}",
        missed.len(),
        missed.join("\n")
    );
}

#[test]
fn no_routine_case_is_flagged() {
    let rules = RuleSet::builtin();
    let c = corpus();
    let flagged: Vec<String> = c
        .routine
        .iter()
        .filter_map(|case| {
            let got = run(case, &rules);
            (!got.is_empty()).then(|| format!("  {:?}: flagged {got:?}", case.cmd))
        })
        .collect();
    println!(
        "routine: {} cases, {} flagged",
        c.routine.len(),
        flagged.len()
    );
    assert!(
        flagged.is_empty(),
        "{} false positives:\n{}",
        flagged.len(),
        flagged.join("\n")
    );
}
