//! Blind spots: agent processes that hold connections while guard has no verified hook into
//! any TLS library they carry. Capture that silently drops to zero is the failure mode this
//! makes visible, as `guard_tls_blind_processes{agent,reason}`. Sans-IO: the daemon supplies
//! each process's TLS files (from the scanner) and the state of each hooked file.

use crate::hooks::{Library, Miss, Strategy};

/// What was learnt about one file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Hooked { library: Library, strategy: Strategy },
    Miss(Miss),
    /// Unreadable or not ELF.
    Error,
}

/// The files of one process that carry TLS: hooked ones and blind spots, by (dev, inode).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessTls {
    pub files: Vec<((u64, u64), FileStatus)>,
}

/// Why guard cannot read a process's TLS (a label value: a closed set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlindReason {
    /// It carries this TLS library and no strategy found its functions.
    Unhooked(Library),
    UnsupportedArch,
    UnsupportedGoVersion,
    /// Hooked by a guess whose traffic has not yet shown HTTP, HTTP/2 or WebSocket.
    HookUnverified,
    /// Hooked by a guess whose traffic was something else: detached.
    HookRejected,
    /// Hooks were found but could not be attached.
    AttachFailed,
    /// No TLS library guard knows of (or plain-text connections guard does not read).
    NoKnownTls,
    /// Its files have not been analysed yet.
    NotScanned,
}

impl BlindReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unhooked(Library::Openssl) => "unhooked_openssl",
            Self::Unhooked(Library::Boringssl) => "unhooked_boringssl",
            Self::Unhooked(Library::GoCryptoTls) => "unhooked_go_crypto_tls",
            Self::Unhooked(Library::Rustls) => "unhooked_rustls",
            Self::UnsupportedArch => "unsupported_arch",
            Self::UnsupportedGoVersion => "unsupported_go_version",
            Self::HookUnverified => "hook_unverified",
            Self::HookRejected => "hook_rejected",
            Self::AttachFailed => "attach_failed",
            Self::NoKnownTls => "no_known_tls",
            Self::NotScanned => "not_scanned",
        }
    }
}

/// Where a hooked file stands in the kernel and the verifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookState {
    /// Found by name: trusted as soon as attached.
    Named,
    Pending,
    Verified,
    Rejected,
    NotAttached,
}

/// Why a process that holds connections is unseen, or `None` when one of its TLS libraries is
/// hooked and trusted or verified.
pub fn blind_reason(
    tls: Option<&ProcessTls>,
    state: impl Fn((u64, u64)) -> HookState,
) -> Option<BlindReason> {
    let Some(tls) = tls else {
        return Some(BlindReason::NotScanned);
    };
    let mut worst: Option<BlindReason> = None;
    // The most telling reason wins: a hook in trouble, then a library without one.
    let mut note = |r: BlindReason| {
        if worst.is_none_or(|w| rank(r) < rank(w)) {
            worst = Some(r);
        }
    };
    for (key, status) in &tls.files {
        match status {
            FileStatus::Hooked { .. } => match state(*key) {
                HookState::Named | HookState::Verified => return None,
                HookState::Pending => note(BlindReason::HookUnverified),
                HookState::Rejected => note(BlindReason::HookRejected),
                HookState::NotAttached => note(BlindReason::AttachFailed),
            },
            FileStatus::Miss(Miss::Unhooked(lib)) => note(BlindReason::Unhooked(*lib)),
            FileStatus::Miss(Miss::UnsupportedArch) => note(BlindReason::UnsupportedArch),
            FileStatus::Miss(Miss::UnsupportedGoVersion) => note(BlindReason::UnsupportedGoVersion),
            FileStatus::Miss(Miss::NoTls) | FileStatus::Error => {}
        }
    }
    Some(worst.unwrap_or(BlindReason::NoKnownTls))
}

fn rank(r: BlindReason) -> u8 {
    match r {
        BlindReason::HookRejected => 0,
        BlindReason::HookUnverified => 1,
        BlindReason::AttachFailed => 2,
        BlindReason::Unhooked(_) => 3,
        BlindReason::UnsupportedArch | BlindReason::UnsupportedGoVersion => 4,
        BlindReason::NoKnownTls | BlindReason::NotScanned => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::Strategy;

    fn hooked(ino: u64) -> ((u64, u64), FileStatus) {
        (
            (1, ino),
            FileStatus::Hooked {
                library: Library::Boringssl,
                strategy: Strategy::Structural,
            },
        )
    }

    #[test]
    fn reasons() {
        let named = |_| HookState::Named;
        assert_eq!(blind_reason(None, named), Some(BlindReason::NotScanned));
        assert_eq!(
            blind_reason(Some(&ProcessTls::default()), named),
            Some(BlindReason::NoKnownTls)
        );
        let rustls = ((1, 9), FileStatus::Miss(Miss::Unhooked(Library::Rustls)));
        let p = ProcessTls {
            files: vec![rustls.clone()],
        };
        assert_eq!(
            blind_reason(Some(&p), named).map(BlindReason::as_str),
            Some("unhooked_rustls")
        );
        // A libssl hooked by name covers a process whatever else it carries.
        let p = ProcessTls {
            files: vec![rustls.clone(), hooked(2)],
        };
        assert_eq!(blind_reason(Some(&p), named), None);
        let by_ino = |(_, ino): (u64, u64)| match ino {
            2 => HookState::Pending,
            3 => HookState::Rejected,
            _ => HookState::Verified,
        };
        assert_eq!(
            blind_reason(Some(&p), by_ino),
            Some(BlindReason::HookUnverified)
        );
        let p = ProcessTls {
            files: vec![hooked(2), hooked(3), rustls],
        };
        assert_eq!(
            blind_reason(Some(&p), by_ino),
            Some(BlindReason::HookRejected)
        );
        let p = ProcessTls {
            files: vec![hooked(3), hooked(4)],
        };
        assert_eq!(blind_reason(Some(&p), by_ino), None);
    }

    /// A file whose hooks the kernel did not take makes its processes `attach_failed` until a
    /// retry attaches it; an unhooked library elsewhere in the process does not hide that.
    #[test]
    fn a_failed_attach_shows_until_a_retry_attaches() {
        let rustls = ((1, 9), FileStatus::Miss(Miss::Unhooked(Library::Rustls)));
        let p = ProcessTls {
            files: vec![rustls, hooked(5)],
        };
        let failed = |_| HookState::NotAttached;
        assert_eq!(
            blind_reason(Some(&p), failed).map(BlindReason::as_str),
            Some("attach_failed")
        );
        let retried = |(_, ino): (u64, u64)| match ino {
            5 => HookState::Pending,
            _ => HookState::NotAttached,
        };
        assert_eq!(
            blind_reason(Some(&p), retried),
            Some(BlindReason::HookUnverified)
        );
    }
}
