//! Bun from npm (`@oven/bun-linux-x64`: a stripped static binary with BoringSSL), fetched once
//! into `target/test-tools/bun/VERSION` with npm, the way a user installs it.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::mock::MockLlm;

/// Two releases whose BoringSSL builds differ (argument order of the error calls, inlining).
pub const VERSIONS: [&str; 2] = ["1.3.14", "1.4.5"];

/// The `bun` binary of `version`, downloaded with `npm pack` if not there yet.
pub fn bun(version: &str) -> PathBuf {
    crate::npm::fetch("bun", version, &format!("@oven/bun-linux-x64@{version}"), "bin/bun")
}

/// `bun build --compile`: the fetch client as a single-file executable.
pub fn compile(bun: &Path, out: &Path) {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mock_llm/client_fetch.mjs");
    let o = Command::new(bun)
        .args(["build", "--compile"])
        .arg(&src)
        .arg("--outfile")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "bun build --compile: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Bun's `fetch` running `client_fetch.mjs` (or the compiled executable when `script` is None).
pub fn fetch(program: &Path, script: bool, mock: &MockLlm, encoding: &str) -> Command {
    let mut c = Command::new(program);
    if script {
        c.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mock_llm/client_fetch.mjs"));
    }
    // Bun reads NODE_EXTRA_CA_CERTS like node.
    c.arg(&mock.base)
        .arg(encoding)
        .env("NODE_EXTRA_CA_CERTS", &mock.ca_file)
        .env("MOCK_CLIENT_DELAY_MS", "700");
    c
}

/// A copy of `bun` at `out` with `pad` zero bytes inserted where its code starts, every later
/// segment and section moved along: the same build and build-id with its code `pad` bytes
/// further into the file, as Kilo CLI's executable is laid out next to OpenCode's (issue 17). It
/// runs like the original. `pad` must keep the segments' alignment (a multiple of 0x1000).
/// (guard-core's `hooks::tests::insert_at` does the same on bytes, for the unit test.)
pub fn shift_code(bun: &Path, out: &Path, pad: usize) {
    let data = std::fs::read(bun).unwrap();
    let u16_at = |at: usize| usize::from(u16::from_le_bytes(data[at..at + 2].try_into().unwrap()));
    let u64_at = |d: &[u8], at: usize| u64::from_le_bytes(d[at..at + 8].try_into().unwrap());
    let (phoff, shoff) = (u64_at(&data, 0x20) as usize, u64_at(&data, 0x28) as usize);
    let (phent, phnum, shent, shnum) = (u16_at(0x36), u16_at(0x38), u16_at(0x3a), u16_at(0x3c));
    let phdr = |i: usize| phoff + i * phent;
    let is_code = |p: usize| u32::from_le_bytes(data[p..p + 4].try_into().unwrap()) == 1 && data[p + 4] & 1 == 1;
    let at = (0..phnum).map(phdr).find(|&p| is_code(p)).map(|p| u64_at(&data, p + 8) as usize).unwrap();
    assert!(at > phoff && shoff >= at, "headers before the code");
    let mut shifted = data[..at].to_vec();
    shifted.resize(at + pad, 0);
    shifted.extend_from_slice(&data[at..]);
    let mut bump = |field: usize| {
        let v = u64_at(&shifted, field);
        if v as usize >= at {
            shifted[field..field + 8].copy_from_slice(&(v + pad as u64).to_le_bytes());
        }
    };
    bump(0x28);
    for i in 0..phnum {
        bump(phdr(i) + 8);
    }
    for i in 0..shnum {
        bump(shoff + pad + i * shent + 0x18);
    }
    std::fs::write(out, shifted).unwrap();
    std::fs::set_permissions(out, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}
