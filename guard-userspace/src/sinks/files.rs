//! What the recording and the audit log say about a path they refuse.

use std::path::Path;

/// What is at `path`, for the error message only (it is never used to decide anything).
pub(super) fn kind_of(path: &Path) -> &'static str {
    std::fs::symlink_metadata(path).map_or("of a kind guard could not read", |m| file_kind(m.file_type()))
}

pub(super) fn file_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a fifo"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a device"
    }
}
