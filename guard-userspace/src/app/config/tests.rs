use super::*;

fn err(text: &str) -> String {
    Config::parse(text, "t.toml").unwrap_err().to_string()
}

#[test]
fn defaults_alone_are_a_working_config() {
    let c = Config::parse("", "t.toml").unwrap();
    assert_eq!(c, Config { origin: "t.toml".into(), ..Config::default() });
    assert_eq!(c.metrics_addr(), Some("127.0.0.1:9477".parse().unwrap()));
    assert_eq!(c.audit_target(), Some("-"));
    assert_eq!(c.ring_bytes(), 16 << 20);
    assert_eq!(c.limits().max_connections, Limits::default().max_connections);
    assert_eq!(c.limits().decoder.max_request_body, DecoderConfig::default().max_request_body);
    assert!(!c.catalog().unwrap().agents().is_empty());
    assert_eq!(c.rule_set().unwrap().rules().len(), RuleSet::builtin().rules().len());
}

#[test]
fn the_shipped_example_is_the_defaults_spelled_out() {
    let text = include_str!("../../../../deploy/guard.toml");
    let c = Config::parse(text, "deploy/guard.toml").unwrap();
    assert_eq!(c, Config { origin: "deploy/guard.toml".into(), ..Config::default() });
    // Every key of the defaults appears in the example (uncommented), so none is undocumented.
    let spelled: toml::Table = toml::from_str(text).unwrap();
    let defaults: toml::Table = toml::from_str(&toml::to_string(&Config::default()).unwrap()).unwrap();
    for (section, v) in &defaults {
        let Some(keys) = v.as_table() else { continue };
        // Inline agents are an example in comments.
        for key in keys.keys().filter(|k| *k != "agent") {
            assert!(spelled.get(section).and_then(|s| s.get(key)).is_some(), "deploy/guard.toml lacks {section}.{key}");
        }
    }
}

#[test]
fn errors_name_the_key_and_the_reason() {
    let cases = [
        ("colour = 1", "config t.toml: key `colour`: unknown field `colour`, expected one of `metrics`"),
        ("[labels]\nmax_agent = 3", "config t.toml: key `labels.max_agent`: unknown field `max_agent`, expected one of `max_models_per_provider`, `max_agents`, `max_rules`, `max_tools`, `max_mcp_servers` (line 2)"),
        ("[labels]\nmax_agents = \"many\"", "config t.toml: key `labels.max_agents`: invalid type: string \"many\", expected usize (line 2)"),
        ("[labels]\nmax_agents = 0", "config t.toml: key `labels.max_agents`: must be at least 1"),
        ("[metrics]\naddr = \"localhost\"", "config t.toml: key `metrics.addr`: \"localhost\" is not an IP:PORT address"),
        ("[kernel]\nring_mib = 12", "config t.toml: key `kernel.ring_mib`: must be a power of two from 1 to 1024, not 12"),
        ("[capture]\nmax_connections = -1", "config t.toml: key `capture.max_connections`: invalid value: integer `-1`"),
        ("[capture]\nmax_event_bytes = 0", "config t.toml: key `capture.max_event_bytes`: must be at least 1"),
        ("[audit]\nlog = \"\"", "config t.toml: key `audit.log`: empty"),
        ("[log]\nformat = \"xml\"", "config t.toml: key `log.format`: unknown variant `xml`, expected `text` or `json`"),
        ("[log]\nlevel = \"guard=loud\"", "config t.toml: key `log.level`:"),
        ("[rules]\ndisable = [\"no-such-rule\"]", "config t.toml: key `rules.disable`: cannot disable unknown rule `no-such-rule`"),
        ("[rules]\nextra_files = [\"/nonexistent/r.toml\"]", "config t.toml: key `rules.extra_files[0]`: cannot read /nonexistent/r.toml"),
        ("[[agents.agent]]\nid = \"Bad Id\"\nexe = [\"x\"]", "config t.toml: key `agents.agent`: agent #0: `id` must be non-empty"),
        ("[[agents.agent]]\nid = \"x\"\nexe = [\"x\"]\ncolour = 1", "config t.toml: key `agents.agent[0].colour`: unknown field `colour`"),
        ("[metrics\naddr = 1", "config t.toml: invalid table header"),
    ];
    for (text, want) in cases {
        let got = err(text);
        assert!(got.starts_with(want), "for {text:?}\n got: {got}\nwant: {want}…");
    }
}

