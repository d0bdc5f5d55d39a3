//! Splits a shell script (`sh -c '...'`) into the simple commands it runs: on `;`, `&&`, `||`,
//! `|`, `&`, newlines and parentheses, with command substitutions (`$(...)`, backticks) lifted out
//! as scripts of their own. Quotes are respected; words are then split by `shlex`.
//!
//! This is a reader for judging commands, not a shell: no expansion, no heredocs, no functions.

/// Keywords and grouping words that may lead a simple command.
const LEADING_WORDS: &[&str] = &[
    "!", "{", "}", "then", "do", "else", "elif", "if", "while", "until", "time",
];
/// Words that only close a construct.
const CLOSING_WORDS: &[&str] = &["fi", "done", "esac", "}", "};"];

/// Bounds work on hostile input.
const MAX_DEPTH: usize = 8;
const MAX_COMMANDS: usize = 256;

/// The commands of `script`, each as argv words, in order (substitutions after their command).
pub fn split_script(script: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    split_into(script, 0, &mut out);
    out
}

fn split_into(script: &str, depth: usize, out: &mut Vec<Vec<String>>) {
    if depth > MAX_DEPTH {
        return;
    }
    let (segments, subs) = segments(script);
    for seg in segments {
        if out.len() >= MAX_COMMANDS {
            return;
        }
        let words = words(&seg);
        if !words.is_empty() {
            out.push(words);
        }
    }
    for sub in subs {
        split_into(&sub, depth + 1, out);
    }
}

/// Splits on unquoted control operators; returns the segments and the substitution bodies.
fn segments(script: &str) -> (Vec<String>, Vec<String>) {
    let chars: Vec<char> = script.chars().collect();
    let (mut segs, mut subs) = (Vec::new(), Vec::new());
    let mut cur = String::new();
    let (mut single, mut double) = (false, false);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if single {
            cur.push(c);
            single = c != '\'';
            i += 1;
            continue;
        }
        match c {
            '\\' if i + 1 < chars.len() => {
                if chars[i + 1] != '\n' {
                    cur.push(c);
                    cur.push(chars[i + 1]);
                }
                i += 2;
                continue;
            }
            '$' if chars.get(i + 1) == Some(&'(') && chars.get(i + 2) != Some(&'(') => {
                let end = closing_paren(&chars, i + 2);
                subs.push(chars[i + 2..end].iter().collect());
                // The outer command sees an unknown word here.
                cur.push_str("$(...)");
                i = end + 1;
                continue;
            }
            '`' => {
                let end = (i + 1..chars.len())
                    .find(|&j| chars[j] == '`' && chars[j - 1] != '\\')
                    .unwrap_or(chars.len());
                subs.push(chars[i + 1..end].iter().collect());
                cur.push_str("$(...)");
                i = end + 1;
                continue;
            }
            _ => {}
        }
        if double {
            cur.push(c);
            double = c != '"';
            i += 1;
            continue;
        }
        let prev = if i > 0 { chars[i - 1] } else { ' ' };
        match c {
            '\'' => {
                single = true;
                cur.push(c);
            }
            '"' => {
                double = true;
                cur.push(c);
            }
            '#' if prev.is_whitespace() || cur.trim().is_empty() => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            // `2>&1`, `&>file`, `>&2` are redirections, not the background operator.
            '&' if prev == '>' || prev == '<' || chars.get(i + 1) == Some(&'>') => cur.push(c),
            ';' | '&' | '|' | '\n' | '(' | ')' => segs.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
        i += 1;
    }
    segs.push(cur);
    (segs, subs)
}

/// Index of the `)` closing a `$(` whose body starts at `from` (or the end of input).
fn closing_paren(chars: &[char], from: usize) -> usize {
    let (mut depth, mut single, mut double) = (1usize, false, false);
    let mut i = from;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '(' if !single && !double => depth += 1,
            ')' if !single && !double => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    chars.len()
}

/// Shell words of one simple command, without redirections and leading keywords.
fn words(segment: &str) -> Vec<String> {
    let raw = shlex::split(segment)
        .unwrap_or_else(|| segment.split_whitespace().map(str::to_owned).collect());
    let mut out = Vec::with_capacity(raw.len());
    let mut skip_target = false;
    for w in raw {
        if std::mem::take(&mut skip_target) {
            continue;
        }
        if let Some(rest) = redirection(&w) {
            skip_target = rest.is_empty();
            continue;
        }
        if out.is_empty() && LEADING_WORDS.contains(&w.as_str()) {
            continue;
        }
        out.push(w);
    }
    if out.len() == 1 && CLOSING_WORDS.contains(&out[0].as_str()) {
        out.clear();
    }
    out
}

/// For a redirection word (`>out`, `2>>log`, `<in`, `&>x`, `>&2`), the target glued to it.
fn redirection(word: &str) -> Option<&str> {
    let body = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let body = body.strip_prefix('&').unwrap_or(body);
    let op_len = body.len() - body.trim_start_matches(['<', '>', '&', '|']).len();
    if op_len == 0 || !body.starts_with(['<', '>']) {
        return None;
    }
    Some(&body[op_len..])
}

#[cfg(test)]
mod tests {
    use super::split_script;

    fn cmds(s: &str) -> Vec<String> {
        split_script(s).into_iter().map(|w| w.join(" ")).collect()
    }

    #[test]
    fn splits_on_control_operators() {
        assert_eq!(
            cmds("cd /x && rm -rf y; ls | wc -l || true"),
            ["cd /x", "rm -rf y", "ls", "wc -l", "true"]
        );
        assert_eq!(cmds("a\nb & c"), ["a", "b", "c"]);
        assert_eq!(cmds("(cd sub; make) 2>&1 >/dev/null"), ["cd sub", "make"]);
    }

    #[test]
    fn quotes_keep_operators_inside_words() {
        assert_eq!(
            split_script("echo 'a; rm -rf /' \"b && c\""),
            [vec!["echo", "a; rm -rf /", "b && c"]]
        );
        assert_eq!(
            split_script("git commit -m \"fix: rm -rf; done\""),
            [vec!["git", "commit", "-m", "fix: rm -rf; done"]]
        );
    }

    #[test]
    fn substitutions_are_lifted_out() {
        assert_eq!(
            cmds("echo $(rm -rf /x) `shred f`"),
            ["echo $(...) $(...)", "rm -rf /x", "shred f"]
        );
        assert_eq!(
            cmds("x=\"$(git reset --hard)\""),
            ["x=$(...)", "git reset --hard"]
        );
    }

    #[test]
    fn redirections_keywords_and_comments_are_dropped() {
        assert_eq!(
            cmds("if true; then rm -rf /a > log 2>&1; fi # rm -rf /"),
            ["true", "rm -rf /a"]
        );
        assert_eq!(
            cmds("for d in a b; do rm -rf \"$d\"; done"),
            ["for d in a b", "rm -rf $d"]
        );
    }
}
