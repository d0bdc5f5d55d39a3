//! Deletions through the whole engine: records pushed as the kernel sends them, after the
//! processes that make them.

use std::{collections::HashMap, time::UNIX_EPOCH};

use guard_common::delete::{DEL_DIR, DEL_EXCHANGE, DEL_KILLED, DEL_RELATIVE, DEL_TRUNCATED};

use super::*;
use crate::{
    engine::{Engine, EngineConfig, Outputs, Replay},
    events::{Event, Exec, ExecArgv, ExecResult, ExecSyscall, Exit, Fork, record::Line},
    govern::{Governed, Host, Lookup, NoLookup, User},
    places::PlaceRoot,
    process::SeedProcess,
};

const AGENT: u32 = 9;
const CHILD: u32 = 10;
const CHILD_START: u64 = 2_000_000_000;

fn root(prefix: &str, place: Place, protect: bool, owner: u32, sensitive: bool) -> PlaceRoot {
    PlaceRoot { prefix: prefix.into(), place, protect, owner, sensitive }
}

fn roots() -> Vec<PlaceRoot> {
    vec![
        root("/", Place::Outside, false, 0, false),
        root("/etc/", Place::System, true, 0, false),
        root("/tmp/", Place::Temp, false, 0, false),
        root("/home/dev/", Place::Home, true, 0, false),
        root("/home/dev/.ssh/", Place::Home, true, 0, true),
        root("/home/dev/.cache/", Place::Cache, false, 0, false),
        root("/home/dev/src/app/", Place::Worktree, false, AGENT, false),
        root("/home/dev/src/other/", Place::Worktree, false, 4242, false),
    ]
}

fn engine(cfg: DeletionConfig, record: bool) -> (Engine, Outputs) {
    let users = HashMap::from([(1000, User { name: "dev".into(), home: Some("/home/dev".into()) })]);
    let mut e = Engine::new(EngineConfig { host: Host { name: "ws1".into(), users }, deletions: cfg, record, ..EngineConfig::default() });
    let mut out = Outputs::default();
    let claude = SeedProcess {
        pid: AGENT,
        ppid: 1,
        start_ticks: 100,
        uid: Some(1000),
        exe: Some("/usr/bin/claude".into()),
        argv: vec!["claude".into()],
        comm: Some("claude".into()),
        cwd: Some("/home/dev/src/app".into()),
        ..SeedProcess::default()
    };
    let stranger = SeedProcess { pid: 50, ppid: 1, start_ticks: 100, comm: Some("cron".into()), exe: Some("/usr/sbin/cron".into()), ..SeedProcess::default() };
    e.start(vec![claude, stranger], &mut out);
    e.set_places(roots(), &mut out);
    (e, out)
}

/// Pid 10, a python3 the agent forked and exec'd, with a secret in its argv.
fn child() -> Vec<Event> {
    let argv: Vec<String> = ["python3", "-c", "import shutil; shutil.rmtree('x')", "--token=s3cret"].iter().map(|s| s.to_string()).collect();
    vec![
        Event::Fork(Fork { ts_ns: 1, parent_pid: AGENT, parent_tid: AGENT, parent_start_time_ns: 1_000_000_000, child_pid: CHILD, child_start_time_ns: CHILD_START, uid: 1000, comm: "claude".into() }),
        Event::ExecArgv(ExecArgv { ts_ns: 2, pid: CHILD, tid: CHILD, syscall: ExecSyscall::Execve, filename: "/usr/bin/python3".into(), argv, truncated: false, gated: false }),
        Event::Exec(Exec { ts_ns: 3, pid: CHILD, tid: CHILD, old_tid: CHILD, ppid: AGENT, uid: 1000, start_time_ns: CHILD_START, comm: "python3".into(), filename: "/usr/bin/python3".into() }),
        Event::ExecResult(ExecResult { ts_ns: 4, pid: CHILD, tid: CHILD, ret: 0 }),
    ]
}

fn del(pid: u32, ts_ns: u64, op: DeleteOp, path: &str, path2: &str, flags: u8, ret: i64) -> Event {
    Event::Delete(Delete { ts_ns, pid, tid: pid, start_time_ns: CHILD_START, root: AGENT, op, ret, flags, place: 0, place2: 0, owner: 0, path: path.into(), path2: path2.into() })
}

fn unlink(ts_ns: u64, path: &str) -> Event {
    del(CHILD, ts_ns, DeleteOp::Unlinkat, path, "", 0, 0)
}

fn exit(ts_ns: u64) -> Event {
    Event::Exit(Exit { ts_ns, pid: CHILD, tid: CHILD, start_time_ns: CHILD_START, exit_code: 0, comm: "python3".into() })
}

