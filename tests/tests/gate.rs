//! Privileged end-to-end of the exec gate (issue 16; docs/dev-notes/exec-gate.md §6, §8): the
//! real daemon refuses the destructive execs of AI agents and nothing else, never hangs the host
//! when it is killed, stopped or slow, and holds on the production path with the real Codex CLI.
//!
//! Every daemon but the Codex one marks only the test's tmpfs (`enforce.mark`), so a gate bug
//! cannot wedge the machine; programs elsewhere (git's helpers, grep, memfd copies) go through the
//! stop at `sys_exit_execve`. The bench is `guard_tests::gate`.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{
    os::unix::process::ExitStatusExt,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use guard_core::rules::{Context, RuleSet, Severity};
use guard_tests::{
    codex,
    daemon::Daemon,
    gate::{
        self, AgentRun, Case, Fixture, Layout, argv_of, command_records, command_records_when, daemon_args, metric_sum, records_of, run_agent,
        spawn_agent, steps_of,
    },
    mock::MockLlm,
    privileged,
    scrape::{metrics_addr, samples, scrape},
    temp_path,
};
use serde_json::{Value, json};

/// The zero-config agent's name: the script's stem.
const AGENT: &str = "gate_agent";

fn start(tag: &str, mode: &str, mark: &[&Path], deadline_ms: u64, fail: &str, env: &[(&str, &str)]) -> (Daemon, std::path::PathBuf, String) {
    let (args, audit) = daemon_args(tag, mode, mark, deadline_ms, fail);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = Daemon::start_env(tag, &args, env);
    let addr = metrics_addr(&d);
    (d, audit, addr)
}

fn metrics(addr: &str) -> std::collections::BTreeMap<String, f64> {
    samples(&scrape(addr).1)
}

/// The fakes' log lines the destructive `cases` make when each runs both ways.
fn fake_lines(cases: &[Case]) -> Vec<String> {
    cases.iter().filter(|c| c.fake()).flat_map(|c| [Layout::fake_line(&c.argv()), Layout::fake_line(&c.argv())]).collect()
}

/// Each command ran both ways to exit code 0.
fn assert_all_ok(run: &AgentRun, cases: &[Case]) {
    let cmds = run.commands();
    assert_eq!(cmds.len(), cases.len());
    let bad: Vec<_> = cmds.iter().filter(|(_, b, a)| !b.ok() || !a.ok()).collect();
    assert!(bad.is_empty(), "{} of {} commands did not run to exit 0: {bad:#?}", bad.len(), cases.len());
}

/// What the destructive corpus leaves when nothing stops it: every target gone or rewritten.
fn assert_destroyed(f: &Fixture, cases: &[Case]) {
    for n in ["a", "c", "d"] {
        assert!(!f.out(n).exists(), "{n} survived");
    }
    assert_eq!(std::fs::read_dir(f.out("b")).unwrap().count(), 0, "b/* survived");
    assert!(!f.out("e/.git").exists() && f.out("e/file").exists());
    assert_eq!(f.git_out(&f.remote(), &["rev-parse", "main"]), f.clone_main, "the force push rewound the remote");
    assert_eq!(f.tables(), "", "the table was dropped");
    for fake in gate::FAKES {
        assert!(!f.marker(fake).exists(), "marker of {fake} survived");
    }
    assert_eq!(f.take_ran(), fake_lines(cases));
}

