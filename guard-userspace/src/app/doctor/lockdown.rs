//! Kernel lockdown: the mode in `/sys/kernel/security/lockdown`, what it means for guard, or why
//! it could not be read. A bare `?` told an admin nothing; the mode decides whether guard loads.

use std::{fs, io::ErrorKind, path::Path};

use super::checks::{Check, Status};

/// What was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lockdown {
    /// The active mode: `none`, `integrity` or `confidentiality`.
    Mode(String),
    /// securityfs is mounted but has no `lockdown` file: the kernel has no lockdown LSM.
    NoLsm,
    /// Why the mode could not be read.
    Unreadable(String),
}

impl Lockdown {
    /// The active mode, if it was read.
    pub(crate) fn mode(&self) -> Option<&str> {
        match self {
            Self::Mode(m) => Some(m),
            Self::NoLsm | Self::Unreadable(_) => None,
        }
    }
}

/// Reads the lockdown mode under `sys` (`/sys` normally). The file lists every mode and brackets
/// the active one: `none [integrity] confidentiality`.
pub(crate) fn read(sys: &Path) -> Lockdown {
    let security = sys.join("kernel/security");
    match fs::read_to_string(security.join("lockdown")) {
        Ok(text) => match text.split_whitespace().find(|w| w.starts_with('[')) {
            Some(w) => Lockdown::Mode(w.trim_matches(['[', ']']).to_owned()),
            None => Lockdown::Unreadable(format!("no active mode in {:?}", text.trim())),
        },
        // A mounted securityfs always has `lsm`: then the lockdown LSM is what is missing.
        Err(e) if e.kind() == ErrorKind::NotFound && security.join("lsm").exists() => Lockdown::NoLsm,
        Err(e) if e.kind() == ErrorKind::NotFound => Lockdown::Unreadable(
            "securityfs is not mounted (mount -t securityfs securityfs /sys/kernel/security) or the kernel has no lockdown LSM".into(),
        ),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Lockdown::Unreadable("permission denied (run guard doctor as root)".into()),
        Err(e) => Lockdown::Unreadable(e.to_string()),
    }
}

/// What the mode means for guard. Only `confidentiality` stops it: the kernel then refuses BPF
/// reads of kernel memory (guard's programs read `task_struct`) and locks tracefs.
pub(crate) fn check(l: &Lockdown) -> Check {
    let (status, detail) = match l {
        Lockdown::Mode(m) if m == "none" => (Status::Ok, "none: nothing is locked down".to_owned()),
        Lockdown::Mode(m) if m == "integrity" => (
            Status::Ok,
            "integrity: the kernel refuses bpf_probe_write_user (writing a program's memory), which guard does not use".to_owned(),
        ),
        Lockdown::Mode(m) if m == "confidentiality" => (
            Status::Fail,
            "confidentiality: the kernel refuses BPF reads of kernel memory (bpf_probe_read_kernel) and locks tracefs, \
             both of which guard needs: it cannot run (boot with lockdown=integrity or none)"
                .to_owned(),
        ),
        Lockdown::Mode(other) => (Status::Warn, format!("{other}: a mode guard does not know")),
        Lockdown::NoLsm => (Status::Ok, "the kernel has no lockdown LSM (no lockdown file in securityfs): nothing is locked down".to_owned()),
        Lockdown::Unreadable(why) => (
            Status::Warn,
            format!("mode unknown: cannot read /sys/kernel/security/lockdown: {why}; guard runs under none or integrity, not under confidentiality"),
        ),
    };
    Check { name: "lockdown".into(), status, detail }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test")]
mod tests {
    use super::*;

    fn with(files: &[(&str, &str)]) -> (tempfile::TempDir, Lockdown) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("kernel/security")).unwrap();
        for (name, text) in files {
            fs::write(dir.path().join("kernel/security").join(name), text).unwrap();
        }
        let l = read(dir.path());
        (dir, l)
    }

    #[test]
    fn each_mode_says_what_it_means_for_guard() {
        let cases = [
            ("[none] integrity confidentiality\n", "none", Status::Ok, "nothing is locked down"),
            ("none [integrity] confidentiality\n", "integrity", Status::Ok, "bpf_probe_write_user"),
            ("none integrity [confidentiality]\n", "confidentiality", Status::Fail, "it cannot run"),
        ];
        for (text, mode, status, says) in cases {
            let (_dir, l) = with(&[("lockdown", text)]);
            assert_eq!(l.mode(), Some(mode));
            let c = check(&l);
            assert_eq!(c.status, status, "{mode}");
            assert!(c.detail.starts_with(mode) && c.detail.contains(says), "{}", c.detail);
        }
    }

    #[test]
    fn an_unreadable_mode_says_why() {
        let (_dir, l) = with(&[]);
        assert_eq!(l.mode(), None);
        let c = check(&l);
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("securityfs is not mounted (mount -t securityfs"), "{}", c.detail);
        assert!(c.detail.contains("not under confidentiality"), "{}", c.detail);

        let (_dir, l) = with(&[("lsm", "capability,bpf\n")]);
        assert_eq!(l, Lockdown::NoLsm);
        let c = check(&l);
        assert_eq!(c.status, Status::Ok);
        assert!(c.detail.starts_with("the kernel has no lockdown LSM"), "{}", c.detail);
    }
}
