//! The agent catalog: which programs are AI coding agents, recognised however they run (native
//! binary, node/Bun/Python script, npm-installed or vendored binary, `python -m`, environment
//! markers). Built in from `agents.toml`; admins add agents in the same format.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::script::{Dialect, Script, script_of};
use crate::glob;

/// The built-in catalog.
pub const BUILTIN_AGENTS: &str = include_str!("../../agents.toml");

/// One agent and how to recognise it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSpec {
    /// Stable id, used as the metric label (`[a-z0-9-]`).
    pub id: String,
    pub name: String,
    /// Globs on program basenames: the executable, `argv[0]`, or an interpreter's script.
    pub exe: Vec<String>,
    /// Globs on full paths: the executable, or what an interpreter/launcher runs.
    pub paths: Vec<String>,
    /// Python modules run with `-m`.
    pub modules: Vec<String>,
    /// Environment markers, `NAME` or `NAME=glob`.
    pub env: Vec<String>,
}

/// A catalog file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogFile {
    /// Globs on basenames of programs that run scripts (node, python3, npx, ...).
    pub interpreters: Vec<String>,
    #[serde(rename = "agent")]
    pub agents: Vec<AgentSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("agent catalog is not valid TOML: {source}")]
    Toml {
        #[source]
        source: toml::de::Error,
    },
    #[error(
        "agent #{index}: `id` must be non-empty and use only a-z, 0-9, `-` and `_`, got {id:?}"
    )]
    BadId { index: usize, id: String },
    #[error("agent `{id}` has no matcher: set `exe`, `paths`, `modules` or `env`")]
    NoMatcher { id: String },
    #[error("agent `{id}`: key `env` entry {entry:?} has an empty name")]
    BadEnv { id: String, entry: String },
}

#[derive(Clone, Debug)]
pub struct Catalog {
    interpreters: Vec<String>,
    agents: Vec<AgentSpec>,
}

impl Catalog {
    pub fn builtin() -> Self {
        match Self::load(BUILTIN_AGENTS, None) {
            Ok(c) => c,
            // Checked by the tests: a defect in the embedded file, not in input.
            Err(e) => panic!("built-in agent catalog is invalid: {e}"),
        }
    }

    /// `base` plus `extra` (an admin file in the same format); same id replaces, new ids append,
    /// extra interpreters are added.
    pub fn load(base: &str, extra: Option<&str>) -> Result<Self, CatalogError> {
        let mut cat = Self {
            interpreters: Vec::new(),
            agents: Vec::new(),
        };
        for text in std::iter::once(base).chain(extra) {
            let file: CatalogFile =
                toml::from_str(text).map_err(|source| CatalogError::Toml { source })?;
            cat.interpreters.extend(file.interpreters);
            for (index, a) in file.agents.into_iter().enumerate() {
                validate(index, &a)?;
                match cat.agents.iter_mut().find(|x| x.id == a.id) {
                    Some(slot) => *slot = a,
                    None => cat.agents.push(a),
                }
            }
        }
        Ok(cat)
    }

    pub fn agents(&self) -> &[AgentSpec] {
        &self.agents
    }

    pub fn get(&self, index: usize) -> Option<&AgentSpec> {
        self.agents.get(index)
    }

