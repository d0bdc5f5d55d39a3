//! Inline interpreter code (`python -c`, `node -e`, `perl -e`, `ruby -e`, `deno eval`, `bun -e`):
//! the deletion calls it makes on literal paths, and the shell commands it starts on literal
//! strings, so that they are judged like the `rm -rf PATH` or script they amount to.
//!
//! This is not a parser for each language: one tokenizer that knows string literals, comments,
//! dotted names (`shutil.rmtree`, `File::Path::rmtree`) and punctuation is enough to find a call
//! by its name and read its first argument when that argument is literal. Code that computes its
//! path (variables, loops, code read from a file) is not seen here; the kernel's deletion events
//! see it.

/// Bounds work on hostile input.
const MAX_CODE: usize = 64 * 1024;
const MAX_TOKENS: usize = 16 * 1024;
const MAX_FINDINGS: usize = 64;
/// How far a call's arguments are read: keeps the scan linear in the code's length.
const MAX_ARG_TOKENS: usize = 256;

/// Calls that delete a tree whatever their options.
const RECURSIVE: &[&str] = &[
    "rmtree", "remove_tree", "rm_rf", "rm_r", "rmrf", "remove_dir", "remove_entry",
    "remove_entry_secure", "rimraf",
];
/// Calls that delete a tree when given `recursive: true` (node, deno, bun), else one entry.
const RECURSIVE_IF_ASKED: &[&str] = &["rmSync", "rmdirSync", "remove", "removeSync", "rmdir", "rm"];
/// Calls that delete one file or empty directory.
const SINGLE: &[&str] = &["unlink", "unlinkSync", "delete", "removedirs", "rm_f", "safe_unlink"];
/// Names too common to mean a deletion without a qualifier (`fs.rm`, not a local `rm`).
const NEEDS_QUALIFIER: &[&str] = &["rm", "remove", "delete", "rmdir"];

/// Calls that run their string argument as a shell command, by their full (qualified) name or,
/// for perl and ruby, their bare name.
const SHELL_CALLS: &[&str] = &[
    "os.system", "os.popen", "subprocess.run", "subprocess.call", "subprocess.check_call",
    "subprocess.check_output", "subprocess.Popen", "subprocess.getoutput",
    "subprocess.getstatusoutput", "execSync", "child_process.execSync", "child_process.exec",
    "system", "Kernel.system", "IO.popen",
];

/// Languages whose inline code is read, by how they mark comments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// Python, Perl, Ruby: `#` comments; in Perl and Ruby backticks run a shell command.
    Hash { backticks_run: bool },
    /// JavaScript and TypeScript: `//` comments; backticks are template strings.
    Slash,
}

/// What a piece of inline code does that the rules should judge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A deletion call on a literal path (`~` stands for HOME).
    Delete { call: String, path: String, recursive: bool },
    /// A shell command run from a literal string.
    Shell { call: String, script: String },
    /// A program run from a literal list (`subprocess.run(["rm", "-rf", "/"])`).
    Exec { call: String, argv: Vec<String> },
}

/// The interpreter's language and its inline code (all `-e` parts), when `prog` runs some.
pub fn code_of(prog: &str, args: &[String]) -> Option<(Lang, String)> {
    let hash = |backticks_run| Lang::Hash { backticks_run };
    if crate::glob::matches("python|python2*|python3*|pypy|pypy3*", prog) {
        return python_code(args).map(|c| (hash(false), c));
    }
    match prog {
        "node" | "nodejs" | "bun" => node_code(args).map(|c| (Lang::Slash, c)),
        "deno" => deno_code(args).map(|c| (Lang::Slash, c)),
        "perl" => dash_e_code(args, "MmIxDdiC").map(|c| (hash(true), c)),
        "ruby" => dash_e_code(args, "rICEKxFTWJ").map(|c| (hash(true), c)),
        _ => None,
    }
}

