//! `[deletions]`: agents' deletions (docs/deletions.md): counted, audited, and which places the
//! kernel protects when deletions are enforced.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use guard_core::{
    deletions::DeletionConfig,
    enforce::Mode,
    places::{Place, place_from_str},
};

/// Directories under each home whose deletion is audited at the first file and, enforced, killed.
pub(crate) const PROTECTED: [&str; 7] = ["~/.ssh", "~/.aws", "~/.gnupg", "~/.kube", "~/.config/gcloud", "~/.docker", "/etc"];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeletionsConfig {
    /// Report agents' deletions at all.
    pub enabled: bool,
    /// Files one process deletes in one place outside its work tree, temp and caches before an
    /// audit record (`system` and the protected dirs: the first file).
    pub audit_threshold: u32,
    /// Protected directories: `~/x` under every home, or absolute.
    pub protected: Vec<String>,
    /// Places whose deletions the kernel kills in enforce mode (`home`, `system`, `outside`,
    /// `other_repo`, `cache`, `temp`); the protected dirs always are.
    pub enforce_places: Vec<String>,
    /// More temp directories (absolute), besides /tmp, /var/tmp, /dev/shm and $TMPDIR.
    pub temp: Vec<PathBuf>,
    /// More cache directories: `~/x` under every home, or absolute.
    pub cache: Vec<String>,
}

impl Default for DeletionsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            audit_threshold: 5,
            protected: PROTECTED.iter().map(|s| (*s).to_owned()).collect(),
            // Not `home` or `system` by default: package managers, version managers and shell
            // start-up scripts delete there as routine (pyenv's shims, pip and apt as root), and a
            // kill mid-way corrupts what they were changing. The protected dirs always are.
            enforce_places: Vec::new(),
            temp: Vec::new(),
            cache: Vec::new(),
        }
    }
}

impl DeletionsConfig {
    /// The first bad value: its key and why.
    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        if self.audit_threshold == 0 {
            return Err(("deletions.audit_threshold", "must be at least 1".into()));
        }
        for (key, list) in [("deletions.protected", &self.protected), ("deletions.cache", &self.cache)] {
            if let Some(p) = list.iter().find(|p| !(p.starts_with("~/") || p.starts_with('/')) || p.trim_matches(['~', '/']).is_empty()) {
                return Err((key, format!("{p:?} is neither `~/dir` nor an absolute directory below /")));
            }
        }
        if let Some(p) = self.temp.iter().find(|p| !p.is_absolute() || p.parent().is_none()) {
            return Err(("deletions.temp", format!("{} is not an absolute directory below /", p.display())));
        }
        for p in &self.enforce_places {
            match place_from_str(p) {
                Some(Place::Worktree | Place::Unknown) | None => {
                    return Err(("deletions.enforce_places", format!("{p:?} is not one of home, system, outside, other_repo, cache, temp")));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The places the kernel protects (checked names only).
    pub(crate) fn enforced(&self) -> Vec<Place> {
        self.enforce_places.iter().filter_map(|p| place_from_str(p)).collect()
    }

    /// The engine's settings; `mode` is the exec gate's (`would_block` in monitor mode).
    pub(crate) fn engine(&self, mode: Mode) -> DeletionConfig {
        DeletionConfig { enabled: self.enabled, audit_threshold: self.audit_threshold, mode, ..DeletionConfig::default() }
    }
}
