//! `guard rules check` and `guard rules list`, as functions of their arguments and an output, so
//! the binary's clap wiring stays thin and the exit codes are testable.

use std::{io::Write, path::PathBuf};

use serde::Serialize;

use super::{Context, Match, RuleSet};

/// No rule matched.
pub const EXIT_CLEAN: i32 = 0;
/// At least one rule matched.
pub const EXIT_MATCH: i32 = 1;
/// The output could not be written.
pub const EXIT_USAGE: i32 = 2;

/// `guard rules check [--json] [--cwd DIR] -- ARGV...`, its options parsed by the caller. `cwd`
/// and `home` decide what relative paths and `~` mean.
pub fn check(
    argv: &[String],
    json: bool,
    rules: &RuleSet,
    cwd: Option<PathBuf>,
    home: Option<PathBuf>,
    out: &mut dyn Write,
) -> i32 {
    let ctx = Context { cwd, home, worktree: None };
    let matches = rules.check(argv, &ctx);
    let written = if json {
        write_json(out, argv, &matches)
    } else {
        write_text(out, &matches)
    };
    if written.is_err() {
        return EXIT_USAGE;
    }
    if matches.is_empty() {
        EXIT_CLEAN
    } else {
        EXIT_MATCH
    }
}

fn write_text(out: &mut dyn Write, matches: &[Match]) -> std::io::Result<()> {
    if matches.is_empty() {
        return writeln!(out, "no rule matches");
    }
    for m in matches {
        writeln!(
            out,
            "{} [{} {} {}] {}",
            m.rule_id,
            m.severity.as_str(),
            m.category.as_str(),
            m.action.as_str(),
            m.description
        )?;
        writeln!(out, "  why: {}", m.why)?;
    }
    Ok(())
}

fn write_json(out: &mut dyn Write, argv: &[String], matches: &[Match]) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Report<'a> {
        argv: &'a [String],
        matched: bool,
        matches: &'a [Match],
    }
    serde_json::to_writer(
        &mut *out,
        &Report {
            argv,
            matched: !matches.is_empty(),
            matches,
        },
    )?;
    writeln!(out)
}

/// `guard rules list [--json]`: the active catalog.
pub fn list(rules: &RuleSet, json: bool, out: &mut dyn Write) -> i32 {
    #[derive(Serialize)]
    struct Entry<'a> {
        id: &'a str,
        category: &'a str,
        severity: &'a str,
        action: &'a str,
        commands: &'a [String],
        description: &'a str,
    }
    let result = rules.rules().iter().try_for_each(|r| {
        if json {
            let e = Entry {
                id: &r.id,
                category: r.category.as_str(),
                severity: r.severity.as_str(),
                action: r.action.as_str(),
                commands: &r.command,
                description: &r.description,
            };
            serde_json::to_writer(&mut *out, &e)?;
            writeln!(out)
        } else {
            writeln!(
                out,
                "{:<36} {:<16} {:<9} {:<8} {}",
                r.id,
                r.category.as_str(),
                r.severity.as_str(),
                r.action.as_str(),
                r.description
            )
        }
    });
    if result.is_err() {
        EXIT_USAGE
    } else {
        EXIT_CLEAN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(json: bool, cwd: &str, argv: &[&str]) -> (i32, String) {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        let code = check(&argv, json, &RuleSet::builtin(), Some(cwd.into()), Some("/home/dev".into()), &mut out);
        (code, String::from_utf8(out).expect("utf-8"))
    }

    #[test]
    fn exit_codes_gate_scripts() {
        assert_eq!(run(false, "/home/dev/proj", &["git", "push", "--force"]).0, EXIT_MATCH);
        assert_eq!(run(false, "/home/dev/proj", &["git", "push"]), (EXIT_CLEAN, "no rule matches\n".into()));
    }

    #[test]
    fn text_and_json_output() {
        let (code, text) = run(false, "/srv/app", &["rm", "-rf", "/srv/other"]);
        assert_eq!(code, EXIT_MATCH);
        assert_eq!(
            text,
            "fs.rm-rf-outside-worktree [high file_deletion block] Recursive forced delete outside the working tree\n  why: `rm -rf /srv/other`: flags -r -f, path `/srv/other` is outside the working tree\n"
        );
        let (_, json) = run(true, "/home/dev/proj", &["kubectl", "delete", "ns", "prod"]);
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(v["matched"], true);
        assert_eq!(v["matches"][0]["rule_id"], "k8s.kubectl-delete");
        assert_eq!(v["matches"][0]["severity"], "high");
        assert_eq!(v["matches"][0]["action"], "block");
    }

    #[test]
    fn list_prints_every_rule() {
        let mut out = Vec::new();
        assert_eq!(list(&RuleSet::builtin(), false, &mut out), EXIT_CLEAN);
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text.lines().count(), RuleSet::builtin().rules().len());
        assert!(text.contains("disk.mkfs"));
        let shred = text.lines().find(|l| l.starts_with("fs.shred ")).expect("fs.shred listed");
        assert!(shred.contains(" medium    observe "), "{shred}");
        let mut out = Vec::new();
        assert_eq!(list(&RuleSet::builtin(), true, &mut out), EXIT_CLEAN);
        let first: serde_json::Value = serde_json::from_slice(out.split(|b| *b == b'\n').next().expect("a line")).expect("json");
        assert_eq!((first["id"].as_str(), first["action"].as_str()), (Some("fs.rm-rf-root"), Some("block")));
    }
}
