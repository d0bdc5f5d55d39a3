//! The exec gate's test bench (issue 16, `tests/tests/gate.rs`): a tmpfs holding copies of real
//! programs and fakes of dangerous CLIs, disposable targets, the command corpora with the rule each
//! must hit, the stand-in agent `mock_llm/gate_agent.py`, and readers of the audit log and metrics.
//!
//! The fixture lives under `/srv`, not the temporary directory: guard's rules class every path
//! under `/tmp` as temporary space, where `rm -rf` is routine, so targets there would prove nothing.

use std::{
    collections::BTreeMap,
    ffi::CString,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::mock::MockLlm;

/// The real programs copied onto the tmpfs (those the host has; `sqlite3` is required).
pub const COPIES: &[&str] = &["bash", "sh", "rm", "git", "sqlite3", "find", "true", "mv", "cp", "chmod"];

/// Fakes of dangerous CLIs: `#!/bin/sh` scripts. A read-only invocation (a word such as `plan`,
/// `get`, `ls`, `SELECT …`) appends its argv to `readonly.log` and exits 0; any other appends it
/// to `ran.log` and deletes `outside/markers/<name>`.
pub const FAKES: &[&str] = &[
    "terraform", "kubectl", "helm", "aws", "gcloud", "psql", "mysql", "redis-cli", "docker", "gh", "mkfs.ext4", "wipefs",
    "dd",
];

/// Where everything is, for a fixture rooted at `root` (pure paths: nothing is created).
#[derive(Clone, Debug)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// The copies, the fakes and the dynamic loader: first on the agent's PATH.
    pub fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }
    /// The agent's working tree (a git repository, its cwd).
    pub fn work(&self) -> PathBuf {
        self.root.join("work")
    }
    /// HOME of every process the tests run (a git identity, nothing else).
    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }
    /// Every target: outside the working tree, so deleting it is destructive.
    pub fn outside(&self) -> PathBuf {
        self.root.join("outside")
    }
    pub fn out(&self, name: &str) -> PathBuf {
        self.outside().join(name)
    }
    /// The bare remote a force push would rewind.
    pub fn remote(&self) -> PathBuf {
        self.out("remote.git")
    }
    /// A clone of `remote` whose `main` diverged from it.
    pub fn clone_dir(&self) -> PathBuf {
        self.out("clone")
    }
    pub fn db(&self) -> PathBuf {
        self.out("db.sqlite")
    }
    pub fn marker(&self, fake: &str) -> PathBuf {
        self.out("markers").join(fake)
    }
    /// What the fakes ran destructively, one `name args…` line per run.
    pub fn ran_log(&self) -> PathBuf {
        self.root.join("ran.log")
    }
    /// What the fakes ran read-only.
    pub fn readonly_log(&self) -> PathBuf {
        self.root.join("readonly.log")
    }
    /// The work tree's own remote (routine `git push` fast-forwards it).
    pub fn upstream(&self) -> PathBuf {
        self.root.join("upstream.git")
    }
    /// The dynamic loader's name (`ld-linux-x86-64.so.2` on x86-64), copied into `bin`.
    pub fn ld_so_name() -> String {
        ld_so().file_name().unwrap().to_string_lossy().into_owned()
    }
    /// PATH for the agent: the tmpfs first.
    pub fn path_env(&self) -> String {
        format!("{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", self.bin().display())
    }
    /// The argv the fake `name` was run with, as it logs it.
    pub fn fake_line(argv: &[String]) -> String {
        argv.join(" ")
    }
}

fn ld_so() -> PathBuf {
    ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1", "/lib/ld-linux-x86-64.so.2"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("no dynamic loader found")
}

/// A program on the test's own PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/bin".into(), "/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The bench: a tmpfs mounted on `/srv/guard-gate-<pid>-<n>`, filled per [`Layout`]. Unmounted
/// (lazily, so a process left in it cannot stop the cleanup) and removed on drop, panics included.
pub struct Fixture {
    pub l: Layout,
    /// The programs copied (those the host has).
    pub copied: Vec<String>,
    /// `main` of the remote, and of the diverged clone.
    pub remote_main: String,
    pub clone_main: String,
    mounted: bool,
}

