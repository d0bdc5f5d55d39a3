//! Splits a shell script (`sh -c '...'`) into the simple commands it runs: on `;`, `&&`, `||`,
//! `|`, `&`, newlines and parentheses, with command substitutions (`$(...)`, backticks) lifted out
//! as scripts of their own. Quotes are respected; words are then split by `shlex`.
//!
//! This is a reader for judging commands, not a shell: no globbing, no heredocs, no functions.
//! The one expansion it does is of variables assigned earlier in the same script (`X=rm; $X -rf
//! ~`), because that is how a deletion hides from an argv reader; see [`vars`].

use super::vars::Vars;

/// Where a command's standard input comes from, as far as the script says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stdin {
    /// Whatever the script itself reads.
    Inherit,
    /// The previous command's output (`a | b`).
    Pipe,
    /// A here-string (`<<< word`), without the newline the shell adds.
    HereString(String),
    /// A file (`< path`).
    File(String),
}

/// One simple command of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub words: Vec<String>,
    pub stdin: Stdin,
}

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
    split_commands(script).into_iter().map(|c| c.words).collect()
}

/// The commands of `script` with where each reads its input from.
pub fn split_commands(script: &str) -> Vec<Command> {
    let mut out = Vec::new();
    split_into(script, 0, &mut out);
    out
}

fn split_into(script: &str, depth: usize, out: &mut Vec<Command>) {
    if depth > MAX_DEPTH {
        return;
    }
    let (segments, subs) = segments(script);
    let mut vars = Vars::default();
    let mut piped = false;
    for (seg, after_pipe) in segments {
        if out.len() >= MAX_COMMANDS {
            return;
        }
        piped |= after_pipe;
        let (words, redirect) = words(&vars.substitute(&seg));
        if words.is_empty() {
            continue;
        }
        vars.record(&words);
        let stdin = match redirect {
            Some(s) => s,
            None if std::mem::take(&mut piped) => Stdin::Pipe,
            None => Stdin::Inherit,
        };
        piped = false;
        out.push(Command { words, stdin });
    }
    for sub in subs {
        split_into(&sub, depth + 1, out);
    }
}

/// Splits on unquoted control operators; returns the segments (each with whether a pipe feeds
/// it) and the substitution bodies.
fn segments(script: &str) -> (Vec<(String, bool)>, Vec<String>) {
    let chars: Vec<char> = script.chars().collect();
    let (mut segs, mut subs) = (Vec::new(), Vec::new());
    let mut piped = false;
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
            ';' | '&' | '|' | '\n' | '(' | ')' => {
                segs.push((std::mem::take(&mut cur), piped));
                // `a | b` and `a |& b` pipe; `a || b` does not.
                piped = c == '|' && prev != '|' && chars.get(i + 1) != Some(&'|');
            }
            _ => cur.push(c),
        }
        i += 1;
    }
    segs.push((cur, piped));
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

/// Shell words of one simple command, without redirections and leading keywords, and the input
/// redirection (`< file`, `<<< word`) when there is one.
fn words(segment: &str) -> (Vec<String>, Option<Stdin>) {
    let raw = shlex::split(segment)
        .unwrap_or_else(|| segment.split_whitespace().map(str::to_owned).collect());
    let mut out = Vec::with_capacity(raw.len());
    let mut stdin = None;
    // The operator whose target is the next word.
    let mut pending: Option<String> = None;
    for w in raw {
        if let Some(op) = pending.take() {
            stdin = input(&op, &w).or(stdin);
            continue;
        }
        if let Some((op, rest)) = redirection(&w) {
            if rest.is_empty() {
                pending = Some(op.to_owned());
            } else {
                stdin = input(op, rest).or(stdin);
            }
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
    (out, stdin)
}

/// For a redirection word (`>out`, `2>>log`, `<in`, `&>x`, `>&2`), its operator and the target
/// glued to it.
fn redirection(word: &str) -> Option<(&str, &str)> {
    let fd = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let body = &word[fd..];
    let body = body.strip_prefix('&').unwrap_or(body);
    let op_len = body.len() - body.trim_start_matches(['<', '>', '&', '|']).len();
    if op_len == 0 || !body.starts_with(['<', '>']) {
        return None;
    }
    // Only fd 0 (or none) redirects input.
    let op = if fd > 0 && &word[..fd] != "0" { ">" } else { &body[..op_len] };
    Some((op, &body[op_len..]))
}

/// What an input redirection feeds the command (heredoc bodies are read as commands instead).
fn input(op: &str, target: &str) -> Option<Stdin> {
    match op {
        "<" => Some(Stdin::File(target.to_owned())),
        "<<<" => Some(Stdin::HereString(target.to_owned())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{Stdin, split_commands, split_script};

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

    #[test]
    fn pipes_and_input_redirections_are_kept() {
        let c = split_commands("echo x | base64 -d | sh; a || b; base64 -d <<< eA== |& bash; xargs rm < l.txt 2>/dev/null");
        let stdin: Vec<(&str, &Stdin)> = c.iter().map(|c| (c.words[0].as_str(), &c.stdin)).collect();
        assert_eq!(
            stdin,
            [
                ("echo", &Stdin::Inherit),
                ("base64", &Stdin::Pipe),
                ("sh", &Stdin::Pipe),
                ("a", &Stdin::Inherit),
                ("b", &Stdin::Inherit),
                ("base64", &Stdin::HereString("eA==".into())),
                ("bash", &Stdin::Pipe),
                ("xargs", &Stdin::File("l.txt".into())),
            ]
        );
        assert_eq!(c[5].words, ["base64", "-d"]);
        assert_eq!(split_commands("sh <<<'rm -rf ~'")[0].stdin, Stdin::HereString("rm -rf ~".into()));
    }

    #[test]
    fn variables_assigned_earlier_are_expanded() {
        assert_eq!(cmds("X=rm; $X -rf ~"), ["X=rm", "rm -rf ~"]);
        assert_eq!(cmds("T=~; rm -rf \"$T\""), ["T=~", "rm -rf ~"]);
        assert_eq!(cmds("C='rm -rf'; $C /; \"$C\" /x"), ["C=rm -rf", "rm -rf /", "rm -rf /x"]);
        assert_eq!(cmds("export D=/etc; rm -rf ${D}/x"), ["export D=/etc", "rm -rf /etc/x"]);
        // Single quotes keep `$X`; unknown variables stay; a substitution makes X unknown.
        assert_eq!(cmds("X=rm; echo '$X' $Y"), ["X=rm", "echo $X $Y"]);
        assert_eq!(cmds("X=rm; X=$(pwd); $X -rf ~"), ["X=rm", "X=$(...)", "$X -rf ~", "pwd"]);
    }
}
