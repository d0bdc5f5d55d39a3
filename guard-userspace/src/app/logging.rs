//! guard's own diagnostics on stderr: which filter (`GUARD_LOG` over the config's `log.level`),
//! which format, and colours only where a person reads them.

use std::ffi::{OsStr, OsString};

use tracing_subscriber::EnvFilter;

use super::cli::LogFormat;

/// The environment variable that overrides `log.level`.
pub(crate) const ENV: &str = "GUARD_LOG";

/// What a filter looks like, for error messages.
pub(crate) const FILTER_HINT: &str = "e.g. info, debug, guard=debug";

#[derive(Debug, thiserror::Error)]
pub(crate) enum LogError {
    #[error("{ENV}={value:?} is not a log filter ({FILTER_HINT}): {reason}")]
    Invalid { value: String, reason: String },
}

/// `GUARD_LOG` when it is set and not empty, else `level` (checked with the config). A bad
/// `GUARD_LOG` is an error rather than a silent fall-back: the user asked for something else.
pub(crate) fn filter(env: Option<&OsStr>, level: &str) -> Result<EnvFilter, LogError> {
    let Some(env) = env.filter(|v| !v.is_empty()) else {
        return Ok(EnvFilter::new(level));
    };
    let value = env.to_str().ok_or_else(|| LogError::Invalid { value: env.to_string_lossy().into_owned(), reason: "not UTF-8".into() })?;
    EnvFilter::try_new(value).map_err(|e| LogError::Invalid { value: value.to_owned(), reason: e.to_string() })
}

/// Colours only for a terminal (a file or a pipe would keep the escape codes), and never when
/// `NO_COLOR` is set to anything but the empty string (no-color.org).
pub(crate) fn use_ansi(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// Installs the global subscriber, writing to stderr.
pub(crate) fn init(format: LogFormat, level: &str) -> Result<(), LogError> {
    let env: Option<OsString> = std::env::var_os(ENV);
    let ansi = use_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()), std::env::var_os("NO_COLOR").as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(env.as_deref(), level)?)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn a_bad_guard_log_is_an_error_that_names_it() {
        let e = filter(os("guard=loud"), "info").map(|_| ()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("GUARD_LOG=\"guard=loud\" is not a log filter (e.g. info, debug, guard=debug): "), "{e}");
    }

    #[test]
    fn guard_log_overrides_the_level_unless_empty() {
        let shown = |env, level| filter(env, level).map(|f| f.to_string()).unwrap_or_default();
        assert_eq!(shown(os("guard=debug"), "info"), "guard=debug");
        assert_eq!(shown(os(""), "warn"), "warn");
        assert_eq!(shown(None, "warn"), "warn");
    }

    #[test]
    fn colours_only_for_a_terminal_without_no_color() {
        assert!(use_ansi(true, None));
        assert!(use_ansi(true, os("")));
        assert!(!use_ansi(true, os("1")));
        assert!(!use_ansi(false, None));
        assert!(!use_ansi(false, os("1")));
    }
}