impl std::ops::Deref for Fixture {
    type Target = Layout;
    fn deref(&self) -> &Layout {
        &self.l
    }
}

impl Fixture {
    /// Mounts and fills the bench (root only).
    pub fn create() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = PathBuf::from(format!("/srv/guard-gate-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let mut f = Self { l: Layout::new(&root), copied: Vec::new(), remote_main: String::new(), clone_main: String::new(), mounted: false };
        let src = CString::new("tmpfs").unwrap();
        let dst = CString::new(root.as_os_str().as_encoded_bytes()).unwrap();
        let opts = CString::new("size=512m,mode=0755").unwrap();
        // SAFETY: valid C strings; a plain tmpfs mount on a directory this test created.
        let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), src.as_ptr(), 0, opts.as_ptr().cast()) };
        assert_eq!(rc, 0, "mount tmpfs on {}: {}", root.display(), std::io::Error::last_os_error());
        f.mounted = true;
        f.fill();
        f
    }

    fn fill(&mut self) {
        let l = self.l.clone();
        for d in [l.bin(), l.work(), l.home(), l.outside(), l.out("markers")] {
            std::fs::create_dir_all(d).unwrap();
        }
        for name in COPIES {
            let Some(src) = which(name) else {
                assert_ne!(*name, "sqlite3", "sqlite3 is missing: `cargo xtask setup --tests` installs it");
                eprintln!("gate fixture: no {name} on this host, not copied");
                continue;
            };
            std::fs::copy(&src, l.bin().join(name)).unwrap();
            self.copied.push((*name).to_owned());
        }
        std::fs::copy(ld_so(), l.bin().join(Layout::ld_so_name())).unwrap();
        for name in FAKES {
            let script = format!(
                "#!/bin/sh\n# guard gate-test fake {name}: read-only invocations exit 0, the rest delete the marker.\n\
                 for a in \"$@\"; do\n  case \"$a\" in\n    \
                 plan|validate|show|get|describe|describe-*|list|ls|ps|images|inspect|logs|status|version|ping|info|SELECT*|select*)\n      \
                 echo \"{name} $*\" >> {ro}; exit 0;;\n  esac\ndone\necho \"{name} $*\" >> {ran}\nrm -f {marker}\n",
                ro = l.readonly_log().display(),
                ran = l.ran_log().display(),
                marker = l.marker(name).display(),
            );
            let p = l.bin().join(name);
            std::fs::write(&p, script).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::write(l.marker(name), format!("marker of {name}\n")).unwrap();
        }
        std::fs::write(l.home().join(".gitconfig"), "[user]\n\tname = gate test\n\temail = gate@test.invalid\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n").unwrap();

        // Plain targets: directories of files.
        for (dir, files) in [
            ("a", &["f1", "f2"][..]),
            ("b", &["x/y", "z"]),
            ("c", &["file"]),
            ("d", &["file"]),
            ("e", &["file"]),
            ("m", &["keep.txt", "one.log", "sub/two.log"]),
            ("m1", &["file"]),
            ("m2", &["file"]),
            ("s", &["file"]),
            ("t", &["file"]),
            ("t2", &["file"]),
        ] {
            for file in files {
                let p = l.out(dir).join(file);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, format!("{dir}/{file}\n")).unwrap();
            }
        }
        self.git(&l.out("e"), &["init", "-q"]);

        // The remote: main = A-B-C. The clone: main = A-D, so `push --force` rewinds B and C.
        let seed = l.root.join("seed");
        self.git(&l.root, &["init", "-q", seed.to_str().unwrap()]);
        for c in ["A", "B", "C"] {
            std::fs::write(seed.join("history.txt"), c).unwrap();
            self.git(&seed, &["add", "history.txt"]);
            self.git(&seed, &["commit", "-q", "-m", c]);
        }
        self.git(&l.root, &["clone", "-q", "--bare", seed.to_str().unwrap(), l.remote().to_str().unwrap()]);
        self.git(&l.root, &["clone", "-q", l.remote().to_str().unwrap(), l.clone_dir().to_str().unwrap()]);
        self.git(&l.clone_dir(), &["reset", "-q", "--hard", "HEAD~2"]);
        std::fs::write(l.clone_dir().join("history.txt"), "D").unwrap();
        self.git(&l.clone_dir(), &["commit", "-q", "-a", "-m", "D"]);
        std::fs::write(l.clone_dir().join("untracked.tmp"), "untracked\n").unwrap();
        self.remote_main = self.git_out(&l.remote(), &["rev-parse", "main"]);
        self.clone_main = self.git_out(&l.clone_dir(), &["rev-parse", "main"]);
        assert_ne!(self.remote_main, self.clone_main);

        // The working tree: a clone of its own upstream, with routine debris.
        self.git(&l.root, &["clone", "-q", "--bare", seed.to_str().unwrap(), l.upstream().to_str().unwrap()]);
        std::fs::remove_dir_all(&seed).unwrap();
        self.git(&l.root, &["clone", "-q", l.upstream().to_str().unwrap(), l.work().to_str().unwrap()]);
        for p in ["target/debug/app", "node_modules/x/index.js", "build/out.o", "dist/app.js", "src/a.pyc", "src/main.py", "notes.txt"] {
            let p = l.work().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x\n").unwrap();
        }
        std::fs::write(l.work().join("schema.sql"), "DROP TABLE IF EXISTS old_users;\n").unwrap();
        std::fs::write(l.work().join("run.sh"), "#!/bin/sh\necho run\n").unwrap();
        std::fs::create_dir_all(format!("/tmp/guard-gate-scratch-{}/x", std::process::id())).unwrap();

        let sql = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users(name) VALUES ('ada'), ('bob'), ('cy');";
        let st = Command::new(l.bin().join("sqlite3")).arg(l.db()).arg(sql).status().unwrap();
        assert!(st.success());
    }

    fn git(&self, dir: &Path, args: &[&str]) {
        let out = self.cmd("git").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "git {args:?} in {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    }

    pub fn git_out(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.cmd("git").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A command of the test itself (no agent), with the agent's PATH and HOME.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("PATH", self.path_env()).env("HOME", self.home()).env_remove("GIT_DIR");
        c
    }

    /// The table names of the database (read by the test's own sqlite3).
    pub fn tables(&self) -> String {
        let out = Command::new(which("sqlite3").unwrap())
            .arg(self.db())
            .arg("SELECT group_concat(name) FROM sqlite_master WHERE type='table'")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// Every file under `outside/` (the targets, the markers, the repositories and the database)
    /// with its bytes.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut all = BTreeMap::new();
        walk(&self.outside(), &mut all);
        all
    }

    /// Takes the fakes' destructive log (and empties it).
    pub fn take_ran(&self) -> Vec<String> {
        take_lines(&self.ran_log())
    }

    /// Takes the fakes' read-only log (and empties it).
    pub fn take_readonly(&self) -> Vec<String> {
        take_lines(&self.readonly_log())
    }
}

