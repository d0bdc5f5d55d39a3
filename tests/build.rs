//! Builds the kernel programs with the benchmarks' empty probes (guard-ebpf's `bench-floor`
//! feature) for `probe_floor`, only when `GUARD_BENCH_FLOOR=1` (`cargo xtask bench` sets it).
//! Otherwise it writes an empty object: the tests never load it, and the daemon's own object
//! (guard-userspace's build.rs) never carries the floor programs.

use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=GUARD_BENCH_FLOOR");
    println!("cargo:rerun-if-env-changed=GUARD_EBPF_TOOLCHAIN");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);
    let wanted = env::var("GUARD_BENCH_FLOOR").is_ok_and(|v| v == "1");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if !wanted || skip {
        fs::write(out.join("guard"), b"").context("writing the stub floor object")?;
        return Ok(());
    }
    let toolchain = env::var("GUARD_EBPF_TOOLCHAIN").unwrap_or_else(|_| "nightly".into());
    // aya-build watches guard-ebpf's directory only; the record layouts the programs write are
    // guard-common's, so a change there must rebuild the object too.
    println!("cargo:rerun-if-changed={}", PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../guard-common").display());
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../guard-ebpf");
    let root = root.to_str().ok_or_else(|| anyhow!("non-UTF-8 path {}", root.display()))?;
    aya_build::build_ebpf(
        [Package { name: "guard-ebpf", root_dir: root, features: &["bench-floor"], ..Default::default() }],
        Toolchain::Custom(&toolchain),
    )
    .context("building the eBPF programs with the floor probes failed; run `cargo xtask setup`")
}
