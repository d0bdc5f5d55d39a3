//! The judge on a corpus of destructive and routine commands, in every mode.

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use super::*;
use crate::{
    audit::Action,
    govern::{Host, User},
    rules::{RuleAction, RuleSet},
};

/// Commands an agent must not run unasked: every one matches a blocking (high or critical) rule.
const DESTRUCTIVE: &[&str] = &[
    // file deletion
    "rm -rf /",
    "rm -rf ~",
    "rm -rf /home/dev",
    "ld-linux-x86-64.so.2 /bin/rm -rf /",
    "/lib64/ld-linux-x86-64.so.2 --library-path /lib /bin/rm -rf /home/x",
    "bash -c 'make && rm -rf ~/x'",
    "sudo rm -rf /etc",
    "rm -rf .git",
    "rm -rf /srv/other",
    "rm -rf --no-preserve-root /",
    "env -S 'rm -rf /'",
    // version control
    "git push --force",
    "git push origin +main",
    "gh repo delete org/repo --yes",
    // infrastructure
    "terraform destroy",
    "terraform apply -destroy -auto-approve",
    "pulumi destroy --yes",
    "cdk destroy --force",
    // kubernetes
    "kubectl delete namespace prod",
    "kubectl drain node-1",
    "helm uninstall web",
    // cloud
    "aws s3 rb s3://bucket --force",
    "aws s3 rm s3://bucket/data --recursive",
    "aws ec2 terminate-instances --instance-ids i-123",
    "gcloud compute instances delete vm-1",
    "gsutil rm -r gs://bucket",
    "az group delete -n rg",
    // database
    "psql -c 'DROP TABLE x'",
    "mysql -e 'TRUNCATE TABLE users'",
    "redis-cli FLUSHALL",
    "dropdb prod",
    // container
    "docker system prune -af",
    "docker volume rm data",
    "docker compose down -v",
    // disk
    "mkfs.ext4 /dev/sda",
    "dd if=/dev/zero of=/dev/sda",
    "wipefs -a /dev/sdb",
    "blkdiscard /dev/nvme0n1",
    "sgdisk --zap-all /dev/sda",
];

/// Everyday commands, some of which only look alarming: no rule may match.
const ROUTINE: &[&str] = &[
    "rm -rf ./target",
    "rm -rf node_modules",
    "rm -rf /tmp/build-123",
    "rm -f a.o",
    "git push",
    "git push origin feature",
    "git commit -m 'rm -rf all'",
    "git status",
    "git log --oneline",
    "git checkout -b feat",
    "grep -r 'DROP TABLE' .",
    "echo 'rm -rf /'",
    "terraform plan",
    "terraform init",
    "kubectl get pods",
    "kubectl apply -f deploy.yaml",
    "helm list",
    "aws s3 ls",
    "aws s3 cp a.txt s3://bucket/a.txt",
    "docker ps",
    "docker build -t app .",
    "psql -c 'SELECT 1'",
    "find . -name '*.pyc'",
    "ld-linux-x86-64.so.2 /bin/true",
    "ld-linux-x86-64.so.2 --list /bin/rm",
    "cargo build --release",
    "npm install",
    "python3 -m pytest",
    "make test",
    "ls -la",
    "cat README.md",
    "mkdir -p build",
    "cp -r src dst",
    "bash -c 'cargo fmt && cargo test'",
];

fn host() -> Arc<Host> {
    let dev = User { name: "dev".into(), home: Some("/home/dev".into()) };
    Arc::new(Host { name: "ws1".into(), users: HashMap::from([(1000, dev)]) })
}

fn judge_with(mode: Mode, rules: RuleSet) -> Judge {
    let cfg = EnforceConfig { mode, ..EnforceConfig::default() };
    Judge::new(Arc::new(rules), host(), cfg)
}

fn judge(mode: Mode) -> Judge {
    judge_with(mode, RuleSet::builtin())
}

fn argv(cmd: &str) -> Vec<String> {
    shlex::split(cmd).unwrap()
}

fn request(argv: &[String]) -> ExecRequest<'_> {
    ExecRequest {
        pid: 42,
        tid: 42,
        uid: Some(1000),
        in_agent_tree: true,
        argv,
        argv_complete: true,
        cwd: Some(Path::new("/home/dev/proj")),
        mechanism: Mechanism::Fanotify,
    }
}

fn verdict(j: &Judge, cmd: &str) -> Verdict {
    j.judge(&request(&argv(cmd)))
}

fn outcomes(v: &Verdict) -> Vec<Action> {
    v.matches.iter().map(|m| m.outcome).collect()
}

#[test]
fn the_corpora_are_big_enough() {
    assert!(DESTRUCTIVE.len() >= 30 && ROUTINE.len() >= 30);
}

#[test]
fn enforce_denies_every_destructive_command() {
    let j = judge(Mode::Enforce);
    let allowed: Vec<&str> = DESTRUCTIVE
        .iter()
        .copied()
        .filter(|cmd| {
            let v = verdict(&j, cmd);
            !(v.decision == Decision::Deny && outcomes(&v).contains(&Action::Blocked))
        })
        .collect();
    assert!(allowed.is_empty(), "allowed in enforce mode: {allowed:?}");
}