fn take_lines(p: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let _ = std::fs::remove_file(p);
    text.lines().map(str::to_owned).collect()
}

fn walk(dir: &Path, all: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd {
        let e = e.unwrap();
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            all.insert(e.path().join(""), Vec::new());
            walk(&e.path(), all);
        } else if ty.is_file() {
            all.insert(e.path(), std::fs::read(e.path()).unwrap());
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if self.mounted {
            let dst = CString::new(self.l.root.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: unmounting the tmpfs this fixture mounted.
            let rc = unsafe { libc::umount2(dst.as_ptr(), libc::MNT_DETACH) };
            if rc != 0 {
                eprintln!("gate fixture: umount {}: {}", self.l.root.display(), std::io::Error::last_os_error());
            }
        }
        let _ = std::fs::remove_dir(&self.l.root);
        // The routine corpus's `rm -rf` target, left when that corpus did not run.
        let _ = std::fs::remove_dir_all(format!("/tmp/guard-gate-scratch-{}", std::process::id()));
    }
}

/// One command of a corpus and the rule it must hit (`None`: no rule at all).
#[derive(Clone, Debug)]
pub struct Case {
    pub cmd: String,
    pub rule: Option<&'static str>,
}

fn case(cmd: String, rule: &'static str) -> Case {
    Case { cmd, rule: Some(rule) }
}

impl Case {
    /// The direct argv (what `shlex.split` makes of the command).
    pub fn argv(&self) -> Vec<String> {
        let mut all = guard_core::rules::shell::split_script(&self.cmd);
        assert_eq!(all.len(), 1, "{:?} is one simple command", self.cmd);
        all.remove(0)
    }
    /// The `bash -c` argv.
    pub fn bash_argv(&self) -> Vec<String> {
        vec!["bash".into(), "-c".into(), self.cmd.clone()]
    }
    /// Whether the program is one of the fakes (it logs its runs).
    pub fn fake(&self) -> bool {
        FAKES.contains(&self.argv()[0].as_str())
    }
}

/// Commands whose rule blocks (high or critical), every category, only disposable targets.
pub fn destructive(l: &Layout) -> Vec<Case> {
    let o = |n: &str| l.out(n).display().to_string();
    let clone = l.clone_dir().display().to_string();
    let db = l.db().display().to_string();
    vec![
        // file_deletion
        case(format!("rm -rf {}", o("a")), "fs.rm-rf-outside-worktree"),
        case(format!("rm -rf {}/*", o("b")), "fs.rm-rf-outside-worktree"),
        case(format!("rm --recursive --force {}", o("c")), "fs.rm-rf-outside-worktree"),
        case(format!("rm -Rf {}", o("d")), "fs.rm-rf-outside-worktree"),
        case(format!("rm -rf {}/.git", o("e")), "fs.rm-rf-git"),
        // version_control
        case(format!("git -C {clone} push --force origin main"), "vcs.git-push-force"),
        case(format!("git -C {clone} push -f origin main"), "vcs.git-push-force"),
        case(format!("git -C {clone} push origin +main"), "vcs.git-push-force-refspec"),
        case("gh repo delete acme/prod --yes".into(), "vcs.gh-repo-delete"),
        // infrastructure
        case("terraform destroy -auto-approve".into(), "iac.terraform-destroy"),
        case("terraform -chdir=infra destroy".into(), "iac.terraform-destroy"),
        case("terraform destroy -target=aws_instance.web".into(), "iac.terraform-destroy"),
        case("terraform apply -destroy".into(), "iac.terraform-apply-destroy"),
        // kubernetes
        case("kubectl delete namespace prod".into(), "k8s.kubectl-delete"),
        case("kubectl -n prod delete pods --all".into(), "k8s.kubectl-delete"),
        case("kubectl drain node-1 --ignore-daemonsets".into(), "k8s.kubectl-drain"),
        case("helm uninstall web".into(), "k8s.helm-uninstall"),
        case("helm -n prod delete web".into(), "k8s.helm-uninstall"),
        // cloud
        case("aws s3 rm s3://prod-bucket --recursive".into(), "cloud.aws-s3-rm-recursive"),
        case("aws s3 rb s3://prod-bucket --force".into(), "cloud.aws-s3-rb-force"),
        case("aws ec2 terminate-instances --instance-ids i-0abc".into(), "cloud.aws-delete"),
        case("aws rds delete-db-instance --db-instance-identifier prod".into(), "cloud.aws-delete"),
        case("gcloud compute instances delete vm-1 --quiet".into(), "cloud.gcloud-delete"),
        case("gcloud storage rm -r gs://prod-bucket".into(), "cloud.gcloud-storage-rm-recursive"),
        // database
        case(format!("sqlite3 {db} 'DELETE FROM users'"), "db.sql-delete-unqualified"),
        case(format!("sqlite3 {db} 'DROP TABLE IF EXISTS users'"), "db.sql-drop"),
        case("psql -c 'DROP TABLE users'".into(), "db.sql-drop"),
        case("psql -d prod -c 'TRUNCATE TABLE orders'".into(), "db.sql-truncate"),
        case("mysql -e 'DROP DATABASE prod'".into(), "db.sql-drop"),
        case("mysql -u app -e 'DELETE FROM users'".into(), "db.sql-delete-unqualified"),
        case("redis-cli flushall".into(), "db.redis-flush"),
        case("redis-cli -n 2 FLUSHDB".into(), "db.redis-flush"),
        // container
        case("docker system prune -a -f".into(), "container.system-prune-all"),
        case("docker volume rm pgdata".into(), "container.volume-rm"),
        case("docker volume prune".into(), "container.volume-rm"),
        case("docker compose down -v".into(), "container.compose-down-volumes"),
        // disk_system
        case("mkfs.ext4 /dev/sdz1".into(), "disk.mkfs"),
        case("mkfs.ext4 -F /dev/loop7".into(), "disk.mkfs"),
        case("wipefs -a /dev/sdz".into(), "disk.wipefs"),
        case("dd if=/dev/zero of=/dev/sdz bs=1M count=1".into(), "disk.dd-to-device"),
    ]
}

/// Commands a rule matches at medium or low severity: never blocked, recorded `observed`.
pub fn medium(l: &Layout) -> Vec<Case> {
    let clone = l.clone_dir().display().to_string();
    vec![
        case(format!("find {} -name '*.log' -delete", l.out("m").display()), "fs.find-delete"),
        case(format!("git -C {clone} reset --hard HEAD"), "vcs.git-reset-hard"),
        case(format!("git -C {clone} clean -f"), "vcs.git-clean-force"),
        case(format!("git -C {clone} stash clear"), "vcs.git-stash-clear"),
        case(format!("git -C {clone} push --force-with-lease origin main"), "vcs.git-push-force-with-lease"),
        case("terraform apply -auto-approve".into(), "iac.terraform-auto-approve"),
        case("terraform state rm aws_instance.web".into(), "iac.terraform-state-rm"),
        case("docker rm -f web".into(), "container.rm-force"),
        case("docker image prune -a -f".into(), "container.image-prune-all"),
    ]
}

/// What an agent does all day, run from the working tree: no rule may match.
pub fn routine(l: &Layout) -> Vec<Case> {
    let db = l.db().display().to_string();
    let bin = l.bin().display().to_string();
    let r = |s: &str| Case { cmd: s.to_owned(), rule: None };
    let mut v: Vec<Case> = [
        "rm -rf ./target",
        "rm -rf node_modules",
        "rm -rf build dist",
        "rm -f notes.txt",
        "git status --short",
        "git add -A",
        "git commit -q --allow-empty -m 'rm -rf all'",
        "git push -q",
        "git commit -q --allow-empty -m 'DROP TABLE users'",
        "git log --oneline -3",
        "git diff HEAD",
        "git fetch -q origin",
        "git branch -f feature-x",
        "git reset --soft HEAD",
        "git clean -n",
        "grep -r 'DROP TABLE' .",
        "terraform plan",
        "terraform validate",
        "kubectl get pods",
        "kubectl describe pod web",
        "helm list",
        "aws s3 ls",
        "aws ec2 describe-instances",
        "gcloud compute instances list",
        "psql -c 'SELECT 1'",
        "mysql -e 'SELECT 1'",
        "redis-cli ping",
        "docker ps",
        "docker images",
        "gh pr list",
        "find . -name '*.pyc'",
        "find ./src -name '*.pyc' -delete",
        "cp schema.sql schema.bak",
        "chmod +x run.sh",
        "true",
        "sh -c 'echo hello'",
        "bash -c 'ls -la > /dev/null'",
    ]
    .into_iter()
    .map(r)
    .collect();
    v.push(r(&format!("sqlite3 {db} 'SELECT 1'")));
    v.push(r(&format!("sqlite3 {db} 'SELECT count(*) FROM sqlite_master'")));
    v.push(r(&format!("rm -rf /tmp/guard-gate-scratch-{}", std::process::id())));
    v.push(r(&format!("{} {bin}/true", Layout::ld_so_name())));
    v
}

/// What the agent reported of one way of running a command.
#[derive(Clone, Debug)]
pub struct Run {
    pub rc: Option<i64>,
    pub signal: Option<i64>,
    pub errno: Option<i64>,
    pub seconds: f64,
    pub stderr: String,
}

impl Run {
    fn of(v: &Value) -> Self {
        Self {
            rc: v["rc"].as_i64(),
            signal: v["signal"].as_i64(),
            errno: v["errno"].as_i64(),
            seconds: v["seconds"].as_f64().unwrap_or_default(),
            stderr: v["stderr"].as_str().unwrap_or_default().to_owned(),
        }
    }
    /// Ran to completion with exit code 0.
    pub fn ok(&self) -> bool {
        self.rc == Some(0) && self.signal.is_none() && self.errno.is_none()
    }
    /// The exec failed with EPERM.
    pub fn eperm(&self) -> bool {
        self.errno == Some(libc::EPERM as i64) && self.rc.is_none() && self.signal.is_none()
    }
    /// `bash -c` refused: bash's own exec failed with EPERM, or bash ran and the exec of the
    /// command failed (bash exits 126).
    pub fn bash_refused(&self) -> bool {
        self.eperm() || (self.rc == Some(126) && self.signal.is_none())
    }
}

/// The agent's report.
#[derive(Debug)]
pub struct AgentRun {
    pub pid: u32,
    pub steps: Vec<Value>,
}

impl AgentRun {
    /// (command, bash way, direct way) of each command step, in order.
    pub fn commands(&self) -> Vec<(String, Run, Run)> {
        self.steps
            .iter()
            .filter(|s| s.get("cmd").is_some())
            .map(|s| (s["cmd"].as_str().unwrap().to_owned(), Run::of(&s["bash"]), Run::of(&s["argv"])))
            .collect()
    }
    /// The run of each memfd step, in order.
    pub fn memfd_runs(&self) -> Vec<Run> {
        self.steps.iter().filter(|s| s.get("memfd").is_some()).map(|s| Run::of(&s["run"])).collect()
    }
}

fn agent_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mock_llm/gate_agent.py")
}

