//! Turns one exec's argv into the commands it really runs: wrappers (`sudo`, `env VAR=1`, `nice`,
//! `timeout 5`, `xargs`, ...) are peeled off with their own options, and shell scripts
//! (`bash -c '...'`, `eval`, `su -c`) are split into their commands, following `cd` on the way.

use std::path::{Path, PathBuf};

use super::{paths, shell::split_script};

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
    expand(
        argv,
        start.cwd.map(Path::to_path_buf),
        start.home,
        Vec::new(),
        0,
        &mut out,
    );
    out
}

fn expand(
    argv: &[String],
    cwd: Option<PathBuf>,
    home: Option<&Path>,
    via: Vec<String>,
    depth: usize,
    out: &mut Vec<Invocation>,
) {
    // Leading assignments (`FOO=1 rm -rf x` in a script).
    let start = argv
        .iter()
        .position(|a| !is_assignment(a))
        .unwrap_or(argv.len());
    let argv = &argv[start..];
    let Some(first) = argv.first() else { return };
    if depth > MAX_DEPTH {
        return;
    }
    let prog = program_name(first);
    let args = &argv[1..];
    let mut via_next = via.clone();
    via_next.push(prog.clone());

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
                expand(&words, cwd, home, via_next, depth + 1, out);
            }
            return;
        }
        if let Some(rest) = unwrap(wrapper, args) {
            expand(rest, cwd, home, via_next, depth + 1, out);
        }
        return;
    }
    if is_loader(&prog) {
        if let Some(rest) = unwrap_loader(args) {
            expand(rest, cwd, home, via_next, depth + 1, out);
        }
        return;
    }
    if let Some(rest) = exec_in_container(&prog, args) {
        expand(rest, None, home, via_next, depth + 1, out);
        return;
    }
    if let Some(script) = shell_script(&prog, args) {
        let mut cwd = cwd;
        for words in split_script(&script) {
            if words.first().is_some_and(|w| w == "cd") {
                cwd = cd(cwd.as_deref(), words.get(1).map(String::as_str), home);
                continue;
            }
            expand(&words, cwd.clone(), home, via_next.clone(), depth + 1, out);
        }
        return;
    }
    let mut inv_argv = Vec::with_capacity(argv.len());
    inv_argv.push(prog.clone());
    inv_argv.extend(args.iter().cloned());
    out.push(Invocation {
        argv: inv_argv,
        cwd: cwd.clone(),
        via,
    });
    // `find ... -exec CMD {} ;` runs CMD too.
    if prog == "find" {
        for cmd in find_exec(args) {
            expand(cmd, cwd.clone(), home, via_next.clone(), depth + 1, out);
        }
    }
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
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
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
            ["find . -exec rm -rf {} +", "rm -rf {}"]
        );
    }
}
