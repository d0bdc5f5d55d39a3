//! The rules corpus (`tests/data/rules_corpus.toml`) and the held-out evasion corpus
//! (`tests/data/rules_evasions.toml`): every destructive case must be caught by its rule, and no
//! routine case may match anything.

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

const CORPUS: &str = include_str!("../../tests/data/rules_corpus.toml");
const EVASIONS: &str = include_str!("../../tests/data/rules_evasions.toml");

fn parse_corpus(text: &str) -> Corpus {
    toml::from_str(text).expect("corpus parses")
}

fn corpus() -> Corpus {
    parse_corpus(CORPUS)
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
    all_destructive_caught(&corpus());
}

#[test]
fn no_routine_case_is_flagged() {
    no_routine_flagged(&corpus());
}

#[test]
fn every_evasion_is_caught_by_its_rule() {
    all_destructive_caught(&parse_corpus(EVASIONS));
}

#[test]
fn no_routine_look_alike_of_an_evasion_is_flagged() {
    no_routine_flagged(&parse_corpus(EVASIONS));
}

/// Each evasion class of issue 18 has at least three destructive cases and three look-alikes.
#[test]
fn evasion_corpus_is_big_enough() {
    let c = parse_corpus(EVASIONS);
    assert!(c.destructive.len() >= 60, "{} destructive", c.destructive.len());
    assert!(c.routine.len() >= 60, "{} routine", c.routine.len());
}

/// The catch rate with any rule (what the issue measured), printed for the record:
/// `cargo test -p guard-core --lib evasion_figures -- --nocapture`.
#[test]
fn evasion_figures() {
    let rules = RuleSet::builtin();
    let c = parse_corpus(EVASIONS);
    let caught = c.destructive.iter().filter(|d| !run(d, &rules).is_empty()).count();
    let flagged = c.routine.iter().filter(|r| !run(r, &rules).is_empty()).count();
    println!(
        "evasions: {caught}/{} destructive caught by some rule, {flagged}/{} routine flagged",
        c.destructive.len(),
        c.routine.len()
    );
}

fn all_destructive_caught(c: &Corpus) {
    let rules = RuleSet::builtin();
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

fn no_routine_flagged(c: &Corpus) {
    let rules = RuleSet::builtin();
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