/// The corpus checked against the rules themselves, without a daemon: each destructive command
/// hits exactly its rule at high or critical severity (the gate's block), each medium one exactly
/// its rule below that, each routine one nothing, both as `bash -c` and as a direct argv.
#[test]
fn corpora_hit_exactly_their_rules() {
    let l = Layout::new("/srv/guard-gate-0-0");
    let rules = RuleSet::builtin();
    let ctx = Context { cwd: Some(l.work()), home: Some(l.home()), worktree: Some(l.work()) };
    let check = |c: &Case, blocks: bool| {
        for argv in [c.bash_argv(), c.argv()] {
            let m = rules.check(&argv, &ctx);
            let ids: Vec<&str> = m.iter().map(|m| m.rule_id.as_str()).collect();
            assert_eq!(ids, c.rule.into_iter().collect::<Vec<_>>(), "{argv:?}");
            for m in &m {
                let high = matches!(m.severity, Severity::High | Severity::Critical);
                assert_eq!(high, blocks, "{argv:?}: {m:?}");
            }
        }
    };
    let (d, r, m) = (gate::destructive(&l), gate::routine(&l), gate::medium(&l));
    assert!(d.len() >= 30 && r.len() >= 30, "{} destructive, {} routine", d.len(), r.len());
    for c in &d {
        check(c, true);
    }
    for c in &m {
        check(c, false);
    }
    for c in &r {
        check(c, false);
    }
    // Every category, from the rules' own table.
    let cats: std::collections::BTreeSet<String> = d
        .iter()
        .map(|c| {
            let r = rules.rules().iter().find(|r| Some(r.id.as_str()) == c.rule).unwrap();
            serde_json::to_value(r.category).unwrap().as_str().unwrap().to_owned()
        })
        .collect();
    let want = ["cloud", "container", "database", "disk_system", "file_deletion", "infrastructure", "kubernetes", "version_control"];
    assert_eq!(cats.iter().map(String::as_str).collect::<Vec<_>>(), want);
}

/// The bench itself, with no guard running: the destructive corpus really destroys every target
/// (so the enforce test's intact targets mean something) and the routine one runs clean.
#[test]
fn bench_destroys_its_targets_without_guard() {
    if !privileged() {
        return;
    }
    let f = Fixture::create();
    let mock = MockLlm::start();
    let cases = gate::destructive(&f);
    let run = run_agent(&f, Some(&mock), &steps_of(&cases), "bench-destructive");
    assert_all_ok(&run, &cases);
    assert_destroyed(&f, &cases);
    let routine = gate::routine(&f);
    let run = run_agent(&f, Some(&mock), &steps_of(&routine), "bench-routine");
    assert_all_ok(&run, &routine);
    assert_eq!(f.take_readonly(), fake_lines(&routine));
    let medium = gate::medium(&f);
    let run = run_agent(&f, Some(&mock), &steps_of(&medium), "bench-medium");
    assert_all_ok(&run, &medium);
    assert_eq!(f.take_ran(), fake_lines(&medium));
    // The memfd copies really run: rm deletes its target.
    let (rm, tru) = (f.bin().join("rm"), f.bin().join("true"));
    let steps = json!([
        {"memfd": rm, "argv": ["rm", "-rf", f.out("m1")], "via": "fd"},
        {"memfd": rm, "argv": ["rm", "-rf", f.out("m2")], "via": "proc"},
        {"memfd": tru, "argv": ["true"], "via": "fd"},
        {"memfd": tru, "argv": ["true"], "via": "proc"},
    ]);
    let run = run_agent(&f, None, &steps, "bench-memfd");
    assert!(run.memfd_runs().iter().all(gate::Run::ok), "{:#?}", run.memfd_runs());
    assert!(!f.out("m1").exists() && !f.out("m2").exists());
    let (steps, progress) = loop_step(&f, 100, "bench");
    let run = run_agent(&f, None, &steps, "bench-loop");
    assert_eq!((run.steps[0]["done"].as_u64(), run.steps[0]["failed"].as_u64()), (Some(100), Some(0)), "{:#}", run.steps[0]);
    assert_eq!(gate::progress(&progress), 100);
}

