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
        // Inline agents and prices are examples in comments.
        for key in keys.keys().filter(|k| *k != "agent" && *k != "model") {
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
        ("[otlp]\nprotocol = \"http/json\"", "config t.toml: key `otlp`: otlp.protocol: \"http/json\" is not a protocol guard exports (use `http/protobuf` or `grpc`)"),
        ("[otlp]\nendpoint = \"collector:4317\"", "config t.toml: key `otlp`: otlp.endpoint: \"collector:4317\" is not an http:// URL"),
        ("[otlp]\nendpoint = \"https://collector:4318\"", "config t.toml: key `otlp`: otlp.endpoint: \"https://collector:4318\": guard exports in plain text (http://)"),
        ("[otlp]\nmetric_export_interval_ms = 0", "config t.toml: key `otlp`: otlp.metric_export_interval_ms: \"0\" is not a number of milliseconds"),
        ("[otlp]\nheaders = { \"bad header\" = \"v\" }", "config t.toml: key `otlp.headers`: \"bad header\" is not a header name"),
        ("[otlp]\nheaders = { \"authorization\" = \"Bearer s\u{e9}cret\" }", "config t.toml: key `otlp.headers`: the value of \"authorization\" is not printable ASCII"),
        ("[otlp]\nqueue = 0", "config t.toml: key `otlp`: otlp.queue must be at least 1"),
        (
            "[[prices.model]]\nname = \"cheap\"\nproviders = [\"anthropic\"]\nmatch = \"x\"\ninput = -1.0\ncache_read = 0.0\noutput = 1.0",
            "config t.toml: key `prices.model`: price entry `cheap`: `input` must be a price of 0 or more, not -1",
        ),
        (
            "[[prices.model]]\nname = \"cheap\"\nproviders = [\"anthropic\"]\nmatch = \"x\"\ninput = 1.0\noutput = 1.0",
            "config t.toml: key `prices.model[0]`: missing field `cache_read`",
        ),
        ("[prices]\nfiles = [\"/nonexistent/p.toml\"]", "config t.toml: key `prices.files[0]`: cannot read /nonexistent/p.toml"),
        ("[deletions]\naudit_threshold = 0", "config t.toml: key `deletions.audit_threshold`: must be at least 1"),
        ("[deletions]\nprotected = [\".ssh\"]", "config t.toml: key `deletions.protected`: \".ssh\" is neither `~/dir` nor an absolute directory below /"),
        ("[deletions]\nprotected = [\"~/\"]", "config t.toml: key `deletions.protected`: \"~/\" is neither"),
        ("[deletions]\ncache = [\"/\"]", "config t.toml: key `deletions.cache`: \"/\" is neither"),
        ("[deletions]\ntemp = [\"tmp\"]", "config t.toml: key `deletions.temp`: tmp is not an absolute directory below /"),
        ("[deletions]\nenforce_places = [\"worktree\"]", "config t.toml: key `deletions.enforce_places`: \"worktree\" is not one of home, system, outside, other_repo, cache, temp"),
        ("[deletions]\nenforce_places = [\"moon\"]", "config t.toml: key `deletions.enforce_places`: \"moon\" is not one of"),
        ("[deletions]\nthreshold = 3", "config t.toml: key `deletions.threshold`: unknown field `threshold`"),
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
fn configured_prices_win_over_the_builtin_ones() {
    use guard_core::{cost::Cost, providers::{Provider, Usage}};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prices.toml");
    let entry = |name: &str, input: f64| format!("name = \"{name}\"\nproviders = [\"openai_chat\"]\nmatch = \"gpt-4o*\"\ninput = {input:?}\ncache_read = 0.0\noutput = 0.0\n");
    std::fs::write(&file, format!("[[model]]\n{}", entry("file", 2.0))).unwrap();
    let text = format!("[prices]\nfiles = [{file:?}]\n[[prices.model]]\n{}", entry("inline", 1.0));
    let usd = |c: &Config| match c.price_table().unwrap().price(Provider::OpenaiChat, Some("gpt-4o"), &Usage { input: 1_000_000, ..Usage::default() }) {
        Cost::Usd(v) => v,
        Cost::Unpriced { .. } => panic!("unpriced"),
    };
    // Inline first, then the file, then the built-in 2.50.
    assert_eq!(usd(&Config::parse(&text, "t.toml").unwrap()), 1.0);
    let files_only = text.split("[[prices.model]]").next().unwrap_or_default();
    assert_eq!(usd(&Config::parse(files_only, "t.toml").unwrap()), 2.0);
    assert_eq!(usd(&Config::parse("", "t.toml").unwrap()), 2.5);
    let table = Config::parse(&text, "t.toml").unwrap().price_table().unwrap();
    assert_eq!((table.models[0].origin.as_str(), table.models[1].origin.clone()), ("t.toml", file.display().to_string()));
    // A broken file is named with its key and path.
    std::fs::write(&file, "[[model]]\nname = \"x\"\n").unwrap();
    let e = Config::parse(files_only, "t.toml").unwrap_err().to_string();
    assert!(e.starts_with(&format!("config t.toml: key `prices.files[0]`: {}: missing field", file.display())), "{e}");
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

#[test]
fn request_rules_load_disable_and_switch_off() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("requests.toml");
    std::fs::write(
        &rules,
        "[actions]\n\"github.delete-repo\" = \"observe\"\n[[rule]]\nid = \"internal.drop\"\ncategory = \"database\"\nseverity = \"high\"\ndescription = \"d\"\nmethods = [\"POST\"]\npaths = [\"/drop\"]\n",
    )
    .unwrap();
    let text = format!("[requests]\nextra_files = [{rules:?}]\ndisable = [\"k8s.api-delete\"]\n");
    let c = Config::parse(&text, "t.toml").unwrap();
    let set = c.request_rules().unwrap();
    assert!(set.rules().iter().any(|r| r.id == "internal.drop"));
    assert!(set.rules().iter().all(|r| r.id != "k8s.api-delete"));
    let gh = set.rules().iter().find(|r| r.id == "github.delete-repo").unwrap();
    assert_eq!(gh.action, guard_core::rules::RuleAction::Observe);
    // A bad id is an error that names the key.
    let err = Config::parse("[requests]\ndisable = [\"nope\"]\n", "t.toml").unwrap_err().to_string();
    assert!(err.contains("requests.disable") && err.contains("nope"), "{err}");
    let off = Config::parse("[requests]\nenabled = false\n", "t.toml").unwrap();
    assert!(off.request_rules().unwrap().rules().is_empty());
    assert!(!Config::default().request_rules().unwrap().rules().is_empty());
}
