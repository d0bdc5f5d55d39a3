//! Privileged end-to-end of agents' deletions (issue 18): the kernel reports what a zero-config
//! agent's processes delete, whatever the tool, guard counts it per place and audits what leaves
//! the work tree; in enforce mode a deletion in a protected place kills the deleting process
//! (one file per thread is the bound) and an agent's write to a protected file gets EPERM.
//!
//! The agent is `gate_agent.py` (one real TLS call to the mock LLM, then its steps). Its work
//! tree is the gate fixture's git clone on a tmpfs; its "home" targets live under root's real
//! home (`/root/guard-deltest-<pid>`, created and removed here), since places come from the
//! host's accounts.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use guard_tests::{
    daemon::Daemon,
    gate::{AgentRun, Fixture, audit_records, daemon_args, metric_sum, run_agent},
    mock::MockLlm,
    privileged,
    scrape::{metrics_addr, samples, scrape},
};
use serde_json::{Value, json};

const AGENT: &str = "gate_agent";

/// Files and directories made under `dir`: `n` files in `dir/sub`, so that removing `dir`
/// removes `n + 2` entries.
fn tree(dir: &Path, n: usize) -> usize {
    let sub = dir.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    for i in 0..n {
        std::fs::write(sub.join(format!("f{i}")), "x\n").unwrap();
    }
    n + 2
}