    /// The closed set of environment variable names worth reading from /proc/PID/environ.
    pub fn marker_names(&self) -> BTreeSet<&str> {
        self.agents
            .iter()
            .flat_map(|a| a.env.iter())
            .map(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n))
            .collect()
    }

    /// True for a program that runs scripts (the agent is then the script, not the program).
    pub fn is_interpreter(&self, exe: Option<&str>, argv: &[String]) -> bool {
        self.interpreter(exe, argv).is_some()
    }

    /// The interpreter's name (of the executable, else of `argv[0]`) when the program is one.
    fn interpreter<'a>(&self, exe: Option<&'a str>, argv: &'a [String]) -> Option<&'a str> {
        let names = [exe.map(basename), argv.first().map(|a| basename(a))];
        names
            .into_iter()
            .flatten()
            .find(|n| self.interpreters.iter().any(|g| glob::matches(g, n)))
    }

    /// What an interpreter runs (its script or module, read in its own option dialect); `None`
    /// when the program is no interpreter.
    pub fn script_of<'a>(&self, exe: Option<&'a str>, argv: &'a [String]) -> Option<Script<'a>> {
        let name = self.interpreter(exe, argv)?;
        Some(script_of(Dialect::of(name), argv.get(1..).unwrap_or_default()))
    }

    /// The catalog agent this program image is, if any.
    pub fn identify(&self, exe: Option<&str>, argv: &[String]) -> Option<usize> {
        self.identify_image(exe, argv).0
    }

    /// [`Self::identify`], and whether the program is an interpreter: its patterns matched once
    /// for both answers.
    pub fn identify_image(&self, exe: Option<&str>, argv: &[String]) -> (Option<usize>, bool) {
        let interpreter = self.interpreter(exe, argv);
        let mut names: Vec<&str> = Vec::new();
        let mut paths: Vec<&str> = Vec::new();
        let mut modules: Vec<&str> = Vec::new();
        for p in exe.into_iter().chain(argv.first().map(String::as_str)) {
            names.push(basename(p));
            paths.push(p);
        }
        if let Some(script) = interpreter.map(|name| script_of(Dialect::of(name), argv.get(1..).unwrap_or_default())) {
            if let Some(m) = script.module {
                modules.push(m);
            }
            if let Some(s) = script.path {
                names.push(basename(s));
                paths.push(s);
            }
        }
        let id = self.agents.iter().position(|a| {
            names
                .iter()
                .any(|n| a.exe.iter().any(|g| glob::matches(g, n)))
                || paths
                    .iter()
                    .any(|p| a.paths.iter().any(|g| glob::matches(g, p)))
                || modules
                    .iter()
                    .any(|m| a.modules.iter().any(|g| glob::matches(g, m)))
        });
        (id, interpreter.is_some())
    }

    /// The agent whose environment marker is among `markers` (name, value), if any.
    pub fn identify_env(&self, markers: &[(String, String)]) -> Option<usize> {
        // Most processes carry none: asked at every step of every attribution walk.
        if markers.is_empty() {
            return None;
        }
        self.agents.iter().position(|a| {
            a.env.iter().any(|spec| {
                let (name, want) = spec
                    .split_once('=')
                    .map_or((spec.as_str(), None), |(n, v)| (n, Some(v)));
                markers
                    .iter()
                    .any(|(n, v)| n == name && want.is_none_or(|g| glob::matches(g, v)))
            })
        })
    }
}

fn validate(index: usize, a: &AgentSpec) -> Result<(), CatalogError> {
    let ok = !a.id.is_empty()
        && a.id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        return Err(CatalogError::BadId {
            index,
            id: a.id.clone(),
        });
    }
    if a.exe.is_empty() && a.paths.is_empty() && a.modules.is_empty() && a.env.is_empty() {
        return Err(CatalogError::NoMatcher { id: a.id.clone() });
    }
    if let Some(e) = a.env.iter().find(|e| e.is_empty() || e.starts_with('=')) {
        return Err(CatalogError::BadEnv {
            id: a.id.clone(),
            entry: e.clone(),
        });
    }
    Ok(())
}