/// Whether `prog args` reads its program from standard input (`python3`, `node -`, `perl`).
pub fn reads_code_from_stdin(prog: &str, args: &[String]) -> Option<Lang> {
    let hash = |backticks_run| Lang::Hash { backticks_run };
    let lang = if crate::glob::matches("python|python2*|python3*|pypy|pypy3*", prog) {
        hash(false)
    } else {
        match prog {
            "node" | "nodejs" => Lang::Slash,
            "perl" => hash(true),
            "ruby" => hash(true),
            _ => return None,
        }
    };
    // No script operand (or `-`): the code comes from stdin. Options with values are rare here.
    let script = args.iter().find(|a| !a.starts_with('-') || *a == "-");
    (script.is_none_or(|s| s == "-") && code_of(prog, args).is_none()).then_some(lang)
}

/// `python [opts] -c CODE`: options before `-c` may be grouped (`-Bc`); `-m` runs a module.
fn python_code(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let group = a.strip_prefix('-').filter(|g| !g.is_empty() && !g.starts_with('-'))?;
        for (i, c) in group.char_indices() {
            match c {
                'c' => {
                    let rest = &group[i + 1..];
                    return if rest.is_empty() { it.next().cloned() } else { Some(rest.to_owned()) };
                }
                'm' => return None,
                'W' | 'X' => {
                    if group[i + 1..].is_empty() {
                        it.next();
                    }
                    break;
                }
                _ => {}
            }
        }
    }
    None
}

/// `node|bun -e|--eval|-p|--print CODE`.
fn node_code(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if matches!(a.as_str(), "-e" | "--eval" | "-p" | "--print" | "-pe") {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix("--eval=").or_else(|| a.strip_prefix("--print=")) {
            return Some(v.to_owned());
        }
        if !a.starts_with('-') {
            return None;
        }
    }
    None
}

/// `deno eval [opts] CODE`.
fn deno_code(args: &[String]) -> Option<String> {
    let mut it = args.iter().skip_while(|a| a.starts_with('-'));
    if it.next().is_none_or(|sub| sub != "eval") {
        return None;
    }
    it.find(|a| !a.starts_with('-')).cloned()
}

/// `perl|ruby ... -e CODE [-e CODE]`, with grouped letters (`-le`) and options whose value is
/// attached (`-MFile::Path`, `-rfileutils`), listed in `attached`.
fn dash_e_code(args: &[String], attached: &str) -> Option<String> {
    let mut parts = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" || !a.starts_with('-') || a == "-" {
            break;
        }
        let group = &a[1..];
        for (i, c) in group.char_indices() {
            if c == 'e' || c == 'E' {
                let rest = &group[i + 1..];
                let code = if rest.is_empty() { it.next().cloned() } else { Some(rest.to_owned()) };
                parts.extend(code);
                break;
            }
            if attached.contains(c) {
                break;
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join("\n"))
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    /// A dotted name: `shutil.rmtree`, `File::Path::rmtree`, `$ENV`.
    Name(String),
    /// A string literal's text; `run` when it is a command (Perl and Ruby backticks).
    Str { text: String, run: bool },
    Punct(char),
}

/// What `code` does that the rules should judge.
pub fn findings(lang: Lang, code: &str) -> Vec<Finding> {
    if code.len() > MAX_CODE {
        return Vec::new();
    }
    let toks = tokens(lang, code);
    let mut out = Vec::new();
    for i in 0..toks.len() {
        if out.len() >= MAX_FINDINGS {
            break;
        }
        match &toks[i] {
            Tok::Name(name) => out.extend(call(name, &toks, i + 1)),
            Tok::Str { text, run: true } => out.push(Finding::Shell {
                call: "`...`".into(),
                script: text.clone(),
            }),
            _ => {}
        }
    }
    out
}

