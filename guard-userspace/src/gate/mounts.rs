//! Which superblocks to mark for exec permission events, and when the mount table changes.
//!
//! A `FAN_MARK_FILESYSTEM` mark covers a superblock wherever it is mounted, so one mount point
//! per distinct `major:minor` is enough. `noexec` mounts are kept: the same superblock may be
//! mounted exec elsewhere (a bind mount), and the mark is per superblock anyway.

use std::{
    ffi::OsString,
    fs::File,
    io::{self, Read as _, Seek as _, SeekFrom},
    os::{fd::AsRawFd as _, unix::ffi::OsStringExt as _},
    path::PathBuf,
    time::Duration,
};

/// One superblock, named by a mount point of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountPoint {
    pub(crate) dev: (u32, u32),
    pub(crate) path: PathBuf,
    pub(crate) fstype: String,
}

/// The superblocks worth marking, and how many mountinfo lines could not be parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ExecSuperblocks {
    pub(crate) mounts: Vec<MountPoint>,
    pub(crate) malformed: usize,
}

/// Filesystem types that cannot hold executables (proc even refuses the mark with EINVAL).
const NO_EXEC_TYPES: &[&str] = &[
    "proc", "sysfs", "cgroup", "cgroup2", "bpf", "tracefs", "debugfs", "securityfs", "devpts", "mqueue", "configfs", "pstore", "efivarfs", "nsfs", "fusectl",
    "binfmt_misc", "autofs", "rpc_pipefs", "hugetlbfs",
];

/// One mount point per distinct `major:minor` (the first seen), from `/proc/self/mountinfo`
/// text, skipping [`NO_EXEC_TYPES`].
pub(crate) fn exec_superblocks(mountinfo: &str) -> ExecSuperblocks {
    let mut out = ExecSuperblocks::default();
    for line in mountinfo.lines().filter(|l| !l.trim().is_empty()) {
        let Some(m) = parse_line(line) else {
            out.malformed += 1;
            continue;
        };
        if NO_EXEC_TYPES.contains(&m.fstype.as_str()) || out.mounts.iter().any(|x| x.dev == m.dev) {
            continue;
        }
        out.mounts.push(m);
    }
    out
}

/// "id parent major:minor root mount_point options [optional…] - fstype source super_options".
fn parse_line(line: &str) -> Option<MountPoint> {
    let mut fields = line.split(' ');
    let (_id, _parent, dev, _root, path) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?);
    let _options = fields.next()?;
    // Zero or more optional fields ("shared:1", "master:2"), then the separator.
    fields.find(|f| *f == "-")?;
    let fstype = fields.next().filter(|t| !t.is_empty())?;
    let (major, minor) = dev.split_once(':')?;
    let dev = (major.parse().ok()?, minor.parse().ok()?);
    Some(MountPoint { dev, path: PathBuf::from(unescape(path)?), fstype: unescape(fstype)?.into_string().ok()? })
}

/// Undoes mountinfo's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
/// None for a backslash not followed by three octal digits of one byte.
fn unescape(s: &str) -> Option<OsString> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let digits = b.get(i + 1..i + 4)?;
            if !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                return None;
            }
            let v = digits.iter().fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(v).ok()?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(OsString::from_vec(out))
}

/// `/proc/self/mountinfo`, kept open: poll reports POLLPRI|POLLERR once per change of our mount
/// namespace's table since the last poll.
pub(crate) struct MountWatch {
    file: File,
}

impl MountWatch {
    pub(crate) fn open() -> io::Result<Self> {
        Ok(Self { file: File::open("/proc/self/mountinfo")? })
    }

    /// Whether the mount table changed, waiting up to `timeout`. `Ok(false)` on timeout or signal.
    pub(crate) fn changed(&mut self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd { fd: self.file.as_raw_fd(), events: libc::POLLPRI | libc::POLLERR, revents: 0 };
        let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&raw mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(false) } else { Err(e) };
        }
        Ok(rc > 0 && pfd.revents & (libc::POLLPRI | libc::POLLERR) != 0)
    }

    /// The whole current table (re-read from the start).
    pub(crate) fn read(&mut self) -> io::Result<String> {
        self.file.seek(SeekFrom::Start(0))?;
        let mut s = String::new();
        self.file.read_to_string(&mut s)?;
        Ok(s)
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    const HOST: &str = include_str!("testdata/mountinfo");

    #[test]
    fn this_machines_table() {
        let s = exec_superblocks(HOST);
        assert_eq!(s.malformed, 0);
        // Both /dev/pts are devpts and skipped; the two /dev/shm are distinct tmpfs superblocks;
        // /sys/fs/cgroup is a tmpfs here (the cgroup v1 hierarchies under it are skipped).
        let want: Vec<((u32, u32), &str, &str)> = vec![
            ((0, 6), "/dev", "devtmpfs"),
            ((0, 23), "/dev/shm", "tmpfs"),
            ((254, 0), "/", "ext4"),
            ((0, 25), "/mnt/sandboxing/model_tools_env/v1/python", "tmpfs"),
            ((0, 27), "/dev/shm", "tmpfs"),
            ((0, 28), "/sys/fs/cgroup", "tmpfs"),
        ];
        let got: Vec<_> = s.mounts.iter().map(|m| (m.dev, m.path.to_str().expect("utf8"), m.fstype.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn handcrafted_lines() {
        let text = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
30 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
31 30 8:1 /srv/data /mnt/with\\040space\\011tab rw,noexec shared:1 - ext4 /dev/sda1 rw
32 30 8:2 / /mnt/my\\040disk rw,noexec - ext4 /dev/sda2 rw
33 30 0:50 / /var/lib/docker/overlay2/abc/merged rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
34 30 0:51 / /home/u/.cache/back\\134slash rw master:3 propagate_from:2 unbindable - tmpfs tmpfs rw
35 30 0:52 / /dev/hugepages rw - hugetlbfs hugetlbfs rw
36 30 0:53 / /run/user/1000/doc rw - fuse.portal portal rw

garbage
37 30 8:x / /bad rw - ext4 /dev/sda9 rw
38 30 8:3 / /no-separator rw ext4 /dev/sda3 rw
39 30 8:4 / /bad\\09escape rw - ext4 /dev/sda4 rw
40 30 8:5 / /nofstype rw -
";
        let s = exec_superblocks(text);
        assert_eq!(s.malformed, 5);
        let want = [((8, 1), "/", "ext4"), ((8, 2), "/mnt/my disk", "ext4"), ((0, 50), "/var/lib/docker/overlay2/abc/merged", "overlay"), ((0, 51), "/home/u/.cache/back\\slash", "tmpfs"), ((0, 53), "/run/user/1000/doc", "fuse.portal")];
        let got: Vec<_> = s.mounts.iter().map(|m| (m.dev, m.path.to_str().expect("utf8"), m.fstype.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/a\\040b\\012c\\134"), Some("/a b\nc\\".into()));
        assert_eq!(unescape("/\\377").map(|s| s.into_vec()), Some(b"/\xff".to_vec()));
        assert_eq!(unescape("/a\\04"), None);
        assert_eq!(unescape("/a\\400"), None); // 256 is not a byte
    }
}
