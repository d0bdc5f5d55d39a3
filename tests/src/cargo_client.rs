//! Test clients that are their own cargo workspaces under `tests/` (a committed Cargo.lock per
//! configuration), built from crates.io into `target/test-tools/KIND/TAG`, with a stripped copy
//! next to the unstripped build (binutils' `strip`: no .symtab, .eh_frame kept).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// One configuration's build.
pub struct Built {
    /// With its symbol table.
    pub full: PathBuf,
    /// `strip`ped.
    pub stripped: PathBuf,
}

/// Builds `tests/SRC/TAG` (binary `bin`) into `target/test-tools/KIND/TAG`. Cargo makes it a
/// no-op when up to date. `needs` names what a failed build usually lacks.
pub fn build(src: &str, kind: &str, tag: &str, bin: &str, needs: &str) -> Built {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(src).join(tag).join("Cargo.toml");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-tools").join(kind).join(tag);
    std::fs::create_dir_all(&out).unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let o = Command::new(&cargo)
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &out)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    assert!(
        o.status.success(),
        "building {} ({needs}: cargo xtask setup --tests): {}",
        manifest.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let full = out.join(bin);
    let stripped = out.join(format!("{bin}-stripped"));
    std::fs::copy(out.join("release").join(bin), &full).unwrap();
    strip(&full, &stripped);
    Built { full, stripped }
}

fn strip(from: &Path, to: &Path) {
    let o = Command::new("strip")
        .arg("-o")
        .arg(to)
        .arg(from)
        .output()
        .unwrap_or_else(|e| panic!("no `strip` (binutils; cargo xtask setup --tests): {e}"));
    assert!(o.status.success(), "strip: {}", String::from_utf8_lossy(&o.stderr));
}
