//! A TLS file whose attach failed is tried again, 0.5 s, 2 s, 8 s and 30 s after each failure,
//! then given up (and the log says so). Each try goes through every path that still leads to the
//! same file, by (device, inode): the path it was found through, the path its processes see, and
//! for each process known to map it `/proc/PID/root/…`, `/proc/PID/exe` and
//! `/proc/PID/map_files/…`. The file of an agent that is still running is then reachable even
//! after its own path vanished (a sandbox root that is gone, an upgrade that renamed it).
//!
//! A file whose offsets the kernel refused (`invalid`) is given up at once: the same offsets in
//! the same file get the same answer, and each try would place, for a moment, the probes that
//! came before the refused one.
//!
//! The daemon loop drives this on its tick, since the kernel handle lives there; an attempt is a
//! few system calls and nothing here waits. [`Retries`], [`attempt`] and [`paths`] hold the logic
//! and are tested without root; [`Attacher`] ties them to the kernel, the engine, the log and the
//! failure counts behind `guard_tls_attach_failures_total`.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use guard_core::{Engine, hooks::Library};

use crate::{
    kernel::{
        Kernel,
        errno::{self, FailReason},
    },
    sys::{limits, targets::TlsTarget},
};

/// The wait after the first, second, ... failed attempt; after the last one guard gives up.
pub(crate) const BACKOFF: [Duration; 4] =
    [Duration::from_millis(500), Duration::from_secs(2), Duration::from_secs(8), Duration::from_secs(30)];

/// A file, by (device, inode).
pub(crate) type Key = (u64, u64);

fn key(t: &TlsTarget) -> Key {
    (t.dev, t.ino)
}

/// One failed attach call.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub path: PathBuf,
    pub errno: Option<i32>,
    pub message: String,
}

impl Failure {
    pub(crate) const fn reason(&self) -> FailReason {
        FailReason::from_errno(self.errno)
    }
}

/// What follows a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    RetryIn(Duration),
    GiveUp,
}

struct Waiting {
    target: TlsTarget,
    /// Attempts that failed so far (the first attach included).
    failed: usize,
    at: Instant,
}

/// The files waiting for their next attempt.
#[derive(Default)]
pub(crate) struct Retries {
    waiting: BTreeMap<Key, Waiting>,
}

impl Retries {
    /// Records a failed attempt at `target` and says when the next one is, or that there is none
    /// (the file is then forgotten): after the last wait, or at once when a failure was
    /// `invalid`.
    pub(crate) fn failed(&mut self, target: &TlsTarget, failures: &[Failure], now: Instant) -> Next {
        let k = key(target);
        let failed = self.waiting.get(&k).map_or(0, |w| w.failed) + 1;
        let hopeless = failures.iter().any(|f| f.reason() == FailReason::Invalid);
        match BACKOFF.get(failed - 1).filter(|_| !hopeless) {
            Some(&wait) => {
                self.waiting.insert(k, Waiting { target: target.clone(), failed, at: now + wait });
                Next::RetryIn(wait)
            }
            None => {
                self.waiting.remove(&k);
                Next::GiveUp
            }
        }
    }

    /// The files whose next attempt is due, with how many attempts failed before. A file no
    /// longer `wanted` (attached or rejected meanwhile) is dropped instead. The files stay listed
    /// until [`Self::failed`] or [`Self::done`] says how the attempt went.
    pub(crate) fn due(&mut self, now: Instant, wanted: impl Fn(Key) -> bool) -> Vec<(TlsTarget, usize)> {
        self.waiting.retain(|k, _| wanted(*k));
        self.waiting.values().filter(|w| w.at <= now).map(|w| (w.target.clone(), w.failed)).collect()
    }

    /// The file attached (or no longer needs to): no more attempts.
    pub(crate) fn done(&mut self, k: Key) {
        self.waiting.remove(&k);
    }

    #[cfg(test)]
    fn is_waiting(&self, k: Key) -> bool {
        self.waiting.contains_key(&k)
    }
}

