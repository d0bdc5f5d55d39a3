//! Host facts for audit records: the host name and user names (read once, cached by the caller).

use std::{collections::HashMap, path::PathBuf};

use guard_core::govern::{Host, User};

/// This machine: its host name and local accounts.
pub(crate) fn read() -> Host {
    let users = read_accounts()
        .into_iter()
        .map(|(uid, (name, home))| (uid, User { name, home: (!home.is_empty()).then(|| PathBuf::from(home)) }))
        .collect();
    Host { name: hostname(), users }
}

/// The kernel's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL or the end.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}


/// uid → (user name, home directory) from `/etc/passwd` text.
pub(crate) fn parse_accounts(text: &str) -> HashMap<u32, (String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let uid = f.get(2)?.parse().ok()?;
            Some((uid, ((*f.first()?).to_owned(), (*f.get(5)?).to_owned())))
        })
        .collect()
}

/// Reads `/etc/passwd` for names and homes; empty when unreadable.
pub(crate) fn read_accounts() -> HashMap<u32, (String, String)> {
    std::fs::read_to_string("/etc/passwd")
        .map(|t| parse_accounts(&t))
        .unwrap_or_default()
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_hostname() {
        let users = parse_accounts(
            "root:x:0:0:root:/root:/bin/bash\n# c\ndev:x:1000:1000::/home/dev:/bin/sh\nbad\n",
        );
        assert_eq!(users.get(&0), Some(&("root".to_owned(), "/root".to_owned())));
        assert_eq!(users.get(&1000), Some(&("dev".to_owned(), "/home/dev".to_owned())));
        assert_eq!(users.len(), 2);
        assert!(!hostname().is_empty());
    }
}
