use std::time::Duration;

use super::Tmpfs;
use crate::gate::mounts::{MountWatch, exec_superblocks};

#[test]
fn a_new_tmpfs_is_reported_and_listed() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("a_new_tmpfs_is_reported_and_listed: skipped (needs root)");
        return;
    }
    let mut watch = MountWatch::open().expect("open mountinfo");
    // Other tests mount in parallel, so only "a change is seen after ours" is asserted.
    let Some(tmpfs) = Tmpfs::mount("a_new_tmpfs_is_reported_and_listed") else { return };
    assert!(watch.changed(Duration::from_secs(5)).expect("poll"), "no POLLPRI after a mount");
    let sbs = exec_superblocks(&watch.read().expect("read"));
    assert_eq!(sbs.malformed, 0);
    assert!(sbs.mounts.iter().any(|m| m.path == tmpfs.path() && m.fstype == "tmpfs"), "{sbs:?}");
    // The table is re-read from the start each time.
    assert!(exec_superblocks(&watch.read().expect("read again")).mounts.iter().any(|m| m.path == std::path::Path::new("/")));
}
