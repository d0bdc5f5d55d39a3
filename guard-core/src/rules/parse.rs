//! Splits one normalised command into flags, option values and positionals, so that `-rf`, `-fr`,
//! `-r -f`, `-Rf` and `--recursive --force` all read the same, and `--` ends the options.

use std::collections::BTreeSet;

use super::schema::CommandSpec;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Short options by letter, long options by name (without dashes or `=value`).
    pub flags: BTreeSet<&'a str>,
    /// Option values, by option name.
    pub values: Vec<(&'a str, &'a str)>,
    pub positionals: Vec<&'a str>,
}

impl Parsed<'_> {
    pub fn has(&self, alternatives: &str) -> bool {
        alternatives.split('|').any(|f| self.flags.contains(f))
    }
}

/// Parses `args` (argv without the program name).
pub fn parse<'a>(args: &'a [String], spec: &CommandSpec) -> Parsed<'a> {
    let takes_value = |name: &str| spec.value_options.iter().any(|o| o == name);
    let mut p = Parsed::default();
    let mut it = args.iter().map(String::as_str);
    while let Some(tok) = it.next() {
        if tok == "--" {
            p.positionals.extend(it.by_ref());
            break;
        }
        let long = tok
            .strip_prefix("--")
            .or_else(|| tok.strip_prefix('-').filter(|_| spec.single_dash_long));
        if let Some(body) = long.filter(|b| !b.is_empty()) {
            match body.split_once('=') {
                Some((name, value)) => {
                    p.flags.insert(name);
                    p.values.push((name, value));
                }
                None => {
                    p.flags.insert(body);
                    if takes_value(body)
                        && let Some(v) = it.next()
                    {
                        p.values.push((body, v));
                    }
                }
            }
            continue;
        }
        let Some(group) = tok.strip_prefix('-').filter(|g| !g.is_empty()) else {
            p.positionals.push(tok);
            continue;
        };
        for (i, c) in group.char_indices() {
            let letter = &group[i..i + c.len_utf8()];
            p.flags.insert(letter);
            let rest = &group[i + c.len_utf8()..];
            if spec.attached_value.iter().any(|o| o == letter) {
                if !rest.is_empty() {
                    p.values.push((letter, rest));
                }
                break;
            }
            if takes_value(letter) {
                if !rest.is_empty() {
                    p.values.push((letter, rest));
                } else if let Some(v) = it.next() {
                    p.values.push((letter, v));
                }
                break;
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::argv;

    #[test]
    fn short_flags_combine_in_any_order() {
        let spec = CommandSpec::default();
        for form in [
            &["-rf", "x"][..],
            &["-fr", "x"],
            &["-r", "-f", "x"],
            &["x", "-f", "-r"],
        ] {
            let a = argv(form);
            let p = parse(&a, &spec);
            assert!(p.has("r|R|recursive") && p.has("f|force"), "{form:?}");
            assert_eq!(p.positionals, ["x"]);
        }
        let a = argv(&["--recursive", "--force", "--", "-x"]);
        let p = parse(&a, &spec);
        assert!(p.has("r|recursive") && p.has("force"));
        assert_eq!(p.positionals, ["-x"]);
    }

    #[test]
    fn value_options_do_not_become_positionals() {
        let spec = CommandSpec {
            value_options: argv(&["C", "namespace"]),
            ..Default::default()
        };
        let a = argv(&["-C", "/repo", "--namespace", "prod", "push", "--force"]);
        let p = parse(&a, &spec);
        assert_eq!(p.positionals, ["push"]);
        assert_eq!(p.values, [("C", "/repo"), ("namespace", "prod")]);
    }

    #[test]
    fn attached_values_and_single_dash_long_options() {
        let spec = CommandSpec {
            attached_value: argv(&["p"]),
            value_options: argv(&["e"]),
            ..Default::default()
        };
        let a = argv(&["-uroot", "-psecret", "-e", "DROP TABLE t"]);
        let p = parse(&a, &spec);
        assert!(p.values.contains(&("p", "secret")) && p.values.contains(&("e", "DROP TABLE t")));
        let tf = CommandSpec {
            single_dash_long: true,
            value_options: argv(&["var"]),
            ..Default::default()
        };
        let a = argv(&["apply", "-var", "x=1", "-auto-approve", "-destroy"]);
        let p = parse(&a, &tf);
        assert!(p.has("destroy") && p.has("auto-approve"));
        assert_eq!(p.positionals, ["apply"]);
    }
}
