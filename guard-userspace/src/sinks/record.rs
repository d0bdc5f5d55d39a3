//! `guard run --record FILE`: the engine's recording lines, written to a new file that only its
//! owner can read (it holds captured plaintext). The format is `guard_core::events::record`.

use std::{fs::OpenOptions, os::unix::fs::OpenOptionsExt as _, path::Path};

use guard_core::events::record::{Line, RecordError, Recorder};

#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordingError {
    #[error("cannot open recording {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error(transparent)]
    Write(#[from] RecordError),
}

pub(crate) struct Recording {
    out: Recorder<std::fs::File>,
}

impl Recording {
    pub(crate) fn create(path: &Path) -> Result<Self, RecordingError> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| RecordingError::Open { path: path.display().to_string(), source })?;
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
