//! One family of value sanitisers for everything that may become a metric label, a log field or
//! an audit field without being a closed set: agent ids, model names, identifiers (rule ids,
//! library names, provider error types). Each kind has one character set and one length cap,
//! wherever the value is cleaned: the process table, the providers and the metrics all agree.

/// What kind of value is being cleaned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An agent id or zero-config label: lowercase `[a-z0-9_-]`, no `_` at either end.
    Agent,
    /// A model name: letters, digits and `-._:/@+`.
    Model,
    /// A short identifier: `[A-Za-z0-9_.-]`.
    Ident,
}

impl Kind {
    /// The longest value kept, in characters (Bedrock inference profile ids are long models).
    pub const fn max(self) -> usize {
        match self {
            Self::Agent | Self::Ident => 64,
            Self::Model => 96,
        }
    }

    fn keep(self, c: char) -> bool {
        match self {
            Self::Agent => c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_',
            Self::Model => c.is_ascii_alphanumeric() || "-._:/@+".contains(c),
            Self::Ident => c.is_ascii_alphanumeric() || "-_.".contains(c),
        }
    }
}

/// `raw` made fit for `kind`: every other character becomes `_`, the length is capped, and
/// `None` when nothing meaningful is left.
pub fn clean(kind: Kind, raw: &str) -> Option<String> {
    let raw = raw.trim();
    let v: String = raw
        .chars()
        .map(|c| if kind == Kind::Agent { c.to_ascii_lowercase() } else { c })
        .map(|c| if kind.keep(c) { c } else { '_' })
        .take(kind.max())
        .collect();
    let v = if kind == Kind::Agent { v.trim_matches('_').to_owned() } else { v };
    (!v.is_empty() && v.chars().any(|c| c != '_')).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_one_charset_and_one_cap() {
        assert_eq!(clean(Kind::Agent, "Claude Code").as_deref(), Some("claude_code"));
        assert_eq!(clean(Kind::Agent, "__my.bot__").as_deref(), Some("my_bot"));
        assert_eq!(clean(Kind::Agent, "  "), None);
        assert_eq!(clean(Kind::Agent, "???"), None);
        assert_eq!(clean(Kind::Agent, &"a".repeat(100)).map(|v| v.len()), Some(64));
        assert_eq!(
            clean(Kind::Model, "us.anthropic.claude-3-5-sonnet-20240620-v1:0").as_deref(),
            Some("us.anthropic.claude-3-5-sonnet-20240620-v1:0")
        );
        assert_eq!(clean(Kind::Model, "gpt 4\"}\n").as_deref(), Some("gpt_4__"));
        assert_eq!(clean(Kind::Model, &"m".repeat(500)).map(|v| v.len()), Some(96));
        assert_eq!(clean(Kind::Ident, "rm-rf/root").as_deref(), Some("rm-rf_root"));
        assert_eq!(clean(Kind::Ident, "overloaded_error").as_deref(), Some("overloaded_error"));
    }
}