#[test]
fn monitor_allows_every_destructive_command_and_says_it_would_block() {
    let j = judge(Mode::Monitor);
    for cmd in DESTRUCTIVE {
        let v = verdict(&j, cmd);
        assert_eq!(v.decision, Decision::Allow, "{cmd}");
        assert!(outcomes(&v).contains(&Action::WouldBlock), "{cmd}: {:?}", outcomes(&v));
        assert!(!outcomes(&v).contains(&Action::Blocked), "{cmd}");
    }
}

#[test]
fn routine_commands_are_allowed_without_a_match_in_every_mode() {
    for mode in [Mode::Off, Mode::Monitor, Mode::Enforce] {
        let j = judge(mode);
        for cmd in ROUTINE {
            let v = verdict(&j, cmd);
            assert_eq!((v.decision, v.matches.len()), (Decision::Allow, 0), "{cmd} in {mode:?}: {v:?}");
        }
    }
}

#[test]
fn off_allows_and_only_observes() {
    let j = judge(Mode::Off);
    for cmd in DESTRUCTIVE {
        let v = verdict(&j, cmd);
        assert_eq!(v.decision, Decision::Allow, "{cmd}");
        assert!(!v.matches.is_empty() && outcomes(&v).iter().all(|o| *o == Action::Observed), "{cmd}");
    }
}

#[test]
fn an_observing_rule_never_denies() {
    // git reset --hard is medium: observed, even when enforcing.
    let v = verdict(&judge(Mode::Enforce), "git reset --hard HEAD~3");
    assert_eq!(v.decision, Decision::Allow);
    assert_eq!(v.matches[0].m.rule_id, "vcs.git-reset-hard");
    assert_eq!(v.matches[0].m.action, RuleAction::Observe);
    assert_eq!(outcomes(&v), [Action::Observed]);
    // An admin turns a blocking rule into an observing one.
    let rules = RuleSet::load("[actions]\n\"vcs.git-push-force\" = \"observe\"\n", &[]).unwrap();
    let v = verdict(&judge_with(Mode::Enforce, rules), "git push -f origin main");
    assert_eq!((v.decision, outcomes(&v)), (Decision::Allow, vec![Action::Observed]));
}

#[test]
fn one_blocking_match_among_others_denies_the_whole_exec() {
    let v = verdict(&judge(Mode::Enforce), "bash -c 'git reset --hard && git push --force'");
    assert_eq!(v.decision, Decision::Deny);
    assert_eq!(outcomes(&v), [Action::Observed, Action::Blocked]);
}

#[test]
fn a_truncated_argv_is_judged_on_what_was_read() {
    let argv = argv("rm -rf / /home/dev/a /home/dev/b");
    let req = ExecRequest { argv_complete: false, ..request(&argv[..3]) };
    assert_eq!(judge(Mode::Enforce).judge(&req).decision, Decision::Deny);
}

#[test]
fn home_comes_from_the_uid() {
    let j = judge(Mode::Enforce);
    let argv = argv("rm -rf /home/dev");
    let v = j.judge(&request(&argv));
    assert_eq!(v.matches[0].m.rule_id, "fs.rm-rf-home");
    // Another account's home: outside the working tree, still blocked, by another rule.
    let req = ExecRequest { uid: Some(0), ..request(&argv) };
    let ids: Vec<String> = j.judge(&req).matches.into_iter().map(|m| m.m.rule_id).collect();
    assert!(!ids.contains(&"fs.rm-rf-home".to_owned()), "{ids:?}");
}

#[test]
fn a_timeout_fails_open_unless_closed_for_an_agent() {
    let open = judge(Mode::Enforce);
    assert_eq!((open.on_timeout(true), open.on_timeout(false)), (Decision::Allow, Decision::Allow));
    let cfg = EnforceConfig { fail: FailMode::Closed, ..EnforceConfig::default() };
    let closed = Judge::new(Arc::new(RuleSet::builtin()), host(), cfg);
    assert_eq!((closed.on_timeout(true), closed.on_timeout(false)), (Decision::Deny, Decision::Allow));
    assert_eq!(closed.config().fail, FailMode::Closed);
}

#[test]
fn defaults_and_names() {
    let c = EnforceConfig::default();
    assert_eq!((c.mode, c.scope, c.deadline, c.fail), (Mode::Monitor, Scope::Agents, Duration::from_millis(250), FailMode::Open));
    let mode: Mode = serde_json::from_str("\"enforce\"").unwrap();
    assert_eq!(mode, Mode::Enforce);
    let m: Mechanism = serde_json::from_str("\"stop\"").unwrap();
    assert_eq!((m.as_str(), Mechanism::Fanotify.as_str()), ("stop", "fanotify"));
    assert_eq!((Decision::Allow.as_str(), Decision::Deny.as_str()), ("allow", "deny"));
    assert_eq!(Action::WouldBlock.as_str(), "would_block");
    assert_eq!(serde_json::to_string(&Action::WouldBlock).unwrap(), "\"would_block\"");
}

#[test]
fn the_judge_is_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Judge>();
}

#[test]
fn a_judged_match_round_trips() {
    let v = verdict(&judge(Mode::Monitor), "terraform destroy");
    let text = serde_json::to_string(&v.matches[0]).unwrap();
    let back: JudgedMatch = serde_json::from_str(&text).unwrap();
    assert_eq!(back, v.matches[0]);
    assert!(text.contains(r#""outcome":"would_block""#), "{text}");
}