pub fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(exe: &str, argv: &[&str]) -> Option<String> {
        let c = Catalog::builtin();
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        c.identify(Some(exe), &argv)
            .map(|i| c.agents()[i].id.clone())
    }

    #[test]
    fn the_catalog_covers_the_required_agents() {
        let c = Catalog::builtin();
        for want in [
            "claude-code",
            "codex",
            "gemini-cli",
            "copilot-cli",
            "qwen-code",
            "opencode",
            "kilo",
            "aider",
            "cursor-agent",
            "kiro",
            "goose",
            "crush",
            "amp",
            "cline",
            "continue",
        ] {
            assert!(c.agents().iter().any(|a| a.id == want), "{want} missing");
        }
    }

    #[test]
    fn agents_are_recognised_however_they_run() {
        let cases: &[(&str, &[&str], &str)] = &[
            (
                "/usr/bin/node",
                &[
                    "node",
                    "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js",
                ],
                "claude-code",
            ),
            (
                "/home/u/.local/share/claude/versions/2.0.14",
                &["claude", "-p", "hi"],
                "claude-code",
            ),
            (
                "/usr/bin/node",
                &[
                    "node",
                    "--no-warnings",
                    "/usr/local/lib/node_modules/@openai/codex/bin/codex.js",
                ],
                "codex",
            ),
            (
                "/usr/local/lib/node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex",
                &[
                    "/usr/local/lib/node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex",
                    "exec",
                ],
                "codex",
            ),
            ("/usr/local/bin/codex", &["codex"], "codex"),
            (
                "/usr/bin/node",
                &["/usr/bin/node", "/usr/local/bin/gemini"],
                "gemini-cli",
            ),
            (
                "/usr/bin/node",
                &[
                    "node",
                    "/opt/n/lib/node_modules/@google/gemini-cli/dist/index.js",
                ],
                "gemini-cli",
            ),
            (
                "/usr/bin/npx",
                &["npx", "-y", "@google/gemini-cli"],
                "gemini-cli",
            ),
            (
                "/usr/bin/node",
                &["node", "/usr/lib/node_modules/@github/copilot/index.js"],
                "copilot-cli",
            ),
            (
                "/usr/bin/node",
                &["node", "/usr/lib/node_modules/@qwen-code/qwen-code/cli.js"],
                "qwen-code",
            ),
            ("/home/u/.opencode/bin/opencode", &["opencode"], "opencode"),
            ("/home/u/.kilo/bin/kilo", &["kilo"], "kilo"),
            (
                "/usr/bin/python3.12",
                &["python3", "-m", "aider", "--model", "x"],
                "aider",
            ),
            (
                "/usr/bin/python3.12",
                &["/usr/bin/python3", "/home/u/.local/bin/aider"],
                "aider",
            ),
            ("/home/u/.local/bin/aider", &["aider"], "aider"),
            (
                "/home/u/.local/share/cursor-agent/versions/2025.1/node",
                &["node", "index.js"],
                "cursor-agent",
            ),
            (
                "/usr/local/bin/kiro-cli-chat",
                &["kiro-cli-chat", "chat"],
                "kiro",
            ),
            ("/usr/local/bin/goose", &["goose", "session"], "goose"),
            ("/usr/local/bin/crush", &["crush"], "crush"),
            (
                "/usr/bin/node",
                &[
                    "node",
                    "/usr/lib/node_modules/@sourcegraph/amp/dist/main.js",
                ],
                "amp",
            ),
            (
                "/usr/bin/node",
                &["node", "/usr/lib/node_modules/cline/dist/cli.js"],
                "cline",
            ),
            (
                "/usr/bin/node",
                &[
                    "node",
                    "/usr/lib/node_modules/@continuedev/cli/dist/index.js",
                ],
                "continue",
            ),
        ];
        for (exe, argv, want) in cases {
            assert_eq!(id(exe, argv).as_deref(), Some(*want), "{exe} {argv:?}");
        }
    }

    #[test]
    fn ordinary_programs_and_files_are_not_agents() {
        assert_eq!(
            id(
                "/usr/bin/cat",
                &["cat", "/usr/lib/node_modules/@openai/codex/README.md"]
            ),
            None
        );
        assert_eq!(id("/usr/bin/node", &["node", "server.js"]), None);
        assert_eq!(id("/usr/bin/python3", &["python3", "-m", "pytest"]), None);
        assert_eq!(id("/usr/bin/bash", &["bash", "-c", "claude"]), None);
    }

    #[test]
    fn env_markers_identify_and_admins_extend() {
        let c = Catalog::builtin();
        let m = |n: &str, v: &str| vec![(n.to_owned(), v.to_owned())];
        assert_eq!(
            c.identify_env(&m("CLAUDECODE", "1"))
                .map(|i| c.agents()[i].id.as_str()),
            Some("claude-code")
        );
        assert_eq!(
            c.identify_env(&m("AGENT", "amp"))
                .map(|i| c.agents()[i].id.as_str()),
            Some("amp")
        );
        assert_eq!(c.identify_env(&m("AGENT", "other")), None);
        assert!(c.marker_names().contains("GEMINI_CLI"));
        let extra = "[[agent]]\nid = \"my-bot\"\nexe = [\"mybot\"]\n";
        let c = Catalog::load(BUILTIN_AGENTS, Some(extra)).expect("loads");
        let i = c
            .identify(Some("/opt/mybot"), &["mybot".into()])
            .expect("found");
        assert_eq!(c.agents()[i].id, "my-bot");
        let e = Catalog::load(
            BUILTIN_AGENTS,
            Some("[[agent]]\nid = \"Bad Id\"\nexe = [\"x\"]\n"),
        )
        .expect_err("bad id");
        assert!(e.to_string().contains("\"Bad Id\""), "{e}");
        let e = Catalog::load(
            BUILTIN_AGENTS,
            Some("[[agent]]\nid = \"x\"\nexes = [\"x\"]\n"),
        )
        .expect_err("typo");
        assert!(e.to_string().contains("exes"), "{e}");
    }
}
