//! Turns one exec's argv into the commands it really runs: wrappers (`sudo`, `env VAR=1`, `nice`,
//! `timeout 5`, `xargs`, ...) are peeled off with their own options, and shell scripts
//! (`bash -c '...'`, `eval`, `su -c`) are split into their commands, following `cd` on the way.

use std::path::{Path, PathBuf};

use super::{
    implied,
    inline::{self, Finding},
    paths,
    pipeline::{self, Payload},
    shell::{Stdin, split_commands},
};

/// A command after normalisation: `argv[0]` is the program's basename.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    pub argv: Vec<String>,
    /// The directory it runs in, when known (`cd` inside a script changes it).
    pub cwd: Option<PathBuf>,
    /// Wrappers and shells peeled off on the way, outermost first (for the "why").
    pub via: Vec<String>,
}

/// The option syntax of a wrapper: which options take a value, and how many positionals precede
/// the wrapped command.
struct Wrapper {
    name: &'static str,
    short_values: &'static str,
    /// Short options whose value is attached only (`xargs -i{}`).
    short_optional: &'static str,
    long_values: &'static [&'static str],
    /// Positionals before the command (`timeout DURATION cmd`, `chroot DIR cmd`).
    skip: usize,
    /// `VAR=value` words before the command are assignments (`env`, `sudo`).
    assignments: bool,
}

const fn w(
    name: &'static str,
    short_values: &'static str,
    long_values: &'static [&'static str],
) -> Wrapper {
    Wrapper {
        name,
        short_values,
        short_optional: "",
        long_values,
        skip: 0,
        assignments: false,
    }
}

const WRAPPERS: &[Wrapper] = &[
    Wrapper {
        assignments: true,
        ..w(
            "sudo",
            "ugCDhprtTU",
            &[
                "user",
                "group",
                "close-from",
                "chdir",
                "host",
                "prompt",
                "role",
                "type",
                "command-timeout",
                "other-user",
            ],
        )
    },
    w("doas", "uC", &[]),
    Wrapper {
        assignments: true,
        ..w("env", "uCS", &["unset", "chdir", "split-string"])
    },
    w("nice", "n", &["adjustment"]),
    w(
        "ionice",
        "cnpPu",
        &["class", "classdata", "pid", "pgid", "uid"],
    ),
    Wrapper {
        skip: 1,
        ..w("timeout", "sk", &["signal", "kill-after"])
    },
    w("nohup", "", &[]),
    w("time", "fo", &["format", "output"]),
    w("command", "", &[]),
    w("exec", "a", &[]),
    Wrapper {
        short_optional: "il",
        ..w(
            "xargs",
            "adEILnPs",
            &[
                "arg-file",
                "delimiter",
                "eof",
                "replace",
                "max-lines",
                "max-args",
                "max-procs",
                "max-chars",
                "process-slot-var",
            ],
        )
    },
    w("busybox", "", &[]),
    w("stdbuf", "ioe", &["input", "output", "error"]),
    w("setsid", "", &[]),
    Wrapper {
        skip: 1,
        ..w("chroot", "", &["userspec", "groups"])
    },
    w("npx", "p", &["package"]),
    w("bunx", "p", &["package"]),
    w("unbuffer", "", &[]),
];

/// `docker exec [OPTIONS] CONTAINER CMD...` runs CMD (in the container, still destructive).
const CONTAINER_EXEC: Wrapper = Wrapper {
    skip: 1,
    ..w(
        "exec",
        "euw",
        &["env", "env-file", "user", "workdir", "detach-keys"],
    )
};

/// The dynamic loader run as a program (`ld-linux-x86-64.so.2 /bin/rm -rf x`) runs its first
/// operand: the kernel sees only the loader's exec.
const LOADER: Wrapper = w(
    "ld.so",
    "",
    &[
        "library-path",
        "inhibit-rpath",
        "audit",
        "preload",
        "argv0",
        "glibc-hwcaps-prefix",
        "glibc-hwcaps-mask",
    ],
);
/// Loader options that only inspect (or print) and run nothing.
const LOADER_INSPECT: &[&str] = &["--list", "--verify", "--help", "--version"];

const SHELLS: &[&str] = &[
    "sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "rbash",
];
const MAX_DEPTH: usize = 8;