/// `gate_agent.py` with `steps` from the working tree, spawned: an agent when `mock` is given (one
/// LLM call first), else a plain process. Returns the child and where its report will be.
pub fn spawn_agent(f: &Fixture, mock: Option<&MockLlm>, steps: &Value, tag: &str) -> (std::process::Child, PathBuf) {
    let steps_file = f.root.join(format!("{tag}-steps.json"));
    let result = f.root.join(format!("{tag}-result.json"));
    let _ = std::fs::remove_file(&result);
    std::fs::write(&steps_file, serde_json::to_vec(steps).unwrap()).unwrap();
    let mut c = f.cmd(python().to_str().unwrap());
    c.arg(agent_script());
    match mock {
        Some(m) => c.arg(&m.base).arg(&m.ca_file),
        None => c.args(["--no-llm", "-", "-"]),
    };
    c.arg(&steps_file).arg(&result).current_dir(f.work()).stdin(Stdio::null());
    (c.spawn().unwrap(), result)
}

/// Waits for a spawned agent (at most `timeout`) and reads its report.
pub fn finish_agent(mut child: std::process::Child, result: &Path, timeout: Duration) -> AgentRun {
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "gate_agent.py exited with {status}");
    let v: Value = serde_json::from_slice(&std::fs::read(result).unwrap()).unwrap();
    AgentRun { pid: v["pid"].as_u64().unwrap() as u32, steps: v["steps"].as_array().unwrap().clone() }
}

