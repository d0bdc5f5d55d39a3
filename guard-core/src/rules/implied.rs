//! Commands that delete a tree without saying `rm -rf`: `find START -delete`, `find START -exec rm
//! {} +` and `rsync --delete SRC DEST`. Each is judged as the `rm -rf` of what it deletes, so the
//! same path logic (HOME, system, outside the working tree, ...) applies.

/// find's tests that narrow what it matches below its starting points: with one, `find . -name
/// '*.pyc' -delete` deletes some entries of the tree, not the tree, and is left to the find rules
/// (`fs.find-delete*`). `-type`, `-maxdepth` and `-mindepth` do not narrow: `find ~ -mindepth 1
/// -delete` empties HOME.
const NARROWING: &[&str] = &[
    "-name", "-iname", "-path", "-ipath", "-wholename", "-iwholename", "-regex", "-iregex",
    "-lname", "-ilname", "-empty", "-newer", "-mtime", "-mmin", "-atime", "-amin", "-ctime",
    "-cmin", "-size", "-user", "-group", "-nouser", "-nogroup", "-perm", "-links", "-inum",
    "-samefile", "-used",
];

/// find's starting points (`.` when none is given), unless a test narrows what it matches.
pub(crate) fn find_whole_starts(args: &[String]) -> Option<Vec<String>> {
    if args.iter().any(|a| NARROWING.contains(&a.as_str())) {
        return None;
    }
    let mut i = 0;
    // Global options before the starting points: -H -L -P, -D debugopts, -Olevel.
    while let Some(a) = args.get(i) {
        match a.as_str() {
            "-H" | "-L" | "-P" => i += 1,
            "-D" => i += 2,
            o if o.starts_with("-O") => i += 1,
            _ => break,
        }
    }
    let starts: Vec<String> = args[i.min(args.len())..]
        .iter()
        .take_while(|a| !a.starts_with('-') && !matches!(a.as_str(), "(" | "!" | ","))
        .cloned()
        .collect();
    Some(if starts.is_empty() { vec![".".to_owned()] } else { starts })
}

/// Whether find's expression deletes what it matches.
pub(crate) fn find_deletes(args: &[String]) -> bool {
    args.iter().any(|a| a == "-delete")
}

/// An `-exec` command with `{}` replaced by find's targets. `rm` on what find walks is a
/// recursive delete of the walk, whatever rm's own flags.
pub(crate) fn exec_with_targets(cmd: &[String], targets: &[String]) -> Vec<String> {
    if !cmd.iter().any(|w| w == "{}") {
        return cmd.to_vec();
    }
    let is_rm = cmd.first().is_some_and(|p| super::normalize::program_name(p) == "rm");
    let mut out = vec![cmd[0].clone()];
    if is_rm {
        out.push("-rf".into());
    }
    for w in &cmd[1..] {
        match w.as_str() {
            "{}" => out.extend(targets.iter().cloned()),
            _ if is_rm && w.starts_with('-') => {}
            _ => out.push(w.clone()),
        }
    }
    out
}

/// rsync options that take the next word as their value.
const RSYNC_VALUES: &[&str] = &[
    "-e", "--rsh", "--rsync-path", "--exclude", "--include", "--filter", "-f", "--exclude-from",
    "--include-from", "--files-from", "--password-file", "--log-file", "--backup-dir", "--suffix",
    "--chmod", "--chown", "--partial-dir", "-T", "--temp-dir", "--compare-dest", "--copy-dest",
    "--link-dest", "--max-size", "--min-size", "--timeout", "--port", "-B", "--block-size",
];

/// The local destination that `rsync --delete…` prunes to match its source, when there is one.
pub(crate) fn rsync_delete_target(args: &[String]) -> Option<String> {
    let deletes = args.iter().any(|a| a.starts_with("--delete") || a == "--del");
    if !deletes {
        return None;
    }
    let mut operands = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            operands.extend(it.by_ref());
            break;
        }
        if RSYNC_VALUES.contains(&a.as_str()) {
            it.next();
        } else if !a.starts_with('-') {
            operands.push(a);
        }
    }
    let dest = match operands.as_slice() {
        [_, .., dest] => *dest,
        _ => return None,
    };
    // `host:path` and `rsync://` are remote: nothing local is deleted.
    let remote = dest.contains("://")
        || dest.split_once(':').is_some_and(|(host, _)| !host.contains('/'));
    (!remote).then(|| dest.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::argv;

    #[test]
    fn find_acts_on_its_whole_starts_unless_a_test_narrows_it() {
        let whole = |a: &[&str]| find_whole_starts(&argv(a));
        assert_eq!(whole(&["~", "-delete"]), Some(argv(&["~"])));
        assert_eq!(whole(&["-L", "a/", "b", "-type", "f", "-mindepth", "1", "-delete"]), Some(argv(&["a/", "b"])));
        assert_eq!(whole(&["-delete"]), Some(argv(&["."])));
        assert_eq!(whole(&[".", "-name", "*.pyc", "-delete"]), None);
        assert_eq!(whole(&["/", "-mtime", "+1"]), None);
    }

    #[test]
    fn exec_rm_deletes_the_targets_recursively() {
        let t = argv(&["~"]);
        assert_eq!(exec_with_targets(&argv(&["rm", "-f", "{}"]), &t), ["rm", "-rf", "~"]);
        assert_eq!(exec_with_targets(&argv(&["grep", "-l", "x", "{}"]), &t), ["grep", "-l", "x", "~"]);
        assert_eq!(exec_with_targets(&argv(&["rm", "-rf", "/y"]), &t), ["rm", "-rf", "/y"]);
    }

    #[test]
    fn rsync_delete_prunes_the_local_destination() {
        assert_eq!(rsync_delete_target(&argv(&["-a", "--delete", "e/", "~/"])).as_deref(), Some("~/"));
        assert_eq!(rsync_delete_target(&argv(&["-a", "--delete-after", "-e", "ssh", "s/", "d"])).as_deref(), Some("d"));
        assert_eq!(rsync_delete_target(&argv(&["-a", "s/", "~/"])), None);
        assert_eq!(rsync_delete_target(&argv(&["--delete", "s/", "host:/srv"])), None);
        assert_eq!(rsync_delete_target(&argv(&["--delete", "s/", "rsync://h/m"])), None);
        assert_eq!(rsync_delete_target(&argv(&["--delete", "only"])), None);
    }
}
