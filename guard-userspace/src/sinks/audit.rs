//! The audit log sink: one JSON line per record, appended (O_APPEND, so concurrent writers and
//! `logrotate copytruncate` stay line-safe). When the path is renamed or deleted (rotation), the
//! next write notices the inode change and reopens the path. `-` writes to stdout.
//!
//! guard runs as root and the file may already exist (logrotate makes it), so every open, the
//! reopen after rotation included, refuses what another user could have prepared: a symlink (it
//! would aim guard's appends at a file of their choosing), anything but a regular file, and a file
//! not guard's own or open to group or others (they would read every argv guard logs).

use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};


use super::files;

#[derive(Debug, thiserror::Error)]
pub(crate) enum AuditError {
    #[error("cannot open audit log {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "audit log {path} is {kind}, not a regular file; guard follows no links and writes to no special \
         file for its audit log: remove it or choose another path"
    )]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "audit log {path} is owned by uid {uid} with mode {mode:04o}; guard (uid {euid}) appends only to a \
         file of its own that no one else can read or write: run `chown {euid} {path} && chmod 600 {path}`, \
         or remove it"
    )]
    NotPrivate { path: PathBuf, uid: u32, mode: u32, euid: u32 },
    #[error("cannot write audit log {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode audit record: {source}")]
    Encode {
        #[source]
        source: serde_json::Error,
    },
}

enum Sink {
    Stdout,
    File {
        path: PathBuf,
        file: File,
        dev: u64,
        ino: u64,
    },
}

pub(crate) struct AuditWriter {
    sink: Sink,
    /// Times the file was reopened after rotation.
    pub reopened: u64,
}

impl AuditWriter {
    /// `-` is stdout; anything else a file path, created if missing (mode 0600: argv may still
    /// reveal more than it should), or else a regular file of guard's own that only it can access.
    pub(crate) fn open(target: &str) -> Result<Self, AuditError> {
        let sink = if target == "-" {
            Sink::Stdout
        } else {
            open_file(Path::new(target))?
        };
        Ok(Self { sink, reopened: 0 })
    }

    /// Appends one line. The path is checked on every write (one `lstat`; destructive commands
    /// are rare), and reopened when it no longer names the open file. A symlink never names it,
    /// so one planted after rotation is refused, not written through.
    pub(crate) fn write(&mut self, rec: &impl serde::Serialize) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(rec).map_err(|source| AuditError::Encode { source })?;
        line.push(b'\n');
        if let Sink::File { path, dev, ino, .. } = &self.sink {
            let same = std::fs::symlink_metadata(path.as_path())
                .is_ok_and(|m| m.dev() == *dev && m.ino() == *ino);
            if !same {
                self.sink = open_file(&path.clone())?;
                self.reopened += 1;
            }
        }
        match &mut self.sink {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&line)
                    .and_then(|()| out.flush())
                    .map_err(|source| AuditError::Write {
                        path: "-".into(),
                        source,
                    })
            }
            Sink::File { path, file, .. } => {
                file.write_all(&line).map_err(|source| AuditError::Write {
                    path: path.clone(),
                    source,
                })
            }
        }
    }
}