/// Context the normaliser needs: where the command starts, and HOME for `cd` and `~`.
pub struct Start<'a> {
    pub cwd: Option<&'a Path>,
    pub home: Option<&'a Path>,
}

/// All commands `argv` runs, innermost programs with their own argv.
pub fn normalize(argv: &[String], start: &Start<'_>) -> Vec<Invocation> {
    let mut out = Vec::new();
    let frame = Frame {
        cwd: start.cwd.map(Path::to_path_buf),
        via: Vec::new(),
        depth: 0,
        stdin: None,
    };
    expand(argv, frame, start.home, &mut out);
    out
}

/// Where one command runs, as far as the walk knows.
#[derive(Clone, Debug)]
struct Frame {
    cwd: Option<PathBuf>,
    /// Wrappers, shells and interpreters peeled off so far, outermost first.
    via: Vec<String>,
    depth: usize,
    /// Its standard input, when the script says what it is (`echo … |`, `<<< …`, `< file`).
    stdin: Option<Payload>,
}

impl Frame {
    /// The frame of a command that `step` (a program, or a call inside one) runs.
    fn inner(&self, step: &str) -> Self {
        let mut via = self.via.clone();
        via.push(step.to_owned());
        Self {
            cwd: self.cwd.clone(),
            via,
            depth: self.depth + 1,
            stdin: self.stdin.clone(),
        }
    }

    fn without_stdin(mut self) -> Self {
        self.stdin = None;
        self
    }
}

fn expand(argv: &[String], f: Frame, home: Option<&Path>, out: &mut Vec<Invocation>) {
    // Leading assignments (`FOO=1 rm -rf x` in a script).
    let start = argv
        .iter()
        .position(|a| !is_assignment(a))
        .unwrap_or(argv.len());
    let argv = &argv[start..];
    let Some(first) = argv.first() else { return };
    if f.depth > MAX_DEPTH {
        return;
    }
    let prog = program_name(first);
    let args = &argv[1..];
    let next = f.inner(&prog);

    if let Some(wrapper) = WRAPPERS.iter().find(|w| w.name == prog) {
        // `command -v rm` only looks the name up.
        if prog == "command" && args.iter().any(|a| a == "-v" || a == "-V") {
            return;
        }
        // `env -S 'rm -rf x'` splits its string into words.
        if prog == "env"
            && let Some(s) = split_string_value(args)
        {
            if let Some(words) = shlex::split(&s) {
                expand(&words, next, home, out);
            }
            return;
        }
        if let Some(rest) = unwrap(wrapper, args) {
            if prog == "xargs" {
                let input = xargs_input(&args[..args.len() - rest.len()], f.stdin.as_ref());
                let mut inner = rest.to_vec();
                inner.extend(input);
                expand(&inner, next.without_stdin(), home, out);
            } else {
                expand(rest, next, home, out);
            }
        }
        return;
    }
    if is_loader(&prog) {
        if let Some(rest) = unwrap_loader(args) {
            expand(rest, next, home, out);
        }
        return;
    }
    if let Some(rest) = exec_in_container(&prog, args) {
        let mut inner = next;
        inner.cwd = None;
        expand(rest, inner, home, out);
        return;
    }
    if let Some(script) = shell_script(&prog, args) {
        run_script(&script, next.without_stdin(), home, out);
        return;
    }
    if reads_script_from_stdin(&prog, args) {
        if let Some(Payload::Text(script)) = &f.stdin {
            run_script(script, next.without_stdin(), home, out);
        }
        return;
    }
    let mut inv_argv = Vec::with_capacity(argv.len());
    inv_argv.push(prog.clone());
    inv_argv.extend(args.iter().cloned());
    out.push(Invocation {
        argv: inv_argv,
        cwd: f.cwd.clone(),
        via: f.via.clone(),
    });
    let code = inline::code_of(&prog, args).or_else(|| {
        let lang = inline::reads_code_from_stdin(&prog, args)?;
        match &f.stdin {
            Some(Payload::Text(code)) => Some((lang, code.clone())),
            _ => None,
        }
    });
    if let Some((lang, code)) = code {
        for finding in inline::findings(lang, &code) {
            judge_finding(finding, &next, home, out);
        }
    }
    implied_deletes(&prog, args, &f, &next, home, out);
}