/// Pushes `events` and returns everything governed.
fn run(e: &mut Engine, out: &mut Outputs, events: Vec<Event>, lookup: &mut dyn Lookup) -> Vec<Governed> {
    let mut all = Vec::new();
    for ev in events {
        out.clear();
        e.push(ev, UNIX_EPOCH, lookup, out);
        all.append(&mut out.governed);
    }
    all
}

fn counted(g: &[Governed]) -> HashMap<(String, &'static str), u64> {
    let mut m = HashMap::new();
    for x in g {
        if let Governed::Deleted { agent, place } = x {
            *m.entry((agent.clone(), crate::places::place_str(*place))).or_default() += 1;
        }
    }
    m
}

fn records(g: &[Governed]) -> Vec<&DeletionRecord> {
    g.iter().filter_map(|x| if let Governed::Deletion(r) = x { Some(r) } else { None }).collect()
}

#[test]
fn fifty_files_in_home_count_fifty_and_write_one_record_then_one_summary() {
    let (mut e, mut out) = engine(DeletionConfig::default(), false);
    let mut evs = child();
    evs.extend((0..50).map(|i| unlink(10 + i, &format!("/home/dev/data/{}/f{i}", i % 2))));
    evs.push(exit(100));
    let g = run(&mut e, &mut out, evs, &mut NoLookup);
    assert_eq!(counted(&g), HashMap::from([(("claude-code".to_owned(), "home"), 50)]));
    // The agent's own process is the one whose work tree the places list holds, not its child.
    assert_eq!(e.table().agent_roots(), [(AGENT, Some("/home/dev/src/app".to_owned()))]);
    let recs = records(&g);
    assert_eq!(recs.len(), 2, "{recs:?}");
    let (first, rest) = (recs[0], recs[1]);
    assert_eq!((first.rule_id, first.files, first.summary, first.action), ("deletion.home", 5, false, Action::WouldBlock));
    assert_eq!((rest.files, rest.summary), (45, true));
    assert_eq!(first.files + rest.files, 50);
    assert_eq!(first.agent.as_deref(), Some("claude-code"));
    assert_eq!(first.process_chain, ["claude", "python3"]);
    assert_eq!(first.argv.last().map(String::as_str), Some("--token=***"));
    assert_eq!(first.top_dirs, vec![TopDir { dir: "/home/dev/data/0".into(), files: 3 }, TopDir { dir: "/home/dev/data/1".into(), files: 2 }]);
    let line = serde_json::to_string(first).unwrap();
    assert!(line.contains(r#""rule_id":"deletion.home","category":"file_deletion","severity":"high""#), "{line}");
    assert!(line.contains(r#""where":"home","files":5,"top_dirs":[{"dir":"/home/dev/data/0","files":3}"#), "{line}");
}

#[test]
fn work_tree_temp_and_cache_count_without_records() {
    let (mut e, mut out) = engine(DeletionConfig::default(), false);
    let mut evs = child();
    for i in 0..20 {
        evs.push(unlink(10 + i, &format!("/home/dev/src/app/target/debug/f{i}.o")));
        evs.push(unlink(40 + i, &format!("/tmp/build-{i}")));
        evs.push(unlink(70 + i, &format!("/home/dev/.cache/pip/{i}")));
    }
    evs.push(exit(200));
    let g = run(&mut e, &mut out, evs, &mut NoLookup);
    let c = counted(&g);
    assert_eq!((c[&("claude-code".to_owned(), "worktree")], c[&("claude-code".to_owned(), "temp")], c[&("claude-code".to_owned(), "cache")]), (20, 20, 20));
    assert!(records(&g).is_empty());
}

#[test]
fn another_agents_work_tree_is_other_repo() {
    let (mut e, mut out) = engine(DeletionConfig { audit_threshold: 2, ..DeletionConfig::default() }, false);
    let mut evs = child();
    evs.extend((0..2).map(|i| unlink(10 + i, &format!("/home/dev/src/other/f{i}"))));
    let g = run(&mut e, &mut out, evs, &mut NoLookup);
    assert_eq!(counted(&g)[&("claude-code".to_owned(), "other_repo")], 2);
    assert_eq!(records(&g).iter().map(|r| (r.rule_id, r.files)).collect::<Vec<_>>(), [("deletion.other_repo", 2)]);
}

#[test]
fn one_file_in_a_protected_dir_or_the_system_is_a_record() {
    let (mut e, mut out) = engine(DeletionConfig::default(), false);
    let mut evs = child();
    evs.push(unlink(10, "/home/dev/.ssh/id_ed25519"));
    evs.push(unlink(11, "/etc/hosts"));
    let g = run(&mut e, &mut out, evs, &mut NoLookup);
    let recs: Vec<_> = records(&g).iter().map(|r| (r.rule_id, r.files, r.action)).collect();
    assert_eq!(recs, [("deletion.protected", 1, Action::WouldBlock), ("deletion.system", 1, Action::WouldBlock)]);

    // The protected directory itself, removed: in it, not merely in the home above.
    let (mut e, mut out) = engine(DeletionConfig::default(), false);
    let mut evs = child();
    evs.push(del(CHILD, 10, DeleteOp::Rmdir, "/home/dev/.ssh", "", DEL_DIR, 0));
    let g = run(&mut e, &mut out, evs, &mut NoLookup);
    assert_eq!(records(&g).iter().map(|r| (r.rule_id, r.top_dirs[0].dir.as_str())).collect::<Vec<_>>(), [("deletion.protected", "/home/dev/.ssh")]);
}

#[test]
fn a_kill_is_blocked_and_enforce_mode_without_a_kill_is_observed() {
    let cfg = DeletionConfig { mode: Mode::Enforce, ..DeletionConfig::default() };
    let (mut e, mut out) = engine(cfg, false);
    let mut evs = child();
    evs.push(unlink(10, "/etc/a"));
    evs.push(del(CHILD, 11, DeleteOp::Unlink, "/home/dev/.ssh/config", "", DEL_KILLED, 0));
    let g = run(&mut e, &mut out, evs, &mut NoLookup);
    let recs: Vec<_> = records(&g).iter().map(|r| (r.rule_id, r.action)).collect();
    assert_eq!(recs, [("deletion.system", Action::Observed), ("deletion.protected", Action::Blocked)]);
    assert!(serde_json::to_string(records(&g)[1]).unwrap().contains(r#""why":"killed for deleting in home (protected)""#));
}

#[test]
fn renames_count_only_when_a_file_leaves_its_place() {
    let (mut e, mut out) = engine(DeletionConfig::default(), false);
    let mut evs = child();
    // An atomic save in the work tree, in home: no deletion.
    evs.push(del(CHILD, 10, DeleteOp::Renameat2, "/home/dev/src/app/.x.swp", "/home/dev/src/app/x", 0, 0));
    evs.push(del(CHILD, 11, DeleteOp::Rename, "/home/dev/notes.tmp", "/home/dev/notes", 0, 0));
    // A key leaving ~/.ssh; a swap; a failed unlink.
    evs.push(del(CHILD, 12, DeleteOp::Renameat, "/home/dev/.ssh/id_rsa", "/tmp/x", 0, 0));
    evs.push(del(CHILD, 13, DeleteOp::Renameat2, "/home/dev/a", "/tmp/b", DEL_EXCHANGE, 0));
    evs.push(del(CHILD, 14, DeleteOp::Unlinkat, "/home/dev/c", "", 0, -13));
    let g = run(&mut e, &mut out, evs, &mut NoLookup);
    assert_eq!(counted(&g), HashMap::from([(("claude-code".to_owned(), "home"), 1)]));
    assert_eq!(records(&g).iter().map(|r| r.rule_id).collect::<Vec<_>>(), ["deletion.protected"]);
    assert_eq!(e.stats().deletions.not_deletions, 4);
}

#[test]
fn a_process_outside_every_agent_is_ignored() {
    let (mut e, mut out) = engine(DeletionConfig::default(), false);
    let mut ev = unlink(10, "/etc/passwd");
    if let Event::Delete(d) = &mut ev {
        (d.pid, d.root, d.start_time_ns) = (50, 50, 1_000_000_000);
    }
    let g = run(&mut e, &mut out, vec![ev], &mut NoLookup);
    assert!(g.is_empty(), "{g:?}");
    assert_eq!(e.stats().deletions.not_agent, 1);
}

struct Cwd(&'static str);

impl Lookup for Cwd {
    fn process(&mut self, _: u32) -> Option<SeedProcess> {
        None
    }
    fn cwd(&mut self, _: u32) -> Option<String> {
        Some(self.0.into())
    }
}

#[test]
fn a_relative_path_joins_the_cwd_and_without_one_is_unknown() {
    let (mut e, mut out) = engine(DeletionConfig::default(), false);
    let mut evs = child();
    evs.push(del(CHILD, 10, DeleteOp::Unlinkat, "../src/../.ssh/known_hosts", "", DEL_RELATIVE, 0));
    let g = run(&mut e, &mut out, evs, &mut Cwd("/home/dev/src"));
    assert_eq!(records(&g).iter().map(|r| (r.rule_id, r.top_dirs[0].dir.as_str())).collect::<Vec<_>>(), [("deletion.protected", "/home/dev/.ssh")]);

    let (mut e, mut out) = engine(DeletionConfig { audit_threshold: 2, ..DeletionConfig::default() }, false);
    let mut evs = child();
    evs.push(del(CHILD, 10, DeleteOp::Unlinkat, "x", "", DEL_RELATIVE, 0));
    // Cut at its end by the kernel: its start, and so its place, holds.
    evs.push(del(CHILD, 11, DeleteOp::Unlinkat, "/home/dev/.cache/pip/a-very-long-na", "", DEL_TRUNCATED, 0));
    // No live cwd: the one the table knows (inherited from the agent).
    let g = run(&mut e, &mut out, evs, &mut NoLookup);
    let c = counted(&g);
    assert_eq!((c[&("claude-code".to_owned(), "worktree")], c[&("claude-code".to_owned(), "cache")]), (1, 1));
    assert_eq!(e.stats().deletions.unknown_place, 0);
}

#[test]
fn io_uring_is_counted_each_time_and_audited_once_per_process() {
    let (mut e, mut out) = engine(DeletionConfig::default(), false);
    let mut evs = child();
    evs.push(del(CHILD, 10, DeleteOp::IoUringSetup, "", "", 0, 3));
    evs.push(del(CHILD, 11, DeleteOp::IoUringSetup, "", "", 0, 4));
    let g = run(&mut e, &mut out, evs, &mut NoLookup);
    assert_eq!(g.iter().filter(|x| matches!(x, Governed::IoUring { pid: CHILD, .. })).count(), 2);
    assert_eq!(records(&g).iter().map(|r| r.rule_id).collect::<Vec<_>>(), ["deletion.io_uring"]);
}

#[test]
fn after_the_window_later_deletions_are_summed_into_one_record() {
    let (mut e, mut out) = engine(DeletionConfig { audit_threshold: 1, window_ns: 10_000_000_000, ..DeletionConfig::default() }, false);
    let mut evs = child();
    evs.push(unlink(1_000_000_000, "/opt/a"));
    evs.extend((0..3).map(|i| unlink(2_000_000_000 + i, &format!("/opt/b{i}"))));
    // Past the window: the next tick sums the three.
    evs.push(unlink(12_000_000_000, "/opt/c"));
    let g = run(&mut e, &mut out, evs, &mut NoLookup);
    let recs: Vec<_> = records(&g).iter().map(|r| (r.files, r.summary)).collect();
    assert_eq!(recs, [(1, false), (4, true)]);
}

#[test]
fn switched_off_nothing_is_counted() {
    let (mut e, mut out) = engine(DeletionConfig { enabled: false, ..DeletionConfig::default() }, false);
    let mut evs = child();
    evs.push(unlink(10, "/etc/passwd"));
    assert!(run(&mut e, &mut out, evs, &mut NoLookup).iter().all(|g| !matches!(g, Governed::Deleted { .. } | Governed::Deletion(_))));
}

#[test]
fn a_replay_with_the_places_fact_gives_what_the_run_gave() {
    let (mut e, mut out) = engine(DeletionConfig::default(), true);
    let mut recorded = std::mem::take(&mut out.recorded);
    assert!(recorded.iter().any(|l| matches!(l, Line::Fact(crate::events::record::Fact::Places { .. }))));
    let mut evs = child();
    evs.push(del(CHILD, 9, DeleteOp::Unlinkat, "gone", "", DEL_RELATIVE, 0));
    evs.extend((0..7).map(|i| unlink(10 + i, &format!("/home/dev/x/{i}"))));
    evs.push(unlink(20, "/home/dev/src/other/y"));
    evs.push(exit(30));
    let mut governed = Vec::new();
    for ev in evs {
        out.clear();
        e.push(ev, UNIX_EPOCH, &mut Cwd("/home/dev/.ssh"), &mut out);
        recorded.append(&mut out.recorded);
        governed.append(&mut out.governed);
    }
    assert_eq!(records(&governed).len(), 3, "{governed:?}");

    let mut again_engine = Engine::new(EngineConfig::default());
    let (mut replay, mut again) = (Replay::default(), Vec::new());
    for line in recorded.clone() {
        out.clear();
        replay.push(line, &mut again_engine, UNIX_EPOCH, &mut out);
        again.append(&mut out.governed);
    }
    out.clear();
    replay.flush(&mut again_engine, UNIX_EPOCH, &mut out);
    again.append(&mut out.governed);
    let deletions = |g: &[Governed]| g.iter().filter(|x| matches!(x, Governed::Deleted { .. } | Governed::Deletion(_))).cloned().collect::<Vec<_>>();
    assert_eq!(deletions(&again), deletions(&governed));

    // Without the places fact, the same events place nothing.
    let mut bare = Engine::new(EngineConfig::default());
    let (mut replay, mut blind) = (Replay::default(), Vec::new());
    for line in recorded.into_iter().filter(|l| !matches!(l, Line::Fact(crate::events::record::Fact::Places { .. }))) {
        out.clear();
        replay.push(line, &mut bare, UNIX_EPOCH, &mut out);
        blind.append(&mut out.governed);
    }
    assert_ne!(deletions(&blind), deletions(&governed));
}