/// Tries `target` through each of `paths` in turn, and returns the path that took it with what
/// `attach` gave, or every failure. No path at all is a failure too (ENOENT).
pub(crate) fn attempt<T>(
    target: &TlsTarget,
    paths: &[PathBuf],
    mut attach: impl FnMut(&TlsTarget) -> Result<T, Failure>,
) -> Result<(TlsTarget, T), Vec<Failure>> {
    if paths.is_empty() {
        let message = "no path leads to the file any more".to_owned();
        return Err(vec![Failure { path: target.attach_path.clone(), errno: Some(libc::ENOENT), message }]);
    }
    let mut failures = Vec::new();
    for path in paths {
        let via = TlsTarget { attach_path: path.clone(), ..target.clone() };
        match attach(&via) {
            Ok(v) => return Ok((via, v)),
            Err(f) => failures.push(f),
        }
    }
    Err(failures)
}

/// The paths that lead to the target's file now, the one it was found through first: the path
/// its processes see, then through each of `pids` (processes known to map it) under `proc`.
/// A path that leads elsewhere (the file was replaced) is left out.
pub(crate) fn paths(target: &TlsTarget, pids: &[u32], proc: &Path) -> Vec<PathBuf> {
    let mut all = vec![target.attach_path.clone(), PathBuf::from(&target.path)];
    for pid in pids {
        let dir = proc.join(pid.to_string());
        all.push(dir.join("root").join(target.path.trim_start_matches('/')));
        all.push(dir.join("exe"));
        all.extend(map_file(&dir, target.ino));
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for p in all {
        if !out.contains(&p) && leads_to(&p, key(target)) {
            out.push(p);
        }
    }
    out
}

fn leads_to(path: &Path, k: Key) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && (m.dev(), m.ino()) == k)
}

/// `map_files/START-END` of a mapping of inode `ino` in the process directory `dir`. Found by
/// inode, not by name: `maps` shows the file's current name, which a rename changed.
fn map_file(dir: &Path, ino: u64) -> Option<PathBuf> {
    let maps = fs::read_to_string(dir.join("maps")).ok()?;
    maps.lines().find_map(|l| {
        let mut f = l.split_ascii_whitespace();
        let range = f.next()?;
        let inode: u64 = f.nth(3)?.parse().ok()?;
        if inode != ino {
            return None;
        }
        // map_files names drop the zero padding `maps` has.
        let (start, end) = range.split_once('-')?;
        let hex = |s: &str| u64::from_str_radix(s, 16).ok();
        Some(dir.join("map_files").join(format!("{:x}-{:x}", hex(start)?, hex(end)?)))
    })
}

/// TEST ONLY, for the privileged test of this retry (`tests/tests/attach_retry.rs`), which needs
/// a failure that lasts across a few gauge refreshes. `GUARD_TEST_ATTACH_FAIL=NAME:N` sends the
/// first N attempts at a file named NAME (the last part of the path its process maps) through
/// a path that does not exist, so that the kernel itself answers ENOENT; later attempts go the
/// usual way. Unset (always, outside that test) it does nothing.
pub(crate) struct TestFault {
    name: String,
    left: usize,
}

const TEST_FAULT_ENV: &str = "GUARD_TEST_ATTACH_FAIL";

impl TestFault {
    pub(crate) fn from_env() -> Option<Self> {
        let raw = std::env::var(TEST_FAULT_ENV).ok()?;
        let fault = Self::parse(&raw);
        match &fault {
            Some(f) => tracing::warn!(file = %f.name, attempts = f.left, "{TEST_FAULT_ENV} is set: a test makes these attaches fail"),
            None => tracing::warn!(value = %raw, "{TEST_FAULT_ENV} ignored: not NAME:N"),
        }
        fault
    }

    fn parse(raw: &str) -> Option<Self> {
        let (name, n) = raw.rsplit_once(':')?;
        let left = n.parse().ok()?;
        (!name.is_empty()).then(|| Self { name: name.to_owned(), left })
    }

