//! Compiles rule files and checks commands against them.

use std::collections::{BTreeMap, HashSet};

use regex::Regex;

use super::{
    BUILTIN_RULES, Context, Match, RulesError,
    normalize::{Invocation, Start, normalize},
    parse::{Parsed, parse},
    paths::classify,
    schema::{
        CONDITION_KEYS, Category, CommandSpec, Condition, PathClass, RULE_KEYS, RuleAction,
        RuleFile, RuleSpec, Severity, TextSpec,
    },
};
use crate::glob;

/// A compiled rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: String,
    pub category: Category,
    pub severity: Severity,
    pub action: RuleAction,
    pub description: String,
    pub command: Vec<String>,
    when: Cond,
    any: Vec<Cond>,
}

#[derive(Clone, Debug)]
struct Cond {
    spec: Condition,
    text: Option<(Regex, Option<Regex>)>,
}

/// The active rules, in file order, and the option syntax of the commands they name.
#[derive(Clone, Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    commands: BTreeMap<String, CommandSpec>,
    /// `[actions]` of every file so far: they win over a rule's own `action`, even one a later
    /// file redefines.
    actions: BTreeMap<String, RuleAction>,
    starts: super::starts::Starts,
}

impl RuleSet {
    /// The embedded built-in rules.
    pub fn builtin() -> Self {
        match Self::empty().merged(BUILTIN_RULES, &[]) {
            Ok(set) => set,
            // The embedded file is checked by the tests, so this is a build defect.
            Err(e) => panic!("built-in rules are invalid: {e}"),
        }
    }

    /// The built-in rules plus an admin file (which adds, overrides by id, or disables rules),
    /// minus `disabled` ids.
    pub fn load(extra_toml: &str, disabled: &[String]) -> Result<Self, RulesError> {
        Self::builtin().merged(extra_toml, disabled)
    }

    fn empty() -> Self {
        Self {
            rules: Vec::new(),
            commands: BTreeMap::new(),
            actions: BTreeMap::new(),
            starts: Default::default(),
        }
    }

    /// This set plus one more admin file, minus `disabled` ids (to stack several files).
    pub fn merged(mut self, toml_text: &str, disabled: &[String]) -> Result<Self, RulesError> {
        let file: RuleFile =
            toml::from_str(toml_text).map_err(|source| RulesError::Toml { source })?;
        self.commands.extend(file.commands);
        let mut seen = HashSet::new();
        for (index, table) in file.rules.into_iter().enumerate() {
            let rule = compile(index, table)?;
            if !seen.insert(rule.id.clone()) {
                return Err(RulesError::Duplicate { id: rule.id });
            }
            match self.rules.iter_mut().find(|r| r.id == rule.id) {
                Some(slot) => *slot = rule,
                None => self.rules.push(rule),
            }
        }
        for id in file.disabled.iter().chain(disabled) {
            self.disable(id)?;
        }
        self.set_actions(file.actions)?;
        self.starts = super::starts::Starts::of(&self.rules);
        Ok(self)
    }

    fn disable(&mut self, id: &str) -> Result<(), RulesError> {
        let before = self.rules.len();
        self.rules.retain(|r| r.id != id);
        if self.rules.len() == before {
            return Err(RulesError::UnknownDisabled { id: id.to_owned() });
        }
        Ok(())
    }

    /// Adds one file's `[actions]` and applies all of them so far.
    fn set_actions(&mut self, actions: BTreeMap<String, RuleAction>) -> Result<(), RulesError> {
        if let Some(id) = actions.keys().find(|id| !self.rules.iter().any(|r| &r.id == *id)) {
            return Err(RulesError::UnknownAction { id: id.clone() });
        }
        self.actions.extend(actions);
        for r in &mut self.rules {
            if let Some(a) = self.actions.get(&r.id) {
                r.action = *a;
            }
        }
        Ok(())
    }

