//! The audit log sink: one JSON line per record, appended (O_APPEND, so concurrent writers and
//! `logrotate copytruncate` stay line-safe). When the path is renamed or deleted (rotation), the
//! next write notices the inode change and reopens the path. `-` writes to stdout.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use guard_core::audit::AuditRecord;

#[derive(Debug, thiserror::Error)]
pub(crate) enum AuditError {
    #[error("cannot open audit log {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
    /// reveal more than it should).
    pub(crate) fn open(target: &str) -> Result<Self, AuditError> {
        let sink = if target == "-" {
            Sink::Stdout
        } else {
            open_file(Path::new(target))?
        };
        Ok(Self { sink, reopened: 0 })
    }

    /// Appends one line. The path is checked on every write (one `stat`; destructive commands
    /// are rare), and reopened when it no longer names the open file.
    pub(crate) fn write(&mut self, rec: &AuditRecord) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(rec).map_err(|source| AuditError::Encode { source })?;
        line.push(b'\n');
        if let Sink::File { path, dev, ino, .. } = &self.sink {
            let same =
                std::fs::metadata(path.as_path()).is_ok_and(|m| m.dev() == *dev && m.ino() == *ino);
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
    let err = |source| AuditError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    let meta = file.metadata().map_err(err)?;
    Ok(Sink::File {
        path: path.to_path_buf(),
        file,
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use guard_core::audit::record::Action;
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

    #[test]
    fn appends_and_survives_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "").expect("pre-existing file is appended to");
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
        let mode = std::fs::metadata(&path).expect("meta").mode() & 0o777;
        assert_eq!(mode, 0o600);
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