/// The commands of a shell script, following `cd` and what each pipe carries.
fn run_script(script: &str, f: Frame, home: Option<&Path>, out: &mut Vec<Invocation>) {
    let mut cwd = f.cwd.clone();
    let mut carried: Option<Payload> = None;
    for cmd in split_commands(script) {
        let stdin = match cmd.stdin {
            Stdin::Inherit => None,
            Stdin::Pipe => carried.take(),
            Stdin::HereString(s) => Some(Payload::Text(s + "\n")),
            Stdin::File(path) => Some(Payload::File(path)),
        };
        let words = &cmd.words;
        let body = &words[words.iter().take_while(|w| is_assignment(w)).count()..];
        carried = body
            .split_first()
            .and_then(|(p, a)| pipeline::output(&program_name(p), a, stdin.as_ref()));
        if words.first().is_some_and(|w| w == "cd") {
            cwd = cd(cwd.as_deref(), words.get(1).map(String::as_str), home);
            continue;
        }
        let frame = Frame {
            cwd: cwd.clone(),
            stdin,
            ..f.clone()
        };
        expand(words, frame, home, out);
    }
}

/// What inline interpreter code does, judged as the command it amounts to.
fn judge_finding(finding: Finding, f: &Frame, home: Option<&Path>, out: &mut Vec<Invocation>) {
    match finding {
        Finding::Delete { call, path, recursive } => {
            let flag = if recursive { "-rf" } else { "-f" };
            push_implied(vec!["rm".into(), flag.into(), path], f, &call, out);
        }
        Finding::Shell { call, script } => {
            run_script(&script, f.inner(&call).without_stdin(), home, out);
        }
        Finding::Exec { call, argv } => expand(&argv, f.inner(&call).without_stdin(), home, out),
    }
}

/// `find -delete`, `find -exec rm {} +` and `rsync --delete`, as the `rm -rf` they amount to.
fn implied_deletes(
    prog: &str,
    args: &[String],
    f: &Frame,
    next: &Frame,
    home: Option<&Path>,
    out: &mut Vec<Invocation>,
) {
    if prog == "find" {
        // Narrowed finds (`-name`, `-mtime`, ...) are judged by the find rules themselves.
        let starts = implied::find_whole_starts(args);
        if let Some(starts) = &starts
            && implied::find_deletes(args)
        {
            let argv = ["rm", "-rf"].into_iter().map(str::to_owned).chain(starts.iter().cloned());
            push_implied(argv.collect(), f, "find -delete", out);
        }
        for cmd in find_exec(args) {
            let cmd = match &starts {
                Some(starts) => implied::exec_with_targets(cmd, starts),
                None => cmd.to_vec(),
            };
            expand(&cmd, next.clone().without_stdin(), home, out);
        }
    }
    if prog == "rsync"
        && let Some(dest) = implied::rsync_delete_target(args)
    {
        push_implied(vec!["rm".into(), "-rf".into(), dest], f, "rsync --delete", out);
    }
}

/// A command guard infers (not one that execs), shown as coming from `step`.
fn push_implied(argv: Vec<String>, f: &Frame, step: &str, out: &mut Vec<Invocation>) {
    let mut via = f.via.clone();
    via.push(step.to_owned());
    out.push(Invocation {
        argv,
        cwd: f.cwd.clone(),
        via,
    });
}

/// What xargs appends to its command: the words of a known input, or `<FILE` for a list read
/// from a file (`-a FILE`, `< FILE`, `cat FILE |`), which no path class can judge.
fn xargs_input(options: &[String], stdin: Option<&Payload>) -> Vec<String> {
    let mut it = options.iter();
    while let Some(a) = it.next() {
        let file = match a.as_str() {
            "-a" | "--arg-file" => it.next().cloned(),
            _ => a
                .strip_prefix("--arg-file=")
                .or_else(|| a.strip_prefix("-a"))
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
        };
        if let Some(file) = file {
            return vec![format!("<{file}")];
        }
    }
    match stdin {
        Some(Payload::Text(t)) => t.split_whitespace().take(256).map(str::to_owned).collect(),
        Some(Payload::File(file)) => vec![format!("<{file}")],
        None => Vec::new(),
    }
}