    pub(super) fn starts(&self) -> &super::starts::Starts {
        &self.starts
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Every rule that matches any command `argv` runs (wrappers and shell scripts included).
    pub fn check(&self, argv: &[String], ctx: &Context) -> Vec<Match> {
        let start = Start {
            cwd: ctx.cwd.as_deref(),
            home: ctx.home.as_deref(),
        };
        let mut out: Vec<Match> = Vec::new();
        for inv in normalize(argv, &start) {
            for m in self.check_one(&inv, ctx) {
                if !out
                    .iter()
                    .any(|o| o.rule_id == m.rule_id && o.command == m.command)
                {
                    out.push(m);
                }
            }
        }
        out
    }

    fn check_one(&self, inv: &Invocation, ctx: &Context) -> Vec<Match> {
        let Some(prog) = inv.argv.first() else {
            return Vec::new();
        };
        let spec = self
            .commands
            .iter()
            .find(|(name, _)| glob::matches(name, prog))
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        let parsed = parse(&inv.argv[1..], &spec);
        let mut out = Vec::new();
        for rule in self
            .rules
            .iter()
            .filter(|r| r.command.iter().any(|c| glob::matches(c, prog)))
        {
            let mut why = Vec::new();
            if !rule.when.holds(&parsed, inv, ctx, &mut why) {
                continue;
            }
            if !rule.any.is_empty()
                && !rule
                    .any
                    .iter()
                    .any(|c| c.holds(&parsed, inv, ctx, &mut why))
            {
                continue;
            }
            let mut text = format!("`{}`", inv.argv.join(" "));
            if !inv.via.is_empty() {
                text.push_str(&format!(" (via {})", inv.via.join(" → ")));
            }
            if !why.is_empty() {
                text.push_str(": ");
                text.push_str(&why.join(", "));
            }
            out.push(Match {
                rule_id: rule.id.clone(),
                category: rule.category,
                severity: rule.severity,
                action: rule.action,
                description: rule.description.clone(),
                why: text,
                command: inv.argv.clone(),
            });
        }
        out
    }
}

impl Cond {
    fn holds(
        &self,
        p: &Parsed<'_>,
        inv: &Invocation,
        ctx: &Context,
        why: &mut Vec<String>,
    ) -> bool {
        let s = &self.spec;
        let n = s.subcommand.len();
        if p.positionals.len() < n
            || !s
                .subcommand
                .iter()
                .zip(&p.positionals)
                .all(|(g, a)| glob::matches(g, a))
        {
            return false;
        }
        if n > 0 {
            why.push(format!("subcommand `{}`", p.positionals[..n].join(" ")));
        }
        let operands = &p.positionals[n..];
        if !s.args_any.is_empty() {
            match operands
                .iter()
                .find(|a| s.args_any.iter().any(|g| glob::matches(g, a)))
            {
                Some(a) => why.push(format!("argument `{a}`")),
                None => return false,
            }
        }
        if operands
            .iter()
            .any(|a| s.args_none.iter().any(|g| glob::matches(g, a)))
        {
            return false;
        }
        for f in &s.flags_all {
            if !p.has(f) {
                return false;
            }
        }
        if !s.flags_all.is_empty() {
            why.push(format!(
                "flags {}",
                s.flags_all
                    .iter()
                    .map(|f| flag_name(p, f))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        if !s.flags_any.is_empty() {
            match s.flags_any.iter().find(|f| p.has(f)) {
                Some(f) => why.push(format!("flag {}", flag_name(p, f))),
                None => return false,
            }
        }
        if s.flags_none.iter().any(|f| p.has(f)) {
            return false;
        }
        if !s.values_any.is_empty() {
            match s.values_any.iter().find_map(|v| option_value(p, v)) {
                Some((name, value)) => why.push(format!("option {} `{value}`", flag_name(p, name))),
                None => return false,
            }
        }
        if s.values_none.iter().any(|v| option_value(p, v).is_some()) {
            return false;
        }
        if !s.paths.is_empty() {
            let cwd = inv.cwd.as_deref();
            let hit = operands.iter().find_map(|a| {
                let tree = ctx.worktree.as_deref().or(ctx.cwd.as_deref());
                let c = classify(a, cwd, tree, ctx.home.as_deref());
                s.paths.contains(&c).then_some((a, c))
            });
            match hit {
                Some((a, c)) => why.push(format!("path `{a}` is {}", describe(c))),
                None => return false,
            }
        }
        if let Some((re, unless)) = &self.text {
            let spec = s.text.as_ref();
            let from_options = p
                .values
                .iter()
                .filter(|(name, _)| spec.is_some_and(|t| t.options.iter().any(|o| o == name)));
            let from_args = operands.iter().filter(|_| spec.is_some_and(|t| t.args));
            let hit = from_options
                .map(|(_, v)| *v)
                .chain(from_args.copied())
                .find(|t| re.is_match(t) && !unless.as_ref().is_some_and(|u| u.is_match(t)));
            match hit {
                Some(t) => why.push(format!("text `{}`", re.find(t).map_or(t, |m| m.as_str()))),
                None => return false,
            }
        }
        true
    }
}

/// The option and value matching a `values_any`/`values_none` entry (`"n|namespace=dev*"`).
fn option_value<'a>(p: &Parsed<'a>, entry: &str) -> Option<(&'a str, &'a str)> {
    let (names, glob_text) = entry.split_once('=')?;
    p.values
        .iter()
        .find(|(name, value)| names.split('|').any(|n| n == *name) && glob::matches(glob_text, value))
        .copied()
}

/// How the flag appeared, for the "why" (`-f` or `--force`).
fn flag_name(p: &Parsed<'_>, alternatives: &str) -> String {
    match alternatives.split('|').find(|f| p.flags.contains(f)) {
        Some(f) if f.chars().count() == 1 => format!("-{f}"),
        Some(f) => format!("--{f}"),
        None => alternatives.to_owned(),
    }
}

fn describe(c: PathClass) -> &'static str {
    match c {
        PathClass::Root => "the filesystem root",
        PathClass::System => "a system directory",
        PathClass::Home => "the home directory",
        PathClass::Git => "a .git directory",
        PathClass::Worktree => "the whole working tree",
        PathClass::Outside => "outside the working tree",
        PathClass::Temp => "temporary space",
        PathClass::Inside => "inside the working tree",
    }
}

fn compile(index: usize, table: toml::Table) -> Result<Rule, RulesError> {
    let id = match table.get("id").and_then(toml::Value::as_str) {
        Some(id) if !id.trim().is_empty() => id.to_owned(),
        _ => return Err(RulesError::MissingId { index }),
    };
    check_keys(&id, &table, true)?;
    if let Some(anys) = table.get("any").and_then(toml::Value::as_array) {
        for a in anys {
            if let Some(t) = a.as_table() {
                check_keys(&id, t, false)?;
            }
        }
    }
    let spec: RuleSpec = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| RulesError::Invalid {
            id: id.clone(),
            message: e.message().to_owned(),
        })?;
    if spec.command.is_empty() {
        return Err(RulesError::Invalid {
            id,
            message: "`command` lists no program".into(),
        });
    }
    Ok(Rule {
        when: cond(&id, spec.when, "text")?,
        any: spec
            .any
            .into_iter()
            .map(|c| cond(&id, c, "any.text"))
            .collect::<Result<_, _>>()?,
        id: spec.id,
        category: spec.category,
        severity: spec.severity,
        action: spec.action.unwrap_or(RuleAction::default_for(spec.severity)),
        description: spec.description,
        command: spec.command,
    })
}

fn check_keys(id: &str, table: &toml::Table, rule: bool) -> Result<(), RulesError> {
    for key in table.keys() {
        let known =
            CONDITION_KEYS.contains(&key.as_str()) || (rule && RULE_KEYS.contains(&key.as_str()));
        if !known {
            return Err(RulesError::UnknownKey {
                id: id.to_owned(),
                key: key.clone(),
            });
        }
    }
    Ok(())
}

fn cond(id: &str, spec: Condition, key: &str) -> Result<Cond, RulesError> {
    if let Some(bad) = spec.values_any.iter().chain(&spec.values_none).find(|v| !v.contains('=')) {
        return Err(RulesError::Invalid {
            id: id.to_owned(),
            message: format!("`{bad}` in values_any/values_none is not `option=glob`"),
        });
    }
    let regex = |pattern: &str, key: String| {
        Regex::new(pattern).map_err(|e| RulesError::Regex {
            id: id.to_owned(),
            key,
            source: Box::new(e),
        })
    };
    let text = match &spec.text {
        Some(TextSpec {
            regex: r,
            unless,
            options,
            args,
        }) => {
            if options.is_empty() && !args {
                return Err(RulesError::Invalid {
                    id: id.to_owned(),
                    message: format!("`{key}` searches nothing: set `options` or `args`"),
                });
            }
            let unless = unless
                .as_deref()
                .map(|u| regex(u, format!("{key}.unless")))
                .transpose()?;
            Some((regex(r, format!("{key}.regex"))?, unless))
        }
        None => None,
    };
    Ok(Cond { spec, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::argv;

    fn ctx() -> Context {
        Context {
            cwd: Some("/home/dev/proj".into()),
            home: Some("/home/dev".into()),
            worktree: None,
        }
    }

    #[test]
    fn the_builtin_file_loads() {
        let set = RuleSet::builtin();
        assert!(set.rules().len() >= 30);
    }

    #[test]
    fn admins_add_override_and_disable() {
        let extra = r#"
            disabled = ["vcs.git-reset-hard"]
            [[rule]]
            id = "vcs.git-push-force"
            category = "version_control"
            severity = "low"
            description = "overridden"
            command = ["git"]
            subcommand = ["push"]
            flags_any = ["f|force"]

            [[rule]]
            id = "local.make-clean"
            category = "file_deletion"
            severity = "low"
            description = "make distclean"
            command = ["make"]
            args_any = ["distclean"]
        "#;
        let set = RuleSet::load(extra, &argv(&["k8s.kubectl-drain"])).expect("loads");
        let m = set.check(&argv(&["git", "push", "--force"]), &ctx());
        assert_eq!(m[0].severity, Severity::Low);
        assert!(
            set.check(&argv(&["git", "reset", "--hard"]), &ctx())
                .is_empty()
        );
        assert!(
            set.check(&argv(&["kubectl", "drain", "node1"]), &ctx())
                .is_empty()
        );
        assert_eq!(
            set.check(&argv(&["make", "distclean"]), &ctx())[0].rule_id,
            "local.make-clean"
        );
    }

    #[test]
    fn errors_name_the_rule_and_key() {
        let bad_key = "[[rule]]\nid = \"x\"\ncategory = \"cloud\"\nseverity = \"low\"\ndescription = \"d\"\ncommand = [\"a\"]\nflag_all = [\"f\"]\n";
        let e = RuleSet::load(bad_key, &[]).expect_err("unknown key");
        assert_eq!(e.to_string(), "rule `x`: unknown key `flag_all`");
        let bad_re = "[[rule]]\nid = \"y\"\ncategory = \"cloud\"\nseverity = \"low\"\ndescription = \"d\"\ncommand = [\"a\"]\ntext = { args = true, regex = \"(\" }\n";
        let e = RuleSet::load(bad_re, &[]).expect_err("bad regex");
        assert!(
            e.to_string()
                .starts_with("rule `y`: key `text.regex` is not a valid regex"),
            "{e}"
        );
        let bad_sev = "[[rule]]\nid = \"z\"\ncategory = \"cloud\"\nseverity = \"huge\"\ndescription = \"d\"\ncommand = [\"a\"]\n";
        let e = RuleSet::load(bad_sev, &[]).expect_err("bad severity");
        assert!(
            e.to_string()
                .starts_with("rule `z`: unknown variant `huge`"),
            "{e}"
        );
        let e = RuleSet::load("", &argv(&["no.such"])).expect_err("unknown disabled");
        assert_eq!(e.to_string(), "cannot disable unknown rule `no.such`");
    }

    #[test]
    fn option_values_are_matched_by_glob() {
        let extra = r#"
            [commands.tool]
            value_options = ["n", "namespace"]
            [[rule]]
            id = "local.tool-prod"
            category = "cloud"
            severity = "low"
            description = "d"
            command = ["tool"]
            values_any = ["n|namespace=prod*"]
            values_none = ["n|namespace=prod-sandbox"]
        "#;
        let set = RuleSet::load(extra, &[]).expect("loads");
        let hit = |a: &[&str]| !set.check(&argv(a), &ctx()).is_empty();
        assert!(hit(&["tool", "-n", "prod-eu"]));
        assert!(hit(&["tool", "--namespace=prod"]));
        assert!(!hit(&["tool", "-n", "dev"]));
        assert!(!hit(&["tool", "-n", "prod-sandbox"]));
        assert!(!hit(&["tool", "prod"]));
        let m = set.check(&argv(&["tool", "-n", "prod-eu"]), &ctx());
        assert!(m[0].why.ends_with("option -n `prod-eu`"), "{}", m[0].why);
        let bad = "[[rule]]\nid = \"x\"\ncategory = \"cloud\"\nseverity = \"low\"\ndescription = \"d\"\ncommand = [\"a\"]\nvalues_none = [\"namespace\"]\n";
        let e = RuleSet::load(bad, &[]).expect_err("no =");
        assert!(e.to_string().contains("is not `option=glob`"), "{e}");
    }

    #[test]
    fn inferred_deletions_name_where_they_come_from() {
        let set = RuleSet::builtin();
        let why = |a: &[&str]| set.check(&argv(a), &ctx()).into_iter().map(|m| m.why).collect::<Vec<_>>();
        assert_eq!(
            why(&["python3", "-c", "import shutil; shutil.rmtree('/etc')"]),
            ["`rm -rf /etc` (via python3 → shutil.rmtree): flags -r -f, path `/etc` is a system directory"]
        );
        assert_eq!(
            why(&["bash", "-c", "echo cm0gLXJmIH4= | base64 -d | sh"]),
            ["`rm -rf ~` (via bash → sh): flags -r -f, path `~` is the home directory"]
        );
        assert_eq!(
            why(&["rsync", "-a", "--delete", "e/", "/usr/"]),
            ["`rm -rf /usr/` (via rsync --delete): flags -r -f, path `/usr/` is a system directory"]
        );
    }

    fn action_of(set: &RuleSet, id: &str) -> RuleAction {
        set.rules().iter().find(|r| r.id == id).map(|r| r.action).expect(id)
    }

    #[test]
    fn actions_default_from_severity() {
        let set = RuleSet::builtin();
        for r in set.rules() {
            let want = match r.severity {
                Severity::High | Severity::Critical => RuleAction::Block,
                Severity::Medium | Severity::Low => RuleAction::Observe,
            };
            assert_eq!(r.action, want, "{}", r.id);
        }
        assert_eq!(action_of(&set, "fs.rm-rf-root"), RuleAction::Block);
        assert_eq!(action_of(&set, "vcs.git-reset-hard"), RuleAction::Observe);
        let m = set.check(&argv(&["git", "push", "--force"]), &ctx());
        assert_eq!(m[0].action, RuleAction::Block);
    }

    #[test]
    fn a_rule_sets_its_action_and_actions_override_by_id() {
        let extra = r#"
            [actions]
            "vcs.git-push-force" = "observe"
            "vcs.git-reset-hard" = "block"
            "local.nuke" = "observe"

            [[rule]]
            id = "local.nuke"
            category = "infrastructure"
            severity = "low"
            action = "block"
            description = "nuke"
            command = ["nuke"]
        "#;
        let set = RuleSet::load(extra, &[]).expect("loads");
        assert_eq!(action_of(&set, "vcs.git-push-force"), RuleAction::Observe);
        assert_eq!(action_of(&set, "vcs.git-reset-hard"), RuleAction::Block);
        assert_eq!(action_of(&set, "local.nuke"), RuleAction::Observe);
        let own = extra.replace("\"local.nuke\" = \"observe\"", "");
        let set = RuleSet::load(&own, &[]).expect("loads");
        assert_eq!(action_of(&set, "local.nuke"), RuleAction::Block);
        // A later file that redefines a rule does not undo an earlier override.
        let redefine = "[[rule]]\nid = \"vcs.git-push-force\"\ncategory = \"version_control\"\nseverity = \"critical\"\ndescription = \"d\"\ncommand = [\"git\"]\n";
        let set = set.merged(redefine, &[]).expect("loads");
        assert_eq!(action_of(&set, "vcs.git-push-force"), RuleAction::Observe);
    }

    #[test]
    fn an_action_for_an_unknown_rule_is_an_error() {
        let e = RuleSet::load("[actions]\n\"no.such\" = \"block\"\n", &[]).expect_err("unknown id");
        assert_eq!(e.to_string(), "cannot set the action of unknown rule `no.such`");
        let e = RuleSet::load("[actions]\n\"fs.shred\" = \"stop\"\n", &[]).expect_err("bad action");
        assert!(e.to_string().contains("unknown variant `stop`"), "{e}");
        let bad = "[[rule]]\nid = \"x\"\ncategory = \"cloud\"\nseverity = \"low\"\naction = \"deny\"\ndescription = \"d\"\ncommand = [\"a\"]\n";
        let e = RuleSet::load(bad, &[]).expect_err("bad rule action");
        assert!(e.to_string().starts_with("rule `x`: unknown variant `deny`"), "{e}");
    }

    #[test]
    fn why_names_the_normalised_command_and_flags() {
        let m = RuleSet::builtin().check(&argv(&["sudo", "rm", "-fr", "/etc"]), &ctx());
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].rule_id, "fs.rm-rf-system");
        assert_eq!(
            m[0].why,
            "`rm -fr /etc` (via sudo): flags -r -f, path `/etc` is a system directory"
        );
    }
}