    /// The paths of this attempt: a vanished one while the fault lasts for this file.
    fn apply(&mut self, target: &TlsTarget, paths: Vec<PathBuf>) -> Vec<PathBuf> {
        let named = Path::new(&target.path).file_name().is_some_and(|n| n == self.name.as_str());
        if !named || self.left == 0 {
            return paths;
        }
        self.left -= 1;
        let mut gone = target.attach_path.clone().into_os_string();
        gone.push(".guard-test-vanished");
        vec![gone.into()]
    }
}

/// Attaches TLS files, retries those that failed, and counts the failures.
#[derive(Default)]
pub(crate) struct Attacher {
    retries: Retries,
    fault: Option<TestFault>,
    /// Failed attach calls, by (library, reason): the totals of `guard_tls_attach_failures_total`.
    failures: HashMap<(Library, FailReason), u64>,
}

impl Attacher {
    pub(crate) fn new() -> Self {
        Self { fault: TestFault::from_env(), ..Self::default() }
    }

    /// The first attempt at a file the scanner found, through the path it was found through if
    /// that still leads to it (not to a file put in its place since the analysis). True if the
    /// file is newly attached.
    pub(crate) fn first(&mut self, kernel: &mut Kernel, engine: &mut Engine, t: &TlsTarget, now: Instant) -> bool {
        let own = Some(t.attach_path.clone()).filter(|p| leads_to(p, key(t)));
        self.try_paths(kernel, engine, t, own.into_iter().collect(), 0, now)
    }

    /// The attempts due now. `rejected` says which files were detached for good; a file attached
    /// meanwhile is not tried either. `pids` lists the processes known to map a file.
    pub(crate) fn retry(
        &mut self,
        kernel: &mut Kernel,
        engine: &mut Engine,
        now: Instant,
        rejected: impl Fn(Key) -> bool,
        pids: impl Fn(Key) -> Vec<u32>,
    ) {
        let due = self.retries.due(now, |k| !rejected(k) && kernel.target_id(k.0, k.1).is_none());
        for (t, failed) in due {
            let paths = paths(&t, &pids(key(&t)), Path::new("/proc"));
            let _ = self.try_paths(kernel, engine, &t, paths, failed, now);
        }
    }

    /// Failed attach calls so far, by library and reason.
    pub(crate) fn failures(&self) -> impl Iterator<Item = ((Library, FailReason), u64)> + '_ {
        self.failures.iter().map(|(k, n)| (*k, *n))
    }

    /// True if the file is newly attached.
    fn try_paths(&mut self, kernel: &mut Kernel, engine: &mut Engine, t: &TlsTarget, paths: Vec<PathBuf>, failed: usize, now: Instant) -> bool {
        let paths = match self.fault.as_mut() {
            Some(f) => f.apply(t, paths),
            None => paths,
        };
        let result = attempt(t, &paths, |via| {
            kernel.attach_tls(via).map_err(|e| Failure { path: via.attach_path.clone(), errno: e.errno(), message: e.to_string() })
        });
        match result {
            Ok((via, Some((id, hooks)))) => {
                self.retries.done(key(t));
                attached(engine, &via, id, hooks, failed);
                true
            }
            // Attached already, by another path.
            Ok((_, None)) => {
                self.retries.done(key(t));
                false
            }
            Err(failures) => {
                let next = self.retries.failed(t, &failures, now);
                for f in &failures {
                    *self.failures.entry((t.library, f.reason())).or_default() += 1;
                    log_failure(t, f, failed + 1, next);
                }
                if next == Next::GiveUp {
                    let refused = failures.iter().any(|f| f.reason() == FailReason::Invalid);
                    let why = if refused { "the kernel refused its offsets" } else { "every retry failed" };
                    tracing::warn!(path = %t.path, attempts = failed + 1, why, "TLS target given up: not attached; its processes stay blind (attach_failed)");
                }
                false
            }
        }
    }
}

