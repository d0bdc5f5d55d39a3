//! Judges where a path operand points: the filesystem root, system directories, HOME, a `.git`
//! directory, the working tree's root, temporary space, inside the working tree, or elsewhere.
//! Purely lexical: nothing is read from disk (symlinks are not followed).

use std::path::{Component, Path, PathBuf};

use super::schema::PathClass;

/// Top-level directories whose loss breaks the system (anything under them counts as system).
const SYSTEM_DIRS: &[&str] = &[
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
    "/run", "/sbin", "/sys", "/usr", "/var", "/snap", "/nix",
];
/// Places under system directories where working trees legitimately live.
const WORK_ROOTS: &[&str] = &["/var/www", "/usr/src", "/usr/local/src"];
const TEMP_DIRS: &[&str] = &["/tmp", "/var/tmp", "/dev/shm"];

/// Expands a leading `~`, `$HOME` or `${HOME}`; `None` when it needs HOME and HOME is unknown.
pub fn expand_home(arg: &str, home: Option<&Path>) -> Option<String> {
    for prefix in ["~", "$HOME", "${HOME}"] {
        if let Some(rest) = arg.strip_prefix(prefix)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return home.map(|h| format!("{}{rest}", h.display()));
        }
    }
    Some(arg.to_owned())
}

/// Resolves `.` and `..` without touching the disk.
pub fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(s) => out.push(s),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The class of one operand. `worktree` is the working tree's root (the cwd when not known).
pub fn classify(
    arg: &str,
    cwd: Option<&Path>,
    worktree: Option<&Path>,
    home: Option<&Path>,
) -> PathClass {
    let Some(expanded) = expand_home(arg, home) else {
        return PathClass::Home;
    };
    // An unknown variable: only `"$X"/` and `$X/*` are judged, because an empty X makes them `/`.
    if expanded.contains('$') || expanded.contains('`') {
        let trimmed = expanded.trim_end_matches('*').trim_end_matches('/');
        let bare_var = trimmed.starts_with('$') && !trimmed[1..].contains(['/', '$']);
        return if bare_var && expanded.len() > trimmed.len() {
            PathClass::Root
        } else {
            PathClass::Inside
        };
    }
    // `dir/*` and `dir/.*` are the whole of `dir`.
    let base = match expanded
        .strip_suffix("/*")
        .or_else(|| expanded.strip_suffix("/.*"))
    {
        Some("") => "/",
        Some(b) => b,
        None if expanded == "*" || expanded == ".*" => ".",
        None => expanded.as_str(),
    };
    let abs = if base.starts_with('/') {
        lexical(Path::new(base))
    } else {
        match cwd {
            Some(c) => lexical(&c.join(base)),
            None => return PathClass::Inside,
        }
    };
    class_of(&abs, worktree.or(cwd), home)
}

fn class_of(abs: &Path, worktree: Option<&Path>, home: Option<&Path>) -> PathClass {
    if abs == Path::new("/") {
        return PathClass::Root;
    }
    if home.is_some_and(|h| h.starts_with(abs)) {
        return PathClass::Home;
    }
    if abs.file_name().is_some_and(|n| n == ".git") {
        return PathClass::Git;
    }
    if TEMP_DIRS
        .iter()
        .any(|t| abs.starts_with(t) && abs != Path::new(t))
    {
        return PathClass::Temp;
    }
    // Below ~/.cache (the XDG cache) is disposable like /tmp; ~/.cache itself is not judged so.
    if home.is_some_and(|h| abs.starts_with(h.join(".cache")) && abs != h.join(".cache")) {
        return PathClass::Temp;
    }
    // A working tree at `/`, a system directory, or HOME (or above) is no working tree.
    let tree = worktree.filter(|t| {
        t.components().count() > 2
            && !home.is_some_and(|h| h.starts_with(t))
            && (!is_system(t, home)
                || WORK_ROOTS
                    .iter()
                    .any(|w| t.starts_with(w) && *t != Path::new(w)))
    });
    if let Some(tree) = tree {
        if abs == tree {
            return PathClass::Worktree;
        }
        if abs.starts_with(tree) {
            return PathClass::Inside;
        }
    }
    if is_system(abs, home) || abs.components().count() == 2 {
        return PathClass::System;
    }
    PathClass::Outside
}

/// Under a system directory, unless it is inside HOME (root's home, `/root`, is one).
fn is_system(p: &Path, home: Option<&Path>) -> bool {
    let in_home = home.is_some_and(|h| h.components().count() > 1 && p.starts_with(h));
    SYSTEM_DIRS.iter().any(|d| p.starts_with(d)) && !TEMP_DIRS.iter().any(|t| p.starts_with(t)) && !in_home
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_home_is_a_home_not_a_system_directory() {
        let root = |arg: &str| classify(arg, Some(Path::new("/root/proj")), None, Some(Path::new("/root")));
        assert_eq!(root("./target"), PathClass::Inside);
        assert_eq!(root("/root/proj"), PathClass::Worktree);
        assert_eq!(root("/root/other"), PathClass::Outside);
        assert_eq!(root("/root"), PathClass::Home);
        assert_eq!(root("/usr/lib"), PathClass::System);
    }

    fn class(arg: &str) -> PathClass {
        classify(
            arg,
            Some(Path::new("/home/dev/proj")),
            None,
            Some(Path::new("/home/dev")),
        )
    }

    #[test]
    fn operands_are_classified() {
        use PathClass::*;
        for (arg, want) in [
            ("/", Root),
            ("/*", Root),
            ("$DIR/", Root),
            ("${BUILD}/*", Root),
            ("$DIR", Inside),
            ("/usr/lib", System),
            ("/etc", System),
            ("/home", Home),
            ("~", Home),
            ("$HOME", Home),
            ("~/", Home),
            ("../..", Home),
            ("~/.ssh", Outside),
            ("../other", Outside),
            (".git", Git),
            ("./sub/.git", Git),
            (".", Worktree),
            ("*", Worktree),
            ("./*", Worktree),
            ("target", Inside),
            ("./node_modules", Inside),
            ("a/../b", Inside),
            ("/tmp/build-1", Temp),
            ("~/.cache/pip", Temp),
            ("/home/dev/.cache/go-build/x", Temp),
            ("~/.cache", Outside),
            ("~/.cache/../.ssh", Outside),
            ("/tmp", System),
            ("/data", System),
            ("/data/x", Outside),
        ] {
            assert_eq!(class(arg), want, "{arg}");
        }
    }

    #[test]
    fn a_working_tree_at_home_or_root_is_not_trusted() {
        let home = Some(Path::new("/home/dev"));
        assert_eq!(
            classify("Documents", Some(Path::new("/home/dev")), None, home),
            PathClass::Outside
        );
        assert_eq!(
            classify("usr", Some(Path::new("/")), None, home),
            PathClass::System
        );
        assert_eq!(classify("x", None, None, home), PathClass::Inside);
    }
}
