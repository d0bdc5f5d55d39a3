//! The small glob language the rule and agent files use: `*` matches any run of characters
//! (including `/`), `?` one character, and `a|b` gives alternatives. Enough for command names,
//! subcommands and install paths, without a dependency.

/// True when `text` matches any `|`-separated alternative of `pattern`.
pub fn matches(pattern: &str, text: &str) -> bool {
    pattern
        .split('|')
        .any(|alt| wildcard(alt.as_bytes(), text.as_bytes()))
}

/// Iterative wildcard match with single-star backtracking: linear in practice, never recursive.
fn wildcard(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_questions_and_alternatives() {
        assert!(matches("delete-*", "delete-bucket"));
        assert!(!matches("delete-*", "describe-instances"));
        assert!(matches("mkfs|mkfs.*", "mkfs.ext4"));
        assert!(matches(
            "*/@openai/codex/*",
            "/usr/lib/node_modules/@openai/codex/bin/codex.js"
        ));
        assert!(!matches(
            "*/@openai/codex/*",
            "/usr/lib/node_modules/@openai/codex"
        ));
        assert!(matches("python3.?*", "python3.11"));
        assert!(matches("of=/dev/*", "of=/dev/sda"));
        assert!(!matches("rm", "rmdir"));
        assert!(matches("*", ""));
    }
}
