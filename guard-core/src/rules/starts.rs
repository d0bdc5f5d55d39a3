//! Which programs can start a rule match: the daemon reads the cwd of a new program only for
//! these (issue 16: a /proc read and a forced wake-up per exec was most of the exec path's cost).

use std::collections::HashSet;

use super::{Rule, RuleSet, normalize};

/// Interpreters and loaders: not unwrapped by the normaliser today, but they run other programs
/// with the cwd they were given, so they stay on the side of reading it.
const RUNNERS: &[&str] = &[
    "python", "python3", "node", "nodejs", "perl", "ruby", "php", "bun", "deno", "pypy", "pypy3",
    "ld.so", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "docker", "podman", "nerdctl",
    // Judged as the `rm -rf` of its destination with --delete (rules/implied.rs).
    "rsync",
];
/// Versioned interpreters (`python3.12`), whose inline code is read (rules/inline.rs).
const RUNNER_PREFIXES: &[&str] = &["python3.", "python2.", "pypy3."];

/// The program names that may start a match, by basename, and name prefixes (`mkfs.*`). A rule
/// command with another wildcard (`*fs`, `a?b`) cannot be listed: then every program may.
#[derive(Clone, Debug, Default)]
pub(crate) struct Starts {
    names: HashSet<String>,
    prefixes: Vec<String>,
    any: bool,
}

impl Starts {
    pub(crate) fn of(rules: &[Rule]) -> Self {
        let mut s = Self::default();
        for cmd in rules.iter().flat_map(|r| &r.command) {
            for alt in cmd.split('|') {
                let stem = alt.strip_suffix('*').unwrap_or(alt);
                if stem.is_empty() || stem.contains(['*', '?', '[']) {
                    s.any = true;
                } else if stem.len() < alt.len() {
                    s.prefixes.push(stem.to_owned());
                } else {
                    s.names.insert(alt.to_owned());
                }
            }
        }
        let fixed = normalize::starter_names().chain(RUNNERS.iter().copied());
        s.names.extend(fixed.map(str::to_owned));
        s.prefixes.extend(RUNNER_PREFIXES.iter().map(|p| (*p).to_owned()));
        s
    }
}

impl RuleSet {
    /// Whether a command whose argv[0] (or exec'd path) is `arg0` could match some rule:
    /// its basename is a rule's command, a wrapper, a shell or an interpreter.
    pub fn may_run(&self, arg0: &str) -> bool {
        let (s, name) = (self.starts(), normalize::program_name(arg0));
        s.any || s.names.contains(name.as_str()) || s.prefixes.iter().any(|p| name.starts_with(p.as_str()))
    }

    /// What [`Self::may_run`] accepts as (name or prefix, is a prefix), or `None` when any
    /// program may start a match. For the kernel's wake-up filter.
    pub fn run_names(&self) -> Option<impl Iterator<Item = (&str, bool)>> {
        let s = self.starts();
        let names = s.names.iter().map(|n| (n.as_str(), false));
        (!s.any).then(|| names.chain(s.prefixes.iter().map(|p| (p.as_str(), true))))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_start_from_their_commands_wrappers_and_shells() {
        let r = RuleSet::builtin();
        for p in ["rm", "/usr/bin/git", "terraform", "sudo", "env", "xargs", "bash", "sh", "python3", "python3.12", "rsync", "kubectl", "mkfs.ext4", "argocd", "crontab"] {
            assert!(r.may_run(p), "{p}");
        }
        for p in ["/bin/true", "cargo", "rustc", "ls", "cc1"] {
            assert!(!r.may_run(p), "{p}");
        }
        assert!(r.run_names().unwrap().any(|n| n == ("rm", false)));
        assert!(r.run_names().unwrap().any(|n| n == ("mkfs.", true)));
    }

    #[test]
    fn a_leading_wildcard_lets_every_program_start() {
        let extra = "[[rule]]\nid = \"mkfs\"\ncategory = \"file_deletion\"\nseverity = \"high\"\n\
                     description = \"d\"\ncommand = [\"*fs\"]\n";
        let r = RuleSet::load(extra, &[]).unwrap();
        assert!(r.may_run("/bin/true"));
        assert!(r.run_names().is_none());
    }
}
