//! The gate's decisions that need no kernel: agent slots, provisional scope, fail-mode outcomes.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use guard_common::gate::SCOPE_PROVISIONAL;
use guard_core::{
    audit::Action,
    enforce::{Decision, JudgedMatch, Verdict},
    rules::{Category, Match, RuleAction, Severity},
};

use crate::gate::{provisional::settle, scope::Agents, stops::as_given};

fn verdict(decision: Decision, outcome: Action) -> Verdict {
    let m = Match {
        rule_id: "fs.rm-rf-outside-worktree".into(),
        category: Category::FileDeletion,
        severity: Severity::High,
        description: String::new(),
        why: String::new(),
        command: vec!["rm".into()],
        action: RuleAction::Block,
    };
    Verdict { decision, matches: vec![JudgedMatch { m, outcome }] }
}

#[test]
fn slots_are_per_name_from_one_and_name_their_agent() {
    let a = Agents::default();
    let (x, y): (Arc<str>, Arc<str>) = ("codex".into(), "review-bot".into());
    assert_eq!((a.slot(&x), a.slot(&y), a.slot(&x)), (1, 2, 1));
    assert_eq!(a.name(1).as_deref(), Some("codex"));
    assert_eq!(a.name(0), None, "slot 0 is no agent");
    assert_eq!(a.name(3), None);
}

#[test]
fn a_provisional_refusal_waits_for_the_engine_and_follows_it() {
    let a = Agents::default();
    let later = Instant::now() + Duration::from_secs(5);
    // Known agent: the refusal stands, under its slot.
    a.resolve(10, 7);
    let (v, slot) = settle(&a, verdict(Decision::Deny, Action::Blocked), 0, SCOPE_PROVISIONAL, 10, later);
    assert_eq!((v.decision, slot, v.matches[0].outcome), (Decision::Deny, 7, Action::Blocked));
    // Known non-agent: the exec runs, the match is only observed.
    a.resolve(11, 0);
    let (v, slot) = settle(&a, verdict(Decision::Deny, Action::Blocked), 0, SCOPE_PROVISIONAL, 11, later);
    assert_eq!((v.decision, slot, v.matches[0].outcome), (Decision::Allow, 0, Action::Observed));
    // Unknown past the wait: treated as no agent, after waiting.
    let t0 = Instant::now();
    let (v, _) = settle(&a, verdict(Decision::Deny, Action::Blocked), 0, SCOPE_PROVISIONAL, 12, t0 + Duration::from_millis(30));
    assert!(t0.elapsed() >= Duration::from_millis(30));
    assert_eq!(v.decision, Decision::Allow);
}

#[test]
fn only_provisional_matches_at_stake_wait() {
    let a = Agents::default();
    let never = Instant::now() + Duration::from_secs(3600);
    // An identified agent's verdict is final at once.
    let (v, slot) = settle(&a, verdict(Decision::Deny, Action::Blocked), 3, SCOPE_PROVISIONAL, 10, never);
    assert_eq!((v.decision, slot), (Decision::Deny, 3));
    // An observed-only match has nothing at stake.
    let (v, _) = settle(&a, verdict(Decision::Allow, Action::Observed), 0, SCOPE_PROVISIONAL, 10, never);
    assert_eq!(v.decision, Decision::Allow);
    // Not provisional (scope = "all" outside agents): final at once.
    let (v, _) = settle(&a, verdict(Decision::Deny, Action::Blocked), 0, 0, 10, never);
    assert_eq!(v.decision, Decision::Deny);
}

#[test]
fn a_block_the_fail_mode_allowed_is_reported_as_would_block() {
    let v = as_given(verdict(Decision::Deny, Action::Blocked), Decision::Allow);
    assert_eq!((v.decision, v.matches[0].outcome), (Decision::Allow, Action::WouldBlock));
    let v = as_given(verdict(Decision::Deny, Action::Blocked), Decision::Deny);
    assert_eq!((v.decision, v.matches[0].outcome), (Decision::Deny, Action::Blocked));
}
