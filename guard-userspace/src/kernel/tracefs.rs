//! Field offsets of classic tracepoints, read from tracefs `format` files: layouts change between
//! kernels (on 6.18 `sched_process_exec`'s filename is a `__data_loc` field).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub(crate) enum TracefsError {
    #[error("cannot read {path}: {source} (is tracefs mounted at /sys/kernel/tracing?)")]
    Read { path: PathBuf, source: std::io::Error },
}

pub(crate) const TRACEFS: &str = "/sys/kernel/tracing";

/// The `format` file of `category/name`.
pub(crate) fn read_format(root: &Path, category: &str, name: &str) -> Result<String, TracefsError> {
    let path = root.join("events").join(category).join(name).join("format");
    std::fs::read_to_string(&path).map_err(|source| TracefsError::Read { path, source })
}

/// Offset of `field` in a format file, or None when this kernel lacks it.
pub(crate) fn field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let mut decl = None;
        let mut offset = None;
        for part in line.trim().split(';') {
            let part = part.trim();
            if let Some(d) = part.strip_prefix("field:") {
                decl = Some(d);
            } else if let Some(o) = part.strip_prefix("offset:") {
                offset = o.trim().parse().ok();
            }
        }
        let name = decl?.split_whitespace().last()?;
        let name = name.split('[').next()?;
        (name == field).then_some(offset).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXEC: &str = "name: sched_process_exec\nID: 320\nformat:\n\
        \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
        \tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\
        \tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n\
        \tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;\n";

    #[test]
    fn finds_fields_including_data_loc_and_arrays() {
        assert_eq!(field_offset(EXEC, "filename"), Some(8));
        assert_eq!(field_offset(EXEC, "old_pid"), Some(16));
        assert_eq!(field_offset(EXEC, "pid"), Some(12));
        assert_eq!(field_offset(EXEC, "group_dead"), None);
        assert_eq!(field_offset("\tfield:char comm[16];\toffset:8;\tsize:16;", "comm"), Some(8));
    }
}