/// The finding of a call to `name` whose argument list starts at `toks[at]` (`(` or, in Perl and
/// Ruby, the first argument itself).
fn call(name: &str, toks: &[Tok], at: usize) -> Option<Finding> {
    let (qualifier, last) = match name.rfind(['.', ':']) {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => ("", name),
    };
    let shell = SHELL_CALLS.contains(&name);
    if !shell && ![RECURSIVE, RECURSIVE_IF_ASKED, SINGLE].iter().any(|l| l.contains(&last)) {
        return None;
    }
    let paren = toks.get(at) == Some(&Tok::Punct('('));
    let args = first_argument(toks, if paren { at + 1 } else { at }, paren);
    if shell {
        return match args {
            [Tok::Str { text, .. }] => Some(Finding::Shell { call: name.into(), script: text.clone() }),
            [Tok::Punct('['), items @ .., Tok::Punct(']')] => {
                let argv: Vec<String> = items
                    .iter()
                    .filter(|t| **t != Tok::Punct(','))
                    .map(|t| match t {
                        Tok::Str { text, .. } => Some(text.clone()),
                        _ => None,
                    })
                    .collect::<Option<_>>()?;
                (!argv.is_empty()).then(|| Finding::Exec { call: name.into(), argv })
            }
            _ => None,
        };
    }
    if NEEDS_QUALIFIER.contains(&last) && qualifier.is_empty() {
        return None;
    }
    let recursive = if RECURSIVE.contains(&last) {
        true
    } else if RECURSIVE_IF_ASKED.contains(&last) {
        paren && asks_recursive(toks, at + 1)
    } else if SINGLE.contains(&last) {
        false
    } else {
        return None;
    };
    let path = literal_path(args)?;
    Some(Finding::Delete { call: name.into(), path, recursive })
}

/// The tokens of the first argument: up to the first top-level `,` or the closing `)` (or, without
/// parentheses, the end of the statement).
fn first_argument(toks: &[Tok], from: usize, paren: bool) -> &[Tok] {
    let mut depth = 0usize;
    let mut end = from;
    while let Some(t) = toks.get(end).filter(|_| end - from < MAX_ARG_TOKENS) {
        match t {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') if depth == 0 => break,
            Tok::Punct(')' | ']' | '}') => depth -= 1,
            Tok::Punct(',') if depth == 0 => break,
            Tok::Punct(';') if depth == 0 && !paren => break,
            _ => {}
        }
        end += 1;
    }
    &toks[from.min(end)..end]
}

