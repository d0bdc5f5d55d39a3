//! What an interpreter runs: a script file, a Python module, or neither (code on the command
//! line, or a script on stdin). Each interpreter family reads its options its own way: `-c` is
//! code for Python and shells, `-e` for node, Perl and Ruby; `-W` takes a value for Python; `-s`
//! means stdin for a shell. Getting this wrong names an agent after an option's value or after
//! the first argument of a stdin script (`python3 - ARG`), a new label per run.

/// What an interpreter runs: `-m module`, or the script file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Script<'a> {
    pub module: Option<&'a str>,
    pub path: Option<&'a str>,
}

/// How an interpreter family reads its options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Python,
    /// node, Bun, Deno, tsx, ts-node.
    Node,
    /// sh, bash, dash, zsh, ksh.
    Shell,
    Perl,
    Ruby,
    /// Launchers and anything an admin adds (npx, uvx, pipx): only `-` and `--` are known.
    Other,
}

impl Dialect {
    /// The family of a program, by its basename.
    pub fn of(name: &str) -> Self {
        let family = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
        match family {
            "python" | "pypy" => Self::Python,
            "node" | "nodejs" | "bun" | "deno" | "tsx" | "ts-node" => Self::Node,
            "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "ash" => Self::Shell,
            "perl" => Self::Perl,
            "ruby" => Self::Ruby,
            _ => Self::Other,
        }
    }

    /// Short options whose letter means "the code is on the command line".
    fn inline(self) -> &'static [char] {
        match self {
            Self::Python | Self::Shell => &['c'],
            Self::Node => &['e', 'p'],
            Self::Perl => &['e', 'E'],
            Self::Ruby => &['e'],
            Self::Other => &[],
        }
    }

    /// Short options that take a value (attached, or the next argument).
    fn valued(self) -> &'static [char] {
        match self {
            Self::Python => &['W', 'X'],
            Self::Node => &['r', 'C'],
            Self::Shell => &['o', 'O'],
            Self::Perl => &['I', 'M', 'm'],
            Self::Ruby => &['I', 'r', 'C', 'E'],
            Self::Other => &[],
        }
    }

    /// Long options that take the next argument as their value (unless given as `--opt=value`).
    fn valued_long(self) -> &'static [&'static str] {
        match self {
            Self::Node => &[
                "--require",
                "--import",
                "--loader",
                "--experimental-loader",
                "--conditions",
                "--env-file",
                "--input-type",
                "--title",
            ],
            Self::Shell => &["--rcfile", "--init-file"],
            Self::Python | Self::Perl | Self::Ruby | Self::Other => &[],
        }
    }

    /// Long options that carry code.
    fn inline_long(self) -> &'static [&'static str] {
        match self {
            Self::Node => &["--eval", "--print"],
            _ => &[],
        }
    }

    /// Python and unknown launchers take `-m module`; for Perl `-m` is a valued option.
    fn has_modules(self) -> bool {
        matches!(self, Self::Python | Self::Other)
    }
}

/// What a short option cluster (`-Bc`, `-lne`, `-Wignore`, `-s`) tells.
enum Cluster<'a> {
    /// Flags only: keep reading.
    Flags,
    /// The next argument is an option's value.
    SkipNext,
    /// Code on the command line or on stdin: no script file.
    NoScript,
    /// `-m` with its module (attached, or the next argument).
    Module(Option<&'a str>),
}

fn cluster(dialect: Dialect, a: &str) -> Cluster<'_> {
    let letters = &a[1..];
    for (i, c) in letters.char_indices() {
        let rest = &letters[i + c.len_utf8()..];
        if dialect.inline().contains(&c) || (dialect == Dialect::Shell && c == 's') {
            return Cluster::NoScript;
        }
        if c == 'm' && dialect.has_modules() {
            return Cluster::Module((!rest.is_empty()).then_some(rest));
        }
        if dialect.valued().contains(&c) {
            return if rest.is_empty() {
                Cluster::SkipNext
            } else {
                Cluster::Flags
            };
        }
    }
    Cluster::Flags
}

