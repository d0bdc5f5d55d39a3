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