/// A shell run without `-c` or a script operand reads its script from stdin (`… | sh`, `bash -s`).
fn reads_script_from_stdin(prog: &str, args: &[String]) -> bool {
    if !SHELLS.contains(&prog) {
        return false;
    }
    let mut stdin_flag = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-" {
            return true;
        }
        if a == "--" {
            return stdin_flag || it.next().is_none();
        }
        if a.starts_with("--") {
            if a == "--rcfile" || a == "--init-file" {
                it.next();
            }
            continue;
        }
        if let Some(group) = a
            .strip_prefix('-')
            .or_else(|| a.strip_prefix('+'))
            .filter(|g| !g.is_empty())
        {
            if group.contains('c') {
                return false;
            }
            stdin_flag |= group.contains('s');
            if group.contains('o') || group.contains('O') {
                it.next();
            }
            continue;
        }
        return stdin_flag;
    }
    true
}

/// Basename, without the `\` that skips aliases (`\rm`).
/// The wrappers and shells the normaliser looks into: a command they start can match a rule.
pub(crate) fn starter_names() -> impl Iterator<Item = &'static str> {
    WRAPPERS.iter().map(|w| w.name).chain(SHELLS.iter().copied())
}

pub fn program_name(arg0: &str) -> String {
    let base = arg0.rsplit('/').next().unwrap_or(arg0);
    base.trim_start_matches('\\').to_owned()
}

fn is_assignment(word: &str) -> bool {
    super::vars::assignment(word).is_some()
}

/// The wrapped command, after the wrapper's options, assignments and leading positionals.
fn unwrap<'a>(w: &Wrapper, args: &'a [String]) -> Option<&'a [String]> {
    let mut i = 0;
    let mut skip = w.skip;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" {
            i += 1;
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            if !long.contains('=') && w.long_values.contains(&long) {
                i += 1;
            }
            i += 1;
            continue;
        }
        if let Some(group) = a.strip_prefix('-').filter(|g| !g.is_empty()) {
            for (n, c) in group.char_indices() {
                if w.short_optional.contains(c) {
                    break;
                }
                if w.short_values.contains(c) {
                    if n + c.len_utf8() == group.len() {
                        i += 1;
                    }
                    break;
                }
            }
            i += 1;
            continue;
        }
        if w.assignments && is_assignment(a) {
            i += 1;
            continue;
        }
        if skip > 0 {
            skip -= 1;
            i += 1;
            continue;
        }
        break;
    }
    // `timeout` and `chroot` positionals may follow `--`.
    while skip > 0 && i < args.len() {
        skip -= 1;
        i += 1;
    }
    let rest = &args[i.min(args.len())..];
    (!rest.is_empty()).then_some(rest)
}

/// `ld.so`, `ld-linux-x86-64.so.2`, `ld-linux-aarch64.so.1`, `ld-musl-x86_64.so.1`.
fn is_loader(prog: &str) -> bool {
    crate::glob::matches("ld.so|ld-linux*.so*|ld-musl-*.so*", prog)
}

/// The program the loader runs, unless an option makes it only inspect.
fn unwrap_loader(args: &[String]) -> Option<&[String]> {
    let options = args.iter().take_while(|a| a.starts_with("--"));
    if options.clone().any(|a| LOADER_INSPECT.contains(&a.as_str())) {
        return None;
    }
    unwrap(&LOADER, args)
}

fn split_string_value(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-S" || a == "--split-string" {
            return it.next().cloned();
        }
        if let Some(v) = a
            .strip_prefix("--split-string=")
            .or_else(|| a.strip_prefix("-S").filter(|v| !v.is_empty()))
        {
            return Some(v.to_owned());
        }
        if !a.starts_with('-') {
            return None;
        }
    }
    None
}

/// The command of `docker|podman|nerdctl exec` and `kubectl|oc exec ... -- CMD`.
fn exec_in_container<'a>(prog: &str, args: &'a [String]) -> Option<&'a [String]> {
    if args.first().is_none_or(|a| a != "exec") {
        return None;
    }
    match prog {
        "docker" | "podman" | "nerdctl" => unwrap(&CONTAINER_EXEC, &args[1..]),
        "kubectl" | "oc" => {
            let dash = args.iter().position(|a| a == "--")?;
            let rest = &args[dash + 1..];
            (!rest.is_empty()).then_some(rest)
        }
        _ => None,
    }
}