/// Whether the call's argument list (from `from` to its closing `)`) says `recursive: true`.
fn asks_recursive(toks: &[Tok], from: usize) -> bool {
    let mut depth = 1usize;
    for (i, t) in toks.iter().enumerate().skip(from).take(MAX_ARG_TOKENS) {
        match t {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => {
                depth -= 1;
                if depth == 0 {
                    return false;
                }
            }
            Tok::Name(n) if n == "recursive" => {
                let value = toks.get(i + 2).or(toks.get(i + 1));
                if value == Some(&Tok::Name("true".into())) {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// Names that only build a path from their arguments, or stand for HOME.
const PATH_BUILDERS: &[&str] = &[
    "Path", "PurePath", "PosixPath", "join", "expanduser", "abspath", "realpath", "resolve",
    "normpath", "expand_path", "require", "getenv", "environ", "env", "ENV", "$ENV", "Deno",
    "os", "path", "fs", "File", "Dir", "pathlib",
];
const HOME_NAMES: &[&str] = &["home", "homedir", "HOME", "home_dir"];

/// The path an argument names when it is built only from literals and HOME (`'/etc'`,
/// `os.path.expanduser("~")`, `Path.home()`, `path.join(os.homedir(), ".ssh")`); `None` when a
/// variable or any other computation is involved.
fn literal_path(arg: &[Tok]) -> Option<String> {
    let mut home = false;
    let mut parts = Vec::new();
    let mut after_require = false;
    for t in arg {
        match t {
            Tok::Name(n) => {
                let last = n.rsplit(['.', ':']).next().unwrap_or(n);
                if HOME_NAMES.contains(&last) {
                    home = true;
                } else if !PATH_BUILDERS.contains(&last) && !PATH_BUILDERS.contains(&n.as_str()) {
                    return None;
                }
                after_require = last == "require";
            }
            // `require('os')` names a module, `environ['HOME']` a variable.
            Tok::Str { .. } if after_require => after_require = false,
            Tok::Str { text, .. } if text == "HOME" => home = true,
            Tok::Str { text, .. } => parts.push(text.clone()),
            Tok::Punct(_) => {}
        }
    }
    let mut path = if home { "~".to_owned() } else { String::new() };
    for p in parts {
        if p.starts_with('/') || path.is_empty() {
            path = p;
        } else {
            path = format!("{}/{p}", path.trim_end_matches('/'));
        }
    }
    (!path.is_empty()).then_some(path)
}

fn tokens(lang: Lang, code: &str) -> Vec<Tok> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() && out.len() < MAX_TOKENS {
        let c = chars[i];
        let prev = if i > 0 { chars[i - 1] } else { ' ' };
        let comment = match lang {
            Lang::Hash { .. } => c == '#' && prev != '$',
            Lang::Slash => c == '/' && chars.get(i + 1) == Some(&'/') && prev != ':',
        };
        if comment {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if matches!(c, '\'' | '"' | '`') {
            let run = c == '`' && matches!(lang, Lang::Hash { backticks_run: true });
            let (text, next) = string(&chars, i);
            // A name glued to a quote is a string prefix (`r'..'`, `b".."`, `f'..'`).
            if let Some(Tok::Name(p)) = out.last()
                && p.len() <= 2
                && p.chars().all(|c| "rRbBuUfF".contains(c))
                && chars[i - 1] == p.chars().last().unwrap_or(' ')
            {
                out.pop();
            }
            out.push(Tok::Str { text, run });
            i = next;
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len() && name_char(&chars, i) {
                i += 1;
            }
            out.push(Tok::Name(chars[start..i].iter().collect()));
        } else {
            if !c.is_whitespace() {
                out.push(Tok::Punct(c));
            }
            i += 1;
        }
    }
    out
}

/// Whether `chars[i]` continues a dotted name (`a.b`, `A::B`, `$x`).
fn name_char(chars: &[char], i: usize) -> bool {
    let c = chars[i];
    let next_is_word = chars.get(i + 1).is_some_and(|n| n.is_alphanumeric() || *n == '_');
    c.is_alphanumeric()
        || c == '_'
        || c == '$'
        || (c == '.' && next_is_word)
        || (c == ':' && chars.get(i + 1) == Some(&':'))
        || (c == ':' && i > 0 && chars[i - 1] == ':' && next_is_word)
}

/// The text of the string literal opening at `chars[at]` (triple quotes included), with simple
/// escapes resolved, and the index after it.
fn string(chars: &[char], at: usize) -> (String, usize) {
    let q = chars[at];
    let triple = chars.get(at + 1) == Some(&q) && chars.get(at + 2) == Some(&q);
    let mut i = at + if triple { 3 } else { 1 };
    let mut text = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            text.push(match chars[i + 1] {
                'n' => '\n',
                't' => '\t',
                other => other,
            });
            i += 2;
            continue;
        }
        if c == q && (!triple || (chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q))) {
            return (text, i + if triple { 3 } else { 1 });
        }
        text.push(c);
        i += 1;
    }
    (text, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::argv;

    fn deletes(lang: Lang, code: &str) -> Vec<(String, bool)> {
        findings(lang, code)
            .into_iter()
            .filter_map(|f| match f {
                Finding::Delete { path, recursive, .. } => Some((path, recursive)),
                _ => None,
            })
            .collect()
    }

    const PY: Lang = Lang::Hash { backticks_run: false };
    const PERL: Lang = Lang::Hash { backticks_run: true };

    #[test]
    fn code_is_found_after_each_interpreters_options() {
        let code = |p: &str, a: &[&str]| code_of(p, &argv(a)).map(|(_, c)| c);
        assert_eq!(code("python3", &["-I", "-c", "x"]).as_deref(), Some("x"));
        assert_eq!(code("python3.12", &["-Bc", "y"]).as_deref(), Some("y"));
        assert_eq!(code("python3", &["-m", "http.server", "-c", "x"]), None);
        assert_eq!(code("python3", &["script.py", "-c", "x"]), None);
        assert_eq!(code("node", &["--eval=z"]).as_deref(), Some("z"));
        assert_eq!(code("node", &["app.js", "-e", "z"]), None);
        assert_eq!(code("deno", &["eval", "--ext=ts", "w"]).as_deref(), Some("w"));
        assert_eq!(code("deno", &["run", "w.ts"]), None);
        assert_eq!(code("perl", &["-MFile::Path=rmtree", "-le", "a", "-e", "b"]).as_deref(), Some("a\nb"));
        assert_eq!(code("ruby", &["-rfileutils", "-e", "c"]).as_deref(), Some("c"));
        assert_eq!(code("rustc", &["-e", "c"]), None);
    }

    #[test]
    fn deletion_calls_with_literal_paths_are_found() {
        assert_eq!(deletes(PY, "import shutil; shutil.rmtree('/x')"), [("/x".into(), true)]);
        assert_eq!(deletes(PY, "import os; os.remove(r\"/etc/passwd\")"), [("/etc/passwd".into(), false)]);
        assert_eq!(deletes(PY, "shutil.rmtree(os.path.join(os.path.expanduser('~'), '.ssh'))"), [("~/.ssh".into(), true)]);
        assert_eq!(deletes(PY, "shutil.rmtree(os.environ['HOME'])"), [("~".into(), true)]);
        assert_eq!(deletes(PY, "pathlib.Path('/x/f').unlink()"), []);
        let js = Lang::Slash;
        assert_eq!(deletes(js, "require('fs').rmSync('/a', {recursive: true})"), [("/a".into(), true)]);
        assert_eq!(deletes(js, "fs.rmSync('/a')"), [("/a".into(), false)]);
        assert_eq!(deletes(js, "fs.promises.rm(require('os').homedir(), {force:true, recursive:true})"), [("~".into(), true)]);
        assert_eq!(deletes(PERL, "use File::Path qw(rmtree); rmtree \"/h\";"), [("/h".into(), true)]);
        assert_eq!(deletes(PERL, "unlink('/etc/x')"), [("/etc/x".into(), false)]);
        assert_eq!(deletes(PERL, "FileUtils.rm_rf(Dir.home)"), [("~".into(), true)]);
    }

    #[test]
    fn strings_comments_and_computed_paths_are_not_calls() {
        assert_eq!(deletes(PY, "print(\"shutil.rmtree('/')\")"), []);
        assert_eq!(deletes(PY, "# shutil.rmtree('/')\nprint(1)"), []);
        assert_eq!(deletes(Lang::Slash, "// fs.rmSync('/')\nx=1"), []);
        assert_eq!(deletes(PY, "shutil.rmtree(target)"), []);
        assert_eq!(deletes(PY, "x.remove('/')"), [("/".into(), false)]);
        assert_eq!(deletes(PY, "remove('/')"), []);
        assert_eq!(deletes(PY, "'''doc rmtree('/') '''"), []);
    }

    #[test]
    fn shell_calls_are_found() {
        assert_eq!(
            findings(PY, "import os; os.system('rm -rf ~')"),
            [Finding::Shell { call: "os.system".into(), script: "rm -rf ~".into() }]
        );
        assert_eq!(
            findings(PY, "subprocess.run(['rm', '-rf', '/'])"),
            [Finding::Exec { call: "subprocess.run".into(), argv: argv(&["rm", "-rf", "/"]) }]
        );
        assert_eq!(
            findings(PERL, "print `rm -rf /x`"),
            [Finding::Shell { call: "`...`".into(), script: "rm -rf /x".into() }]
        );
        assert_eq!(findings(Lang::Slash, "console.log(`rm -rf /`)"), []);
    }

    #[test]
    fn hostile_code_is_bounded() {
        let many = "shutil.rmtree(".repeat(MAX_CODE / 14);
        assert!(findings(PY, &many).len() <= MAX_FINDINGS);
        let calls = "shutil.rmtree('/x');".repeat(1000);
        assert_eq!(findings(PY, &calls).len(), MAX_FINDINGS);
        assert_eq!(findings(PY, &"x".repeat(MAX_CODE + 1)), []);
    }
}
