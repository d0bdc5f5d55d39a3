//! The rule file format, as serde reads it. Built-in rules (`rules/builtin.toml`) and admin files
//! share it; see `docs/rules.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One TOML file of rules.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleFile {
    /// Rule ids to switch off (built-in or earlier files).
    pub disabled: Vec<String>,
    /// How to parse each command's options (which take a value), keyed by program name.
    pub commands: BTreeMap<String, CommandSpec>,
    /// Kept as raw tables so that a bad rule's error can name its id.
    #[serde(rename = "rule")]
    pub rules: Vec<toml::Table>,
    /// What the gate does on a match, by rule id; applied after the rules of every file.
    pub actions: BTreeMap<String, RuleAction>,
}

/// Option syntax of one program, so positionals and option values are told apart.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct CommandSpec {
    /// Options that take a value (`-C dir`, `--namespace ns`): one letter is short, longer is long.
    pub value_options: Vec<String>,
    /// Short options whose value is only ever attached (`mysql -pSECRET`).
    pub attached_value: Vec<String>,
    /// `-name` is one long option, not `-n -a -m -e` (terraform, find).
    pub single_dash_long: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    FileDeletion,
    VersionControl,
    Infrastructure,
    Kubernetes,
    Cloud,
    Database,
    Container,
    DiskSystem,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl Category {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FileDeletion => "file_deletion",
            Self::VersionControl => "version_control",
            Self::Infrastructure => "infrastructure",
            Self::Kubernetes => "kubernetes",
            Self::Cloud => "cloud",
            Self::Database => "database",
            Self::Container => "container",
            Self::DiskSystem => "disk_system",
        }
    }
}

/// What the exec gate does when a rule matches (in `enforce` mode; `monitor` only reports it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Refuse the exec.
    Block,
    /// Let it run and record it.
    Observe,
}

impl RuleAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Observe => "observe",
        }
    }

    /// A rule without `action`: high and critical block, medium and low only observe (their
    /// false positives would cost a refused tool call for little protection).
    pub const fn default_for(severity: Severity) -> Self {
        match severity {
            Severity::High | Severity::Critical => Self::Block,
            Severity::Medium | Severity::Low => Self::Observe,
        }
    }
}

/// Where a path operand points, judged against the working tree and HOME (most severe first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathClass {
    /// `/`, `/*`, or an unset variable followed by `/` (`"$DIR"/`).
    Root,
    /// System directories: `/usr`, `/etc`, `/var`, `/boot`, other top-level directories.
    System,
    /// HOME itself, its contents as a whole (`~/*`), or an ancestor of HOME.
    Home,
    /// A `.git` directory.
    Git,
    /// The working tree's root itself (`.`, `*`).
    Worktree,
    /// Anywhere else outside the working tree.
    Outside,
    /// Under /tmp, /var/tmp, /dev/shm or ~/.cache (not those directories themselves).
    Temp,
    /// Inside the working tree, or not knowable (relative path without a cwd, other variables).
    Inside,
}

impl PathClass {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::System => "system",
            Self::Home => "home",
            Self::Git => "git",
            Self::Worktree => "worktree",
            Self::Outside => "outside",
            Self::Temp => "temp",
            Self::Inside => "inside",
        }
    }
}

/// A rule as written. Every condition given must hold; `any` adds alternatives of which one must
/// hold too. Unknown keys are refused by [`super::RuleSet::load`] before serde sees the table
/// (serde cannot deny unknown fields through `flatten`).
#[derive(Clone, Debug, Deserialize)]
pub struct RuleSpec {
    pub id: String,
    pub category: Category,
    pub severity: Severity,
    pub description: String,
    /// `None`: from the severity ([`RuleAction::default_for`]).
    #[serde(default)]
    pub action: Option<RuleAction>,
    /// Program names (basenames, globs) after wrappers are unwrapped.
    pub command: Vec<String>,
    #[serde(flatten)]
    pub when: Condition,
    #[serde(default)]
    pub any: Vec<Condition>,
}

/// Conditions on one normalised command. Globs use `*`, `?` and `a|b`. Flags name a short option
/// by its letter and a long option by its name (`"r|R|recursive"`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Condition {
    /// The leading positionals, one glob each (`["push"]`, `["*", "delete-*"]`).
    pub subcommand: Vec<String>,
    /// Some positional after the subcommand matches one of these globs.
    pub args_any: Vec<String>,
    /// No positional after the subcommand matches any of these globs.
    pub args_none: Vec<String>,
    /// Every entry is present (each entry may list alternatives with `|`).
    pub flags_all: Vec<String>,
    /// At least one entry is present.
    pub flags_any: Vec<String>,
    /// No entry is present.
    pub flags_none: Vec<String>,
    /// Some positional after the subcommand is a path of one of these classes.
    pub paths: Vec<PathClass>,
    /// Some option has a value matching a glob: `"n|namespace=prod*"` (option names `|`-separated,
    /// then `=` and the value's glob).
    pub values_any: Vec<String>,
    /// No option has a value matching a glob (same form as `values_any`).
    pub values_none: Vec<String>,
    /// A regex over option values and/or positionals (SQL, Redis commands).
    pub text: Option<TextSpec>,
}

/// The keys a [`Condition`] table may have.
pub const CONDITION_KEYS: &[&str] = &[
    "subcommand",
    "args_any",
    "args_none",
    "flags_all",
    "flags_any",
    "flags_none",
    "paths",
    "values_any",
    "values_none",
    "text",
];
/// The keys a rule table may have besides the condition keys.
pub const RULE_KEYS: &[&str] = &[
    "id",
    "category",
    "severity",
    "description",
    "action",
    "command",
    "any",
];

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextSpec {
    /// Values of these options are searched (`["c", "command"]`).
    pub options: Vec<String>,
    /// Positionals after the subcommand are searched too.
    pub args: bool,
    pub regex: String,
    /// A text that also matches this regex does not count (`WHERE` for `DELETE FROM`).
    pub unless: Option<String>,
}