/// The interpreter itself, not a wrapper: pyenv's `python3` shim puts its own `bin` first on
/// PATH (where pip installed a real `aws`), which would shadow the fakes.
pub fn python() -> PathBuf {
    static EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let out = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap();
        assert!(out.status.success(), "python3: {}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

/// Runs the agent to completion.
pub fn run_agent(f: &Fixture, mock: Option<&MockLlm>, steps: &Value, tag: &str) -> AgentRun {
    let (child, result) = spawn_agent(f, mock, steps, tag);
    finish_agent(child, &result, Duration::from_secs(180))
}

/// The corpus as agent steps.
pub fn steps_of(cases: &[Case]) -> Value {
    Value::Array(cases.iter().map(|c| Value::String(c.cmd.clone())).collect())
}

/// The `enforce` section and the daemon arguments around it: `--config`, `--audit-log`, metrics
/// on a free port, JSON logs. Returns (arguments, audit log path).
pub fn daemon_args(tag: &str, mode: &str, mark: &[&Path], deadline_ms: u64, fail: &str) -> (Vec<String>, PathBuf) {
    let config = crate::temp_path(&format!("{tag}-guard.toml"));
    let audit = crate::temp_path(&format!("{tag}-audit.jsonl"));
    let _ = std::fs::remove_file(&audit);
    let marks: Vec<String> = mark.iter().map(|p| format!("{:?}", p.display().to_string())).collect();
    std::fs::write(
        &config,
        format!(
            "[enforce]\nmode = \"{mode}\"\nscope = \"agents\"\ndeadline_ms = {deadline_ms}\nfail = \"{fail}\"\nmark = [{}]\n",
            marks.join(", ")
        ),
    )
    .unwrap();
    let args = [
        "--config", config.to_str().unwrap(), "--audit-log", audit.to_str().unwrap(), "--metrics-addr", "127.0.0.1:0",
        "--log-format", "json",
    ]
    .map(str::to_owned)
    .to_vec();
    (args, audit)
}

/// The audit log's records so far.
pub fn audit_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}")))
        .collect()
}

