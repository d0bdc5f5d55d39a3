//! Codex CLI as released on npm (`@openai/codex@VERSION-linux-x64`): a stripped static-pie musl
//! binary with rustls on aws-lc-rs (and a static OpenSSL), run against the mock LLM server as a
//! custom model provider.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::mock::MockLlm;

pub const VERSION: &str = "0.169.0";

/// The `codex` binary, downloaded with `npm pack` if not there yet (about 300 MB unpacked).
pub fn codex() -> PathBuf {
    crate::npm::fetch(
        "codex",
        VERSION,
        &format!("@openai/codex@{VERSION}-linux-x64"),
        "vendor/x86_64-unknown-linux-musl/bin/codex",
    )
}

/// Where Codex's model provider points: the Responses API at `base` (`https://…/v1`), trusting
/// `ca`, over HTTPS or, with `websockets`, over a WebSocket to `base/responses`.
pub struct Provider<'a> {
    pub base: &'a str,
    pub ca: &'a Path,
    pub websockets: bool,
}

impl<'a> Provider<'a> {
    /// The mock LLM server over HTTPS.
    pub fn mock(mock: &'a MockLlm) -> Self {
        Self { base: mock.base.trim_end_matches('/'), ca: &mock.ca_file, websockets: false }
    }
}

/// `codex exec --skip-git-repo-check ARGS` with its model provider set to `provider`. `home`
/// holds its configuration.
pub fn exec(bin: &Path, home: &Path, provider: &Provider<'_>, args: &[&str]) -> Command {
    std::fs::create_dir_all(home).unwrap();
    let base = provider.base.trim_end_matches('/');
    let base = if base.ends_with("/v1") { base.to_string() } else { format!("{base}/v1") };
    let config = format!(
        "model = \"gpt-5\"\nmodel_provider = \"mock\"\n\n[model_providers.mock]\nname = \"mock\"\nbase_url = \"{base}\"\nwire_api = \"responses\"\nsupports_websockets = {}\n",
        provider.websockets
    );
    std::fs::write(home.join("config.toml"), config).unwrap();
    let mut c = Command::new(bin);
    c.args(["exec", "--skip-git-repo-check"])
        .args(args)
        .env("CODEX_HOME", home)
        .env("CODEX_CA_CERTIFICATE", provider.ca)
        .env("OPENAI_API_KEY", "sk-guard-test");
    c
}

/// The total Codex prints after a run (`tokens used` then the number on the next line).
pub fn tokens_used(output: &str) -> Option<u64> {
    let mut lines = output.lines();
    lines.by_ref().find(|l| l.trim() == "tokens used")?;
    lines.next()?.trim().replace(',', "").parse().ok()
}
