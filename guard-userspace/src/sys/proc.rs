//! The IO side of the process table: reads running processes from /proc when the daemon starts,
//! so agents already running are known (their pid, start time, image, cwd, cgroup, and agent
//! environment markers). Unreadable entries (gone, or not permitted) are skipped, field by field.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use guard_core::{govern::Lookup, process::SeedProcess, rules::RuleSet};

use super::cwd::CwdCache;

/// The /proc that `guard run` reads: the engine's [`Lookup`], and the processes running at start.
pub(crate) struct Proc {
    root: PathBuf,
    markers: Vec<String>,
    clk_tck: u64,
    /// Cwds noted as execs left the ring.
    pub cwds: std::sync::Arc<CwdCache>,
}

impl Proc {
    /// `rules` say which new programs' cwd is read as their exec leaves the ring.
    pub(crate) fn new(root: impl Into<PathBuf>, markers: Vec<String>, rules: RuleSet) -> std::io::Result<Self> {
        let root = root.into();
        let cwds = std::sync::Arc::new(CwdCache::spawn(root.clone(), 4096, Box::new(move |p| rules.may_run(p)))?);
        Ok(Self { root, markers, clk_tck: clk_tck(), cwds })
    }

    fn marker_set(&self) -> BTreeSet<&str> {
        self.markers.iter().map(String::as_str).collect()
    }

    /// Every running process; empty (and logged) when /proc cannot be listed.
    pub(crate) fn running(&self) -> Vec<SeedProcess> {
        read_all(&self.root, &self.marker_set(), self.clk_tck).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read running processes; attribution starts empty");
            Vec::new()
        })
    }
}

impl Lookup for Proc {
    fn process(&mut self, pid: u32) -> Option<SeedProcess> {
        read_one(&self.root, pid, &self.marker_set(), self.clk_tck)
    }
    fn cwd(&mut self, pid: u32) -> Option<String> {
        self.cwds.take(pid).or_else(|| read_cwd(&self.root, pid))
    }
}