/// The audit log's command records (exec decisions), without the deletion records
/// (`deletion.*`: what agents' processes deleted, tests/tests/deletions.rs).
pub fn command_records(path: &Path) -> Vec<Value> {
    audit_records(path).into_iter().filter(|r| !r["rule_id"].as_str().is_some_and(|id| id.starts_with("deletion."))).collect()
}

/// The command records once `done` holds of them (or after 10 s, for the caller's assertion to
/// say what is missing). A record reaches the audit log through the engine, a moment after the
/// gate answered and the agent's run ended.
pub fn command_records_when(path: &Path, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let records = command_records(path);
        if done(&records) || std::time::Instant::now() > deadline {
            return records;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The record's argv as strings.
pub fn argv_of(r: &Value) -> Vec<String> {
    r["argv"].as_array().map(|a| a.iter().map(|s| s.as_str().unwrap_or_default().to_owned()).collect()).unwrap_or_default()
}

/// The records of one case (its `bash -c` or its direct argv).
pub fn records_of<'a>(records: &'a [Value], c: &Case) -> Vec<&'a Value> {
    let (a, b) = (c.argv(), c.bash_argv());
    records.iter().filter(|r| {
        let v = argv_of(r);
        v == a || v == b
    }).collect()
}

/// The sum of every series of metric `name` whose labels include all of `labels` (`k="v"`).
pub fn metric_sum(samples: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| {
            let (n, rest) = k.split_once('{').unwrap_or((k.as_str(), ""));
            n == name && labels.iter().all(|l| rest.contains(l))
        })
        .map(|(_, v)| v)
        .sum()
}

