//! Packages from npm, fetched once into `target/test-tools/KIND/VERSION` with `npm pack` and
//! unpacked there, the way a user installs them.

use std::{path::PathBuf, process::Command};

/// The file `bin` (relative to the unpacked package) of npm package `pkg`, downloaded if not
/// there yet.
pub fn fetch(kind: &str, version: &str, pkg: &str, bin: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-tools").join(kind).join(version);
    let path = dir.join("package").join(bin);
    if path.exists() {
        return path;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("npm").args(["pack", "--silent", pkg]).current_dir(&dir).output().unwrap();
    assert!(out.status.success(), "npm pack {pkg}: {}", String::from_utf8_lossy(&out.stderr));
    let tgz = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let st = Command::new("tar").arg("xzf").arg(&tgz).current_dir(&dir).status().unwrap();
    assert!(st.success() && path.exists(), "unpacking {tgz}");
    let _ = std::fs::remove_file(dir.join(&tgz));
    path
}
