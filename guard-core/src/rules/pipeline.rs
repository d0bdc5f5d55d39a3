//! What flows between the commands of a pipeline when the script itself says it: `echo TEXT`,
//! `printf FMT ARGS`, a here-string, `base64 -d` of one of those, or a file (`cat FILE`, `< FILE`).
//! With it, `echo cm0gLXJmIH4= | base64 -d | sh` is judged as the `rm -rf ~` it runs.

use base64::Engine as _;

/// Decoded or echoed text longer than this is not followed (a script, not a payload).
pub(crate) const MAX_PAYLOAD: usize = 64 * 1024;

/// A command's standard input, when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Payload {
    Text(String),
    /// The contents of this file (unknown here).
    File(String),
}

/// What `prog args`, fed `stdin`, writes to its output, when the script says it.
pub(crate) fn output(prog: &str, args: &[String], stdin: Option<&Payload>) -> Option<Payload> {
    let text = match prog {
        "echo" => echo(args),
        "printf" => printf(args)?,
        "cat" => {
            return match args {
                [] => stdin.cloned(),
                [f] if !f.starts_with('-') => Some(Payload::File(f.clone())),
                _ => None,
            };
        }
        "base64" if decodes(args) => {
            return match stdin {
                Some(Payload::Text(t)) if !args.iter().any(|a| !a.starts_with('-')) => {
                    decode(t).map(Payload::Text)
                }
                _ => None,
            };
        }
        _ => return None,
    };
    (text.len() <= MAX_PAYLOAD).then_some(Payload::Text(text))
}

fn echo(args: &[String]) -> String {
    let flags = args
        .iter()
        .take_while(|a| a.len() > 1 && a.starts_with('-') && a[1..].chars().all(|c| "neE".contains(c)))
        .count();
    let mut text = args[flags..].join(" ");
    text.push('\n');
    text
}

/// `printf FMT ARGS`: each `%s` (or `%b`) takes the next argument; `\n` is a newline.
fn printf(args: &[String]) -> Option<String> {
    let (fmt, mut rest) = args.split_first()?;
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('%', Some('s' | 'b')) => {
                chars.next();
                if let Some((a, r)) = rest.split_first() {
                    out.push_str(a);
                    rest = r;
                }
            }
            ('\\', Some('n')) => {
                chars.next();
                out.push('\n');
            }
            _ => out.push(c),
        }
    }
    Some(out)
}

/// `base64 -d`, `--decode`, `-D` (macOS), grouped (`-di`).
fn decodes(args: &[String]) -> bool {
    args.iter().any(|a| {
        a == "--decode"
            || a.strip_prefix('-')
                .is_some_and(|g| !g.starts_with('-') && g.contains(['d', 'D']))
    })
}

/// Base64 text (either alphabet, padded or not, wrapped or not) as UTF-8 text.
pub(crate) fn decode(text: &str) -> Option<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() || compact.len() > MAX_PAYLOAD * 4 / 3 + 4 {
        return None;
    }
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(&compact).ok())?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::argv;

    fn text(s: &str) -> Payload {
        Payload::Text(s.to_owned())
    }

    #[test]
    fn echo_printf_and_base64_are_followed() {
        assert_eq!(output("echo", &argv(&["-n", "a", "b"]), None), Some(text("a b\n")));
        assert_eq!(output("printf", &argv(&["%s-%s\\n", "x", "y"]), None), Some(text("x-y\n")));
        let b64 = Some(text("cm0gLXJmIH4=\n"));
        assert_eq!(output("base64", &argv(&["-d"]), b64.as_ref()), Some(text("rm -rf ~")));
        assert_eq!(output("base64", &argv(&["--decode"]), Some(&text("cm0gLXJmIH4"))), Some(text("rm -rf ~")));
        assert_eq!(output("base64", &argv(&[]), b64.as_ref()), None);
        assert_eq!(output("base64", &argv(&["-d", "f.b64"]), b64.as_ref()), None);
        assert_eq!(output("base64", &argv(&["-d"]), Some(&text("not base64!"))), None);
        assert_eq!(output("cat", &argv(&["l.txt"]), None), Some(Payload::File("l.txt".into())));
        assert_eq!(output("cat", &[], b64.as_ref()), b64);
        assert_eq!(output("grep", &argv(&["x"]), b64.as_ref()), None);
    }

    #[test]
    fn payloads_are_bounded() {
        let big = "x".repeat(MAX_PAYLOAD + 1);
        assert_eq!(output("echo", &[big], None), None);
        assert_eq!(decode(&"QUFB".repeat(MAX_PAYLOAD)), None);
    }
}