/// What an interpreter of `dialect` runs, given its arguments after `argv[0]`.
pub fn script_of(dialect: Dialect, args: &[String]) -> Script<'_> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.as_str();
        match a {
            // The script comes on stdin; what follows are its arguments.
            "-" => return Script::default(),
            "--" => {
                return Script {
                    module: None,
                    path: it.next().map(String::as_str).filter(|p| *p != "-"),
                };
            }
            _ => {}
        }
        if a.starts_with("--") {
            let (name, attached) = a.split_once('=').map_or((a, false), |(n, _)| (n, true));
            if dialect.inline_long().contains(&name) {
                return Script::default();
            }
            if !attached && dialect.valued_long().contains(&name) {
                it.next();
            }
            continue;
        }
        if a.starts_with('-') {
            match cluster(dialect, a) {
                Cluster::Flags => {}
                Cluster::SkipNext => {
                    it.next();
                }
                Cluster::NoScript => return Script::default(),
                Cluster::Module(m) => {
                    return Script {
                        module: m.or_else(|| it.next().map(String::as_str)),
                        path: None,
                    };
                }
            }
            continue;
        }
        return Script {
            module: None,
            path: Some(a),
        };
    }
    Script::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(interpreter: &str, args: &[&str]) -> (Option<String>, Option<String>) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let s = script_of(Dialect::of(interpreter), &args);
        (s.module.map(str::to_owned), s.path.map(str::to_owned))
    }

    fn path(interpreter: &str, args: &[&str]) -> Option<String> {
        run(interpreter, args).1
    }

    #[test]
    fn families_by_name() {
        assert_eq!(Dialect::of("python3.12"), Dialect::Python);
        assert_eq!(Dialect::of("python3"), Dialect::Python);
        assert_eq!(Dialect::of("pypy3"), Dialect::Python);
        assert_eq!(Dialect::of("nodejs"), Dialect::Node);
        assert_eq!(Dialect::of("bun"), Dialect::Node);
        assert_eq!(Dialect::of("bash"), Dialect::Shell);
        assert_eq!(Dialect::of("perl5.36"), Dialect::Perl);
        assert_eq!(Dialect::of("npx"), Dialect::Other);
    }

    #[test]
    fn a_script_on_stdin_is_no_script() {
        assert_eq!(path("python3", &["-", "ARG"]), None);
        assert_eq!(path("python3", &["-u", "-", "ARG"]), None);
        assert_eq!(path("node", &["-", "ARG"]), None);
        assert_eq!(path("sh", &["-", "ARG"]), None);
        assert_eq!(path("bash", &["-s", "ARG"]), None);
        assert_eq!(path("bash", &["-es", "--", "ARG"]), None);
        assert_eq!(path("npx", &["-", "ARG"]), None);
        assert_eq!(path("python3", &["--", "-"]), None);
    }

    #[test]
    fn code_on_the_command_line_is_no_script() {
        assert_eq!(path("python3", &["-c", "print(1)", "ARG"]), None);
        assert_eq!(path("python3", &["-Bc", "print(1)", "ARG"]), None);
        assert_eq!(path("python3", &["-cprint(1)", "ARG"]), None);
        assert_eq!(path("node", &["-e", "1", "ARG"]), None);
        assert_eq!(path("node", &["-p", "1", "ARG"]), None);
        assert_eq!(path("node", &["--eval", "1", "ARG"]), None);
        assert_eq!(path("node", &["--print=1", "ARG"]), None);
        assert_eq!(path("bash", &["-lc", "make", "ARG"]), None);
        assert_eq!(path("perl", &["-lne", "print", "ARG"]), None);
        assert_eq!(path("ruby", &["-e", "1", "ARG"]), None);
    }

    #[test]
    fn option_values_are_not_the_script() {
        assert_eq!(
            path("python3", &["-W", "ignore", "agent.py"]).as_deref(),
            Some("agent.py")
        );
        assert_eq!(
            path("python3", &["-Wonce", "agent.py"]).as_deref(),
            Some("agent.py")
        );
        assert_eq!(
            path("python3", &["-X", "dev", "agent.py"]).as_deref(),
            Some("agent.py")
        );
        assert_eq!(
            path("node", &["-r", "dotenv/config", "cli.js"]).as_deref(),
            Some("cli.js")
        );
        assert_eq!(
            path("node", &["--import", "tsx", "cli.ts"]).as_deref(),
            Some("cli.ts")
        );
        assert_eq!(
            path("node", &["--import=tsx", "cli.ts"]).as_deref(),
            Some("cli.ts")
        );
        assert_eq!(
            path("bash", &["-o", "pipefail", "run.sh"]).as_deref(),
            Some("run.sh")
        );
        assert_eq!(
            path("perl", &["-I", "lib", "x.pl"]).as_deref(),
            Some("x.pl")
        );
    }

    #[test]
    fn scripts_and_modules_as_before() {
        assert_eq!(
            path("python3", &["-u", "agent.py", "-c", "x"]).as_deref(),
            Some("agent.py")
        );
        assert_eq!(
            path("python3", &["-s", "agent.py"]).as_deref(),
            Some("agent.py")
        );
        assert_eq!(
            path("node", &["--no-warnings", "cli.js"]).as_deref(),
            Some("cli.js")
        );
        assert_eq!(path("node", &["--", "cli.js"]).as_deref(), Some("cli.js"));
        assert_eq!(
            path("npx", &["-y", "@google/gemini-cli"]).as_deref(),
            Some("@google/gemini-cli")
        );
        assert_eq!(
            path("bash", &["script.sh", "-c"]).as_deref(),
            Some("script.sh")
        );
        assert_eq!(run("python3", &["-m", "aider"]).0.as_deref(), Some("aider"));
        assert_eq!(run("python3", &["-maider"]).0.as_deref(), Some("aider"));
        assert_eq!(
            run("python3", &["-Im", "aider"]).0.as_deref(),
            Some("aider")
        );
        assert_eq!(
            run("perl", &["-mstrict", "x.pl"]),
            (None, Some("x.pl".into()))
        );
        assert_eq!(path("python3", &[]), None);
    }
}