/// The script a shell, `eval` or `su -c` runs.
fn shell_script(prog: &str, args: &[String]) -> Option<String> {
    if prog == "eval" {
        return (!args.is_empty()).then(|| args.join(" "));
    }
    if prog == "su" || prog == "runuser" {
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a == "-c" || a == "--command" {
                return it.next().cloned();
            }
            if let Some(v) = a.strip_prefix("--command=") {
                return Some(v.to_owned());
            }
        }
        return None;
    }
    if !SHELLS.contains(&prog) {
        return None;
    }
    let mut has_c = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            return if has_c { it.next().cloned() } else { None };
        }
        if a.starts_with("--") {
            if a == "--rcfile" || a == "--init-file" {
                it.next();
            }
            continue;
        }
        if let Some(group) = a
            .strip_prefix('-')
            .or_else(|| a.strip_prefix('+'))
            .filter(|g| !g.is_empty())
        {
            has_c |= group.contains('c');
            if group.contains('o') || group.contains('O') {
                it.next();
            }
            continue;
        }
        return if has_c { Some(a.clone()) } else { None };
    }
    None
}

/// The commands of `find`'s `-exec`/`-execdir`/`-ok` actions (each up to `;` or `+`).
fn find_exec(args: &[String]) -> Vec<&[String]> {
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if matches!(args[i].as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") {
            let start = i + 1;
            let end = (start..args.len())
                .find(|&j| args[j] == ";" || args[j] == "+")
                .unwrap_or(args.len());
            if end > start {
                cmds.push(&args[start..end]);
            }
            i = end;
        }
        i += 1;
    }
    cmds
}