/// Environment values kept per marker, at most (markers are flags or short names).
const MAX_MARKER_VALUE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub(crate) enum SeedError {
    #[error("cannot list {path}: {source}")]
    List {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads every process under `proc_root` (normally `/proc`). `markers` is the closed set of
/// environment variable names to keep ([`super::agents::Catalog::marker_names`]); `clk_tck` is
/// the kernel's USER_HZ (100 nearly everywhere), used to convert start times to 100 Hz ticks.
pub(crate) fn read_all(
    proc_root: &Path,
    markers: &BTreeSet<&str>,
    clk_tck: u64,
) -> Result<Vec<SeedProcess>, SeedError> {
    let dir = fs::read_dir(proc_root).map_err(|source| SeedError::List {
        path: proc_root.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(p) = read_one(proc_root, pid, markers, clk_tck) {
            out.push(p);
        }
    }
    out.sort_by_key(|p| p.pid);
    Ok(out)
}

/// One process, or `None` when it has gone (its stat file is the one thing required).
pub(crate) fn read_one(
    proc_root: &Path,
    pid: u32,
    markers: &BTreeSet<&str>,
    clk_tck: u64,
) -> Option<SeedProcess> {
    let dir = proc_root.join(pid.to_string());
    let stat = fs::read_to_string(dir.join("stat")).ok()?;
    let (comm, ppid, start) = parse_stat(&stat)?;
    let clk = clk_tck.max(1);
    Some(SeedProcess {
        pid,
        ppid,
        start_ticks: start.saturating_mul(100) / clk,
        uid: fs::read_to_string(dir.join("status"))
            .ok()
            .as_deref()
            .and_then(parse_uid),
        exe: fs::read_link(dir.join("exe"))
            .ok()
            .map(|p| strip_deleted(&p.to_string_lossy()).to_owned()),
        argv: fs::read(dir.join("cmdline"))
            .map(|b| split_nul(&b))
            .unwrap_or_default(),
        comm: Some(comm),
        cwd: fs::read_link(dir.join("cwd"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned()),
        cgroup: fs::read_to_string(dir.join("cgroup"))
            .ok()
            .as_deref()
            .and_then(parse_cgroup),
        markers: fs::read(dir.join("environ"))
            .map(|b| pick_markers(&b, markers))
            .unwrap_or_default(),
    })
}

/// The cwd of a live process (for rules judged at exec time).
pub(crate) fn read_cwd(proc_root: &Path, pid: u32) -> Option<String> {
    fs::read_link(proc_root.join(pid.to_string()).join("cwd"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// USER_HZ from the C library.
pub(crate) fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(v).ok().filter(|v| *v > 0).unwrap_or(100)
}

/// (comm, ppid, starttime) from `/proc/PID/stat`. comm may hold spaces and parentheses, so the
/// fields are counted from the last `)`.
pub(crate) fn parse_stat(stat: &str) -> Option<(String, u32, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); ppid is field 4, starttime field 22.
    let ppid = rest.get(1)?.parse().ok()?;
    let start = rest.get(19)?.parse().ok()?;
    Some((comm, ppid, start))
}

fn parse_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The cgroup v2 path (`0::/path`), else the first v1 line's path.
fn parse_cgroup(text: &str) -> Option<String> {
    let line = text
        .lines()
        .find(|l| l.starts_with("0::"))
        .or_else(|| text.lines().next())?;
    line.splitn(3, ':').nth(2).map(str::to_owned)
}

fn strip_deleted(p: &str) -> &str {
    p.strip_suffix(" (deleted)").unwrap_or(p)
}

fn split_nul(b: &[u8]) -> Vec<String> {
    b.split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn pick_markers(environ: &[u8], names: &BTreeSet<&str>) -> Vec<(String, String)> {
    environ
        .split(|&c| c == 0)
        .filter_map(|kv| {
            let kv = std::str::from_utf8(kv).ok()?;
            let (k, v) = kv.split_once('=')?;
            names
                .contains(k)
                .then(|| (k.to_owned(), v.chars().take(MAX_MARKER_VALUE).collect()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_comm() {
        let stat = "1234 (we ird) (x)) S 77 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 100 18446744073709551615";
        assert_eq!(parse_stat(stat), Some(("we ird) (x)".into(), 77, 98765)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_a_fake_proc_tree() {
        let root = tempfile::tempdir().expect("tempdir");
        let d = root.path().join("42");
        fs::create_dir_all(&d).expect("mkdir");
        fs::write(
            d.join("stat"),
            "42 (node) S 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5000 0 0",
        )
        .expect("stat");
        fs::write(
            d.join("status"),
            "Name:\tnode\nUid:\t1000\t1000\t1000\t1000\n",
        )
        .expect("status");
        fs::write(
            d.join("cmdline"),
            b"node\0/usr/lib/node_modules/@google/gemini-cli/dist/index.js\0",
        )
        .expect("cmdline");
        fs::write(
            d.join("cgroup"),
            "0::/user.slice/user-1000.slice/session-1.scope\n",
        )
        .expect("cgroup");
        fs::write(d.join("environ"), b"HOME=/home/u\0GEMINI_CLI=1\0SECRET=x\0").expect("environ");
        std::os::unix::fs::symlink("/usr/bin/node", d.join("exe")).expect("exe");
        std::os::unix::fs::symlink("/home/u/proj", d.join("cwd")).expect("cwd");
        fs::create_dir_all(root.path().join("self")).expect("non-numeric entries are skipped");
        let names: BTreeSet<&str> = ["GEMINI_CLI", "CLAUDECODE"].into_iter().collect();
        let got = read_all(root.path(), &names, 100).expect("reads");
        assert_eq!(
            got,
            vec![SeedProcess {
                pid: 42,
                ppid: 1,
                start_ticks: 5000,
                uid: Some(1000),
                exe: Some("/usr/bin/node".into()),
                argv: vec![
                    "node".into(),
                    "/usr/lib/node_modules/@google/gemini-cli/dist/index.js".into()
                ],
                comm: Some("node".into()),
                cwd: Some("/home/u/proj".into()),
                cgroup: Some("/user.slice/user-1000.slice/session-1.scope".into()),
                markers: vec![("GEMINI_CLI".into(), "1".into())],
            }]
        );
        // USER_HZ other than 100 is converted to 100 Hz ticks.
        assert_eq!(
            read_one(root.path(), 42, &names, 1000).map(|p| p.start_ticks),
            Some(500)
        );
    }

    #[test]
    fn reads_this_process_from_real_proc() {
        let me = std::process::id();
        let p =
            read_one(Path::new("/proc"), me, &BTreeSet::new(), clk_tck()).expect("own /proc entry");
        assert_eq!(p.pid, me);
        assert!(p.exe.is_some() && !p.argv.is_empty() && p.cwd.is_some());
    }
}