/// Enforce mode, one daemon: the destructive corpus refused both ways with every target intact;
/// the routine corpus untouched; medium rules observed only; the same command from a shell that
/// is no agent's runs; memfd copies go through the stop.
#[test]
fn enforce_refuses_destructive_execs_of_agents_only() {
    if !privileged() {
        return;
    }
    let f = Fixture::create();
    let mock = MockLlm::start();
    let (d, audit, addr) = start("gate-enforce", "enforce", &[&f.root], 250, "open", &[]);
    let deny = |m: &_| metric_sum(m, "guard_enforce_decisions_total", &[r#"decision="deny""#]);
    let before = metrics(&addr);
    assert_eq!(metric_sum(&before, "guard_enforcement_mechanism", &[r#"mechanism="fanotify""#]), 1.0);
    assert_eq!(metric_sum(&before, "guard_enforcement_mechanism", &[r#"mechanism="stop""#]), 1.0);

    // Destructive: refused both ways, nothing touched.
    let cases = gate::destructive(&f);
    let snap = f.snapshot();
    let run = run_agent(&f, Some(&mock), &steps_of(&cases), "enforce-destructive");
    let cmds = run.commands();
    let bad: Vec<_> = cmds.iter().filter(|(_, b, a)| !b.bash_refused() || !a.eperm()).collect();
    assert!(bad.is_empty(), "{} of {} not refused: {bad:#?}", bad.len(), cases.len());
    assert_eq!(f.take_ran(), Vec::<String>::new(), "no fake ran");
    assert!(f.snapshot() == snap, "a target, marker, repository or the database changed");
    assert_eq!(f.git_out(&f.remote(), &["rev-parse", "main"]), f.remote_main);
    assert_eq!(f.tables(), "users");
    let records = command_records_when(&audit, |rs| cases.iter().all(|c| records_of(rs, c).iter().any(|r| r["action"] == "blocked")));
    for c in &cases {
        let mine = records_of(&records, c);
        assert!(
            mine.iter().any(|r| r["action"] == "blocked"),
            "no blocked record for {:?}: {mine:#?}",
            c.cmd
        );
        for r in &mine {
            assert_eq!(
                (r["action"].as_str(), r["rule_id"].as_str(), r["agent"].as_str(), r["mechanism"].as_str()),
                (Some("blocked"), c.rule, Some(AGENT), Some("fanotify")),
                "{r:#}"
            );
            assert!(r["pid"].as_u64().is_some_and(|p| p > 0), "{r:#}");
        }
    }
    assert_eq!(records.len(), records.iter().filter(|r| cases.iter().any(|c| !records_of(std::slice::from_ref(r), c).is_empty())).count(), "records of commands outside the corpus: {records:#?}");
    assert!(records.len() >= cases.len() && records.len() <= 2 * cases.len(), "{} records for {} commands", records.len(), cases.len());
    let after = metrics(&addr);
    assert!(
        deny(&after) - deny(&before) >= (2 * cases.len()) as f64,
        "denials: {} for {} commands run two ways",
        deny(&after) - deny(&before),
        cases.len()
    );
    for (cat_rule, n) in [("fs.rm-rf-outside-worktree", 4.0), ("db.sql-drop", 3.0)] {
        let k = format!(r#"rule="{cat_rule}""#);
        assert!(
            metric_sum(&after, "guard_destructive_commands_total", &[&k, r#"action="blocked""#, &format!(r#"agent="{AGENT}""#)]) >= n,
            "{cat_rule}"
        );
    }
    // Each denial logged once, without argv.
    let refused: Vec<String> = d.log_lines().into_iter().filter(|l| l.contains("exec refused")).collect();
    assert!(refused.len() >= 2 * cases.len(), "{} `exec refused` lines", refused.len());
    for l in &refused {
        let v: Value = serde_json::from_str(l).unwrap();
        for k in ["agent", "rule", "pid"] {
            assert!(!v["fields"][k].is_null(), "{k} missing: {l}");
        }
        assert!(!l.contains(f.outside().to_str().unwrap()) && !l.contains("prod-bucket"), "argv in the log: {l}");
    }

    // Routine: all run, no record, no denial.
    let routine = gate::routine(&f);
    let (n_records, denied) = (records.len(), deny(&after));
    let run = run_agent(&f, Some(&mock), &steps_of(&routine), "enforce-routine");
    assert_all_ok(&run, &routine);
    assert_eq!(f.take_readonly(), fake_lines(&routine));
    assert_eq!(f.take_ran(), Vec::<String>::new());
    let records = command_records(&audit);
    assert_eq!(&records[n_records..], &[] as &[Value], "routine commands recorded");
    assert_eq!(deny(&metrics(&addr)), denied, "a routine exec was denied");
    assert!(f.out("a/f1").exists() && f.marker("terraform").exists());

    // Medium and low rules: allowed, recorded `observed`.
    let medium = gate::medium(&f);
    let run = run_agent(&f, Some(&mock), &steps_of(&medium), "enforce-medium");
    assert_all_ok(&run, &medium);
    assert!(f.out("m/keep.txt").exists() && !f.out("m/one.log").exists() && !f.out("m/sub/two.log").exists());
    assert!(!f.clone_dir().join("untracked.tmp").exists(), "git clean -f ran");
    assert_eq!(f.git_out(&f.remote(), &["rev-parse", "main"]), f.clone_main, "the push with lease ran");
    assert_eq!(f.take_ran(), fake_lines(&medium));
    let records = command_records_when(&audit, |rs| medium.iter().all(|c| !records_of(&rs[n_records.min(rs.len())..], c).is_empty()));
    let new = &records[n_records..];
    for c in &medium {
        let mine = records_of(new, c);
        assert!(!mine.is_empty(), "no record for {:?}", c.cmd);
        for r in mine {
            assert_eq!((r["action"].as_str(), r["rule_id"].as_str()), (Some("observed"), c.rule), "{r:#}");
        }
    }
    assert!(new.iter().all(|r| r["action"] == "observed"), "{new:#?}");
    assert_eq!(deny(&metrics(&addr)), denied, "a medium-rule exec was denied");

    // Scope: the test's own shell is no agent; the same destructive command runs.
    let n_records = records.len();
    let script = format!("rm -rf {}", f.out("s").display());
    let plain = f.cmd(f.bin().join("bash").to_str().unwrap()).args(["-c", &script]).current_dir(f.work()).spawn().unwrap();
    let plain_pid = plain.id();
    let out = plain.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!f.out("s").exists());
    let records = command_records_when(&audit, |rs| rs.iter().skip(n_records).any(|r| r["pid"] == plain_pid));
    let mine: Vec<_> = records[n_records..].iter().filter(|r| r["pid"] == plain_pid).collect();
    assert_eq!(mine.len(), 1, "{records:#?}");
    assert_eq!(
        (mine[0]["action"].as_str(), mine[0]["agent"].as_str(), mine[0]["rule_id"].as_str()),
        (Some("observed"), None, Some("fs.rm-rf-outside-worktree"))
    );
    assert_eq!(deny(&metrics(&addr)), denied);

    // memfd: no fanotify event, so the stop judges it: SIGKILL before its first instruction.
    let n_records = records.len();
    let rm = f.bin().join("rm").display().to_string();
    let tru = f.bin().join("true").display().to_string();
    let (m1, m2) = (f.out("m1").display().to_string(), f.out("m2").display().to_string());
    let steps = json!([
        {"memfd": rm, "argv": ["rm", "-rf", m1], "via": "fd"},
        {"memfd": rm, "argv": ["rm", "-rf", m2], "via": "proc"},
        {"memfd": tru, "argv": ["true"], "via": "fd"},
        {"memfd": tru, "argv": ["true"], "via": "proc"},
    ]);
    let run = run_agent(&f, Some(&mock), &steps, "enforce-memfd");
    let runs = run.memfd_runs();
    assert_eq!(runs.iter().map(|r| (r.rc, r.signal, r.errno)).collect::<Vec<_>>(), [(None, Some(9), None), (None, Some(9), None), (Some(0), None, None), (Some(0), None, None)], "{runs:#?}");
    assert_eq!(std::fs::read(f.out("m1/file")).unwrap(), b"m1/file\n");
    assert_eq!(std::fs::read(f.out("m2/file")).unwrap(), b"m2/file\n");
    let records = command_records_when(&audit, |rs| {
        [&m1, &m2].iter().all(|t| rs.iter().skip(n_records).any(|r| argv_of(r) == ["rm", "-rf", t.as_str()]))
    });
    for target in [&m1, &m2] {
        let mine: Vec<_> = records[n_records..].iter().filter(|r| argv_of(r) == ["rm", "-rf", target.as_str()]).collect();
        assert!(!mine.is_empty(), "no record for the memfd rm of {target}: {records:#?}");
        for r in mine {
            assert_eq!(
                (r["action"].as_str(), r["mechanism"].as_str(), r["rule_id"].as_str(), r["agent"].as_str()),
                (Some("blocked"), Some("stop"), Some("fs.rm-rf-outside-worktree"), Some(AGENT)),
                "{r:#}"
            );
        }
    }
    assert!(metric_sum(&metrics(&addr), "guard_enforce_decisions_total", &[r#"decision="deny""#, r#"mechanism="stop""#]) >= 2.0);
    d.stop();
}

/// Monitor mode: the same corpus all runs, every target destroyed, each command `would_block`.
#[test]
fn monitor_lets_everything_run_and_records_would_block() {
    if !privileged() {
        return;
    }
    let f = Fixture::create();
    let mock = MockLlm::start();
    let (d, audit, addr) = start("gate-monitor", "monitor", &[&f.root], 250, "open", &[]);
    let cases = gate::destructive(&f);
    let run = run_agent(&f, Some(&mock), &steps_of(&cases), "monitor-destructive");
    assert_all_ok(&run, &cases);
    assert_destroyed(&f, &cases);
    let records = command_records_when(&audit, |rs| cases.iter().all(|c| !records_of(rs, c).is_empty()));
    for c in &cases {
        let mine = records_of(&records, c);
        assert!(!mine.is_empty(), "no record for {:?}", c.cmd);
        for r in mine {
            assert_eq!(
                (r["action"].as_str(), r["rule_id"].as_str(), r["agent"].as_str()),
                (Some("would_block"), c.rule, Some(AGENT)),
                "{r:#}"
            );
        }
    }
    assert!(records.iter().all(|r| r["action"] == "would_block"), "{records:#?}");
    assert_eq!(metric_sum(&metrics(&addr), "guard_enforce_decisions_total", &[r#"decision="deny""#]), 0.0);
    assert!(!d.log_lines().iter().any(|l| l.contains("exec refused")));
    assert!(Path::new(STOP_REGISTRY_PIN).exists(), "the registry of stopped processes is pinned while guard runs");
    d.stop();
    assert!(!Path::new(STOP_REGISTRY_PIN).exists(), "a clean stop leaves no registry pinned");
}

/// Where guard pins its registry of stopped processes (`gate::release::PIN`).
const STOP_REGISTRY_PIN: &str = "/sys/fs/bpf/guard/gate_stopped";

/// No task of the bench stuck: none in D on fanotify anywhere, none of ours stopped.
fn assert_no_stuck_task(f: &Fixture) {
    let me = std::process::id();
    let stuck: Vec<_> = gate::tasks()
        .into_iter()
        .filter(|(pid, _, state, wchan, exe)| {
            (*state == 'D' && wchan.contains("fanotify"))
                || (*state == 'T' && (exe.starts_with(f.root.to_str().unwrap()) || gate::descends_from(*pid, me)))
        })
        .collect();
    assert!(stuck.is_empty(), "{stuck:#?}");
}

fn loop_step(f: &Fixture, count: u64, tag: &str) -> (Value, std::path::PathBuf) {
    let progress = f.root.join(format!("{tag}.progress"));
    let stop = f.root.join(format!("{tag}.stop"));
    (json!([{"loop": f.bin().join("true"), "count": count, "progress": progress, "stop_file": stop}]), progress)
}

fn wait_progress(p: &Path, n: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while gate::progress(p) < n {
        assert!(Instant::now() < deadline, "the loop did not reach {n} execs within {timeout:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `kill -9` of guard mid-loop: the kernel answers everything pending, both loops finish, no
/// iteration takes a second, nothing is left stuck.
#[test]
fn sigkill_of_guard_leaves_no_exec_stuck() {
    if !privileged() {
        return;
    }
    let f = Fixture::create();
    let mock = MockLlm::start();
    let (mut d, _audit, _addr) = start("gate-sigkill", "enforce", &[&f.root], 250, "open", &[]);
    let (steps, agent_progress) = loop_step(&f, 2000, "agent");
    let (plain_steps, plain_progress) = loop_step(&f, 2000, "plain");
    let (agent, agent_result) = spawn_agent(&f, Some(&mock), &steps, "sigkill-agent");
    let (plain, plain_result) = spawn_agent(&f, None, &plain_steps, "sigkill-plain");
    wait_progress(&agent_progress, 200, Duration::from_secs(60));
    // SAFETY: killing our own child.
    assert_eq!(unsafe { libc::kill(d.pid() as i32, libc::SIGKILL) }, 0);
    let at_kill = gate::progress(&agent_progress);
    let status = d.wait_exit(Duration::from_secs(5)).expect("guard died");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    for (child, result, tag) in [(agent, agent_result, "agent"), (plain, plain_result, "plain")] {
        let run = gate::finish_agent(child, &result, Duration::from_secs(120));
        let l = &run.steps[0];
        assert_eq!((l["done"].as_u64(), l["failed"].as_u64()), (Some(2000), Some(0)), "{tag}: {l:#}");
        assert_eq!(l["slow"], json!([]), "{tag}: iterations over 1 s: {l:#}");
    }
    assert!(at_kill < 2000, "the agent's loop ended before guard was killed; raise the count");
    let _ = plain_progress;
    assert_no_stuck_task(&f);
}

/// `kill -STOP` of guard while an agent execs: the watchdog process kills guard, the exec in
/// flight completes within 2× deadline + 0.5 s, and the watchdog exits too.
#[test]
fn sigstopped_guard_is_killed_by_its_watchdog() {
    if !privileged() {
        return;
    }
    const DEADLINE_MS: u64 = 250;
    let f = Fixture::create();
    let mock = MockLlm::start();
    let (mut d, _audit, _addr) = start("gate-sigstop", "enforce", &[&f.root], DEADLINE_MS, "open", &[]);
    let guard = d.pid();
    let watchdogs = gate::children_with(guard, "gate\0watchdog");
    assert_eq!(watchdogs.len(), 1, "guard has one `guard gate watchdog` child: {watchdogs:?}");
    let watchdog = watchdogs[0];
    let (steps, progress) = loop_step(&f, 1_000_000, "stop");
    let (agent, result) = spawn_agent(&f, Some(&mock), &steps, "sigstop-agent");
    wait_progress(&progress, 100, Duration::from_secs(60));
    let t0 = Instant::now();
    // SAFETY: stopping our own child.
    assert_eq!(unsafe { libc::kill(guard as i32, libc::SIGSTOP) }, 0);
    let bound = Duration::from_millis(2 * DEADLINE_MS + 500);
    let status = d.wait_exit(Duration::from_secs(10)).expect("the watchdog killed guard");
    let died = t0.elapsed();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    // The bound is on the execs (below), not on guard's death: a SIGKILLed guard takes a second
    // or two to finish exiting (each uprobe it detaches waits for an RCU grace period), and the
    // kernel allows its pending events as soon as the fanotify fd closes, early in that exit.
    eprintln!("guard died {died:?} after the stop");
    let deadline = Instant::now() + Duration::from_secs(2);
    while gate::state(watchdog).is_some_and(|s| s != 'Z') {
        assert!(Instant::now() < deadline, "the watchdog {watchdog} still runs");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!Path::new(STOP_REGISTRY_PIN).exists(), "the watchdog leaves no registry pinned once guard is gone");
    // The loop goes on without guard; then stop it.
    let n = gate::progress(&progress);
    wait_progress(&progress, n + 50, Duration::from_secs(30));
    std::fs::write(f.root.join("stop.stop"), "").unwrap();
    let run = gate::finish_agent(agent, &result, Duration::from_secs(60));
    let l = &run.steps[0];
    assert_eq!(l["failed"].as_u64(), Some(0), "{l:#}");
    let worst = l["max_seconds"].as_f64().unwrap();
    assert!(worst < bound.as_secs_f64(), "an exec waited {worst} s (bound {bound:?}): {l:#}");
    assert_no_stuck_task(&f);
}

/// Judges slower than the deadline: `fail = open` lets the exec run at about the deadline,
/// `fail = closed` refuses it; both count timeouts.
#[test]
fn deadline_answers_by_fail_mode() {
    if !privileged() {
        return;
    }
    const DEADLINE_MS: u64 = 200;
    let f = Fixture::create();
    let mock = MockLlm::start();
    let env = [("GUARD_GATE_TEST_JUDGE_DELAY_MS", "1000")];
    let timeouts = |m: &_| metric_sum(m, "guard_enforce_timeouts_total", &[]);

    let (d, audit, addr) = start("gate-deadline-open", "enforce", &[&f.root], DEADLINE_MS, "open", &env);
    let c = Case { cmd: format!("rm -rf {}", f.out("t").display()), rule: Some("fs.rm-rf-outside-worktree") };
    let run = run_agent(&f, Some(&mock), &steps_of(std::slice::from_ref(&c)), "deadline-open");
    let (_, bash, direct) = run.commands().remove(0);
    assert!(bash.ok() && direct.ok(), "{bash:#?} {direct:#?}");
    assert!(!f.out("t").exists());
    // One timed-out event (two through bash, which then execs rm): at least the deadline, well
    // under the judges' delay.
    assert!(direct.seconds >= DEADLINE_MS as f64 / 1000.0 * 0.9 && direct.seconds < 1.0, "{direct:#?}");
    assert!(bash.seconds >= DEADLINE_MS as f64 / 1000.0 * 0.9 && bash.seconds < 1.0, "{bash:#?}");
    assert!(timeouts(&metrics(&addr)) >= 1.0);
    assert!(!command_records(&audit).iter().any(|r| r["action"] == "blocked"), "{:#?}", command_records(&audit));
    d.stop();

    let (d, _audit, addr) = start("gate-deadline-closed", "enforce", &[&f.root], DEADLINE_MS, "closed", &env);
    let c = Case { cmd: format!("rm -rf {}", f.out("t2").display()), rule: Some("fs.rm-rf-outside-worktree") };
    let run = run_agent(&f, Some(&mock), &steps_of(std::slice::from_ref(&c)), "deadline-closed");
    let (_, bash, direct) = run.commands().remove(0);
    assert!(bash.bash_refused() && direct.eperm(), "{bash:#?} {direct:#?}");
    assert!(direct.seconds < 1.0, "{direct:#?}");
    assert_eq!(std::fs::read(f.out("t2/file")).unwrap(), b"t2/file\n");
    assert!(timeouts(&metrics(&addr)) >= 1.0);
    d.stop();
}

/// The production path: every exec-capable filesystem marked (`mark = []`), the real Codex CLI
/// (a catalog agent) given a destructive tool call by the mock. Codex itself refuses `rm -rf`,
/// so the call runs the fake terraform by its absolute path; its sandbox is off so that only guard
/// can stop it. Codex reports the refusal to the model and finishes its turn.
#[test]
fn codex_destructive_tool_call_is_refused_on_the_production_path() {
    if !privileged() {
        return;
    }
    let bin = codex::codex();
    let f = Fixture::create();
    let tool_out = temp_path("codex-tool-output.txt");
    let _ = std::fs::remove_file(&tool_out);
    let cmd = format!("{} destroy -auto-approve", f.bin().join("terraform").display());
    let mock = MockLlm::start_tool_call(&cmd, &tool_out);
    let provider = codex::Provider::mock(&mock);
    let home = temp_path("codex-gate-home");
    let (d, audit, addr) = start("gate-codex", "enforce", &[], 250, "open", &[]);
    let out = codex::exec(&bin, &home, &provider, &["--sandbox", "danger-full-access", "clean up the infrastructure"])
        .current_dir(f.work())
        .env("PATH", f.path_env())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "codex failed: {text}");
    let output = std::fs::read_to_string(&tool_out).unwrap_or_else(|e| panic!("no tool output ({e}): {text}"));
    assert!(output.contains("Operation not permitted") || output.contains("exited with code 126"), "{output}");
    assert!(f.marker("terraform").exists(), "the fake terraform ran: {output}");
    assert_eq!(f.take_ran(), Vec::<String>::new());
    let records = command_records_when(&audit, |rs| rs.iter().any(|r| r["rule_id"] == "iac.terraform-destroy" && r["action"] == "blocked"));
    let mine: Vec<_> = records
        .iter()
        .filter(|r| r["rule_id"] == "iac.terraform-destroy" && r["action"] == "blocked")
        .collect();
    assert!(!mine.is_empty(), "{records:#?}");
    for r in &mine {
        assert_eq!((r["agent"].as_str(), r["mechanism"].as_str()), (Some("codex"), Some("fanotify")), "{r:#}");
        // The model's tool call that asked for it: the mock's call id, on the Responses API.
        let by = &r["proposed_by"];
        assert_eq!((by["provider"].as_str(), by["call_id"].as_str()), (Some("openai_responses"), Some("call_mock")), "{r:#}");
        assert!(["exec_command", "shell_command", "shell"].contains(&by["tool"].as_str().unwrap_or_default()), "{r:#}");
    }
    assert!(!records.iter().any(|r| r["action"] == "blocked" && r["rule_id"] != "iac.terraform-destroy"), "{records:#?}");
    let m = metrics(&addr);
    assert!(metric_sum(&m, "guard_enforce_decisions_total", &[r#"decision="deny""#]) >= 1.0);
    assert_eq!(metric_sum(&m, "guard_enforce_timeouts_total", &[]), 0.0, "Codex's start-up execs met the deadline");
    d.stop();
}