/// The directory after `cd ARG`, lexically; `None` when it cannot be known.
fn cd(cwd: Option<&Path>, arg: Option<&str>, home: Option<&Path>) -> Option<PathBuf> {
    match arg {
        None | Some("~") => home.map(Path::to_path_buf),
        Some("-") => None,
        Some(a) if a.contains('$') => paths::expand_home(a, home)
            .filter(|p| !p.contains('$'))
            .map(PathBuf::from),
        Some(a) => {
            let a = paths::expand_home(a, home)?;
            if a.starts_with('/') {
                Some(paths::lexical(Path::new(&a)))
            } else {
                cwd.map(|c| paths::lexical(&c.join(&a)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(argv: &[&str]) -> Vec<String> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let start = Start {
            cwd: Some(Path::new("/home/dev/proj")),
            home: Some(Path::new("/home/dev")),
        };
        normalize(&argv, &start)
            .into_iter()
            .map(|i| i.argv.join(" "))
            .collect()
    }

    #[test]
    fn wrappers_are_peeled_with_their_options() {
        assert_eq!(
            norm(&["sudo", "-u", "root", "-E", "rm", "-rf", "/x"]),
            ["rm -rf /x"]
        );
        assert_eq!(
            norm(&[
                "/usr/bin/env",
                "-i",
                "A=1",
                "B=2",
                "nice",
                "-n",
                "10",
                "ionice",
                "-c3",
                "rm",
                "x"
            ]),
            ["rm x"]
        );
        assert_eq!(
            norm(&[
                "timeout", "-s", "KILL", "30s", "nohup", "time", "-p", "git", "push", "-f"
            ]),
            ["git push -f"]
        );
        assert_eq!(
            norm(&["xargs", "-0", "-n", "1", "-I{}", "rm", "-rf"]),
            ["rm -rf"]
        );
        assert_eq!(norm(&["busybox", "rm", "-rf", "/"]), ["rm -rf /"]);
        assert_eq!(norm(&["env", "-S", "rm -rf /y"]), ["rm -rf /y"]);
        assert_eq!(norm(&["command", "-v", "rm"]), Vec::<String>::new());
        assert_eq!(norm(&["\\rm", "-rf", "a"]), ["rm -rf a"]);
        assert_eq!(
            norm(&["docker", "exec", "-it", "-u", "pg", "db", "psql", "-c", "x"]),
            ["psql -c x"]
        );
        assert_eq!(
            norm(&["kubectl", "exec", "-n", "p", "pod", "--", "rm", "-rf", "/"]),
            ["rm -rf /"]
        );
        assert_eq!(norm(&["sudo", "-i"]), Vec::<String>::new());
    }

    #[test]
    fn the_dynamic_loader_is_peeled_like_a_wrapper() {
        assert_eq!(
            norm(&["/lib64/ld-linux-x86-64.so.2", "/bin/rm", "-rf", "/home/x"]),
            ["rm -rf /home/x"]
        );
        assert_eq!(
            norm(&[
                "ld.so",
                "--library-path",
                "/opt/lib",
                "--argv0",
                "rm",
                "--preload=/x.so",
                "/usr/bin/git",
                "push",
                "-f"
            ]),
            ["git push -f"]
        );
        assert_eq!(norm(&["ld-musl-x86_64.so.1", "rm", "-rf", "/"]), ["rm -rf /"]);
        assert_eq!(norm(&["ld-linux-aarch64.so.1", "--", "rm", "x"]), ["rm x"]);
        assert_eq!(
            norm(&["ld-linux-x86-64.so.2", "--list", "/bin/rm", "-rf", "/"]),
            Vec::<String>::new()
        );
        assert_eq!(
            norm(&["ld.so", "--verify", "/bin/rm"]),
            Vec::<String>::new()
        );
        assert_eq!(norm(&["ld-linux-x86-64.so.2"]), Vec::<String>::new());
        // Names that only look alike are programs of their own.
        assert_eq!(norm(&["ld", "-o", "a.out", "x.o"]), ["ld -o a.out x.o"]);
        assert_eq!(norm(&["ldconfig", "-p"]), ["ldconfig -p"]);
    }

    #[test]
    fn shell_scripts_are_split_and_follow_cd() {
        let argv: Vec<String> = ["bash", "-lc", "cd /tmp && rm -rf build; cd; sudo rm -rf x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let start = Start {
            cwd: Some(Path::new("/home/dev/proj")),
            home: Some(Path::new("/home/dev")),
        };
        let inv = normalize(&argv, &start);
        assert_eq!(inv.len(), 2);
        assert_eq!(inv[0].cwd.as_deref(), Some(Path::new("/tmp")));
        assert_eq!(inv[1].cwd.as_deref(), Some(Path::new("/home/dev")));
        assert_eq!(inv[1].via, ["bash", "sudo"]);
        assert_eq!(
            norm(&["sh", "-c", "eval 'git reset --hard'"]),
            ["git reset --hard"]
        );
        assert_eq!(
            norm(&["su", "-", "root", "-c", "mkfs.ext4 /dev/sdb"]),
            ["mkfs.ext4 /dev/sdb"]
        );
        assert_eq!(norm(&["bash", "script.sh"]), ["bash script.sh"]);
        assert_eq!(
            norm(&["find", ".", "-exec", "rm", "-rf", "{}", "+"]),
            ["find . -exec rm -rf {} +", "rm -rf ."]
        );
    }

    #[test]
    fn pipes_feed_shells_interpreters_and_xargs() {
        assert_eq!(norm(&["bash", "-c", "echo 'rm -rf x' | sudo bash -s"]), ["echo rm -rf x", "rm -rf x"]);
        assert_eq!(norm(&["bash", "-c", "echo 'rm -rf x' | bash script.sh"]), ["echo rm -rf x", "bash script.sh"]);
        assert_eq!(norm(&["bash", "-c", "ls | sh"]), ["ls"]);
        assert_eq!(norm(&["bash", "-c", "echo a b | xargs rm -rf"]), ["echo a b", "rm -rf a b"]);
        assert_eq!(norm(&["bash", "-c", "xargs rm -rf < l.txt"]), ["rm -rf <l.txt"]);
        assert_eq!(norm(&["xargs", "--arg-file=l", "rm"]), ["rm <l"]);
        assert_eq!(norm(&["xargs", "-n1", "rm"]), ["rm"]);
        assert_eq!(
            norm(&["bash", "-c", "echo \"import os; os.remove('/x')\" | python3"]),
            ["echo import os; os.remove('/x')", "python3", "rm -f /x"]
        );
    }

    #[test]
    fn decoding_is_bounded_in_depth() {
        // rm -rf ~ wrapped in `echo … | base64 -d | sh` nine times: deeper than MAX_DEPTH.
        let mut script = "rm -rf ~".to_owned();
        for _ in 0..9 {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(&script);
            script = format!("echo {b64} | base64 -d | sh");
        }
        let out = norm(&["bash", "-c", &script]);
        assert!(!out.iter().any(|c| c == "rm -rf ~"), "{out:?}");
    }
}
