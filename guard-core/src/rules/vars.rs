//! Shell variables assigned earlier in the same script, and their expansion in later commands:
//! `X=rm; $X -rf ~` runs `rm -rf ~`, and `T=~; rm -rf "$T"` deletes HOME. Only literal values are
//! known (a value holding a command substitution makes the variable unknown again); anything else
//! (environment, `read`, loops) stays as written and [`super::paths`] judges it as unknown.

use std::collections::HashMap;

/// Bounds work on hostile scripts.
const MAX_VARS: usize = 64;
const MAX_VALUE: usize = 4096;
/// Expansion stops once a command's text reaches this length.
const MAX_SEGMENT: usize = 64 * 1024;

/// Builtins whose operands are assignments (`export X=1`).
const DECLARERS: &[&str] = &["export", "declare", "typeset", "local", "readonly"];

#[derive(Debug, Default)]
pub(crate) struct Vars {
    known: HashMap<String, String>,
}

impl Vars {
    /// Learns the assignments of one command, when it is only assignments (`A=1 B=2`) or a
    /// declaration (`export A=1`). `A=1 cmd` sets A for cmd only, so it teaches nothing.
    pub(crate) fn record(&mut self, words: &[String]) {
        let rest = match words.first() {
            Some(w) if DECLARERS.contains(&w.as_str()) => &words[1..],
            _ if words.iter().all(|w| assignment(w).is_some()) => words,
            _ => return,
        };
        for (name, value) in rest.iter().filter_map(|w| assignment(w)) {
            if value.contains("$(...)") || value.len() > MAX_VALUE {
                self.known.remove(name);
            } else if self.known.len() < MAX_VARS || self.known.contains_key(name) {
                self.known.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    /// `segment` with `$NAME` and `${NAME}` of known variables replaced: quoted for the shell so
    /// that the words come out as the shell would make them (split outside double quotes, one
    /// word inside them, untouched inside single quotes).
    pub(crate) fn substitute(&self, segment: &str) -> String {
        if self.known.is_empty() || !segment.contains('$') {
            return segment.to_owned();
        }
        let mut out = String::with_capacity(segment.len());
        let (mut single, mut double) = (false, false);
        let mut rest = segment;
        while let Some(c) = rest.chars().next() {
            if c == '$'
                && !single
                && out.len() < MAX_SEGMENT
                && let Some((name, len)) = reference(rest)
                && let Some(value) = self.known.get(name)
            {
                out.push_str(&quoted(value, double));
                rest = &rest[len..];
                continue;
            }
            match c {
                '\'' if !double => single = !single,
                '"' if !single => double = !double,
                '\\' if !single => {
                    let n = rest.chars().nth(1).map_or(0, char::len_utf8);
                    out.push_str(&rest[..1 + n]);
                    rest = &rest[1 + n..];
                    continue;
                }
                _ => {}
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }
}

/// `NAME=value` split, when `word` is an assignment.
pub(crate) fn assignment(word: &str) -> Option<(&str, &str)> {
    let (name, value) = word.split_once('=')?;
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    valid.then_some((name, value))
}

/// The variable name of a `$NAME` or `${NAME}` at the start of `s`, and the reference's length.
fn reference(s: &str) -> Option<(&str, usize)> {
    let body = s.strip_prefix('$')?;
    if let Some(braced) = body.strip_prefix('{') {
        let end = braced.find('}')?;
        let name = &braced[..end];
        let simple = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        return simple.then_some((name, end + 3));
    }
    let len = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    (len > 0).then(|| (&body[..len], len + 1))
}

/// A value as text to splice into the script: escaped inside double quotes, else one quoted
/// word per whitespace-separated field.
fn quoted(value: &str, in_double: bool) -> String {
    if in_double {
        let mut out = String::with_capacity(value.len());
        for c in value.chars() {
            if matches!(c, '"' | '\\' | '$' | '`') {
                out.push('\\');
            }
            out.push(c);
        }
        return out;
    }
    value
        .split_whitespace()
        .map(|f| match shlex::try_quote(f) {
            // `~` stays bare so that the shell (and paths.rs) still read it as HOME.
            Ok(q) if f.starts_with('~') && q.starts_with('\'') => f.to_owned(),
            Ok(q) => q.into_owned(),
            Err(_) => String::new(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn only_plain_assignments_and_declarations_teach() {
        let mut v = Vars::default();
        v.record(&words(&["A=1", "B=two words"]));
        v.record(&words(&["C=3", "make"]));
        v.record(&words(&["export", "-n", "D=4"]));
        assert_eq!(v.substitute("$A ${B} $C $D"), "1 two words $C 4");
        assert_eq!(v.substitute("'$A' \"$B\" \\$A"), "'$A' \"two words\" \\$A");
        v.record(&words(&["A=$(...)"]));
        assert_eq!(v.substitute("$A$"), "$A$");
    }

    #[test]
    fn the_number_of_variables_is_bounded() {
        let mut v = Vars::default();
        for i in 0..200 {
            v.record(&[format!("V{i}=x")]);
        }
        assert_eq!(v.known.len(), MAX_VARS);
        v.record(&[format!("V0={}", "y".repeat(MAX_VALUE))]);
        let long = v.substitute(&"$V0 ".repeat(1000));
        assert!(long.len() < MAX_SEGMENT + MAX_VALUE + 4000, "{}", long.len());
    }
}
