//! Destructive-command rules (issue 4).
//!
//! Rules are data: `rules/builtin.toml` is embedded, and admin files in the same format add,
//! override (same id) or disable rules. A command is judged on its normalised form: wrappers
//! peeled ([`normalize`]), shell scripts split ([`shell`]), flags parsed ([`parse`]), path
//! operands classified ([`paths`]). See `docs/rules.md`.

pub mod cli;
pub mod dedup;
mod engine;
mod implied;
pub mod inline;
pub mod normalize;
pub mod parse;
pub mod paths;
mod pipeline;
pub mod schema;
pub mod shell;
mod starts;
mod vars;

#[cfg(test)]
mod corpus_tests;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use dedup::Dedup;
pub use engine::{Rule, RuleSet};
pub use schema::{Category, PathClass, RuleAction, Severity};

/// The built-in rules, in the admin file format.
pub const BUILTIN_RULES: &str = include_str!("../../rules/builtin.toml");

/// Where a command runs, to judge "outside the working tree".
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub cwd: Option<PathBuf>,
    pub home: Option<PathBuf>,
    /// The working tree's root (e.g. the git top level), when the caller knows it; else the cwd.
    pub worktree: Option<PathBuf>,
}

/// One rule matched by one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    pub rule_id: String,
    pub category: Category,
    pub severity: Severity,
    /// What the gate does about it.
    pub action: RuleAction,
    pub description: String,
    /// Which normalised command and which of its parts matched, for humans.
    pub why: String,
    /// The normalised command (program basename first), the key for de-duplication.
    pub command: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("rule file is not valid TOML: {source}")]
    Toml {
        #[source]
        source: toml::de::Error,
    },
    #[error("rule #{index} has no string `id`")]
    MissingId { index: usize },
    #[error("rule `{id}`: unknown key `{key}`")]
    UnknownKey { id: String, key: String },
    #[error("rule `{id}`: {message}")]
    Invalid { id: String, message: String },
    #[error("rule `{id}`: key `{key}` is not a valid regex: {source}")]
    Regex {
        id: String,
        key: String,
        #[source]
        source: Box<regex::Error>,
    },
    #[error("rule `{id}` appears twice in one file")]
    Duplicate { id: String },
    #[error("cannot disable unknown rule `{id}`")]
    UnknownDisabled { id: String },
    #[error("cannot set the action of unknown rule `{id}`")]
    UnknownAction { id: String },
}