#[test]
fn extra_agents_and_rules_load() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[[rule]]\nid = \"no-make-clean\"\ncategory = \"file_deletion\"\nseverity = \"low\"\ndescription = \"make clean\"\ncommand = [\"make\"]\nargs_any = [\"clean\"]\n").unwrap();
    let agents = dir.path().join("agents.toml");
    std::fs::write(&agents, "[[agent]]\nid = \"house-bot\"\nname = \"House bot\"\nexe = [\"house-bot\"]\n").unwrap();
    let text = format!(
        "[agents]\nfiles = [{agents:?}]\n[[agents.agent]]\nid = \"inline-bot\"\nname = \"Inline\"\nexe = [\"ibot\"]\n[rules]\nextra_files = [{rules:?}]\ndisable = [\"no-make-clean\"]\n"
    );
    let c = Config::parse(&text, "t.toml").unwrap();
    let cat = c.catalog().unwrap();
    assert!(cat.agents().iter().any(|a| a.id == "house-bot"));
    assert!(cat.agents().iter().any(|a| a.id == "inline-bot"));
    assert!(c.rule_set().unwrap().rules().iter().all(|r| r.id != "no-make-clean"));
    let c = Config::parse(&text.replace("disable = [\"no-make-clean\"]", ""), "t.toml").unwrap();
    assert!(c.rule_set().unwrap().rules().iter().any(|r| r.id == "no-make-clean"));
}

#[test]
fn flags_override_the_file() {
    let mut c = Config::parse("[metrics]\nenabled = false\n[kernel]\nring_mib = 64\n", "t.toml").unwrap();
    assert_eq!(c.metrics_addr(), None);
    let args = RunArgs {
        metrics_addr: Some("0.0.0.0:9100".into()),
        audit_log: Some("off".into()),
        ring_mib: Some(8),
        ..RunArgs::default()
    };
    c.apply_cli(&args).unwrap();
    assert_eq!(c.metrics_addr(), Some("0.0.0.0:9100".parse().unwrap()));
    assert_eq!(c.audit_target(), None);
    assert_eq!(c.ring_bytes(), 8 << 20);
}

/// A bad value given as a flag names the flag, not the key it overrides (the file may be fine).
#[test]
fn a_bad_flag_is_named_as_the_flag() {
    let mut c = Config::parse("", "t.toml").unwrap();
    let cases = [
        (RunArgs { metrics_addr: Some("nonsense".into()), ..RunArgs::default() }, "flag `--metrics-addr`: \"nonsense\" is not an IP:PORT address"),
        (RunArgs { audit_log: Some(" ".into()), ..RunArgs::default() }, "flag `--audit-log`: empty"),
        (RunArgs { ring_mib: Some(3), ..RunArgs::default() }, "flag `--ring-mib`: must be a power of two from 1 to 1024, not 3"),
    ];
    for (args, want) in cases {
        let got = c.apply_cli(&args).unwrap_err().to_string();
        assert!(got.starts_with(want), "got: {got}\nwant: {want}…");
    }
    // Nothing of a rejected flag is applied.
    assert_eq!(c, Config { origin: "t.toml".into(), ..Config::default() });
}

#[test]
fn a_missing_explicit_file_is_an_error() {
    let e = Config::resolve(Some(Path::new("/nonexistent/guard.toml"))).unwrap_err().to_string();
    assert!(e.starts_with("cannot read config file /nonexistent/guard.toml: No such file"), "{e}");
}
