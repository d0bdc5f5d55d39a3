//! Whether a process holds established TCP connections: the sockets among its open files,
//! looked up in its network namespace's `net/tcp` and `net/tcp6` tables.

use std::{collections::HashSet, fs, path::Path};

/// Socket inodes of the ESTABLISHED (state `01`) connections in a `/proc/net/tcp{,6}` table.
pub(crate) fn established_inodes(table: &str) -> HashSet<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.get(3) == Some(&"01"))
                .then(|| f.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

/// The inode of an open file's link text `socket:[12345]`.
fn socket_inode(link: &Path) -> Option<u64> {
    link.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The socket inodes of the established TCP connections process `pid` holds (empty when it
/// is gone or unreadable).
pub(crate) fn established_tcp(proc: &Path, pid: u32) -> HashSet<u64> {
    let dir = proc.join(pid.to_string());
    let Ok(fds) = fs::read_dir(dir.join("fd")) else {
        return HashSet::new();
    };
    let mine: HashSet<u64> = fds
        .filter_map(|e| socket_inode(&fs::read_link(e.ok()?.path()).ok()?))
        .collect();
    if mine.is_empty() {
        return mine;
    }
    ["net/tcp", "net/tcp6"]
        .iter()
        .filter_map(|t| fs::read_to_string(dir.join(t)).ok())
        .flat_map(|t| established_inodes(&t))
        .filter(|i| mine.contains(i))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use super::*;

    #[test]
    fn established_rows_only() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2505 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:A2B4 0100007F:2505 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:A2B6 0100007F:2505 06 00000000:00000000 03:00000F2A 00000000     0        0 0 3 0000000000000000
";
        assert_eq!(established_inodes(table), HashSet::from([2222]));
        assert_eq!(socket_inode(Path::new("socket:[2222]")), Some(2222));
        assert_eq!(socket_inode(Path::new("pipe:[2222]")), None);
    }

    #[test]
    fn both_ends_of_a_connection_of_this_process_are_found_and_the_listener_is_not() {
        use std::os::{fd::AsRawFd as _, unix::fs::MetadataExt as _};
        let inode = |fd: i32| fs::metadata(format!("/proc/self/fd/{fd}")).unwrap().ino();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let found = established_tcp(Path::new("/proc"), std::process::id());
        assert!(
            found.contains(&inode(c.as_raw_fd())) && found.contains(&inode(s.as_raw_fd())),
            "{found:?}"
        );
        assert!(!found.contains(&inode(l.as_raw_fd())));
        assert!(established_tcp(Path::new("/proc"), u32::MAX).is_empty());
    }
}