fn open_file(path: &Path) -> Result<Sink, AuditError> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        // O_NOFOLLOW: a symlink fails (ELOOP) instead of being followed. O_NONBLOCK: a fifo
        // without a reader fails (ENXIO) instead of blocking the daemon; regular files ignore it.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let err = |source| AuditError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = opened.map_err(|source| not_regular(path).unwrap_or_else(|| err(source)))?;
    // Checked on the open file, so the path cannot be swapped between the check and the writes.
    let meta = file.metadata().map_err(err)?;
    check(path, &meta)?;
    Ok(Sink::File {
        path: path.to_path_buf(),
        file,
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// Why a path that could not be opened was refused, when what is there is not a regular file.
fn not_regular(path: &Path) -> Option<AuditError> {
    let t = std::fs::symlink_metadata(path).ok()?.file_type();
    (!t.is_file()).then(|| AuditError::NotRegular {
        path: path.to_path_buf(),
        kind: files::file_kind(t),
    })
}

/// Appends go only to a regular file that guard owns and that no one else may access.
fn check(path: &Path, meta: &std::fs::Metadata) -> Result<(), AuditError> {
    if !meta.file_type().is_file() {
        return Err(AuditError::NotRegular {
            path: path.to_path_buf(),
            kind: files::file_kind(meta.file_type()),
        });
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid || meta.mode() & 0o077 != 0 {
        return Err(AuditError::NotPrivate {
            path: path.to_path_buf(),
            uid: meta.uid(),
            mode: meta.mode() & 0o7777,
            euid,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use guard_core::audit::{AuditRecord, record::Action};
    use guard_core::rules::{Category, Severity};

    fn rec(n: u32) -> AuditRecord {
        AuditRecord {
            time: "2026-01-01T00:00:00Z".into(),
            host: "h".into(),
            agent: None,
            process_chain: vec![],
            pid: n,
            uid: None,
            user: None,
            cwd: None,
            argv: vec!["rm".into()],
            rule_id: "fs.rm-rf-root".into(),
            category: Category::FileDeletion,
            severity: Severity::Critical,
            why: String::new(),
            action: Action::Observed,
            mechanism: None,
            proposed_by: None,
        }
    }

    fn pids(path: &Path) -> Vec<u64> {
        std::fs::read_to_string(path)
            .expect("read")
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("json line")["pid"]
                    .as_u64()
                    .expect("pid")
            })
            .collect()
    }

    fn private_file(path: &Path, text: &str) {
        std::fs::write(path, text).expect("write");
        chmod(path, 0o600);
    }

    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).expect("meta").mode() & 0o7777
    }

    fn refused(path: &Path) -> AuditError {
        AuditWriter::open(path.to_str().expect("utf-8")).err().expect("refused")
    }

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.to_str().expect("utf-8")).expect("no NUL");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn appends_and_survives_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        private_file(&path, "");
        let mut w = AuditWriter::open(path.to_str().expect("utf-8")).expect("open");
        w.write(&rec(1)).expect("write");
        w.write(&rec(2)).expect("write");
        // logrotate's default: rename, and the writer must move to a fresh file at the path.
        let rotated = dir.path().join("audit.log.1");
        std::fs::rename(&path, &rotated).expect("rotate");
        w.write(&rec(3)).expect("write after rename");
        assert_eq!(pids(&rotated), [1, 2]);
        assert_eq!(pids(&path), [3]);
        // Deleted outright: recreated.
        std::fs::remove_file(&path).expect("delete");
        w.write(&rec(4)).expect("write after delete");
        assert_eq!(pids(&path), [4]);
        assert_eq!(w.reopened, 2);
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_fresh_file_is_created_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let mut w = AuditWriter::open(path.to_str().expect("utf-8")).expect("open");
        w.write(&rec(1)).expect("write");
        assert_eq!(mode(&path), 0o600);
        // SAFETY: geteuid has no preconditions.
        assert_eq!(std::fs::metadata(&path).expect("meta").uid(), unsafe { libc::geteuid() });
    }

    #[test]
    fn a_symlink_is_refused_and_its_target_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (target, link) = (dir.path().join("target"), dir.path().join("audit.log"));
        private_file(&target, "precious");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let e = refused(&link);
        assert!(matches!(e, AuditError::NotRegular { kind: "a symbolic link", .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("audit log {} is a symbolic link", link.display())), "{msg}");
        assert!(msg.contains("remove it or choose another path"), "{msg}");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "precious");
    }

    #[test]
    fn a_file_others_can_access_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        private_file(&path, "theirs\n");
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        for m in [0o666, 0o640, 0o604, 0o610] {
            chmod(&path, m);
            let e = refused(&path);
            let p = path.display();
            let want = format!(
                "audit log {p} is owned by uid {euid} with mode {m:04o}; guard (uid {euid}) appends only to a file \
                 of its own that no one else can read or write: run `chown {euid} {p} && chmod 600 {p}`, or remove it"
            );
            assert_eq!(e.to_string(), want);
            assert_eq!(mode(&path), m);
        }
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "theirs\n");
    }

    #[test]
    fn a_file_of_another_owner_is_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: giving a file to another uid needs root");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        private_file(&path, "theirs\n");
        std::os::unix::fs::chown(&path, Some(1000), Some(1000)).expect("chown");
        let e = refused(&path);
        assert!(matches!(e, AuditError::NotPrivate { uid: 1000, mode: 0o600, euid: 0, .. }), "{e:?}");
        assert!(e.to_string().contains("owned by uid 1000 with mode 0600"), "{e}");
        let meta = std::fs::metadata(&path).expect("meta");
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (1000, 0o600));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "theirs\n");
    }

    #[test]
    fn a_directory_or_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = refused(dir.path());
        assert!(matches!(e, AuditError::NotRegular { kind: "a directory", .. }), "{e:?}");
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        // No reader: the open would block without O_NONBLOCK.
        let e = refused(&fifo);
        assert!(matches!(e, AuditError::NotRegular { kind: "a fifo", .. }), "{e:?}");
        // With a reader the open succeeds, and the check on the open file refuses it.
        use std::os::unix::fs::OpenOptionsExt as _;
        let _reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .expect("reader");
        let e = refused(&fifo);
        assert!(matches!(e, AuditError::NotRegular { kind: "a fifo", .. }), "{e:?}");
    }

    #[test]
    fn a_symlink_planted_after_rotation_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, target) = (dir.path().join("audit.log"), dir.path().join("target"));
        let mut w = AuditWriter::open(path.to_str().expect("utf-8")).expect("open");
        w.write(&rec(1)).expect("write");
        let rotated = dir.path().join("audit.log.1");
        std::fs::rename(&path, &rotated).expect("rotate");
        private_file(&target, "precious");
        std::os::unix::fs::symlink(&target, &path).expect("symlink");
        let e = w.write(&rec(2)).expect_err("refused");
        assert!(matches!(e, AuditError::NotRegular { kind: "a symbolic link", .. }), "{e:?}");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "precious");
        // Even a link back to the file being written is not a reason to keep writing through it.
        std::fs::remove_file(&path).expect("unlink");
        std::os::unix::fs::symlink(&rotated, &path).expect("symlink");
        assert!(w.write(&rec(3)).is_err());
        // Once the link is gone, a fresh file is made and written.
        std::fs::remove_file(&path).expect("unlink");
        w.write(&rec(4)).expect("write after the link is gone");
        assert_eq!((pids(&rotated), pids(&path), w.reopened), (vec![1], vec![4], 1));
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn stdout_is_not_a_file() {
        let w = AuditWriter::open("-").expect("stdout");
        assert!(matches!(w.sink, Sink::Stdout));
    }

    #[test]
    fn an_unopenable_path_is_a_named_error() {
        let e = AuditWriter::open("/nonexistent-dir/audit.log")
            .err()
            .expect("fails");
        assert!(
            e.to_string()
                .starts_with("cannot open audit log /nonexistent-dir/audit.log"),
            "{e}"
        );
    }
}