fn attached(engine: &mut Engine, t: &TlsTarget, id: u32, hooks: usize, retries: usize) {
    let guess = t.strategy.is_guess();
    if guess {
        engine.guessed(id);
    }
    let via = (retries > 0).then(|| t.attach_path.display().to_string());
    tracing::info!(path = %t.path, kind = ?t.kind, library = ?t.library, strategy = ?t.strategy, also = ?t.also, hooks, id, verified = !guess, retries, via, "attached TLS target");
}

fn log_failure(t: &TlsTarget, f: &Failure, attempt: usize, next: Next) {
    let retry_in_ms = match next {
        Next::RetryIn(d) => Some(d.as_millis() as u64),
        Next::GiveUp => None,
    };
    let (errno, reason) = (errno::name(f.errno), f.reason().as_str());
    let attach_path = f.path.display();
    if f.reason() == FailReason::TooManyFiles {
        let limit = limits::open_files().map(|l| l.0).ok();
        tracing::warn!(path = %t.path, %attach_path, errno = %errno, reason, attempt, retry_in_ms, open_files_limit = limit, error = %f.message, "TLS target not attached: guard's open-file limit is reached (every probe is an open file; raise LimitNOFILE)");
    } else {
        tracing::warn!(path = %t.path, %attach_path, errno = %errno, reason, attempt, retry_in_ms, error = %f.message, "TLS target not attached");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use std::os::unix::fs::symlink;

    use guard_core::hooks::{Hook, HookKind, Strategy};

    use super::*;
    use crate::sys::targets::LibraryKind;

    fn target(path: &Path) -> TlsTarget {
        let m = fs::metadata(path).unwrap();
        TlsTarget {
            attach_path: path.into(),
            path: path.to_string_lossy().into_owned(),
            kind: LibraryKind::Embedded,
            dev: m.dev(),
            ino: m.ino(),
            library: Library::Boringssl,
            strategy: Strategy::Structural,
            hooks: vec![Hook { kind: HookKind::SslWrite, offset: 0x40 }],
            also: None,
            stamp: crate::sys::targets::Stamp::of(&m),
        }
    }

    /// A stand-in for the kernel: like `perf_event_open`, it resolves the path and fails with the
    /// errno of the lookup.
    fn open(t: &TlsTarget) -> Result<(), Failure> {
        fs::File::open(&t.attach_path)
            .map(drop)
            .map_err(|e| Failure { path: t.attach_path.clone(), errno: e.raw_os_error(), message: e.to_string() })
    }

    /// A directory holding `agent` (a file) and a fake `/proc` with process 42, whose `exe`,
    /// `root` and `map_files` lead to it the way the kernel's links do.
    fn fixture(name: &str) -> (PathBuf, PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("guard-attach-retry-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("proc/42/map_files")).unwrap();
        let agent = dir.join("agent");
        fs::write(&agent, b"\x7fELF not really").unwrap();
        symlink("/", dir.join("proc/42/root")).unwrap();
        (dir.clone(), agent, dir.join("proc"))
    }

    /// The kernel's links point at the file wherever it now is.
    fn link_process(proc: &Path, file: &Path) {
        let ino = fs::metadata(file).unwrap().ino();
        let maps = format!("00400000-00401000 r-xp 00000000 fe:01 {ino} {}\n", file.display());
        fs::write(proc.join("42/maps"), maps).unwrap();
        let _ = fs::remove_file(proc.join("42/exe"));
        symlink(file, proc.join("42/exe")).unwrap();
        let _ = fs::remove_file(proc.join("42/map_files/400000-401000"));
        symlink(file, proc.join("42/map_files/400000-401000")).unwrap();
    }

    #[test]
    fn a_vanished_path_fails_with_enoent_and_the_retry_attaches_through_the_process() {
        let (dir, agent, proc) = fixture("vanish");
        let t = target(&agent);
        // Found, then renamed before the attach: the path the scanner gave is gone.
        let moved = dir.join("agent-moved");
        fs::rename(&agent, &moved).unwrap();
        link_process(&proc, &moved);
        let t0 = Instant::now();
        let mut r = Retries::default();
        let failures = attempt(&t, std::slice::from_ref(&t.attach_path), open).unwrap_err();
        assert_eq!(failures.len(), 1);
        assert_eq!((failures[0].errno, failures[0].reason()), (Some(libc::ENOENT), FailReason::NoSuchFile));
        assert_eq!(r.failed(&t, &failures, t0), Next::RetryIn(Duration::from_millis(500)));

        assert!(r.due(t0 + Duration::from_millis(499), |_| true).is_empty(), "not before its time");
        let due = r.due(t0 + Duration::from_millis(500), |_| true);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1, 1, "one attempt failed before");
        let ways = paths(&due[0].0, &[42], &proc);
        assert_eq!(ways, [proc.join("42/exe"), proc.join("42/map_files/400000-401000")], "the vanished paths are left out");
        let (via, ()) = attempt(&due[0].0, &ways, open).unwrap();
        assert_eq!(via.attach_path, proc.join("42/exe"));
        assert_eq!((via.dev, via.ino), (t.dev, t.ino));
        r.done(key(&t));
        assert!(r.due(t0 + Duration::from_secs(3600), |_| true).is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn every_path_is_tried_until_one_takes_it_and_each_failure_is_kept() {
        let (dir, agent, proc) = fixture("each");
        let t = target(&agent);
        link_process(&proc, &agent);
        let ways = paths(&t, &[42], &proc);
        // Its own path first (the path the process sees is the same one: listed once).
        assert_eq!(ways, [agent.clone(), proc.join("42/root").join(agent.strip_prefix("/").unwrap()), proc.join("42/exe"), proc.join("42/map_files/400000-401000")]);
        let mut tried = Vec::new();
        let took = attempt(&t, &ways, |via| {
            tried.push(via.attach_path.clone());
            if via.attach_path.ends_with("exe") {
                Ok("linked")
            } else {
                Err(Failure { path: via.attach_path.clone(), errno: Some(libc::EMFILE), message: "Too many open files".into() })
            }
        });
        assert_eq!(took.unwrap().1, "linked");
        assert_eq!(tried, ways[..3]);
        let failed = attempt(&t, &ways, |via| Err::<(), _>(Failure { path: via.attach_path.clone(), errno: Some(libc::EMFILE), message: String::new() })).unwrap_err();
        assert_eq!(failed.len(), ways.len());
        assert!(failed.iter().all(|f| f.reason() == FailReason::TooManyFiles));
        let none = attempt(&t, &[], open).unwrap_err();
        assert_eq!(none[0].reason(), FailReason::NoSuchFile, "no path at all");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_path_that_now_leads_to_another_file_is_not_used() {
        let (dir, agent, proc) = fixture("replaced");
        let t = target(&agent);
        let moved = dir.join("agent-old");
        fs::rename(&agent, &moved).unwrap();
        // An upgrade put a new file at the old path: attaching there would place the old file's
        // offsets in it.
        fs::write(&agent, b"a new build").unwrap();
        link_process(&proc, &moved);
        assert_eq!(paths(&t, &[42], &proc), [proc.join("42/exe"), proc.join("42/map_files/400000-401000")]);
        assert!(paths(&t, &[], &proc).is_empty(), "no process maps it: nothing leads to it");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn backoff_then_give_up() {
        let (dir, agent, _) = fixture("backoff");
        let t = target(&agent);
        let mut r = Retries::default();
        let mut now = Instant::now();
        let mut waits = Vec::new();
        let emfile = [Failure { path: agent.clone(), errno: Some(libc::EMFILE), message: String::new() }];
        while let Next::RetryIn(d) = r.failed(&t, &emfile, now) {
            waits.push(d);
            assert!(r.due(now + d - Duration::from_millis(1), |_| true).is_empty());
            now += d;
            assert_eq!(r.due(now, |_| true).len(), 1);
        }
        assert_eq!(waits, BACKOFF);
        assert_eq!(waits.iter().map(|d| d.as_millis()).collect::<Vec<_>>(), [500, 2000, 8000, 30000]);
        assert!(!r.is_waiting(key(&t)), "given up: forgotten");
        assert!(r.due(now + Duration::from_secs(3600), |_| true).is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn offsets_the_kernel_refused_are_not_tried_again() {
        let (dir, agent, _) = fixture("invalid");
        let t = target(&agent);
        let mut r = Retries::default();
        let fail = |errno| Failure { path: agent.clone(), errno: Some(errno), message: String::new() };
        assert_eq!(r.failed(&t, &[fail(libc::ENOENT), fail(errno::ENOTSUPP)], Instant::now()), Next::GiveUp);
        assert!(!r.is_waiting(key(&t)));
        assert_eq!(r.failed(&t, &[fail(libc::ENOENT)], Instant::now()), Next::RetryIn(BACKOFF[0]));
        assert_eq!(r.failed(&t, &[fail(libc::EINVAL)], Instant::now()), Next::GiveUp, "after a retry too");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_attached_or_rejected_meanwhile_is_not_retried() {
        let (dir, agent, _) = fixture("meanwhile");
        let other = dir.join("other");
        fs::write(&other, b"other").unwrap();
        let (a, b) = (target(&agent), target(&other));
        let mut r = Retries::default();
        let now = Instant::now();
        let enoent = [Failure { path: agent.clone(), errno: Some(libc::ENOENT), message: String::new() }];
        r.failed(&a, &enoent, now);
        r.failed(&b, &enoent, now);
        let later = now + Duration::from_secs(1);
        let due = r.due(later, |k| k != key(&a));
        assert_eq!(due.iter().map(|d| key(&d.0)).collect::<Vec<_>>(), [key(&b)]);
        assert!(!r.is_waiting(key(&a)), "dropped for good");
        assert!(r.is_waiting(key(&b)));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn map_files_names_come_from_maps_by_inode() {
        let (dir, _, proc) = fixture("maps");
        let maps = "\
001fe000-00200000 r--p 00000000 fe:01 77 /opt/kilo/bin/kilo
024c8000-05bae000 r-xp 022c8000 fe:01 77 /opt/kilo/bin/kilo
7f0000000000-7f0000001000 r-xp 00000000 fe:01 78 /usr/lib/libssl.so.3
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0 [vdso]
";
        fs::write(proc.join("42/maps"), maps).unwrap();
        let d = proc.join("42");
        assert_eq!(map_file(&d, 77), Some(d.join("map_files/1fe000-200000")));
        assert_eq!(map_file(&d, 78), Some(d.join("map_files/7f0000000000-7f0000001000")));
        assert_eq!(map_file(&d, 79), None);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_test_fault_sends_n_attempts_at_the_named_file_nowhere() {
        assert!(TestFault::parse("claude").is_none());
        assert!(TestFault::parse(":3").is_none());
        assert!(TestFault::parse("claude:x").is_none());
        let (dir, agent, _) = fixture("fault");
        let mut f = TestFault::parse("agent:2").unwrap();
        let t = target(&agent);
        let other = TlsTarget { path: "/usr/lib/libssl.so.3".into(), ..t.clone() };
        let ways = vec![agent.clone()];
        assert_eq!(f.apply(&other, ways.clone()), ways, "another file");
        for _ in 0..2 {
            let gone = f.apply(&t, ways.clone());
            assert_eq!(gone.len(), 1);
            let failure = attempt(&t, &gone, open).unwrap_err();
            assert_eq!(failure[0].reason(), FailReason::NoSuchFile, "{gone:?}");
        }
        assert_eq!(f.apply(&t, ways.clone()), ways, "then the usual way");
        fs::remove_dir_all(dir).unwrap();
    }
}
