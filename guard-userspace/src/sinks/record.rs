//! `guard run --record FILE`: the engine's recording lines, written to a new file that only its
//! owner can read (it holds captured plaintext). The format is `guard_core::events::record`.
//!
//! The file is always new (`O_CREAT|O_EXCL`, and `O_NOFOLLOW`): guard runs as root, so opening a
//! path someone else prepared would hand them the plaintext (their file keeps its owner and mode)
//! or, through a symlink, overwrite a file of their choosing.

use std::{
    fs::OpenOptions,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use guard_core::events::record::{Line, RecordError, Recorder};

use super::files;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordingError {
    #[error(
        "recording {path} already exists ({kind}); guard writes a recording only to a new file it creates: \
         remove it or choose another path"
    )]
    Exists { path: PathBuf, kind: &'static str },
    #[error("cannot create recording {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Write(#[from] RecordError),
}

pub(crate) struct Recording {
    out: Recorder<std::fs::File>,
}

impl Recording {
    /// Creates `path`, mode 0600. An existing path, whatever it is (a file, a symlink, even a
    /// dangling one), is an error.
    pub(crate) fn create(path: &Path) -> Result<Self, RecordingError> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AlreadyExists => RecordingError::Exists { path: path.to_path_buf(), kind: files::kind_of(path) },
                _ => RecordingError::Open { path: path.to_path_buf(), source },
            })?;
        Ok(Self { out: Recorder::new(f) })
    }

    pub(crate) fn write(&mut self, lines: &[Line]) -> Result<(), RecordingError> {
        for l in lines {
            self.out.write(l)?;
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> Result<(), RecordingError> {
        Ok(self.out.flush()?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test")]
mod tests {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    use super::*;

    fn refused(path: &Path) -> String {
        let e = Recording::create(path).err().expect("refused");
        assert!(matches!(e, RecordingError::Exists { .. }), "{e:?}");
        e.to_string()
    }

    #[test]
    fn a_new_file_is_created_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let mut r = Recording::create(&path).unwrap();
        r.flush().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
    }

    #[test]
    fn an_existing_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        std::fs::write(&path, "someone else's").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let msg = refused(&path);
        assert!(msg.contains(&format!("recording {} already exists (a regular file)", path.display())), "{msg}");
        assert!(msg.contains("remove it or choose another path"), "{msg}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "someone else's");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o666);
    }

    #[test]
    fn a_symlink_is_refused_and_its_target_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (target, link) = (dir.path().join("target"), dir.path().join("rec.jsonl"));
        std::fs::write(&target, "precious").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(refused(&link).contains("(a symbolic link)"));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
        // A dangling link is not followed to create its target either.
        std::fs::remove_file(&target).unwrap();
        assert!(refused(&link).contains("(a symbolic link)"));
        assert!(!target.exists());
    }

    #[test]
    fn a_fifo_or_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
        assert!(refused(&fifo).contains("(a fifo)"));
        assert!(refused(dir.path()).contains("(a directory)"));
    }

    #[test]
    fn a_missing_directory_is_an_open_error() {
        let e = Recording::create(Path::new("/nonexistent-dir/rec.jsonl")).err().expect("fails");
        assert!(e.to_string().starts_with("cannot create recording /nonexistent-dir/rec.jsonl: "), "{e}");
    }
}