/// Every task (thread) on the host: (pid, tid, state, wchan, exe).
pub fn tasks() -> Vec<(u32, u32, char, String, String)> {
    let mut all = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return all };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else { continue };
        let exe = std::fs::read_link(p.path().join("exe")).map(|e| e.display().to_string()).unwrap_or_default();
        let Ok(ts) = std::fs::read_dir(p.path().join("task")) else { continue };
        for t in ts.flatten() {
            let Ok(tid) = t.file_name().to_string_lossy().parse::<u32>() else { continue };
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // The state follows the command name's closing parenthesis.
            let Some(state) = stat.rsplit_once(')').and_then(|(_, r)| r.trim_start().chars().next()) else { continue };
            let wchan = std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
            all.push((pid, tid, state, wchan, exe.clone()));
        }
    }
    all
}

/// The parent pid of `pid`, if it exists.
pub fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// The process's state letter, if it exists.
pub fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whether `pid` descends from `ancestor`.
pub fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        match ppid(pid) {
            Some(p) if p == ancestor => return true,
            Some(p) if p > 1 => pid = p,
            _ => return false,
        }
    }
    false
}

/// The children of `pid` whose command line contains `needle`.
pub fn children_with(pid: u32, needle: &str) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    procs
        .flatten()
        .filter_map(|p| p.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|c| ppid(*c) == Some(pid))
        .filter(|c| {
            std::fs::read(format!("/proc/{c}/cmdline")).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle))
        })
        .collect()
}

/// Reads the number a loop step wrote to its progress file (0 before the first write).
pub fn progress(p: &Path) -> u64 {
    std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}
