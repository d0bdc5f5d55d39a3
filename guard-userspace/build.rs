//! Builds the kernel programs (guard-ebpf) for the BPF target with the pinned nightly toolchain.
//!
//! `GUARD_EBPF_TOOLCHAIN` names the toolchain (`cargo xtask` sets it); `AYA_BUILD_SKIP=1` skips the
//! eBPF build and writes an empty object, so sans-IO work and `include_bytes!` still build on a
//! machine without bpf-linker. A daemon built that way says so when it starts.

use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=GUARD_EBPF_TOOLCHAIN");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        fs::write(out.join("guard"), b"").context("writing the stub eBPF object")?;
        return Ok(());
    }
    let toolchain = env::var("GUARD_EBPF_TOOLCHAIN").unwrap_or_else(|_| "nightly".into());
    // aya-build watches guard-ebpf's directory only; the record layouts the programs write are
    // guard-common's, so a change there must rebuild the object too.
    println!("cargo:rerun-if-changed={}", PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../guard-common").display());
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../guard-ebpf");
    let root = root.to_str().ok_or_else(|| anyhow!("non-UTF-8 path {}", root.display()))?;
    aya_build::build_ebpf(
        [Package { name: "guard-ebpf", root_dir: root, ..Default::default() }],
        Toolchain::Custom(&toolchain),
    )
    .context("building the eBPF programs failed; run `cargo xtask setup` (bpf-linker, rust-src, the pinned nightly)")
}
