//! The real `guard run` as root, given output paths a hostile local user prepared: it refuses to
//! start, names the path, and leaves what is there exactly as it was.
#![allow(clippy::unwrap_used, reason = "test")]

use std::{
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::Duration,
};

use guard_tests::{
    daemon::{Daemon, run_refused},
    privileged, temp_path,
};

/// Kernel load comes before the outputs are opened; a debug build takes a few seconds.
const START: Duration = Duration::from_secs(60);

/// Everything about a file a refused start must not change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    bytes: Vec<u8>,
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: (i64, i64),
}

fn snapshot(path: &Path) -> Snapshot {
    let m = std::fs::symlink_metadata(path).unwrap();
    assert!(m.is_file(), "{}", path.display());
    Snapshot {
        bytes: std::fs::read(path).unwrap(),
        uid: m.uid(),
        gid: m.gid(),
        mode: m.mode() & 0o7777,
        mtime: (m.mtime(), m.mtime_nsec()),
    }
}

/// A file with `text`, owned by `uid`, with `mode`.
fn prepared(name: &str, text: &str, uid: u32, mode: u32) -> PathBuf {
    let path = temp_path(name);
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, text).unwrap();
    std::os::unix::fs::chown(&path, Some(uid), Some(uid)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn symlink_to(target: &Path, name: &str) -> PathBuf {
    let link = temp_path(name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(target, &link).unwrap();
    link
}

/// `guard run ARGS` refuses to start, saying each of `says`; the prepared file is untouched.
fn refused(args: &[&str], says: &[&str], untouched: &Path) {
    let before = snapshot(untouched);
    let mut all = vec!["--metrics-addr", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let stderr = run_refused(&all, START);
    for s in says {
        assert!(stderr.contains(s), "guard did not say {s:?}:\n{stderr}");
    }
    assert!(!stderr.contains("guard ready"), "{stderr}");
    assert_eq!(snapshot(untouched), before, "{} changed", untouched.display());
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_recording_path_that_is_a_symlink_is_refused() {
    if !privileged() {
        return;
    }
    let target = prepared("rec-target", "precious\n", 1000, 0o644);
    let link = symlink_to(&target, "rec-link.jsonl");
    let says = format!("recording {} already exists (a symbolic link)", link.display());
    refused(&["--audit-log", "off", "--record", s(&link)], &[&says, "remove it or choose another path"], &target);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
}

#[test]
fn an_existing_recording_of_another_user_is_refused() {
    if !privileged() {
        return;
    }
    let path = prepared("rec-theirs.jsonl", "someone else's\n", 1000, 0o666);
    let says = format!("recording {} already exists (a regular file)", path.display());
    refused(&["--audit-log", "off", "--record", s(&path)], &[&says, "remove it or choose another path"], &path);
}

#[test]
fn an_audit_log_path_that_is_a_symlink_is_refused() {
    if !privileged() {
        return;
    }
    // Root's own private file: only the link makes it wrong.
    let target = prepared("audit-target", "precious\n", 0, 0o600);
    let link = symlink_to(&target, "audit-link.log");
    let says = format!("audit log {} is a symbolic link", link.display());
    refused(&["--audit-log", s(&link)], &[&says, "remove it or choose another path"], &target);
}

#[test]
fn an_audit_log_others_can_access_is_refused() {
    if !privileged() {
        return;
    }
    let path = prepared("audit-open.log", "{\"old\":1}\n", 0, 0o666);
    let p = path.display();
    let says = format!("audit log {p} is owned by uid 0 with mode 0666");
    let fix = format!("chown 0 {p} && chmod 600 {p}");
    refused(&["--audit-log", s(&path)], &[&says, &fix], &path);
}

#[test]
fn an_audit_log_of_another_user_is_refused() {
    if !privileged() {
        return;
    }
    let path = prepared("audit-theirs.log", "{\"old\":1}\n", 1000, 0o600);
    let p = path.display();
    let says = format!("audit log {p} is owned by uid 1000 with mode 0600");
    let fix = format!("chown 0 {p} && chmod 600 {p}");
    refused(&["--audit-log", s(&path)], &[&says, &fix], &path);
}

#[test]
fn a_fresh_audit_log_and_recording_are_created_0600_for_root() {
    if !privileged() {
        return;
    }
    let audit = temp_path("fresh-audit.log");
    let _ = std::fs::remove_file(&audit);
    // Both files are opened before `guard ready`; the daemon is killed when `_d` drops.
    let _d = Daemon::start_with("fresh", &["--metrics-addr", "127.0.0.1:0", "--audit-log", s(&audit)]);
    for path in [audit, temp_path("fresh.jsonl")] {
        let m = std::fs::symlink_metadata(&path).unwrap();
        assert!(m.is_file(), "{}", path.display());
        assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o600), "{}", path.display());
    }
}
