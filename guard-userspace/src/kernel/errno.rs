//! What a failed TLS attach says: the errno under aya's error (its message names only the call,
//! "`perf_event_open` failed"), its name for the log, and its class for the
//! `guard_tls_attach_failures_total` metric.

use std::borrow::Cow;

use super::AttachError;

/// The kernel's ENOTSUPP, which libc does not name: a uprobe placed on an instruction the kernel
/// will not single-step or emulate, or that is not an instruction boundary it can decode.
pub(crate) const ENOTSUPP: i32 = 524;

/// Why an attach failed, by errno: the `reason` label (a closed set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum FailReason {
    /// EMFILE, ENFILE: every probe is an open file, and guard's open-file limit was reached.
    TooManyFiles,
    /// ENOENT, ENOTDIR, ESTALE: the path no longer leads to the file.
    NoSuchFile,
    /// EINVAL, ENOEXEC, ENOTSUPP: the kernel refused the offset (past the end of the file, not an
    /// instruction it can probe).
    Invalid,
    /// EPERM, EACCES.
    Permission,
    Other,
}

impl FailReason {
    #[cfg(test)]
    pub(crate) const ALL: [Self; 5] = [Self::TooManyFiles, Self::NoSuchFile, Self::Invalid, Self::Permission, Self::Other];

    pub(crate) const fn from_errno(errno: Option<i32>) -> Self {
        match errno {
            Some(libc::EMFILE | libc::ENFILE) => Self::TooManyFiles,
            Some(libc::ENOENT | libc::ENOTDIR | libc::ESTALE) => Self::NoSuchFile,
            Some(libc::EINVAL | libc::ENOEXEC | ENOTSUPP) => Self::Invalid,
            Some(libc::EPERM | libc::EACCES) => Self::Permission,
            _ => Self::Other,
        }
    }

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::TooManyFiles => "too_many_files",
            Self::NoSuchFile => "no_such_file",
            Self::Invalid => "invalid",
            Self::Permission => "permission",
            Self::Other => "other",
        }
    }
}

/// The symbolic name of an errno for log lines (`ENOENT`), or `errno N`.
pub(crate) fn name(errno: Option<i32>) -> Cow<'static, str> {
    let Some(e) = errno else { return Cow::Borrowed("no errno") };
    let known = [
        (libc::EMFILE, "EMFILE"),
        (libc::ENFILE, "ENFILE"),
        (libc::ENOENT, "ENOENT"),
        (libc::ENOTDIR, "ENOTDIR"),
        (libc::ESTALE, "ESTALE"),
        (libc::EINVAL, "EINVAL"),
        (libc::ENOEXEC, "ENOEXEC"),
        (ENOTSUPP, "ENOTSUPP"),
        (libc::EPERM, "EPERM"),
        (libc::EACCES, "EACCES"),
        (libc::ENOMEM, "ENOMEM"),
        (libc::EBUSY, "EBUSY"),
        (libc::EEXIST, "EEXIST"),
        (libc::EFAULT, "EFAULT"),
        (libc::E2BIG, "E2BIG"),
        (libc::ENOSPC, "ENOSPC"),
    ];
    known.iter().find(|k| k.0 == e).map_or_else(|| Cow::Owned(format!("errno {e}")), |k| Cow::Borrowed(k.1))
}

impl AttachError {
    /// The errno of the system call that failed, found down the error's source chain.
    pub(crate) fn errno(&self) -> Option<i32> {
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&self.source);
        while let Some(e) = next {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                return io.raw_os_error();
            }
            next = e.source();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use aya::{programs::ProgramError, sys::SyscallError};

    use super::*;

    #[test]
    fn the_errno_is_found_under_aya_and_classed() {
        let err = |errno| AttachError {
            path: "/x".into(),
            symbol: "SSL_read",
            source: ProgramError::SyscallError(SyscallError { call: "perf_event_open", io_error: std::io::Error::from_raw_os_error(errno) }),
        };
        let cases = [
            (libc::EMFILE, FailReason::TooManyFiles, "EMFILE"),
            (libc::ENOENT, FailReason::NoSuchFile, "ENOENT"),
            (ENOTSUPP, FailReason::Invalid, "ENOTSUPP"),
            (libc::EINVAL, FailReason::Invalid, "EINVAL"),
            (libc::EPERM, FailReason::Permission, "EPERM"),
            (libc::EBUSY, FailReason::Other, "EBUSY"),
            (9999, FailReason::Other, "errno 9999"),
        ];
        for (errno, reason, text) in cases {
            let e = err(errno);
            assert_eq!(e.errno(), Some(errno));
            assert_eq!(FailReason::from_errno(e.errno()), reason, "{text}");
            assert_eq!(name(e.errno()), text);
        }
        let no_errno = AttachError { path: "/x".into(), symbol: "SSL_read", source: ProgramError::NotLoaded };
        assert_eq!((no_errno.errno(), FailReason::from_errno(no_errno.errno())), (None, FailReason::Other));
    }

    /// The README's metrics table and docs/metrics.md name every reason.
    #[test]
    fn every_reason_is_a_distinct_documented_label() {
        let mut labels: Vec<_> = FailReason::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), FailReason::ALL.len());
        let docs = [include_str!("../../../README.md"), include_str!("../../../docs/metrics.md")];
        for doc in docs {
            let row = doc.lines().find(|l| l.starts_with("| `guard_tls_attach_failures_total`")).unwrap_or_default();
            for l in &labels {
                assert!(row.contains(&format!("`{l}`")), "reason {l} undocumented in {row:?}");
            }
        }
    }
}
