//! The OpenSSL test client (`tests/openssl_client`): the `openssl` crate with `vendored`, so
//! OpenSSL 3 statically linked into a Rust binary the way reqwest + native-tls carry it. Built
//! with cargo from crates.io (a committed Cargo.lock per OpenSSL minor) into
//! `target/test-tools/openssl/TAG`, then stripped with binutils' `strip`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use crate::mock::MockLlm;

/// (directory under tests/openssl_client, OpenSSL release its Cargo.lock pins). 3.2 and 3.5
/// differ in `ssl_write_internal`'s arguments (3.3 added `flags`) and in `SSL_write_ex`.
pub const BUILDS: [(&str, &str); 2] = [("v3_2", "3.2.1"), ("v3_5", "3.5.5")];

/// One build of the client.
pub struct Client {
    pub tag: &'static str,
    pub openssl: &'static str,
    /// With its symbol table.
    pub full: PathBuf,
    /// `strip`ped: no .symtab, .eh_frame kept.
    pub stripped: PathBuf,
}

/// Both builds, compiled on first use in this process (cargo makes it a no-op when up to date;
/// a cold build compiles OpenSSL, a few minutes each).
pub fn clients() -> &'static [Client] {
    static BUILT: OnceLock<Vec<Client>> = OnceLock::new();
    BUILT.get_or_init(|| {
        BUILDS
            .iter()
            .map(|&(tag, openssl)| build(tag, openssl))
            .collect()
    })
}

fn build(tag: &'static str, openssl: &'static str) -> Client {
    let b = crate::cargo_client::build(
        "openssl_client",
        "openssl",
        tag,
        "osslclient",
        "openssl-src needs perl, make and a C compiler",
    );
    Client {
        tag,
        openssl,
        full: b.full,
        stripped: b.stripped,
    }
}

/// `osslclient llm`: the five LLM calls on one keep-alive connection, one JSON line each.
pub fn llm(bin: &Path, mock: &MockLlm, encoding: &str) -> Command {
    let mut c = Command::new(bin);
    c.arg("llm")
        .arg(&mock.base)
        .arg(&mock.ca_file)
        .arg(encoding)
        .env("MOCK_CLIENT_DELAY_MS", "300");
    c
}

/// `osslclient loop`: `n` GETs on one keep-alive connection, started by a line on its stdin
/// (an idle process of the binary until then); prints how many got a 200.
pub fn repeat(bin: &Path, mock: &MockLlm, n: u32) -> Command {
    let mut c = Command::new(bin);
    c.arg("loop")
        .arg(&mock.base)
        .arg(&mock.ca_file)
        .arg(n.to_string())
        .env("OSSLCLIENT_WAIT_STDIN", "1");
    c
}

/// The client's calls as a Node native addon (`tests/openssl_client/addon`): a shared library
/// with OpenSSL 3.5 linked in, stripped. Node loads it with dlopen; `llm(BASE, CA_FILE)` makes
/// the five calls of [`llm`]. Built once per process.
pub fn addon() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        crate::cargo_client::build("openssl_client", "openssl", "addon", "libossladdon.so", "openssl-src needs perl, make and a C compiler").stripped
    })
}

/// `node -e`: copies `addon` into `dir` (made now: a file guard has never seen, as an agent
/// extracts its addon into a cache at first run), loads it and makes its calls at once.
pub fn node_addon(addon: &Path, dir: &Path, mock: &MockLlm) -> Command {
    const SCRIPT: &str = "const fs = require('fs'), path = require('path');\n\
        const [src, dir, base, ca] = process.argv.slice(1);\n\
        fs.mkdirSync(dir, { recursive: true });\n\
        const dst = path.join(dir, 'ossladdon.node');\n\
        fs.copyFileSync(src, dst);\n\
        require(dst).llm(base, ca);\n";
    let mut c = Command::new("node");
    c.arg("-e").arg(SCRIPT).arg(addon).arg(dir).arg(&mock.base).arg(&mock.ca_file);
    c
}
