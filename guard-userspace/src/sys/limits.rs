//! guard's open-file limit. Every probe guard places holds an open file (its BPF link to the
//! perf event): 9 for a libssl, 4 for a Bun executable, about 10 for a Go program, and one set
//! per file, so a host with a hundred TLS files needs about a thousand. The usual soft limit is
//! 1024 (systemd's default for services, and what most container runtimes now hand a
//! container), past which every attach fails with EMFILE. The hard limit is far higher
//! (524288 under systemd), and raising the soft limit up to it needs no privilege.

/// The soft limit before and after, and the hard limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpenFiles {
    pub before: u64,
    pub now: u64,
    pub hard: u64,
}

/// Raises the soft open-file limit to the hard one. guard spawns nothing that would mind the
/// higher limit (its loops poll through epoll, never `select`).
pub(crate) fn raise_open_files() -> std::io::Result<OpenFiles> {
    let (before, hard) = open_files()?;
    if before < hard {
        let lim = libc::rlimit { rlim_cur: hard, rlim_max: hard };
        // SAFETY: setrlimit reads the struct we pass, nothing else.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let (now, hard) = open_files()?;
    Ok(OpenFiles { before, now, hard })
}

/// The (soft, hard) open-file limits.
pub(crate) fn open_files() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct we pass, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Raises the limit and says so; a failure is logged and guard runs on with the limit it has.
pub(crate) fn raise_and_log() {
    match raise_open_files() {
        Ok(l) => tracing::info!(soft_before = l.before, soft = l.now, hard = l.hard, "open-file limit (every TLS probe is an open file)"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit: TLS attaches may fail with EMFILE"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use super::*;

    /// Runs in a child process: the limit is the whole test binary's.
    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        if std::env::var_os("GUARD_LIMITS_CHILD").is_none() {
            let me = std::env::current_exe().unwrap();
            let st = std::process::Command::new("sh")
                .arg("-c")
                .arg("ulimit -S -n 256 && exec \"$0\" --exact sys::limits::tests::the_soft_limit_is_raised_to_the_hard_one --nocapture")
                .arg(me)
                .env("GUARD_LIMITS_CHILD", "1")
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
            return;
        }
        let (soft, hard) = open_files().unwrap();
        assert_eq!(soft, 256.min(hard), "the child starts at the lowered limit");
        let l = raise_open_files().unwrap();
        assert_eq!(l, OpenFiles { before: soft, now: hard, hard });
        assert_eq!(open_files().unwrap(), (hard, hard));
    }
}