fn entries(dir: &Path) -> usize {
    walk(dir).len()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.filter_map(Result::ok) {
            out.push(e.path());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

/// Targets under root's home, removed on drop.
struct HomeTargets(PathBuf);

impl HomeTargets {
    fn new(tag: &str) -> Self {
        let d = PathBuf::from(format!("/root/guard-deltest-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
}

impl Drop for HomeTargets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A daemon on the fixture: the gate's marks on its tmpfs only, `protected` as the deletions'
/// protected directories.
fn start(tag: &str, mode: &str, f: &Fixture, protected: &[&Path]) -> (Daemon, PathBuf, String) {
    let (args, audit) = daemon_args(tag, mode, &[&f.root], 250, "open");
    let config = PathBuf::from(&args[1]);
    let mut text = std::fs::read_to_string(&config).unwrap();
    let list: Vec<String> = protected.iter().map(|p| format!("{:?}", p.display().to_string())).collect();
    text += &format!("\n[deletions]\nprotected = [{}]\n", list.join(", "));
    std::fs::write(&config, text).unwrap();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = Daemon::start_with(tag, &args);
    let addr = metrics_addr(&d);
    (d, audit, addr)
}

fn metrics(addr: &str) -> BTreeMap<String, f64> {
    samples(&scrape(addr).1)
}

fn deleted(m: &BTreeMap<String, f64>, place: &str) -> f64 {
    metric_sum(m, "guard_agent_files_deleted_total", &[&format!("agent=\"{AGENT}\""), &format!("where=\"{place}\"")])
}

/// `cargo clean` of the work tree's crate. Its manifest and target dir are given explicitly: a
/// `CARGO_TARGET_DIR` inherited from whoever runs these tests would otherwise be cleaned.
fn cargo_clean(work: &Path) -> String {
    let cargo = PathBuf::from(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    let rustc = cargo.with_file_name("rustc");
    format!(
        "env -u CARGO_TARGET_DIR RUSTC={} {} clean --manifest-path {} --target-dir {}",
        rustc.display(),
        cargo.display(),
        work.join("Cargo.toml").display(),
        work.join("target").display()
    )
}

fn is_deletion(r: &Value) -> bool {
    r["rule_id"].as_str().is_some_and(|id| id.starts_with("deletion."))
}

fn once(cmd: String) -> Value {
    json!({ "once": cmd })
}

fn run_of(run: &AgentRun, i: usize) -> &Value {
    &run.steps[i]["run"]
}

/// Waits until the metric reaches `want` (the ring is read within tens of ms; the scrape is not
/// synchronous with it).
fn wait_metric(addr: &str, f: impl Fn(&BTreeMap<String, f64>) -> bool) -> BTreeMap<String, f64> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let m = metrics(addr);
        if f(&m) || std::time::Instant::now() > deadline {
            return m;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Monitor mode (the default): every deletion runs; each is counted where it happened, whatever
/// the tool (rm, a variable holding `rm`, Python's shutil, find -delete); what leaves the work
/// tree is audited; a non-agent's deletions are not counted.
#[test]
fn monitor_counts_every_deletion_by_place_whatever_the_tool() {
    if !privileged() {
        return;
    }
    let f = Fixture::create();
    let home = HomeTargets::new("monitor");
    let protected = f.home().join(".ssh");
    std::fs::create_dir_all(&protected).unwrap();
    std::fs::write(protected.join("authorized_keys"), "key\n").unwrap();
    let mock = MockLlm::start();
    let (d, audit, addr) = start("deletions-monitor", "monitor", &f, &[&protected]);

    let work = tree(&f.work().join("target-del"), 10);
    // `cargo clean` of a crate in the work tree, and `rm -rf node_modules`.
    std::fs::write(f.work().join("Cargo.toml"), "[package]\nname = \"deltest\"\nversion = \"0.1.0\"\nedition = \"2021\"\n").unwrap();
    std::fs::create_dir_all(f.work().join("src")).unwrap();
    std::fs::write(f.work().join("src/main.rs"), "fn main() {}\n").unwrap();
    let cargo_target = tree(&f.work().join("target/debug"), 8) + 1;
    let node_modules = tree(&f.work().join("node_modules/pkg"), 7) + 1;
    // 50 files deleted by the agent process itself with shutil.rmtree: no exec, no shell.
    let fifty = home.0.join("fifty");
    std::fs::create_dir_all(&fifty).unwrap();
    for i in 0..50 {
        std::fs::write(fifty.join(format!("f{i}")), "x\n").unwrap();
    }
    let via_var = tree(&home.0.join("a"), 5);
    let py = tree(&home.0.join("b"), 6);
    let found = tree(&home.0.join("c"), 4);
    let tmp = PathBuf::from(format!("/tmp/guard-deltest-{}", std::process::id()));
    let temp = tree(&tmp, 3);
    let steps = json!([
        { "rmtree": fifty.display().to_string() },
        once("rm -rf target-del".into()),
        // The cargo running these tests and its rustc, not rustup shims (the fixture has its own
        // HOME and PATH).
        once(cargo_clean(&f.work())),
        once("rm -rf node_modules".into()),
        once(format!("X=rm; $X -rf {}", home.0.join("a").display())),
        once(format!("python3 -c \"import shutil; shutil.rmtree('{}')\"", home.0.join("b").display())),
        once(format!("find {} -delete", home.0.join("c").display())),
        once(format!("rm -rf {}", tmp.display())),
        once(format!("echo replaced > {}", protected.join("authorized_keys").display())),
    ]);
    let run = run_agent(&f, Some(&mock), &steps, "deletions-monitor");
    assert_eq!(run.steps[0]["error"], Value::Null, "{}", run.steps[0]);
    for i in 1..9 {
        assert_eq!(run_of(&run, i)["rc"], 0, "step {i}: {}", run.steps[i]);
    }
    assert!(!fifty.exists() && !f.work().join("target").exists() && !f.work().join("node_modules").exists());
    assert_eq!(std::fs::read_to_string(protected.join("authorized_keys")).unwrap(), "replaced\n");
    let work = work + cargo_target + node_modules;
    // The 50 files and their directory.
    let home_total = (51 + via_var + py + found) as f64;
    let m = wait_metric(&addr, |m| deleted(m, "home") >= home_total && deleted(m, "worktree") >= work as f64);
    // At least what was made: cargo also removes lock files of its own it made on the way.
    assert!(deleted(&m, "worktree") >= work as f64, "{} < {work}", deleted(&m, "worktree"));
    assert_eq!(deleted(&m, "home"), home_total);
    assert_eq!(deleted(&m, "temp"), temp as f64);
    assert_eq!(metric_sum(&m, "guard_protected_file_writes_total", &["action=\"would_block\""]), 1.0);

    // The same deletions by a process that is no agent: nothing counted.
    let before = (deleted(&m, "home"), deleted(&m, "worktree"));
    let plain = tree(&home.0.join("d"), 5);
    let plain_run = run_agent(&f, None, &json!([once(format!("rm -rf {}", home.0.join("d").display()))]), "deletions-plain");
    assert_eq!(run_of(&plain_run, 0)["rc"], 0);
    assert!(!home.0.join("d").exists() && plain > 0);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let m = metrics(&addr);
    assert_eq!((deleted(&m, "home"), deleted(&m, "worktree")), before);

    d.stop();
    let records = audit_records(&audit);
    let del: Vec<&Value> = records.iter().filter(|r| is_deletion(r)).collect();
    // Per process past the threshold outside the work tree (three home deletions): one record at
    // the threshold and a summary of the rest at its exit; none for the work tree or temp.
    let home_records: Vec<&&Value> = del.iter().filter(|r| r["where"] == "home").collect();
    assert_eq!(home_records.iter().filter(|r| r["summary"] == false).count(), 4, "{del:#?}");
    // The agent's own rmtree: one record at the threshold, then the rest summed at its exit, both
    // naming the directory.
    let agent_records: Vec<&&&Value> = home_records.iter().filter(|r| r["pid"] == run.pid).collect();
    assert_eq!(agent_records.len(), 2, "{home_records:#?}");
    assert_eq!(agent_records.iter().map(|r| r["files"].as_u64().unwrap()).sum::<u64>(), 51);
    for r in &agent_records {
        assert_eq!(r["top_dirs"][0]["dir"], fifty.display().to_string(), "{r:#}");
    }
    let counted: u64 = home_records.iter().map(|r| r["files"].as_u64().unwrap()).sum();
    assert_eq!(counted as f64, home_total, "{home_records:#?}");
    for r in &home_records {
        assert_eq!(r["agent"], AGENT);
        assert_eq!(r["rule_id"], "deletion.home");
        // `home` is not among the enforced places by default.
        assert_eq!(r["action"], "observed");
        assert!(r["top_dirs"][0]["dir"].as_str().unwrap().starts_with(home.0.to_str().unwrap()), "{r:#}");
    }
    assert!(del.iter().all(|r| r["where"] != "worktree" && r["where"] != "temp"), "{del:#?}");
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains("sk-ant-api03"), "the API key reached the audit log");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Enforce mode: a deletion in a protected directory kills the deleting process after its first file (the
/// rest survive), work-tree deletions run to the end, a write to a protected file gets EPERM,
/// and the agent itself runs on.
#[test]
fn enforce_kills_a_deletion_in_a_protected_directory_and_refuses_protected_writes() {
    if !privileged() {
        return;
    }
    let f = Fixture::create();
    let home = HomeTargets::new("enforce");
    let protected = f.home().join(".aws");
    std::fs::create_dir_all(&protected).unwrap();
    std::fs::write(protected.join("credentials"), "secret\n").unwrap();
    let mock = MockLlm::start();
    // The home targets are a protected directory here: `home` itself is not enforced by default.
    let (d, audit, addr) = start("deletions-enforce", "enforce", &f, &[&protected, &home.0]);

    let work = tree(&f.work().join("target-del"), 10);
    let py = tree(&home.0.join("py"), 50);
    let rm = tree(&home.0.join("rm"), 20);
    // In script files (Python's shutil, Perl's unlink): the exec gate's rules judge argv and inline code, not a script's
    // contents, so only the deletion programs can stop these.
    std::fs::write(f.work().join("clean_py.py"), format!("import shutil\nshutil.rmtree({:?})\n", home.0.join("py").display().to_string())).unwrap();
    let rm_dir = home.0.join("rm");
    let pl = format!("unlink glob(\"{d}/sub/*\"); rmdir \"{d}/sub\"; rmdir \"{d}\";\n", d = rm_dir.display());
    std::fs::write(f.work().join("clean.pl"), pl).unwrap();
    let steps = json!([
        once("rm -rf target-del".into()),
        once("python3 clean_py.py".into()),
        once("perl clean.pl".into()),
        once(format!("echo stolen > {}", protected.join("credentials").display())),
    ]);
    let run = run_agent(&f, Some(&mock), &steps, "deletions-enforce");
    assert_eq!(run_of(&run, 0)["rc"], 0, "{}", run.steps[0]);
    assert!(!f.work().join("target-del").exists());
    for (i, dir, made) in [(1, "py", py), (2, "rm", rm)] {
        assert_eq!(run_of(&run, i)["signal"], 9, "step {i}: {}", run.steps[i]);
        // Made: the files, `sub` and the directory itself; one file went before the kill.
        let left = entries(&home.0.join(dir)) + 1;
        assert_eq!(left, made - 1, "{dir}: {left} of {made} entries left");
    }
    assert_ne!(run_of(&run, 3)["rc"], 0);
    assert!(run_of(&run, 3)["stderr"].as_str().unwrap().contains("Operation not permitted"), "{}", run.steps[3]);
    assert_eq!(std::fs::read_to_string(protected.join("credentials")).unwrap(), "secret\n");

    // Deletion records reach the engine through the ring, behind the gate's own answers: wait for
    // every count asserted below, not just the first.
    let m = wait_metric(&addr, |m| {
        deleted(m, "worktree") >= work as f64
            && deleted(m, "home") >= 2.0
            && metric_sum(m, "guard_protected_file_writes_total", &["action=\"blocked\""]) >= 1.0
    });
    assert_eq!(deleted(&m, "worktree"), work as f64);
    assert_eq!(deleted(&m, "home"), 2.0);
    assert_eq!(metric_sum(&m, "guard_protected_file_writes_total", &["action=\"blocked\""]), 1.0);
    assert_eq!(metric_sum(&m, "guard_enforcement_mechanism", &["mechanism=\"delete_kill\""]), 1.0);
    d.stop();
    let records = audit_records(&audit);
    let blocked: Vec<&Value> = records.iter().filter(|r| is_deletion(r) && r["action"] == "blocked" && r["summary"] == false).collect();
    assert_eq!(blocked.len(), 2, "{records:#?}");
}
